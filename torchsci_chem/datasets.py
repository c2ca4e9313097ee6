"""Molecule datasets from CSV files of SMILES and SDF files, splits, and the registered ``chem/*`` datasets.

Reading checks everything up front: a missing file or column, a non-numeric target, an unparsable
SMILES is one :class:`torchsci.DataError` naming the file, the row and the column (or, with
``on_invalid="skip"``, invalid molecules are dropped and listed in ``MoleculeDataset.skipped``).
Empty target cells and ``nan`` become NaN, which :class:`torchsci_chem.task.PropertyTask` masks out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchsci.data import DataSplits
from torchsci.errors import ConfigError, DataError
from torchsci.io import read_csv, resolve_columns
from torchsci_chem.featurize import (
    GraphBatch,
    GraphCache,
    InvalidMolecule,
    MolGraph,
    collate_graphs,
    describe_invalid,
    featurize,
    molecule_features,
    mols_to_graphs,
    parse_smiles,
)

ESOL_TARGET = "measured log solubility in mols per litre"


class MoleculeDataset(Dataset):
    """Featurised molecules with targets ``(n, n_tasks)`` (NaN = not measured) and optional extra features.

    Items are ``(MolGraph, extra row or None, target row)``; :meth:`collate` batches them into
    ``(GraphBatch, targets)``.
    """

    def __init__(self, graphs: Sequence[MolGraph], smiles: Sequence[str], targets: np.ndarray | None = None,
                 target_names: Sequence[str] = (), extra: np.ndarray | None = None,
                 skipped: Sequence[InvalidMolecule] = ()) -> None:
        self.graphs, self.smiles = list(graphs), list(smiles)
        self.targets = np.full((len(self.graphs), 0), np.nan, np.float32) if targets is None else targets
        self.target_names = list(target_names)
        self.extra = extra
        self.extra_kind: str | None = None
        self.skipped = list(skipped)
        self.standardize: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> tuple[MolGraph, np.ndarray | None, np.ndarray]:
        return self.graphs[i], None if self.extra is None else self.extra[i], self.targets[i]

    def subset(self, indices: Sequence[int]) -> MoleculeDataset:
        idx = np.asarray(indices, dtype=np.int64)
        part = MoleculeDataset([self.graphs[i] for i in idx], [self.smiles[i] for i in idx], self.targets[idx],
                               self.target_names, None if self.extra is None else self.extra[idx])
        part.extra_kind, part.standardize = self.extra_kind, self.standardize
        return part

    @staticmethod
    def collate(items: Sequence[tuple]) -> tuple[GraphBatch, torch.Tensor]:
        extra = None if items[0][1] is None else np.stack([it[1] for it in items])
        targets = torch.from_numpy(np.stack([it[2] for it in items]).astype(np.float32))
        return collate_graphs([it[0] for it in items], extra), targets

    def add_extra(self, kind: str, standardize: Sequence[str] = ()) -> None:
        """Compute per-molecule extra features: ``"morgan"``, ``"morgan_counts"`` or ``"descriptors"``."""
        self.extra = molecule_features(self.smiles, kind, standardize)
        self.extra_kind = kind


def _number(value: str, path: Path, line: int, column: str) -> float:
    text = value.strip()
    if text == "" or text.lower() in ("nan", "na", "n/a"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}, column '{column}': target {value!r} is not a number; fix the "
                        "value, or leave the cell empty to mark it as not measured.") from None


class SmilesCSVDataset(MoleculeDataset):
    """A CSV file with one or more SMILES columns and zero or more numeric target columns.

    Several SMILES columns (e.g. solute and solvent) make one graph per row with one component per
    column. Row labels in error messages are the file's line numbers.

    Parameters
    ----------
    path
        The CSV file (header in the first line).
    smiles
        Name of the SMILES column, or several names.
    targets
        Target column name(s); empty cells and ``nan`` are "not measured".
    standardize, on_invalid, max_atoms, n_jobs, cache
        As for :func:`torchsci_chem.featurize.featurize`.
    extra
        Optional per-molecule features: ``"morgan"``, ``"morgan_counts"`` or ``"descriptors"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from torchsci_chem.datasets import SmilesCSVDataset
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_text("smiles,logS\\nCCO,0.5\\nc1ccccc1,\\n")
    >>> ds = SmilesCSVDataset(p, smiles="smiles", targets="logS")
    >>> len(ds), ds.targets[:, 0].tolist()
    (2, [0.5, nan])
    """

    def __init__(self, path: str | Path, smiles: str | Sequence[str] = "smiles",
                 targets: str | Sequence[str] | None = None, *, standardize: Sequence[str] = (),
                 on_invalid: str = "raise", max_atoms: int | None = 500, n_jobs: int = 1,
                 cache: GraphCache | None = None, extra: str | None = None) -> None:
        path = Path(path)
        smiles_cols = [smiles] if isinstance(smiles, str) else list(smiles)
        target_cols = [] if targets is None else [targets] if isinstance(targets, str) else list(targets)
        if not smiles_cols:
            raise ConfigError("SmilesCSVDataset needs at least one SMILES column (smiles=...).")
        header, records = read_csv(path)  # BOM, ';' and bad files handled there
        # each column by the header's own spelling, matched up to case if no column has exactly the name given
        resolved = resolve_columns(path, header, smiles_cols + target_cols)
        smiles_cols, target_cols = resolved[:len(smiles_cols)], resolved[len(smiles_cols):]
        lines = [reader_line + 2 for reader_line in range(len(records))]
        short = [ln for ln, r in zip(lines, records, strict=True) if any(r[c] is None for c in smiles_cols + target_cols)]
        if short:
            raise DataError(f"{path}: line(s) {short[:10]} have fewer fields than the header (a truncated file?).")
        y = np.array([[_number(r[c], path, ln, c) for c in target_cols] for ln, r in zip(lines, records, strict=True)],
                     dtype=np.float32).reshape(len(records), len(target_cols))
        keep = np.arange(len(records))
        per_column: list[list[MolGraph]] = []
        invalid: list[InvalidMolecule] = []
        for col in smiles_cols:
            column = [records[i][col] for i in keep]
            out = featurize(column, standardize=standardize, max_atoms=max_atoms, on_invalid="skip", n_jobs=n_jobs,
                            cache=cache, rows=[lines[i] for i in keep], source=f"{path}, column '{col}'")
            invalid += out.invalid
            per_column = [[g[k] for k in out.kept] for g in per_column] + [out.graphs]
            keep = keep[out.kept]
        if invalid and on_invalid == "raise":
            raise DataError(describe_invalid(invalid, str(path)) + "\nFix or remove these rows, or pass "
                            "on_invalid='skip' to drop them with this report.")
        if on_invalid not in ("raise", "skip"):
            raise ConfigError(f"on_invalid={on_invalid!r}: use 'raise' or 'skip'.")
        graphs = [MolGraph.merge(parts) for parts in zip(*per_column, strict=True)]
        names = [".".join(records[i][c] for c in smiles_cols) for i in keep]
        super().__init__(graphs, names, y[keep], target_cols, skipped=invalid)
        self.path, self.rows = path, [lines[i] for i in keep]
        self.standardize = tuple(standardize)
        if extra is not None:
            self.add_extra(extra, standardize)


class SDFDataset(MoleculeDataset):
    """Molecules of an SDF file with numeric targets from its properties (``> <name>`` fields).

    Records RDKit cannot read, or that lack a target property, are errors naming the record (1-based)
    unless ``on_invalid="skip"``; a missing property counts as "not measured" when ``missing="nan"``.
    """

    def __init__(self, path: str | Path, targets: str | Sequence[str] = (), *, standardize: Sequence[str] = (),
                 on_invalid: str = "raise", missing: str = "error", extra: str | None = None) -> None:
        from rdkit import Chem, RDLogger

        path = Path(path)
        target_cols = [targets] if isinstance(targets, str) else list(targets)
        if not path.is_file():
            raise DataError(f"{path}: no such file.")
        if not path.read_bytes().strip():
            raise DataError(f"{path}: the SDF file is empty; it holds no molecule records.")
        mols, y, names = [], [], []
        invalid: list[InvalidMolecule] = []
        RDLogger.DisableLog("rdApp.*")
        try:
            supplier = Chem.SDMolSupplier(str(path))
            for record, mol in enumerate(supplier, start=1):
                if mol is None:
                    invalid.append(InvalidMolecule(record, "", "RDKit cannot read or sanitise this record"))
                    continue
                row = []
                for c in target_cols:
                    if not mol.HasProp(c):
                        if missing != "nan":
                            raise DataError(f"{path}, record {record}: no property '{c}' (it has "
                                            f"{list(mol.GetPropNames())}); pass missing='nan' to treat it as not measured.")
                        row.append(math.nan)
                    else:
                        row.append(_number(mol.GetProp(c), path, record, c))
                smi = Chem.MolToSmiles(mol)
                if standardize:
                    mol = parse_smiles(smi, standardize)
                mols.append(mol)
                y.append(row)
                names.append(smi)
        finally:
            RDLogger.EnableLog("rdApp.*")
        if invalid and on_invalid != "skip":
            raise DataError(describe_invalid(invalid, str(path)).replace("row", "record")
                            + "\nFix these records or pass on_invalid='skip'.")
        if not mols:
            raise DataError(f"{path}: no readable molecules (is it an SDF file?).")
        targets_arr = np.array(y, dtype=np.float32).reshape(len(mols), len(target_cols))
        super().__init__(mols_to_graphs(mols), names, targets_arr, target_cols, skipped=invalid)
        self.standardize = tuple(standardize)
        if extra is not None:
            self.add_extra(extra, standardize)


# ------------------------------------------------------------------------------------------------ splits
def _sizes(n: int, sizes: Sequence[float]) -> tuple[int, int]:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or not math.isclose(sum(sizes), 1.0, abs_tol=1e-6):
        raise ConfigError(f"sizes={list(sizes)}: give three non-negative fractions (train, val, test) summing to 1.")
    n_train = int(round(sizes[0] * n))
    n_val = int(round(sizes[1] * n))
    return n_train, n_val


def random_split(n: int, sizes: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[np.ndarray, ...]:
    """Shuffled train/val/test indices, fixed by ``seed``.

    Examples
    --------
    >>> from torchsci_chem.datasets import random_split
    >>> [len(s) for s in random_split(10, seed=0)]
    [8, 1, 1]
    """
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = _sizes(n, sizes)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def bemis_murcko_scaffold(smiles: str) -> str:
    """The Bemis-Murcko scaffold SMILES of a molecule (``""`` for acyclic molecules)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return MurckoScaffold.MurckoScaffoldSmiles(mol=parse_smiles(smiles), includeChirality=False)


