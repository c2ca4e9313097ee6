"""The device layer: the one place that turns a device string into a device and a precision policy.

``"auto" | "cpu" | "cuda" | "cuda:N" | "mps" | "xla"`` are resolved here; nothing else in the suite
calls ``.cuda()``. A :class:`Precision` policy gives the autocast context and, for float16, the
gradient scaler. :func:`move_to` moves any nested batch (dicts, lists, tuples, named tuples,
dataclasses, objects with a ``.to`` method such as :class:`torchsci.data.Padded`) to a device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from collections.abc import Mapping
from typing import Any

import torch

from torchsci.errors import ConfigError, DeviceError

PRECISIONS = ("32", "64", "bf16-mixed", "16-mixed")


def _xla_device() -> torch.device:
    if importlib.util.find_spec("torch_xla") is None:
        raise DeviceError(
            "device='xla' needs torch_xla, which is not installed. On a TPU VM: "
            "pip install 'torch_xla[tpu]' matching your torch version; otherwise use device='auto'."
        )
    import torch_xla.core.xla_model as xm  # lazy: optional dependency

    return xm.xla_device()


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Turn a device request into a :class:`torch.device` that exists on this machine.

    Parameters
    ----------
    device
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU. ``"cuda"`` means ``cuda:<local_rank>``
        (one GPU per process under ``torchrun``); ``"cuda:N"`` a given GPU; ``"xla"`` a TPU core
        through torch_xla.
    local_rank
        This process's rank on its machine, used by ``"auto"`` and ``"cuda"``.

    Examples
    --------
    >>> from torchsci.device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "xla":
        return _xla_device()
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(
                "device='mps' asked for, but Apple MPS is not available (it needs an Apple-silicon Mac and a "
                "macOS build of torch). Use device='auto' or 'cpu'."
            )
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={device!r} asked for, but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}). Install a CUDA build of torch on a machine with an "
                "NVIDIA GPU, or use device='auto' or 'cpu'."
            )
        index = local_rank if name == "cuda" else int(name.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered 0..{torch.cuda.device_count() - 1}."
            )
        return torch.device("cuda", index)
    raise ConfigError(f"device={device!r} is not understood; use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or 'xla'.")


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn a precision request into a :class:`Precision` name; ``"auto"`` is the hardware's native fast one.

    ``"auto"`` is ``"bf16-mixed"`` where the hardware computes bfloat16 natively (CPUs with AVX512-BF16 or
    AMX, CUDA GPUs with bf16) and ``"32"`` everywhere else; any other name is returned as it is. Inference
    verbs use it (``torchsci_neuro.segment(precision="auto")``); training keeps its explicit setting.

    Examples
    --------
    >>> import torch
    >>> from torchsci.device import resolve_precision
    >>> resolve_precision("32", torch.device("cpu")), resolve_precision("auto", torch.device("mps"))
    ('32', '32')
    """
    if precision != "auto":
        return precision
    if device.type == "cpu":
        # Private torch helpers (2.13): a torch without them falls back to float32 rather than failing.
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        native = any(check() for check in checks if check is not None)
        return "bf16-mixed" if native else "32"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32"


@dataclasses.dataclass
class Precision:
    """A precision policy: the parameter dtype, the autocast dtype (if any) and whether to scale gradients.

    ``"32"`` float32; ``"64"`` float64 parameters and inputs (numerics-heavy science); ``"bf16-mixed"``
    autocast to bfloat16; ``"16-mixed"`` autocast to float16 with a dynamic gradient scaler.
    """

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise ConfigError(f"precision={self.name!r} is not one of {', '.join(PRECISIONS)}.")
        if self.name == "16-mixed" and self.device.type not in ("cuda", "cpu", "mps", "xla"):
            raise DeviceError(f"precision='16-mixed' is not supported on {self.device}.")
        if self.name == "64" and self.device.type == "mps":
            raise DeviceError("precision='64' is not available on Apple MPS (no float64 there); use '32'.")

    @property
    def param_dtype(self) -> torch.dtype:
        return torch.float64 if self.name == "64" else torch.float32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context every forward pass runs in."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16 training, ``None`` otherwise."""
        if self.name != "16-mixed":
            return None
        return torch.amp.GradScaler(self.device.type)


def move_to(batch: Any, device: torch.device, dtype: torch.dtype | None = None, non_blocking: bool = False) -> Any:
    """Move every tensor inside ``batch`` to ``device``; floating tensors also to ``dtype`` when given.

    Handles tensors, mappings, lists, tuples and named tuples, dataclasses, and any object with a
    ``.to(device)`` method (padded tensors with masks); anything else is returned as it is.

    Examples
    --------
    >>> from torchsci.device import move_to
    >>> out = move_to({"x": torch.zeros(2), "ids": [torch.ones(1, dtype=torch.long)]}, torch.device("cpu"), torch.float64)
    >>> out["x"].dtype, out["ids"][0].dtype
    (torch.float64, torch.int64)
    """
    if isinstance(batch, torch.Tensor):
        if dtype is not None and batch.is_floating_point() and batch.dtype != dtype:
            return batch.to(device=device, dtype=dtype, non_blocking=non_blocking)
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        moved = {k: move_to(v, device, dtype, non_blocking) for k, v in batch.items()}
        return moved if type(batch) is dict else type(batch)(moved)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(v, device, dtype, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, dtype, non_blocking) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: move_to(getattr(batch, f.name), device, dtype, non_blocking)
                   for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    return batch
