"""Prediction intervals calibrated by split conformal prediction on a model's validation molecules.

A model predicts a mean ``mu`` and a spread ``sigma`` per molecule (ensemble members' standard deviation,
combined with the predicted variance of mean-variance heads). On the validation split, each molecule's
nonconformity score is ``|y - mu| / (sigma + beta)``, with ``beta`` the median validation ``sigma`` so that
members agreeing by chance cannot shrink an interval to nothing. For a level ``p`` the interval is
``mu ± q (sigma + beta)`` with ``q`` the ``ceil((n + 1) p)``-th smallest of the ``n`` validation scores:
for molecules exchangeable with the validation ones, at least a fraction ``p`` of intervals cover the
truth (Vovk et al. 2005; Lei et al. 2018). Molecules unlike the training data (see
:mod:`torchsci_chem.domain`) are not exchangeable with them, and their coverage is measured, not promised.
"""

from __future__ import annotations

import math

import numpy as np

from torchsci.errors import ConfigError


def spread(member_means: np.ndarray, member_variances: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and total standard deviation of an ensemble from members' ``(members, n, ...)`` predictions.

    The total variance is the variance of the members' means plus the mean of their predicted variances
    (when mean-variance heads give them).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.uncertainty import spread
    >>> mean, sigma = spread(np.array([[1.0], [3.0]]), np.array([[1.0], [1.0]]))
    >>> mean.tolist(), sigma.tolist()
    ([2.0], [1.4142135623730951])
    """
    mean = member_means.mean(axis=0)
    variance = member_means.var(axis=0)
    if member_variances is not None:
        variance = variance + member_variances.mean(axis=0)
    return mean, np.sqrt(variance)


def calibrate(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, float]:
    """Sorted nonconformity scores and ``beta`` from validation targets, means and spreads (NaN targets dropped).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.uncertainty import calibrate
    >>> y = np.arange(12.0)
    >>> scores, beta = calibrate(y, y + 0.5, np.ones(12))
    >>> scores[:2].tolist(), beta
    ([0.25, 0.25], 1.0)
    """
    y, mean, sigma = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, mean, sigma))
    keep = np.isfinite(y)
    if keep.sum() < 10:
        raise ConfigError(f"calibrate: {int(keep.sum())} validation molecules with a measured target; conformal "
                          "intervals need at least 10 (better 100 or more).")
    beta = float(np.median(sigma[keep]))
    beta = beta if beta > 0 else 1e-6
    return np.sort(np.abs(y[keep] - mean[keep]) / (sigma[keep] + beta)), beta


def quantile(scores: np.ndarray, level: float) -> float:
    """The conformal quantile of sorted ``scores`` for coverage ``level`` (``inf`` if too few scores).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.uncertainty import quantile
    >>> quantile(np.arange(1.0, 20.0), 0.9)
    18.0
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"interval={level}: give a coverage level between 0 and 1, e.g. 0.9.")
    n = scores.shape[0]
    k = math.ceil((n + 1) * level)
    return math.inf if k > n else float(scores[k - 1])


def interval(mean: np.ndarray, sigma: np.ndarray, scores: np.ndarray, beta: float,
             level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the calibrated ``level`` intervals around ``mean``.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.uncertainty import interval
    >>> lo, hi = interval(np.array([0.0]), np.array([1.0]), np.arange(1.0, 20.0), 1.0, 0.9)
    >>> lo.tolist(), hi.tolist()
    ([-36.0], [36.0])
    """
    half = quantile(scores, level) * (np.asarray(sigma) + beta)
    return mean - half, mean + half
