"""The four artifact formats of :func:`torchsci.export`: their file suffixes, how each is written, and how a
file's format is told from its contents.

This is the writing layer: it turns a ``torch.export`` program (or, for TorchScript, the model itself) into
bytes on disk. Checking the file against eager is :mod:`torchsci.export_parity`'s job; running it is
:mod:`torchsci.export_load`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from torchsci.errors import ExportError

#: ``{format: file suffix}``, in the order the formats are offered.
FORMATS: dict[str, str] = {"pt2": ".pt2", "aoti": ".aoti.pt2", "onnx": ".onnx", "torchscript": ".torchscript.pt"}
#: The note (and ``DeprecationWarning``) every TorchScript export carries.
TORCHSCRIPT_DEPRECATION = ("TorchScript is deprecated in PyTorch 2.x (torch.jit.trace warns so); this artifact is "
                           "for stacks that still read it. Prefer format='pt2' (Python) or 'aoti' (C++).")
_ONNX_INPUTS_KEY = "torchsci.input_names"  # ONNX input names in the order of the flattened tensor inputs
_ONNX_OUT_SPEC_KEY = "torchsci.out_spec"   # the output pytree, so the loader returns what the model returned


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
