"""Grids: from the scan's voxels to the model's grid, and from the model's grid back to the scan's.

This layer moves arrays between grids and never looks at what they mean. On the way in, the scan is
permuted/flipped to the closest canonical (RAS) axis order (no interpolation), its zero borders are cut
(:func:`zero_border_crop`) and it is resampled to the model's spacing and normalised
(:func:`to_model_grid`). On the way out, class probabilities on (a box of) the model grid are resampled
trilinearly onto the canonical grid (:func:`resample_box`) and put back into the scan's own axis order
(:func:`back_to_scan`). An oblique affine is therefore never resampled through: the model sees the scan in
its own axes, as it saw rotated scans in training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from torchsci_neuro.io import Scan
from torchsci_neuro.synth import normalise_intensity

#: The canonical axis order (R, A, S) as a nibabel orientation.
RAS = nib.orientations.axcodes2ornt(("R", "A", "S"))


def canonical(scan: Scan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data with axes permuted/flipped to the closest RAS order (no interpolation), its voxel sizes
    in that order, and the nibabel orientation transform that did it.

    The data is a view of ``scan.data`` (permuted and flipped strides), not a copy: a NIfTI's voxels are in
    Fortran order, and a C-ordered copy of a 384^3 scan cost 217 MiB and a CPU second; every step after this
    one reads any memory layout (:func:`to_model_grid` copies only the region it resamples).

    Examples
    --------
    >>> import nibabel as nib
    >>> from torchsci_neuro.io import load_scan
    >>> scan = load_scan(nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.diag([-1.0, 1, 1, 1])))
    >>> data, voxel_size, _ = canonical(scan)
    >>> data[:, 0, 0].tolist(), voxel_size.tolist(), bool(np.shares_memory(data, scan.data))
    ([12.0, 0.0], [1.0, 1.0, 1.0], True)
    """
    ornt = nib.orientations.io_orientation(scan.affine)
    data = nib.orientations.apply_orientation(scan.data, ornt)
    # ornt[i, 0] is the output axis of input axis i, so voxel sizes move the same way.
    voxel_size = np.empty(3)
    voxel_size[ornt[:, 0].astype(int)] = scan.voxel_size
    return data, voxel_size, ornt


def zero_border_crop(data: np.ndarray, voxel_size: Sequence[float],
                     margin_mm: float) -> tuple[tuple[slice, ...], list[tuple[int, int]]]:
    """What of a canonical scan to segment: its non-zero content and ``margin_mm`` of zeros around it.

    On each side where the scan has a border of exact zeros (skull-stripped or zero-padded scans; a face
    under 5% non-zero counts, as a brainstem cut by the bottom face), the region is the content's bounding
    box grown by ``margin_mm``, past the array's edge if need be (the returned padding, filled with zeros).
    Sides whose face is mostly non-zero (real air with noise, cut by the field of view) are kept as they are. Zero-padding a scan into a larger grid therefore gives the very
    same region and the same labels and volumes: the model grid, the intensities and the windows no longer
    depend on how much zero surrounds the head (the MNI T1 padded to 320^3 had moved CSF by -4.8%, because
    the model grid's phase and scale, and the windows' tiling, followed the field of view).

    Returns
    -------
    tuple
        The slices of ``data`` to keep and the ``(before, after)`` zero padding per axis.

    Examples
    --------
    >>> scan = np.zeros((30, 30, 30)); scan[10:20, 5:25, 0:30] = 1.0
    >>> zero_border_crop(scan, (1.0, 1.0, 1.0), 4.0)
    ((slice(6, 24, None), slice(1, 29, None), slice(0, 30, None)), [(0, 0), (0, 0), (0, 0)])
    >>> zero_border_crop(np.pad(scan, 9), (1.0, 1.0, 1.0), 4.0)[0]
    (slice(15, 33, None), slice(10, 38, None), slice(5, 43, None))
    """
    content = data != 0
    if not content.any():
        return tuple(slice(0, n) for n in data.shape), [(0, 0)] * data.ndim
    slices, pads = [], []
    for axis, v in enumerate(voxel_size):
        hits = np.flatnonzero(content.any(axis=tuple(a for a in range(data.ndim) if a != axis)))
        grow, n = math.ceil(margin_mm / float(v)), data.shape[axis]
        # A face under 5% non-zero is a zero border too: the MNI T1's brainstem reaches its bottom face in 43
        # voxels (0.1%), while real scans' faces are 78-100% non-zero (noise in the air).
        # Faces as views: np.take copied them element by element from a Fortran-ordered scan (5 s at 384^3).
        before = (slice(None),) * axis
        start = int(hits[0]) - grow if content[(*before, 0)].mean() < 0.05 else 0
        stop = int(hits[-1]) + 1 + grow if content[(*before, n - 1)].mean() < 0.05 else n
        slices.append(slice(max(start, 0), min(stop, n)))
        pads.append((max(-start, 0), max(stop - n, 0)))
    return tuple(slices), pads


