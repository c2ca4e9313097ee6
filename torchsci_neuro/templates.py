"""Anatomical templates that ship offline: the MNI152 (ICBM 2009a symmetric) maps inside nilearn's wheel.

This layer reads the template files and turns them into label maps; it knows nothing of training.
Two maps come out of it:

- :func:`mni_tissue_labels`: the tissue classes the models predict, at 1 mm (0 background, 1 CSF,
  2 GM, 3 WM).
- :func:`mni_head_labels`: the same brain plus synthetic extra-cerebral structures (CSF shell, bone,
  scalp, cord, neck, face, eyes) for the synthetic-image generator only. They are crude shapes made
  from distance maps; their job is to put plausible non-brain tissue, air and image edges around the
  brain, because a model trained on skull-stripped crops calls face and neck tissue brain.

Nothing is downloaded: the files are located inside the installed nilearn package.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from torchsci.errors import DataError

TISSUE_NAMES: tuple[str, ...] = ("background", "CSF", "GM", "WM")
"""Names of the predicted classes, by label value."""

HEAD_NAMES: tuple[str, ...] = ("air", "CSF", "GM", "WM", "extra_csf", "bone", "muscle", "fat", "cord",
                               "neck", "face", "eye")
"""Names of the generator's labels, by value; values >= 4 are background for the models."""

NUM_TISSUE_LABELS = len(TISSUE_NAMES)
NUM_HEAD_LABELS = len(HEAD_NAMES)

_FILES = {kind: f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz" for kind in ("t1", "gm", "wm")}
# The template's brainstem is cut by the bottom of its field of view; this much room below it holds
# the synthetic cord and neck.
_NECK_PAD_MM = 70
# T1 is skull-stripped and stored as uint8: anything above this is inside the brain.
_BRAIN_T1_THRESHOLD = 5


@dataclass(frozen=True)
class LabelVolume:
    """A label map with its voxel-to-world (RAS, mm) affine.

    Attributes
    ----------
    labels
        Integer labels, shape ``(X, Y, Z)`` in the template's voxel order (RAS).
    affine
        4x4 voxel-to-world matrix in millimetres.
    names
        Name of each label value.
    t1_ranges
        Optional ``(len(names), 2)`` T1-like intensity ranges per label (fractions of the brightest
        tissue) for the generator; ``None`` uses the generator's ranges for :data:`HEAD_NAMES`.
    texture
        Optional float32 intensity residual on the same grid (a real scan minus its label means),
        added by the generator so real within-label structure survives the random contrasts.
    centre_mm
        Optional brain centre (world mm) around which the generator draws fields of view.
    """

    labels: np.ndarray
    affine: np.ndarray
    names: tuple[str, ...]
    t1_ranges: np.ndarray | None = None
    texture: np.ndarray | None = None
    centre_mm: tuple[float, float, float] | None = None

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Voxel edge lengths in mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    def volume_ml(self, label: int) -> float:
        """Volume of one label in millilitres."""
        return float((self.labels == label).sum() * np.prod(self.voxel_size) / 1000.0)


def template_path(kind: str) -> Path:
    """Path of one shipped MNI152 2009a map inside the installed nilearn package.

    Parameters
    ----------
    kind
        ``"t1"`` (skull-stripped T1), ``"gm"`` or ``"wm"`` (probability maps).

    Returns
    -------
    Path
        The ``.nii.gz`` file.

    Raises
    ------
    DataError
        If nilearn is not installed or the file is missing from it.

    Examples
    --------
    >>> template_path("t1").name  # doctest: +SKIP
    'mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz'
    """
    if kind not in _FILES:
        raise DataError(f"template kind {kind!r}: choose one of {', '.join(_FILES)}.")
    # find_spec locates the package without importing it: importing nilearn.datasets (pandas, sklearn, ...)
    # cost about a CPU second of every segment() call's fresh process.
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the MNI152 template ships inside the nilearn package, which is not installed; "
            "run `pip install torchsci[neuro]` (or `pip install nilearn`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / _FILES[kind]
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed nilearn package; reinstall it "
                        "(`pip install --force-reinstall nilearn`).")
    return path


@functools.lru_cache(maxsize=1)
def _load_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import nibabel as nib  # lazy: a field library: imported only when a template is used

    images = {kind: nib.load(str(template_path(kind))) for kind in _FILES}
    arrays = [np.asarray(images[k].dataobj, dtype=np.float32) / 255.0 for k in ("t1", "gm", "wm")]
    return (*arrays, images["t1"].affine.astype(np.float64))


