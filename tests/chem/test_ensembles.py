"""A user's own model with what the shipped ones carry: `torchsci chem train --members N` and calibrated_ensemble."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import torchsci
import torchsci_chem
from tests.badinput import assert_one_clear_line, run_cli
from torchsci import CheckpointError, ConfigError
from torchsci.registry import registry
from torchsci_chem.datasets import ESOL_TARGET, esol_path
from torchsci_chem.ensembles import calibrated_ensemble, evaluate_ensemble
from torchsci_chem.inference import load


def test_the_shipped_esol_calibration_and_domain_are_rebuilt_from_its_members():
    shipped = load("esol")
    kwargs = dict(registry.model_entry("chem/dmpnn_ensemble").pretrained["esol"].kwargs)
    for key in ("members", "calibration_size", "domain_size"):
        kwargs.pop(key)
    data = registry.create_dataset("chem/esol", split="random", seed=0, extra="rdkit2d-v1",
                                   standardize=kwargs["standardize"])
    members = []
    for member in shipped.members:
        members.append(torchsci.create_model("chem/dmpnn", **kwargs))
        members[-1].load_state_dict(member.state_dict())
    rebuilt = calibrated_ensemble(members, data)
    assert torch.equal(rebuilt.domain_fingerprints, shipped.domain_fingerprints)
    assert torch.equal(rebuilt.domain_threshold, shipped.domain_threshold)
    # the shipped file's scores came from the same members' float32 predictions (an older build of the forward)
    assert torch.allclose(rebuilt.conformal_scores, shipped.conformal_scores, rtol=1e-4, atol=1e-5)
    assert torch.allclose(rebuilt.conformal_beta, shipped.conformal_beta, rtol=1e-5)
    figures = evaluate_ensemble(rebuilt, data.test)
    assert figures["molecules"] == 113 and figures["coverage"] == pytest.approx(103 / 113)  # the model card's 0.912
    assert 0.5 < figures["rmse"] < 0.65 and figures["in_domain"] > 0.9


def _esol_csv(path, n=150):
    rows = list(csv.DictReader(esol_path().open()))[:n]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["SMILES", "LogS"])  # another spelling than the default --smiles smiles
        writer.writerows([[r["smiles"], r[ESOL_TARGET]] for r in rows])
    return path


def test_cli_trains_an_ensemble_whose_file_gives_intervals_and_the_domain(tmp_path, capsys):
    data = _esol_csv(tmp_path / "solubility.csv")
    run = tmp_path / "run"
    code = torchsci.cli.main(["chem", "train", str(data), "--target", "logs", "-o", str(run), "--epochs", "3",
                              "--hidden", "24", "--device", "cpu", "--members", "2", "--extra", "rdkit2d-v1"])
    out = capsys.readouterr().out
    assert code == 0
    assert len([ln for ln in out.splitlines() if ln.startswith('{"test/')]) == 2  # one test line per member
    assert "ensemble of 2 on the 15 test molecules" in out and "90% intervals cover" in out
    assert (run / "member0" / "checkpoints" / "best.ckpt").is_file() and (run / "member1").is_dir()
    card = json.loads((run / "model.json").read_text())
    assert card["members"] == 2 and card["extra"] == "rdkit2d-v1" and "no_stereo" in card["standardize"]
    assert 0.0 <= card["test"]["coverage"] <= 1.0 and card["test"]["mean_width"] > 0
    model = torchsci.load_model(run / "model.ckpt")
    assert len(model.members) == 2 and model.calibration_size == 15 and model.domain_size == 120
    assert not torch.equal(model.members[0].w_h.weight, model.members[1].w_h.weight)  # seeds 0 and 1

    table = tmp_path / "new.csv"
    table.write_text("smiles\nCCO\nc1ccccc1Cl\nCCCCCCCCCCCCCCCCCCCC(=O)O\n")
    code, err = run_cli(["chem", "predict", table, "-o", tmp_path / "p.csv", "--model", run / "model.ckpt",
                         "--interval", "0.9"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    for r in rows:
        assert float(r["prediction_lower"]) < float(r["prediction"]) < float(r["prediction_upper"])
        assert r["in_domain"] in ("true", "false") and 0 <= float(r["nearest_similarity"]) <= 1
    python = torchsci_chem.predict(["CCO", "c1ccccc1Cl", "CCCCCCCCCCCCCCCCCCCC(=O)O"], model=str(run / "model.ckpt"),
                                   interval=0.9)
    assert [f"{v:.4f}" for v in python.upper] == [r["prediction_upper"] for r in rows]
    # the members' spread is part of the width: the molecule they disagree on most gets the widest interval
    widths = python.upper - python.lower
    assert np.argmax(widths) == np.argmax(python.std)


def test_a_classifier_gets_the_domain_but_no_intervals(tmp_path, capsys):
    rows = list(csv.DictReader(esol_path().open()))[:120]
    data = tmp_path / "soluble.csv"
    data.write_text("smiles,soluble\n" + "".join(f"{r['smiles']},{int(float(r[ESOL_TARGET]) >= -3)}\n" for r in rows))
    run = tmp_path / "run"
    code = torchsci.cli.main(["chem", "train", str(data), "--target", "soluble", "--task", "classification", "-o",
                              str(run), "--epochs", "2", "--hidden", "16", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "no intervals (a classifier)" in out and "% in domain" in out
    assert (run / "checkpoints" / "best.ckpt").is_file()  # one member: the run folder as before
    model = torchsci.load_model(run / "model.ckpt")
    assert model.calibration_size == 0 and model.domain_size == 96
    p = torchsci_chem.predict(["CCO", "c1ccccc1"], model=str(run / "model.ckpt"), details=True)
    assert ((p.value > 0) & (p.value < 1)).all() and p.similarity.shape == (2,)
    code, err = run_cli(["chem", "predict", data, "-o", tmp_path / "p.csv", "--model", run / "model.ckpt",
                         "--interval", "0.9"], capsys)
    assert_one_clear_line(code, err, "--interval 0.9", "no conformal calibration")


def test_wrong_members_are_refused_with_the_fix(tmp_path, capsys):
    data = _esol_csv(tmp_path / "s.csv", n=40)
    code, err = run_cli(["chem", "train", data, "--target", "LogS", "-o", tmp_path / "r", "--members", "2",
                         "--model", "chem/fingerprint_mlp"], capsys)
    assert_one_clear_line(code, err, "--members 2", "chem/dmpnn", "--members 1")
    assert not (tmp_path / "r").exists()
    code, err = run_cli(["chem", "train", data, "--target", "LogS", "-o", tmp_path / "r", "--members", "0"], capsys)
    assert_one_clear_line(code, err, "--members 0", "at least one")
    splits = registry.create_dataset("chem/esol", split="random", seed=0)
    a = torchsci.create_model("chem/dmpnn", hidden=8, ffn_hidden=8, **splits.model_kwargs)
    b = torchsci.create_model("chem/dmpnn", hidden=12, ffn_hidden=8, **splits.model_kwargs)
    with pytest.raises(ConfigError, match="different arguments"):
        calibrated_ensemble([a, b], splits)
    with pytest.raises(ConfigError, match="chem/dmpnn"):
        calibrated_ensemble([torch.nn.Linear(2, 1)], splits)
    with pytest.raises(CheckpointError, match="not built by torchsci.create_model"):
        torchsci.save_model(torch.nn.Linear(2, 1), tmp_path / "x.ckpt")


def test_validation_molecules_without_a_measured_target_are_left_out_of_the_calibration(tmp_path):
    rows = list(csv.DictReader(esol_path().open()))[:150]
    path = tmp_path / "gaps.csv"
    path.write_text("smiles,logS\n" + "".join(f"{r['smiles']},{'' if k % 4 == 0 else r[ESOL_TARGET]}\n"
                                              for k, r in enumerate(rows)))
    data = registry.create_dataset("chem/csv", path=str(path), targets="logS", split="random", seed=0)
    measured = int(np.isfinite(data.val.targets[:, 0]).sum())
    assert 10 <= measured < len(data.val)  # some validation rows have no target
    member = torchsci.create_model("chem/dmpnn", hidden=16, ffn_hidden=8, seed=0, **data.model_kwargs)
    model = calibrated_ensemble([member], data)
    assert model.calibration_size == measured and torch.isfinite(model.conformal_scores).all()
    out = torchsci_chem.predict(["CCO"], model=model, interval=0.9)
    assert out.lower[0] < out.value[0] < out.upper[0]
