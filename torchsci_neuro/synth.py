"""Synthetic training images from a label map, in the style of SynthSeg (Billot et al., 2023).

This layer turns the template's head labels (:func:`torchsci_neuro.templates.mni_head_labels`) into
random scans: a random affine and elastic deformation move the labels, each label gets an intensity
from a random Gaussian mixture, then partial-volume blur, a bias field, thick slices, noise and gamma
make it look acquired. Fields of view are wide and often off-centre, so crops hold air, neck, face and
image edges: a model that only ever saw the brain in the middle of a crop calls air and face brain.

Randomness comes from numpy's global generator unless a ``RandomState`` is passed. The Trainer reseeds
that global generator for every batch inside DataLoader workers, so a resumed run draws the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from torch.utils.data import Dataset

from torchsci.errors import ConfigError
from torchsci_neuro.templates import NUM_TISSUE_LABELS, LabelVolume, mni_head_labels

# Roughly where the brain's centre lies in MNI space (mm); fields of view are drawn around it.
_BRAIN_CENTRE_MM = np.array([0.0, -18.0, 10.0])

# T1-weighted intensity ranges per head label (air, CSF, GM, WM, extra CSF, bone, muscle, fat, cord,
# neck, face, eye), as fractions of the brightest tissue; the per-image means are drawn inside them.
_T1_RANGES = np.array([
    (0.00, 0.05), (0.05, 0.30), (0.35, 0.60), (0.60, 0.85), (0.05, 0.30), (0.00, 0.25),
    (0.25, 0.55), (0.70, 1.00), (0.50, 0.80), (0.20, 0.70), (0.20, 0.80), (0.05, 0.40),
])


def normalise_intensity(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the air level (``low`` percentile) to 0 and the ``high`` percentile of the head to 1, and clip.

    The head is what lies above an Otsu threshold of the voxels brighter than the air level, so the
    bright end does not depend on how much air the field of view holds: zero-padding a scan to a larger
    grid leaves its normalised intensities unchanged (a percentile over the whole field of view falls as
    air is added, which made the shipped model call more white matter in padded scans). The same
    normalisation must be applied to real scans at inference.

    Parameters
    ----------
    image
        Intensities of any shape.
    low, high
        Percentiles mapped to 0 (of the whole image) and to 1 (of the head).

    Returns
    -------
    np.ndarray
        float32 array of the same shape in ``[0, 1]``.

    Examples
    --------
    >>> scan = np.zeros((20, 20, 20)); scan[5:15, 5:15, 5:15] = np.linspace(1.0, 2.0, 1000).reshape(10, 10, 10)
    >>> padded = np.pad(scan, 20)
    >>> bool(np.allclose(normalise_intensity(scan), normalise_intensity(padded)[20:-20, 20:-20, 20:-20]))
    True
    """
    from skimage.filters import threshold_otsu  # lazy: kept out of the plug-in's import

    lo = float(np.percentile(image, low))
    above_air = image[image > lo]
    if above_air.size < 10 or float(above_air.min()) == float(above_air.max()):
        head = above_air if above_air.size else image.ravel()
    else:
        head = above_air[above_air > threshold_otsu(above_air)]
    hi = float(np.percentile(head, high))
    scaled = (image - lo) / max(hi - lo, 1e-6)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(rng: Any, channels: int, coarse: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """A smooth random field: Gaussian values on a coarse grid, upsampled trilinearly to ``shape``."""
    coarse_values = rng.normal(0.0, 1.0, size=(channels, coarse, coarse, coarse)) * scale
    field = F.interpolate(torch.from_numpy(coarse_values.astype(np.float32))[None], size=shape,
                          mode="trilinear", align_corners=True)
    return field[0].numpy()


def _sample_coordinates(head: LabelVolume, shape: tuple[int, int, int], voxel_size: float, rng: Any,
                        max_rotation_deg: float, scale_range: tuple[float, float], max_elastic_mm: float,
                        shift_mm: np.ndarray) -> np.ndarray:
    """Template voxel coordinates ``(3, D, H, W)`` of each output voxel under a random spatial transform."""
    offsets = [(np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * voxel_size for n in shape]
    angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, size=3))
    scales = rng.uniform(*scale_range, size=3)
    if rng.uniform() < 0.5:  # the template is symmetric, so a left-right mirror is another plausible head
        scales[0] = -scales[0]
    linear = _rotation(angles) @ np.diag(scales)
    brain_centre = _BRAIN_CENTRE_MM if head.centre_mm is None else np.asarray(head.centre_mm)
    centre = brain_centre + rng.uniform(-1.0, 1.0, size=3) * shift_mm
    world_to_voxel = np.linalg.inv(head.affine)
    matrix = (world_to_voxel[:3, :3] @ linear).astype(np.float32)
    origin = (world_to_voxel[:3, :3] @ centre + world_to_voxel[:3, 3]).astype(np.float32)
    coords = _smooth_field(rng, 3, 5, shape, rng.uniform(0.0, max_elastic_mm))
    for row in range(3):
        coords[row] += origin[row]
        coords[row] += matrix[row, 0] * offsets[0][:, None, None]
        coords[row] += matrix[row, 1] * offsets[1][None, :, None]
        coords[row] += matrix[row, 2] * offsets[2][None, None, :]
    return coords


