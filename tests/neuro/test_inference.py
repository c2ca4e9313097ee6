"""segment(): labels land on the input's own grid, whatever its orientation, voxel size or scale.

The networks here have outputs that are known functions of the input, so any geometric slip
(a flipped axis, a half-voxel shift, a wrong zoom) shows up as a phantom segmented in the wrong place.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchsci.errors import ConfigError
from torchsci_neuro.inference import (
    gaussian_importance,
    inference_precision,
    label_volumes,
    postprocess,
    segment,
    sliding_window_probabilities,
    window_starts,
)
from torchsci_neuro.models import UNet3D

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


class IntensityBands(nn.Module):
    """Voxel-wise logits: normalised intensity near 0 -> background, 1/3 -> CSF, 2/3 -> GM, 1 -> WM."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centres = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=x.dtype).view(1, 4, 1, 1, 1)
        return -200.0 * (x - centres) ** 2


class HalfThreshold(nn.Module):
    """A brain-mask model: brain where the normalised intensity is above 0.5 (edges stay where they are)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], dim=1) * 50.0


def _sphere_phantom(shape, centre, radius_vox, voxel_size=(1.0, 1.0, 1.0)):
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    distance = np.sqrt((((grid - np.asarray(centre)) * np.asarray(voxel_size)) ** 2).sum(-1))
    return distance <= radius_vox


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _oblique_affine(voxel_size) -> np.ndarray:
    angle = np.deg2rad(20.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel_size)
    affine[:3, 3] = [-30.0, 12.0, 5.0]
    return affine


GEOMETRIES = {
    "ras_1mm": (np.diag([1.0, 1.0, 1.0, 1.0]), (1.0, 1.0, 1.0)),
    "las_1mm": (np.diag([-1.0, 1.0, 1.0, 1.0]), (1.0, 1.0, 1.0)),
    "permuted_anisotropic": (np.array([[0, 0, -1.0, 0], [-0.9, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 1.0]]),
                             (0.9, 3.0, 1.0)),
    "oblique": (_oblique_affine((1.0, 1.0, 1.0)), (1.0, 1.0, 1.0)),
    "anisotropic_0.9x0.9x3": (np.diag([0.9, 0.9, 3.0, 1.0]), (0.9, 0.9, 3.0)),
}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_sphere_phantom_is_segmented_where_it_is(tmp_path, geometry):
    affine, voxel_size = GEOMETRIES[geometry]
    shape = tuple(round(fov / v) for fov, v in zip((48.0, 40.0, 38.0), voxel_size, strict=True))
    # Off-centre along every axis, so a flipped or permuted axis would move it away.
    centre = np.array(shape) * np.array([0.35, 0.6, 0.45])
    sphere = _sphere_phantom(shape, centre, 9.0, voxel_size)
    data = np.where(sphere, 900.0, 20.0).astype(np.float32)
    path = tmp_path / f"{geometry}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)

    out = segment(path, task="brain_mask", model=HalfThreshold(), window=(16, 16, 16), device="cpu")
    assert out.shape == shape
    np.testing.assert_allclose(out.affine, nib.load(path).affine, atol=1e-6)
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(affine)
    mask = np.asarray(out.dataobj).astype(bool)
    assert _dice(mask, sphere) > 0.9, geometry


def test_tissue_labels_follow_intensity_bands_on_las_anatomical():
    """nibabel's real 2 mm LAS scan: each label covers the voxels whose intensity falls in its band."""
    out, probs = segment(ANATOMICAL, model=IntensityBands(), window=(16, 16, 16), device="cpu",
                         probabilities=True)
    source = nib.load(ANATOMICAL)
    assert out.shape == source.shape and np.allclose(out.affine, source.affine)
    assert out.get_data_dtype() == np.uint8
    assert probs.shape == (4, *source.shape)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    labels = np.asarray(out.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    # At 2 mm the model's grid is the input grid: the most probable class is the intensity band.
    brightest = source.get_fdata() >= np.percentile(source.get_fdata(), 99.5)
    assert (labels[brightest] == 3).mean() > 0.9


def test_4d_with_one_volume_and_any_intensity_scale(tmp_path):
    shape = (40, 40, 30)
    sphere = _sphere_phantom(shape, (15, 22, 14), 8.0)
    results = []
    for scale, offset in [(1.0, 0.0), (1e-3, 0.0), (5e4, -1e3)]:
        data = (np.where(sphere, 1.0, 0.05) * scale + offset).astype(np.float32)[..., None]
        path = tmp_path / f"scale_{scale}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([-1.0, 1.0, 1.0, 1.0])), path)
        out = segment(path, task="brain_mask", model=HalfThreshold(), window=(16, 16, 16), device="cpu")
        assert out.shape == shape
        results.append(np.asarray(out.dataobj))
    assert _dice(results[0].astype(bool), sphere) > 0.9
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_brain_mask_keeps_largest_component_and_fills_holes():
    shape = (40, 40, 40)
    brain = _sphere_phantom(shape, (20, 20, 20), 12.0)
    hole = _sphere_phantom(shape, (20, 20, 20), 3.0)
    speck = _sphere_phantom(shape, (4, 4, 4), 2.0)
    data = np.where(brain & ~hole, 1.0, 0.0) + np.where(speck, 1.0, 0.0)
    out = segment(nib.Nifti1Image(data.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), task="brain_mask",
                  model=IntensityBands(), window=(16, 16, 16), device="cpu")
    mask = np.asarray(out.dataobj).astype(bool)
    assert mask[20, 20, 20] and not mask[4, 4, 4]
    assert _dice(mask, brain) > 0.95


def test_postprocess_in_the_bounding_box_equals_the_whole_grid():
    from scipy import ndimage as ndi
    from skimage import measure

    rng = np.random.default_rng(0)
    for trial in range(4):
        brain = ndi.binary_opening(rng.random((30, 34, 26)) > 0.45 - 0.1 * trial)
        brain[0, :, :5] = True  # a component on the grid's edge, and hollow shells touching it
        brain[2:9, 2:9, 0:9] = True
        brain[4:7, 4:7, 0:7] = False
        probs = np.stack([~brain, brain]).astype(np.float32)
        components = measure.label(brain, connectivity=1)
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        want = ndi.binary_fill_holes(components == sizes.argmax())
        np.testing.assert_array_equal(postprocess(probs, "brain_mask").astype(bool), want)
    assert not postprocess(np.stack([np.ones((5, 5, 5)), np.zeros((5, 5, 5))]), "brain_mask").any()


@pytest.mark.parametrize("task", ["tissue", "brain_mask"])
def test_labels_from_the_brains_reach_equal_labels_from_the_whole_box(task):
    """Without probabilities, only the model voxels that could be brain are resampled, a slab at a time; the
    labels must equal those of the whole head box resampled at once (F.interpolate) and post-processed."""
    from scipy import ndimage as ndi

    from torchsci_neuro.grid import RAS
    from torchsci_neuro.masks import labels_on_scan_grid

    rng = np.random.default_rng(1)
    model_shape, canonical_shape = (30, 34, 26), (61, 67, 53)  # odd sizes: scale factors of 1.97-2.04
    box = (slice(3, 28), slice(0, 34), slice(2, 24))
    tissue = torch.from_numpy(ndi.gaussian_filter(rng.normal(size=(3, *model_shape)), sigma=(0, 2, 2, 2)) * 6.0)
    radius = np.abs(np.indices(model_shape) - np.array([15.3, 17.6, 12.8])[:, None, None, None]).max(axis=0)
    background = torch.from_numpy(1.0 / (1.0 + np.exp(-1.3 * (radius - 8.0))))  # a cube, soft over a few voxels
    probs = torch.cat([background[None], (1.0 - background) * tissue.softmax(dim=0)]).float()
    if task == "brain_mask":
        probs = torch.stack([probs[0], probs[1:].sum(dim=0)])
    inside = probs[(slice(None), *box)]
    whole = F.interpolate(probs[None], size=canonical_shape, mode="trilinear", align_corners=False)[0]
    from torchsci_neuro.grid import covered_box

    where = covered_box(model_shape, box, canonical_shape)
    want = np.zeros(canonical_shape, np.uint8)
    want[where] = postprocess(whole[(slice(None), *where)].numpy(), task)
    assert 0.01 < (want > 0).mean() < 0.5
    labels, none = labels_on_scan_grid(inside, canonical_shape, RAS, task, model_shape=model_shape, box=box)
    assert none is None
    np.testing.assert_array_equal(labels, want)
    labels, full = labels_on_scan_grid(inside, canonical_shape, RAS, task, with_probabilities=True,
                                       model_shape=model_shape, box=box)
    np.testing.assert_array_equal(labels, want)
    np.testing.assert_allclose(full[(slice(None), *where)], whole[(slice(None), *where)].numpy(), atol=1e-6)


def test_precision_auto_follows_the_hardware_and_bf16_agrees_with_float32():
    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert inference_precision("auto", cpu) == ("bf16-mixed" if native else "32")
    assert inference_precision("64", cpu) == "64"
    torch.manual_seed(0)
    model = UNet3D(channels=(4, 8))
    labels = {p: np.asarray(segment(ANATOMICAL, model=model, window=(16, 16, 16), device="cpu",
                                    precision=p).dataobj) for p in ("32", "bf16-mixed", "64")}
    assert (labels["32"] == labels["64"]).mean() > 0.999
    assert (labels["32"] == labels["bf16-mixed"]).mean() > 0.95


def test_real_unet_runs_on_input_grid():
    model = UNet3D(channels=(4, 8))
    out = segment(ANATOMICAL, model=model, window=(16, 16, 16), device="cpu", mirror=True)
    assert out.shape == (33, 41, 25) and np.allclose(out.affine, nib.load(ANATOMICAL).affine)


def test_window_starts_cover_the_volume():
    for length in (7, 16, 17, 63, 100):
        starts = window_starts(length, 16, 0.5)
        assert starts[0] == 0 and starts[-1] == max(0, length - 16)
        assert all(b - a <= 8 for a, b in zip(starts[:-1], starts[1:], strict=True))


def test_gaussian_blending_weights_normalise():
    """A constant model gives back its constant probabilities exactly, wherever windows overlap or pad."""
    target = torch.tensor([0.1, 0.2, 0.3, 0.4])

    class Constant(nn.Module):
        def forward(self, x):
            return target.log().view(1, 4, 1, 1, 1).expand(x.shape[0], 4, *x.shape[2:])

    for shape in [(30, 21, 17), (10, 9, 8)]:
        probs = sliding_window_probabilities(Constant(), torch.rand(shape), window=(16, 16, 16), overlap=0.5)
        assert probs.shape == (4, *shape)
        torch.testing.assert_close(probs, target.view(4, 1, 1, 1).expand(4, *shape), atol=1e-6, rtol=0)
    weight = gaussian_importance((16, 12, 8))
    assert weight.shape == (16, 12, 8) and float(weight.max()) == 1.0
    assert torch.equal(weight, weight.flip(0)) and torch.equal(weight, weight.flip(2))


def test_output_independent_of_window_size_for_translation_equivariant_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv3d(8, 4, 3, padding=1)).eval()
    image = torch.rand(40, 36, 28)
    whole = sliding_window_probabilities(model, image, window=(40, 36, 28))
    for window in [(16, 16, 16), (24, 20, 16), (32, 32, 24)]:  # windows inside the volume: no padding
        tiled = sliding_window_probabilities(model, image, window=window, overlap=0.5, batch_size=3)
        assert (tiled - whole).abs().max() < 0.01, window
        assert (tiled.argmax(0) == whole.argmax(0)).float().mean() > 0.99


