"""Molecules to arrays: SMILES -> RDKit molecule -> atom/bond feature arrays, fingerprints, descriptors.

This is the layer that talks to RDKit, in three modules that this one gathers: :mod:`~torchsci_chem.molecules`
(SMILES to standardised RDKit molecules), :mod:`~torchsci_chem.graphs` (atom and bond features as a
:class:`MolGraph` per molecule, batched by :func:`collate_graphs` into a :class:`GraphBatch` of torch
tensors) and :mod:`~torchsci_chem.fingerprints` (per-molecule fingerprints and descriptors). Here,
:func:`featurize` runs the first two over many SMILES, in worker processes and through a
:class:`GraphCache`; every name of those modules stays importable from here.

No SMILES is dropped silently: an unparsable, empty, unsanitisable or over-sized molecule is an
:class:`InvalidMolecule` with its row and reason; by default the whole batch fails with one
:class:`torchsci.DataError` that lists them, and ``on_invalid="skip"`` keeps the rest and reports them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np
from rdkit import Chem, RDLogger

from torchsci.errors import ConfigError, DataError
from torchsci_chem.fingerprints import (  # noqa: F401 (re-exported)
    EXTRA_KINDS,
    molecule_features,
    morgan_fingerprints,
    rdkit_descriptors,
)
from torchsci_chem.graphs import (  # noqa: F401 (re-exported)
    ATOM_FEATURES,
    BOND_FEATURES,
    ELEMENTS,
    GraphBatch,
    MolGraph,
    collate_graphs,
    mol_to_graph,
    mols_to_graphs,
)
from torchsci_chem.molecules import (  # noqa: F401 (re-exported)
    InvalidMolecule,
    _Invalid,
    _parse,
    _standardizers,
    describe_invalid,
    parse_smiles,
)
from torchsci_chem.standardize import STEPS

_BLOCK = 2048
STANDARDIZE_STEPS = STEPS
"""Standardisation step names (see :mod:`torchsci_chem.standardize`), applied in this order."""


class GraphCache:
    """Featurised molecules keyed by canonical SMILES, so the same molecule written two ways is done once.

    A cache belongs to one standardisation setting (featurising with another setting raises
    :class:`ConfigError`). Input strings seen before skip parsing entirely.

    Examples
    --------
    >>> from torchsci_chem.featurize import GraphCache, featurize
    >>> cache = GraphCache()
    >>> _ = featurize(["OCC", "CCO"], cache=cache)
    >>> len(cache)
    1
    """

    def __init__(self) -> None:
        self.graphs: dict[str, MolGraph] = {}
        self.canonical: dict[str, str] = {}
        self.setting: tuple | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def bind(self, setting: tuple) -> None:
        if self.setting is None:
            self.setting = setting
        elif self.setting != setting:
            raise ConfigError(f"this GraphCache holds molecules featurised with {self.setting}, not {setting}; "
                              "use one cache per standardisation setting.")


def _featurize_chunk(args: tuple) -> list[MolGraph | str | tuple[str, MolGraph]]:
    smiles, standardize, max_atoms, canonical = args
    steps = _standardizers(standardize)
    out: list[Any] = []
    mols: list[Chem.Mol] = []
    RDLogger.DisableLog("rdApp.*")  # failures are reported per row below, not as RDKit's stderr noise
    try:
        for s in smiles:
            try:
                mol = _parse(s, steps, max_atoms)
            except _Invalid as exc:
                out.append(str(exc))
                continue
            out.append(len(mols))
            mols.append(mol)
    finally:
        RDLogger.EnableLog("rdApp.*")
    graphs = mols_to_graphs(mols) if mols else []
    keys = [Chem.MolToSmiles(m) for m in mols] if canonical else None
    return [r if isinstance(r, str) else (keys[r], graphs[r]) if keys else graphs[r] for r in out]


@dataclasses.dataclass
class Featurized:
    """What :func:`featurize` returns: the graphs, which input positions they came from, and the failures."""

    graphs: list[MolGraph]
    kept: np.ndarray
    invalid: list[InvalidMolecule]

    def report(self) -> str:
        """A human-readable summary of the skipped molecules (empty when none were)."""
        return describe_invalid(self.invalid)


def featurize(smiles: Sequence[str], *, standardize: Sequence[str] = (), max_atoms: int | None = 500,
              on_invalid: str = "raise", n_jobs: int = 1, cache: GraphCache | None = None,
              rows: Sequence[Any] | None = None, source: str = "input") -> Featurized:
    """Featurise SMILES into :class:`MolGraph` s, in ``n_jobs`` processes, reusing ``cache``.

    Parameters
    ----------
    smiles
        The molecules.
    standardize
        Steps from :data:`STANDARDIZE_STEPS` applied to every molecule (see :func:`parse_smiles`).
    max_atoms
        Molecules with more heavy atoms are invalid (``None``: no limit).
    on_invalid
        ``"raise"``: one :class:`torchsci.DataError` listing every failed row; ``"skip"``: drop them,
        listing them in :attr:`Featurized.invalid` (summarised by :meth:`Featurized.report`).
    n_jobs
        Worker processes (``1``: this process).
    cache
        A :class:`GraphCache` shared between calls.
    rows, source
        Row labels (default: positions) and a name (a file) used in error messages.

    Examples
    --------
    >>> from torchsci_chem.featurize import featurize
    >>> out = featurize(["CCO", "not a molecule", "c1ccccc1"], on_invalid="skip")
    >>> out.kept.tolist(), out.invalid[0].row
    ([0, 2], 1)
    """
    if on_invalid not in ("raise", "skip"):
        raise ConfigError(f"on_invalid={on_invalid!r}: use 'raise' or 'skip'.")
    smiles = list(smiles)
    rows = list(range(len(smiles))) if rows is None else list(rows)
    results: list[Any] = [None] * len(smiles)
    todo = list(range(len(smiles)))
    if cache is not None:
        cache.bind((tuple(standardize), max_atoms))
        todo = []
        for i, s in enumerate(smiles):
            key = cache.canonical.get(s) if isinstance(s, str) else None
            if key is not None:
                results[i] = cache.graphs[key]
            else:
                todo.append(i)
    work = [smiles[i] for i in todo]
    canonical = cache is not None
    # Blocks bound the RDKit molecules alive at once; several per process even out uneven blocks.
    n_blocks = max(-(-len(work) // _BLOCK), 4 * n_jobs if n_jobs > 1 else 1)
    bounds = np.linspace(0, len(work), n_blocks + 1).astype(int)
    blocks = [(work[a:b], tuple(standardize), max_atoms, canonical) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if n_jobs > 1 and len(work) > 4 * n_jobs:
        with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
            done = [r for part in pool.imap(_featurize_chunk, blocks) for r in part]
    else:
        done = [r for block in blocks for r in _featurize_chunk(block)]
    for i, r in zip(todo, done, strict=True):
        if canonical and isinstance(r, tuple):
            key, graph = r
            graph = cache.graphs.setdefault(key, graph)
            cache.canonical[smiles[i]] = key
            r = graph
        results[i] = r
    invalid = [InvalidMolecule(rows[i], str(smiles[i]), r) for i, r in enumerate(results) if isinstance(r, str)]
    if invalid and on_invalid == "raise":
        raise DataError(describe_invalid(invalid, source) + "\nFix or remove these rows, or pass on_invalid='skip' "
                        "to drop them with this report.")
    kept = np.array([i for i, r in enumerate(results) if not isinstance(r, str)], dtype=np.int64)
    return Featurized([results[i] for i in kept], kept, invalid)
