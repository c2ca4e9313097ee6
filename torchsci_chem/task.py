"""The ``chem/property`` task: masked multi-task regression or classification of molecular properties.

A batch is ``(inputs, target)``: ``inputs`` a :class:`~torchsci_chem.featurize.GraphBatch` (or a tensor
of per-molecule features for models with ``takes_graph = False``), ``target`` ``(n_molecules, n_tasks)``
with NaN where a value was not measured. Missing values contribute neither to the loss nor to the
metrics. Regression losses are computed on the standardised scale (residuals divided by the model's
``target_std``), so every task weighs alike whatever its units, while the model itself and every metric
work in the original units.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from torchsci.errors import ConfigError, DataError
from torchsci.metrics import GatheredMetric, Metric
from torchsci.task import Task, unwrap_model
from torchsci_chem.featurize import GraphBatch


@dataclasses.dataclass
class PropertyOutputs:
    """A model's predictions (original units, or logits), the per-task scale of the regression loss, and
    the predicted variance of mean-variance-estimation models (else ``None``)."""

    prediction: torch.Tensor
    scale: torch.Tensor | None
    variance: torch.Tensor | None = None


class MaskedRMSE(Metric):
    """Root mean squared error over the measured (non-NaN) entries of every task."""

    names = ("sq", "n")

    def update(self, preds, target, weight=None):
        mask = ~torch.isnan(target)
        diff = torch.where(mask, preds.double() - torch.nan_to_num(target.double()), 0.0)
        self._add((diff ** 2).sum(), mask.sum())

    def _value(self, sums):
        return math.sqrt(sums[0] / sums[1]) if sums[1] > 0 else math.nan


class MaskedMAE(MaskedRMSE):
    """Mean absolute error over the measured entries of every task."""

    def update(self, preds, target, weight=None):
        mask = ~torch.isnan(target)
        diff = torch.where(mask, preds.double() - torch.nan_to_num(target.double()), 0.0)
        self._add(diff.abs().sum(), mask.sum())

    def _value(self, sums):
        return (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan


class MaskedROCAUC(GatheredMetric):
    """ROC AUC per task over measured entries, averaged over tasks that have both classes."""

    def update(self, preds, target, weight=None):
        self.keep(preds.double(), target.double())

    def compute(self) -> float:
        from sklearn.metrics import roc_auc_score  # noqa: PLC0415

        arrays = self.gathered()  # every rank's batches (a rank may have none)
        preds, target = (torch.from_numpy(a) for a in arrays) if arrays else (torch.empty(0, 0), torch.empty(0, 0))
        scores = []
        for k in range(target.shape[1] if target.dim() == 2 else 0):
            mask = ~torch.isnan(target[:, k])
            y = target[mask, k]
            if y.numel() and 0 < y.sum() < y.numel():
                scores.append(roc_auc_score(y.numpy(), preds[mask, k].numpy()))
        return float(sum(scores) / len(scores)) if scores else math.nan


class PropertyTask(Task):
    """Masked multi-task property prediction.

    Parameters
    ----------
    kind
        ``"regression"`` (MSE on the standardised scale, or the Gaussian negative log-likelihood for
        models that predict a variance; RMSE/MAE in original units) or ``"classification"`` (binary
        cross-entropy per task on logits; ROC AUC).

    Examples
    --------
    >>> import torch
    >>> from torchsci_chem.task import PropertyTask, PropertyOutputs
    >>> task = PropertyTask()
    >>> out = PropertyOutputs(torch.tensor([[1.0, 0.0]]), torch.tensor([2.0, 1.0]))
    >>> float(task.loss(out, (None, torch.tensor([[3.0, float("nan")]]))))  # ((1 - 3) / 2) ** 2, NaN ignored
    1.0
    """

    def __init__(self, kind: str = "regression") -> None:
        if kind not in ("regression", "classification"):
            raise ConfigError(f"PropertyTask(kind={kind!r}): use 'regression' or 'classification'.")
        self.kind = kind
        self.monitor, self.monitor_mode = ("val/rmse", "min") if kind == "regression" else ("val/auroc", "max")

    def forward(self, model, batch) -> PropertyOutputs:
        inputs = batch[0]
        core = unwrap_model(model)
        if isinstance(inputs, GraphBatch):
            pred = model(*inputs.inputs()) if getattr(core, "takes_graph", True) else model(inputs.extra)
        else:
            pred = model(inputs)
        scale = getattr(core, "target_std", None) if self.kind == "regression" else None
        if getattr(core, "predicts_variance", False):
            if self.kind != "regression":
                raise ConfigError("mean-variance estimation (uncertainty='mve') is for regression only.")
            mean, variance = pred.chunk(2, dim=1)
            return PropertyOutputs(mean, scale, variance)
        return PropertyOutputs(pred, scale)

    @staticmethod
    def _target(outputs: PropertyOutputs, batch) -> torch.Tensor:
        if len(batch) < 2 or batch[1] is None:
            raise DataError("this batch has no targets; training and evaluation need (molecules, targets) batches.")
        target = batch[1].to(outputs.prediction.dtype)
        if target.shape != outputs.prediction.shape:
            raise DataError(f"targets of shape {tuple(target.shape)} do not match predictions of shape "
                            f"{tuple(outputs.prediction.shape)}: build the model with num_tasks={target.shape[-1]}.")
        return target

    def loss(self, outputs, batch):
        target = self._target(outputs, batch)
        mask = ~torch.isnan(target)
        filled = torch.nan_to_num(target)
        if self.kind == "regression":
            residual = outputs.prediction - filled
            variance = outputs.variance
            if outputs.scale is not None:
                residual = residual / outputs.scale
                variance = None if variance is None else variance / outputs.scale ** 2
            # Gaussian negative log-likelihood (up to a constant) when the model predicts its variance.
            per_entry = residual ** 2 if variance is None else 0.5 * (variance.log() + residual ** 2 / variance)
        else:
            per_entry = F.binary_cross_entropy_with_logits(outputs.prediction, filled, reduction="none")
        return torch.where(mask, per_entry, 0.0).sum() / mask.sum().clamp_min(1)

    def metrics(self):
        if self.kind == "regression":
            return {"rmse": MaskedRMSE(), "mae": MaskedMAE()}
        return {"auroc": MaskedROCAUC()}

    def update_metrics(self, metrics, outputs, batch):
        target = self._target(outputs, batch)
        for m in metrics.values():
            m.update(outputs.prediction.detach(), target)

    def batch_size(self, batch) -> int:
        inputs = batch[0]
        return inputs.num_molecules if isinstance(inputs, GraphBatch) else int(inputs.shape[0])

    def predict(self, outputs, batch):
        return outputs.prediction if self.kind == "regression" else torch.sigmoid(outputs.prediction)
