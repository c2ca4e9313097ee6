"""Random state: seeding, deterministic mode, and capturing every RNG stream a run depends on.

The Trainer owns all random state of a run. :func:`capture_rng` / :func:`restore_rng` cover python's
``random``, numpy's global generator and torch's CPU and accelerator generators, so a checkpoint holds
everything needed to continue a run bit for bit.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer.

    Examples
    --------
    >>> from torchsci.seed import seed_everything
    >>> seed_everything(0); a = torch.rand(1)
    >>> seed_everything(0); bool(torch.equal(a, torch.rand(1)))
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Make torch choose deterministic kernels (errors where an op has none) and disable cuDNN autotuning."""
    if enabled:
        # cuBLAS needs this workspace setting for deterministic matmuls; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, epoch, batch index, ...) that mixes all of them."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def capture_rng() -> dict[str, Any]:
    """Every global RNG stream as plain data (numpy arrays, ints, tuples) that a checkpoint can store.

    Numpy rather than tensors so the state also travels through ``torch.distributed`` object
    collectives, which gather every rank's streams into rank 0's checkpoint.
    """
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": np_state[1].copy(), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state().numpy(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.numpy() for s in torch.cuda.get_rng_state_all()]
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state().numpy()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(torch.as_tensor(state["mps"], dtype=torch.uint8))
