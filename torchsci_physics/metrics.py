"""Tagging performance in the field's terms, with event weights: ROC AUC and background rejection.

Scores are class probabilities ``(N, K)``. Binary and multi-class taggers are treated alike: a
signal class against all the others (one-vs-rest); with ``signal=None`` the AUC is the mean of the
one-vs-rest AUCs over classes. Background rejection is ``1 / eps_B`` at a fixed signal efficiency
``eps_S``, read off the weighted ROC curve by linear interpolation.

The :class:`~torchsci.metrics.Metric` classes keep every prediction of an epoch and gather them
from all ranks before computing, so a distributed run reports the number a single process would.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchsci.metrics import GatheredMetric


def _signal_vs_rest(labels: np.ndarray, scores: np.ndarray, signal: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    s = scores[:, signal] if scores.ndim == 2 else scores
    return (np.asarray(labels) == signal).astype(np.int64), s


def roc_curve(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None, signal: int = 1
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted ROC of ``signal`` against the rest: (background efficiency, signal efficiency, thresholds).

    One point per distinct score, from the highest down, starting at (0, 0). Weights may be negative
    (NLO samples): efficiencies are signed sums over the events above a threshold divided by the signed
    totals, as physicists compute them, so the curve need not be monotonic.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.metrics import roc_curve
    >>> fpr, tpr, thr = roc_curve(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]), np.array([1.0, 2.0, -1.0]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.0, 1.0], [0.0, 2.0, 1.0, 1.0])
    """
    y, s = _signal_vs_rest(labels, scores, signal)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    sig = np.cumsum(w * y)[last_of_group]
    bkg = np.cumsum(w * (1 - y))[last_of_group]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = sig / sig[-1], bkg / bkg[-1]
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, s[last_of_group]]


def roc_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None, signal: int | None = 1) -> float:
    """Weighted ROC AUC of ``signal`` against the rest; ``signal=None``: mean one-vs-rest AUC over classes.

    The trapezoidal area under :func:`roc_curve`, i.e. the weighted probability that a signal event scores
    above a background one (ties count half): with positive weights the same number as scikit-learn's
    ``roc_auc_score``; negative weights (NLO samples) enter with their sign. NaN when a class is
    missing or its summed weight is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.metrics import roc_auc
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([[.9, .1], [.6, .4], [.65, .35], [.2, .8]]))
    0.75
    """
    classes = range(np.asarray(scores).shape[1]) if signal is None else [signal]
    w = None if weights is None else np.asarray(weights, np.float64).reshape(-1)
    values = []
    for c in classes:
        y, _ = _signal_vs_rest(labels, scores, c)
        total = (np.ones(len(y)) if w is None else w)
        if y.min() == y.max() or total[y == 1].sum() <= 0 or total[y == 0].sum() <= 0:
            values.append(math.nan)  # undefined with one class present, or a class of non-positive total weight
            continue
        fpr, tpr, _ = roc_curve(labels, scores, w, c)
        values.append(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
    return float(np.mean(values))


def background_rejection(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None,
                         efficiency: float = 0.5, signal: int = 1) -> float:
    """``1 / eps_B`` at signal efficiency ``efficiency`` (inf when no background passes).

    Read off at the highest threshold where the signal efficiency first reaches ``efficiency``,
    interpolating linearly from the point before (with negative weights the curve can turn back).
    """
    y, _ = _signal_vs_rest(labels, scores, signal)
    if y.min() == y.max():
        return math.nan
    fpr, tpr, _ = roc_curve(labels, scores, weights, signal)
    if not np.isfinite(tpr).all() or not np.isfinite(fpr).all():
        return math.nan
    k = int(np.argmax(tpr >= efficiency)) if (tpr >= efficiency).any() else len(tpr) - 1
    if k == 0 or tpr[k] == tpr[k - 1]:
        eps_b = float(fpr[k])
    else:
        eps_b = float(fpr[k - 1] + (efficiency - tpr[k - 1]) * (fpr[k] - fpr[k - 1]) / (tpr[k] - tpr[k - 1]))
    return math.inf if eps_b <= 0 else 1.0 / eps_b


class _Gathered(GatheredMetric):
    """Keeps (scores, labels, weights) of every batch; ``compute`` gathers them over ranks."""

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        w = torch.ones(target.shape[0]) if weight is None else weight
        self.keep(preds.detach().float(), target.reshape(-1), w.detach().double().reshape(-1))

    def gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return super().gathered() or (np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0))  # type: ignore[return-value]

    def compute(self) -> float:
        scores, labels, weights = self.gathered()
        return self._from(labels, scores, weights) if len(labels) else math.nan


class ROCAUC(_Gathered):
    """Weighted ROC AUC from class probabilities; ``signal=None`` averages one-vs-rest over classes."""

    def __init__(self, signal: int | None = 1) -> None:
        self.signal = signal
        super().__init__()

    def _from(self, labels, scores, weights) -> float:
        return roc_auc(labels, scores, weights, self.signal)


class BackgroundRejection(_Gathered):
    """Weighted ``1 / eps_B`` at a fixed signal efficiency (e.g. 0.3 or 0.5)."""

    def __init__(self, efficiency: float = 0.5, signal: int = 1) -> None:
        self.efficiency, self.signal = efficiency, signal
        super().__init__()

    def _from(self, labels, scores, weights) -> float:
        return background_rejection(labels, scores, weights, self.efficiency, self.signal)
