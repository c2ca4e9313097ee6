"""ROC curves and score distributions as PNG files (matplotlib; the mplhep style when it is installed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchsci_physics.metrics import roc_auc, roc_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        import mplhep

        plt.style.use(mplhep.style.ROOT)
    except ImportError:
        pass
    return plt


def _save(plt: Any, fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG (creating the folder; atomically, through :func:`torchsci.io.atomic_output`) and free it."""
    from torchsci.io import atomic_output

    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_output(path, what="plot") as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], path: str | os.PathLike,
             signal: int = 1, signal_name: str = "signal", background_name: str = "background") -> Path:
    """Background rejection vs signal efficiency for each ``{label: (labels, scores, weights)}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (labels, scores, weights) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores, weights, signal)
        keep = fpr > 0
        ax.plot(tpr[keep], 1 / fpr[keep], label=f"{name} (AUC {roc_auc(labels, scores, weights, signal):.3f})")
    ax.set_yscale("log")
    ax.set_xlabel(f"{signal_name} efficiency")
    ax.set_ylabel(f"{background_name} rejection (1 / efficiency)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_scores(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None, path: str | os.PathLike,
                class_names: Sequence[str] = ("background", "signal"), signal: int = 1, bins: int = 40) -> Path:
    """Normalised, weighted distributions of the ``signal`` score for each true class."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    s = np.asarray(scores)[:, signal]
    w = np.ones(len(s)) if weights is None else np.asarray(weights)
    for c, name in enumerate(class_names):
        rows = np.asarray(labels) == c
        ax.hist(s[rows], bins=bins, range=(0, 1), weights=w[rows], density=True, histtype="step", lw=1.5,
                label=f"true {name}")
    ax.set_xlabel(f"{class_names[signal]} score")
    ax.set_ylabel("normalised")
    ax.legend()
    return _save(plt, fig, path)