def _intensity_means(rng: Any, p_random_contrast: float, ranges: np.ndarray) -> np.ndarray:
    if rng.uniform() < p_random_contrast:
        means = rng.uniform(0.0, 1.0, size=len(ranges))
        if rng.uniform() < 0.5:  # most real scans still have dark air, whatever the contrast
            means[0] = rng.uniform(0.0, 0.05)
        return means
    return rng.uniform(ranges[:, 0], ranges[:, 1])


def _thick_slices(image: np.ndarray, rng: Any, voxel_size: float, max_thickness_mm: float) -> np.ndarray:
    """Simulate an acquisition with thick slices along one random axis, resampled back to ``voxel_size``."""
    axis = int(rng.randint(0, 3))
    factor = rng.uniform(1.0, max_thickness_mm / voxel_size)
    blurred = ndi.gaussian_filter1d(image, sigma=0.4 * factor, axis=axis, mode="nearest")
    low_shape = list(image.shape)
    low_shape[axis] = max(2, round(image.shape[axis] / factor))
    low = F.interpolate(torch.from_numpy(blurred)[None, None], size=tuple(low_shape), mode="trilinear",
                        align_corners=True)
    return F.interpolate(low, size=image.shape, mode="trilinear", align_corners=True)[0, 0].numpy()


def _crop_field_of_view(image: np.ndarray, labels: np.ndarray, rng: Any, max_fraction: float) -> None:
    """Blank a random slab at crop edges (in place): scans end at their field of view, with no tissue beyond."""
    for axis, n in enumerate(image.shape):
        if rng.uniform() < 0.5:
            continue
        cut = int(rng.uniform(0.0, max_fraction) * n)
        if cut == 0:
            continue
        index = [slice(None)] * 3
        index[axis] = slice(0, cut) if rng.uniform() < 0.5 else slice(n - cut, n)
        image[tuple(index)] = 0.0
        labels[tuple(index)] = 0


