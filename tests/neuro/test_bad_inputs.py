"""Bad inputs to ``torchsci neuro segment``: one clear line each, and the scan (every input) unchanged.

The corpus is written in the test with nibabel: a valid phantom scan, a header without qform/sform whose
voxel sizes are 0 (bytes patched after nibabel wrote it, as a broken converter leaves it), complex voxels,
and a checkpoint of another field written by the core Trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import torchsci
from tests.badinput import assert_one_clear_line, checksums, run_cli
from tests.neuro.conftest import phantom

PIXDIM = slice(80, 92)  # bytes of pixdim[1:4] (float32) in a NIfTI-1 header


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("neuro_corpus")
    image, _ = phantom((28, 30, 26), (13, 15, 12))
    nib.save(nib.Nifti1Image(image, np.diag([2.0, 2.0, 2.0, 1.0])), root / "t1.nii.gz")
    (root / "t1_link.nii.gz").symlink_to(root / "t1.nii.gz")
    nib.save(nib.Nifti1Image(image, None), root / "no_geometry.nii")
    raw = bytearray((root / "no_geometry.nii").read_bytes())
    raw[PIXDIM] = bytes(12)
    (root / "no_geometry.nii").write_bytes(bytes(raw))
    nib.save(nib.Nifti1Image((image + 1j * image).astype(np.complex64), np.diag([2.0, 2.0, 2.0, 1.0])),
             root / "complex.nii.gz")
    data = torch.utils.data.TensorDataset(torch.randn(16, 5), torch.randn(16, 1))
    run = torchsci.Trainer(max_epochs=1, batch_size=8, run_dir=root / "core_run", verbose=False, tensorboard=False
                           ).fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), data)
    os.replace(run.last_checkpoint, root / "core_mlp.ckpt")
    return root


CASES = {
    "output_is_the_scan": (["{root}/t1.nii.gz", "-o", "{root}/t1.nii.gz"], ["t1.nii.gz", "also an input"]),
    "output_is_a_symlink_to_the_scan": (["{root}/t1.nii.gz", "-o", "{root}/t1_link.nii.gz"], ["also an input"]),
    "volumes_over_the_scan": (["{root}/t1.nii.gz", "-o", "{out}/labels.nii.gz", "--volumes", "{root}/t1.nii.gz"],
                              ["t1.nii.gz", "also an input"]),
    "qc_over_the_model": (["{root}/t1.nii.gz", "-o", "{out}/labels.nii.gz", "--model", "{root}/core_mlp.ckpt",
                           "--qc", "{root}/core_mlp.ckpt"], ["core_mlp.ckpt", "also an input"]),
    "labels_as_png": (["{root}/t1.nii.gz", "-o", "{out}/labels.png"], ["labels.png", ".nii.gz or .nii"]),
    "volumes_not_csv": (["{root}/t1.nii.gz", "-o", "{out}/labels.nii.gz", "--volumes", "{out}/volumes.txt"],
                        ["volumes.txt", ".csv"]),
    "volumes_and_labels_one_file": (["{root}/t1.nii.gz", "-o", "{out}/x.nii.gz", "--volumes", "{out}/x.nii.gz"],
                               ["x.nii.gz"]),
    # An existing folder after -o means a study (BIDS derivatives there); an existing file cannot be one.
    "study_output_is_a_file": (["{root}/t1.nii.gz", "{root}/no_geometry.nii", "-o", "{root}/complex.nii.gz"],
                               ["complex.nii.gz"]),
    "checkpoint_of_another_field": (["{root}/t1.nii.gz", "-o", "{out}/labels.nii.gz", "--model",
                                     "{root}/core_mlp.ckpt"], ["core_mlp.ckpt", "core/mlp", "neuro model"]),
    "pixdim_zero_without_qform_sform": (["{root}/no_geometry.nii", "-o", "{out}/labels.nii.gz"],
                                        ["no_geometry.nii", "no qform/sform", "pixdim"]),
    "complex_voxels": (["{root}/complex.nii.gz", "-o", "{out}/labels.nii.gz"], ["complex.nii.gz", "complex"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(case, corpus, tmp_path, capsys):
    args, needles = CASES[case]
    args = [a.format(root=corpus, out=tmp_path) for a in args]
    before = checksums([corpus])
    code, err = run_cli(["neuro", "segment", "--quiet", *args], capsys)
    assert_one_clear_line(code, err, *needles)
    assert checksums([corpus]) == before
    assert (corpus / "t1_link.nii.gz").is_symlink()
    assert list(tmp_path.iterdir()) == [], "nothing may be written when the command refuses"


def test_the_zero_pixdim_file_really_has_zero_voxel_sizes(corpus):
    header = nib.Nifti1Header.from_fileobj(open(corpus / "no_geometry.nii", "rb"), check=False)
    assert header["qform_code"] == 0 and header["sform_code"] == 0
    assert header["pixdim"][1:4].tolist() == [0.0, 0.0, 0.0]