def test_an_axis_shorter_than_the_window_is_centred_in_it():
    class FirstHalfOfWindow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            first = (torch.arange(x.shape[2]) < x.shape[2] // 2).to(x.dtype).view(1, 1, -1, 1, 1).expand_as(x)
            return torch.cat([1.0 - first, first], dim=1) * 50.0

    probs = sliding_window_probabilities(FirstHalfOfWindow(), torch.rand(10, 16, 16), window=(16, 16, 16))
    assert probs.shape == (2, 10, 16, 16)
    assert (probs[1, :5] > 0.99).all() and (probs[1, 5:] < 0.01).all()  # 3 voxels of air on each side


def test_mirror_tta_of_a_symmetric_model_changes_nothing():
    image = torch.rand(20, 20, 20)
    plain = sliding_window_probabilities(IntensityBands(), image, window=(16, 16, 16))
    mirrored = sliding_window_probabilities(IntensityBands(), image, window=(16, 16, 16), mirror_axes=(0, 1, 2))
    torch.testing.assert_close(plain, mirrored)


def test_tissue_task_needs_four_classes():
    class TwoClass(nn.Module):
        def forward(self, x):
            return torch.cat([-x, x], dim=1)

    with pytest.raises(ConfigError, match="4 outputs"):
        segment(ANATOMICAL, task="tissue", model=TwoClass(), window=(16, 16, 16))
    out = segment(ANATOMICAL, task="brain_mask", model=TwoClass(), window=(16, 16, 16))
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}


