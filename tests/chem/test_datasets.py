"""CSV and SDF readers (real files written by csv/RDKit), bad input, splits, train-split standardisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rdkit import Chem

from torchsci import ConfigError, DataError
from torchsci.registry import registry
from torchsci_chem import datasets as D


def _csv(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_multi_target_with_missing_values(tmp_path):
    p = _csv(tmp_path, "id,smiles,a,b\n1,CCO,1.5,\n2,c1ccccc1,nan,2\n3,CC,3,4\n")
    ds = D.SmilesCSVDataset(p, "smiles", ["a", "b"])
    assert len(ds) == 3 and ds.target_names == ["a", "b"]
    assert np.isnan(ds.targets[0, 1]) and np.isnan(ds.targets[1, 0]) and ds.targets[2].tolist() == [3, 4]
    graph, targets = D.MoleculeDataset.collate([ds[0], ds[1]])
    assert graph.num_molecules == 2 and targets.shape == (2, 2)


def test_csv_with_two_smiles_columns_makes_one_graph_per_row(tmp_path):
    p = _csv(tmp_path, "solute,solvent,y\nCCO,O,1\nc1ccccc1,CCCCCC,2\n")
    ds = D.SmilesCSVDataset(p, ["solute", "solvent"], "y")
    assert [g.num_atoms for g in ds.graphs] == [4, 12]
    assert ds.graphs[1].edge_index.max() == 11 and ds.smiles[0] == "CCO.O"


def test_columns_spelt_in_another_case_are_found_by_the_headers_own_name(tmp_path):
    p = _csv(tmp_path, "SMILES,LogS\nCCO,1\nc1ccccc1,2\n")
    ds = D.SmilesCSVDataset(p, "smiles", "logS")
    assert ds.smiles == ["CCO", "c1ccccc1"] and ds.target_names == ["LogS"] and ds.targets[:, 0].tolist() == [1, 2]
    with pytest.raises(DataError, match="column\\(s\\) \\['smiles'\\] not found"):
        D.SmilesCSVDataset(_csv(tmp_path, "Smiles,SMILES,y\nCCO,CCN,1\n"), "smiles", "y")


@pytest.mark.parametrize("text,match", [
    ("smiles,y\nCCO,1\n", "column\\(s\\) \\['logS'\\] not found"),
    ("smiles,logS\nCCO,abc\n", "line 2, column 'logS': target 'abc' is not a number"),
    ("smiles,logS\n", "no data rows"),
    ("smiles,logS\nCCO,1\nCCN\n", "line\\(s\\) \\[3\\] have fewer fields"),
    ("smiles,logS\nCCO,1\nC1CC,2\nxx,3\n", "2 molecule\\(s\\) in .*m.csv.*\n  row 3: 'C1CC'.*\n  row 4: 'xx'"),
])
def test_bad_csv_is_one_clear_error_naming_the_file(tmp_path, text, match):
    p = _csv(tmp_path, text)
    with pytest.raises(DataError, match=match) as err:
        D.SmilesCSVDataset(p, "smiles", "logS")
    assert "m.csv" in str(err.value)


def test_missing_file_and_skip_report(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        D.SmilesCSVDataset(tmp_path / "nope.csv", "smiles", "y")
    p = _csv(tmp_path, "smiles,y\nCCO,1\nC1CC,2\nCCN,3\n")
    ds = D.SmilesCSVDataset(p, "smiles", "y", on_invalid="skip")
    assert ds.smiles == ["CCO", "CCN"] and ds.rows == [2, 4] and ds.targets[:, 0].tolist() == [1, 3]
    assert [(r.row, r.smiles) for r in ds.skipped] == [(3, "C1CC")]


def test_sdf_with_properties(tmp_path):
    path = tmp_path / "mols.sdf"
    with Chem.SDWriter(str(path)) as w:
        for smi, y in [("CCO", "0.5"), ("c1ccccc1O", "-0.1"), ("CC(=O)O", None)]:
            m = Chem.MolFromSmiles(smi)
            if y is not None:
                m.SetProp("logS", y)
            w.write(m)
    with pytest.raises(DataError, match="record 3: no property 'logS'"):
        D.SDFDataset(path, "logS")
    ds = D.SDFDataset(path, "logS", missing="nan")
    assert len(ds) == 3 and ds.targets[:2, 0].tolist() == pytest.approx([0.5, -0.1]) and math.isnan(ds.targets[2, 0])
    assert ds.graphs[1].num_atoms == 7


def test_sdf_with_a_broken_record(tmp_path):
    good = Chem.MolToMolBlock(Chem.MolFromSmiles("CCO"))
    pentavalent = Chem.MolFromSmiles("CC(C)(C)(C)(C)C", sanitize=False)
    bad = Chem.MolToMolBlock(pentavalent, kekulize=False)
    path = tmp_path / "broken.sdf"
    path.write_text(good + "$$$$\n" + bad + "$$$$\n")
    with pytest.raises(DataError, match="record 2"):
        D.SDFDataset(path)
    assert len(D.SDFDataset(path, on_invalid="skip")) == 1


def test_splits_are_fixed_by_seed_disjoint_and_complete():
    a = D.random_split(100, seed=3)
    b = D.random_split(100, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], D.random_split(100, seed=4)[0])
    assert sorted(np.concatenate(a).tolist()) == list(range(100)) and [len(x) for x in a] == [80, 10, 10]
    folds = [D.kfold_split(50, 5, k, seed=0)[2] for k in range(5)]
    assert sorted(np.concatenate(folds).tolist()) == list(range(50))
    with pytest.raises(ConfigError):
        D.random_split(10, sizes=(0.5, 0.5, 0.5))


def test_scaffold_split_shares_no_scaffold():
    smiles = D.SmilesCSVDataset(D.esol_path(), "smiles", D.ESOL_TARGET).smiles[:300]
    parts = D.scaffold_split(smiles, seed=0)
    scaffolds = [{D.bemis_murcko_scaffold(smiles[i]) for i in p} for p in parts]
    assert not (scaffolds[0] & scaffolds[1]) and not (scaffolds[0] & scaffolds[2]) and not (scaffolds[1] & scaffolds[2])
    assert sum(len(p) for p in parts) == 300 and len(parts[1]) > 0 and len(parts[2]) > 0


def test_esol_split_carries_train_standardisation_and_indices():
    data = registry.create_dataset("chem/esol", split="random", seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (902, 113, 113)
    y = data.train.targets[:, 0]
    assert data.model_kwargs["target_mean"] == pytest.approx([float(y.mean())], rel=1e-5)
    assert data.model_kwargs["target_std"] == pytest.approx([float(y.std())], rel=1e-4)
    assert data.info["indices"]["test"] == D.random_split(1128, seed=0)[2].tolist()
    assert data.info["seed"] == 0 and data.info["split"] == "random"


def test_extra_features_standardisation_goes_to_the_model(tmp_path):
    p = _csv(tmp_path, "smiles,y\n" + "".join(f"{'C' * k}O,{k}\n" for k in range(1, 11)))
    data = registry.create_dataset("chem/csv", path=str(p), smiles="smiles", targets="y", extra="morgan_counts")
    assert data.model_kwargs["extra_features"] == 2048 and len(data.model_kwargs["extra_std"]) == 2048
    graph, _ = data.collate_fn([data.train[0], data.train[1]])
    assert graph.extra.shape == (2, 2048)
