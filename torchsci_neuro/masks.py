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

from torchsci_neuro.grid import RAS, covered_box, resample_box_slabs


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

    Examples
    --------
    >>> probs = np.zeros((4, 9, 9, 9), np.float32); probs[0] = 1.0
    >>> probs[:, 2:7, 2:7, 2:7] = np.array([0.1, 0.1, 0.2, 0.6], np.float32)[:, None, None, None]
    >>> np.bincount(postprocess(probs, "tissue").ravel()).tolist()
    [604, 0, 0, 125]
    """
    brain, tissue = _voxel_labels(probs, task)
    return clean_labels(brain, tissue)


def _voxel_labels(probs: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Each voxel's own decision: brain where "not background" outweighs background, and the most probable
    tissue class (``None`` for ``task="brain_mask"``)."""
    brain = probs[1:].sum(axis=0) > probs[0]
    return brain, None if task == "brain_mask" else (probs[1:].argmax(axis=0) + 1).astype(np.uint8)


def clean_labels(brain: np.ndarray, tissue: np.ndarray | None) -> np.ndarray:
    """The brain's largest connected component with its holes filled, labelled with ``tissue`` (uint8, 1 for
    brain where ``tissue`` is ``None``) and 0 elsewhere. ``brain`` is changed in place.

    Examples
    --------
    >>> brain = np.zeros((9, 9, 9), bool); brain[1:8, 1:8, 1:8] = True; brain[4, 4, 4] = False
    >>> brain[0, 0, 0] = True  # a speck apart from the brain
    >>> labels = clean_labels(brain, None)
    >>> int(labels.sum()), int(labels[4, 4, 4]), int(labels[0, 0, 0])
    (343, 1, 0)
    """
    # Labelling components and filling holes inside the brain's bounding box plus one voxel of
    # background gives the same mask as on the whole grid (the margin keeps the outside connected
    # to the border) at a fraction of the cost: a 1 mm scan is mostly air.
    if brain.any():
        box = bounding_box(brain, margin=1)
        brain[box] = ndi.binary_fill_holes(largest_component(brain[box]))
    if tissue is None:
        return brain.astype(np.uint8)
    return np.where(brain, tissue, 0).astype(np.uint8)


#: A model-grid voxel whose background posterior is at least this cannot make a canonical voxel brain,
#: nor can any mix of such voxels: trilinear weights are convex, so the mix's background stays above 0.5.
_SURELY_BACKGROUND = 0.75


def _brain_reach(background: torch.Tensor, margin: int = 2) -> tuple[slice, ...] | None:
    """The box of the model-grid voxels that could make a canonical voxel brain (background posterior under
    :data:`_SURELY_BACKGROUND`), grown by ``margin`` voxels (a second safety: the threshold's distance
    from 0.5 alone keeps every brain voxel inside); ``None`` when there are none."""
    candidates = (background < _SURELY_BACKGROUND).numpy()
    if not candidates.any():
        return None
    return bounding_box(candidates, margin)


