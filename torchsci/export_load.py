"""Running an artifact written by :func:`torchsci.export`: :func:`load_exported`.

The loading layer: the file's format is read from its contents (:mod:`torchsci.export_formats`), and the
artifact comes back as a callable that takes and returns torch tensors, in a process that never imports
the model's code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from torchsci.errors import ExportError
from torchsci.export_formats import _ONNX_INPUTS_KEY, _ONNX_OUT_SPEC_KEY, _format_of, _quiet


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
    """Load an artifact written by :func:`torchsci.export` as a callable; the model's code is not needed.

    The format is read from the file itself (ONNX, AOTInductor package, ``torch.export`` program or
    TorchScript). Inputs and outputs are torch tensors, nested as the original model took and returned them.

    Parameters
    ----------
    path
        The artifact: a ``.onnx`` file, or a pt2, AOTInductor or TorchScript archive.

    Returns
    -------
    Callable
        Runs the exported model: called with the model's positional inputs, returns its outputs.

    Raises
    ------
    ExportError
        ``path`` does not exist or is not one of the four artifacts, or ONNX Runtime is missing for an
        ONNX file.

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
