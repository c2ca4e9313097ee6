"""The MNI152 label maps built from nilearn's shipped files."""

from __future__ import annotations

import numpy as np
import pytest

from torchsci_neuro.templates import HEAD_NAMES, mni_head_labels, mni_tissue_labels


@pytest.fixture(scope="module")
def tissue():
    return mni_tissue_labels()


def test_tissue_map_is_1mm_ras_with_four_labels(tissue):
    assert tissue.labels.shape == (197, 233, 189)
    assert tissue.voxel_size == (1.0, 1.0, 1.0)
    assert set(np.unique(tissue.labels)) == {0, 1, 2, 3}


def test_tissue_volumes_are_plausible_for_mni(tissue):
    """MNI152 2009a is an average brain, larger and smoother than one subject: about 1.9 L in all."""
    csf, gm, wm = (tissue.volume_ml(label) for label in (1, 2, 3))
    assert 1400 < csf + gm + wm < 2200
    assert 700 < gm < 1300
    assert 450 < wm < 800
    assert 50 < csf < 400
    assert gm > wm > csf


def test_head_map_keeps_brain_and_adds_structures_below_and_around_it(tissue):
    head = mni_head_labels()
    pad = head.labels.shape[2] - tissue.labels.shape[2]
    assert pad > 0
    upper = head.labels[:, :, pad:]
    brain = tissue.labels > 0
    np.testing.assert_array_equal(upper[brain], tissue.labels[brain])
    assert not np.isin(upper[~brain], [1, 2, 3]).any(), "outside the brain only air and generator-only labels"
    for label, name in enumerate(HEAD_NAMES[4:], start=4):
        assert head.volume_ml(label) > 1.0, f"{name} is missing"
    cord = np.nonzero(head.labels == HEAD_NAMES.index("cord"))
    assert cord[2].min() < pad, "the cord extends below the template's field of view"
    # World z of the padded volume's first slice sits 70 mm below the template's.
    assert head.affine[2, 3] == pytest.approx(tissue.affine[2, 3] - pad)


def _phantom_head(tmp_path):
    """A real-format full-head phantom: a brain (WM core, GM, CSF) inside bone/muscle/fat shells, in air."""
    import nibabel as nib

    shape = (49, 56, 50)  # odd along the flipped axis, so the centre stays put under the flip
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    r = np.sqrt(((grid - np.array([24, 28, 25])) ** 2).sum(-1))
    image = np.select([r < 8, r < 12, r < 14, r < 16, r < 18, r < 20, r < 22],
                      [900.0, 600.0, 250.0, 80.0, 400.0, 1000.0, 500.0], default=5.0)
    image += np.random.default_rng(0).normal(0, 5.0, shape)
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # LAS on disk: the label map must come out RAS
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), tmp_path / "head.nii.gz")
    nib.save(nib.Nifti1Image((r < 14).astype(np.uint8), affine), tmp_path / "brain.nii.gz")
    return tmp_path / "head.nii.gz", tmp_path / "brain.nii.gz", r


def test_real_head_labels_keep_the_brain_and_split_the_head_by_intensity(tmp_path):
    from torchsci_neuro.templates import REAL_HEAD_NAMES, real_head_labels

    head_path, mask_path, r = _phantom_head(tmp_path)
    head = real_head_labels(head_path, mask_path)
    assert head.names == REAL_HEAD_NAMES and head.labels.shape == r.shape
    assert head.affine[0, 0] > 0, "canonical (RAS) axis order"
    r = r[::-1]  # as_closest_canonical flipped the first axis (the phantom is centred on it: the same r)
    assert set(np.unique(head.labels[r < 14])) <= {1, 2, 3}
    assert (head.labels[r < 7] == 3).all(), "the brightest brain class is white matter"
    assert set(np.unique(head.labels[(r > 14.5) & (r < 21.5)])) <= {4, 5, 6, 7}
    assert (head.labels[r > 25] == 0).all(), "air"
    assert head.t1_ranges.shape == (len(REAL_HEAD_NAMES), 2) and head.texture.shape == r.shape
    assert np.allclose(head.centre_mm, head.affine[:3, :3] @ np.array([24.0, 28, 25]) + head.affine[:3, 3], atol=1.0)


def test_real_head_labels_refuse_a_mask_on_another_grid(tmp_path):
    import nibabel as nib

    from torchsci.errors import DataError
    from torchsci_neuro.templates import real_head_labels

    head_path, _, _ = _phantom_head(tmp_path)
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), tmp_path / "other.nii.gz")
    with pytest.raises(DataError, match="not on the grid"):
        real_head_labels(head_path, tmp_path / "other.nii.gz")
