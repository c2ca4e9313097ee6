"""k-fold training with out-of-fold scores, written back as one friend tree per input tree.

An analysis that trains on its own simulation scores every event with a model that never saw it:
``data.folds: "event_number % 5"`` splits the entries into folds 0 .. k-1, :func:`train_folds` trains
k models through the ordinary config run (``data.fold=f`` makes fold ``f`` the test split and the
others the training split), then reads every input (file, tree) once and scores each entry with the
model of its fold. The output is one ROOT file per input tree, entry-aligned with it (entry ``i`` of
the friend is entry ``i`` of the input; entries outside the selection are scored too and flagged by
``selected``), holding ``score_<class>`` (``<obj>_score_<class>`` with objects; a regression model's
``pred_<target>``, in the target's units), ``fold`` and the
spec's ``observers``: unlike weaver's one file per fold with only the selected events, no merging.

    torchsci physics kfold experiment=physics/event_kfold
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from torchsci.errors import ConfigError


@dataclasses.dataclass
class FoldsResult:
    """What :func:`train_folds` made: one checkpoint and test metrics per fold, one friend tree per input."""

    checkpoints: list[str]
    test: list[dict[str, float]]
    friends: dict[str, str]

    def mean(self, metric: str = "test/auc") -> float:
        """The metric averaged over folds."""
        return float(np.mean([t[metric] for t in self.test]))


def _spec_fields(cfg: Any) -> dict[str, Any]:
    from torchsci.config import _plain

    data = dict(_plain(cfg.data))
    if data.get("name") != "physics/root":
        raise ConfigError(f"k-fold training reads the data's RootSpec: use data.name=physics/root (got "
                          f"{data.get('name')!r}).")
    for key in ("name", "streaming", "buffer_size", "seed"):
        data.pop(key, None)
    if not data.get("folds"):
        raise ConfigError("k-fold training needs data.folds: an expression giving each entry's fold, 0 .. k-1 (e.g. "
                          "'event_number % 5').")
    return data


def fold_values(spec: Any) -> list[np.ndarray]:
    """Each input (file, tree)'s fold per entry, in :meth:`RootSpec.sources` order."""
    from torchsci_physics import reading

    out = []
    for path, tree_name, _ in spec.sources():
        tree = reading.open_tree(path, tree_name)
        ns = reading.read_range(tree, reading.branches_for([spec.folds], reading.branch_names(tree), path), path,
                                0, tree.num_entries)
        out.append(reading.to_numpy(reading.evaluate(spec.folds, ns, path), f"folds={spec.folds!r}", path,
                                    tree.num_entries).astype(np.int64))
    return out


