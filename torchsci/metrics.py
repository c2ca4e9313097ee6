"""Metrics that accumulate over an epoch and agree across ranks.

A metric keeps running sums as float64 tensors; :meth:`Metric.compute` sums them over all ranks of a
distributed run before dividing, so every rank reports the same number as a single process would.
Metrics that need every prediction (ROC curves, AUROC, a mass-sculpting divergence) derive from
:class:`GatheredMetric`: it keeps each batch's arrays and gathers them over ranks at the end.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchsci.distributed import all_gather_object, all_reduce_sum


class Metric:
    """Base class: ``update`` per batch, ``compute`` at the end, ``reset`` before the next epoch.

    Subclasses set ``names`` (the sums they keep) and implement ``update`` and ``_value``.
    """

    names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.names), dtype=torch.float64)

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        raise NotImplementedError

    def _value(self, sums: torch.Tensor) -> float:
        raise NotImplementedError

    def compute(self) -> float:
        return self._value(all_reduce_sum(self.sums.clone()))

    def _add(self, *values: torch.Tensor) -> None:
        self.sums += torch.stack([v.detach().to("cpu", torch.float64) for v in values])


class GatheredMetric(Metric):
    """Base class for "gather every prediction, compute at the end": batches kept as arrays, joined over ranks.

    ``update`` calls :meth:`keep` with the batch's tensors (the same number each time); ``compute`` calls
    :meth:`gathered`, which returns one array per position, concatenated over batches and ranks in rank order
    (``None`` before any batch).

    Examples
    --------
    >>> import torch
    >>> from torchsci.metrics import GatheredMetric
    >>> class LargestScore(GatheredMetric):
    ...     def update(self, preds, target, weight=None):
    ...         self.keep(preds)
    ...     def compute(self):
    ...         arrays = self.gathered()
    ...         return float(arrays[0].max()) if arrays else float("nan")
    >>> metric = LargestScore()
    >>> metric.update(torch.tensor([0.25, 0.75]), None); metric.update(torch.tensor([0.5]), None)
    >>> metric.compute()
    0.75
    """

    def reset(self) -> None:
        super().reset()
        self.parts: list[tuple[np.ndarray, ...]] = []

    def keep(self, *tensors: torch.Tensor, dtype: np.dtype | type | None = None) -> None:
        """Keep this batch's tensors (detached, on the CPU, as numpy arrays; cast to ``dtype`` when given)."""
        arrays = tuple(t.detach().cpu().numpy() for t in tensors)
        self.parts.append(arrays if dtype is None else tuple(a.astype(dtype) for a in arrays))

    def gathered(self) -> tuple[np.ndarray, ...] | None:
        """Every rank's kept arrays, concatenated position by position; ``None`` if no rank kept any."""
        parts = [p for rank in all_gather_object(self.parts) for p in rank]
        if not parts:
            return None
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def _weights(target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return torch.ones(target.shape[0], dtype=torch.float64, device=target.device)
    return weight.to(torch.float64).reshape(target.shape[0])


def _per_item(x: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dims, so multi-output targets weigh like single ones."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


class MeanSquaredError(Metric):
    """(Weighted) mean squared error."""

    names = ("sq", "w")

    def update(self, preds, target, weight=None):
        w = _weights(target, weight)
        self._add((w * _per_item((preds.double() - target.double()) ** 2)).sum(), w.sum())

    def _value(self, sums):
        return (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan


class RootMeanSquaredError(MeanSquaredError):
    """(Weighted) root mean squared error."""

    def _value(self, sums):
        return math.sqrt(super()._value(sums))


class MeanAbsoluteError(Metric):
    """(Weighted) mean absolute error."""

    names = ("abs", "w")

    def update(self, preds, target, weight=None):
        w = _weights(target, weight)
        self._add((w * _per_item((preds.double() - target.double()).abs())).sum(), w.sum())

    def _value(self, sums):
        return (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan


class Accuracy(Metric):
    """(Weighted) fraction of correct class predictions from logits ``(batch, classes)``."""

    names = ("correct", "w")

    def update(self, preds, target, weight=None):
        w = _weights(target, weight)
        correct = (preds.argmax(dim=-1) == target.reshape(-1)).double()
        self._add((w * correct).sum(), w.sum())

    def _value(self, sums):
        return (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan


class Mean(Metric):
    """A weighted running mean of a scalar (the Trainer uses it for the loss)."""

    names = ("sum", "w")

    def update(self, preds, target=None, weight=None):
        value = preds.detach().double().reshape(())
        w = torch.ones((), dtype=torch.float64) if weight is None else weight.detach().double().sum()
        self._add(value * w, w)

    def _value(self, sums):
        return (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan
