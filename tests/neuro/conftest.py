"""Tiny labelled studies written as real NIfTI files, and a checkpoint trained on one with the Trainer."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import torchsci

# Intensity of background, CSF, GM, WM in the phantoms (T1-like ordering).
TISSUE_INTENSITY = np.array([0.0, 0.25, 0.55, 0.9])


def phantom(shape, centre, radii=(11.0, 8.0, 5.0), seed=0):
    """Labels of nested spheres (CSF shell, GM shell, WM core; radii in voxels) and a noisy T1-like image."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    distance = np.sqrt(((grid - np.asarray(centre)) ** 2).sum(-1))
    labels = np.zeros(shape, np.uint8)
    for label, radius in zip((1, 2, 3), radii, strict=True):
        labels[distance <= radius] = label
    rng = np.random.RandomState(seed)
    image = TISSUE_INTENSITY[labels] * 800.0 + rng.normal(0, 10.0, size=shape) + 50.0
    return image.astype(np.float32), labels


def write_study(root: Path, n_cases: int = 3) -> Path:
    """``root/images/case-i.nii.gz`` and ``root/labels/case-i.nii.gz``; case 1 is stored LAS."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n_cases):
        shape = (28, 30, 26)
        image, labels = phantom(shape, (13 + i, 15 - i, 12 + i), seed=i)
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        if i == 1:
            affine = np.diag([-2.0, 2.0, 2.0, 1.0])
        nib.save(nib.Nifti1Image(image, affine), root / "images" / f"case-{i}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), root / "labels" / f"case-{i}.nii.gz")
    return root


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def trained_checkpoint(study, tmp_path_factory) -> Path:
    """A neuro/unet3d checkpoint from a few real Trainer steps on the phantom study."""
    from torchsci_neuro.datasets import labelled_scans
    from torchsci_neuro.task import SegmentationTask

    torchsci.seed_everything(0)
    splits = labelled_scans(root=str(study), patch=(16, 16, 16), samples_per_epoch=8)
    model = torchsci.create_model("neuro/unet3d", channels=[4, 8], **splits.model_kwargs)
    trainer = torchsci.Trainer(max_epochs=1, max_steps=4, batch_size=2, lr=1e-2, device="cpu", verbose=False,
                               tensorboard=False, run_dir=tmp_path_factory.mktemp("run"))
    result = trainer.fit(model, SegmentationTask(), splits.train, splits.val)
    return Path(result.last_checkpoint)


def torchsci_cli(*args: str, cwd: Path, timeout: int = 300):
    """Run ``torchsci ARGS`` in a fresh interpreter with one thread."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torchsci.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
