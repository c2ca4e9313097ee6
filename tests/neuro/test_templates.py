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