def model_grid_shape(shape: Sequence[int], voxel_size: Sequence[float], spacing: float) -> list[int]:
    """Voxels per axis of the grid at ``spacing`` mm that spans the same field of view."""
    return [max(1, round(n * v / spacing)) for n, v in zip(shape, voxel_size, strict=True)]


def to_model_grid(data: np.ndarray, voxel_size: Sequence[float], spacing: float) -> np.ndarray:
    """Resample canonical ``data`` to ``spacing`` mm (same field of view) and normalise it to [0, 1].

    Shrinking by more than 1.5x blurs first, so thin structures do not alias at the model's spacing.
    """
    model_shape = model_grid_shape(data.shape, voxel_size, spacing)
    factors = np.asarray(data.shape) / np.asarray(model_shape)
    if (factors > 1.5).any():
        data = ndi.gaussian_filter(data, sigma=np.sqrt(np.clip(factors ** 2 - 1.0, 0.0, None)) / 2.0)
    image = _resample(torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None], model_shape)[0]
    return normalise_intensity(image.numpy())


def _resample(volume: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear resampling of ``(C, D, H, W)`` onto a grid of ``size`` spanning the same field of view."""
    if tuple(volume.shape[1:]) == tuple(size):
        return volume
    return F.interpolate(volume[None], size=tuple(size), mode="trilinear", align_corners=False)[0]


def _interpolation_axis(source: int, target: int, start: int, stop: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Canonical voxels ``lo:hi`` whose trilinear source (align_corners=False, as ``F.interpolate``) lies in
    the model-grid range ``start:stop`` of an axis resampled from ``source`` to ``target`` voxels, with
    their two source indices (relative to ``start``) stacked and the weight of the second."""
    scale = source / target
    positions = np.clip((np.arange(target) + 0.5) * scale - 0.5, 0.0, source - 1)
    inside = np.flatnonzero((positions >= start) & (positions <= stop - 1))
    lo, hi = int(inside[0]), int(inside[-1]) + 1
    pos = positions[lo:hi]
    first = np.floor(pos).astype(np.int64)
    second = np.minimum(first + 1, stop - 1)
    return lo, hi, np.stack([first - start, second - start]), (pos - first).astype(np.float32)


def resample_box(probs: torch.Tensor, model_shape: Sequence[int], box: Sequence[slice],
                 canonical_shape: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Trilinear resampling of ``(C, ...)`` probabilities that cover ``box`` of the model grid onto the
    canonical grid, computed only for the canonical voxels the box covers (outside it is background).

    Equal to ``F.interpolate(..., mode="trilinear", align_corners=False)`` of the whole model grid inside
    the box, without ever holding the whole canonical grid's probabilities (4 x 512^3 floats is 2 GiB).
    :func:`resample_box_slabs` gives the same values a slab at a time.

    Returns
    -------
    tuple
        The resampled ``(C, ...)`` probabilities and the canonical slices they fill.

    Examples
    --------
    >>> probs = torch.rand(2, 6, 7, 8)
    >>> out, where = resample_box(probs[:, 1:4], (6, 7, 8), (slice(1, 4), slice(0, 7), slice(0, 8)), (12, 14, 16))
    >>> full = F.interpolate(probs[None], size=(12, 14, 16), mode="trilinear", align_corners=False)[0]
    >>> bool(torch.allclose(out, full[(slice(None), *where)]))
    True
    """
    slabs = list(resample_box_slabs(probs, model_shape, box, canonical_shape, slab=max(int(canonical_shape[0]), 1)))
    return slabs[0][1], slabs[0][0]


def resample_box_slabs(probs: torch.Tensor, model_shape: Sequence[int], box: Sequence[slice],
                       canonical_shape: Sequence[int], slab: int = 8) -> Iterator[tuple[tuple[slice, ...], torch.Tensor]]:
    """:func:`resample_box`, ``slab`` canonical voxels of the first axis at a time.

    Each slab's values are the very numbers :func:`resample_box` computes for those voxels (the same
    operations in the same order), but the temporaries are a slab's, not the whole box's: on a 1 mm scan the
    4-class probabilities of a head's box are several hundred MB per copy and the resampling made three.

    Yields
    ------
    tuple
        The canonical slices a slab fills and its ``(C, ...)`` probabilities.
    """
    axes = [_interpolation_axis(int(source), int(target), sl.start, sl.stop)
            for source, target, sl in zip(model_shape, canonical_shape, box, strict=True)]
    lo, hi, index, weight = axes[0]
    index_tensor, weight_tensor = torch.from_numpy(index), torch.from_numpy(weight).to(probs.dtype)
    rest = [(slice(lo_, hi_), torch.from_numpy(index_), torch.from_numpy(weight_).to(probs.dtype))
            for lo_, hi_, index_, weight_ in axes[1:]]
    for first_row in range(0, hi - lo, slab):
        rows = slice(first_row, min(first_row + slab, hi - lo))
        part = _lerp(probs, 1, index_tensor[:, rows], weight_tensor[rows])
        for axis, (_, index_, weight_) in enumerate(rest, start=2):
            part = _lerp(part, axis, index_, weight_)
        yield (slice(lo + rows.start, lo + rows.stop), *(sl for sl, _, _ in rest)), part


def covered_box(model_shape: Sequence[int], box: Sequence[slice], canonical_shape: Sequence[int]) -> tuple[slice, ...]:
    """The canonical slices that :func:`resample_box` fills from ``box`` of the model grid.

    Examples
    --------
    >>> covered_box((10, 10, 10), (slice(2, 5), slice(0, 10), slice(0, 10)), (20, 20, 20))
    (slice(5, 9, None), slice(0, 20, None), slice(0, 20, None))
    """
    return tuple(slice(*_interpolation_axis(int(source), int(target), sl.start, sl.stop)[:2])
                 for source, target, sl in zip(model_shape, canonical_shape, box, strict=True))


def _lerp(values: torch.Tensor, dim: int, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along ``dim`` between ``index[0]`` and ``index[1]`` with ``weight`` on the second."""
    shape = [1] * values.ndim
    shape[dim] = -1
    first = values.index_select(dim, index[0])
    second = values.index_select(dim, index[1])
    return first + (second - first) * weight.view(shape)


def back_to_scan(labels: np.ndarray, probs: np.ndarray | None, canonical_shape: Sequence[int],
                  keep: Sequence[slice], pads: Sequence[tuple[int, int]],
                  ornt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and probabilities) of the :func:`zero_border_crop` region, put back into the whole canonical
    grid (background elsewhere) and permuted back to the scan's axis order ``ornt``."""
    inner = tuple(slice(before, n - after) for (before, after), n in zip(pads, labels.shape, strict=True))
    back = nib.orientations.ornt_transform(RAS, ornt)
    full = np.zeros(tuple(canonical_shape), dtype=np.uint8)
    full[tuple(keep)] = labels[inner]
    labels = np.ascontiguousarray(nib.orientations.apply_orientation(full, back)).astype(np.uint8)
    if probs is None:
        return labels, None
    full_probs = np.zeros((probs.shape[0], *canonical_shape), dtype=np.float32)
    full_probs[0] = 1.0
    full_probs[(slice(None), *keep)] = probs[(slice(None), *inner)]
    return labels, np.stack([nib.orientations.apply_orientation(p, back) for p in full_probs]).astype(np.float32)
