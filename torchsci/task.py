"""Tasks: what to compute from a batch. A task supplies the forward call, the loss and the metrics.

The Trainer knows nothing about the shape of a batch; the task does. A plug-in writes a task for its
field (segmentation with Dice, jet tagging with weighted ROC, property regression with masked
targets) by overriding the few methods below. No other hooks exist.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchsci.errors import ConfigError, DataError
from torchsci.metrics import Accuracy, MeanAbsoluteError, Metric, RootMeanSquaredError


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside the wrappers the Trainer may add: DDP's ``.module``, ``torch.compile``'s ``_orig_mod``.

    A task reads settings the model carries (``target_std``, ``takes_graph``) from here, never from the
    wrappers' private attributes.

    Examples
    --------
    >>> import torch
    >>> from torchsci.task import unwrap_model
    >>> net = torch.nn.Linear(2, 1)
    >>> unwrap_model(net) is net
    True
    """
    # a compiled module exists only once torch._dynamo is imported: never import it here (seconds, and sympy)
    dynamo = sys.modules.get("torch._dynamo.eval_frame")
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif dynamo is not None and isinstance(model, dynamo.OptimizedModule):
            model = model._orig_mod
        else:
            return model


class Task:
    """Base class. Override :meth:`forward`, :meth:`loss`, :meth:`metrics` and :meth:`update_metrics`.

    ``monitor`` names the validation metric that picks the best checkpoint and drives early stopping,
    ``monitor_mode`` whether lower (``"min"``) or higher (``"max"``) is better.
    """

    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def model_inputs(self, model: nn.Module, batch: Any) -> tuple:
        """The positional inputs ``model`` takes for ``batch`` (export traces the model with them)."""
        raise NotImplementedError(f"{type(self).__name__} does not say which parts of a batch are model inputs")

    def forward(self, model: nn.Module, batch: Any) -> Any:
        """Run ``model`` on ``batch`` and return its outputs."""
        return model(*self.model_inputs(model, batch))

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        """A scalar loss to minimise."""
        raise NotImplementedError

    def metrics(self) -> dict[str, Metric]:
        """Fresh metric objects for one evaluation pass."""
        return {}

    def update_metrics(self, metrics: dict[str, Metric], outputs: Any, batch: Any) -> None:
        """Feed one batch's outputs to the metrics."""

    def batch_size(self, batch: Any) -> int:
        """Number of items in ``batch`` (weights the loss average)."""
        first = batch[0] if isinstance(batch, (tuple, list)) else next(iter(batch.values())) \
            if isinstance(batch, Mapping) else batch
        return int(first.shape[0]) if hasattr(first, "shape") else 1

    def predict(self, outputs: Any, batch: Any) -> Any:
        """What :meth:`torchsci.Trainer.predict` returns for one batch (the outputs by default)."""
        return outputs


class SupervisedTask(Task):
    """A task on batches of ``(inputs, target)`` or ``(inputs, target, weight)`` tuples, or mappings.

    With a mapping batch, ``input_key``, ``target_key`` and ``weight_key`` say where each part is.
    """

    def __init__(self, input_key: str = "inputs", target_key: str = "target", weight_key: str = "weight") -> None:
        self.input_key, self.target_key, self.weight_key = input_key, target_key, weight_key

    def unpack(self, batch: Any) -> tuple[Any, torch.Tensor | None, torch.Tensor | None]:
        if isinstance(batch, Mapping):
            if self.input_key not in batch:
                raise DataError(f"batch has no '{self.input_key}' entry (keys: {sorted(batch)}); "
                                f"set input_key= to the key that holds the model inputs.")
            return batch[self.input_key], batch.get(self.target_key), batch.get(self.weight_key)
        if isinstance(batch, (tuple, list)):
            if len(batch) not in (1, 2, 3):
                raise DataError(f"a batch tuple must be (inputs,), (inputs, target) or (inputs, target, weight); "
                                f"got {len(batch)} parts.")
            return batch[0], (batch[1] if len(batch) > 1 else None), (batch[2] if len(batch) > 2 else None)
        return batch, None, None

    def model_inputs(self, model, batch):
        inputs, _, _ = self.unpack(batch)
        return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)

    def target(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, target, weight = self.unpack(batch)
        if target is None:
            raise DataError("this batch has no target; training and evaluation need (inputs, target) batches.")
        return target, weight


def _weighted_mean(per_item: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    per_item = per_item.reshape(per_item.shape[0], -1).mean(dim=1)
    if weight is None:
        return per_item.mean()
    weight = weight.reshape(-1).to(per_item.dtype)
    return (per_item * weight).sum() / weight.sum().clamp_min(torch.finfo(per_item.dtype).tiny)


class RegressionTask(SupervisedTask):
    """Regression with a (weighted) ``"mse"``, ``"mae"`` or ``"huber"`` loss; reports RMSE and MAE.

    Examples
    --------
    >>> from torchsci.task import RegressionTask
    >>> task = RegressionTask()
    >>> float(task.loss(torch.zeros(4, 1), (None, torch.ones(4, 1))))
    1.0
    """

    monitor = "val/rmse"

    def __init__(self, loss: str = "mse", input_key: str = "inputs", target_key: str = "target",
                 weight_key: str = "weight") -> None:
        super().__init__(input_key, target_key, weight_key)
        losses = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}
        if loss not in losses:
            raise ConfigError(f"RegressionTask(loss={loss!r}): choose one of {', '.join(losses)}.")
        self._loss = losses[loss]

    def loss(self, outputs, batch):
        target, weight = self.target(batch)
        outputs = outputs.reshape(target.shape) if outputs.numel() == target.numel() else outputs
        if weight is None:  # the plain mean equals the mean of per-item means here, and is one kernel
            return self._loss(outputs, target.to(outputs.dtype))
        return _weighted_mean(self._loss(outputs, target.to(outputs.dtype), reduction="none"), weight)

    def metrics(self):
        return {"rmse": RootMeanSquaredError(), "mae": MeanAbsoluteError()}

    def update_metrics(self, metrics, outputs, batch):
        target, weight = self.target(batch)
        outputs = outputs.reshape(target.shape) if outputs.numel() == target.numel() else outputs
        for m in metrics.values():
            m.update(outputs, target, weight)


class ClassificationTask(SupervisedTask):
    """Multi-class classification from logits ``(batch, classes)`` with (weighted) cross-entropy."""

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(self, label_smoothing: float = 0.0, input_key: str = "inputs", target_key: str = "target",
                 weight_key: str = "weight") -> None:
        super().__init__(input_key, target_key, weight_key)
        self.label_smoothing = label_smoothing

    def loss(self, outputs, batch):
        target, weight = self.target(batch)
        target = target.reshape(-1).long()
        if weight is None:
            return F.cross_entropy(outputs, target, label_smoothing=self.label_smoothing)
        per_item = F.cross_entropy(outputs, target, reduction="none", label_smoothing=self.label_smoothing)
        return _weighted_mean(per_item, weight)

    def metrics(self):
        return {"accuracy": Accuracy()}

    def update_metrics(self, metrics, outputs, batch):
        target, weight = self.target(batch)
        for m in metrics.values():
            m.update(outputs, target, weight)

    def predict(self, outputs, batch):
        return outputs.softmax(dim=-1)
