"""Predictions for new molecules: the one-call :func:`predict` and the ``torchsci chem`` commands.

``model`` is a shipped pretrained name (``"esol"``), a checkpoint written by the Trainer (rebuilt with
:func:`torchsci.load_model`), or a model object. Ensembles also give the spread of their members.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import sys
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import torchsci
from torchsci.applicability import COLUMNS, Applicability, as_columns, warning_line
from torchsci.errors import ConfigError, DataError
from torchsci.io import atomic_output, check_output, find_column
from torchsci_chem.domain import PACKED_BYTES
from torchsci_chem.featurize import (
    STANDARDIZE_STEPS,
    InvalidMolecule,
    MolGraph,
    collate_graphs,
    describe_invalid,
    featurize,
    parse_smiles,
)
from torchsci_chem.fingerprints import EXTRA_KINDS
from torchsci_chem.preparation import Needs, _extra
from torchsci_chem.standardize import DEFAULT_STANDARDIZE

PRETRAINED = {"esol": ("chem/dmpnn_ensemble", "esol"), "freesolv": ("chem/dmpnn_ensemble", "freesolv"),
              "lipo": ("chem/dmpnn_ensemble", "lipo")}
"""Shipped models by short name: (registered model, pretrained tag)."""


def load(model: str | Path | nn.Module) -> nn.Module:
    """A model ready for inference from a pretrained name, a checkpoint path, or a module."""
    if isinstance(model, nn.Module):
        return model.eval()
    if str(model) in PRETRAINED:
        name, tag = PRETRAINED[str(model)]
        return torchsci.create_model(name, pretrained=tag).eval()
    if Path(model).is_file():
        return torchsci.load_model(model, field="chem").eval()
    raise ConfigError(f"model={model!r} is neither a shipped model ({', '.join(PRETRAINED)}) nor a checkpoint file.")


@dataclasses.dataclass
class PropertyPrediction:
    """Predictions with what a chemist needs to act on them, one entry per input molecule.

    ``value`` (and ``std``, ``lower``, ``upper``) are ``(n,)`` for single-task models, ``(n, n_tasks)``
    otherwise (classifiers: probabilities, ``(n, n_targets * n_classes)`` for multiclass ones); NaN where a molecule could not be featurised (or the model gives no such number).
    ``similarity`` is the Tanimoto similarity to the nearest training molecule and ``in_domain`` whether
    it reaches the model's threshold (:mod:`torchsci_chem.domain`; NaN / False for models that hold no
    training fingerprints). ``standardized``, ``changes`` and ``flags`` come from
    :func:`torchsci_chem.standardize.standardize_report`. ``judgeable`` is False where the model
    cannot judge the molecule: invalid, flagged (metal, inorganic, salt, radical, ion) or out of domain;
    ``applicability`` says why, per molecule, in the core's shape (:mod:`torchsci.applicability`).
    """

    smiles: list[str]
    value: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    interval: float | None
    similarity: np.ndarray
    in_domain: np.ndarray
    standardized: list[str]
    changes: list[list[str]]
    flags: list[list[str]]
    applicability: list[Applicability | None]
    invalid: list[str] = dataclasses.field(default_factory=list)
    """Per molecule why it could not be featurised (its prediction is NaN), ``""`` for valid ones."""

    @property
    def judgeable(self) -> np.ndarray:
        """Whether the model can judge each molecule (its :attr:`applicability`; False for invalid SMILES)."""
        return np.array([a is not None and a.applicable for a in self.applicability], dtype=bool)

    def __len__(self) -> int:
        return len(self.smiles)


def predict(smiles: str | Sequence[str], model: str | Path | nn.Module = "esol", *, return_std: bool = False,
            interval: float | None = None, details: bool = False, standardize: bool | Sequence[str] = True,
            on_invalid: str = "raise", batch_size: int = 64, n_jobs: int = 1,
            return_applicability: bool = False, device: str | torch.device = "auto",
            progress: bool = False) -> np.ndarray | tuple[Any, ...] | PropertyPrediction:
    """Predict properties of molecules given as SMILES.

    Parameters
    ----------
    smiles
        The molecules; a single string is one molecule (its result still has a leading axis of length 1).
    model
        ``"esol"`` (aqueous solubility, log10 mol/L), ``"freesolv"`` (hydration free energy, kcal/mol),
        ``"lipo"`` (octanol/water logD at pH 7.4), a Trainer checkpoint path, or a model.
    return_std
        Also return the standard deviation across ensemble members (ensembles only; other models
        raise :class:`torchsci.ConfigError` because they have no uncertainty estimate).
    interval
        A coverage level (e.g. ``0.9``): return a :class:`PropertyPrediction` with conformal intervals
        calibrated on the model's validation molecules (:mod:`torchsci_chem.uncertainty`); models
        without calibration raise :class:`torchsci.ConfigError`.
    details
        Return a :class:`PropertyPrediction` (standardisation report, applicability domain, std).
    standardize
        ``True`` (default): the standardisation steps the model was trained with (the shipped models:
        :data:`torchsci_chem.standardize.DEFAULT_STANDARDIZE`); ``False``: the molecules as given; or a
        list of steps from :data:`torchsci_chem.featurize.STANDARDIZE_STEPS`.
    n_jobs
        Processes at work (``1``, the default: this process does everything). With ``n_jobs > 1`` on Linux and
        a model on the CPU, ``n_jobs`` forked worker processes each parse, featurise and predict their own
        blocks of molecules (one torch thread each) while this one only collects the results in order; an input
        of one block (256 molecules at the default batch size) stays in this process. Elsewhere (macOS,
        Windows: spawn, about two seconds to start, and the calling script needs an
        ``if __name__ == "__main__":`` guard; a model on a GPU) ``n_jobs - 1`` workers parse and featurise while
        this process runs the network. On two otherwise idle cores, ``n_jobs=2`` predicted 1.76-1.95x the
        molecules/s of ``n_jobs=1`` (5,000 molecules, a D-MPNN of hidden 300: about 3,000 against 1,650;
        ``model="esol"``: 760-777 against 423; benchmarks/README.md).
        Results are bitwise identical for every ``n_jobs``: the network sees the same batches (blocks are a
        multiple of ``batch_size``) and, on the CPU, runs on one torch thread whatever
        :func:`torch.get_num_threads` says (on two, MKL rounds some small matrix products differently).
    on_invalid
        ``"raise"`` (default): one error listing every invalid SMILES; ``"skip"``: NaN for those rows,
        with a warning that lists them.
    return_applicability
        Also return one :class:`torchsci.applicability.Applicability` per molecule (``None`` for an
        invalid one): whether the model can judge it (see :mod:`torchsci_chem.domain`). Without it,
        molecules the model cannot judge are reported in one warning.
    device
        ``"auto"`` (CUDA, then Apple MPS, then the CPU), ``"cpu"``, ``"cuda:0"``, ... (see
        :func:`torchsci.device.resolve_device`); a model object given as ``model`` is moved there.
    batch_size
        Molecules per forward pass. 64 is the fastest on a CPU core (its edge tensors stay in the core's L2
        cache: the D-MPNN's forward took 0.51 s per 2,048 molecules at 64 and 0.62-0.77 s at 256, one thread); on
        a GPU, larger batches are likely faster. Results do not depend on it beyond float rounding.
    progress
        Show a progress bar over batches.

    Returns
    -------
    Predictions ``(n,)`` for single-task models, ``(n, n_tasks)`` otherwise (and the std, same shape; and
    with ``return_applicability`` the list of :class:`~torchsci.applicability.Applicability`, last), or a
    :class:`PropertyPrediction` with ``interval`` or ``details``.

    Examples
    --------
    >>> import torchsci_chem
    >>> logS = torchsci_chem.predict(["CCO", "c1ccccc1O"], model="esol")
    >>> logS.shape, bool(logS[0] > logS[1])
    ((2,), True)
    >>> out = torchsci_chem.predict(["CCO", "[Na+].[Cl-]"], interval=0.9)
    >>> bool(out.lower[0] < out.value[0] < out.upper[0]), out.judgeable.tolist()
    (True, [True, False])
    >>> logS, flags = torchsci_chem.predict("[NH4+].[Cl-]", return_applicability=True)
    >>> logS.shape, flags[0].applicable, flags[0].reason.split("; ")[0]
    ((1,), False, 'a salt or mixture (2 fragments)')
    """
    from torchsci_chem.standardize import resolve

    if isinstance(smiles, (str, bytes)):  # one molecule, not a sequence of one-character SMILES
        smiles = [smiles.decode() if isinstance(smiles, bytes) else smiles]
    net = load(model)
    target = torchsci.resolve_device(device)
    if next(net.parameters()).device != target:
        net = net.to(target)
    members = getattr(net, "forward_members", None)
    mve = getattr(core_module(net), "predicts_variance", False)
    if return_std and members is None and not mve:
        raise ConfigError(f"{type(net).__name__} is a single model without a variance head: no uncertainty is "
                          "available; use an ensemble (model='esol') or a D-MPNN trained with uncertainty='mve'.")
    if interval is not None and not getattr(net, "calibration_size", 0):
        raise ConfigError(f"predict(interval={interval}): this {type(net).__name__} holds no conformal calibration; "
                          "use a shipped model (model='esol') or calibrate an ensemble as "
                          "examples/chem_train_esol_ensemble.py does.")
    steps = resolve(standardize, getattr(core_module(net), "standardize", ()))
    if on_invalid not in ("raise", "skip"):
        raise ConfigError(f"on_invalid={on_invalid!r}: use 'raise' or 'skip'.")
    smiles = list(smiles)
    want = interval is not None or details or return_applicability
    needs = Needs(steps, reports=want, fingerprints=want and bool(getattr(net, "domain_size", 0)),
                  extra=_extra_spec(net))
    rows = _prepare_and_run(net, smiles, needs, n_jobs, batch_size, on_invalid, progress)
    if rows.invalid:
        warnings.warn(describe_invalid(rows.invalid) + "\nTheir predictions are NaN.", stacklevel=2)
    from torchsci_chem.uncertainty import spread

    n_tasks = _num_tasks(net)
    mean = np.full((len(smiles), n_tasks), np.nan)
    std = np.full((len(smiles), n_tasks), np.nan)
    if len(rows.kept):
        mean[rows.kept], sigma = spread(rows.each, rows.variances)
        if members is not None or mve:
            std[rows.kept] = sigma
    if interval is not None or details:
        return _details(net, smiles, rows, mean, std, interval)
    if not return_applicability:
        # the cheap structural rules only; the domain's similarity comes with details=True
        line = warning_line("predict()", rows.rules, smiles)
        if line:
            warnings.warn(line, stacklevel=2)
        if n_tasks == 1:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean
    full = _details(net, smiles, rows, mean, std, None)
    return (full.value, full.std, full.applicability) if return_std else (full.value, full.applicability)


@dataclasses.dataclass
class _Rows:
    """What :func:`_prepare_and_run` gives per input row: the valid rows (``kept``), every member's outputs for
    them (``each``, ``variances``: ``(members, len(kept), n_tasks)``), the failures, and per row the rules, the
    reports, the reasons (``""`` for valid rows) and, for valid rows, the domain fingerprints."""

    kept: np.ndarray
    each: np.ndarray
    variances: np.ndarray | None
    invalid: list[InvalidMolecule]
    reasons: list[str]
    rules: list[Applicability | None]
    reports: list[Any] | None
    fingerprints: np.ndarray | None


def _prepare_and_run(net: nn.Module, smiles: list[Any], needs: Needs, n_jobs: int, batch_size: int, on_invalid: str,
                     progress: bool) -> _Rows:
    """Prepare each distinct string once and run the network on it, block by block, in this process or in
    ``n_jobs`` worker processes (:mod:`torchsci_chem.workers`).

    Molecules that standardise to the same structure (enantiomers, a salt and its parent, one SMILES written
    twice) are one graph: equal inputs get bitwise equal predictions, which batching alone does not promise (a
    row's float32 sums depend on its position in a batch). Within a block, the distinct graphs go through the
    network ``batch_size`` at a time; a molecule met again in a later block takes the prediction of its first
    block. Blocks and batches do not depend on ``n_jobs``, so neither do the results.
    """
    from torchsci_chem.workers import first_of_each, predicted_blocks

    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ConfigError(f"n_jobs={n_jobs!r}: give the number of processes at work, 1 or more.")
    keyed = [s if isinstance(s, str) else None for s in smiles]  # non-strings are invalid, whatever they are
    distinct: dict[str | None, int] = {}
    row_string = np.array([distinct.setdefault(k, len(distinct)) for k in keyed], dtype=np.int64)
    strings = list(distinct)
    reasons: list[str] = []
    rules: list[Applicability | None] = []
    reports: list[Any] | None = [] if needs.reports else None
    fingerprints = np.zeros((len(strings), PACKED_BYTES), dtype=np.uint8) if needs.fingerprints else None
    slot_of = np.full(len(strings), -1, dtype=np.int64)
    slots: dict[str, int] = {}
    columns: list[np.ndarray] = []  # per block, the outputs of the molecules first met in it
    bar = tqdm(total=len(smiles), desc="molecules", unit="mol", leave=False, disable=not progress)
    for block, outputs in predicted_blocks(strings, needs, net, batch_size, n_jobs, on_invalid == "raise"):
        reasons += block.reasons
        rules += block.rules
        if reports is not None:
            reports += block.reports
        at = block.start + block.valid
        if fingerprints is not None:
            fingerprints[at] = block.fingerprints
        new: list[int] = []
        for j, key, local in zip(at, block.keys, first_of_each(block.keys)[1], strict=True):
            if key not in slots:
                slots[key] = len(slots)
                new.append(local)
            slot_of[j] = slots[key]
        if new and outputs is not None:
            columns.append(outputs[:, new])
        bar.update(len(block.reasons))
    bar.close()
    invalid = [InvalidMolecule(i, str(smiles[i]), reasons[d]) for i, d in enumerate(row_string) if reasons[d]]
    if invalid and on_invalid == "raise":
        raise DataError(describe_invalid(invalid) + "\nFix or remove these rows, or pass on_invalid='skip' "
                        "to drop them with this report.")
    each, variances = _split_variances(net, columns)
    kept = np.array([i for i, d in enumerate(row_string) if not reasons[d]], dtype=np.int64)
    where = slot_of[row_string[kept]]
    return _Rows(kept, each[:, where], None if variances is None else variances[:, where], invalid,
                 [reasons[d] for d in row_string], [rules[d] for d in row_string],
                 None if reports is None else [reports[d] for d in row_string],
                 None if fingerprints is None else fingerprints[row_string[kept]])


def member_predictions(net: nn.Module, smiles: Sequence[str], standardize: Sequence[str] = (),
                       batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """Every member's predictions ``(members, n, n_tasks)`` (one member for a single model) and their
    predicted variances (same shape) for mean-variance models, else ``None``; invalid SMILES raise."""
    out = featurize(list(smiles), standardize=standardize)
    return _member_outputs(net, out.graphs, list(smiles), standardize, batch_size)


def _member_outputs(net: nn.Module, graphs: Sequence[MolGraph], smiles: Sequence[str], standardize: Sequence[str],
                    batch_size: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    batches = model_inputs(net, graphs, smiles, standardize, batch_size)
    if progress:
        batches = tqdm(batches, total=-(-len(graphs) // batch_size), desc="molecules", unit="batch", leave=False)
    return _split_variances(net, [_run_inputs(net, inputs) for inputs in batches])


def _forward_batch(net: nn.Module, graphs: Sequence[MolGraph], extra: np.ndarray | None) -> np.ndarray:
    """Every member's outputs ``(members, len(graphs), outputs)`` for one batch, probabilities for classifiers."""
    return _run_inputs(net, _batch_inputs(net, graphs, extra))


def _run_inputs(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    members = getattr(net, "forward_members", None)
    with torch.inference_mode():
        each = members(*inputs) if members is not None else net(*inputs).unsqueeze(0)
    kind = getattr(core_module(net), "task_kind", "regression")
    if kind != "regression":  # a classifier: probabilities, averaged over the members
        from torchsci_chem.task import probabilities

        classes = max(int(getattr(core_module(net), "num_classes", 0)), 1)
        each = torch.stack([probabilities(e, kind, e.shape[-1] // classes) for e in each])
    return each.double().cpu().numpy()


def _split_variances(net: nn.Module, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Batches of member outputs -> means ``(members, n, n_tasks)`` and, for mean-variance models, variances."""
    mve = getattr(core_module(net), "predicts_variance", False)
    n_tasks = _num_tasks(net)
    if not outputs:
        empty = np.zeros((len(net.members) if hasattr(net, "forward_members") else 1, 0, n_tasks))
        return empty, (empty if mve else None)
    each = np.concatenate(outputs, axis=1)
    return (each[..., :n_tasks], each[..., n_tasks:]) if mve else (each, None)


def _details(net: nn.Module, smiles: list[str], rows: _Rows, mean: np.ndarray, std: np.ndarray,
             level: float | None) -> PropertyPrediction:
    from torchsci_chem.domain import nearest_similarity
    from torchsci_chem.uncertainty import interval as conformal

    kept = rows.kept
    lower = np.full_like(mean, np.nan)
    upper = np.full_like(mean, np.nan)
    if level is not None and len(kept):
        scores = net.conformal_scores.double().cpu().numpy()
        beta = float(net.conformal_beta.item())
        lower[kept], upper[kept] = conformal(mean[kept], std[kept], scores, beta, level)
    similarity = np.full(len(smiles), np.nan)
    in_domain = np.zeros(len(smiles), dtype=bool)
    if getattr(net, "domain_size", 0) and len(kept):
        similarity[kept] = nearest_similarity(rows.fingerprints, net.domain_fingerprints.cpu().numpy())
        in_domain[kept] = similarity[kept] >= float(net.domain_threshold.item())
    reports = rows.reports
    threshold = float(net.domain_threshold.item()) if getattr(net, "domain_size", 0) else None
    judged = _judge(rows.rules, mean, similarity, threshold)
    if mean.shape[1] == 1:
        mean, std, lower, upper = mean[:, 0], std[:, 0], lower[:, 0], upper[:, 0]
    return PropertyPrediction(smiles, mean, std, lower, upper, level, similarity, in_domain,
                              [r.smiles for r in reports], [r.changes for r in reports], [r.flags for r in reports],
                              judged, list(rows.reasons))


def _judge(rules: Sequence[Applicability | None], mean: np.ndarray, similarity: np.ndarray,
           threshold: float | None) -> list[Applicability | None]:
    """Per molecule: the structural rules of :func:`torchsci_chem.domain.judge_mol` (``rules``), and for a model
    that holds its training fingerprints, the nearest-neighbour similarity against its validation threshold."""
    judged: list[Applicability | None] = []
    for i, rule in enumerate(rules):
        if rule is None or not np.isfinite(mean[i]).all():
            judged.append(None)  # invalid: no prediction to judge
            continue
        reasons = [rule.reason] if rule.reason else []
        basis = rule.basis
        score = None
        if threshold is not None:
            score = float(similarity[i])
            basis = f"{basis}; Tanimoto (Morgan r=2) to the nearest training molecule >= {threshold:.3f}"
            if not score >= threshold:
                reasons.append(f"far from the training molecules (nearest similarity {score:.2f} < {threshold:.2f})")
        judged.append(Applicability(not reasons, "; ".join(reasons), score, basis))
    return judged


def core_module(net: nn.Module) -> nn.Module:
    """The module holding the data-dependent settings (the first member of an ensemble)."""
    return net.members[0] if hasattr(net, "members") else net


def _num_tasks(net: nn.Module) -> int:
    return int(core_module(net).target_mean.numel())


def _extra_spec(net: nn.Module) -> tuple[str, Any] | None:
    """Which per-molecule extra features ``net`` takes: ``("names", descriptor names)``, ``("kind", kind)`` or None."""
    core = core_module(net)
    if not getattr(core, "extra_features", 0):
        return None
    names = tuple(getattr(core, "descriptor_names", ()))
    if names:  # the model's own list, checked against the installed RDKit when its weights were loaded
        return ("names", names)
    kind = getattr(core, "extra_kind", None)
    if kind is None:
        raise ConfigError("this model takes per-molecule extra features of an unrecorded kind; build "
                          "GraphBatch.extra yourself and call the model.")
    return ("kind", kind)


def _batch_inputs(net: nn.Module, graphs: Sequence[MolGraph], extra: np.ndarray | None) -> tuple[torch.Tensor, ...]:
    core = core_module(net)
    if extra is not None and extra.shape[1] != core.extra_features:
        raise ConfigError(f"this model was trained with {core.extra_features} '{core.extra_kind}' features, but this "
                          f"installation computes {extra.shape[1]} (a different RDKit version?); retrain it here.")
    parameter = next(net.parameters())
    batch = torchsci.move_to(collate_graphs(graphs, extra), parameter.device, parameter.dtype)
    return batch.inputs() if getattr(core, "takes_graph", True) else (batch.extra,)


def model_inputs(net: nn.Module, graphs: Sequence[MolGraph], smiles: Sequence[str], standardize: Sequence[str] = (),
                 batch_size: int = 256) -> Iterator[tuple[torch.Tensor, ...]]:
    """Positional inputs of ``net`` for batches of molecules, with the extra features it was trained with."""
    spec = _extra_spec(net)
    extra = None
    if spec is not None:
        mols = [parse_smiles(s, standardize) for s in smiles]
        extra = _extra(mols, spec)
    for start in range(0, len(graphs), batch_size):
        part = None if extra is None else extra[start:start + batch_size]
        yield _batch_inputs(net, graphs[start:start + batch_size], part)


def _read_sdf(path: Path, on_invalid: str) -> list[dict[str, str]]:
    """An SDF file's records (possibly gzipped) as rows: ``record``, ``title``, ``smiles`` and their properties."""
    from rdkit import Chem, RDLogger

    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    with _open_binary(path) as fh:
        if not _read_start(path, fh).strip():
            raise DataError(f"{path}: the SDF file is empty; it holds no molecule records.")
    rows, unreadable = [], []
    RDLogger.DisableLog("rdApp.*")
    try:
        with _open_binary(path) as fh:  # one record at a time (ForwardSDMolSupplier reads gzip streams too)
            for record, mol in enumerate(Chem.ForwardSDMolSupplier(fh), start=1):
                if mol is None:
                    unreadable.append(record)
                smi = "" if mol is None else Chem.MolToSmiles(mol)
                props = {} if mol is None else {k: str(v) for k, v in mol.GetPropsAsDict().items()}
                title = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
                rows.append({"record": str(record), "title": title, "smiles": smi, **props})
    except _GZIP_ERRORS as exc:
        raise _unreadable_gzip(path, exc) from None
    finally:
        RDLogger.EnableLog("rdApp.*")
    if unreadable and on_invalid == "raise":
        raise DataError(f"{path}: RDKit cannot read or sanitise record(s) {unreadable[:20]}; fix them or pass "
                        "--on-invalid skip (their predictions are left empty).")
    if not rows:
        raise DataError(f"{path}: no records (is it an SDF file?).")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, "") for k in keys} for r in rows]


def smiles_column(path: Path, header: Sequence[str], column: str) -> str:
    """The header's name of the SMILES column ``column`` (:func:`torchsci.io.find_column`: exact, else the one
    column equal to it up to case), or :class:`~torchsci.DataError` naming the file, the header and the fix."""
    found = find_column(header, column)
    if found is None:
        raise DataError(f"{path}: no column '{column}' (header: {list(header)}); pass --smiles NAME.")
    return found


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def molecule_format(path: Path) -> str:
    """``"csv"``, ``"sdf"`` or ``"smi"`` from a file name (a trailing ``.gz`` is read through gzip); other names are
    read as CSV, whose checks then name what is wrong.

    Examples
    --------
    >>> from pathlib import Path
    >>> from torchsci_chem.inference import molecule_format
    >>> [molecule_format(Path(p)) for p in ("a.csv", "chembl.sdf.gz", "zinc.smi", "b.tsv.gz")]
    ['csv', 'sdf', 'smi', 'csv']
    """
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    return "sdf" if last in (".sdf", ".sd") else "smi" if last in (".smi", ".smiles", ".ism", ".can") else "csv"


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _gzipped(path) else path.open("rb")


# What Python's gzip raises on a file that is not gzip, or whose stream is cut or corrupt.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _unreadable_gzip(path: Path, exc: Exception, part_way: bool = False) -> DataError:
    if part_way:
        return DataError(f"{path}: the gzip stream is damaged part-way ({exc}); every row before it was read, none "
                         "after; download or compress the file again.")
    return DataError(f"{path}: not a readable gzip file ({exc}); decompress it to check it, or give the plain file.")


def _gzip_checked(path: Path, fh) -> Iterator[bytes]:
    """The lines of ``fh``; a gzip stream found damaged part-way (a truncated download) is one clear error."""
    try:
        yield from fh
    except _GZIP_ERRORS as exc:
        raise _unreadable_gzip(path, exc, part_way=True) from None


def _utf8_lines(path: Path, fh, counter: list[int]) -> Iterator[str]:
    """The lines of a (possibly gzipped) binary file as text, ``counter[0]`` the number of the last one; a line that
    is not UTF-8 is one clear error naming the line and the byte."""
    for raw in _gzip_checked(path, fh):
        counter[0] += 1
        try:
            yield raw.decode("utf-8-sig" if counter[0] == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}, line {counter[0]}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file "
                            "as UTF-8 (Excel: 'CSV UTF-8'; iconv -f latin1 -t utf-8).") from None


def _read_start(path: Path, fh) -> bytes:
    """The first 64 KiB of a (possibly gzipped) file; a damaged gzip stream is one clear error."""
    try:
        return fh.read(65536)
    except _GZIP_ERRORS as exc:
        raise _unreadable_gzip(path, exc) from None


def stream_smiles_file(path: Path, chunk_size: int = 10_000) -> tuple[list[str], Iterator[list[tuple[int, dict]]]]:
    """A SMILES file (``.smi``: one molecule per line, the SMILES then optionally a name after whitespace, as
    RDKit, Open Babel and ZINC write them; ``#`` lines are comments; a first line whose first field is
    ``smiles`` is a header) as the columns ``smiles`` and ``name`` in chunks of ``(line, row)``, read lazily.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from torchsci_chem.inference import stream_smiles_file
    >>> p = Path(tempfile.mkdtemp()) / "zinc.smi"
    >>> _ = p.write_text("smiles zinc_id\\nCCO ZINC01\\n\\nc1ccccc1O  phenol, liquid\\n")
    >>> header, chunks = stream_smiles_file(p)
    >>> header, next(chunks)
    (['smiles', 'name'], [(2, {'smiles': 'CCO', 'name': 'ZINC01'}), (4, {'smiles': 'c1ccccc1O', 'name': 'phenol, liquid'})])
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file." if not path.exists() else f"{path}: is not a file.")
    with _open_binary(path) as fh:
        start = _read_start(path, fh)
    if b"\x00" in start:
        raise DataError(f"{path}: a binary file, not a SMILES file (one SMILES and an optional name per line).")
    if not start.strip():
        raise DataError(f"{path}: the file is empty; it needs one SMILES per line.")

    def chunks() -> Iterator[list[tuple[int, dict]]]:
        part: list[tuple[int, dict]] = []
        counter = [0]
        with _open_binary(path) as fh:
            for text in _utf8_lines(path, fh, counter):
                line, text = counter[0], text.strip()
                if not text or text.startswith("#"):
                    continue
                fields = text.split(maxsplit=1)
                if line == 1 and fields[0].casefold() == "smiles":
                    continue
                part.append((line, {"smiles": fields[0], "name": fields[1] if len(fields) > 1 else ""}))
                if len(part) == chunk_size:
                    yield part
                    part = []
        if part:
            yield part

    return ["smiles", "name"], chunks()


DELIMITERS = (",", ";", "\t", "|")


def stream_csv(path: Path, column: str, chunk_size: int = 10_000) -> tuple[list[str], Iterator[list[tuple[int, dict]]]]:
    """The header of a CSV of molecules and an iterator over chunks of ``(line, row)``, read lazily.

    Memory stays bounded by ``chunk_size`` rows whatever the file's length. The file is checked as
    :func:`torchsci.io.read_csv` checks it (missing, binary, not UTF-8, empty, only a header, a row with
    more fields than the header, no ``column``: see :func:`smiles_column`), each one :class:`torchsci.DataError` naming the file; a
    problem found part-way through is raised when its chunk is read.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file." if not path.exists() else f"{path}: is not a file.")
    with _open_binary(path) as fh:
        if b"\x00" in _read_start(path, fh):
            raise DataError(f"{path}: a binary file, not CSV text; export the table as CSV (UTF-8).")

    consumed = [0]  # physical lines read so far
    fh = _open_binary(path)
    try:
        text = _utf8_lines(path, fh, consumed)
        first = next((ln for ln in text if ln.strip()), None)
        if first is None:
            raise DataError(f"{path}: the file is empty; it needs a header line and one row per entry.")
        present = [d for d in DELIMITERS if d in first]
        delimiter = present[0] if present else ","
        if len(present) > 1:
            try:
                delimiter = csv.Sniffer().sniff(first, delimiters="".join(present)).delimiter
            except csv.Error:
                delimiter = ","
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        smiles_column(path, header, column)
        reader = csv.reader(text, delimiter=delimiter)
        try:
            head = next((r for r in reader if r), None)
        except csv.Error as exc:
            raise DataError(f"{path}: unreadable CSV ({exc}).") from exc
        if head is None:
            raise DataError(f"{path}: only a header: no data rows below it; add one row per entry.")
    except BaseException:
        fh.close()
        raise

    def chunks() -> Iterator[list[tuple[int, dict]]]:
        part: list[tuple[int, dict]] = []
        try:
            for cells in _chain([head], reader):
                if not cells:
                    continue
                line = consumed[0]
                if len(cells) > len(header):
                    raise DataError(f"{path}, line {line}: {len(cells)} fields but the header has {len(header)} "
                                    "(an unquoted delimiter inside a value?).")
                part.append((line, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))))
                if len(part) == chunk_size:
                    yield part
                    part = []
            if part:
                yield part
        except csv.Error as exc:
            raise DataError(f"{path}: unreadable CSV ({exc}).") from exc
        finally:
            fh.close()

    return header, chunks()


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


class _Summary(Sequence):
    """The flags of a streamed file for :func:`torchsci.applicability.warning_line`, without keeping one per row:
    the first unjudgeable examples, then stand-ins carrying the other bases, then judgeable ones."""

    def __init__(self, examples: list[tuple[str, Applicability]], bad: int, total: int, bases: set[str]) -> None:
        self.examples, self.bad, self.total = [f for _, f in examples], bad, total
        self.bases = sorted(bases - {f.basis for f in self.examples})

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i: int) -> Applicability:
        if not 0 <= i < self.total:
            raise IndexError(i)
        if i < len(self.examples):
            return self.examples[i]
        if i < self.bad:
            j = i - len(self.examples)
            return Applicability(False, "", None, self.bases[j] if j < len(self.bases) else "")
        return Applicability(True)


