"""Run a trained model at 8 bits on the CPU: :func:`quantize` and the accuracy report that comes with it.

The work is done by `torchao <https://github.com/pytorch/ao>`_, PyTorch's maintained quantisation
library (``pip install 'torchsci[quantize]'``). The older ``torch.ao.quantization.quantize_dynamic``
still runs in torch 2.13 but warns that it is deprecated and slated for removal, its quantised modules
cannot be traced by ``torch.export``, and its packed weights are of a tensor type PyTorch is retiring;
torchao's int8 tensors are ordinary tensor subclasses that ``torch.export`` understands.

Modes (torchao quantises the ``nn.Linear`` layers; convolutions stay in float32):

- ``"dynamic"``: int8 weights, and activations quantised to int8 per token at run time, so the matrix
  products run in int8 (``Int8DynamicActivationInt8WeightConfig``);
- ``"weight_only"``: int8 weights, dequantised on the fly; activations stay float
  (``Int8WeightOnlyConfig``). Smaller file, float arithmetic, usually the more accurate of the two.

Which export formats take a quantised model (measured with torch 2.13, torchao 0.18, onnxscript 0.7) is
in :data:`EXPORT_SUPPORT`; :func:`torchsci.export` refuses the others with an ``ExportError``.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from torchsci.errors import ConfigError

MODES = ("dynamic", "weight_only")

#: ``{mode: formats whose artifact passes torchsci.export's parity check}``; the rest are refused.
EXPORT_SUPPORT: dict[str, tuple[str, ...]] = {
    "dynamic": ("pt2", "aoti"),  # ONNX has no conversion for torchao's int8 matmul; TorchScript's tracer crashes
    "weight_only": ("pt2", "aoti", "onnx", "torchscript"),
}


@dataclasses.dataclass
class QuantizationReport:
    """How the quantised model differs from the float one on the caller's data.

    ``relative_error`` is ``||quantised - float|| / ||float||`` over every output element;
    ``max_abs_diff`` the largest elementwise difference. ``metrics`` maps each task metric to its
    ``(float, quantised)`` values. Sizes are those of the serialised ``state_dict``.
    """

    mode: str
    quantized_layers: list[str]
    max_abs_diff: float
    relative_error: float
    metrics: dict[str, tuple[float, float]]
    float_bytes: int
    quantized_bytes: int
    batches: int

    def __str__(self) -> str:
        lines = [f"int8 {self.mode}: {len(self.quantized_layers)} linear layers, state_dict "
                 f"{self.float_bytes / 1e3:.1f} kB -> {self.quantized_bytes / 1e3:.1f} kB",
                 f"  on {self.batches} batch(es): max abs diff {self.max_abs_diff:.3g}, "
                 f"relative error {self.relative_error:.3g}"]
        lines += [f"  {name}: float {f:.4g}, int8 {q:.4g}" for name, (f, q) in self.metrics.items()]
        return "\n".join(lines)


def is_quantized(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is one of torchao's quantised tensor types (told apart without importing torchao)."""
    return type(tensor).__module__.startswith("torchao.")


def _state_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _config(mode: str) -> Any:
    # torchao logs a warning for each optional CUDA kernel library it cannot load on a CPU-only machine
    ao_log = logging.getLogger("torchao")
    level = ao_log.level
    ao_log.setLevel(logging.ERROR)
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    except ImportError as exc:
        raise ConfigError(f"torchsci.quantize needs torchao ({exc}); pip install 'torchsci[quantize]'.") from exc
    finally:
        ao_log.setLevel(level)
    return Int8DynamicActivationInt8WeightConfig() if mode == "dynamic" else Int8WeightOnlyConfig()


def _batches(data: Any, task: Any) -> list[Any]:
    if task is None and isinstance(data, tuple):
        return [data]  # one batch of positional inputs
    batches = list(data) if isinstance(data, Iterable) else []
    if not batches:
        raise ConfigError("torchsci.quantize: data holds no batches; pass a tuple of model inputs, a list of them, "
                          "or (with task=) batches as the task reads them (a list or a DataLoader).")
    return batches


