"""Scores back to ROOT: a TTree entry-aligned with the input, to read as a friend tree.

Prediction ignores the training selection and reads every entry, so entry ``i`` of the output
belongs to entry ``i`` of the input; ``{obj}_selected`` records whether an example passed the
selection. Files without the branches the selection reads (data, or simulation without truth
labels) are scored with ``selection=False`` (``--no-selection``): no ``{obj}_selected`` branch. Scores are named ``{obj}_score_{class}`` (``score_{class}`` without objects); a regression model's
predictions ``{obj}_pred_{target}`` (in the target's units, NaN where an entry has no such object). The output is
written with ``mktree`` + ``extend``: a TTree, which every ROOT version reads (uproot >= 5.7 writes
RNTuple for ``file[name] = arrays``).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from torchsci.deprecation import renamed_arguments
from torchsci.errors import ConfigError, DataError
from torchsci.io import atomic_output, check_output


def write_friend_tree(path: str | os.PathLike, branches: Mapping[str, np.ndarray], tree: str = "scores",
                      inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write equal-length flat ``branches`` as TTree ``tree`` of a new ROOT file ``path``.

    The file is written to a temporary name and renamed, and never over one of ``inputs`` (the ROOT
    files the branches were computed from): the friend tree goes to a file of its own.

    Examples
    --------
    >>> import tempfile, os, numpy as np, uproot
    >>> from torchsci_physics.predict import write_friend_tree
    >>> out = write_friend_tree(os.path.join(tempfile.mkdtemp(), "s.root"), {"score": np.array([0.1, 0.9])})
    >>> uproot.open(out)["scores"].arrays(library="np")["score"].tolist()
    [0.1, 0.9]
    """
    import uproot

    lengths = {k: len(v) for k, v in branches.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"friend-tree branches differ in length: {lengths}; they must have one value per entry.")
    arrays = {k: np.ascontiguousarray(v) for k, v in branches.items()}
    with atomic_output(path, inputs, suffixes=(".root",), what="friend tree") as tmp, uproot.recreate(tmp) as f:
        f.mktree(tree, {k: v.dtype for k, v in arrays.items()})
        f[tree].extend(arrays)
    return Path(path)


def predict(model: nn.Module, files: str | os.PathLike, *, observers: Sequence[str] = (), batch_size: int = 1024,
            device: str = "auto", progress: bool = False, selection: bool = True) -> dict[str, np.ndarray]:
    """Score every entry of the ROOT file ``files`` with ``model``: arrays, one value per entry.

    ``model`` must carry the ``input_spec`` it was trained with (models built from a dataset's
    ``model_kwargs`` do, and :func:`torchsci.load_model` restores it), so the same features,
    particles and standardisation are applied. Scores are ``{obj}_score_{class}`` (``-1`` where an entry
    has no such object), ``{obj}_selected`` says whether an example passed the training selection
    (``selection=False`` does not evaluate it, for files that lack the branches it reads, such as truth
    labels), and ``observers`` are input branches or expressions copied alongside.
    :func:`predict_root` writes the same arrays as a friend tree.

    Examples
    --------
    >>> import torchsci, torchsci_physics  # doctest: +SKIP
    >>> model = torchsci.load_model("run/checkpoints/best.ckpt")  # doctest: +SKIP
    >>> scores = torchsci_physics.predict(model, "events.root")  # doctest: +SKIP
    >>> scores["jet1_score_gluon"].shape  # doctest: +SKIP
    (13607,)
    """
    from torchsci import Trainer
    from torchsci_physics import reading
    from torchsci_physics.in_memory import RootDataset
    from torchsci_physics.regression import RegressionTask
    from torchsci_physics.spec import RootSpec
    from torchsci_physics.task import TaggingTask

    spec_kwargs = getattr(model, "input_spec", None)
    if not spec_kwargs:
        raise ConfigError(f"{type(model).__name__} has no input_spec: it was not built from a physics dataset's "
                          "model_kwargs, so it is unknown how to read the ROOT file. Build it with "
                          "create_model(name, **splits.model_kwargs).")
    # the training observers and folds need not exist in the file scored (data); observers= says what to copy
    spec_kwargs = {**spec_kwargs, "selection": spec_kwargs.get("selection") if selection else None,
                   "observers": {}, "folds": None}
    input_path = files
    spec = RootSpec(files=str(input_path), **spec_kwargs)
    tree = reading.open_tree(str(input_path), spec.tree)
    if spec.selection:
        try:
            reading.branches_for([reading.substitute(spec.selection, o) for o in spec.objects or [None]],
                                 reading.branch_names(tree), str(input_path))
        except DataError as exc:
            raise DataError(f"{exc} This is the training selection {spec.selection!r} saved with the model; to score "
                            "every entry without it (e.g. a file without truth branches), pass --no-selection "
                            "(Python: predict_root(..., selection=False)).") from exc
    arrays = RootDataset.read(spec, with_targets=False, apply_selection=False)
    data = RootDataset(spec, arrays=arrays)
    trainer = Trainer(device=device, eval_batch_size=batch_size, batch_size=batch_size, verbose=False,
                      tensorboard=False, progress=progress, run_dir=tempfile.gettempdir())
    regression = spec.target is not None
    task = RegressionTask() if regression else TaggingTask()
    scores = trainer.predict(model, task, data).numpy()
    n = tree.num_entries
    branches: dict[str, np.ndarray] = {}
    entry, obj = arrays["entry"], arrays["object"]
    for k, name in enumerate(spec.objects or [None]):
        rows = obj == k
        prefix = f"{name}_" if name else ""
        if regression:  # {obj}_pred_{target}, in the target's units; NaN where an entry has no such object
            column = np.full(n, np.nan, np.float64)
            column[entry[rows]] = scores[rows]
            branches[f"{prefix}pred_{spec.target_name()}"] = column
        for c, cls in enumerate([] if regression else spec.classes or []):
            column = np.full(n, -1.0, np.float32)
            column[entry[rows]] = scores[rows, c]
            branches[f"{prefix}score_{cls}"] = column
        if spec.selection:
            selected = np.zeros(n, np.bool_)
            selected[entry[rows]] = arrays["selected"][rows]
            branches[f"{prefix}selected"] = selected
    if observers:
        read = reading.read_range(tree, reading.branches_for(observers, reading.branch_names(tree), str(input_path)),
                                  str(input_path))
        for name in observers:
            branches[name] = reading.to_numpy(reading.evaluate(name, read, str(input_path)),
                                              f"observer {name!r}", str(input_path), n, np.float64)
            if np.all(branches[name] == np.round(branches[name])):
                branches[name] = branches[name].astype(np.int64)
    return branches