def _count_rows(path: Path) -> int:
    """Lines after the header (for the progress bar's total; quoted newlines make it an upper bound)."""
    count = 0
    with _open_binary(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return max(count - 1, 0)


def predict_file(molecules: str | Path, output: str | Path, model: str | Path | nn.Module = "esol", *,
                 smiles: str = "smiles", column: str = "prediction", interval: float | None = None, n_jobs: int = 1,
                 batch_size: int = 64, chunk_size: int = 10_000, on_invalid: str = "raise",
                 standardize: bool = True, progress: bool = False) -> Path:
    """Predict every molecule of a file and write the input's columns plus the predictions to a CSV.

    What ``torchsci chem predict`` does, from Python: ``molecules`` is a CSV with a SMILES column, an SDF file
    or a SMILES file (``.smi``), each possibly gzipped; a CSV or SMILES file is streamed in chunks of
    ``chunk_size`` rows (memory follows the chunk, not the file). Every row comes back, in order: invalid
    ones with the reason in ``invalid`` (with ``on_invalid="skip"``; ``"raise"`` stops at the first chunk that
    holds one), each with ``standardized_smiles``, ``standardization``, ``flags``, ``judgeable`` and the
    applicability columns, and for models that hold them the spread, ``interval`` bounds, the nearest
    training similarity and ``in_domain``. The output is written atomically and never over the input.

    Parameters
    ----------
    molecules, output
        The file to read and the CSV to write (``.csv``).
    model
        A shipped model's name, a checkpoint (``torchsci chem train``'s ``model.ckpt``) or a module.
    smiles
        The SMILES column of a CSV (matched up to case when no column has exactly this name).
    column
        Name of the prediction column (``{column}_{k}`` for multi-output models).
    interval, n_jobs, standardize
        As for :func:`predict`.
    batch_size
        As for :func:`predict`.
    chunk_size, on_invalid, progress
        Rows per chunk; ``"raise"`` or ``"skip"``; a progress bar on stderr.

    Returns
    -------
    pathlib.Path
        ``output``.

    Examples
    --------
    >>> import csv, tempfile
    >>> from pathlib import Path
    >>> from torchsci_chem import predict_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "mols.smi").write_text("CCO ethanol\\nc1ccccc1O phenol\\n")
    >>> out = predict_file(folder / "mols.smi", folder / "predictions.csv", model="esol", interval=0.9)
    >>> rows = list(csv.DictReader(out.open()))
    >>> [r["name"] for r in rows], all(float(r["prediction_lower"]) < float(r["prediction"]) for r in rows)
    (['ethanol', 'phenol'], True)
    """
    if on_invalid not in ("raise", "skip"):
        raise ConfigError(f"on_invalid={on_invalid!r}: use 'raise' or 'skip'.")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r}: give a positive number of rows.")
    smiles_col = smiles
    source = Path(molecules)
    output = check_output(output, [source], suffixes=(".csv",), what="predictions")
    kind = molecule_format(source)
    sdf = kind == "sdf"
    if sdf:
        rows = _read_sdf(source, on_invalid)
        smiles_col = "smiles"  # written from each record's structure
        fields = list(rows[0])
        numbered = list(enumerate(rows, start=1))
        chunks: Iterator[list[tuple[int, dict]]] = iter(
            [numbered[k:k + chunk_size] for k in range(0, len(numbered), chunk_size)])
        total = len(rows)
    elif kind == "smi":
        fields, chunks = stream_smiles_file(source, chunk_size)
        total = _count_rows(source) + 1 if progress else 0
        smiles_col = "smiles"
    else:
        fields, chunks = stream_csv(source, smiles_col, chunk_size)
        total = _count_rows(source) if progress else 0
        smiles_col = smiles_column(source, fields, smiles_col)  # "SMILES" in the file for the default "smiles"
    net = load(model)
    has_std = hasattr(net, "forward_members") or getattr(core_module(net), "predicts_variance", False)
    if interval is not None and not getattr(net, "calibration_size", 0):
        raise ConfigError(f"--interval {interval}: model {model} holds no conformal calibration; drop "
                          "--interval (interval=), or use a shipped model or the model.ckpt of torchsci chem train.")
    n_out = _num_tasks(net)
    names = [column] if n_out == 1 else [f"{column}_{k}" for k in range(n_out)]
    extra_fields = names + ([f"{n}_std" for n in names] if has_std else [])
    if interval is not None:
        extra_fields += [f"{n}_{end}" for n in names for end in ("lower", "upper")]
    domain = bool(getattr(net, "domain_size", 0))
    extra_fields += (["nearest_similarity", "in_domain"] if domain else []) + [
        "standardized_smiles", "standardization", "flags", "judgeable", "invalid", *COLUMNS]

    def number(x: float) -> str:
        return "" if np.isnan(x) else f"{x:.4f}"

    from tqdm.auto import tqdm

    written = invalid_rows = 0
    unjudged: list[tuple[str, Applicability]] = []
    n_unjudged = 0
    bases: set[str] = set()
    bar = tqdm(total=total or None, desc="predict", unit="mol", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    with atomic_output(output, [source], what="predictions") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields + extra_fields)
        writer.writeheader()
        for part in chunks:
            part_smiles = [row.get(smiles_col) or "" for _, row in part]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                full = predict(part_smiles, net, details=True, interval=interval, on_invalid="skip",
                               n_jobs=n_jobs, standardize=standardize, batch_size=batch_size)
            bad = [(line, s, why) for (line, _), s, why in zip(part, part_smiles, full.invalid, strict=True) if why]
            if bad and on_invalid == "raise":
                shown = "; ".join(f"{'record' if sdf else 'line'} {ln} {s!r}: {why}" for ln, s, why in bad[:5])
                raise DataError(f"{source}: {len(bad)} invalid molecule(s) in this part of the file ({shown}); fix "
                                "them or pass --on-invalid skip (on_invalid='skip'; their rows are kept, with the "
                                "reason in 'invalid').")
            invalid_rows += len(bad)
            mean = full.value.reshape(len(part), -1)
            std = full.std.reshape(len(part), -1)
            lower, upper = full.lower.reshape(len(part), -1), full.upper.reshape(len(part), -1)
            judgeable = full.judgeable
            for i, (_, row) in enumerate(part):
                row = dict(row)
                for k, n in enumerate(names):
                    row[n] = number(mean[i, k])
                    if has_std:
                        row[f"{n}_std"] = number(std[i, k])
                    if interval is not None:
                        row[f"{n}_lower"], row[f"{n}_upper"] = number(lower[i, k]), number(upper[i, k])
                if domain:
                    row["nearest_similarity"] = number(full.similarity[i])
                    row["in_domain"] = str(bool(full.in_domain[i])).lower()
                row["standardized_smiles"] = full.standardized[i]
                row["standardization"] = "; ".join(full.changes[i])
                row["flags"] = " ".join(full.flags[i])
                row["judgeable"] = str(bool(judgeable[i])).lower()
                row["invalid"] = full.invalid[i]
                flag = full.applicability[i]
                writer.writerow({**row, **as_columns(flag)})
                if flag is not None and not flag.applicable:
                    n_unjudged += 1
                    bases.add(flag.basis)
                    if len(unjudged) < 3:
                        unjudged.append((part_smiles[i], flag))
            written += len(part)
            bar.update(len(part))
    bar.close()
    if n_unjudged:  # the core's one line, from the first few examples and the counts (not every row's flag)
        line = warning_line(str(source), _Summary(unjudged, n_unjudged, written, bases),
                            [smi for smi, _ in unjudged] + [""] * (3 - len(unjudged)))
        print(f"warning: {line}", file=sys.stderr)
    if invalid_rows:
        print(f"warning: {source}: {invalid_rows} row(s) could not be read as molecules; they are in the output with "
              "empty predictions and the reason in the 'invalid' column.", file=sys.stderr)
    print(f"wrote {written} predictions to {output}", file=sys.stderr)
    return output


