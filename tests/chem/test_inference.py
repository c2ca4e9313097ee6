"""The pretrained ESOL model one call away, and the 'torchsci chem' commands (offline)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import torchsci
import torchsci_chem
from torchsci import ConfigError, DataError
from torchsci.cli import main
from torchsci.registry import registry
from torchsci_chem.featurize import collate_graphs, featurize
from torchsci_chem.models import DMPNN, ESOL_WEIGHTS


def test_esol_one_call_gives_logs_and_ensemble_spread():
    logs = torchsci_chem.predict(["CCO", "c1ccccc1O"], model="esol")
    assert logs.shape == (2,) and logs.dtype == np.float64
    assert logs[0] > logs[1] > -2  # ethanol is miscible, phenol about 0.9 mol/L (logS ~ 0)
    mean, std = torchsci_chem.predict(["CCO", "c1ccccc1O", "ClC(Cl)(Cl)Cl"], model="esol", return_std=True)
    assert np.allclose(mean[:2], logs) and (std > 0).all()


def test_esol_weights_are_checksummed_package_files():
    path = ESOL_WEIGHTS.path()
    assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == ESOL_WEIGHTS.sha256
    assert "chem/dmpnn_ensemble" in torchsci.list_models("chem/*", pretrained=True)


def test_bad_smiles_in_predict_raise_or_become_nan_with_a_warning():
    with pytest.raises(DataError, match="row 1: 'C1CC'"):
        torchsci_chem.predict(["CCO", "C1CC"])
    with pytest.warns(UserWarning, match="(?s)row 1: 'C1CC'.*NaN"):
        out = torchsci_chem.predict(["CCO", "C1CC", "CCN"], on_invalid="skip")
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    with pytest.raises(ConfigError, match="no uncertainty"):
        torchsci_chem.predict(["CCO"], model=DMPNN(hidden=8), return_std=True)
    with pytest.raises(ConfigError, match="neither a shipped model"):
        torchsci_chem.predict(["CCO"], model="no-such-model")


def test_cli_predict_writes_the_input_columns_and_predictions(tmp_path, capsys):
    src = tmp_path / "molecules.csv"
    src.write_text("name,smiles\nethanol,CCO\nphenol,c1ccccc1O\n")
    out = tmp_path / "predictions.csv"
    assert main(["chem", "predict", "--model", "esol", str(src), "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["ethanol", "phenol"]
    assert float(rows[0]["prediction"]) == pytest.approx(torchsci_chem.predict(["CCO"])[0], abs=1e-4)
    assert float(rows[1]["prediction_std"]) > 0
    (tmp_path / "bad.csv").write_text("name,smi\nx,CCO\n")
    assert main(["chem", "predict", str(tmp_path / "bad.csv"), "-o", str(out)]) == 2
    assert "no column 'smiles'" in capsys.readouterr().err


def test_cli_train_then_predict_with_the_checkpoint(tmp_path):
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    rows = "".join(f"{'C' * k}{'O' * (k % 3)},{rng.normal():.3f}\n" for k in range(1, 31))
    data.write_text("smiles,logS\n" + rows)
    run = tmp_path / "run"
    assert main(["chem", "train", str(data), "--smiles", "smiles", "--target", "logS", "-o", str(run),
                 "--epochs", "2", "--hidden", "16", "--device", "cpu"]) == 0
    info = json.loads((run / "split.json").read_text())
    assert info["seed"] == 0 and len(info["indices"]["test"]) == 3
    ckpt = run / "checkpoints" / "best.ckpt"
    out = tmp_path / "p.csv"
    assert main(["chem", "predict", "--model", str(ckpt), str(data), "-o", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 30


def test_experiment_config_names_registered_parts():
    import yaml  # hydra's dependency

    cfg = yaml.safe_load((Path(__file__).parents[2] / "torchsci_chem/configs/experiment/chem/esol.yaml").read_text())
    data = registry.create_dataset(cfg["data"].pop("name"), **cfg["data"])
    model = torchsci.create_model(cfg["model"].pop("name"), **{**data.model_kwargs, **cfg["model"]})
    task = registry.create_task(cfg["task"].pop("name"), **cfg["task"])
    graph, y = data.collate_fn([data.train[0], data.train[1]])
    assert task.loss(task.forward(model, (graph, y)), (graph, y)).isfinite()
    assert isinstance(torchsci.Trainer(**cfg["trainer"], run_dir="unused", device="cpu"), torchsci.Trainer)
    assert torch.is_tensor(model.target_std)


def test_atom_attributions_follow_the_atoms_and_draw_a_png(tmp_path):
    from rdkit import Chem

    from torchsci_chem.attribution import atom_attributions, draw_attributions

    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    weights = draw_attributions(smiles, tmp_path / "aspirin.png")
    assert (tmp_path / "aspirin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert weights.shape == (13,) and np.isfinite(weights).all() and np.abs(weights).max() > 0
    order = list(range(13))[::-1]
    mol = Chem.RenumberAtoms(Chem.MolFromSmiles(smiles), order)
    renumbered = Chem.MolToSmiles(mol, canonical=False)
    written = list(mol.GetPropsAsDict(True, True)["_smilesAtomOutputOrder"])  # atom i of the new SMILES
    assert np.allclose(atom_attributions(renumbered), weights[[order[j] for j in written]], atol=1e-5)


def test_cli_explain_writes_a_png(tmp_path):
    out = tmp_path / "phenol.png"
    assert main(["chem", "explain", "c1ccccc1O", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_a_mean_variance_model_gives_its_own_std():
    torch.manual_seed(0)
    model = DMPNN(hidden=16, ffn_hidden=8, uncertainty="mve", target_mean=[-2.0], target_std=[2.0]).eval()
    mean, std = torchsci_chem.predict(["CCO", "c1ccccc1O"], model=model, return_std=True)
    assert mean.shape == std.shape == (2,) and (std > 0).all()
    with torch.no_grad():
        out = model(*collate_graphs(featurize(["CCO"]).graphs).inputs())
    assert mean[0] == pytest.approx(float(out[0, 0]), abs=1e-5) and std[0] == pytest.approx(float(out[0, 1].sqrt()), abs=1e-5)


def test_models_with_extra_features_recompute_them_at_prediction_time():
    from torchsci_chem.featurize import molecule_features
    from torchsci_chem.models import FingerprintMLP

    torch.manual_seed(0)
    smiles = ["CCO", "c1ccccc1O"]
    fp_model = FingerprintMLP(extra_features=2048, hidden=[16], extra_kind="morgan_counts").eval()
    with torch.no_grad():
        want = fp_model(torch.as_tensor(molecule_features(smiles, "morgan_counts")))[:, 0].double().numpy()
    assert np.allclose(torchsci_chem.predict(smiles, model=fp_model), want, atol=1e-6)
    width = molecule_features(["C"], "descriptors").shape[1]
    graph_model = DMPNN(hidden=16, ffn_hidden=8, extra_features=width, extra_kind="descriptors").eval()
    graph = collate_graphs(featurize(smiles).graphs, molecule_features(smiles, "descriptors"))
    with torch.no_grad():
        want = graph_model(*graph.inputs())[:, 0].double().numpy()
    assert np.allclose(torchsci_chem.predict(smiles, model=graph_model), want, atol=1e-6)
    with pytest.raises(ConfigError, match="computes 2048"):
        torchsci_chem.predict(smiles, model=DMPNN(hidden=8, extra_features=7, extra_kind="morgan"))
    with pytest.raises(ConfigError, match="unrecorded kind"):
        torchsci_chem.predict(smiles, model=DMPNN(hidden=8, extra_features=7))


def test_cli_predict_reads_sdf_and_keeps_its_properties(tmp_path, capsys):
    from rdkit import Chem

    path = tmp_path / "mols.sdf"
    with Chem.SDWriter(str(path)) as w:
        for name, smi in [("ethanol", "CCO"), ("phenol", "c1ccccc1O")]:
            m = Chem.MolFromSmiles(smi)
            m.SetProp("name", name)
            w.write(m)
    out = tmp_path / "p.csv"
    assert main(["chem", "predict", str(path), "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["ethanol", "phenol"] and [r["record"] for r in rows] == ["1", "2"]
    assert float(rows[1]["prediction"]) == pytest.approx(torchsci_chem.predict(["c1ccccc1O"])[0], abs=1e-4)
    broken = tmp_path / "broken.sdf"
    broken.write_text(path.read_text() + Chem.MolToMolBlock(Chem.MolFromSmiles("CC(C)(C)(C)(C)C", sanitize=False),
                                                            kekulize=False) + "$$$$\n")
    assert main(["chem", "predict", str(broken), "-o", str(out)]) == 2
    assert re.search(r"broken\.sdf.*record\(s\) \[3\]", capsys.readouterr().err)
    assert main(["chem", "predict", str(broken), "-o", str(out), "--on-invalid", "skip"]) == 0
    assert "1 row(s) could not be read as molecules" in capsys.readouterr().err
    bad = list(csv.DictReader(out.open()))[2]  # kept, with an empty prediction and the reason
    assert bad["record"] == "3" and bad["prediction"] == "" and bad["invalid"]


def test_freesolv_shipped_model_gives_hydration_free_energies_with_intervals():
    from torchsci_chem.models import FREESOLV_WEIGHTS

    path = FREESOLV_WEIGHTS.path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FREESOLV_WEIGHTS.sha256
    # measured (FreeSolv): methane +2.0, ethanol -5.0, ethylene glycol -9.3 kcal/mol
    out = torchsci_chem.predict(["C", "CCO", "OCCO"], model="freesolv", interval=0.9)
    assert out.value[0] > out.value[1] > out.value[2]
    assert ((out.lower < out.value) & (out.value < out.upper)).all() and out.in_domain.all()


def test_lipo_shipped_model_on_its_scaffold_test_split():
    from torchsci_chem.models import LIPO_WEIGHTS

    assert hashlib.sha256(LIPO_WEIGHTS.path().read_bytes()).hexdigest() == LIPO_WEIGHTS.sha256
    test = registry.create_dataset("chem/lipo").test  # scaffold-balanced, seed 0: the shipped model's split
    y = test.targets[:, 0]
    out = torchsci_chem.predict(test.smiles, model="lipo", interval=0.9)
    assert len(y) == 420 and np.sqrt(np.mean((out.value - y) ** 2)) < 0.65  # 0.581 measured (MODEL_CARD_lipo.md)
    covered = (y >= out.lower) & (y <= out.upper)
    assert abs(covered.mean() - 0.9) < 0.045  # 3 binomial standard deviations for 420 molecules; 0.917 measured
    assert 0.85 < out.in_domain.mean() < 0.99  # the threshold lets 95% of validation molecules in; 0.917 measured


def test_cli_predict_prints_no_rdkit_log_lines(tmp_path):
    # RDKit's standardiser logged six info lines per molecule ("Running Normalizer", ...) to the terminal: a
    # million-row predict would print six million; read both streams at the file-descriptor level (RDKit's C++ logs)
    import subprocess
    import sys

    src = tmp_path / "mols.csv"
    src.write_text("smiles\nCC(=O)[O-].[Na+]\nCCO\nc1ccccc1O\n")
    done = subprocess.run([sys.executable, "-m", "torchsci.cli", "chem", "predict", "--model", "esol", str(src),
                           "-o", str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Normalizer" not in done.stdout + done.stderr and "Uncharger" not in done.stdout + done.stderr
    assert (tmp_path / "out.csv").read_text().count("\n") == 4