def synthesize(
    shape: tuple[int, int, int] = (96, 96, 96),
    voxel_size: float = 2.0,
    rng: np.random.RandomState | None = None,
    *,
    head: LabelVolume | None = None,
    p_skull_stripped: float = 0.25,
    p_random_contrast: float = 0.3,
    p_thick_slices: float = 0.5,
    p_field_of_view_cut: float = 0.4,
    max_rotation_deg: float = 15.0,
    scale_range: tuple[float, float] = (0.85, 1.15),
    max_elastic_mm: float = 3.0,
    shift_mm: tuple[float, float, float] = (30.0, 35.0, 40.0),
    max_thickness_mm: float = 6.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One random synthetic scan and its tissue labels.

    Parameters
    ----------
    shape
        Output grid ``(D, H, W)`` along the template's R, A, S axes.
    voxel_size
        Output voxel edge in mm.
    rng
        A ``numpy.random.RandomState``; ``None`` uses numpy's global generator (what the Trainer seeds).
    head
        Head label map (default: :func:`~torchsci_neuro.templates.mni_head_labels`).
    p_skull_stripped
        Probability that everything outside the brain is air, as in a skull-stripped scan.
    p_random_contrast
        Probability of fully random label intensities instead of a T1-like ordering.
    p_thick_slices, max_thickness_mm
        Probability of simulating thick slices along one axis, and their largest thickness.
    p_field_of_view_cut
        Probability that the scan's field of view ends inside the crop (blanked slabs at the edges).
    max_rotation_deg, scale_range, max_elastic_mm, shift_mm
        Spatial augmentation: rotation about each axis, per-axis scaling, elastic displacement and the
        largest shift of the crop centre away from the brain centre, per axis, in mm.

    Returns
    -------
    image, labels
        ``image`` float32 ``(D, H, W)`` normalised to ``[0, 1]``; ``labels`` uint8 ``(D, H, W)``:
        0 background, 1 CSF, 2 GM, 3 WM.

    Examples
    --------
    >>> image, labels = synthesize((32, 32, 32), 4.0, np.random.RandomState(0))  # doctest: +SKIP
    >>> image.shape, int(labels.max()) <= 3  # doctest: +SKIP
    ((32, 32, 32), True)
    """
    rng = np.random.mtrand._rand if rng is None else rng  # numpy's global generator, seeded by the Trainer
    head = mni_head_labels() if head is None else head
    coords = _sample_coordinates(head, shape, voxel_size, rng, max_rotation_deg, scale_range, max_elastic_mm,
                                 np.asarray(shift_mm))
    head_labels = ndi.map_coordinates(head.labels, coords, order=0, mode="constant", cval=0)
    skull_stripped = rng.uniform() < p_skull_stripped
    if skull_stripped:
        head_labels[head_labels >= NUM_TISSUE_LABELS] = 0

    ranges = _T1_RANGES if head.t1_ranges is None else head.t1_ranges
    num_labels = len(ranges)
    means = _intensity_means(rng, p_random_contrast, ranges).astype(np.float32)
    stds = rng.uniform(0.0, 0.06, size=num_labels).astype(np.float32)
    image = means[head_labels] + stds[head_labels] * rng.standard_normal(size=shape).astype(np.float32)
    if head.texture is not None:
        # The real scan's structure within each label (sinus, marrow, muscle planes), at a random strength.
        texture = ndi.map_coordinates(head.texture, coords, order=1, mode="constant", cval=0.0)
        if skull_stripped:
            texture[head_labels == 0] = 0.0
        image += np.float32(rng.uniform(0.3, 1.2)) * texture.astype(np.float32)
    image = ndi.gaussian_filter(image, sigma=rng.uniform(0.3, 1.0))  # partial volume at tissue borders
    image *= np.exp(_smooth_field(rng, 1, 4, shape, rng.uniform(0.0, 0.3))[0])  # receive-coil bias field
    if rng.uniform() < p_thick_slices:
        image = _thick_slices(image, rng, voxel_size, max_thickness_mm)
    image += rng.uniform(0.0, 0.04) * rng.standard_normal(size=shape).astype(np.float32)
    image = normalise_intensity(np.abs(image))  # magnitude images: noise on air stays positive
    image = image ** np.float32(np.exp(rng.normal(0.0, 0.25)))

    labels = np.where(head_labels >= NUM_TISSUE_LABELS, 0, head_labels).astype(np.uint8)
    if rng.uniform() < p_field_of_view_cut:
        _crop_field_of_view(image, labels, rng, max_fraction=0.3)
    return normalise_intensity(image), labels


class SynthBrainDataset(Dataset):
    """An endless supply of synthetic scans: item ``i`` is a fresh random scan (``i`` only counts).

    Parameters
    ----------
    length
        Items per epoch.
    shape, voxel_size
        Crop size in voxels and voxel edge in mm.
    **synth_kwargs
        Passed to :func:`synthesize` (augmentation probabilities and ranges).

    Each item is ``(image, labels)``: ``image`` float32 ``(1, D, H, W)`` in ``[0, 1]``, ``labels`` int64
    ``(D, H, W)`` with 0 background, 1 CSF, 2 GM, 3 WM. Randomness is numpy's global generator, which
    the Trainer seeds per batch in DataLoader workers (exact resume).

    Examples
    --------
    >>> data = SynthBrainDataset(length=10, shape=(32, 32, 32), voxel_size=4.0)  # doctest: +SKIP
    >>> image, labels = data[0]  # doctest: +SKIP
    >>> tuple(image.shape), labels.dtype  # doctest: +SKIP
    ((1, 32, 32, 32), torch.int64)
    """

    def __init__(self, length: int = 250, shape: tuple[int, int, int] = (96, 96, 96), voxel_size: float = 2.0,
                 *, real_heads: Sequence[LabelVolume] = (), p_real_head: float = 0.5,
                 **synth_kwargs: Any) -> None:
        if length < 1:
            raise ConfigError(f"SynthBrainDataset(length={length}): must be at least 1.")
        if not 0.0 <= p_real_head <= 1.0:
            raise ConfigError(f"SynthBrainDataset(p_real_head={p_real_head}): must be between 0 and 1.")
        self.length, self.shape, self.voxel_size = length, tuple(shape), voxel_size
        self.synth_kwargs = synth_kwargs
        # Built here, in the parent process, so forked DataLoader workers inherit it instead of rebuilding.
        self.head = mni_head_labels()
        self.real_heads, self.p_real_head = tuple(real_heads), p_real_head

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.head
        if self.real_heads and np.random.uniform() < self.p_real_head:
            head = self.real_heads[np.random.randint(len(self.real_heads))]
        image, labels = synthesize(self.shape, self.voxel_size, None, head=head, **self.synth_kwargs)
        return torch.from_numpy(image)[None], torch.from_numpy(labels.astype(np.int64))


class FixedSynthDataset(Dataset):
    """A fixed set of synthetic scans, generated once from ``seed``: a reproducible validation set.

    This is synthetic validation: it shows whether the model learns the generator's task, not how it
    does on real scans.

    Parameters
    ----------
    length
        Number of scans.
    seed
        Scan ``i`` is drawn from ``RandomState([seed, i])``, independent of the global RNGs.
    shape, voxel_size, **synth_kwargs
        As in :class:`SynthBrainDataset`.

    Examples
    --------
    >>> val = FixedSynthDataset(2, seed=1, shape=(32, 32, 32), voxel_size=4.0)  # doctest: +SKIP
    >>> bool((val[0][0] == FixedSynthDataset(2, seed=1, shape=(32, 32, 32), voxel_size=4.0)[0][0]).all())  # doctest: +SKIP
    True
    """

    def __init__(self, length: int = 8, seed: int = 12345, shape: tuple[int, int, int] = (96, 96, 96),
                 voxel_size: float = 2.0, **synth_kwargs: Any) -> None:
        head = mni_head_labels()
        items = [synthesize(tuple(shape), voxel_size, np.random.RandomState([seed, i]), head=head, **synth_kwargs)
                 for i in range(length)]
        self.images = [torch.from_numpy(image)[None] for image, _ in items]
        self.labels = [torch.from_numpy(labels) for _, labels in items]  # uint8 until served: 8x less memory

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index].long()