@renamed_arguments(input_path="files")
def predict_root(model: nn.Module, files: str | os.PathLike, output: str | os.PathLike, *,
                 observers: Sequence[str] = (), tree_name: str = "scores", batch_size: int = 1024,
                 device: str = "auto", progress: bool = False, selection: bool = True) -> Path:
    """Run ``model`` on every entry of ``files`` and write :func:`predict`'s arrays to ``output``.

    The output is a TTree ``tree_name``, entry-aligned with the input, to read as a friend tree.
    (``files`` was called ``input_path``; that name still works, with a ``DeprecationWarning``.)
    """
    check_output(output, [files], suffixes=(".root",), what="friend tree")  # before minutes of scoring
    branches = predict(model, files, observers=observers, batch_size=batch_size, device=device,
                       progress=progress, selection=selection)
    return write_friend_tree(output, branches, tree_name, inputs=[files])


def _cmd_predict(args: argparse.Namespace) -> int:
    import torchsci

    check_output(args.output, [args.input, args.checkpoint], suffixes=(".root",), what="friend tree")
    model = torchsci.load_model(args.checkpoint, field="physics")
    out = predict_root(model, args.input, args.output, observers=args.observers, tree_name=args.tree,
                       batch_size=args.batch_size, device=args.device, selection=not args.no_selection)
    print(f"wrote {out} (tree '{args.tree}')")
    return 0


def add_commands(subparsers: Any) -> None:
    """``torchsci physics predict model.ckpt input.root -o scores.root``."""
    p = subparsers.add_parser("predict", help="score every entry of a ROOT file; write a friend tree",
                              description="Score every entry of a ROOT file with a trained tagger and write the "
                                          "scores (and observer branches) as a TTree entry-aligned with the input.")
    p.add_argument("checkpoint", help="a checkpoint written by torchsci.Trainer (best.ckpt, last.ckpt)")
    p.add_argument("input", help="input ROOT file (same tree and branches as in training)")
    p.add_argument("-o", "--output", required=True, help="output ROOT file")
    p.add_argument("--observers", nargs="*", default=[], help="input branches (or expressions) to copy")
    p.add_argument("--tree", default="scores", help="name of the output TTree (default: scores)")
    p.add_argument("--no-selection", action="store_true",
                   help="do not evaluate the training selection (for files without the branches it reads, e.g. "
                        "truth labels); no <obj>_selected branch is written")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_predict)


class _CallableModule(types.ModuleType):
    """``torchsci_physics.predict(model, files)`` is the verb; ``predict_root`` and friends live beside it."""

    def __call__(self, model: nn.Module, files: str | os.PathLike, **kwargs: Any) -> dict[str, np.ndarray]:
        return predict(model, files, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # inspect.signature(torchsci_physics.predict): the verb's own
        return inspect.signature(predict)


sys.modules[__name__].__class__ = _CallableModule
