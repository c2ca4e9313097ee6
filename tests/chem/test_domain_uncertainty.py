"""Applicability domain and conformal intervals: the arithmetic, and the shipped model's use of both."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

import torchsci_chem
from torchsci import ConfigError
from torchsci.cli import main
from torchsci.registry import registry
from torchsci_chem.datasets import esol_path
from torchsci_chem.domain import choose_threshold, nearest_similarity, packed_fingerprints
from torchsci_chem.inference import load
from torchsci_chem.models import DMPNN, DMPNNEnsemble
from torchsci_chem.uncertainty import calibrate, interval, quantile, spread


def _esol_smiles(n: int) -> list[str]:
    with esol_path().open() as fh:
        return [r["smiles"] for r in csv.DictReader(fh)][:n]


def test_nearest_similarity_is_rdkits_tanimoto():
    smiles = _esol_smiles(120)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(m) for m in mols]
    want = [max(DataStructs.BulkTanimotoSimilarity(fps[i], fps[100:])) for i in range(100)]
    packed = packed_fingerprints(mols)
    assert np.allclose(nearest_similarity(packed[:100], packed[100:], chunk=7), want, atol=1e-12)
    assert np.allclose(nearest_similarity(packed[100:], packed[100:]), 1.0)


def test_threshold_is_the_validation_quantile():
    sims = np.random.default_rng(0).uniform(size=1000)
    t = choose_threshold(sims, 0.95)
    assert (sims >= t).mean() == pytest.approx(0.95, abs=0.002)
    with pytest.raises(ConfigError):
        choose_threshold(np.array([]), 0.95)


def test_conformal_intervals_cover_as_promised_on_exchangeable_data():
    rng = np.random.default_rng(0)

    def draw(n):
        sigma = rng.uniform(0.2, 2.0, n)  # heteroscedastic, and the model's sigma is only roughly right
        return rng.normal(0.0, sigma), sigma * rng.uniform(0.5, 1.5, n)

    y_cal, s_cal = draw(2000)
    scores, beta = calibrate(y_cal, np.zeros_like(y_cal), s_cal)
    y, s = draw(50000)
    for level in (0.8, 0.9, 0.95):
        lo, hi = interval(np.zeros_like(y), s, scores, beta, level)
        assert ((y >= lo) & (y <= hi)).mean() == pytest.approx(level, abs=0.015)
    assert quantile(scores[:5], 0.9) == np.inf
    with pytest.raises(ConfigError, match="between 0 and 1"):
        quantile(scores, 90)


def test_ensemble_spread_adds_mean_variance_heads():
    torch.manual_seed(0)
    ens = DMPNNEnsemble(members=3, hidden=16, ffn_hidden=8, uncertainty="mve").eval()
    mean, std = torchsci_chem.predict(["CCO", "c1ccccc1O", "CCCCCl"], model=ens, return_std=True)
    from torchsci_chem.featurize import collate_graphs, featurize

    with torch.no_grad():
        each = ens.forward_members(*collate_graphs(featurize(["CCO", "c1ccccc1O", "CCCCCl"]).graphs).inputs())
    m, v = each[..., 0].double().numpy(), each[..., 1].double().numpy()
    assert np.allclose(mean, m.mean(0)) and np.allclose(std, np.sqrt(m.var(0) + v.mean(0)))
    want_mean, want_sigma = spread(m[:, :, None], v[:, :, None])
    assert np.allclose(want_sigma[:, 0], std)


def test_shipped_model_intervals_and_domain_on_its_own_test_split():
    net = load("esol")
    assert net.calibration_size == 113 and net.domain_size == 902
    data = registry.create_dataset("chem/esol", split="random", seed=0)
    test_smiles = data.test.smiles
    y = data.test.targets[:, 0]
    out = torchsci_chem.predict(test_smiles, interval=0.9)
    covered = (y >= out.lower) & (y <= out.upper)
    # issue 14's target, within 0.03 of 0.90: a pin of the shipped calibration on a fixed split (0.912 = 103 of 113;
    # benchmarks/README.md's not-shipped two-source calibration gives 0.938 here and fails)
    assert abs(covered.mean() - 0.90) <= 0.03, covered.mean()
    assert (out.lower < out.value).all() and (out.value < out.upper).all()
    wide = torchsci_chem.predict(test_smiles, interval=0.99)
    assert (wide.upper - wide.lower > out.upper - out.lower).all()
    train = torchsci_chem.predict(data.train.smiles[:20], details=True)
    assert np.allclose(train.similarity, 1.0) and train.in_domain.all() and np.isnan(train.lower).all()
    # a tripeptide and a siloxane: nothing like them among ESOL's training molecules (unlike a large
    # cycloalkane, whose Morgan bits are cyclohexane's: fingerprints see local environments only)
    odd = torchsci_chem.predict(["N[C@@H](Cc1ccc(O)cc1)C(=O)N[C@@H](CC(C)C)C(=O)N[C@@H](CCCNC(N)=N)C(=O)O",
                                 "C[Si](C)(C)O[Si](C)(C)C", "CCO"], details=True)
    assert odd.in_domain.tolist() == [False, False, True] and odd.judgeable.tolist() == [False, False, True]
    with pytest.raises(ConfigError, match="no conformal calibration"):
        torchsci_chem.predict(["CCO"], model=DMPNN(hidden=8), interval=0.9)


def test_cli_predict_writes_intervals_domain_and_flags(tmp_path, capsys):
    src = tmp_path / "molecules.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "smiles"])
        for name, mol in [("ethanol", "CCO"), ("salt", "[Na+].[Cl-]"), ("acetate", "CC(=O)[O-].[Na+]")]:
            w.writerow([name, Chem.MolToSmiles(Chem.MolFromSmiles(mol))])
    out = tmp_path / "p.csv"
    assert main(["chem", "predict", str(src), "-o", str(out), "--interval", "0.9"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert float(rows[0]["prediction_lower"]) < float(rows[0]["prediction"]) < float(rows[0]["prediction_upper"])
    assert [r["judgeable"] for r in rows] == ["true", "false", "false"]
    assert {"metal", "inorganic"} <= set(rows[1]["flags"].split()) and rows[2]["standardized_smiles"] == "CC(=O)O"
    assert rows[0]["in_domain"] == "true" and float(rows[0]["nearest_similarity"]) > 0
    assert "cannot judge 2 of 3" in capsys.readouterr().err


def test_structure_rules_equal_rdkits_per_atom_answers_on_esol_and_edge_cases():
    # judge_mol reads atoms by index and checks elements with one substructure query (a speed-up);
    # its answers must stay those of the plain per-atom rules
    from torchsci_chem.domain import ELEMENTS, judge_mol

    def per_atom(mol):
        symbols = {a.GetSymbol() for a in mol.GetAtoms()} - set(ELEMENTS)
        return len(Chem.GetMolFrags(mol)) > 1, sorted(symbols), any(a.GetNumRadicalElectrons() for a in mol.GetAtoms())

    edge = ["[Na+].[Cl-]", "[CH3]", "C[Pt]", "*C", "[2H]C", "C[Si](C)(C)O", "[Se]1C=CC=C1", "[B-](F)(F)(F)F",
            "C[As](C)C", "[O]", "c1ccccc1[Hg]Cl", "[H][H]"]
    for smiles in _esol_smiles(1128) + edge:
        mol = Chem.MolFromSmiles(smiles)
        judged = judge_mol(mol)
        mixture, others, radical = per_atom(mol)
        assert ("salt or mixture" in judged.reason) == mixture, smiles
        assert (f"contains {', '.join(others)} " in judged.reason) == bool(others), smiles
        assert ("radical" in judged.reason) == radical, smiles
    # deuterium, Si, Se and H2 are training elements; the rest is a salt, radical, ion or foreign element
    assert [judge_mol(Chem.MolFromSmiles(s)).applicable for s in edge] == [
        False, False, False, False, True, True, True, False, False, False, False, True]
