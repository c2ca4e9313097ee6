"""Segmenting a scan: from a NIfTI on any grid to integer labels on that same grid.

The pipeline works in the input's own voxel space, so the labels overlay the input by construction:
the array is permuted/flipped to the closest canonical (RAS) axis order (no interpolation), resampled
to the model's spacing on a grid that spans the same field of view, normalised, segmented with
Gaussian-blended sliding windows, and the class probabilities are resampled back to the canonical
grid (trilinear), turned into labels, cleaned up, and permuted back to the input's axis order.
An oblique affine is therefore never resampled through: the model sees the scan in its own axes,
as it saw rotated scans in training.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from torch import nn

from torchsci.device import resolve_precision
from torchsci.errors import ConfigError
from torchsci_neuro.io import Scan, load_scan
from torchsci_neuro.prior import ORIENTATION_CANDIDATES, BrainFit, HeaderOrientationWarning, fit_template
from torchsci_neuro.quality import QUALITY_THRESHOLD, LowQualityWarning, quality_score
from torchsci_neuro.synth import normalise_intensity

#: The registry name the shipped tissue model will have; ``segment(model=None)`` loads its weights.
PRETRAINED_MODEL = "neuro/unet3d-tissue"
TASKS = ("tissue", "brain_mask")
LABEL_NAMES = {"tissue": ("background", "CSF", "GM", "WM"), "brain_mask": ("outside", "brain")}


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Blending weights of one window: a Gaussian of ``sigma = sigma_scale * size`` per axis, peak 1.

    Centre voxels of a window see the most context, so they get the largest say where windows
    overlap. Each axis is clamped away from zero (not the product: a floor on the product would give
    a window's corner as much say as a neighbour's well-placed voxel), so every weight is positive.

    Examples
    --------
    >>> w = gaussian_importance((8, 8, 8))
    >>> float(w.max()), bool(w.min() > 0)
    (1.0, True)
    """
    axes = []
    for size in window:
        centre = (size - 1) / 2.0
        sigma = max(sigma_scale * size, 1e-3)
        axis = torch.exp(-0.5 * ((torch.arange(size, dtype=torch.float64) - centre) / sigma) ** 2)
        axes.append((axis / axis.max()).clamp_min(1e-3))
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).float()


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start indices of windows of ``window`` voxels covering ``length`` voxels with ``overlap``.

    Examples
    --------
    >>> window_starts(100, 40, 0.5)
    [0, 20, 40, 60]
    >>> window_starts(30, 40, 0.5)
    [0]
    """
    if length <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    count = math.ceil((length - window) / step) + 1
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


@torch.inference_mode()
def sliding_window_probabilities(model: nn.Module, image: torch.Tensor, window: Sequence[int] = (96, 96, 96),
                                 overlap: float = 0.5, batch_size: int = 2, mirror_axes: Sequence[int] = (),
                                 progress: bool = False) -> torch.Tensor:
    """Class probabilities of a whole volume from overlapping windows blended with Gaussian weights.

    Parameters
    ----------
    model
        Maps ``(B, 1, *window)`` images to ``(B, C, *window)`` logits.
    image
        ``(D, H, W)`` normalised intensities (on the model's device); padded with zeros (air) on both
        sides where it is smaller than the window.
    window, overlap, batch_size
        Window size in voxels, fraction of a window shared with its neighbour, windows per forward pass.
    mirror_axes
        Test-time augmentation: also run each window mirrored along each of these spatial axes
        (0, 1, 2) and average the probabilities.
    progress
        Show a progress bar over windows.

    Returns
    -------
    torch.Tensor
        ``(C, D, H, W)`` float32 probabilities summing to 1 over ``C``.
    """
    from tqdm.auto import tqdm

    window = tuple(int(w) for w in window)
    shape = tuple(image.shape)
    padded_shape = tuple(max(n, w) for n, w in zip(shape, window, strict=True))
    # An axis shorter than the window is centred in it (air on both sides, as MONAI pads): padding at
    # one end only shifts the scan against the U-Net's pooling grid and changed 0.5% of the labels.
    # F.pad lists the last axis first.
    before = [(m - n) // 2 for n, m in zip(shape, padded_shape, strict=True)]
    if padded_shape != shape:
        image = F.pad(image, [p for n, m, b in zip(reversed(shape), reversed(padded_shape), reversed(before), strict=True)
                              for p in (b, m - n - b)])
    device = image.device
    importance = gaussian_importance(window).to(device)
    corners = list(product(*(window_starts(n, w, overlap) for n, w in zip(padded_shape, window, strict=True))))
    totals: torch.Tensor | None = None
    weight_sum = torch.zeros(padded_shape, device=device)
    flips = [()] + [(axis + 2,) for axis in mirror_axes]  # +2: batch and channel dims come first
    bar = tqdm(total=len(corners), desc="segment", unit="window", disable=not progress, leave=False)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first:first + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True)) for corner in chunk]
        batch = torch.stack([image[s] for s in slices])[:, None]
        probs = torch.zeros(())
        for dims in flips:
            mirrored = model(batch.flip(dims) if dims else batch).float().softmax(dim=1)
            probs = probs + (mirrored.flip(dims) if dims else mirrored)
        probs = probs / len(flips)
        if totals is None:
            totals = torch.zeros((probs.shape[1], *padded_shape), device=device)
        for s, p in zip(slices, probs, strict=True):
            totals[(slice(None), *s)] += p * importance
            weight_sum[s] += importance
        bar.update(len(chunk))
    bar.close()
    probs = totals / weight_sum
    return probs[(slice(None), *(slice(b, b + n) for b, n in zip(before, shape, strict=True)))]


def _resample(volume: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear resampling of ``(C, D, H, W)`` onto a grid of ``size`` spanning the same field of view."""
    if tuple(volume.shape[1:]) == tuple(size):
        return volume
    return F.interpolate(volume[None], size=tuple(size), mode="trilinear", align_corners=False)[0]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from skimage import measure  # lazy: kept out of the plug-in's import

    components = measure.label(mask, connectivity=1)
    if components.max() <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == sizes.argmax()


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the smallest box holding every true voxel of ``mask``, grown by ``margin`` (clipped)."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def head_box(image: np.ndarray, margin: int, threshold: float = 0.1) -> tuple[slice, ...] | None:
    """Where to run the network: the box around the head on the model grid, grown by ``margin`` voxels.

    The head is the largest connected component of normalised intensities above ``threshold`` (after a
    one-voxel opening, so noise specks in the air do not join it); an image with none gives the whole
    grid. Running the windows inside this box only is what keeps the time and memory of a scan bounded
    by its head, not its field of view, and keeps windows of pure air (whose instance-normalised
    features are meaningless: the shipped model called several litres of air gray matter on 384^3 and
    512^3 grids) out of the result. ``None`` when nothing is above the threshold (a blank image).

    Examples
    --------
    >>> image = np.zeros((40, 40, 40), np.float32); image[10:20, 12:30, 5:9] = 1.0
    >>> head_box(image, margin=2)
    (slice(8, 22, None), slice(10, 32, None), slice(3, 11, None))
    """
    head = ndi.binary_opening(image > threshold)
    if not head.any():
        return None
    return _bounding_box(_largest_component(head), margin)


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

    Returns
    -------
    tuple
        The resampled ``(C, ...)`` probabilities and the canonical slices they fill.
    """
    out_box = []
    for axis, (source, target, sl) in enumerate(zip(model_shape, canonical_shape, box, strict=True)):
        lo, hi, index, weight = _interpolation_axis(int(source), int(target), sl.start, sl.stop)
        shape = [1] * probs.ndim
        shape[axis + 1] = -1
        w = torch.from_numpy(weight).view(shape).to(probs.dtype)
        first = probs.index_select(axis + 1, torch.from_numpy(index[0]))
        second = probs.index_select(axis + 1, torch.from_numpy(index[1]))
        probs = first + (second - first) * w
        out_box.append(slice(lo, hi))
    return probs, tuple(out_box)


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
        box = _bounding_box(brain, margin=1)
        brain[box] = ndi.binary_fill_holes(_largest_component(brain[box]))
    if task == "brain_mask":
        return brain.astype(np.uint8)
    tissue = (probs[1:].argmax(axis=0) + 1).astype(np.uint8)
    return np.where(brain, tissue, 0).astype(np.uint8)


def _cut_by_field_of_view(brain: np.ndarray, box: Sequence[slice], shape: Sequence[int]) -> bool:
    """Whether the brain reaches the edge of the scan's field of view (a slab, a cut-off vertex).

    The brain prior fits a whole template brain; on a partial brain it would be fitted to the part and
    could cut real brain, so it is only used when the whole brain is in the field of view.
    """
    for axis, (sl, n) in enumerate(zip(box, shape, strict=True)):
        faces = ([0] if sl.start == 0 else []) + ([brain.shape[axis] - 1] if sl.stop == n else [])
        if any(np.take(brain, face, axis=axis).sum() > 10 for face in faces):
            return True
    return False


def network_outputs(network: nn.Module) -> int:
    """Number of classes a segmentation network predicts (one tiny forward pass)."""
    parameter = next(network.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.inference_mode():
        return int(network(torch.zeros((1, 1, 16, 16, 16), dtype=dtype, device=device)).shape[1])


def _checkpoint_model(path: Path) -> nn.Module:
    import torchsci

    return torchsci.load_model(path, field="neuro")  # another field's checkpoint: one clear line


def resolve_model(model: nn.Module | str | os.PathLike | None) -> nn.Module:
    """The network to run: a module as given, a torchsci checkpoint's model, or the shipped weights."""
    if isinstance(model, nn.Module):
        return model
    if model is not None:
        return _checkpoint_model(Path(model))
    import torchsci

    return torchsci.create_model(PRETRAINED_MODEL, pretrained=True)


def canonical(scan: Scan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data with axes permuted/flipped to the closest RAS order (no interpolation), its voxel sizes
    in that order, and the nibabel orientation transform that did it."""
    ornt = nib.orientations.io_orientation(scan.affine)
    data = nib.orientations.apply_orientation(scan.data, ornt)
    # ornt[i, 0] is the output axis of input axis i, so voxel sizes move the same way.
    voxel_size = np.empty(3)
    voxel_size[ornt[:, 0].astype(int)] = scan.voxel_size
    return np.ascontiguousarray(data), voxel_size, ornt


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
        start = int(hits[0]) - grow if np.take(content, 0, axis=axis).mean() < 0.05 else 0
        stop = int(hits[-1]) + 1 + grow if np.take(content, n - 1, axis=axis).mean() < 0.05 else n
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


def inference_precision(precision: str, device: torch.device) -> str:
    """The precision policy (see :class:`torchsci.device.Precision`) ``segment(precision=...)`` runs in.

    ``"auto"`` is ``"bf16-mixed"`` where the hardware computes bfloat16 natively (CPUs with AVX512-BF16
    or AMX, CUDA GPUs with bf16), and ``"32"`` everywhere else. On an AVX512-BF16 CPU it made the
    sliding windows 1.8-2.2x faster than MONAI's float32 ones and changed about 0.1% of the voxels'
    labels (``benchmarks/neuro_segment.py``). Pass ``"32"`` for labels that do not depend on the machine.

    Examples
    --------
    >>> inference_precision("32", torch.device("cpu"))
    '32'
    """
    return resolve_precision(precision, device)  # the policy is the device layer's


def _output_image(labels: np.ndarray, scan: Scan) -> nib.Nifti1Image:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    out = nib.Nifti1Image(labels, scan.affine, header)
    source = scan.header
    if isinstance(source, (nib.Nifti1Header, nib.Nifti2Header)):
        # Keep the input's qform/sform codes, so viewers place the labels exactly where they place the scan.
        qform, qcode = source.get_qform(coded=True)
        sform, scode = source.get_sform(coded=True)
        out.set_qform(qform if qform is not None else scan.affine, int(qcode) if qform is not None else 0)
        out.set_sform(sform if sform is not None else scan.affine, int(scode) if sform is not None else 0)
        out.header.set_xyzt_units(*source.get_xyzt_units())
    return out


def segment(scan: str | os.PathLike | nib.spatialimages.SpatialImage | Scan, task: str = "tissue",
            device: str | torch.device = "auto", model: nn.Module | str | os.PathLike | None = None, *,
            spacing: float = 2.0, window: Sequence[int] = (96, 96, 96), overlap: float = 0.5,
            batch_size: int = 2, mirror: bool = False, precision: str = "auto", progress: bool = False,
            probabilities: bool = False, prior: bool = True) -> nib.Nifti1Image | tuple[nib.Nifti1Image, np.ndarray]:
    """Segment a brain scan; labels come back on the input's own grid (same shape, affine, orientation).

    Parameters
    ----------
    scan
        A ``.nii``/``.nii.gz`` path, a nibabel NIfTI image or a :class:`~torchsci_neuro.io.Scan`; 3D or 4D
        with one volume, any orientation (oblique too), voxel size and intensity scale.
    task
        ``"tissue"`` (0 background, 1 CSF, 2 gray matter, 3 white matter) or ``"brain_mask"`` (0/1).
    device
        ``"auto"``, ``"cpu"``, ``"cuda:0"``, ... (see :func:`torchsci.device.resolve_device`).
    model
        A torchsci checkpoint path, an ``nn.Module`` mapping ``(B, 1, D, H, W)`` to class logits, or
        ``None`` for the shipped weights (``neuro/unet3d-tissue``, checked against their sha256; see
        ``torchsci_neuro/weights/MODEL_CARD.md``).
    spacing
        Voxel size in mm the model was trained at.
    window, overlap, batch_size
        Sliding-window size (voxels at ``spacing``), overlap fraction, windows per forward pass.
    mirror
        Test-time augmentation: average with the left-right mirrored prediction (the one mirror a
        brain is nearly symmetric under).
    precision
        ``"auto"`` (bfloat16 autocast where the hardware has it natively, see
        :func:`inference_precision`), ``"32"``, ``"bf16-mixed"`` or ``"64"``.
    progress
        Show a progress bar over windows.
    prior
        Call background what lies more than 6 mm outside the MNI152 brain affinely fitted to the
        model's brain posterior (:func:`~torchsci_neuro.prior.fit_brain_prior`): no brain in the neck,
        clivus or orbits. Used only when the whole brain is inside the field of view (a slab through
        the brain keeps the network's answer). ``False`` keeps the network's own answer everywhere.
        The same fit checks the header (:func:`~torchsci_neuro.prior.fit_template`): a
        :class:`~torchsci_neuro.prior.HeaderOrientationWarning` names the file and the voxel axis when a
        flipped or swapped axis fits the content clearly better than the header's orientation.
    probabilities
        Also return the ``(C, X, Y, Z)`` float32 class posteriors on the input grid (as SynthSeg's
        ``--post``), e.g. to threshold, average over runs or measure uncertainty.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 labels with the input's spatial shape and affine (a 4D input's volume axis is dropped).
        With a tissue model (the default), ``labels.extra["quality"]`` holds the scan's quality score and its parts
        (:func:`~torchsci_neuro.quality.quality_score`); below
        :data:`~torchsci_neuro.quality.QUALITY_THRESHOLD` a :class:`LowQualityWarning` is issued.

    Examples
    --------
    >>> labels = segment("T1w.nii.gz", model="run/checkpoints/best.ckpt")  # doctest: +SKIP
    >>> labels.shape == nib.load("T1w.nii.gz").shape  # doctest: +SKIP
    True
    """
    from torchsci.device import Precision, resolve_device

    if task not in TASKS:
        raise ConfigError(f"segment(task={task!r}): use one of {', '.join(TASKS)}.")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"segment(overlap={overlap}): must be in [0, 1).")
    scan = load_scan(scan)
    network = resolve_model(model)
    target_device = resolve_device(device)
    policy = Precision(inference_precision(precision, target_device), target_device)
    network = network.to(target_device, policy.param_dtype).eval()

    data, voxel_size, ornt = canonical(scan)
    # Zero borders are cut (and missing ones added) first: the result must not depend on the field of view.
    keep, pads = zero_border_crop(data, voxel_size, (max(window) // 4 + 1) * spacing)
    region = np.pad(data[keep], pads) if any(any(p) for p in pads) else data[keep]
    grid = to_model_grid(region, voxel_size, spacing)
    # A margin of a quarter window: every window still holds head, and the brain keeps its context.
    box = head_box(grid, margin=max(window) // 4)
    if box is None:  # nothing but air (or a constant): no window to run, every voxel is background
        box = tuple(slice(0, 1) for _ in grid.shape)
        probs = torch.zeros((network_outputs(network), 1, 1, 1))
        probs[0] = 1.0
    else:
        image = torch.from_numpy(np.ascontiguousarray(grid[box])).to(target_device, policy.param_dtype)
        with policy.autocast():
            probs = sliding_window_probabilities(network, image, window, overlap, batch_size,
                                                 mirror_axes=(0,) if mirror else (), progress=progress)
    if task == "tissue" and probs.shape[0] != 4:
        raise ConfigError(f"segment(task='tissue') needs a model with 4 outputs (background, CSF, GM, WM); "
                          f"this one has {probs.shape[0]}.")
    brain_probability = (1.0 - probs[0]).float().cpu().numpy()
    fit = BrainFit(np.ones(1, bool), float("nan"))  # no fit: the quality score has no template to compare with
    if prior and probs.shape[1:].numel() > 1 and not _cut_by_field_of_view(brain_probability > 0.5, box, grid.shape):
        fit = fit_template(brain_probability, spacing)
        if fit.orientation is not None:
            warnings.warn(_orientation_message(scan.source, fit, ornt), HeaderOrientationWarning, stacklevel=2)
        allowed = torch.from_numpy(fit.allowed).to(probs.device)
        background = torch.zeros(probs.shape[0], 1, 1, 1, device=probs.device)
        background[0] = 1.0
        probs = torch.where(allowed, probs.float(), background)  # out of place: probs is an inference tensor
    quality = (quality_score(grid[box], probs, spacing ** 3 / 1000.0, template_white_matter=fit.white_matter)
               if probs.shape[0] == 4 else None)
    labels, probs = labels_on_scan_grid(probs, region.shape, _RAS, task, with_probabilities=probabilities,
                                        model_shape=grid.shape, box=box)
    labels, probs = _back_to_scan(labels, probs, data.shape, keep, pads, ornt)
    out = _output_image(labels, scan)
    if quality is not None:
        out.extra["quality"] = quality
        if quality["score"] < QUALITY_THRESHOLD:
            warnings.warn(f"{scan.source}: quality score {quality['score']:.2f} is below {QUALITY_THRESHOLD} "
                          f"({_weakest(quality)}); this does not look like a T1-weighted brain scan the model can "
                          "segment, so its labels and volumes are not to be trusted.", LowQualityWarning,
                          stacklevel=2)
    if probabilities:
        return out, probs
    return out


_RAS = nib.orientations.axcodes2ornt(("R", "A", "S"))


def _back_to_scan(labels: np.ndarray, probs: np.ndarray | None, canonical_shape: Sequence[int],
                  keep: Sequence[slice], pads: Sequence[tuple[int, int]],
                  ornt: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and probabilities) of the :func:`zero_border_crop` region, put back into the whole canonical
    grid (background elsewhere) and permuted back to the scan's axis order ``ornt``."""
    inner = tuple(slice(before, n - after) for (before, after), n in zip(pads, labels.shape, strict=True))
    back = nib.orientations.ornt_transform(_RAS, ornt)
    full = np.zeros(tuple(canonical_shape), dtype=np.uint8)
    full[tuple(keep)] = labels[inner]
    labels = np.ascontiguousarray(nib.orientations.apply_orientation(full, back)).astype(np.uint8)
    if probs is None:
        return labels, None
    full_probs = np.zeros((probs.shape[0], *canonical_shape), dtype=np.float32)
    full_probs[0] = 1.0
    full_probs[(slice(None), *keep)] = probs[(slice(None), *inner)]
    return labels, np.stack([nib.orientations.apply_orientation(p, back) for p in full_probs]).astype(np.float32)


def _orientation_message(source: object, fit: BrainFit, ornt: np.ndarray) -> str:
    """The header-check warning: which of the file's voxel axes disagree with the content, and how clearly."""
    moved = np.asarray(ORIENTATION_CANDIDATES[fit.orientation]) != np.eye(3)
    canonical_axes = sorted({int(a) for a in np.flatnonzero(moved.any(axis=0) | moved.any(axis=1))})
    names = ("left-right", "anterior-posterior", "superior-inferior")
    axes = ", ".join(f"voxel axis {int(np.flatnonzero(ornt[:, 0] == a)[0])} (which the header calls {names[a]})"
                     for a in canonical_axes)
    ratio = fit.orientation_losses["header"] / max(fit.orientation_losses[fit.orientation], 1e-9)
    return (f"{source}: the header's orientation disagrees with the image content: {fit.orientation} "
            f"({axes}; the MNI brain fits {ratio:.1f}x better that way). Check the file's qform/sform (e.g. "
            "nib-ls, fslorient): the labels follow the header as it is, and left/right cannot be checked this way.")


def _weakest(quality: dict[str, float]) -> str:
    parts = ("brain_volume", "confidence", "t1_contrast", "white_matter_anatomy")
    name = min(parts, key=lambda k: quality[k])
    detail = {"brain_volume": f"brain {quality['brain_ml']:.0f} mL",
              "confidence": f"mean posterior {quality['mean_confidence']:.2f}",
              "t1_contrast": f"median intensity CSF/GM/WM {quality['csf_intensity']:.2f}/{quality['gm_intensity']:.2f}/"
                             f"{quality['wm_intensity']:.2f}, not in T1 order",
              "white_matter_anatomy": f"white-matter posterior {quality['deep_wm_posterior']:.2f} in the template's "
                                      "deep white matter: a contrast other than T1 (T2-like, inverted)?"}
    return f"weakest: {name}, {detail[name]}"


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
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")), ornt)
    labels = np.ascontiguousarray(nib.orientations.apply_orientation(labels, back)).astype(np.uint8)
    if not with_probabilities:
        return labels, None
    full = np.zeros((probs.shape[0], *canonical_shape), dtype=np.float32)
    full[0] = 1.0
    full[(slice(None), *out_box)] = probs
    return labels, np.stack([nib.orientations.apply_orientation(p, back) for p in full]).astype(np.float32)


def label_volumes(labels: nib.spatialimages.SpatialImage, task: str = "tissue") -> list[dict[str, float | int | str]]:
    """Volume of each label in mL (voxel volume from the affine), one row per label (background excluded).

    Examples
    --------
    >>> img = nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> label_volumes(img, "brain_mask")
    [{'label': 1, 'name': 'brain', 'voxels': 1000, 'volume_ml': 8.0}]
    """
    data = np.asarray(labels.dataobj)
    voxel_ml = abs(float(np.linalg.det(labels.affine[:3, :3]))) / 1000.0
    counts = np.bincount(data.ravel().astype(np.int64), minlength=len(LABEL_NAMES[task]))
    return [{"label": label, "name": LABEL_NAMES[task][label], "voxels": int(counts[label]),
             "volume_ml": round(float(counts[label]) * voxel_ml, 4)}
            for label in range(1, len(LABEL_NAMES[task]))]
