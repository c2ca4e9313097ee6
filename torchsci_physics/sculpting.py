"""Mass sculpting: how much a cut on the tagger's score changes the background's shape of an observable.

A tagger that has learnt the jet or dijet mass makes the background surviving its cut peak where the
signal does, which fakes a signal in a bump hunt. :func:`sculpting` cuts the signal score where it
keeps ``efficiency`` of the (weighted) signal and compares the background's normalised distribution
of ``observable`` before and after the cut with the Jensen-Shannon divergence (base 2: 0 for the same
shape, 1 for disjoint ones). :class:`Sculpting` is the same number as a metric of the tagging task
(``TaggingTask(sculpting="mjj")``, naming one of the data's ``observers``); :func:`plot_sculpting`
draws the shapes.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch

from torchsci.metrics import GatheredMetric


@dataclasses.dataclass
class SculptingResult:
    """The cut, the background's efficiency, the two normalised histograms and their JS divergence."""

    jsd: float
    threshold: float
    background_efficiency: float
    edges: np.ndarray
    before: np.ndarray
    after: np.ndarray


def sculpting(observable: np.ndarray, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None, *,
              signal: int = 1, efficiency: float = 0.5, bins: int | np.ndarray = 30,
              range: tuple[float, float] | None = None) -> SculptingResult:  # noqa: A002 (numpy's name)
    """JS divergence of the background's ``observable`` shape before and after a cut at signal ``efficiency``.

    ``scores`` are class probabilities ``(N, K)`` (or the signal score ``(N,)``); background is every
    class but ``signal``. Bins span the background's 0.5-99.5% range unless ``range`` or edges are given.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.sculpting import sculpting
    >>> rng = np.random.default_rng(0)
    >>> mass, labels = rng.uniform(50, 200, 4000), np.repeat([0, 1], 2000)
    >>> blind = sculpting(mass, labels, rng.uniform(size=4000))  # a score that ignores the mass
    >>> biased = sculpting(mass, labels, -np.abs(mass - 125))    # a score that is the mass
    >>> blind.jsd < 0.02 < 0.2 < biased.jsd, round(biased.background_efficiency, 1)
    (True, 0.5)
    """
    from scipy.spatial.distance import jensenshannon

    scores = np.asarray(scores)
    s = scores[:, signal] if scores.ndim == 2 else scores
    labels, observable = np.asarray(labels), np.asarray(observable, dtype=np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    sig, bkg = labels == signal, labels != signal
    if not sig.any() or not bkg.any():
        nan = np.full(1, math.nan)
        return SculptingResult(math.nan, math.nan, math.nan, np.array([0.0, 1.0]), nan, nan)
    order = np.argsort(-s[sig], kind="stable")
    kept = np.cumsum(w[sig][order]) / w[sig].sum()
    threshold = float(s[sig][order][min(int(np.searchsorted(kept, efficiency)), len(order) - 1)])
    passed = s >= threshold
    if range is None and np.ndim(bins) == 0:
        range = tuple(np.quantile(observable[bkg], [0.005, 0.995]))
    before, edges = np.histogram(observable[bkg], bins=bins, range=range, weights=w[bkg])
    after, _ = np.histogram(observable[bkg & passed], bins=edges, weights=w[bkg & passed])
    before, after = np.clip(before, 0, None), np.clip(after, 0, None)  # negative MC weights: no negative density
    norm = lambda h: h / h.sum() if h.sum() > 0 else h  # noqa: E731
    jsd = float(jensenshannon(norm(before), norm(after), base=2) ** 2) if after.sum() > 0 else 1.0
    eff_b = float(w[bkg & passed].sum() / w[bkg].sum())
    return SculptingResult(jsd, threshold, eff_b, edges, norm(before), norm(after))


def plot_sculpting(result: SculptingResult, path: str | os.PathLike, observable: str = "mass",
                   efficiency: float = 0.5) -> Path:
    """The background's normalised ``observable`` before and after the cut, with the JS divergence."""
    from torchsci_physics.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.stairs(result.before, result.edges, label="background, no cut", lw=1.5)
    ax.stairs(result.after, result.edges, label=f"background, cut at {efficiency:.0%} signal eff. "
                                                 f"({result.background_efficiency:.1%} kept)", lw=1.5)
    ax.set_xlabel(observable)
    ax.set_ylabel("normalised")
    ax.set_title(f"Jensen-Shannon divergence {result.jsd:.4f}")
    ax.legend()
    return _save(plt, fig, path)


class Sculpting(GatheredMetric):
    """:func:`sculpting`'s JS divergence as a metric: ``update(probs, labels, weights, observable)``."""

    def __init__(self, efficiency: float = 0.5, signal: int | None = 1) -> None:
        self.efficiency, self.signal = efficiency, signal
        super().__init__()

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, observable: torch.Tensor) -> None:
        self.keep(preds, target, weight, observable, dtype=np.float64)

    def compute(self) -> float:
        arrays = self.gathered()
        if arrays is None or self.signal is None:
            return math.nan
        scores, labels, weights, observable = arrays
        return sculpting(observable, labels.astype(np.int64), scores, weights, signal=self.signal,
                         efficiency=self.efficiency).jsd
