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
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import sys
import tempfile
import time
import types
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from torchsci.errors import ExportError

FORMATS: dict[str, str] = {"pt2": ".pt2", "aoti": ".aoti.pt2", "onnx": ".onnx", "torchscript": ".torchscript.pt"}
TORCHSCRIPT_DEPRECATION = ("TorchScript is deprecated in PyTorch 2.x (torch.jit.trace warns so); this artifact is "
                           "for stacks that still read it. Prefer format='pt2' (Python) or 'aoti' (C++).")
_ONNX_INPUTS_KEY = "torchsci.input_names"  # ONNX input names in the order of the flattened tensor inputs
_ONNX_OUT_SPEC_KEY = "torchsci.out_spec"   # the output pytree, so the loader returns what the model returned


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


# ------------------------------------------------------------------------------------------- inputs
def _tensor_leaves(obj: Any) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _shapes(inputs: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in _tensor_leaves(inputs)]


def _pick_first_dim(inputs: tuple, indices: list[int]) -> tuple:
    idx = torch.tensor(indices)
    return pytree.tree_map(lambda t: t.index_select(0, idx) if isinstance(t, torch.Tensor) else t, inputs)


def _double(t: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``t`` tiled twice along each of ``dims``: values stay valid (masks stay masks, indices stay in range)."""
    for d in dims:
        t = torch.cat([t, t], dim=d)
    return t


def _auto_dynamic(inputs: tuple) -> Any:
    auto = torch.export.Dim.AUTO
    return pytree.tree_map(lambda t: {i: auto for i in range(t.dim())} if isinstance(t, torch.Tensor) else None,
                           inputs)


def _dynamic_dims(program: Any, inputs: tuple) -> list[list[int]]:
    """For each tensor input (flattened), the dimensions ``program`` kept dynamic."""
    user = set(program.graph_signature.user_inputs)
    metas = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    leaves = pytree.tree_leaves(inputs)
    if len(metas) != len(leaves):
        return [[] for _ in _tensor_leaves(inputs)]
    from torch.fx.experimental.symbolic_shapes import is_concrete_int  # lazy: pulls in sympy: ~1 s
    return [[d for d, size in enumerate(meta.shape) if not is_concrete_int(size)]
            for leaf, meta in zip(leaves, metas, strict=True) if isinstance(leaf, torch.Tensor)]


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


def _variants(inputs: tuple, items: int, dynamic: list[list[int]], batch_of: Callable | None,
              batch_dynamic: bool) -> list[tuple[str, tuple]]:
    """Fresh inputs of other shapes than the example, built from its own items (so they stay valid)."""
    pick = batch_of or _pick_first_dim
    if items < 2:
        return []
    if not batch_dynamic:
        return [("items in reverse order", pick(inputs, list(reversed(range(items)))))]
    found = [(f"batch of {items + 1}", pick(inputs, [*range(items), 0]))]
    pair = pick(inputs, [1, 0])
    skip_first = batch_of is None  # dim 0 is the batch, already varied above
    grow = [[d for d in dims if not (skip_first and d == 0)] for dims in dynamic]
    if any(grow):
        it = iter(grow)
        pair = pytree.tree_map(lambda t: _double(t, next(it)) if isinstance(t, torch.Tensor) else t, pair)
        found.append(("2 items, other dynamic dims doubled", pair))
    else:
        found.append(("2 items in reverse order", pair))
    return found


# ------------------------------------------------------------------------------------------- writers
@contextlib.contextmanager
def _quiet() -> Any:
    """Silence exporter chatter that is not about the user's model (missing torchvision ops, internal deprecations)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _write_onnx(program: Any, inputs: tuple, path: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401 (the dynamo exporter needs it)
    except ImportError as exc:
        raise ExportError(f"export format 'onnx' needs onnx and onnxscript ({exc}); "
                          "pip install 'torchsci[export]'.") from exc
    # optimize=False: with torch 2.13 the exporter's graph optimiser deletes additions of small constants
    # (``x * x + 1e-8`` exports as ``x * x``), turning guarded divisions into 0/0. ONNX Runtime optimises
    # the graph itself when it loads it. Pinned by tests/core/test_export.py::test_onnx_keeps_small_epsilons.
    onnx_program = torch.onnx.export(program, inputs, dynamo=True, verbose=False, optimize=False)
    onnx_program.save(str(path))
    proto = onnx.load(str(path))
    names = list(program.graph_signature.user_inputs)
    meta = {_ONNX_INPUTS_KEY: json.dumps(names)}
    with contextlib.suppress(Exception):  # an output type pytree cannot serialise: the loader returns a tuple
        meta[_ONNX_OUT_SPEC_KEY] = pytree.treespec_dumps(program.call_spec.out_spec)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def _write(fmt: str, model: nn.Module, inputs: tuple, program: Any, path: Path) -> None:
    if fmt == "pt2":
        torch.export.save(program, str(path))
    elif fmt == "aoti":
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    elif fmt == "onnx":
        _write_onnx(program, inputs, path)
    else:
        traced = torch.jit.trace(model, inputs, check_trace=False)
        torch.jit.save(traced, str(path))


# ------------------------------------------------------------------------------------------- loading
def _format_of(path: Path) -> str:
    if path.suffix == ".onnx":
        return "onnx"
    if not zipfile.is_zipfile(path):
        raise ExportError(f"{path} is not a torchsci export artifact (neither .onnx nor a pt2/TorchScript archive).")
    names = zipfile.ZipFile(path).namelist()
    if any("/data/aotinductor/" in n for n in names):
        return "aoti"
    if any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("/models/model.json") or n.endswith("/archive_format") for n in names):
        return "pt2"
    raise ExportError(f"{path} is a zip archive but not a pt2, AOTInductor or TorchScript artifact.")


