"""The brain prior's registration: the allowed region, and the header check it doubles as (issue 12).

A header whose affine disagrees with the content (an axis flipped or two swapped: a known failure of
SynthSeg on corrupted headers) gives one warning naming the file and the voxel axis. The scans are
nilearn's MNI152 T1 at 2 mm, written by nibabel, with the voxel order changed and the affine kept.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from torchsci_neuro.inference import segment
from torchsci_neuro.prior import (
    ORIENTATION_CANDIDATES,
    HeaderOrientationWarning,
    fit_brain_prior,
    fit_template,
)
from torchsci_neuro.quality import LowQualityWarning
from torchsci_neuro.templates import template_path


@pytest.fixture(scope="module")
def mni_2mm() -> nib.Nifti1Image:
    """Every second voxel of the 1 mm MNI T1 (a 2 mm grid, the model's spacing; slicing, not resampling: fast)."""
    image = nib.load(template_path("t1"))
    affine = image.affine.copy()
    affine[:3, :3] *= 2.0
    return nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32)[::2, ::2, ::2], affine)


@pytest.fixture(scope="module")
def brain_2mm(mni_2mm) -> np.ndarray:
    """A brain posterior in RAS order: the MNI brain (the resampled T1 is RAS already)."""
    data = np.asarray(mni_2mm.dataobj, dtype=np.float32)
    return (data > 0.2 * data.max()).astype(np.float32)


def test_the_header_orientation_fits_best_on_a_correct_scan(brain_2mm):
    fit = fit_template(brain_2mm, 2.0)
    assert fit.orientation is None, fit.orientation_losses
    assert set(fit.orientation_losses) == {"header", *ORIENTATION_CANDIDATES}
    # Every wrong orientation fits clearly worse than the header's (measured on real posteriors: 6x or more).
    assert min(v for k, v in fit.orientation_losses.items() if k != "header") > 3 * fit.orientation_losses["header"]


@pytest.mark.parametrize(("name", "change"), [
    ("the anterior-posterior axis is flipped", lambda v: v[:, ::-1]),
    ("the superior-inferior axis is flipped", lambda v: v[:, :, ::-1]),
    ("the anterior-posterior and superior-inferior axes are swapped", lambda v: v.transpose(0, 2, 1)),
])
def test_a_flipped_or_swapped_axis_is_named(brain_2mm, name, change):
    fit = fit_template(np.ascontiguousarray(change(brain_2mm)), 2.0)
    assert fit.orientation == name, fit.orientation_losses


def test_the_allowed_region_is_the_prior_s(brain_2mm):
    fit = fit_template(brain_2mm, 2.0, check_orientation=False)
    np.testing.assert_array_equal(fit.allowed, fit_brain_prior(brain_2mm, 2.0))
    brain = brain_2mm > 0.5
    assert fit.allowed[brain].mean() > 0.99 and fit.allowed.sum() < 1.6 * brain.sum()
    assert fit.orientation is None and fit.orientation_losses == {}


class IntensityBands(nn.Module):
    """Voxel-wise logits: normalised intensity near 0 -> background, 1/3 -> CSF, 2/3 -> GM, 1 -> WM."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centres = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=x.dtype).view(1, 4, 1, 1, 1)
        return -200.0 * (x - centres) ** 2


def test_segment_warns_once_naming_the_file_and_the_voxel_axis(mni_2mm, tmp_path):
    kwargs = {"device": "cpu", "model": IntensityBands(), "overlap": 0.0}  # windows tile once: fast
    # A LAS-stored copy (voxel axis 0 runs right to left) keeps a correct header: no warning.
    las = nib.as_closest_canonical(mni_2mm).as_reoriented(np.array([[0, -1], [1, 1], [2, 1]]))
    good = tmp_path / "good.nii.gz"
    nib.save(las, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeaderOrientationWarning)
        warnings.simplefilter("ignore", LowQualityWarning)
        segment(str(good), **kwargs)
    # The same voxels with voxel axis 1 reversed and the header unchanged: the face is now "posterior".
    bad = tmp_path / "flipped_header.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.asarray(las.dataobj)[:, ::-1]), las.affine), bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = segment(str(bad), **kwargs)
    header = [w for w in caught if issubclass(w.category, HeaderOrientationWarning)]
    assert len(header) == 1, [str(w.message) for w in caught]
    message = str(header[0].message)
    assert str(bad) in message and "anterior-posterior axis is flipped" in message and "voxel axis 1" in message
    assert labels.shape == las.shape and (np.asarray(labels.dataobj) > 0).sum() > 1000  # labels still come back


@pytest.mark.parametrize(("spacing", "distance"), [(2.0, 6.0), (1.0, 6.0), (1.5, 4.0), (3.0, 6.0)])
def test_the_allowed_margin_is_the_distance_transform_s(spacing, distance):
    """The prior's margin is a dilation by a ball (faster); it must select exactly the voxels the Euclidean
    distance transform puts within the margin, ties on the ball's surface included."""
    from scipy import ndimage as ndi

    from torchsci_neuro.prior import _within

    rng = np.random.default_rng(int(spacing * 10 + distance))
    mask = ndi.binary_opening(rng.random((40, 45, 38)) > 0.6) | (rng.random((40, 45, 38)) > 0.999)
    mask[:, :, :20] = False  # a flat face, where offsets exactly at the margin decide
    want = ndi.distance_transform_edt(~mask, sampling=spacing) <= distance
    assert 0.05 < want.mean() < 0.95
    np.testing.assert_array_equal(_within(mask, spacing, distance), want)
    assert _within(np.zeros((5, 5, 5), bool), spacing, distance).all()
