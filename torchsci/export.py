"""Export a trained model to a file that runs without its Python source, and prove it still agrees with eager.

``torchsci.export(model, example_inputs, format=...)`` (this module is callable) writes one of:

- ``"pt2"``: a :func:`torch.export` ``ExportedProgram`` (``torch.export.load`` reads it back);
- ``"aoti"``: an AOTInductor package, compiled C++ that a C++ program loads with
  ``torch::inductor::AOTIModelPackageLoader`` (see ``examples/cpp/``);
- ``"onnx"``: ONNX through the dynamo-based exporter only. The legacy TorchScript-based exporter
  (``dynamo=False``) silently computes ``index_add_``/``scatter_add_`` with duplicate destination indices
  wrongly (message passing, pooling by segment), so torchsci never calls it;
- ``"torchscript"``: ``torch.jit.trace``, kept for deployment stacks that still read TorchScript. PyTorch
  deprecates TorchScript; prefer ``pt2`` or ``aoti``.

Every export is verified: the artifact is loaded back from disk and run on fresh inputs whose shapes
differ from the example (one item more in the batch; two items with every other dynamic dimension
doubled), and compared with eager. The report carries the largest absolute and relative difference; a
mismatch raises :class:`~torchsci.errors.ExportError` naming the format and the difference.
:func:`load_exported` runs any of the four artifacts in a process that never imports the model's code.

This module is the verb and its report; the layers under it are modules of their own:
:mod:`torchsci.export_formats` (suffixes, writers, telling a file's format), :mod:`torchsci.export_parity`
(the inputs of other shapes, the differences from eager) and :mod:`torchsci.export_load`
(:func:`load_exported`). :func:`optimize_for_inference` (:mod:`torchsci.export_inference`) compiles a
model for this process instead of writing a file. Every name stays reachable as ``torchsci.export.<name>``.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from torchsci.errors import ExportError
from torchsci.export_formats import FORMATS, TORCHSCRIPT_DEPRECATION, _quiet, _write

# re-exported: torchsci.export.optimize_for_inference is its public name
from torchsci.export_inference import optimize_for_inference as optimize_for_inference
from torchsci.export_load import load_exported
from torchsci.export_parity import _close, _diffs, _dynamic_dims, _shapes, _tensor_leaves, _variants


@dataclasses.dataclass
class ExportReport:
    """What was exported and how closely the artifact, read back from disk, agrees with eager.

    ``max_rel_diff`` is the largest absolute difference divided by the largest eager magnitude of the
    same output (a per-output scale, so values near zero do not make it explode).
    """

    format: str
    path: Path
    example_shapes: list[tuple[int, ...]]
    dynamic_dims: list[str]
    checked_shapes: list[list[tuple[int, ...]]]
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    rtol: float
    export_seconds: float
    size_bytes: int
    notes: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        checked = "; ".join(", ".join("x".join(map(str, s)) for s in shapes) for shapes in self.checked_shapes)
        lines = [f"{self.format} -> {self.path} ({self.size_bytes / 1e6:.2f} MB, {self.export_seconds:.1f} s)",
                 f"  dynamic dims: {', '.join(self.dynamic_dims) or 'none'}",
                 f"  parity on shapes [{checked}]: max abs diff {self.max_abs_diff:.3g}, "
                 f"max rel diff {self.max_rel_diff:.3g} (atol {self.atol:g}, rtol {self.rtol:g})"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


@dataclasses.dataclass
class ExportResult:
    """The artifact's path and its :class:`ExportReport`."""

    path: Path
    report: ExportReport


# ------------------------------------------------------------------------------------------- the verb
def _auto_dynamic(inputs: tuple) -> Any:
    auto = torch.export.Dim.AUTO
    return pytree.tree_map(lambda t: {i: auto for i in range(t.dim())} if isinstance(t, torch.Tensor) else None,
                           inputs)


def _count_items(example_inputs: tuple, outputs: Any, batch_of: Callable | None, dynamic: Any) -> int:
    """The number of items in the example; with ``dynamic=True`` refuse 1, which would pin the batch dimension."""
    leaves = _tensor_leaves(example_inputs) if batch_of is None else _tensor_leaves(outputs)
    if not leaves or leaves[0].dim() == 0:
        return 0
    items = int(leaves[0].shape[0])
    if items == 1 and dynamic is True:
        raise ExportError(
            "export: the example inputs hold a batch of 1, which torch.export specialises to a constant, so the "
            "artifact would only ever accept one item; use a batch of at least 2 (3 or another odd number is best).")
    return items


