"""Training on a lab's own labelled scans: folders (or a CSV) of image/label NIfTI pairs, served as patches.

Each case is read once, moved to canonical axis order and resampled to the model's spacing exactly
as :func:`torchsci_neuro.segment` will see scans at inference (images trilinear and normalised,
labels nearest), then kept in memory. Training items are random patches, centred on a voxel of a
randomly chosen label half the time or more (class balancing, so small structures are seen), with
random mirroring. Validation items are fixed patches drawn once from a seed.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from torchsci.data import DataSplits
from torchsci.errors import ConfigError, DataError
from torchsci_neuro.inference import canonical, model_grid_shape, to_model_grid
from torchsci_neuro.io import load_scan

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
# Voxel coordinates kept per label and case for centring patches: plenty for sampling, bounded memory.
_MAX_CENTRES = 20000


def _stem(path: Path) -> str:
    name = path.name
    return next((name[: -len(s)] for s in _NIFTI_SUFFIXES if name.endswith(s)), name)


def find_pairs(root: str | Path | None = None, csv_file: str | Path | None = None) -> list[tuple[Path, Path]]:
    """Image/label file pairs from a folder (``images/`` and ``labels/`` with equal file names) or a CSV.

    The CSV has columns ``image`` and ``label``; relative paths resolve against the CSV's folder.

    Examples
    --------
    >>> find_pairs("my_study")  # doctest: +SKIP
    [(PosixPath('my_study/images/sub-01.nii.gz'), PosixPath('my_study/labels/sub-01.nii.gz')), ...]
    """
    if (root is None) == (csv_file is None):
        raise ConfigError("give data.root (a folder with images/ and labels/) or data.csv (columns image,label).")
    if csv_file is not None:
        csv_file = Path(csv_file)
        if not csv_file.is_file():
            raise DataError(f"{csv_file}: no such file.")
        with csv_file.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"image", "label"} <= set(rows[0]):
            raise DataError(f"{csv_file}: needs a header with columns 'image' and 'label' and at least one row.")
        pairs = [(csv_file.parent / row["image"], csv_file.parent / row["label"]) for row in rows]
    else:
        root = Path(root)
        images, labels = root / "images", root / "labels"
        if not images.is_dir() or not labels.is_dir():
            raise DataError(f"{root}: expected the folders {images} and {labels} (label files named like images).")
        files = sorted(p for p in images.iterdir() if p.name.endswith(_NIFTI_SUFFIXES))
        by_stem = {_stem(p): p for p in labels.iterdir() if p.name.endswith(_NIFTI_SUFFIXES)}
        missing = [p.name for p in files if _stem(p) not in by_stem]
        if missing:
            raise DataError(f"{labels}: no label file for {', '.join(missing[:5])}"
                            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + ".")
        pairs = [(p, by_stem[_stem(p)]) for p in files]
    if not pairs:
        raise DataError(f"{csv_file or root}: no image/label pairs (.nii or .nii.gz) found.")
    for image, label in pairs:
        for path in (image, label):
            if not path.is_file():
                raise DataError(f"{path}: no such file (listed in {csv_file or root}).")
    return pairs


@dataclass
class Case:
    """One preprocessed scan: normalised image and labels on the model's grid, plus patch centres per label."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    centres: dict[int, np.ndarray]


def load_case(image_path: Path, label_path: Path, spacing: float) -> Case:
    """Read, check and resample one image/label pair to ``spacing`` mm in canonical axis order."""
    scan, label_scan = load_scan(image_path), _load_labels(label_path)
    if label_scan.shape != scan.shape or not np.allclose(label_scan.affine, scan.affine, atol=1e-3):
        raise DataError(f"{label_path}: its grid (shape {label_scan.shape}) is not the grid of {image_path} "
                        f"(shape {scan.shape}); labels must be on the image's own grid.")
    data, voxel_size, _ = canonical(scan)
    label_data, _, _ = canonical(label_scan)
    image = to_model_grid(data, voxel_size, spacing)
    shape = model_grid_shape(data.shape, voxel_size, spacing)
    labels = F.interpolate(torch.from_numpy(label_data.astype(np.float32))[None, None], size=shape,
                           mode="nearest-exact")[0, 0].numpy().astype(np.uint8)
    rng = np.random.RandomState(0)
    centres = {}
    for label in np.unique(labels):
        where = np.argwhere(labels == label)
        if len(where) > _MAX_CENTRES:
            where = where[rng.choice(len(where), _MAX_CENTRES, replace=False)]
        centres[int(label)] = where.astype(np.int32)
    return Case(_stem(image_path), image, labels, centres)


def _load_labels(path: Path):
    scan = load_scan(path)  # an all-zero label map is an error too: it teaches nothing
    if (scan.data < 0).any() or (scan.data != np.round(scan.data)).any() or scan.data.max() > 255:
        raise DataError(f"{path}: labels must be integers 0-255 (found values like {scan.data.max():g}).")
    return scan


