"""Volumes of a segmentation with an interval: from the class posteriors, or from mirror test-time augmentation.

A group study cites volumes, so each volume comes with a range that says how much of it the model is
unsure about:

- ``"posterior"``: the label's confident core (voxels with posterior >= 0.75 that carry the label) to its
  plausible extent (the label plus every voxel within two voxels of the brain whose posterior for it is
  >= 0.25). The range is the partial-volume band at the label's boundary, not a statistical confidence
  interval; it is empty (low = high) only where the model is sure of every voxel.
- ``"mirror"``: segment the scan and its left-right mirror image (the one mirror a brain is nearly
  symmetric under) and report both volumes' range: a model that depends on the side it sees disagrees
  with itself. It needs no posteriors but costs a second inference.

TIV (total intracranial volume) is the volume of every non-background label (CSF + GM + WM).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Posterior thresholds of the ``"posterior"`` interval: confident core and plausible extent.
CORE, EXTENT = 0.75, 0.25


def hard_volumes(labels: np.ndarray, voxel_ml: float, names: Sequence[str]) -> dict[str, float]:
    """``{"TIV": mL, name: mL, ...}`` from integer labels (index 0 is background).

    Examples
    --------
    >>> hard_volumes(np.array([[[0, 1], [2, 2]]]), 0.5, ("background", "CSF", "GM"))
    {'TIV': 1.5, 'CSF': 0.5, 'GM': 1.0}
    """
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=len(names))
    volumes = {"TIV": float(counts[1:].sum()) * voxel_ml}
    volumes.update({name: float(counts[i]) * voxel_ml for i, name in enumerate(names) if i > 0})
    return volumes


def posterior_intervals(labels: np.ndarray, probs: np.ndarray, voxel_ml: float, names: Sequence[str]
                        ) -> dict[str, tuple[float, float]]:
    """``{"TIV": (low, high), name: (low, high), ...}`` in mL from ``(C, X, Y, Z)`` posteriors on the labels' grid.

    ``low <= hard volume <= high`` by construction: the core is a subset of the label's voxels, the
    extent a superset.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 0]]])
    >>> probs = np.array([[[[0.1, 0.4, 0.7, 0.9]]], [[[0.9, 0.6, 0.3, 0.1]]]])
    >>> posterior_intervals(labels, probs, 1.0, ("background", "brain"))
    {'TIV': (1.0, 3.0), 'brain': (1.0, 3.0)}
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    brain = labels > 0
    reach = ndi.binary_dilation(brain, iterations=2) if brain.any() else brain
    intervals: dict[str, tuple[float, float]] = {}
    p_brain = 1.0 - probs[0]
    intervals["TIV"] = (float(np.count_nonzero(brain & (p_brain >= CORE))) * voxel_ml,
                        float(np.count_nonzero(brain | (reach & (p_brain >= EXTENT)))) * voxel_ml)
    for i, name in enumerate(names):
        if i == 0:
            continue
        mine = labels == i
        intervals[name] = (float(np.count_nonzero(mine & (probs[i] >= CORE))) * voxel_ml,
                           float(np.count_nonzero(mine | (reach & (probs[i] >= EXTENT)))) * voxel_ml)
    return intervals


def mirror_intervals(labels: np.ndarray, mirrored_labels: np.ndarray, voxel_ml: float, names: Sequence[str]
                     ) -> dict[str, tuple[float, float]]:
    """``{"TIV": (low, high), ...}``: the range of each volume between a segmentation and its mirror run's.

    Examples
    --------
    >>> mirror_intervals(np.array([1, 1, 2]), np.array([1, 2, 2]), 1.0, ("background", "CSF", "GM"))
    {'TIV': (3.0, 3.0), 'CSF': (1.0, 2.0), 'GM': (1.0, 2.0)}
    """
    first, second = hard_volumes(labels, voxel_ml, names), hard_volumes(mirrored_labels, voxel_ml, names)
    return {key: (min(first[key], second[key]), max(first[key], second[key])) for key in first}


def confidence(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean posterior of the chosen class over the brain's voxels (1 = sure of every voxel); ``None`` if no brain.

    Examples
    --------
    >>> confidence(np.array([[[1, 0]]]), np.array([[[[0.2, 0.9]]], [[[0.8, 0.1]]]]))
    0.8
    """
    labels = np.asarray(labels)
    brain = labels > 0
    if not brain.any():
        return None
    chosen = np.take_along_axis(probs, labels[None].astype(np.int64), axis=0)[0]
    return round(float(chosen[brain].mean()), 4)
