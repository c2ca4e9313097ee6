"""SMILES to everything :func:`torchsci_chem.predict` needs besides the network, parsing each SMILES once.

The layer between :mod:`~torchsci_chem.molecules` (a string becomes a molecule) and
:mod:`~torchsci_chem.inference` (the network and the result). For each distinct input string, one RDKit
parse feeds the structural rules (:func:`torchsci_chem.domain.judge_mol`, on the molecule as given), the
standardisation report (:func:`torchsci_chem.standardize.report_and_standardize`), and, from the
standardised molecule, the graph, the canonical SMILES that makes equal molecules one graph, the domain
fingerprint and the model's extra features. (predict() used to parse a string up to five times for these.)

:func:`prepare_blocks` yields blocks of prepared strings in input order, prepared in ``n_jobs - 1`` worker
processes while the caller runs the network on the blocks already done (:mod:`torchsci_chem.workers` uses it
where workers cannot run the network themselves: no fork, or a model on a GPU). A worker receives strings and
returns numpy arrays and small records, never RDKit molecules, so it runs under any start method.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from torchsci.applicability import Applicability
from torchsci.errors import ConfigError
from torchsci_chem.graphs import MolGraph, mols_to_graphs
from torchsci_chem.molecules import _check_size, _finish, _Invalid, _parse_raw, _standardizers


@dataclasses.dataclass
class Needs:
    """What to prepare besides graphs: ``reports``, domain ``fingerprints``, and the model's ``extra`` features
    (``("names", descriptor names)`` or ``("kind", kind of :func:`~torchsci_chem.featurize.molecule_features`)``)."""

    standardize: tuple[str, ...] = ()
    max_atoms: int | None = 500
    reports: bool = False
    fingerprints: bool = False
    extra: tuple[str, Any] | None = None


@dataclasses.dataclass
class PreparedBlock:
    """Prepared strings ``start`` to ``start + len(reasons)`` of the distinct inputs.

    Per string: ``reasons`` (``""`` if it became a graph, else why not), ``rules`` (the structural
    :class:`~torchsci.applicability.Applicability` of the molecule as given, ``None`` where RDKit cannot
    parse it) and ``reports``. Per valid string (``valid`` holds their positions in the block): ``keys``
    (canonical SMILES after standardisation), ``graphs``, ``fingerprints`` (packed, ``(n_valid, 256)``)
    and ``extra`` (``(n_valid, d)``), the last two ``None`` unless asked for.
    """

    start: int
    reasons: list[str]
    rules: list[Applicability | None]
    reports: list[Any] | None
    valid: np.ndarray
    keys: list[str]
    graphs: list[MolGraph]
    fingerprints: np.ndarray | None
    extra: np.ndarray | None


def prepare(smiles: Sequence[Any], needs: Needs, start: int = 0) -> PreparedBlock:
    """Prepare strings in this process (see :class:`PreparedBlock`); non-strings are invalid.

    Examples
    --------
    >>> from torchsci_chem.preparation import Needs, prepare
    >>> block = prepare(["OCC", "CC(=O)[O-].[Na+]", "C1CC"], Needs(standardize=("organic_fragment",), reports=True))
    >>> block.reasons[2], block.keys, block.rules[1].applicable, block.reports[1].flags
    ('RDKit cannot parse it', ['CCO', 'CC(=O)[O-]'], False, ['salt', 'metal'])
    """
    from torchsci_chem.domain import judge_mol
    from torchsci_chem.standardize import report_and_standardize

    steps = _standardizers(needs.standardize)
    reasons: list[str] = []
    rules: list[Applicability | None] = []
    reports: list[Any] | None = [] if needs.reports else None
    mols: list[Chem.Mol] = []
    valid: list[int] = []
    with rdBase.BlockLogs():  # failures are reported per row, not as RDKit's stderr noise
        for i, s in enumerate(smiles):
            raw = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
            rules.append(None if raw is None else judge_mol(raw))
            try:
                if reports is not None:
                    report, mol = report_and_standardize(s, raw if isinstance(s, str) and s.strip() else None,
                                                         needs.standardize)
                    reports.append(report)
                    mol = _check_size(mol, needs.max_atoms) if mol is not None else _parse_raw(s, raw)
                else:
                    mol = _finish(_parse_raw(s, raw), steps, needs.max_atoms)
            except _Invalid as exc:
                reasons.append(str(exc))
                continue
            reasons.append("")
            valid.append(i)
            mols.append(mol)
        keys = [Chem.MolToSmiles(m) for m in mols]
    graphs = mols_to_graphs(mols) if mols else []
    fingerprints = extra = None
    if needs.fingerprints:
        from torchsci_chem.domain import packed_fingerprints

        fingerprints = packed_fingerprints(mols)
    if needs.extra is not None:
        extra = _extra(mols, needs.extra)
    return PreparedBlock(start, reasons, rules, reports, np.array(valid, dtype=np.int64), keys, graphs,
                         fingerprints, extra)


def _extra(mols: list[Chem.Mol], spec: tuple[str, Any]) -> np.ndarray:
    how, what = spec
    if how == "names":
        from torchsci_chem.descriptors import compute_descriptors

        return compute_descriptors(mols, what) if mols else np.zeros((0, len(what)), dtype=np.float32)
    from torchsci_chem.fingerprints import molecule_features

    return molecule_features(mols, what)


def _prepare_task(args: tuple) -> PreparedBlock:
    return prepare(*args)


def prepare_blocks(smiles: Sequence[Any], needs: Needs, n_jobs: int, block: int) -> Iterator[PreparedBlock]:
    """:class:`PreparedBlock` s of ``smiles`` in order, ``block`` strings each.

    ``n_jobs`` counts the processes at work, this one included: with ``n_jobs > 1``, ``n_jobs - 1`` worker
    processes prepare the blocks ahead (Python's default start method: fork on Linux, spawn on macOS and
    Windows, where the calling script needs the usual ``if __name__ == "__main__":`` guard) while this
    process uses the ones already yielded (predict() runs the network on them) and, rather than wait for a
    block, prepares the last one that no worker has taken; ``n_jobs=1`` prepares each block here when it is
    asked for. On two cores, one worker beside the network was faster than two
    (2,457-2,594 against 2,069-2,230 molecules/s, benchmarks/README.md).

    Examples
    --------
    >>> from torchsci_chem.preparation import Needs, prepare_blocks
    >>> [len(b.graphs) for b in prepare_blocks(["CCO", "CCN", "x"], Needs(), n_jobs=1, block=2)]
    [2, 0]
    """
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ConfigError(f"n_jobs={n_jobs!r}: give the number of processes at work, 1 or more (2: one worker featurises while this process runs the network).")
    tasks = [(list(smiles[a:a + block]), needs, a) for a in range(0, len(smiles), block)]
    # Blocks queued per worker. Descriptors make preparing cost several times the network, so few are queued
    # and this process, which takes only blocks no worker has, shares the preparing (esol on 1,000 molecules,
    # two processes: 636-662 molecules/s with 2, 481-485 with 8); without them the network is the slower side
    # and a deeper queue keeps this process on it (a graph-only D-MPNN on 5,000: 2,390-2,496 with 8, 1,849-1,979
    # with 2).
    depth = 2 if needs.extra is not None else 8
    return _blocks(tasks, min(n_jobs - 1, len(tasks) - 1), depth)


def _blocks(tasks: list[tuple], workers: int, depth: int) -> Iterator[PreparedBlock]:
    if workers < 1:
        for task in tasks:
            yield prepare(*task)
        return
    done: dict[int, PreparedBlock] = {}
    queued: dict[int, Any] = {}
    front, back = 0, len(tasks)  # tasks[front:back] are nobody's yet
    with multiprocessing.get_context().Pool(workers) as pool:
        for i in range(len(tasks)):
            while True:
                while front < back and len(queued) < depth * workers:  # each worker has the next block queued
                    queued[front] = pool.apply_async(_prepare_task, (tasks[front],))
                    front += 1
                if i in done or queued[i].ready() or front == back:
                    break
                # Rather than wait for block i, this process prepares the last block no worker has: with a
                # model that computes descriptors, preparing costs more than the network, and no core idles.
                back -= 1
                done[back] = prepare(*tasks[back])
            yield done.pop(i) if i in done else queued.pop(i).get()
