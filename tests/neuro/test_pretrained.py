"""The shipped tissue model: its weight file, its checksum, and its quality on the scans that ship offline.

CI never trains the model; these tests check the weights that ship: they load only when the sha256
matches, and segment() with no model= uses them and finds the brain of the MNI152 T1 and of a real
subject's scan (nibabel's anatomical.nii, LAS, 2 mm) on the input's own grid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import torchsci
from torchsci.errors import PretrainedWeightsError
from torchsci.registry import registry
from torchsci_neuro import segment
from torchsci_neuro.inference import PRETRAINED_MODEL
from torchsci_neuro.templates import mni_tissue_labels, template_path


@pytest.fixture(scope="module")
def mni_labels() -> np.ndarray:
    """The shipped model's tissue labels of the MNI152 T1 (one segmentation shared by the tests)."""
    return np.asarray(segment(template_path("t1"), device="cpu").dataobj)


def test_weights_ship_with_a_checksum_and_a_model_card():
    registry.load_plugins()
    weights = registry.models[PRETRAINED_MODEL].pretrained
    (entry,) = weights.values()
    path = entry.path()
    assert path.is_file() and path.stat().st_size < 10_000_000
    assert (path.parent / "MODEL_CARD.md").is_file()
    model = torchsci.create_model(PRETRAINED_MODEL, pretrained=True)
    assert model(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 4, 16, 16, 16)


def test_a_corrupt_weight_file_is_refused(tmp_path, monkeypatch):
    registry.load_plugins()
    (entry,) = registry.models[PRETRAINED_MODEL].pretrained.values()
    broken = tmp_path / "weights.safetensors"
    shutil.copy(entry.path(), broken)
    data = bytearray(broken.read_bytes())
    data[-100] ^= 0xFF
    broken.write_bytes(bytes(data))
    monkeypatch.setattr(type(entry), "path", lambda self: broken)
    with pytest.raises(PretrainedWeightsError, match="corrupt"):
        torchsci.create_model(PRETRAINED_MODEL, pretrained=True)


def test_segment_without_a_model_finds_the_mni_brain_and_its_tissues(mni_labels):
    truth = mni_tissue_labels().labels
    assert mni_labels.shape == truth.shape
    brain, true_brain = mni_labels > 0, truth > 0
    assert 2 * (brain & true_brain).sum() / (brain.sum() + true_brain.sum()) >= 0.95
    for label in (1, 2, 3):  # every tissue is found, where the template has it
        predicted, true = mni_labels == label, truth == label
        assert 2 * (predicted & true).sum() / (predicted.sum() + true.sum()) >= 0.5, label


def test_brain_mask_task_matches_the_tissue_labels_brain(mni_labels):
    mask = np.asarray(segment(template_path("t1"), task="brain_mask", device="cpu").dataobj)
    assert set(np.unique(mask)) <= {0, 1}
    agreement = 2 * ((mask > 0) & (mni_labels > 0)).sum() / ((mask > 0).sum() + (mni_labels > 0).sum())
    assert agreement > 0.99


def test_real_las_scan_is_segmented_on_its_own_grid():
    """nibabel's anatomical.nii: one real subject, a 2 mm LAS field of view inside the brain, no labels.

    What a T1 says without labels: the brightest voxels are white matter, the darkest (ventricles) CSF
    or gray matter, never white matter; and the whole field of view is brain.
    """
    source = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    scan = nib.load(source)
    labels = segment(source, device="cpu")
    assert labels.shape == scan.shape[:3]
    np.testing.assert_allclose(labels.affine, scan.affine)
    data, t1 = np.asarray(labels.dataobj), np.asarray(scan.dataobj, dtype=float)
    assert (data > 0).mean() > 0.9
    centre = tuple(slice(n // 4, 3 * n // 4) for n in t1.shape)
    t1, data = t1[centre], data[centre]
    brightest = data[t1 >= np.percentile(t1, 80)]
    darkest = data[t1 <= np.percentile(t1, 5)]
    assert (brightest == 3).mean() > 0.7
    assert (darkest == 3).mean() < 0.05 and (darkest == 1).mean() > 0.25


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Two labelled synthetic cases laid out as a lab's study: images/ and labels/ NIfTI pairs."""
    from torchsci_neuro.synth import synthesize

    root = tmp_path_factory.mktemp("study")
    for folder in ("images", "labels"):
        (root / folder).mkdir()
    for i in range(2):
        image, labels = synthesize((48, 48, 48), 2.0, np.random.RandomState(i))
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        nib.save(nib.Nifti1Image(image, affine), root / "images" / f"case{i}.nii.gz")
        nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), root / "labels" / f"case{i}.nii.gz")
    return root


def _shipped_config(study: Path, run_dir: Path, *overrides: str):
    return torchsci.compose(["experiment=neuro/segment", f"data.root={study}", "data.patch=[32,32,32]",
                             "model.name=neuro/unet3d-tissue", "+model.pretrained=true", "trainer=smoke",
                             f"run_dir={run_dir}", *overrides])


def test_fine_tuning_from_the_shipped_weights_through_the_config(study, tmp_path):
    from torchsci.checkpoint import load_state

    result = torchsci.run(_shipped_config(study, tmp_path, "trainer.max_steps=1", "trainer.lr=0.0"))
    tuned = load_state(result["best_checkpoint"])["model"]
    shipped = torchsci.create_model(PRETRAINED_MODEL, pretrained=True).state_dict()
    for name, tensor in shipped.items():  # lr 0: the run started from, and kept, the shipped weights
        torch.testing.assert_close(tuned[name], tensor, msg=name)


def test_evaluating_the_shipped_weights_needs_no_checkpoint(study, tmp_path):
    # whole 48^3 cases: a 32^3 patch shows the model a fragment of a 96 mm field of view (the ft3 weights score
    # brain Dice 0.49 on such patches, 0.72 on the whole cases; the weights before them 0.58 / 0.78)
    results = torchsci.run(_shipped_config(study, tmp_path, "data.patch=[48,48,48]"), "evaluate")
    assert 0.5 < results["val"]["val/dice_brain"] <= 1.0  # the shipped model on two synthetic cases