class _OnnxRunner:
    """Runs an ONNX file with ONNX Runtime, taking and returning torch tensors like the model did."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError(f"running {path} needs onnxruntime; pip install 'torchsci[export]'.") from exc
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        present = [i.name for i in self.session.get_inputs()]
        self.input_names = json.loads(meta[_ONNX_INPUTS_KEY]) if _ONNX_INPUTS_KEY in meta else present
        self.present = set(present)
        self.out_spec = pytree.treespec_loads(meta[_ONNX_OUT_SPEC_KEY]) if _ONNX_OUT_SPEC_KEY in meta else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if len(leaves) != len(self.input_names):
            raise ExportError(f"this ONNX model takes {len(self.input_names)} tensor inputs, got {len(leaves)}.")
        # inputs the graph does not use were dropped by the exporter
        feed = {name: t.detach().cpu().contiguous().numpy()
                for name, t in zip(self.input_names, leaves, strict=True) if name in self.present}
        outs = [torch.from_numpy(a) for a in self.session.run(None, feed)]
        if self.out_spec is not None:
            return pytree.tree_unflatten(outs, self.out_spec)
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_exported(path: str | Path) -> Callable[..., Any]:
    """Load an artifact written by :func:`export` as a callable; the model's source code is not needed.

    The format is read from the file itself (ONNX, AOTInductor package, ``torch.export`` program or
    TorchScript). Inputs and outputs are torch tensors, nested as the original model took and returned them.

    .. warning::
       Loading an artifact is running a program. An AOTInductor package is compiled native code that is
       loaded into this process and executed; ``torch.export`` and TorchScript files are read with
       PyTorch's pickle-based loaders. Load only files you built or trust, as you would run only programs
       you trust. (An ONNX file is a graph run by onnxruntime; checkpoints, by contrast, are plain data:
       see :func:`torchsci.load_model`.)

    Examples
    --------
    >>> import tempfile, torch, torchsci
    >>> model = torch.nn.Linear(4, 2)
    >>> result = torchsci.export(model, (torch.randn(3, 4),), format="pt2", path=tempfile.mkdtemp())
    >>> run = torchsci.load_exported(result.path)
    >>> tuple(run(torch.randn(5, 4)).shape)
    (5, 2)
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such export artifact.")
    fmt = _format_of(path)
    with _quiet():
        if fmt == "onnx":
            return _OnnxRunner(path)
        if fmt == "aoti":
            return torch._inductor.aoti_load_package(str(path))
        if fmt == "torchscript":
            return torch.jit.load(str(path))
        return torch.export.load(str(path)).module()


# ------------------------------------------------------------------------------------------- parity
def _diffs(got: Any, want: Any) -> tuple[float, float, bool, str]:
    """(max abs diff, max rel diff, structure ok, why not)."""
    g, w = _tensor_leaves(got), _tensor_leaves(want)
    if len(g) != len(w):
        return float("inf"), float("inf"), False, f"{len(g)} outputs instead of {len(w)}"
    worst_abs = worst_rel = 0.0
    for a, b in zip(g, w, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            return float("inf"), float("inf"), False, f"an output of shape {tuple(a.shape)} instead of {tuple(b.shape)}"
        if not b.numel():
            continue
        a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
        if not torch.equal(torch.isnan(a64), torch.isnan(b64)):
            return float("nan"), float("nan"), True, "NaN where eager has a number (or the reverse)"
        diff = float((a64 - b64).nan_to_num(0.0).abs().max())
        scale = float(b64.nan_to_num(0.0).abs().max())
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf")))
    return worst_abs, worst_rel, True, ""


def _close(got: Any, want: Any, atol: float, rtol: float) -> bool:
    return all(torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), atol=atol, rtol=rtol)
               for a, b in zip(_tensor_leaves(got), _tensor_leaves(want), strict=True))


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


# ------------------------------------------------------------------------------------------- inference
def optimize_for_inference(model: nn.Module, example_inputs: tuple) -> Callable[..., Any]:
    """Compile ``model`` for inference with inductor and weight freezing; return the compiled callable.

    Freezing folds the weights into the compiled graph as constants (conv-batchnorm folding, weight
    prepacking for oneDNN), which on CPU is where most of inductor's inference speed-up comes from. The
    callable runs without gradients; later changes to ``model``'s weights are not seen by it. The first
    call (made here on ``example_inputs``) compiles; new shapes compile once more.

    Examples
    --------
    >>> import torch, torchsci
    >>> fast = torchsci.export.optimize_for_inference(torch.nn.Linear(4, 2), (torch.randn(3, 4),))  # doctest: +SKIP
    """
    import torch._inductor.config as inductor_config

    model = model.eval()
    # Inductor reads freezing from its global config while compiling, which may happen at any call with
    # a new shape, so every call patches it. Passing it also as an option gives this compilation a backend
    # of its own: otherwise dynamo would reuse a graph this model already compiled without freezing.
    compiled = torch.compile(model, backend="inductor", options={"freezing": True})

    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return compiled(*args, **kwargs)

    run(*example_inputs)
    return run


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
