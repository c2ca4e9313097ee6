"""The synthetic-scan generator: shapes, dtypes, labels, reproducibility and use of the global RNG."""

from __future__ import annotations

import numpy as np
import torch

from torchsci_neuro.synth import FixedSynthDataset, SynthBrainDataset, normalise_intensity, synthesize

SHAPE = (40, 48, 32)


def test_dataset_items_are_normalised_images_and_int64_tissue_labels():
    data = SynthBrainDataset(length=3, shape=SHAPE, voxel_size=4.0)
    assert len(data) == 3
    for i in range(3):
        image, labels = data[i]
        assert image.shape == (1, *SHAPE) and image.dtype == torch.float32
        assert labels.shape == SHAPE and labels.dtype == torch.int64
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
        assert set(labels.unique().tolist()) <= {0, 1, 2, 3}


def test_wide_fields_of_view_show_brain_and_background():
    np.random.seed(3)
    fractions = [(synthesize(SHAPE, 4.0)[1] > 0).mean() for _ in range(6)]
    assert all(0.02 < f < 0.9 for f in fractions), fractions


def test_generator_draws_from_numpy_global_rng_so_the_trainer_can_reseed_it():
    data = SynthBrainDataset(length=2, shape=SHAPE, voxel_size=4.0)
    np.random.seed(7)
    a = data[0]
    np.random.seed(7)
    b = data[1]  # the index does not matter, only the RNG state
    np.random.seed(8)
    c = data[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_fixed_validation_set_is_reproducible_and_leaves_global_rng_alone():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    one = FixedSynthDataset(2, seed=5, shape=SHAPE, voxel_size=4.0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    two = FixedSynthDataset(2, seed=5, shape=SHAPE, voxel_size=4.0)
    assert all(torch.equal(one[i][0], two[i][0]) and torch.equal(one[i][1], two[i][1]) for i in range(2))
    assert not torch.equal(one[0][0], one[1][0])


def test_normalise_intensity_maps_percentiles_to_unit_range():
    out = normalise_intensity(np.linspace(-5.0, 5.0, 1001))
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0


def test_registry_builds_the_generator_by_name():
    import torchsci

    data = torchsci.registry.create_dataset("neuro/synth_brain", length=2, shape=SHAPE, voxel_size=4.0)
    assert isinstance(data, SynthBrainDataset) and len(data) == 2


def test_normalisation_ignores_how_much_air_surrounds_the_head():
    """Zero-padding a scan (a larger field of view) leaves its normalised intensities unchanged."""
    rng = np.random.default_rng(0)
    scan = np.zeros((30, 30, 30), np.float32)
    scan[8:22, 8:22, 8:22] = rng.uniform(100, 900, (14, 14, 14))
    scan += np.abs(rng.normal(0, 3, scan.shape)).astype(np.float32)  # noisy air, as in a magnitude image
    big = np.pad(scan, 60)
    np.testing.assert_allclose(normalise_intensity(big)[60:-60, 60:-60, 60:-60], normalise_intensity(scan),
                               atol=0.01)


def test_real_heads_are_drawn_as_a_second_label_source(tmp_path):
    from torchsci_neuro.templates import real_head_labels

    from .test_templates import _phantom_head

    head_path, mask_path, _ = _phantom_head(tmp_path)
    head = real_head_labels(head_path, mask_path)
    data = SynthBrainDataset(length=2, shape=SHAPE, voxel_size=2.0, real_heads=[head], p_real_head=1.0)
    np.random.seed(0)
    image, labels = data[0]
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3} and (labels > 0).any()
    assert torch.isfinite(image).all() and image.max() <= 1