def mni_tissue_labels() -> LabelVolume:
    """MNI152 tissue classes at 1 mm: 0 background, 1 CSF, 2 GM, 3 WM.

    Brain is where the skull-stripped T1 is above a small threshold; inside it each voxel takes the
    most probable of CSF (``1 - GM - WM``), GM and WM.

    Returns
    -------
    LabelVolume
        uint8 labels of shape ``(197, 233, 189)`` with the template's affine.

    Examples
    --------
    >>> vol = mni_tissue_labels()  # doctest: +SKIP
    >>> round(vol.volume_ml(3))  # doctest: +SKIP
    636
    """
    t1, gm, wm, affine = _load_maps()
    brain = ndi.binary_fill_holes(t1 * 255.0 > _BRAIN_T1_THRESHOLD)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = (np.argmax(np.stack([csf, gm, wm]), axis=0) + 1).astype(np.uint8)
    labels[~brain] = 0
    return LabelVolume(labels, affine, TISSUE_NAMES)


def _ball_mask(shape: tuple[int, ...], affine: np.ndarray, centre_mm, radii_mm) -> np.ndarray:
    """Voxels inside an axis-aligned ellipsoid given in world mm."""
    axes = [np.arange(n) * affine[i, i] + affine[i, 3] for i, n in enumerate(shape)]
    grid = [((a - c) / r) ** 2 for a, c, r in zip(axes, centre_mm, radii_mm, strict=True)]
    return grid[0][:, None, None] + grid[1][None, :, None] + grid[2][None, None, :] <= 1.0


@functools.lru_cache(maxsize=1)
def mni_head_labels() -> LabelVolume:
    """Tissue labels plus synthetic extra-cerebral structures, for the image generator only.

    Labels follow :data:`HEAD_NAMES`. Around the brain, shells from its distance map: extra-cerebral
    CSF (0-2.5 mm), bone (to 8.5 mm), muscle (to 12 mm), fat (to 16 mm). Below it the volume is padded
    by 70 mm; the brainstem's cross-section at the template's lowest slice is extruded downward as a
    cord with a bony ring, inside an elliptic neck. A face block and two eyes sit in front of and
    below the frontal lobes. The result is cached; treat it as read-only.

    Returns
    -------
    LabelVolume
        uint8 labels of shape ``(197, 233, 259)`` at 1 mm.

    Examples
    --------
    >>> head = mni_head_labels()  # doctest: +SKIP
    >>> head.names[8]  # doctest: +SKIP
    'cord'
    """
    tissue = mni_tissue_labels()
    pad = _NECK_PAD_MM
    labels = np.pad(tissue.labels, ((0, 0), (0, 0), (pad, 0)))
    affine = tissue.affine.copy()
    affine[2, 3] -= pad
    shape = labels.shape
    brain = labels > 0

    # Centre of the lowest brain slice in the template is the medulla: the cord continues it downward.
    lowest = int(np.nonzero(brain.any(axis=(0, 1)))[0][0])
    cx, cy = ndi.center_of_mass(brain[:, :, lowest])
    centre_mm = affine[:3, :3] @ np.array([cx, cy, lowest]) + affine[:3, 3]
    xs = np.arange(shape[0]) * affine[0, 0] + affine[0, 3]
    ys = np.arange(shape[1]) * affine[1, 1] + affine[1, 3]
    zs = np.arange(shape[2]) * affine[2, 2] + affine[2, 3]
    radial = np.sqrt((xs[:, None] - centre_mm[0]) ** 2 + (ys[None, :] - centre_mm[1]) ** 2)
    below = zs <= centre_mm[2] + 8
    cord = (radial <= 6.0)[:, :, None] & below[None, None, :]
    vertebra = ((radial > 6.0) & (radial <= 13.0))[:, :, None] & below[None, None, :]
    neck_profile = ((xs[:, None] - centre_mm[0]) / 55.0) ** 2 + ((ys[None, :] - centre_mm[1] - 15.0) / 50.0) ** 2 <= 1
    neck = neck_profile[:, :, None] & (zs <= centre_mm[2] + 25)[None, None, :]

    face = _ball_mask(shape, affine, (0.0, 45.0, -45.0), (55.0, 45.0, 45.0))
    eyes = _ball_mask(shape, affine, (-32.0, 50.0, -32.0), (11.0, 11.0, 11.0)) | \
        _ball_mask(shape, affine, (32.0, 50.0, -32.0), (11.0, 11.0, 11.0))

    distance = ndi.distance_transform_edt(~brain)
    head = np.zeros(shape, dtype=np.uint8)
    # Painted from the outside in, so inner structures win where shapes overlap.
    head[neck] = 9
    head[face] = 10
    for label, outer in ((7, 16.0), (6, 12.0), (5, 8.5), (4, 2.5)):
        head[(distance > 0) & (distance <= outer)] = label
    head[eyes & (distance > 2.5)] = 11
    head[vertebra & (distance > 2.5)] = 5
    head[cord & ~brain] = 8
    head[brain] = labels[brain]
    return LabelVolume(head, affine, HEAD_NAMES)