def scaffold_split(smiles: Sequence[str], sizes: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                   balanced: bool = True) -> tuple[np.ndarray, ...]:
    """Train/val/test indices with no Bemis-Murcko scaffold shared between splits.

    ``balanced=True`` (chemprop's "scaffold_balanced"): scaffold sets larger than half the validation
    size go to training first, the rest are placed in a seeded random order, so validation and test
    are not made only of singleton scaffolds. Otherwise sets are placed largest first.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[bemis_murcko_scaffold(s)].append(i)
    n_train, n_val = _sizes(len(smiles), sizes)
    n_test = len(smiles) - n_train - n_val
    sets = list(groups.values())
    if balanced:
        rng = np.random.default_rng(seed)
        big = [s for s in sets if len(s) > n_val / 2 or len(s) > n_test / 2]
        small = [s for s in sets if not (len(s) > n_val / 2 or len(s) > n_test / 2)]
        rng.shuffle(big)
        rng.shuffle(small)
        sets = big + small
    else:
        sets.sort(key=len, reverse=True)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for s in sets:
        if len(train) + len(s) <= n_train:
            train += s
        elif len(val) + len(s) <= n_val:
            val += s
        else:
            test += s
    return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64), np.array(test, dtype=np.int64)


def kfold_split(n: int, n_folds: int = 5, fold: int = 0, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Fold ``fold`` of a seeded ``n_folds``-fold split: test is that fold, val the next one, train the rest."""
    if n_folds < 3 or not 0 <= fold < n_folds:
        raise ConfigError(f"kfold: need n_folds >= 3 and 0 <= fold < n_folds, got n_folds={n_folds}, fold={fold}.")
    parts = np.array_split(np.random.default_rng(seed).permutation(n), n_folds)
    test, val = parts[fold], parts[(fold + 1) % n_folds]
    train = np.concatenate([p for k, p in enumerate(parts) if k not in (fold, (fold + 1) % n_folds)])
    return train, val, test


