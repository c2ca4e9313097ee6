"""The intensity refinement of tissue labels: what it fixes, what it must never change, and its edge cases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from torchsci_neuro.refine import refine_tissue
from torchsci_neuro.task import dice_overlap


def _layers(shape=(40, 12, 10), seed=0, bias=0.0, noise=0.04, shift=2):
    """Three tissue slabs along x (CSF 0.3, GM 0.6, WM 1.0) with a multiplicative bias ramp along y, and a prior
    that puts both boundaries ``shift`` voxels off."""
    truth = np.zeros(shape, np.int64)
    truth[14:26] = 1
    truth[26:] = 2
    means = np.array([0.3, 0.6, 1.0])
    ramp = np.exp(bias * np.linspace(-1, 1, shape[1]))[None, :, None]
    image = means[truth] * ramp + np.random.default_rng(seed).normal(0, noise, shape)
    wrong = np.zeros(shape, np.int64)
    wrong[14 + shift:26 + shift] = 1
    wrong[26 + shift:] = 2
    prior = np.full((3, *shape), 0.15)
    for c in range(3):
        prior[c][wrong == c] = 0.7
    return image.astype(np.float32), truth, prior.astype(np.float32)


def test_boundaries_move_to_where_the_intensities_put_them():
    image, truth, prior = _layers()
    brain = np.ones(image.shape, bool)
    before = (prior.argmax(0) != truth).mean()
    after = (refine_tissue(image, brain, prior, (1.0, 1.0, 1.0)).argmax(0) != truth).mean()
    assert before > 0.09  # the prior is off by two voxels at two boundaries of 40
    assert after < before / 10
    # Three voxels off, a quarter of the GM slab starts in the wrong class, which biases the first means: more
    # iterations finish it.
    image, truth, prior = _layers(shift=3)
    assert (refine_tissue(image, brain, prior, (1.0, 1.0, 1.0), iterations=10).argmax(0) != truth).mean() == 0.0


def test_a_bias_field_that_swaps_global_thresholds_does_not_move_the_boundaries():
    # A 2.7x shading over 12 cm: GM at the bright side is brighter than WM at the dark side, so no global
    # intensity threshold separates them; the local class means do.
    image, truth, prior = _layers(shape=(40, 120, 4), bias=0.5, shift=1)
    gm_bright, wm_dark = image[14:26, -10:].mean(), image[26:, :10].mean()
    assert gm_bright > wm_dark
    labels = refine_tissue(image, np.ones(image.shape, bool), prior, (1.0, 1.0, 1.0)).argmax(0)
    assert (prior.argmax(0) != truth).mean() > 0.04
    assert (labels != truth).mean() < 0.02


def test_posteriors_sum_to_one_in_the_brain_and_vanish_outside():
    image, truth, prior = _layers()
    brain = np.zeros(image.shape, bool)
    brain[5:35, 2:10, 2:8] = True
    q = refine_tissue(image, brain, prior, (1.0, 1.0, 1.0))
    assert q.dtype == np.float32 and q.shape == prior.shape
    np.testing.assert_allclose(q.sum(0)[brain], 1.0, rtol=1e-5)
    assert not q[:, ~brain].any()


def test_float64_non_contiguous_anisotropic_and_odd_sizes_give_the_same_answer():
    image, truth, prior = _layers(shape=(41, 13, 9))
    brain = np.ones(image.shape, bool)
    reference = refine_tissue(image, brain, prior, (1.0, 1.2, 3.0))
    # Fortran-ordered float64 image, a strided (non-contiguous) prior view
    padded = np.zeros((3, 41, 26, 9), np.float64)
    padded[:, :, ::2] = prior
    other = refine_tissue(np.asfortranarray(image.astype(np.float64)), brain, padded[:, :, ::2], (1.0, 1.2, 3.0))
    np.testing.assert_allclose(other, reference, atol=1e-5)
    assert (reference.argmax(0) != truth).mean() < (prior.argmax(0) != truth).mean() / 10


@pytest.mark.parametrize("case", ["empty brain", "constant image", "a few voxels"])
def test_nothing_to_learn_from_keeps_the_prior(case):
    image, truth, prior = _layers()
    brain = np.ones(image.shape, bool)
    if case == "empty brain":
        brain[:] = False
    elif case == "constant image":
        image[:] = 7.0
    else:
        brain[:] = False
        brain[20, 5, 5:8] = True
    q = refine_tissue(image, brain, prior, (1.0, 1.0, 1.0))
    assert np.isfinite(q).all()
    if case == "empty brain":
        assert not q.any()
    else:
        normalised = prior / prior.sum(0, keepdims=True)
        np.testing.assert_allclose(q[:, brain], normalised[:, brain], atol=1e-5)


def test_a_class_the_network_never_predicts_stays_finite():
    image, truth, prior = _layers()
    prior[0] = 0.0  # no CSF anywhere in the prior
    q = refine_tissue(image, np.ones(image.shape, bool), prior, (1.0, 1.0, 1.0))
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(0), 1.0, rtol=1e-5)


class _IntensityBands(torch.nn.Module):
    """A stand-in network whose tissue posteriors are smeared (a 3-voxel box blur of intensity bands), as a
    network at twice the scan's voxel size smears thin structures."""

    def forward(self, x):
        x = x[:, 0]
        bands = torch.stack([x < 0.05, (x >= 0.05) & (x < 0.4), (x >= 0.4) & (x < 0.75), x >= 0.75], dim=1).float()
        blurred = torch.nn.functional.avg_pool3d(bands, 5, stride=1, padding=2, count_include_pad=False)
        return torch.log(blurred.clamp_min(1e-4))


def test_segment_refines_tissue_but_never_the_brain_mask(tmp_path):
    from tests.neuro.conftest import phantom
    from torchsci_neuro import segment

    image, truth = phantom((40, 40, 40), (20, 20, 20), radii=(16.0, 12.0, 8.0))
    path = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    model = _IntensityBands()
    plain, plain_probs = segment(path, model=model, device="cpu", spacing=1.0, window=(32, 32, 32), refine=False,
                                 prior=False, probabilities=True, precision="32")
    refined, probs = segment(path, model=model, device="cpu", spacing=1.0, window=(32, 32, 32),
                             prior=False, probabilities=True, precision="32")
    plain, refined = np.asarray(plain.dataobj), np.asarray(refined.dataobj)
    np.testing.assert_array_equal(refined > 0, plain > 0)
    np.testing.assert_allclose(probs[0], plain_probs[0])  # the background posterior is the network's
    # the labels are the argmax of the returned posteriors inside the brain
    brain = refined > 0
    np.testing.assert_array_equal(probs[1:].argmax(0)[brain] + 1, refined[brain])
    gm = lambda labels: dice_overlap(labels == 2, truth == 2)  # noqa: E731
    assert gm(refined) > gm(plain) + 0.02
