"""The per-scan quality score separates real T1 brain scans from blank and noise images.

The corpus is generated here from the real scans that ship offline (nilearn's MNI152 T1, nibabel's
anatomical.nii): the scans themselves, a constant image, uniform and Gaussian noise, all written by nibabel.

A T2-like contrast (the T1's intensities reversed inside the head) keeps the classes in T1 order by
brightness (the model calls the brightest tissue white matter), so it is caught by anatomy instead: its
white matter is not where the template, fitted by the brain prior, has deep white matter.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import nibabel as nib
import nibabel.processing
import numpy as np
import pytest

from torchsci.cli import main as cli
from torchsci_neuro import segment
from torchsci_neuro.quality import QUALITY_THRESHOLD, LowQualityWarning, quality_score
from torchsci_neuro.templates import template_path

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def _corpus() -> dict[str, nib.Nifti1Image]:
    rng = np.random.default_rng(0)
    grid = np.diag([2.0, 2.0, 2.0, 1.0])
    # The MNI T1 at 2 mm (the model's own spacing): the same real image at an eighth of the voxels.
    mni = nib.processing.resample_to_output(nib.load(template_path("t1")), 2.0, order=1)
    data = np.asarray(mni.dataobj, dtype=np.float32)
    head = data > 0
    hi = float(np.percentile(data[head], 99))
    t2_like = np.where(head, np.clip(hi - data, 0.0, None) + 0.05 * hi, 0.0).astype(np.float32)
    return {
        "mni_t1": mni,
        "mni_t2_like": nib.Nifti1Image(t2_like, mni.affine),
        "anatomical_t1": nib.load(ANATOMICAL),
        "blank": nib.Nifti1Image(np.full((80, 96, 80), 100.0, np.float32), grid),
        "uniform_noise": nib.Nifti1Image(rng.uniform(0, 1000, (80, 96, 80)).astype(np.float32), grid),
        "gaussian_noise": nib.Nifti1Image(np.abs(rng.normal(0, 100, (80, 96, 80))).astype(np.float32), grid),
    }


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowQualityWarning)
        for name, img in _corpus().items():
            out[name] = segment(img, device="cpu").extra["quality"]
    return out


@pytest.mark.parametrize("name", ["mni_t1", "anatomical_t1"])
def test_real_t1_scans_score_above_the_threshold(scores, name):
    assert scores[name]["score"] >= QUALITY_THRESHOLD, scores[name]


@pytest.mark.parametrize("name", ["blank", "uniform_noise", "gaussian_noise", "mni_t2_like"])
def test_blank_and_noise_score_below_it(scores, name):
    assert scores[name]["score"] < QUALITY_THRESHOLD, scores[name]


def test_the_failed_part_names_why(scores):
    assert scores["blank"]["brain_volume"] < 0.5 and scores["blank"]["brain_ml"] == 0.0
    noise = scores["uniform_noise"]
    assert min(noise["confidence"], noise["t1_contrast"]) < 0.5  # flat posteriors or no T1 order
    assert scores["mni_t1"]["wm_intensity"] > scores["mni_t1"]["gm_intensity"] > scores["mni_t1"]["csf_intensity"]


def test_a_wrong_contrast_fails_on_anatomy_not_on_intensity_order(scores):
    t2 = scores["mni_t2_like"]
    assert t2["white_matter_anatomy"] < 0.5 and t2["deep_wm_posterior"] < 0.6, t2
    assert scores["mni_t1"]["white_matter_anatomy"] == 1.0 and scores["mni_t1"]["deep_wm_posterior"] > 0.85
    # The brain is cut by anatomical.nii's field of view: no prior fit, so the anatomy part is not judged.
    assert scores["anatomical_t1"]["white_matter_anatomy"] == 1.0
    assert np.isnan(scores["anatomical_t1"]["deep_wm_posterior"])


def test_the_anatomy_part_reads_the_white_matter_posterior_in_the_template_s_deep_white_matter():
    probs = np.zeros((4, 20, 20, 20), np.float32)
    probs[2] = 1.0
    probs[:, 5:15, 5:15, 5:15] = np.array([0.0, 0.0, 0.1, 0.9], np.float32)[:, None, None, None]
    template_wm = np.zeros((20, 20, 20), np.float32)
    template_wm[6:14, 6:14, 6:14] = 0.95
    image = np.random.default_rng(2).uniform(0, 1, (20, 20, 20)).astype(np.float32)
    assert quality_score(image, probs, 0.008, template_white_matter=template_wm)["white_matter_anatomy"] == 1.0
    swapped = probs[[0, 1, 3, 2]]  # gray matter where the template has white matter
    q = quality_score(image, swapped, 0.008, template_white_matter=template_wm)
    assert q["white_matter_anatomy"] == 0.0 and q["score"] == 0.0 and q["deep_wm_posterior"] < 0.2


def test_a_low_score_warns_in_python():
    with pytest.warns(LowQualityWarning, match="quality score"):
        segment(_corpus()["blank"], device="cpu")


def test_quality_score_of_a_flat_posterior_is_low():
    image = np.random.default_rng(1).uniform(0, 1, (40, 40, 40)).astype(np.float32)
    probs = np.full((4, 40, 40, 40), 0.25, np.float32)
    probs[2] += 0.01  # argmax GM everywhere, at a posterior of 0.26
    q = quality_score(image, probs, 0.008)
    assert q["confidence"] == 0.0 and q["score"] == 0.0


def test_cli_reports_the_score_in_its_output_and_the_volumes_csv(tmp_path, capsys):
    scan = tmp_path / "t1.nii.gz"
    nib.save(nib.load(ANATOMICAL), scan)
    assert cli(["neuro", "segment", str(scan), "-o", str(tmp_path / "labels.nii.gz"), "--volumes",
                str(tmp_path / "volumes.csv"), "--quiet"]) == 0
    assert "quality score" in capsys.readouterr().err
    with (tmp_path / "volumes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and float(rows[0]["quality_score"]) >= QUALITY_THRESHOLD


def test_cli_warns_on_a_blank_image_and_strict_refuses_it(tmp_path, capsys):
    scan = tmp_path / "blank.nii.gz"
    nib.save(_corpus()["blank"], scan)
    out = tmp_path / "labels.nii.gz"
    assert cli(["neuro", "segment", str(scan), "-o", str(out), "--quiet"]) == 0
    assert "WARNING" in capsys.readouterr().err and out.is_file()
    strict_out = tmp_path / "strict.nii.gz"
    assert cli(["neuro", "segment", str(scan), "-o", str(strict_out), "--strict", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(scan) in err and "--strict" in err
    assert not strict_out.exists()


def test_cli_writes_probabilities_on_the_input_grid(tmp_path):
    scan = tmp_path / "t1.nii.gz"
    nib.save(nib.load(ANATOMICAL), scan)
    probs_path = tmp_path / "probs.nii.gz"
    cli(["neuro", "segment", str(scan), "-o", str(tmp_path / "labels.nii.gz"), "--probabilities", str(probs_path),
         "--quiet"])
    probs = nib.load(probs_path)
    labels = nib.load(tmp_path / "labels.nii.gz")
    assert probs.shape == (*labels.shape, 4) and np.allclose(probs.affine, labels.affine)
    data = probs.get_fdata()
    np.testing.assert_allclose(data.sum(axis=-1), 1.0, atol=1e-4)
    # The labels' brain is where the posteriors say "not background" (before the clean-up of specks).
    brain = np.asarray(labels.dataobj) > 0
    assert ((data[..., 0] < 0.5) == brain).mean() > 0.98