REAL_HEAD_NAMES: tuple[str, ...] = ("air", "CSF", "GM", "WM", "head_dark", "head_low", "head_mid", "head_bright")
"""Labels of :func:`real_head_labels`: the brain's tissue classes, then four intensity classes of the
real non-brain head (bone and sinus, then muscle and dura, then marrow and fat), all background."""


def real_head_labels(image, brain_mask) -> LabelVolume:
    """A label map of a real full-head T1 scan for the generator: its brain's tissue and its real head.

    Unlike :func:`mni_head_labels`, whose skull, neck and face are synthetic shells, the extra-cerebral
    anatomy here is the scan's own (skull base, orbits, sinuses, neck, dura over the vertex) with its
    real intensity layout. The head (a filled Otsu mask) outside ``brain_mask`` is split into four
    intensity classes (multi-Otsu) and the brain into CSF, GM and WM (multi-Otsu); what each class's
    voxels differ from its mean is kept as a texture the generator adds back.

    Parameters
    ----------
    image
        A full-head T1 NIfTI (path or nibabel image).
    brain_mask
        Its brain mask on the same grid (path or image; non-zero = brain), from a manual or tool mask.

    Returns
    -------
    LabelVolume
        Labels following :data:`REAL_HEAD_NAMES` in RAS axis order, with per-label T1 ranges, texture and
        brain centre.

    Raises
    ------
    DataError
        If the mask's grid differs from the image's or the mask is empty.

    Examples
    --------
    >>> head = real_head_labels("head.nii.gz", "head_brain_mask.nii.gz")  # doctest: +SKIP
    >>> head.names[7]  # doctest: +SKIP
    'head_bright'
    """
    import nibabel as nib
    from skimage.filters import threshold_multiotsu, threshold_otsu

    img = nib.as_closest_canonical(nib.load(str(image)) if isinstance(image, str | Path) else image)
    mask_img = nib.as_closest_canonical(nib.load(str(brain_mask)) if isinstance(brain_mask, str | Path)
                                        else brain_mask)
    if mask_img.shape[:3] != img.shape[:3] or not np.allclose(mask_img.affine, img.affine, atol=1e-3):
        raise DataError(f"brain mask {brain_mask} is not on the grid of {image}: shape {mask_img.shape[:3]} vs "
                        f"{img.shape[:3]}; give the mask written for this scan.")
    data = np.asarray(img.dataobj, dtype=np.float32)[..., 0] if img.ndim == 4 else np.asarray(img.dataobj, np.float32)
    brain = np.asarray(mask_img.dataobj) > 0
    if mask_img.ndim == 4:
        brain = brain[..., 0]
    if not brain.any():
        raise DataError(f"brain mask {brain_mask} is empty; give a mask with the brain's voxels set.")
    wm_level = np.percentile(data[brain], 90)
    data = data / max(float(wm_level), 1e-6)
    head = ndi.binary_fill_holes(ndi.binary_closing(data > threshold_otsu(data), iterations=3)) | brain
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[brain] = np.digitize(data[brain], threshold_multiotsu(data[brain], classes=3)) + 1
    outside = head & ~brain
    labels[outside] = np.digitize(data[outside], threshold_multiotsu(data[outside], classes=4)) + 4
    ranges = np.zeros((len(REAL_HEAD_NAMES), 2))
    texture = np.zeros(data.shape, dtype=np.float32)
    ranges[0] = (0.0, 0.05)
    for label in range(1, len(REAL_HEAD_NAMES)):
        values = data[labels == label]
        ranges[label] = np.clip(np.percentile(values, [25, 75]) * 0.85, 0.0, 1.0)
        texture[labels == label] = 0.85 * (values - values.mean())
    centre = img.affine[:3, :3] @ np.array(ndi.center_of_mass(brain)) + img.affine[:3, 3]
    return LabelVolume(labels, img.affine.astype(np.float64), REAL_HEAD_NAMES, ranges, texture,
                       tuple(float(c) for c in centre))