def _run(model: nn.Module, batch: Any, task: Any) -> Any:
    if task is not None:
        return task.forward(model, batch)
    return model(*batch) if isinstance(batch, tuple) else model(batch)


def quantize(model: nn.Module, data: Any, mode: str = "dynamic", *, task: Any = None) -> tuple[nn.Module, QuantizationReport]:
    """Quantise ``model``'s linear layers to int8 for CPU inference and measure what it costs in accuracy.

    Parameters
    ----------
    model
        A trained float model; it is not modified (a quantised copy is returned, in eval mode).
    data
        What to compare the two models on: a tuple of positional inputs (one batch), a list of such
        tuples, or, with ``task``, batches as the task reads them (a list or a DataLoader).
    mode
        ``"dynamic"`` (int8 weights and activations) or ``"weight_only"`` (int8 weights); see the module
        documentation.
    task
        A :class:`torchsci.Task`: its ``forward`` runs the models and its metrics are reported for both.

    Returns
    -------
    tuple
        The quantised model and a :class:`QuantizationReport`.

    Raises
    ------
    ConfigError
        An unknown mode, no batches, no ``nn.Linear`` layer to quantise, or torchao not installed.

    Examples
    --------
    >>> import torch, torchsci
    >>> model = torchsci.create_model("core/mlp", in_features=16, hidden=[64])
    >>> int8, report = torchsci.quantize(model, (torch.randn(32, 16),), mode="weight_only")
    >>> report.quantized_layers, report.relative_error < 0.05
    (['net.0', 'net.2'], True)
    >>> report.quantized_bytes < report.float_bytes
    True
    """
    if mode not in MODES:
        raise ConfigError(f"torchsci.quantize: mode={mode!r}; choose one of {', '.join(MODES)}.")
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ConfigError(f"torchsci.quantize: {type(model).__name__} has no nn.Linear layer; torchao's int8 CPU "
                          "modes quantise linear layers only (convolutions stay float).")
    batches = _batches(data, task)
    config = _config(mode)
    from torchao.quantization import quantize_  # lazy: imported, quietly, by _config

    reference = copy.deepcopy(model).float().eval()
    quantized = copy.deepcopy(reference)
    quantize_(quantized, config)
    quantized.torchsci_quantization = mode  # torchsci.export reads it to refuse formats that cannot take it
    linear = [name for name, m in quantized.named_modules() if isinstance(m, nn.Linear) and is_quantized(m.weight)]

    metric_sets = (task.metrics(), task.metrics()) if task is not None else ({}, {})
    worst = 0.0
    err2 = ref2 = 0.0
    with torch.no_grad():
        for batch in batches:
            outputs = [_run(m, batch, task) for m in (reference, quantized)]
            for want, got in zip(*(pytree.tree_leaves(o) for o in outputs), strict=True):
                if isinstance(want, torch.Tensor) and want.is_floating_point() and want.numel():
                    diff = (got.double() - want.double())
                    worst = max(worst, float(diff.abs().max()))
                    err2 += float(diff.square().sum())
                    ref2 += float(want.double().square().sum())
            if task is not None:
                for metrics, out in zip(metric_sets, outputs, strict=True):
                    task.update_metrics(metrics, out, batch)
    names = metric_sets[0].keys()
    report = QuantizationReport(
        mode=mode, quantized_layers=linear, max_abs_diff=worst,
        relative_error=(err2 / ref2) ** 0.5 if ref2 > 0 else float(err2 > 0),
        metrics={n: (metric_sets[0][n].compute(), metric_sets[1][n].compute()) for n in names},
        float_bytes=_state_bytes(reference), quantized_bytes=_state_bytes(quantized), batches=len(batches))
    return quantized, report
