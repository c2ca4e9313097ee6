"""Segmentation of 3D scans: cross-entropy + soft Dice loss, and Dice metrics that reduce across ranks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from torchsci.distributed import all_gather_object
from torchsci.errors import ConfigError
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


def dice_overlap(predicted: np.ndarray, true: np.ndarray, empty: float = math.nan) -> float:
    """Dice overlap of two masks (arrays of any shape, truthy = inside); ``empty`` when both are empty.

    Examples
    --------
    >>> dice_overlap(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.5
    >>> dice_overlap(np.zeros(3), np.zeros(3), empty=1.0)
    1.0
    """
    predicted, true = np.asarray(predicted, bool), np.asarray(true, bool)
    size = int(predicted.sum()) + int(true.sum())
    return 2.0 * float((predicted & true).sum()) / size if size else empty


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return mask & ~ndi.binary_erosion(mask, border_value=0)


def hausdorff95(predicted: np.ndarray, true: np.ndarray, voxel_size: Sequence[float] | float = 1.0) -> float:
    """95th percentile of the symmetric surface distance between two masks, in mm.

    Distances are Euclidean in mm (``voxel_size`` per axis), from every surface voxel of each mask to
    the nearest surface voxel of the other; the larger of the two directed 95th percentiles is returned.
    ``nan`` when either mask is empty (no surface to measure).

    Examples
    --------
    >>> a = np.zeros((10, 10, 10), bool); a[2:5, 2:5, 2:5] = True
    >>> b = np.roll(a, 3, axis=2)
    >>> hausdorff95(a, b, voxel_size=(1.0, 1.0, 2.0))
    6.0
    """
    from scipy import ndimage as ndi

    predicted, true = np.asarray(predicted, bool), np.asarray(true, bool)
    if not predicted.any() or not true.any():
        return math.nan
    sampling = np.broadcast_to(np.asarray(voxel_size, dtype=float), (predicted.ndim,))
    surface_p, surface_t = _surface(predicted), _surface(true)
    to_true = ndi.distance_transform_edt(~surface_t, sampling=sampling)[surface_p]
    to_predicted = ndi.distance_transform_edt(~surface_p, sampling=sampling)[surface_t]
    return float(max(np.percentile(to_true, 95), np.percentile(to_predicted, 95)))


class HausdorffDistance95(Metric):
    """Mean over scans (or patches) of the 95% Hausdorff distance of one label, in mm.

    Items where the label is missing from the prediction or the truth have no surface distance and
    are left out (their Dice says how badly they missed); ``nan`` if no item has both.

    Parameters
    ----------
    label
        The class to score; ``None`` scores the foreground (every label above 0).
    voxel_size
        Voxel edge(s) in mm of the arrays the metric sees.
    """

    def __init__(self, label: int | None, voxel_size: Sequence[float] | float = 1.0) -> None:
        self.label, self.voxel_size = label, voxel_size
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.values: list[float] = []

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """``preds``: logits ``(B, C, D, H, W)``; ``target``: labels ``(B, D, H, W)``; ``weight`` is ignored."""
        predicted = preds.argmax(dim=1).cpu().numpy()
        true = target.cpu().numpy()
        for p, t in zip(predicted, true, strict=True):
            if self.label is None:
                value = hausdorff95(p > 0, t > 0, self.voxel_size)
            else:
                value = hausdorff95(p == self.label, t == self.label, self.voxel_size)
            if not math.isnan(value):
                self.values.append(value)

    def compute(self) -> float:
        values = [v for rank in all_gather_object(self.values) for v in rank]
        return float(np.mean(values)) if values else math.nan


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


def brain_boundary(target: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Voxels within ``width`` voxels of the edge between background (0) and the brain (labels above 0).

    Parameters
    ----------
    target
        ``(B, D, H, W)`` integer labels.
    width
        Half-thickness of the band, in voxels (a cube neighbourhood of ``2 * width + 1``).

    Returns
    -------
    torch.Tensor
        ``(B, D, H, W)`` boolean band: dilated brain minus eroded brain.

    Examples
    --------
    >>> target = torch.zeros(1, 9, 9, 9, dtype=torch.long); target[0, 2:7, 2:7, 2:7] = 2
    >>> band = brain_boundary(target, width=1)
    >>> int(band.sum()), bool(band[0, 4, 4, 4]), bool(band[0, 0, 0, 0])
    (316, False, False)
    """
    brain = (target > 0).to(torch.float32).unsqueeze(1)
    size = 2 * width + 1
    dilated = F.max_pool3d(brain, size, stride=1, padding=width)
    eroded = -F.max_pool3d(-brain, size, stride=1, padding=width)
    return (dilated != eroded).squeeze(1)


class SegmentationTask(SupervisedTask):
    """Voxel-wise segmentation from ``(image, labels)`` batches: cross-entropy plus soft Dice.

    Metrics are Dice per tissue label and the Dice of the brain mask (every label above 0), and with
    ``hausdorff_voxel_size`` also the 95% Hausdorff distance in mm of each (``hd95_<name>``).

    Parameters
    ----------
    class_names
        Name of each class, background first; metric keys are ``dice_<name>`` (lower case).
    dice_weight
        Weight of the soft Dice term next to cross-entropy.
    hausdorff_voxel_size
        Voxel edge(s) in mm of the training arrays; set it to add 95% Hausdorff distances (they cost
        distance transforms on every validation item).
    class_weights
        Cross-entropy weight of each class (background first), e.g. to up-weight a thin class such as
        CSF that an unweighted loss lets the model ignore; ``None`` weighs every class 1.
    boundary_weight, boundary_width
        Extra cross-entropy weight of the voxels within ``boundary_width`` voxels of the brain's edge
        (the boundary between background and any label above 0): each such voxel counts
        ``1 + boundary_weight`` times. The brain edge is where a brain extractor is judged (dura, skull
        base, cerebellar rim) and a small share of the voxels; ``0`` (the default) switches it off.

    Examples
    --------
    >>> task = SegmentationTask()
    >>> sorted(task.metrics())
    ['dice_brain', 'dice_csf', 'dice_gm', 'dice_wm']
    """

    monitor = "val/dice_brain"
    monitor_mode = "max"

    def __init__(self, class_names: Sequence[str] = TISSUE_NAMES, dice_weight: float = 1.0,
                 hausdorff_voxel_size: Sequence[float] | float | None = None,
                 class_weights: Sequence[float] | None = None, boundary_weight: float = 0.0,
                 boundary_width: int = 2) -> None:
        super().__init__()
        if boundary_weight < 0 or boundary_width < 1:
            raise ConfigError(f"boundary_weight={boundary_weight}, boundary_width={boundary_width}: the weight must be "
                              "0 or more and the width at least 1 voxel.")
        self.boundary_weight, self.boundary_width = float(boundary_weight), int(boundary_width)
        self.class_names, self.dice_weight = tuple(class_names), dice_weight
        self.hausdorff_voxel_size = hausdorff_voxel_size
        if class_weights is not None and len(class_weights) != len(self.class_names):
            raise ConfigError(f"class_weights has {len(class_weights)} values for {len(self.class_names)} classes "
                              f"({', '.join(self.class_names)}): give one weight per class, background first.")
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)

    def loss(self, outputs: torch.Tensor, batch) -> torch.Tensor:
        target, _ = self.target(batch)
        target = target.long()
        weight = None if self.class_weights is None else self.class_weights.to(outputs.device, outputs.dtype)
        if self.boundary_weight > 0:
            # weighted mean as F.cross_entropy takes it: sum(w_i * ce_i) / sum(w_i), w_i = class x band weight
            band = 1.0 + self.boundary_weight * brain_boundary(target, self.boundary_width).to(outputs.dtype)
            voxel_weight = band if weight is None else band * weight[target]
            voxel_ce = F.cross_entropy(outputs, target, reduction="none")
            ce = (voxel_ce * voxel_weight).sum() / voxel_weight.sum()
        else:
            ce = F.cross_entropy(outputs, target, weight=weight)
        return ce + self.dice_weight * soft_dice_loss(outputs, target, range(1, len(self.class_names)))

    def metrics(self) -> dict[str, Metric]:
        found: dict[str, Metric] = {f"dice_{name.lower()}": Dice(label)
                                    for label, name in enumerate(self.class_names) if label > 0}
        found["dice_brain"] = Dice(None)
        if self.hausdorff_voxel_size is not None:
            for label, name in enumerate(self.class_names):
                if label > 0:
                    found[f"hd95_{name.lower()}"] = HausdorffDistance95(label, self.hausdorff_voxel_size)
            found["hd95_brain"] = HausdorffDistance95(None, self.hausdorff_voxel_size)
        return found

    def update_metrics(self, metrics: dict[str, Metric], outputs: torch.Tensor, batch) -> None:
        target, _ = self.target(batch)
        for metric in metrics.values():
            metric.update(outputs, target)

    def predict(self, outputs: torch.Tensor, batch) -> torch.Tensor:
        return outputs.argmax(dim=1)