TASKS = ("regression", "classification", "multiclass")


def check_labels(dataset: MoleculeDataset, task: str = "regression") -> int:
    """Check the targets fit ``task`` and return the number of classes (0 for regression and binary tasks).

    ``"classification"``: every measured label is 0 or 1; ``"multiclass"``: every measured label is a
    whole number 0..C-1, with C >= 2 the largest label plus one. Anything else is one
    :class:`torchsci.DataError` naming the file, the column, the values found and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.datasets import MoleculeDataset, check_labels
    >>> data = MoleculeDataset([], [], np.array([[0.0], [2.0], [np.nan], [1.0]]), ["class"])
    >>> check_labels(data, "multiclass")
    3
    >>> check_labels(data, "classification")
    Traceback (most recent call last):
    ...
    torchsci.errors.DataError: <dataset>, column 'class': binary classification labels must be 0 or 1, found 3 values [0.0, 1.0, 2.0]; map them to 0/1, or train with --task multiclass (task='multiclass') for 3 classes.
    """
    if task not in TASKS:
        raise ConfigError(f"task={task!r}: use 'regression', 'classification' or 'multiclass'.")
    if task == "regression":
        return 0
    where = getattr(dataset, "path", "<dataset>")
    classes = 0
    for k, name in enumerate(dataset.target_names or [f"target {k}" for k in range(dataset.targets.shape[1])]):
        column = dataset.targets[:, k]
        values = np.unique(column[~np.isnan(column)]).tolist()
        if task == "classification" and not set(values) <= {0.0, 1.0}:
            hint = (f"train with --task multiclass (task='multiclass') for {len(values)} classes"
                    if all(v == int(v) and v >= 0 for v in values) and len(values) > 2 else "or regression")
            raise DataError(f"{where}, column '{name}': binary classification labels must be 0 or 1, found "
                            f"{len(values)} values {values[:10]}; map them to 0/1, or {hint}.")
        if task == "multiclass":
            if any(v != int(v) or v < 0 for v in values):
                raise DataError(f"{where}, column '{name}': multiclass labels must be class numbers 0, 1, 2, ...; "
                                f"found {values[:10]}; number the classes from 0.")
            classes = max(classes, int(max(values, default=0)) + 1)
        if len(values) < 2:
            raise DataError(f"{where}, column '{name}': only one class ({values}) among the measured labels; a "
                            "classifier needs examples of at least two classes.")
    return classes


