"""Binary, multiclass and multitask-with-missing-labels training through the same Trainer, CLI and configs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import torchsci
import torchsci_chem
from torchsci import DataError
from torchsci.cli import main
from torchsci.registry import registry
from torchsci_chem.datasets import SmilesCSVDataset, esol_path, split_dataset
from torchsci_chem.task import PropertyOutputs, PropertyTask

# 40 real molecules (RDKit parses them all); labels: carries an oxygen (binary), number of rings (0/1/2 classes)
MOLECULES = ["CCO", "CCCO", "CCCCO", "CC", "CCC", "CCCC", "c1ccccc1", "c1ccccc1O", "c1ccccc1C", "Cc1ccccc1O",
             "CC(=O)O", "CCOC", "CCN", "CCCN", "CCCl", "OCCO", "C1CCCCC1", "C1CCCCC1O", "c1ccc2ccccc2c1",
             "Oc1ccc2ccccc2c1", "CCOCC", "CC(C)O", "CC(C)C", "c1ccncc1", "Oc1ccncc1", "C1CCC2CCCCC2C1",
             "O=C1CCCCC1", "CCCCCC", "CCCCCCO", "c1ccc(cc1)-c1ccccc1", "Oc1ccc(cc1)-c1ccccc1", "CC(=O)C",
             "CCCC(=O)O", "ClCCl", "ClC(Cl)Cl", "C1CC1", "OC1CC1", "c1ccoc1", "c1ccsc1", "CS(C)=O"]


def _labels():
    from rdkit import Chem

    mols = [Chem.MolFromSmiles(s) for s in MOLECULES]
    has_o = [int(any(a.GetSymbol() == "O" for a in m.GetAtoms())) for m in mols]
    rings = [min(m.GetRingInfo().NumRings(), 2) for m in mols]
    return has_o, rings


def test_classification_metrics_match_scikit_learn_and_skip_missing_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 2))
    labels = (rng.random((30, 2)) < 0.4).astype(float)
    labels[::4, 1] = np.nan
    task = PropertyTask(kind="classification")
    metrics = task.metrics()
    task.update_metrics(metrics, PropertyOutputs(torch.tensor(logits[:13]), None), (None, torch.tensor(labels[:13])))
    task.update_metrics(metrics, PropertyOutputs(torch.tensor(logits[13:]), None), (None, torch.tensor(labels[13:])))
    m = ~np.isnan(labels[:, 1])
    auroc = (roc_auc_score(labels[:, 0], logits[:, 0]) + roc_auc_score(labels[m, 1], logits[m, 1])) / 2
    prauc = (average_precision_score(labels[:, 0], logits[:, 0])
             + average_precision_score(labels[m, 1], logits[m, 1])) / 2
    assert metrics["auroc"].compute() == pytest.approx(auroc)
    assert metrics["prauc"].compute() == pytest.approx(prauc)
    assert task.monitor == "val/auroc"


def test_multiclass_loss_metrics_and_probabilities():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(24, 3)))
    y = torch.tensor(rng.integers(0, 3, size=(24, 1)).astype(float))
    y[5, 0] = math.nan
    task = PropertyTask(kind="multiclass")
    out = PropertyOutputs(logits, None, num_classes=3)
    mask = ~torch.isnan(y[:, 0])
    expected = torch.nn.functional.cross_entropy(logits[mask], y[mask, 0].long())
    assert float(task.loss(out, (None, y))) == pytest.approx(float(expected))
    metrics = task.metrics()
    task.update_metrics(metrics, out, (None, y))
    probs = torch.softmax(logits, dim=1).numpy()
    yy = y[:, 0].numpy()
    keep = ~np.isnan(yy)
    ovr = [roc_auc_score(yy[keep] == c, probs[keep, c]) for c in range(3)]
    assert metrics["auroc"].compute() == pytest.approx(np.mean(ovr))
    assert metrics["auroc"].compute() == pytest.approx(roc_auc_score(yy[keep], probs[keep], multi_class="ovr"))
    p = task.predict(out, (None, None))
    assert p.shape == (24, 3) and torch.allclose(p.sum(dim=1), torch.ones(24, dtype=p.dtype))
    with pytest.raises(DataError, match="n_tasks \\* n_classes"):
        task.loss(PropertyOutputs(torch.zeros(3, 1), None), (None, torch.zeros(3, 1)))


def test_cli_binary_classification_trains_reports_auc_and_predicts_probabilities(tmp_path, capsys):
    has_o, _ = _labels()
    data = tmp_path / "active.csv"
    data.write_text("smiles,active\n" + "".join(f"{s},{y}\n" for s, y in zip(MOLECULES, has_o, strict=True)))
    run = tmp_path / "run"
    assert main(["chem", "train", str(data), "--target", "active", "--task", "classification", "-o", str(run),
                 "--epochs", "2", "--hidden", "16", "--device", "cpu", "--split", "scaffold"]) == 0
    test = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert {"test/auroc", "test/prauc"} <= set(test) or {"auroc", "prauc"} <= {k.split("/")[-1] for k in test}
    assert json.loads((run / "split.json").read_text())["task"] == "classification"
    ckpt = run / "checkpoints" / "best.ckpt"
    p = torchsci_chem.predict(MOLECULES[:5], model=str(ckpt), standardize=False)
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()
    out = tmp_path / "p.csv"
    assert main(["chem", "predict", "--model", str(ckpt), str(data), "-o", str(out)]) == 0
    values = [float(r["prediction"]) for r in csv.DictReader(out.open())]
    assert len(values) == 40 and all(0 < v < 1 for v in values)


def test_multitask_csv_with_empty_cells_masks_them_through_the_trainer(tmp_path):
    has_o, rings = _labels()
    path = tmp_path / "multi.csv"
    rows = [f"{s},{'' if k % 5 == 0 else o},{'' if k % 7 == 3 else int(r > 0)}"
            for k, (s, o, r) in enumerate(zip(MOLECULES, has_o, rings, strict=True))]
    path.write_text("smiles,has_oxygen,has_ring\n" + "\n".join(rows) + "\n")
    data = registry.create_dataset("chem/csv", path=str(path), targets=["has_oxygen", "has_ring"],
                                   task="classification")
    full = np.concatenate([data.train.targets, data.val.targets, data.test.targets])
    assert np.isnan(full).sum() == 8 + 6  # empty cells became NaN, not 0
    assert data.model_kwargs["task_kind"] == "classification" and data.model_kwargs["target_std"] == [1.0, 1.0]
    model = torchsci.create_model("chem/dmpnn", hidden=16, ffn_hidden=8, **data.model_kwargs)
    task = registry.create_task("chem/property", kind="classification")
    batch = data.collate_fn([data.train[i] for i in range(len(data.train))])
    outputs = task.forward(model, batch)
    target = batch[1]
    # the loss only sees measured cells: changing the logits of missing ones changes nothing
    poked = outputs.prediction.detach().clone()
    poked[torch.isnan(target)] += 100.0
    loss = float(task.loss(outputs, batch).detach())
    assert float(task.loss(PropertyOutputs(poked, None), batch)) == pytest.approx(loss)
    trainer = torchsci.Trainer(max_epochs=2, batch_size=8, device="cpu", run_dir=tmp_path / "run", verbose=False,
                               tensorboard=False)
    fit = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
    result = trainer.test(fit.model, task, data.test, collate_fn=data.collate_fn)
    assert all(0.0 <= result[k] <= 1.0 for k in result if k.endswith(("auroc", "prauc")) and not math.isnan(result[k]))
    probs = torchsci_chem.predict(MOLECULES[:3], model=fit.model, standardize=False)
    assert probs.shape == (3, 2) and ((probs > 0) & (probs < 1)).all()


def test_multiclass_from_python_and_cli_with_class_probabilities(tmp_path, capsys):
    _, rings = _labels()
    path = tmp_path / "rings.csv"
    path.write_text("smiles,rings\n" + "".join(f"{s},{r}\n" for s, r in zip(MOLECULES, rings, strict=True)))
    data = SmilesCSVDataset(path, targets="rings")
    splits = split_dataset(data, "random", seed=0, task="multiclass")
    assert splits.model_kwargs["num_classes"] == 3 and splits.model_kwargs["num_tasks"] == 3
    run = tmp_path / "run"
    assert main(["chem", "train", str(path), "--target", "rings", "--task", "multiclass", "-o", str(run),
                 "--epochs", "2", "--hidden", "16", "--device", "cpu"]) == 0
    p = torchsci_chem.predict(MOLECULES[:4], model=str(run / "checkpoints" / "best.ckpt"), standardize=False)
    assert p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1.0)


def test_soluble_classification_config_builds_and_steps(tmp_path, monkeypatch):
    import yaml  # hydra's dependency

    import torchsci_chem.datasets as datasets

    # the config's dataset labels ESOL at logS >= -3; a 30-row file in ESOL's format keeps this test fast
    rows = list(csv.DictReader(esol_path().open()))[:30]
    small = tmp_path / "esol_head.csv"
    with small.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(datasets, "esol_path", lambda: small)
    text = (Path(torchsci_chem.__file__).parent / "configs/experiment/chem/soluble_classification.yaml").read_text()
    cfg = yaml.safe_load(text)
    data = registry.create_dataset(cfg["data"].pop("name"), **cfg["data"])
    y = np.concatenate([data.train.targets, data.val.targets, data.test.targets])[:, 0]
    logs = np.array([float(r[datasets.ESOL_TARGET]) for r in rows])
    assert len(y) == 30 and y.sum() == (logs >= -3).sum() and 0 < y.sum() < 30
    model = torchsci.create_model(cfg["model"].pop("name"), **{**data.model_kwargs, **cfg["model"]})
    task = registry.create_task(cfg["task"].pop("name"), **cfg["task"])
    batch = data.collate_fn([data.train[i] for i in range(4)])
    assert task.kind == "classification" and model.task_kind == "classification"
    assert task.loss(task.forward(model, batch), batch).isfinite()
