"""Own-data training: image/label NIfTI pairs, patch sampling, Hausdorff distances, and the config run."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

import torchsci
from torchsci.data import DataSplits
from torchsci.errors import DataError
from torchsci_neuro.datasets import PatchDataset, find_pairs, labelled_scans, load_case
from torchsci_neuro.task import HausdorffDistance95, SegmentationTask, hausdorff95

from .conftest import torchsci_cli, write_study


def test_find_pairs_from_folder_and_csv(study, tmp_path):
    pairs = find_pairs(study)
    assert [(i.name, lab.name) for i, lab in pairs] == [(f"case-{k}.nii.gz", f"case-{k}.nii.gz") for k in range(3)]
    listing = tmp_path / "cases.csv"
    listing.write_text("image,label\n" + "".join(f"{i},{lab}\n" for i, lab in pairs))
    assert find_pairs(csv_file=listing) == pairs


def test_missing_label_file_is_named(tmp_path):
    root = write_study(tmp_path / "s", n_cases=2)
    (root / "labels" / "case-1.nii.gz").unlink()
    with pytest.raises(DataError, match="no label file for case-1.nii.gz"):
        find_pairs(root)


def test_labels_on_another_grid_are_refused(tmp_path):
    root = write_study(tmp_path / "s", n_cases=1)
    label_path = root / "labels" / "case-0.nii.gz"
    labels = nib.load(label_path)
    nib.save(nib.Nifti1Image(np.asarray(labels.dataobj)[:-2], labels.affine), label_path)
    with pytest.raises(DataError, match="case-0.nii.gz.*not the grid of"):
        load_case(root / "images" / "case-0.nii.gz", label_path, 2.0)


def test_non_integer_labels_are_refused(tmp_path):
    root = write_study(tmp_path / "s", n_cases=1)
    label_path = root / "labels" / "case-0.nii.gz"
    nib.save(nib.Nifti1Image(np.full((28, 30, 26), 0.5, np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), label_path)
    with pytest.raises(DataError, match="integers"):
        load_case(root / "images" / "case-0.nii.gz", label_path, 2.0)


def test_las_case_is_stored_canonical_and_labels_match_image(study):
    ras = load_case(study / "images" / "case-0.nii.gz", study / "labels" / "case-0.nii.gz", 2.0)
    las = load_case(study / "images" / "case-1.nii.gz", study / "labels" / "case-1.nii.gz", 2.0)
    for case in (ras, las):
        assert case.image.shape == case.labels.shape == (28, 30, 26)
        # The brightest voxels are white matter in every case: image and labels stay aligned.
        assert (case.labels[case.image > 0.9] == 3).mean() > 0.95
    # Case 1's sphere centre is at array x = 14 in LAS, so at x = 27 - 14 = 13 after reorientation.
    assert np.argwhere(las.labels == 3)[:, 0].mean() == pytest.approx(13.0, abs=0.5)


def test_resampling_to_coarser_spacing_keeps_geometry(study):
    case = load_case(study / "images" / "case-0.nii.gz", study / "labels" / "case-0.nii.gz", 4.0)
    assert case.image.shape == case.labels.shape == (14, 15, 13)
    assert (case.labels[case.image > 0.9] == 3).mean() > 0.9


def test_class_balanced_patches_see_every_label(study):
    cases = [load_case(study / "images" / f"case-{i}.nii.gz", study / "labels" / f"case-{i}.nii.gz", 2.0)
             for i in range(3)]
    np.random.seed(0)
    data = PatchDataset(cases, patch=(8, 8, 8), length=200, class_balance=1.0)
    centre_labels = [int(data[i][1][4, 4, 4]) for i in range(200)]
    counts = np.bincount(centre_labels, minlength=4)
    assert (counts > 30).all(), counts  # uniform over 4 labels: about 50 each
    image, labels = data[0]
    assert image.shape == (1, 8, 8, 8) and image.dtype == torch.float32 and labels.dtype == torch.int64


def test_patches_at_the_edge_are_padded_with_background(study):
    case = load_case(study / "images" / "case-0.nii.gz", study / "labels" / "case-0.nii.gz", 2.0)
    data = PatchDataset([case], patch=(40, 40, 40), length=4, class_balance=0.0, mirror_axes=())
    image, labels = data[0]
    assert image.shape == (1, 40, 40, 40) and int(labels.max()) == 3 and float(image.min()) == 0.0


def test_validation_patches_are_fixed(study):
    splits = labelled_scans(root=str(study), patch=(16, 16, 16))
    assert isinstance(splits, DataSplits) and splits.model_kwargs == {"num_classes": 4}
    assert len(splits.info["val_cases"]) == 1 and len(splits.info["train_cases"]) == 2
    assert not set(splits.info["val_cases"]) & set(splits.info["train_cases"])
    first = [splits.val[i][0] for i in range(len(splits.val))]
    np.random.seed(123)
    assert all(torch.equal(a, splits.val[i][0]) for i, a in enumerate(first))


def test_hausdorff95_respects_voxel_size():
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    assert hausdorff95(a, a, (1.0, 1.0, 3.0)) == 0.0
    shifted = np.roll(a, 2, axis=2)
    assert hausdorff95(a, shifted, 1.0) == pytest.approx(2.0)
    assert hausdorff95(a, shifted, (0.5, 0.5, 3.0)) == pytest.approx(6.0)
    assert np.isnan(hausdorff95(a, np.zeros_like(a)))


def test_task_reports_hausdorff_in_mm():
    task = SegmentationTask(hausdorff_voxel_size=2.0)
    metrics = task.metrics()
    assert {"hd95_csf", "hd95_gm", "hd95_wm", "hd95_brain"} <= set(metrics)
    target = torch.zeros(1, 12, 12, 12, dtype=torch.long)
    target[0, 3:8, 3:8, 3:8] = 3
    logits = torch.nn.functional.one_hot(target.roll(1, dims=1), 4).permute(0, 4, 1, 2, 3).float()
    metric = metrics["hd95_wm"]
    assert isinstance(metric, HausdorffDistance95)
    task.update_metrics(metrics, logits, (None, target))
    assert metric.compute() == pytest.approx(2.0)  # one voxel of 2 mm


def test_train_from_config_via_cli(study, tmp_path):
    run_dir = tmp_path / "run"
    done = torchsci_cli("train", "experiment=neuro/segment", f"data.root={study}", "trainer=smoke",
                        "trainer.max_steps=2", "trainer.batch_size=2", "model.channels=[4,8]", "data.patch=[16,16,16]",
                        "data.samples_per_epoch=4", f"run_dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["final"]["val/hd95_brain"] >= 0.0
    assert 0.0 <= results["final"]["val/dice_brain"] <= 1.0
    model = torchsci.load_model(results["last_checkpoint"])
    assert model(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 4, 16, 16, 16)


def test_synth_tissue_config_matches_the_training_script():
    cfg = torchsci.compose(["experiment=neuro/synth_tissue"])
    assert cfg.model.name == "neuro/unet3d" and list(cfg.model.channels) == [8, 16, 32, 64]
    assert cfg.model.channels_last and cfg.seed == 0
    assert list(cfg.data.shape) == [96, 96, 96] and cfg.data.voxel_size == 2.0 and cfg.data.val_seed == 20240
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size, cfg.trainer.lr) == (10000, 1, 1e-3)
    assert (cfg.trainer.optimizer, cfg.trainer.scheduler, cfg.trainer.checkpoint_every_n_steps) == ("adamw", "cosine", 100)
    from torchsci.config import validate

    validate(cfg)