def test_unknown_task():
    with pytest.raises(ConfigError, match="tissue, brain_mask"):
        segment(ANATOMICAL, task="lesions", model=IntensityBands())


def test_label_volumes_use_the_affine():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 2
    labels[5:, :2] = 3
    image = nib.Nifti1Image(labels, np.diag([0.9, 0.9, 3.0, 1.0]))
    rows = {row["name"]: row for row in label_volumes(image, "tissue")}
    assert rows["GM"]["voxels"] == 500 and rows["GM"]["volume_ml"] == pytest.approx(500 * 0.9 * 0.9 * 3 / 1000)
    assert rows["CSF"]["voxels"] == 0 and rows["WM"]["voxels"] == 100


class WindowPosition(nn.Module):
    """Logits that depend on the intensity AND on where a voxel sits in its window (a stand-in for a network
    whose answer depends on the tiling): any change of model grid or window layout changes the labels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0.0, 0.3, x.shape[2], dtype=x.dtype).view(1, 1, -1, 1, 1)
        return IntensityBands()(x + ramp * (x > 0.05))


@pytest.mark.filterwarnings("ignore::torchsci_neuro.quality.LowQualityWarning")
def test_zero_padding_the_field_of_view_changes_no_label():
    """Issue 12: the MNI T1 zero-padded to 320^3 moved CSF by -4.8%. A zero-bordered scan (odd sizes, 1 mm, so
    the 2 mm model grid's phase and scale and the windows' tiling followed the field of view) and the same
    voxels zero-padded unevenly (affine translated) must give identical labels on the shared voxels."""
    shape = (41, 47, 37)
    bands = np.zeros(shape, np.float32)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    radius = np.sqrt(((grid - np.array([20.0, 23.0, 18.0])) ** 2).sum(-1))
    bands[radius < 15] = 1.0 / 3
    bands[radius < 11] = 2.0 / 3
    bands[radius < 6] = 1.0
    bands[19:22, 22:25, 0:5] = 2.0 / 3  # a "brainstem" reaching the bottom face in 9 voxels, as the MNI T1's does
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    pads = ((7, 12), (3, 20), (11, 0))
    padded_affine = affine.copy()
    padded_affine[:3, 3] -= affine[:3, :3] @ np.array([p[0] for p in pads], float)
    kwargs = {"device": "cpu", "model": WindowPosition(), "window": (24, 24, 24), "prior": False}
    small = np.asarray(segment(nib.Nifti1Image(bands, affine), **kwargs).dataobj)
    big_img, probs = segment(nib.Nifti1Image(np.pad(bands, pads), padded_affine), probabilities=True, **kwargs)
    big = np.asarray(big_img.dataobj)
    assert probs.shape == (4, *big.shape)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert (probs[0][big == 0] > 0.5).mean() > 0.99 and (probs.argmax(0)[big > 0] > 0).mean() > 0.99
    inner = tuple(slice(b, b + n) for (b, _), n in zip(pads, shape, strict=True))
    assert np.bincount(small.ravel(), minlength=4)[1:].min() > 100  # every tissue is there
    np.testing.assert_array_equal(big[inner], small)
    near = np.zeros(big.shape, bool)  # the added zeros hold labels only next to the stem's cut face (resampling)
    near[tuple(slice(max(sl.start - 2, 0), sl.stop + 2) for sl in inner)] = True
    assert not big[~near].any()
