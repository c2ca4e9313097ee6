"""Generated data for the core's demo and tests: no files, no downloads, exactly reproducible."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from torchsci.data import DataSplits
from torchsci.errors import ConfigError
from torchsci.registry import registry


def damped_oscillator(n: int, seed: int) -> TensorDataset:
    """Displacement x(t) of an under-damped oscillator released from x=1 at rest.

    Inputs are ``(omega, zeta, t)``: natural frequency 1-5 rad/s, damping ratio 0.05-0.55, time 0-3 s;
    the target is ``x``.

    Examples
    --------
    >>> from torchsci.datasets import damped_oscillator
    >>> x, y = damped_oscillator(4, seed=0).tensors
    >>> tuple(x.shape), tuple(y.shape), bool((y.abs() <= 1).all())
    ((4, 3), (4, 1), True)
    """
    g = torch.Generator().manual_seed(seed)
    omega = 1 + 4 * torch.rand(n, generator=g)
    zeta = 0.05 + 0.5 * torch.rand(n, generator=g)
    t = 3 * torch.rand(n, generator=g)
    root = torch.sqrt(1 - zeta**2)
    x = torch.exp(-zeta * omega * t) * (torch.cos(omega * root * t) + zeta / root * torch.sin(omega * root * t))
    return TensorDataset(torch.stack([omega, zeta, t], 1), x[:, None])


@registry.register_dataset("core/oscillator")
def oscillator_splits(train_size: int = 8000, val_size: int = 1000, test_size: int = 1000, seed: int = 0) -> DataSplits:
    """``core/oscillator``: train/val/test sets of :func:`damped_oscillator` drawn with seeds seed, seed+1, seed+2."""
    for name, size, least in (("train_size", train_size, 1), ("val_size", val_size, 0), ("test_size", test_size, 0)):
        if not isinstance(size, int) or isinstance(size, bool) or size < least:
            raise ConfigError(f"data.{name}={size!r}: must be a whole number of examples, at least {least}.")
    return DataSplits(
        train=damped_oscillator(train_size, seed),
        val=damped_oscillator(val_size, seed + 1) if val_size else None,
        test=damped_oscillator(test_size, seed + 2) if test_size else None,
        model_kwargs={"in_features": 3, "out_features": 1},
        info={"inputs": ["omega [rad/s]", "zeta", "t [s]"], "target": "x"},
    )
