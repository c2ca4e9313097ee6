"""Predictions for new molecules: the one-call :func:`predict` and the ``torchsci chem`` commands.

``model`` is a shipped pretrained name (``"esol"``), a checkpoint written by the Trainer (rebuilt with
:func:`torchsci.load_model`), or a model object. Ensembles also give the spread of their members.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import torchsci
from torchsci.applicability import COLUMNS, as_columns, warning_line
from torchsci.errors import ConfigError, DataError
from torchsci.io import atomic_output, check_output, read_csv
from torchsci_chem.domain import applicability
from torchsci_chem.featurize import MolGraph, collate_graphs, describe_invalid, featurize, molecule_features

PRETRAINED = {"esol": ("chem/dmpnn_ensemble", "esol")}
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


def predict(smiles: str | Sequence[str], model: str | Path | nn.Module = "esol", *, return_std: bool = False,
            standardize: Sequence[str] = (), on_invalid: str = "raise", batch_size: int = 256,
            n_jobs: int = 1, return_applicability: bool = False) -> np.ndarray | tuple[Any, ...]:
    """Predict properties of molecules given as SMILES.

    Parameters
    ----------
    smiles
        The molecules; a single string is one molecule (its result still has a leading axis of length 1).
    model
        ``"esol"`` (aqueous solubility, log10 mol/L), a Trainer checkpoint path, or a model.
    return_std
        Also return the standard deviation across ensemble members (ensembles only; other models
        raise :class:`torchsci.ConfigError` because they have no uncertainty estimate).
    standardize, n_jobs
        As for :func:`torchsci_chem.featurize.featurize`.
    on_invalid
        ``"raise"`` (default): one error listing every invalid SMILES; ``"skip"``: NaN for those rows,
        with a warning that lists them.
    return_applicability
        Also return one :class:`torchsci.applicability.Applicability` per molecule (``None`` for an
        invalid one): whether the model can judge it (see :mod:`torchsci_chem.domain`). Without it,
        molecules the model cannot judge are reported in one warning.

    Returns
    -------
    Predictions ``(n,)`` for single-task models, ``(n, n_tasks)`` otherwise (and the std, same shape;
    and the list of judgements, last).

    Examples
    --------
    >>> import torchsci_chem
    >>> logS = torchsci_chem.predict(["CCO", "c1ccccc1O"], model="esol")
    >>> logS.shape, bool(logS[0] > logS[1])
    ((2,), True)
    >>> logS, flags = torchsci_chem.predict("[NH4+].[Cl-]", return_applicability=True)
    >>> logS.shape, flags[0].applicable, flags[0].reason
    ((1,), False, 'a salt or mixture (2 fragments)')
    """
    if isinstance(smiles, (str, bytes)):  # one molecule, not a sequence of one-character SMILES
        smiles = [smiles.decode() if isinstance(smiles, bytes) else smiles]
    net = load(model)
    members = getattr(net, "forward_members", None)
    mve = getattr(net, "predicts_variance", False)
    if return_std and members is None and not mve:
        raise ConfigError(f"{type(net).__name__} is a single model without a variance head: no uncertainty is "
                          "available; use an ensemble (model='esol') or a D-MPNN trained with uncertainty='mve'.")
    smiles = list(smiles)
    out = featurize(smiles, standardize=standardize, on_invalid=on_invalid, n_jobs=n_jobs)
    if out.invalid:
        warnings.warn(describe_invalid(out.invalid) + "\nTheir predictions are NaN.", stacklevel=2)
    means, stds = [], []
    for inputs in model_inputs(net, out.graphs, [smiles[i] for i in out.kept], standardize, batch_size):
        with torch.no_grad():
            if members is not None:
                each = members(*inputs)
                means.append(each.mean(0).cpu())
                stds.append(each.std(0, unbiased=False).cpu())
            elif mve:
                mean_part, variance = net(*inputs).chunk(2, dim=1)
                means.append(mean_part.cpu())
                stds.append(variance.sqrt().cpu())
            else:
                means.append(net(*inputs).cpu())
    n_tasks = _num_tasks(net)
    mean = np.full((len(smiles), n_tasks), np.nan)
    std = np.full((len(smiles), n_tasks), np.nan)
    if means:
        mean[out.kept] = torch.cat(means).double().numpy()
        if stds:
            std[out.kept] = torch.cat(stds).double().numpy()
    if n_tasks == 1:
        mean, std = mean[:, 0], std[:, 0]
    flags = applicability(smiles)
    line = None if return_applicability else warning_line("predict()", flags, smiles)
    if line:
        warnings.warn(line, stacklevel=2)
    return (*((mean, std) if return_std else (mean,)), flags) if return_applicability else \
        ((mean, std) if return_std else mean)


def core_module(net: nn.Module) -> nn.Module:
    """The module holding the data-dependent settings (the first member of an ensemble)."""
    return net.members[0] if hasattr(net, "members") else net


def _num_tasks(net: nn.Module) -> int:
    return int(core_module(net).target_mean.numel())


def model_inputs(net: nn.Module, graphs: Sequence[MolGraph], smiles: Sequence[str], standardize: Sequence[str] = (),
                 batch_size: int = 256) -> Iterator[tuple[torch.Tensor, ...]]:
    """Positional inputs of ``net`` for batches of molecules, with the extra features it was trained with."""
    core = core_module(net)
    extra = None
    if getattr(core, "extra_features", 0):
        kind = getattr(core, "extra_kind", None)
        if kind is None:
            raise ConfigError("this model takes per-molecule extra features of an unrecorded kind; build "
                              "GraphBatch.extra yourself and call the model.")
        extra = molecule_features(smiles, kind, standardize)
        if extra.shape[1] != core.extra_features:
            raise ConfigError(f"this model was trained with {core.extra_features} '{kind}' features, but this "
                              f"installation computes {extra.shape[1]} (a different RDKit version?); retrain it here.")
    parameter = next(net.parameters())
    for start in range(0, len(graphs), batch_size):
        part = None if extra is None else extra[start:start + batch_size]
        batch = torchsci.move_to(collate_graphs(graphs[start:start + batch_size], part), parameter.device,
                                 parameter.dtype)
        yield batch.inputs() if getattr(core, "takes_graph", True) else (batch.extra,)


def _read_molecules(path: Path, column: str, on_invalid: str) -> tuple[list[dict[str, str]], list[str]]:
    """Rows to copy into the output and their SMILES, from a CSV (``column``) or an SDF file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    if path.suffix.lower() in (".sdf", ".sd"):
        from rdkit import Chem, RDLogger  # noqa: PLC0415

        if not path.read_bytes().strip():
            raise DataError(f"{path}: the SDF file is empty; it holds no molecule records.")
        rows, smiles, unreadable = [], [], []
        RDLogger.DisableLog("rdApp.*")
        try:
            for record, mol in enumerate(Chem.SDMolSupplier(str(path)), start=1):
                if mol is None:
                    unreadable.append(record)
                smi = "" if mol is None else Chem.MolToSmiles(mol)
                props = {} if mol is None else {k: str(v) for k, v in mol.GetPropsAsDict().items()}
                rows.append({"record": str(record), "smiles": smi, **props})
                smiles.append(smi)
        finally:
            RDLogger.EnableLog("rdApp.*")
        if unreadable and on_invalid == "raise":
            raise DataError(f"{path}: RDKit cannot read or sanitise record(s) {unreadable[:20]}; fix them or pass "
                            "--on-invalid skip (their predictions are left empty).")
        if not rows:
            raise DataError(f"{path}: no records (is it an SDF file?).")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        return [{k: r.get(k, "") for k in keys} for r in rows], smiles
    header, rows = read_csv(path)  # BOM, ';' delimiters, binary and non-UTF-8 files handled there
    if column not in header:
        raise DataError(f"{path}: no column '{column}' (header: {header}); pass --smiles NAME.")
    return [{k: v or "" for k, v in r.items()} for r in rows], [r[column] or "" for r in rows]


