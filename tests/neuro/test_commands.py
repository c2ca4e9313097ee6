"""``torchsci neuro segment`` end to end with a checkpoint from real Trainer steps, and its bad-input errors."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from torchsci.cli import main

from .conftest import phantom, torchsci_cli


@pytest.fixture(scope="module")
def scan_path(tmp_path_factory):
    """A full-size-ish phantom stored LAS at 1.5 mm with a tilted affine."""
    image, _ = phantom((40, 44, 36), (18, 24, 17), radii=(14.0, 10.0, 6.0), seed=7)
    affine = np.diag([-1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = [30.0, -40.0, -20.0]
    path = tmp_path_factory.mktemp("scan") / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), path)
    return path


def test_segment_writes_labels_volumes_and_qc(scan_path, trained_checkpoint, tmp_path):
    done = torchsci_cli("neuro", "segment", str(scan_path), "-o", "out/labels.nii.gz", "--model",
                        str(trained_checkpoint), "--volumes", "out/volumes.csv", "--qc", "out/qc.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "segment" in done.stderr  # the progress bar
    labels = nib.load(tmp_path / "out" / "labels.nii.gz")
    source = nib.load(scan_path)
    assert labels.shape == source.shape and np.allclose(labels.affine, source.affine)
    assert labels.get_data_dtype() == np.uint8
    data = np.asarray(labels.dataobj)
    assert set(np.unique(data)) <= {0, 1, 2, 3}
    with (tmp_path / "out" / "volumes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["CSF", "GM", "WM"]
    for row in rows:
        label = int(row["label"])
        assert int(row["voxels"]) == int((data == label).sum())
        assert float(row["volume_ml"]) == pytest.approx((data == label).sum() * 1.5 ** 3 / 1000, abs=1e-3)
    assert (tmp_path / "out" / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lab_script_writes_labels_volumes_and_qc(scan_path, trained_checkpoint, tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(root / "examples" / "neuro_segment.py"), str(scan_path), "--checkpoint",
                           str(trained_checkpoint), "--out-dir", str(tmp_path / "sub-01"), "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GM" in done.stdout and "mL" in done.stdout
    labels = nib.load(tmp_path / "sub-01" / "labels.nii.gz")
    assert labels.shape == nib.load(scan_path).shape
    with (tmp_path / "sub-01" / "volumes.csv").open() as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == ["CSF", "GM", "WM"]
    assert (tmp_path / "sub-01" / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_brain_mask_task_in_process(scan_path, trained_checkpoint, tmp_path):
    code = main(["neuro", "segment", str(scan_path), "-o", str(tmp_path / "mask.nii.gz"), "--task", "brain_mask",
                 "--model", str(trained_checkpoint), "--quiet", "--mirror"])
    assert code == 0
    mask = nib.load(tmp_path / "mask.nii.gz")
    assert mask.shape == (40, 44, 36) and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


def _one_line_error(capsys, argv, name):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err, err
    return err


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, capsys, trained_checkpoint):
    model = ["--model", str(trained_checkpoint), "--quiet"]
    out = ["-o", str(tmp_path / "x.nii.gz")]
    truncated = tmp_path / "truncated.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert "gzip" in _one_line_error(capsys, ["neuro", "segment", str(truncated), *out, *model], str(truncated))

    fmri = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10, 5), np.float32), np.eye(4)), fmri)
    assert "5 volumes" in _one_line_error(capsys, ["neuro", "segment", str(fmri), *out, *model], str(fmri))

    lying = tmp_path / "lying.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.float32), np.eye(4)), lying)
    raw = bytearray(gzip.decompress(lying.read_bytes()))
    raw[42:44] = np.int16(30).tobytes()  # dim[1] 10 -> 30
    lying.write_bytes(gzip.compress(bytes(raw)))
    assert "header disagrees" in _one_line_error(capsys, ["neuro", "segment", str(lying), *out, *model], str(lying))
    assert not (tmp_path / "x.nii.gz").exists()


def test_without_model_the_shipped_model_segments_the_scan(scan_path, tmp_path):
    out = tmp_path / "labels.nii.gz"
    assert main(["neuro", "segment", str(scan_path), "-o", str(out), "--quiet"]) == 0
    labels, scan = nib.load(out), nib.load(scan_path)
    assert labels.shape == scan.shape
    np.testing.assert_allclose(labels.affine, scan.affine)
    assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2, 3}


def test_exit_code_2_from_the_shell(tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"not an image at all")
    done = torchsci_cli("neuro", "segment", str(bad), "-o", "x.nii.gz", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr


def test_no_refine_keeps_the_networks_tissue_labels_and_the_same_brain(scan_path, tmp_path):
    from torchsci_neuro import segment

    refined, plain = tmp_path / "refined.nii.gz", tmp_path / "plain.nii.gz"
    assert main(["neuro", "segment", str(scan_path), "-o", str(refined), "--quiet"]) == 0
    assert main(["neuro", "segment", str(scan_path), "-o", str(plain), "--quiet", "--no-refine"]) == 0
    refined, plain = np.asarray(nib.load(refined).dataobj), np.asarray(nib.load(plain).dataobj)
    np.testing.assert_array_equal(refined > 0, plain > 0)
    np.testing.assert_array_equal(plain, np.asarray(segment(scan_path, device="cpu", refine=False).dataobj))
    np.testing.assert_array_equal(refined, np.asarray(segment(scan_path, device="cpu").dataobj))
    assert (refined != plain).any()  # the phantom's 1.5 mm shells are sharper than the network's 2 mm view
