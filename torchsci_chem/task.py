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
    num_classes: int = 0


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
    """ROC AUC (scikit-learn's ``roc_auc_score``) over the measured entries, averaged over tasks (and, for
    multi-class tasks, over the one-vs-rest problem of each class) that have both positives and negatives.

    ``num_classes`` 0 or 1: binary tasks, ``preds`` are ``(n, n_tasks)`` logits or probabilities; ``>= 2``:
    ``preds`` are ``(n, n_tasks * num_classes)`` logits (task-major) and ``target`` holds class indices.
    Every rank's batches are gathered before the score (a rank may have seen none).
    """

    score = "roc_auc_score"

    def __init__(self, num_classes: int = 0) -> None:
        self.num_classes = num_classes
        super().__init__()

    def update(self, preds, target, weight=None):
        preds = preds.detach().double()
        if self.num_classes >= 2:  # probabilities, so each class's one-vs-rest ranking is meaningful
            n, tasks = target.shape
            preds = torch.softmax(preds.reshape(n, tasks, self.num_classes), dim=-1).reshape(n, -1)
        self.keep(preds, target.double())

    def compute(self) -> float:
        import sklearn.metrics

        score = getattr(sklearn.metrics, self.score)
        arrays = self.gathered()
        preds, target = (torch.from_numpy(a) for a in arrays) if arrays else (torch.empty(0, 0), torch.empty(0, 0))
        classes = max(self.num_classes, 1)
        scores = []
        for k in range(target.shape[1] if target.dim() == 2 else 0):
            mask = ~torch.isnan(target[:, k])
            for c in range(classes):
                y = target[mask, k] if classes == 1 else (target[mask, k] == c).double()
                if y.numel() and 0 < y.sum() < y.numel():
                    scores.append(score(y.numpy(), preds[mask, k * classes + c].numpy()))
        return float(sum(scores) / len(scores)) if scores else math.nan


class MaskedPRAUC(MaskedROCAUC):
    """Area under the precision-recall curve (scikit-learn's ``average_precision_score``), averaged like
    :class:`MaskedROCAUC`; more telling than ROC AUC when positives are rare."""

    score = "average_precision_score"


KINDS = ("regression", "classification", "multiclass")


class PropertyTask(Task):
    """Masked multi-task property prediction.

    Parameters
    ----------
    kind
        ``"regression"`` (MSE on the standardised scale, or the Gaussian negative log-likelihood for
        models that predict a variance; RMSE/MAE in original units), ``"classification"`` (binary labels
        0/1 per task, binary cross-entropy on logits) or ``"multiclass"`` (class indices 0..C-1 per task;
        the model gives ``n_tasks * C`` logits, task-major; cross-entropy). Classification metrics: ROC AUC
        (``auroc``, the monitored one) and PR AUC (``prauc``, average precision), one-vs-rest per class
        and averaged. NaN targets are left out of the loss and of every metric.

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
        if kind not in KINDS:
            raise ConfigError(f"PropertyTask(kind={kind!r}): use 'regression', 'classification' or 'multiclass'.")
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
        return PropertyOutputs(pred, scale, num_classes=int(getattr(core, "num_classes", 0)))

    def _target(self, outputs: PropertyOutputs, batch) -> torch.Tensor:
        if len(batch) < 2 or batch[1] is None:
            raise DataError("this batch has no targets; training and evaluation need (molecules, targets) batches.")
        target = batch[1].to(outputs.prediction.dtype)
        if self.kind == "multiclass":
            tasks, width = target.shape[-1], outputs.prediction.shape[-1]
            if target.dim() != 2 or tasks == 0 or width % tasks or width // tasks < 2:
                raise DataError(f"a multiclass model gives n_tasks * n_classes logits: {width} outputs for "
                                f"{tasks} target column(s); build it with num_tasks=n_targets * n_classes "
                                "(chem/csv with task='multiclass' does).")
            return target
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
        elif self.kind == "multiclass":
            n, tasks = target.shape
            logits = outputs.prediction.reshape(n, tasks, -1)
            labels = filled.long().clamp(0, logits.shape[-1] - 1)
            per_entry = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        else:
            per_entry = F.binary_cross_entropy_with_logits(outputs.prediction, filled, reduction="none")
        return torch.where(mask, per_entry, 0.0).sum() / mask.sum().clamp_min(1)

    def metrics(self):
        if self.kind == "regression":
            return {"rmse": MaskedRMSE(), "mae": MaskedMAE()}
        # the number of classes is only known from the first batch: the metrics read it then
        classes = -1 if self.kind == "multiclass" else 0
        return {"auroc": MaskedROCAUC(classes), "prauc": MaskedPRAUC(classes)}

    def update_metrics(self, metrics, outputs, batch):
        target = self._target(outputs, batch)
        for m in metrics.values():
            if getattr(m, "num_classes", 0) == -1:
                m.num_classes = outputs.prediction.shape[-1] // target.shape[-1]
            m.update(outputs.prediction.detach(), target)

    def batch_size(self, batch) -> int:
        inputs = batch[0]
        return inputs.num_molecules if isinstance(inputs, GraphBatch) else int(inputs.shape[0])

    def predict(self, outputs, batch):
        if self.kind != "multiclass":
            return probabilities(outputs.prediction, self.kind)
        if not outputs.num_classes and (len(batch) < 2 or batch[1] is None):
            raise ConfigError("multiclass predictions need the model's num_classes (chem/csv with task='multiclass' "
                              "sets it).")
        classes = outputs.num_classes or outputs.prediction.shape[-1] // batch[1].shape[-1]
        return probabilities(outputs.prediction, self.kind, outputs.prediction.shape[-1] // classes)


def probabilities(logits: torch.Tensor, kind: str, tasks: int = 1) -> torch.Tensor:
    """Class probabilities from a classifier's logits (unchanged for ``kind="regression"``): the sigmoid of
    each for ``"classification"``, a softmax over each task's classes (task-major) for ``"multiclass"``."""
    if kind == "regression":
        return logits
    if kind == "classification":
        return torch.sigmoid(logits)
    n = logits.shape[0]
    return torch.softmax(logits.reshape(n, tasks, -1), dim=-1).reshape(n, -1)
