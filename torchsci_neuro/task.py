"""Segmentation of 3D scans: cross-entropy + soft Dice loss, and Dice metrics that reduce across ranks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from torchsci.metrics import Metric
from torchsci.task import SupervisedTask
from torchsci_neuro.templates import TISSUE_NAMES


class Dice(Metric):
    """Dice overlap of one predicted label (or of "any label above 0", the brain mask) over a whole set.

    Keeps the summed intersection and the summed predicted and true sizes (float64), so the score is
    the Dice of all voxels of all scans together, identical on every rank of a distributed run.

    Parameters
    ----------
    label
        The class to score; ``None`` scores the foreground (every label above 0) as one mask.

    Examples
    --------
    >>> metric = Dice(label=1)
    >>> logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]).permute(0, 2, 1)[..., None, None]  # (1, 2, 2, 1, 1)
    >>> metric.update(logits, torch.tensor([[[[1]], [[1]]]]))
    >>> round(metric.compute(), 3)
    0.667
    """

    names = ("intersection", "predicted", "true")
    higher_is_better = True

    def __init__(self, label: int | None) -> None:
        self.label = label
        super().__init__()

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """``preds``: logits ``(B, C, D, H, W)``; ``target``: labels ``(B, D, H, W)``; ``weight`` is ignored."""
        predicted_labels = preds.argmax(dim=1)
        if self.label is None:
            predicted, true = predicted_labels > 0, target > 0
        else:
            predicted, true = predicted_labels == self.label, target == self.label
        self._add((predicted & true).sum(), predicted.sum(), true.sum())

    def _value(self, sums: torch.Tensor) -> float:
        total = sums[1] + sums[2]
        return (2.0 * sums[0] / total).item() if total > 0 else math.nan


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, labels: Sequence[int], eps: float = 1e-5) -> torch.Tensor:
    """One minus the mean soft Dice of ``labels``, each computed over the whole batch.

    Parameters
    ----------
    logits
        ``(B, C, D, H, W)`` class scores.
    target
        ``(B, D, H, W)`` integer labels.
    labels
        The classes averaged (usually every class but background).
    eps
        Keeps a class absent from both prediction and target from dividing by zero.

    Returns
    -------
    torch.Tensor
        Scalar loss in ``[0, 1]``.

    Examples
    --------
    >>> target = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    >>> logits = F.one_hot(target, 2).permute(0, 4, 1, 2, 3).float() * 100
    >>> float(soft_dice_loss(logits, target, [0])) < 1e-4
    True
    """
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, logits.dim()))
    intersection = (probs * one_hot).sum(dims)
    sizes = probs.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * intersection + eps) / (sizes + eps)
    return 1.0 - dice[list(labels)].mean()


class SegmentationTask(SupervisedTask):
    """Voxel-wise segmentation from ``(image, labels)`` batches: cross-entropy plus soft Dice.

    Metrics are Dice per tissue label and the Dice of the brain mask (every label above 0).

    Parameters
    ----------
    class_names
        Name of each class, background first; metric keys are ``dice_<name>`` (lower case).
    dice_weight
        Weight of the soft Dice term next to cross-entropy.

    Examples
    --------
    >>> task = SegmentationTask()
    >>> sorted(task.metrics())
    ['dice_brain', 'dice_csf', 'dice_gm', 'dice_wm']
    """

    monitor = "val/dice_brain"
    monitor_mode = "max"

    def __init__(self, class_names: Sequence[str] = TISSUE_NAMES, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.class_names, self.dice_weight = tuple(class_names), dice_weight

    def loss(self, outputs: torch.Tensor, batch) -> torch.Tensor:
        target, _ = self.target(batch)
        target = target.long()
        ce = F.cross_entropy(outputs, target)
        return ce + self.dice_weight * soft_dice_loss(outputs, target, range(1, len(self.class_names)))

    def metrics(self) -> dict[str, Metric]:
        found: dict[str, Metric] = {f"dice_{name.lower()}": Dice(label)
                                    for label, name in enumerate(self.class_names) if label > 0}
        found["dice_brain"] = Dice(None)
        return found

    def update_metrics(self, metrics: dict[str, Metric], outputs: torch.Tensor, batch) -> None:
        target, _ = self.target(batch)
        for metric in metrics.values():
            metric.update(outputs, target)

    def predict(self, outputs: torch.Tensor, batch) -> torch.Tensor:
        return outputs.argmax(dim=1)