def split_dataset(dataset: MoleculeDataset, split: str = "random", sizes: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0, n_folds: int = 5, fold: int = 0, task: str = "regression") -> DataSplits:
    """Split ``dataset`` and fit the target (and extra-feature) standardisation on the training part.

    The split indices, seed and sizes go to ``DataSplits.info`` (saved with the run); the
    standardisation goes to ``DataSplits.model_kwargs`` so the model carries it. For ``task``
    ``"classification"`` or ``"multiclass"`` the labels are checked (:func:`check_labels`), not
    standardised, and the model is told its kind (and number of classes).
    """
    num_classes = check_labels(dataset, task)
    if split == "random":
        parts = random_split(len(dataset), sizes, seed)
    elif split in ("scaffold", "scaffold_balanced"):
        parts = scaffold_split(dataset.smiles, sizes, seed, balanced=True)
    elif split == "kfold":
        parts = kfold_split(len(dataset), n_folds, fold, seed)
    else:
        raise ConfigError(f"split={split!r}: use 'random', 'scaffold' or 'kfold'.")
    train_idx = parts[0]
    y = dataset.targets[train_idx].astype(np.float64)
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(y, axis=0)) if y.size else np.zeros(y.shape[1])
        std = np.nan_to_num(np.nanstd(y, axis=0), nan=1.0) if y.size else np.ones(y.shape[1])
    std = np.where(std > 1e-8, std, 1.0)
    model_kwargs: dict[str, Any] = {"num_tasks": int(y.shape[1]), "target_mean": mean.tolist(),
                                    "target_std": std.tolist()}
    if task != "regression":  # logits: no target scaling
        width = int(y.shape[1]) * max(num_classes, 1)
        model_kwargs.update(num_tasks=width, target_mean=[0.0] * width, target_std=[1.0] * width, task_kind=task)
        if num_classes:
            model_kwargs["num_classes"] = num_classes
    if dataset.extra is not None:
        x = dataset.extra[train_idx].astype(np.float64)
        x_std = x.std(axis=0)
        model_kwargs.update(extra_features=int(x.shape[1]), extra_kind=dataset.extra_kind, extra_mean=x.mean(axis=0).tolist(),
                            extra_std=np.where(x_std > 1e-8, x_std, 1.0).tolist())
        from torchsci_chem.descriptors import DESCRIPTOR_SETS

        if dataset.extra_kind in DESCRIPTOR_SETS:  # the model records and checks its descriptor list
            import rdkit

            model_kwargs.update(descriptor_names=list(DESCRIPTOR_SETS[dataset.extra_kind]),
                                descriptor_rdkit=rdkit.__version__)
    if getattr(dataset, "standardize", ()):
        model_kwargs["standardize"] = list(dataset.standardize)
    info = {"split": split, "seed": seed, "sizes": list(sizes), "targets": dataset.target_names, "task": task,
            "indices": {k: v.tolist() for k, v in zip(("train", "val", "test"), parts, strict=True)},
            "skipped": [list(r) for r in dataset.skipped]}
    if split == "kfold":
        info.update(n_folds=n_folds, fold=fold)
    return DataSplits(dataset.subset(parts[0]), dataset.subset(parts[1]), dataset.subset(parts[2]),
                      MoleculeDataset.collate, model_kwargs, info)