def _crop(volume: np.ndarray, corner: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``volume[corner:corner+size]`` with zeros outside the volume (air, background)."""
    out = np.zeros(tuple(size), dtype=volume.dtype)
    src = tuple(slice(max(c, 0), min(c + s, n)) for c, s, n in zip(corner, size, volume.shape, strict=True))
    dst = tuple(slice(sl.start - c, sl.stop - c) for sl, c in zip(src, corner, strict=True))
    out[dst] = volume[src]
    return out


class PatchDataset(Dataset):
    """Random patches from preprocessed :class:`Case` s: ``(image (1, D, H, W) float32, labels (D, H, W) int64)``.

    Parameters
    ----------
    cases
        The scans to draw from.
    patch
        Patch size in voxels (at the model's spacing).
    length
        Items per epoch.
    class_balance
        Probability that a patch is centred on a voxel of a label drawn uniformly from the labels of its
        case (background included); otherwise the centre is uniform over the volume.
    mirror_axes
        Axes (0 left-right, 1 anterior-posterior, 2 inferior-superior) each mirrored with probability 0.5.
    seed
        ``None``: draw from numpy's global generator (the Trainer seeds it per batch, so resume is exact).
        An int: item ``i`` is drawn from ``RandomState([seed, i])``, the same every epoch (validation).
    """

    def __init__(self, cases: Sequence[Case], patch: Sequence[int] = (96, 96, 96), length: int = 200,
                 class_balance: float = 0.67, mirror_axes: Sequence[int] = (0,), seed: int | None = None) -> None:
        if not cases:
            raise ConfigError("PatchDataset needs at least one case.")
        if length < 1:
            raise ConfigError(f"PatchDataset(length={length}): must be at least 1.")
        self.cases, self.patch, self.length = list(cases), tuple(int(p) for p in patch), length
        self.class_balance, self.mirror_axes, self.seed = class_balance, tuple(mirror_axes), seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.mtrand._rand if self.seed is None else np.random.RandomState([self.seed, index])
        case = self.cases[rng.randint(len(self.cases))]
        if rng.uniform() < self.class_balance:
            labels = sorted(case.centres)
            candidates = case.centres[labels[rng.randint(len(labels))]]
            centre = candidates[rng.randint(len(candidates))]
        else:
            centre = np.array([rng.randint(n) for n in case.image.shape])
        corner = centre - np.array(self.patch) // 2
        image, labels = _crop(case.image, corner, self.patch), _crop(case.labels, corner, self.patch)
        for axis in self.mirror_axes:
            if rng.uniform() < 0.5:
                image, labels = np.flip(image, axis), np.flip(labels, axis)
        return (torch.from_numpy(np.ascontiguousarray(image))[None],
                torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)))


def labelled_scans(root: str | None = None, csv: str | None = None, patch: Sequence[int] = (96, 96, 96),
                   spacing: float = 2.0, samples_per_epoch: int = 200, val_fraction: float = 0.2,
                   val_patches_per_case: int = 4, class_balance: float = 0.67, mirror_axes: Sequence[int] = (0,),
                   num_classes: int | None = None, seed: int = 0) -> DataSplits:
    """``neuro/labelled_scans``: train/validation patch datasets from image/label NIfTI pairs.

    Cases are split once (seeded) into training and validation cases, never sharing a scan. With one
    case there is no validation split.

    Parameters
    ----------
    root, csv
        A folder with ``images/`` and ``labels/`` (equal file names), or a CSV with ``image,label``.
    patch, spacing
        Patch size in voxels and the model's voxel size in mm.
    samples_per_epoch, val_patches_per_case
        Training patches per epoch; fixed validation patches per validation case.
    val_fraction
        Share of cases held out for validation (at least one when there are two or more).
    class_balance, mirror_axes
        See :class:`PatchDataset`.
    num_classes
        Classes of the model (background included); default: the largest label found plus one.
    seed
        Seed of the case split and of the validation patches.

    Returns
    -------
    torchsci.data.DataSplits
        ``model_kwargs`` holds ``num_classes``; ``info`` the case names of each split and the spacing.
    """
    pairs = find_pairs(root, csv)
    cases = [load_case(image, label, spacing) for image, label in pairs]
    found = max(max(case.centres) for case in cases) + 1
    if num_classes is not None and found > num_classes:
        raise DataError(f"{root or csv}: labels go up to {found - 1} but num_classes={num_classes}.")
    order = np.random.RandomState(seed).permutation(len(cases))
    n_val = 0 if len(cases) < 2 else max(1, round(val_fraction * len(cases)))
    val_cases = [cases[i] for i in order[:n_val]]
    train_cases = [cases[i] for i in order[n_val:]]
    train = PatchDataset(train_cases, patch, samples_per_epoch, class_balance, mirror_axes)
    val = (PatchDataset(val_cases, patch, val_patches_per_case * len(val_cases), class_balance, (), seed=seed)
           if val_cases else None)
    return DataSplits(train=train, val=val, model_kwargs={"num_classes": num_classes or found},
                      info={"train_cases": [c.name for c in train_cases], "val_cases": [c.name for c in val_cases],
                            "spacing_mm": spacing, "patch": list(patch)})
