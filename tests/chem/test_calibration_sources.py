"""The ESOL model's conformal calibration: the shipped buffers are its recipe's, and the two-source script is reproducible.

benchmarks/chem_calibration_two_sources.py (issue 14, attempt 3, not shipped) is loaded from its path, as a user
runs it; its recorded numbers are those of benchmarks/README.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from torchsci.registry import registry
from torchsci_chem.inference import load, member_predictions
from torchsci_chem.models import ESOL_WEIGHTS
from torchsci_chem.standardize import DEFAULT_STANDARDIZE
from torchsci_chem.uncertainty import calibrate, quantile, spread

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chem_calibration_two_sources.py"


@pytest.fixture(scope="module")
def two_sources():
    spec = importlib.util.spec_from_file_location("chem_calibration_two_sources", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_esol_calibration_is_its_validation_split_s_scores():
    net = load("esol")
    val = registry.create_dataset("chem/esol", split="random", seed=0).val
    members, _ = member_predictions(net, val.smiles, DEFAULT_STANDARDIZE)
    mean, sigma = spread(members[:, :, 0])
    scores, beta = calibrate(val.targets[:, 0], mean, sigma)
    # float32 sums of another batch layout or CPU move the scores by about 1e-4 (scores are 0-20)
    assert np.allclose(net.conformal_scores.numpy(), scores, atol=1e-3)
    assert float(net.conformal_beta) == pytest.approx(beta, abs=1e-4)
    assert quantile(net.conformal_scores.numpy(), 0.9) == pytest.approx(quantile(scores, 0.9), abs=1e-3)


def test_two_source_calibration_counts_parts_and_is_reproducible(two_sources, tmp_path):
    smiles, y, sources = two_sources.calibration_set()
    assert len(smiles) == len(y) == 533 and sources.count("esol-val") == 113 and sources.count("external-train") == 420
    report = set(two_sources.external("test")[0])
    assert len(report) == 102 and not report & set(smiles)
    first = two_sources.recalibrate(ESOL_WEIGHTS.path(), tmp_path / "a.safetensors")
    again = two_sources.recalibrate(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    # the calibration depends on the members alone, so recalibrating its own output writes the same bytes
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert first["calibration_molecules"] == {"esol-val": 113, "external-train": 420} == again["calibration_molecules"]
    assert first["conformal_beta"] == pytest.approx(0.0578, abs=1e-4)
    assert first["q90_pooled"] == pytest.approx(10.06, abs=0.01)
    shipped, new = ESOL_WEIGHTS.load(), load_file(tmp_path / "a.safetensors")
    changed = {k for k in shipped if not torch.equal(shipped[k], new[k])}
    assert changed == {"conformal_scores", "conformal_beta"} and new["conformal_scores"].shape == (533,)
    with pytest.raises(SystemExit, match="is the input file"):
        two_sources.recalibrate(tmp_path / "a.safetensors", tmp_path / "a.safetensors")


def test_clopper_pearson_interval_of_the_report_sets(two_sources):
    lo, hi = two_sources.clopper_pearson(5, 10)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    assert two_sources.clopper_pearson(0, 10)[0] == 0.0 and two_sources.clopper_pearson(10, 10)[1] == 1.0
    lo, hi = two_sources.clopper_pearson(103, 113)
    assert lo < 103 / 113 < hi and hi - lo == pytest.approx(0.114, abs=0.002)