def _cmd_predict(args: argparse.Namespace) -> int:
    predict_file(args.molecules, args.output, args.model, smiles=args.smiles, column=args.column, interval=args.interval,
                 n_jobs=args.jobs, chunk_size=args.chunk_size, on_invalid=args.on_invalid,
                 standardize=not args.no_standardize, progress=args.progress)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from torchsci.registry import registry
    from torchsci_chem.ensembles import calibrated_ensemble, evaluate_ensemble

    if args.members < 1:
        raise ConfigError(f"--members {args.members}: train at least one model.")
    smiles_columns = [args.smiles] if isinstance(args.smiles, str) else list(args.smiles)
    ensemble_ok = args.model == "chem/dmpnn" and len(smiles_columns) == 1
    if args.members > 1 and not ensemble_ok:
        raise ConfigError(f"--members {args.members}: ensembles are of chem/dmpnn models on one SMILES column; use "
                          "--model chem/dmpnn with one --smiles column, or --members 1.")
    standardize = () if args.no_standardize else tuple(args.standardize or DEFAULT_STANDARDIZE)
    data = registry.create_dataset("chem/csv", path=args.data, smiles=args.smiles, targets=args.target,
                                   split=args.split, seed=args.seed, on_invalid=args.on_invalid, task=args.kind,
                                   extra=args.extra, standardize=standardize)
    sizes = {part: len(getattr(data, part)) for part in ("train", "val", "test")}
    empty = [part for part, n in sizes.items() if n == 0]
    if empty:  # no validation molecules means no best checkpoint; no test molecules, no test score
        raise DataError(f"{args.data}: {sum(sizes.values())} usable molecules are too few for a {args.split} "
                        f"train/validation/test split ({', '.join(f'{k} {v}' for k, v in sizes.items())}); "
                        "give at least 10 molecules, more for a model worth using.")
    extra = {"uncertainty": args.uncertainty} if args.uncertainty else {}
    task = registry.create_task("chem/property", kind=args.kind)
    output = Path(args.output)
    runs = []
    for k in range(args.members):  # member k: initialisation and shuffling seed --seed + k, the same split
        seed = args.seed + k
        model = torchsci.create_model(args.model, seed=seed, **{"hidden": args.hidden, **extra, **data.model_kwargs})
        trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, scheduler="cosine",
                                   seed=seed, run_dir=output if args.members == 1 else output / f"member{k}",
                                   device=args.device)
        run = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
        print(json.dumps(trainer.test(run.model, task, data.test, collate_fn=data.collate_fn,
                                      ckpt_path=run.best_checkpoint)))
        runs.append(run)
    (output / "split.json").write_text(json.dumps(data.info))
    if not ensemble_ok:
        print(f"best checkpoint: {runs[0].best_checkpoint} (predict with: torchsci chem predict --model "
              f"{runs[0].best_checkpoint} molecules.csv -o predictions.csv)")
        return 0
    # The members as one model with what the shipped ones carry: intervals calibrated on the validation split
    # (single-target regression with 10+ measured validation molecules) and the applicability domain.
    measured = int(np.isfinite(np.asarray(data.val.targets, dtype=np.float64)).all(axis=1).sum())
    intervals = args.kind == "regression" and len(args.target) == 1 and measured >= 10
    members = [torchsci.load_model(run.best_checkpoint, field="chem") for run in runs]
    ensemble = calibrated_ensemble(members, data, intervals=intervals)
    path = torchsci.save_model(ensemble, output / "model.ckpt")
    figures = evaluate_ensemble(ensemble, data.test)
    threshold = float(ensemble.domain_threshold)
    card = {"model": str(path), "members": args.members, "checkpoints": [str(r.best_checkpoint) for r in runs],
            "standardize": list(standardize), "extra": args.extra, "split": args.split, "seed": args.seed,
            "calibration": f"validation split ({sizes['val']} molecules)" if intervals else None,
            "domain": {"training_molecules": sizes["train"], "threshold": threshold}, "test": figures}
    (output / "model.json").write_text(json.dumps(card, indent=1))
    line = (f"{'ensemble of ' + str(args.members) if args.members > 1 else 'model'} on the {figures['molecules']} "
            f"test molecules: {100 * figures['in_domain']:.0f}% in domain (nearest training similarity >= "
            f"{threshold:.2f})")
    if intervals:
        line += (f"; RMSE {figures['rmse']:.3f}, MAE {figures['mae']:.3f}; 90% intervals cover "
                 f"{figures['coverage']:.2f} (mean width {figures['mean_width']:.2f})")
    else:
        why = ("a classifier" if args.kind != "regression" else "several targets" if len(args.target) > 1
               else f"{measured} validation molecules with a target, fewer than 10")
        line += f"; no intervals ({why})"
    print(line)
    print(f"model: {path} (predict with: torchsci chem predict --model {path} molecules.csv -o predictions.csv"
          f"{' --interval 0.9' if intervals else ''})")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from torchsci_chem.attribution import draw_attributions

    weights = draw_attributions(args.smiles, args.output, args.model, args.task)
    print(f"wrote {args.output}; gradient x input per atom: {np.round(weights, 3).tolist()}", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """``torchsci chem predict``, ``torchsci chem train`` and ``torchsci chem explain``."""
    p = sub.add_parser("predict", help="predict properties for a CSV of SMILES or an SDF file")
    p.add_argument("molecules", help="CSV file with a SMILES column, an SDF file or a SMILES file (.smi: SMILES and "
                   "name per line); .gz versions are read directly")
    p.add_argument("-o", "--output", required=True, help="CSV to write: the input columns plus predictions")
    p.add_argument("--model", default="esol", help=f"shipped model ({', '.join(PRETRAINED)}) or a checkpoint")
    p.add_argument("--smiles", default="smiles", help="name of the SMILES column (matched up to case if the file "
                   "has no column of exactly this name)")
    p.add_argument("--column", default="prediction", help="name of the prediction column")
    p.add_argument("--on-invalid", default="raise", choices=["raise", "skip"])
    p.add_argument("--jobs", type=int, default=1,
                   help="processes at work (default 1); with N, N worker processes each parse, featurise and predict "
                        "their own blocks of molecules (Linux, CPU; elsewhere N-1 featurise while this one runs the "
                        "network); on two idle cores --jobs 2 took 13.3-13.5 s for 5,000 molecules with esol, --jobs 1 23.3 s (benchmarks/README.md)")
    p.add_argument("--chunk-size", type=int, default=10_000,
                   help="molecules read, predicted and written at a time (memory stays bounded by it)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                   help="a progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--interval", type=float, help="add calibrated prediction intervals of this coverage, e.g. 0.9")
    p.add_argument("--no-standardize", action="store_true", help="keep the molecules as given (no standardization)")
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("train", help="train a model on a CSV of SMILES and targets")
    p.add_argument("data", help="CSV file")
    p.add_argument("--smiles", default="smiles", nargs="+")
    p.add_argument("--target", required=True, nargs="+")
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.add_argument("--model", default="chem/dmpnn")
    p.add_argument("--task", "--kind", dest="kind", default="regression",
                   choices=["regression", "classification", "multiclass"],
                   help="regression; classification (0/1 labels per target column: ROC AUC, PR AUC); multiclass "
                        "(class numbers 0..C-1); empty cells are not measured and left out of loss and metrics")
    p.add_argument("--split", default="random", choices=["random", "scaffold", "kfold"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--uncertainty", choices=["mve"], help="also predict a variance (mean-variance estimation)")
    p.add_argument("--members", type=int, default=1,
                   help="D-MPNNs to train (seeds --seed, --seed + 1, ...) and average; their spread widens the "
                        "intervals where they disagree. With chem/dmpnn, OUTPUT/model.ckpt holds them with "
                        "intervals calibrated on the validation split and the applicability domain")
    p.add_argument("--extra", choices=list(EXTRA_KINDS),
                   help="per-molecule features beside the graph: rdkit2d-v1 (the shipped models' 138 named RDKit "
                        "descriptors), morgan, morgan_counts, descriptors (RDKit's whole, version-dependent list)")
    p.add_argument("--standardize", nargs="+", choices=list(STANDARDIZE_STEPS), metavar="STEP",
                   help=f"standardisation steps (default: {' '.join(DEFAULT_STANDARDIZE)}; drop no_stereo for a "
                        "property that depends on stereochemistry); one of " + ", ".join(STANDARDIZE_STEPS))
    p.add_argument("--no-standardize", action="store_true", help="train on the molecules as given")
    p.add_argument("--device", default="auto")
    p.add_argument("--on-invalid", default="raise", choices=["raise", "skip"])
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("explain", help="draw per-atom attributions of a prediction to a PNG")
    p.add_argument("smiles")
    p.add_argument("-o", "--output", required=True, help="PNG file")
    p.add_argument("--model", default="esol", help=f"shipped model ({', '.join(PRETRAINED)}) or a checkpoint")
    p.add_argument("--task", type=int, default=0, help="which output of a multi-task model")
    p.set_defaults(func=_cmd_explain)