def esol_path() -> Path:
    """The shipped ESOL CSV (Delaney 2004 via MoleculeNet; see ``torchsci_chem/data/README.md``)."""
    return Path(str(files("torchsci_chem").joinpath("data/ESOL.csv")))


def esol(split: str = "random", seed: int = 0, sizes: Sequence[float] = (0.8, 0.1, 0.1), extra: str | None = None,
         n_folds: int = 5, fold: int = 0, standardize: Sequence[str] = ()) -> DataSplits:
    """``chem/esol``: ESOL aqueous solubility (logS, mol/L), 1,128 molecules, split and standardised.

    ``standardize`` (steps of :mod:`torchsci_chem.standardize`) is applied to every molecule, and
    recorded in ``model_kwargs`` so the model applies the same steps when it predicts.
    """
    data = SmilesCSVDataset(esol_path(), smiles="smiles", targets=ESOL_TARGET, extra=extra,
                            standardize=tuple(standardize))
    return split_dataset(data, split, sizes, seed, n_folds, fold)


LIPO_TARGET = "exp"
FREESOLV_TARGET = "expt"


def data_path(name: str) -> Path:
    """A CSV shipped in ``torchsci_chem/data`` (provenance and licences in its ``README.md``)."""
    return Path(str(files("torchsci_chem").joinpath(f"data/{name}")))