def _default_path(fmt: str, path: str | Path | None, model: nn.Module) -> Path:
    name = getattr(model, "torchsci_spec", {}).get("name", type(model).__name__.lower()).replace("/", "-")
    if path is None:
        return Path(tempfile.mkdtemp(prefix="torchsci-export-")) / f"{name}{FORMATS[fmt]}"
    path = Path(path)
    if path.is_dir() or not path.suffix:  # a folder, existing or to be made
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{name}{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _refuse_unsupported_quantization(model: nn.Module, fmt: str) -> None:
    """A model from :func:`torchsci.quantize` goes only to the formats known to take it (and pass parity)."""
    mode = getattr(model, "torchsci_quantization", None)
    if mode is None:
        return
    from torchsci.quantization import EXPORT_SUPPORT

    if fmt not in EXPORT_SUPPORT[mode]:
        raise ExportError(
            f"export format {fmt!r} does not accept an int8 {mode!r}-quantised model with this PyTorch "
            f"({torch.__version__}); use format={' or '.join(repr(f) for f in EXPORT_SUPPORT[mode])}, or quantise "
            f"with mode='weight_only' (which {', '.join(EXPORT_SUPPORT['weight_only'])} accept).")


def export(
    model: nn.Module,
    example_inputs: tuple,
    format: str = "pt2",  # noqa: A002 (the natural name of the choice)
    path: str | Path | None = None,
    *,
    dynamic: bool | Any = True,
    batch_of: Callable[[tuple, list[int]], tuple] | None = None,
    check_inputs: Sequence[tuple] = (),
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> ExportResult:
    """Export ``model`` to ``format`` at ``path``, load the file back and check it against eager.

    Parameters
    ----------
    model
        The module to export; it runs in eval mode during export (its mode is restored afterwards).
    example_inputs
        Positional inputs for one batch of at least 2 items: a batch of 1 would be frozen into the
        artifact, so it is refused.
    format
        ``"pt2"``, ``"aoti"``, ``"onnx"`` or ``"torchscript"`` (deprecated by PyTorch; see module docs).
    path
        A file, or a folder (existing, or a new path without a suffix) to write ``<model name><suffix>``
        into; default: a new temporary folder.
    dynamic
        ``True``: every dimension of every tensor input may vary (``torch.export.Dim.AUTO``), and the
        exporter keeps dynamic what the model allows (batch, spatial dims, atoms, bonds, particles).
        ``False``: all shapes fixed. Anything else is passed to ``torch.export`` as ``dynamic_shapes``.
    batch_of
        ``batch_of(inputs, indices)`` picks items when inputs are not stacked along dimension 0
        (graphs, padded sets), as in :func:`torchsci.testing.check_model`.
    check_inputs
        More input tuples to check parity on, besides those derived from the example.
    atol, rtol
        Parity tolerance (``torch.allclose``) of every output.

    Returns
    -------
    ExportResult
        ``path`` and ``report`` (:class:`ExportReport`: dynamic dims, checked shapes, max abs/rel diff).

    Raises
    ------
    ExportError
        The example has a batch of 1, the exporter failed, the artifact disagrees with eager, or the
        model was quantised (:func:`torchsci.quantize`) in a mode this format cannot take.

    Examples
    --------
    >>> import tempfile, torch, torchsci
    >>> model = torchsci.create_model("core/mlp", in_features=5)
    >>> result = torchsci.export(model, (torch.randn(3, 5),), format="pt2", path=tempfile.mkdtemp())
    >>> result.path.name, result.report.dynamic_dims
    ('core-mlp.pt2', ['input 0 dim 0'])
    >>> result.report.max_abs_diff < 1e-5
    True
    """
    if format not in FORMATS:
        raise ExportError(f"export format={format!r}: choose one of {', '.join(FORMATS)}.")
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"export: example_inputs must be a tuple of positional inputs, got {type(example_inputs).__name__}.")
    _refuse_unsupported_quantization(model, format)
    target = _default_path(format, path, model)
    was_training = model.training
    model.eval()
    try:
        try:
            with torch.no_grad():
                expected = model(*example_inputs)
        except Exception as exc:
            raise ExportError(f"export: {type(model).__name__} fails on the example inputs of shape "
                              f"{_shapes(example_inputs)} ({type(exc).__name__}: {exc}); pass inputs it accepts "
                              "(on the command line: --example-shape).") from exc
        items = _count_items(example_inputs, expected, batch_of, dynamic)
        notes: list[str] = []
        if format == "torchscript":
            notes.append(TORCHSCRIPT_DEPRECATION)
            warnings.warn(TORCHSCRIPT_DEPRECATION, DeprecationWarning, stacklevel=2)
        start = time.perf_counter()
        program = None
        shapes = _auto_dynamic(example_inputs) if dynamic is True else (None if dynamic is False else dynamic)
        try:
            with _quiet():
                try:
                    program = torch.export.export(model, example_inputs, dynamic_shapes=shapes)
                except Exception:
                    if format != "torchscript":
                        raise
                    notes.append("torch.export failed on this model; parity checked on batch sizes only")
                _write(format, model, example_inputs, program, target)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"{format} export of {type(model).__name__} failed: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - start

        dyn = _dynamic_dims(program, example_inputs) if program is not None else \
            [[0] if dynamic is not False else [] for _ in _tensor_leaves(example_inputs)]
        batch_dynamic = items >= 2 and dynamic is not False
        candidates = _variants(example_inputs, items, dyn, batch_of, batch_dynamic)
        candidates += [(f"check_inputs[{i}]", x) for i, x in enumerate(check_inputs)]
        loaded = load_exported(target)
        worst_abs = worst_rel = 0.0
        checked: list[list[tuple[int, ...]]] = []
        for label, inputs in candidates:
            try:
                with torch.no_grad():
                    want = model(*inputs)
                    if program is not None and format != "torchscript" and not label.startswith("check_inputs"):
                        program.module()(*inputs)  # the program's shape guards accept these (a pinned batch does not)
            except Exception as exc:  # a derived shape this model or its guards do not allow
                notes.append(f"inputs '{label}' not checked: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            with torch.no_grad(), _quiet():
                try:
                    got = loaded(*inputs)
                except Exception as exc:
                    raise ExportError(f"the {format} artifact {target} failed on inputs of shape {_shapes(inputs)} "
                                      f"({label}): {type(exc).__name__}: {exc}") from exc
            d_abs, d_rel, same, why = _diffs(got, want)
            if not same or not _close(got, want, atol, rtol):
                raise ExportError(
                    f"the {format} artifact {target} differs from eager on inputs of shape {_shapes(inputs)} "
                    f"({label}): {why or f'max abs diff {d_abs:.3g}, max rel diff {d_rel:.3g}'} "
                    f"(atol {atol:g}, rtol {rtol:g}).")
            worst_abs, worst_rel = max(worst_abs, d_abs), max(worst_rel, d_rel)
            checked.append(_shapes(inputs))
        if not checked:
            raise ExportError(f"the {format} artifact {target} could not be checked on any inputs of other shapes: "
                              + "; ".join(notes[-2:]) + ". Pass check_inputs=[...].")
    finally:
        model.train(was_training)
    report = ExportReport(
        format=format, path=target, example_shapes=_shapes(example_inputs),
        dynamic_dims=[f"input {i} dim {d}" for i, dims in enumerate(dyn) for d in dims],
        checked_shapes=checked, max_abs_diff=worst_abs, max_rel_diff=worst_rel, atol=atol, rtol=rtol,
        export_seconds=seconds, size_bytes=target.stat().st_size, notes=notes)
    return ExportResult(target, report)


def __getattr__(name: str) -> Any:
    # the command line moved to torchsci.cli; the old import keeps working for a while
    if name == "add_export_command":
        from torchsci.cli import add_export_command  # lazy: cli imports this module

        warnings.warn("torchsci.export.add_export_command moved to torchsci.cli.add_export_command.",
                      DeprecationWarning, stacklevel=2)
        return add_export_command
    raise AttributeError(f"module 'torchsci.export' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``torchsci.export(...)`` is the verb; ``torchsci.export.load_exported`` and friends live beside it."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        return export(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # inspect.signature(torchsci.export): the verb's own
        return inspect.signature(export)


sys.modules[__name__].__class__ = _CallableModule
