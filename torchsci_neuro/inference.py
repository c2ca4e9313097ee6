"""Segmenting a scan: from a NIfTI on any grid to integer labels on that same grid (the ``segment`` verb).

This is the entry point; the layers it runs are modules of their own: :mod:`torchsci_neuro.grid` (the
scan's voxels to the model's grid and back, never resampling through an oblique affine),
:mod:`torchsci_neuro.windows` (the network over Gaussian-blended sliding windows inside the head's box),
:mod:`torchsci_neuro.prior` (the MNI brain fitted to the posterior, and the header check),
:mod:`torchsci_neuro.quality` (can the model judge this scan) and :mod:`torchsci_neuro.masks` (labels on the
scan's grid from the probabilities). Their public names are importable from here too, as before the split.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import nn

from torchsci.device import resolve_precision
from torchsci.errors import ConfigError
from torchsci_neuro.grid import (
    RAS,
    back_to_scan,
    canonical,
    model_grid_shape,
    resample_box,
    to_model_grid,
    zero_border_crop,
)
from torchsci_neuro.io import Scan, load_scan
from torchsci_neuro.masks import labels_on_scan_grid, postprocess
from torchsci_neuro.prior import ORIENTATION_CANDIDATES, BrainFit, HeaderOrientationWarning, fit_template
from torchsci_neuro.quality import QUALITY_THRESHOLD, LowQualityWarning, inside_field_of_view, quality_score
from torchsci_neuro.windows import gaussian_importance, head_box, sliding_window_probabilities, window_starts

__all__ = ["LABEL_NAMES", "PRETRAINED_MODEL", "TASKS", "back_to_scan", "canonical", "gaussian_importance", "head_box",
           "inference_precision", "label_volumes", "labels_on_scan_grid", "model_grid_shape", "network_outputs",
           "postprocess", "resample_box", "resolve_model", "segment", "sliding_window_probabilities",
           "to_model_grid", "window_starts", "zero_border_crop"]

#: The registry name the shipped tissue model will have; ``segment(model=None)`` loads its weights.
PRETRAINED_MODEL = "neuro/unet3d-tissue"
TASKS = ("tissue", "brain_mask")
LABEL_NAMES = {"tissue": ("background", "CSF", "GM", "WM"), "brain_mask": ("outside", "brain")}


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
            probabilities: bool = False, prior: bool = True,
            refine: bool = True) -> nib.Nifti1Image | tuple[nib.Nifti1Image, np.ndarray]:
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
    refine
        Tissue labels at the scan's own resolution: the network (which sees the scan at ``spacing``) gives
        each brain voxel's tissue prior, and a per-scan Gaussian intensity model with bias-tolerant local
        class means decides (:func:`~torchsci_neuro.refine.refine_tissue`; on the MNI T1 CSF Dice 0.58 ->
        0.77). The brain mask is the same either way. ``False`` keeps the network's own tissue labels.

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
    quality = (quality_score(grid[box], probs, spacing ** 3 / 1000.0, template_white_matter=fit.white_matter,
                             inside=inside_field_of_view(box, grid.shape, spacing))
               if probs.shape[0] == 4 else None)
    labels, probs = labels_on_scan_grid(probs, region.shape, RAS, task, with_probabilities=probabilities,
                                        model_shape=grid.shape, box=box, image=region if refine else None,
                                        voxel_size=voxel_size)
    labels, probs = back_to_scan(labels, probs, data.shape, keep, pads, ornt)
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