def labels_on_scan_grid(probs: torch.Tensor, canonical_shape: Sequence[int], ornt: np.ndarray, task: str,
                        with_probabilities: bool = False, model_shape: Sequence[int] | None = None,
                        box: Sequence[slice] | None = None, image: np.ndarray | None = None,
                        voxel_size: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and probabilities on the scan's own grid from ``(C, ...)`` probabilities on the model grid.

    The probabilities are resampled to the canonical grid of ``canonical_shape`` (see
    :func:`~torchsci_neuro.grid.canonical`), turned into labels as :func:`postprocess` does, and both go back
    to the scan's axis order ``ornt``. With ``model_shape`` and ``box``, ``probs`` covers only ``box`` of a
    model grid of ``model_shape`` (see :func:`~torchsci_neuro.windows.head_box`); everything outside it is
    background.

    With ``image`` (the scan's intensities on the canonical grid) and ``voxel_size``, a tissue model's
    labels inside the brain are refined at the scan's own resolution by its intensities
    (:func:`~torchsci_neuro.refine.refine_tissue`); the brain mask is the same either way, and the returned
    tissue probabilities are the refined ones (times the network's brain probability).

    Without ``with_probabilities``, only the box of model voxels that could be brain is resampled (the
    head's box holds skull, scalp and a margin of air around them), a slab at a time: the labels are those
    of resampling the whole box, voxel for voxel, at a fraction of the time and memory.

    Returns
    -------
    tuple of np.ndarray
        uint8 labels ``(X, Y, Z)`` and float32 probabilities ``(C, X, Y, Z)`` in the scan's axis order
        (``None`` unless ``with_probabilities``).

    Examples
    --------
    >>> probs = torch.zeros(4, 10, 10, 10); probs[0] = 1.0; probs[:, 3:7, 3:7, 3:7] = torch.tensor([0.1, 0.1, 0.7, 0.1])[:, None, None, None]
    >>> labels, _ = labels_on_scan_grid(probs, (20, 20, 20), RAS, "tissue")
    >>> labels.shape, np.unique(labels).tolist()
    ((20, 20, 20), [0, 2])
    """
    probs = probs.cpu().float()
    if box is None:
        model_shape, box = probs.shape[1:], tuple(slice(0, n) for n in probs.shape[1:])
    labels = np.zeros(tuple(canonical_shape), dtype=np.uint8)
    full = None
    if with_probabilities:
        full = np.zeros((probs.shape[0], *canonical_shape), dtype=np.float32)
        full[0] = 1.0
        reach = tuple(slice(0, n) for n in probs.shape[1:])
    else:
        reach = _brain_reach(probs[0])
    if reach is not None:
        where = tuple(slice(b.start + r.start, b.start + r.stop) for b, r in zip(box, reach, strict=True))
        out_box = covered_box(model_shape, where, canonical_shape)
        shape = tuple(sl.stop - sl.start for sl in out_box)
        brain = np.zeros(shape, dtype=bool)
        refine = task != "brain_mask" and image is not None and probs.shape[0] > 2
        if refine and voxel_size is None:
            raise ValueError("labels_on_scan_grid(image=...) needs the image's voxel_size to refine the tissue labels.")
        # Refined, every brain voxel's tissue comes from the refinement, so the slabs give only the brain. float16
        # halves the largest array of a fine scan (0.5 mm: 3 x 37 M voxels); the refinement's prior needs no more
        # than three significant digits.
        tissue = None if task == "brain_mask" or refine else np.zeros(shape, dtype=np.uint8)
        posteriors = np.zeros((probs.shape[0] - 1, *shape), dtype=np.float16) if refine else None
        for slices, part in resample_box_slabs(probs[(slice(None), *reach)], model_shape, where, canonical_shape):
            part = part.numpy()
            rows = slice(slices[0].start - out_box[0].start, slices[0].stop - out_box[0].start)
            brain[rows], slab_tissue = _voxel_labels(part, "brain_mask" if refine else task)
            if tissue is not None:
                tissue[rows] = slab_tissue
            if posteriors is not None:
                posteriors[:, rows] = part[1:]
            if full is not None:
                full[(slice(None), *slices)] = part
        labels[out_box] = clean_labels(brain, tissue)
        if posteriors is not None:
            # lazy: only tissue labels with an image need it
            from torchsci_neuro.refine import refine_brain_voxels

            region_labels = labels[out_box]  # a view
            refined = refine_brain_voxels(image[out_box], region_labels > 0, posteriors, voxel_size,
                                          labels_only=full is None)
            if refined is not None:
                box, inside, q = refined
                region_labels[box][inside] = (q if full is None else q.argmax(axis=0)) + 1
                if full is not None:
                    region = full[(slice(None), *out_box)][(slice(None), *box)]
                    brain_probability = 1.0 - region[0][inside]
                    for c in range(q.shape[0]):
                        region[c + 1][inside] = brain_probability * q[c]
    back = nib.orientations.ornt_transform(RAS, ornt)
    labels = np.ascontiguousarray(nib.orientations.apply_orientation(labels, back)).astype(np.uint8)
    if full is None:
        return labels, None
    if np.array_equal(back, RAS):
        return labels, full
    return labels, np.stack([nib.orientations.apply_orientation(p, back) for p in full]).astype(np.float32, copy=False)