def train_folds(cfg: Any, output: str | os.PathLike | None = None) -> FoldsResult:
    """Train one model per fold of ``cfg.data.folds`` and write out-of-fold scores as friend trees.

    Parameters
    ----------
    cfg
        A composed config (``torchsci.compose([...])``) whose data is ``physics/root`` with ``folds``.
    output
        Folder for the fold runs (``fold0/``, ...) and the friend trees (default: ``cfg.run_dir`` or
        ``outputs/<name>_kfold``).

    Examples
    --------
    >>> import torchsci
    >>> from torchsci_physics.folds import train_folds
    >>> cfg = torchsci.compose(["experiment=physics/event_kfold", "trainer.max_epochs=1"])  # doctest: +SKIP
    >>> result = train_folds(cfg, "runs/kfold")  # doctest: +SKIP
    >>> sorted(result.friends)  # doctest: +SKIP
    """
    from omegaconf import OmegaConf

    import torchsci
    from torchsci_physics.in_memory import RootDataset
    from torchsci_physics.predict import write_friend_tree
    from torchsci_physics.regression import RegressionTask
    from torchsci_physics.spec import RootSpec
    from torchsci_physics.task import TaggingTask

    fields = _spec_fields(cfg)
    spec = RootSpec(**{**fields, "fold": None})
    folds = fold_values(spec)
    k = int(max(int(f.max()) for f in folds if len(f))) + 1
    bad = [int(f.min()) for f in folds if len(f) and f.min() < 0]
    if bad:
        raise ConfigError(f"data.folds={spec.folds!r} gives {bad[0]}; folds are 0 .. k-1.")
    out = Path(output or cfg.get("run_dir") or Path("outputs") / f"{cfg.name}_kfold")
    checkpoints, tests, models = [], [], []
    for f in range(k):
        fold_cfg = copy.deepcopy(cfg)
        OmegaConf.set_struct(fold_cfg, False)
        fold_cfg.data.fold = f
        fold_cfg.run_dir = str(out / f"fold{f}")
        result = torchsci.run(fold_cfg, "train")
        best = result.get("best_checkpoint") or result["last_checkpoint"]
        checkpoints.append(best)
        tests.append(result.get("test", {}))
        models.append(torchsci.load_model(best).eval())

    friends: dict[str, str] = {}
    input_spec = models[0].input_spec
    trainer = torchsci.Trainer(device="cpu", verbose=False, tensorboard=False, progress=False, run_dir=out / "predict")
    for (path, tree_name, _), fold in zip(spec.sources(), folds, strict=True):
        one = RootSpec(files=path, **{**input_spec, "tree": tree_name, "folds": spec.folds})
        arrays = RootDataset.read(one, with_targets=False, apply_selection=False)
        regression = one.target is not None  # each fold's model carries its own target scale
        scores = (np.zeros(len(arrays["entry"]), np.float64) if regression else
                  np.zeros((len(arrays["entry"]), len(one.classes or [])), np.float32))
        for f, model in enumerate(models):
            rows = np.flatnonzero(arrays["fold"] == f)
            if len(rows):
                data = RootDataset(one, arrays={key: v[rows] for key, v in arrays.items()})
                task = RegressionTask() if regression else TaggingTask()
                scores[rows] = trainer.predict(model, task, data).numpy()
        n = len(fold)
        branches: dict[str, np.ndarray] = {"fold": fold.astype(np.int32)}
        for j, name in enumerate(one.objects or [None]):
            rows = arrays["object"] == j
            prefix = f"{name}_" if name else ""
            if regression:
                column = np.full(n, np.nan, np.float64)
                column[arrays["entry"][rows]] = scores[rows]
                branches[f"{prefix}pred_{one.target_name()}"] = column
            for c, cls in enumerate([] if regression else one.classes or []):
                column = np.full(n, -1.0, np.float32)
                column[arrays["entry"][rows]] = scores[rows, c]
                branches[f"{prefix}score_{cls}"] = column
            if one.selection:
                selected = np.zeros(n, np.bool_)
                selected[arrays["entry"][rows]] = arrays["selected"][rows]
                branches[f"{prefix}selected"] = selected
        if one.observers:
            first = arrays["object"] == 0
            for c, name in enumerate(one.observer_map()):
                column = np.zeros(n, np.float64)
                column[arrays["entry"][first]] = arrays["observers"][first, c]
                branches[name] = column.astype(np.int64) if np.all(column == np.round(column)) else column
        target = out / f"{Path(path).stem}.{tree_name.replace('/', '_')}.scores.root"
        friends[f"{path}:{tree_name}"] = str(write_friend_tree(target, branches, "scores"))
    result = FoldsResult(checkpoints, tests, friends)
    (out / "kfold.json").write_text(json.dumps(dataclasses.asdict(result), indent=2, default=float) + "\n")
    return result


def _cmd_kfold(args: argparse.Namespace) -> int:
    import torchsci

    result = train_folds(torchsci.compose(args.overrides), args.output)
    metric = "test/auc" if all("test/auc" in t for t in result.test) else "test/rmse"
    print(f"{len(result.checkpoints)} folds, mean {metric} {result.mean(metric):.4f}")
    for source, friend in result.friends.items():
        print(f"{source} -> {friend} (tree 'scores')")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add the ``torchsci physics kfold`` command (``experiment=<name>`` and overrides, as ``torchsci train``)."""
    p = subparsers.add_parser("kfold", help="train one model per fold; out-of-fold scores as friend trees",
                              description="Train one model per fold of data.folds and write every entry's "
                                          "out-of-fold scores as one friend tree per input tree.")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. experiment=physics/event_kfold")
    p.add_argument("-o", "--output", default=None, help="output folder (default: run_dir or outputs/<name>_kfold)")
    p.set_defaults(func=_cmd_kfold)
