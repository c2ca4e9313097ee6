"""Labels from class probabilities: the brain mask's cleanup and the tissue labels on the scan's grid.

This layer turns posteriors into labels: the brain is the largest connected component of "not
background" with its holes filled, and the tissue label is the most probable tissue class inside it
(:func:`postprocess`). :func:`labels_on_scan_grid` does this on the scan's canonical grid from
probabilities on the model grid (resampled by :mod:`torchsci_neuro.grid`).
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi

from torchsci_neuro.grid import RAS, resample_box


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (6-connectivity) of a boolean mask; the mask itself if it has one."""
    from skimage import measure  # lazy: kept out of the plug-in's import

    components = measure.label(mask, connectivity=1)
    if components.max() <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == sizes.argmax()


def bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the smallest box holding every true voxel of ``mask``, grown by ``margin`` (clipped)."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def postprocess(probs: np.ndarray, task: str) -> np.ndarray:
    """Labels from ``(C, X, Y, Z)`` class probabilities: the brain is the largest connected component
    with its holes filled; tissue labels are the most probable tissue class inside it.

    ``C`` is 4 (background, CSF, GM, WM) or, for a brain-mask model, 2 (outside, brain).
    """
    brain = probs[1:].sum(axis=0) > probs[0]
    # Labelling components and filling holes inside the brain's bounding box plus one voxel of
    # background gives the same mask as on the whole grid (the margin keeps the outside connected
    # to the border) at a fraction of the cost: a 1 mm scan is mostly air.
    if brain.any():
        box = bounding_box(brain, margin=1)
        brain[box] = ndi.binary_fill_holes(largest_component(brain[box]))
    if task == "brain_mask":
        return brain.astype(np.uint8)
    tissue = (probs[1:].argmax(axis=0) + 1).astype(np.uint8)
    return np.where(brain, tissue, 0).astype(np.uint8)


def labels_on_scan_grid(probs: torch.Tensor, canonical_shape: Sequence[int], ornt: np.ndarray, task: str,
                        with_probabilities: bool = False, model_shape: Sequence[int] | None = None,
                        box: Sequence[slice] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and probabilities on the scan's own grid from ``(C, ...)`` probabilities on the model grid.

    The probabilities are resampled to the canonical grid of ``canonical_shape`` (see :func:`canonical`),
    turned into labels by :func:`postprocess`, and both go back to the scan's axis order ``ornt``.
    With ``model_shape`` and ``box``, ``probs`` covers only ``box`` of a model grid of ``model_shape``
    (see :func:`head_box`); everything outside it is background.

    Returns
    -------
    tuple of np.ndarray
        uint8 labels ``(X, Y, Z)`` and float32 probabilities ``(C, X, Y, Z)`` in the scan's axis order
        (``None`` unless ``with_probabilities``).
    """
    probs = probs.cpu().float()
    if box is None:
        model_shape, box = probs.shape[1:], tuple(slice(0, n) for n in probs.shape[1:])
    probs, out_box = resample_box(probs, model_shape, box, canonical_shape)
    probs = probs.numpy()
    labels = np.zeros(tuple(canonical_shape), dtype=np.uint8)
    labels[out_box] = postprocess(probs, task)
    back = nib.orientations.ornt_transform(RAS, ornt)
    labels = np.ascontiguousarray(nib.orientations.apply_orientation(labels, back)).astype(np.uint8)
    if not with_probabilities:
        return labels, None
    full = np.zeros((probs.shape[0], *canonical_shape), dtype=np.float32)
    full[0] = 1.0
    full[(slice(None), *out_box)] = probs
    return labels, np.stack([nib.orientations.apply_orientation(p, back) for p in full]).astype(np.float32)