def _cmd_predict(args: argparse.Namespace) -> int:
    source = Path(args.molecules)
    output = check_output(args.output, [source], suffixes=(".csv",), what="predictions")
    rows, smiles = _read_molecules(source, args.smiles, args.on_invalid)
    net = load(args.model)
    has_std = hasattr(net, "forward_members") or getattr(net, "predicts_variance", False)
    *result, flags = predict(smiles, net, return_std=has_std, on_invalid=args.on_invalid, n_jobs=args.jobs,
                             return_applicability=True)
    mean, std = result if has_std else (result[0], None)
    mean = mean.reshape(len(rows), -1)
    names = [args.column] if mean.shape[1] == 1 else [f"{args.column}_{k}" for k in range(mean.shape[1])]
    fields = list(rows[0]) if rows else [args.smiles]
    extra_fields = names + ([f"{n}_std" for n in names] if std is not None else []) + list(COLUMNS)
    with atomic_output(output, [source], what="predictions") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields + extra_fields)
        writer.writeheader()
        for i, row in enumerate(rows):
            row = dict(row)
            for k, n in enumerate(names):
                row[n] = "" if np.isnan(mean[i, k]) else f"{mean[i, k]:.4f}"
                if std is not None:
                    s = std.reshape(len(rows), -1)[i, k]
                    row[f"{n}_std"] = "" if np.isnan(s) else f"{s:.4f}"
            writer.writerow({**row, **as_columns(flags[i])})
    line = warning_line(str(source), flags, smiles)
    if line:
        print(f"warning: {line}", file=sys.stderr)
    print(f"wrote {len(rows)} predictions to {output}", file=sys.stderr)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from torchsci.registry import registry  # noqa: PLC0415

    data = registry.create_dataset("chem/csv", path=args.data, smiles=args.smiles, targets=args.target,
                                   split=args.split, seed=args.seed, on_invalid=args.on_invalid)
    sizes = {part: len(getattr(data, part)) for part in ("train", "val", "test")}
    empty = [part for part, n in sizes.items() if n == 0]
    if empty:  # no validation molecules means no best checkpoint; no test molecules, no test score
        raise DataError(f"{args.data}: {sum(sizes.values())} usable molecules are too few for a {args.split} "
                        f"train/validation/test split ({', '.join(f'{k} {v}' for k, v in sizes.items())}); "
                        "give at least 10 molecules, more for a model worth using.")
    extra = {"uncertainty": args.uncertainty} if args.uncertainty else {}
    model = torchsci.create_model(args.model, **{"hidden": args.hidden, **extra, **data.model_kwargs})
    task = registry.create_task("chem/property", kind=args.kind)
    trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, scheduler="cosine",
                               seed=args.seed, run_dir=args.output, device=args.device)
    run = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
    test = trainer.test(run.model, task, data.test, collate_fn=data.collate_fn, ckpt_path=run.best_checkpoint)
    import json  # noqa: PLC0415

    (Path(args.output) / "split.json").write_text(json.dumps(data.info))
    print(json.dumps(test))
    print(f"best checkpoint: {run.best_checkpoint} (predict with: torchsci chem predict --model "
          f"{run.best_checkpoint} molecules.csv -o predictions.csv)")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from torchsci_chem.attribution import draw_attributions  # noqa: PLC0415

    weights = draw_attributions(args.smiles, args.output, args.model, args.task)
    print(f"wrote {args.output}; gradient x input per atom: {np.round(weights, 3).tolist()}", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """``torchsci chem predict``, ``torchsci chem train`` and ``torchsci chem explain``."""
    p = sub.add_parser("predict", help="predict properties for a CSV of SMILES or an SDF file")
    p.add_argument("molecules", help="CSV file with a SMILES column, or an SDF file")
    p.add_argument("-o", "--output", required=True, help="CSV to write: the input columns plus predictions")
    p.add_argument("--model", default="esol", help=f"shipped model ({', '.join(PRETRAINED)}) or a checkpoint")
    p.add_argument("--smiles", default="smiles", help="name of the SMILES column")
    p.add_argument("--column", default="prediction", help="name of the prediction column")
    p.add_argument("--on-invalid", default="raise", choices=["raise", "skip"])
    p.add_argument("--jobs", type=int, default=1, help="featurisation processes")
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("train", help="train a model on a CSV of SMILES and targets")
    p.add_argument("data", help="CSV file")
    p.add_argument("--smiles", default="smiles", nargs="+")
    p.add_argument("--target", required=True, nargs="+")
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.add_argument("--model", default="chem/dmpnn")
    p.add_argument("--kind", default="regression", choices=["regression", "classification"])
    p.add_argument("--split", default="random", choices=["random", "scaffold", "kfold"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--uncertainty", choices=["mve"], help="also predict a variance (mean-variance estimation)")
    p.add_argument("--device", default="auto")
    p.add_argument("--on-invalid", default="raise", choices=["raise", "skip"])
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("explain", help="draw per-atom attributions of a prediction to a PNG")
    p.add_argument("smiles")
    p.add_argument("-o", "--output", required=True, help="PNG file")
    p.add_argument("--model", default="esol", help=f"shipped model ({', '.join(PRETRAINED)}) or a checkpoint")
    p.add_argument("--task", type=int, default=0, help="which output of a multi-task model")
    p.set_defaults(func=_cmd_explain)