def lipo(split: str = "scaffold", seed: int = 0, sizes: Sequence[float] = (0.8, 0.1, 0.1), extra: str | None = None,
         n_folds: int = 5, fold: int = 0, standardize: Sequence[str] = ()) -> DataSplits:
    """``chem/lipo``: Lipophilicity (octanol/water logD at pH 7.4, AstraZeneca via ChEMBL), 4,200 molecules.

    Scaffold-balanced split by default (the split the shipped ``lipo`` model was trained and reported on).
    """
    data = SmilesCSVDataset(data_path("Lipophilicity.csv"), smiles="smiles", targets=LIPO_TARGET, extra=extra,
                            standardize=tuple(standardize))
    return split_dataset(data, split, sizes, seed, n_folds, fold)


def freesolv(split: str = "scaffold", seed: int = 0, sizes: Sequence[float] = (0.8, 0.1, 0.1),
             extra: str | None = None, n_folds: int = 5, fold: int = 0, standardize: Sequence[str] = ()) -> DataSplits:
    """``chem/freesolv``: FreeSolv experimental hydration free energies (kcal/mol), 642 molecules.

    Scaffold-balanced split by default (the split the shipped ``freesolv`` model was trained and reported on).
    """
    data = SmilesCSVDataset(data_path("FreeSolv.csv"), smiles="smiles", targets=FREESOLV_TARGET, extra=extra,
                            standardize=tuple(standardize))
    return split_dataset(data, split, sizes, seed, n_folds, fold)


def csv_dataset(path: str, smiles: str | Sequence[str] = "smiles", targets: str | Sequence[str] = "target",
                split: str = "random", seed: int = 0, sizes: Sequence[float] = (0.8, 0.1, 0.1),
                extra: str | None = None, standardize: Sequence[str] = (), on_invalid: str = "raise",
                n_jobs: int = 1, n_folds: int = 5, fold: int = 0, task: str = "regression") -> DataSplits:
    """``chem/csv``: any CSV of SMILES and targets (paths relative to the working directory).

    ``task``: ``"regression"``, ``"classification"`` (labels 0/1, one column per binary task) or
    ``"multiclass"`` (class numbers 0..C-1); several target columns make a multitask model, and empty
    cells are "not measured", left out of the loss and the metrics (:func:`check_labels`).
    """
    data = SmilesCSVDataset(Path(path).expanduser().resolve(), smiles, targets, standardize=standardize,
                            on_invalid=on_invalid, n_jobs=n_jobs, extra=extra)
    return split_dataset(data, split, sizes, seed, n_folds, fold, task)


SOLUBLE_LOGS = -3.0
"""``chem/esol_soluble``: a molecule is "soluble" when logS >= -3 (1 mmol/L)."""


def esol_soluble(split: str = "scaffold", seed: int = 0, sizes: Sequence[float] = (0.8, 0.1, 0.1),
                 extra: str | None = None, standardize: Sequence[str] = ()) -> DataSplits:
    """``chem/esol_soluble``: binary classification, ESOL molecules labelled 1 when logS >= -3 (1 mmol/L).

    A small classification set from the shipped ESOL CSV (1,128 molecules, about half positive), for
    the classification experiment config (``experiment=chem/esol_soluble``) and tests.
    """
    data = SmilesCSVDataset(esol_path(), smiles="smiles", targets=ESOL_TARGET, extra=extra,
                            standardize=tuple(standardize))
    data.targets = (data.targets >= SOLUBLE_LOGS).astype(np.float32)
    data.target_names = [f"soluble (logS >= {SOLUBLE_LOGS:g})"]
    return split_dataset(data, split, sizes, seed, task="classification")


def register(registry) -> None:
    registry.register_dataset("chem/esol")(esol)
    registry.register_dataset("chem/csv")(csv_dataset)
    registry.register_dataset("chem/lipo")(lipo)
    registry.register_dataset("chem/esol_soluble")(esol_soluble)
    registry.register_dataset("chem/freesolv")(freesolv)
