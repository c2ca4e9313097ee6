"""Jet-mass regression: a generated ntuple written by uproot, the physics/regression task through the Trainer and
the CLI (it must beat predicting the mean by a margin), its metrics against numpy, the evaluation plots, and the
predictions back in an entry-aligned friend tree."""

import json
import re

import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci.cli import main
from torchsci.errors import ConfigError, DataError
from torchsci.testing import check_model
from torchsci_physics.data import RootSpec, make_splits
from torchsci_physics.predict import predict_root
from torchsci_physics.regression import (
    RegressionTask,
    regression_summary,
    response_in_bins,
    weighted_quantile,
)
from torchsci_physics.toys import jet_mass_events, write_jet_mass_ntuple

PARTS = {"px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_E"}


def _spec(path, **kw):
    return dict(files=str(path), tree="jets", features={"log_pt": "log(jet_pt)", "log_mass": "log(jet_mass_reco + 1)"},
                weight="mc_weight",
                target={"jet_mass": "true_mass"}, target_transform="log",
                particles=dict(p4=PARTS, max_particles=12, features=["log_pt", "log_energy", "deta", "dphi"]),
                splits={"train": "event_number % 4 != 0", "test": "event_number % 4 == 0"}, **kw)


@pytest.fixture(scope="module")
def jets(tmp_path_factory):
    return write_jet_mass_ntuple(tmp_path_factory.mktemp("jets") / "jets.root", 800, seed=1)


@pytest.fixture(scope="module")
def trained(jets, tmp_path_factory):
    splits = make_splits(_spec(jets))
    torchsci.seed_everything(0)
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs, hidden=(32, 32))  # fast; the CLI test has PFN
    trainer = torchsci.Trainer(max_epochs=5, batch_size=64, lr=3e-3, scheduler="cosine", device="cpu",
                               run_dir=tmp_path_factory.mktemp("run"), verbose=False, tensorboard=False, progress=False)
    task = RegressionTask()
    trainer.fit(model, task, splits.train)
    return splits, model, trainer, task


def test_the_generated_target_is_the_true_constituents_mass_and_the_file_is_a_ttree(jets):
    f = uproot.open(jets)
    assert f.classnames()["jets;1"] == "TTree"
    tree = f["jets"].arrays(library="ak")
    ev = jet_mass_events(800, seed=1)
    np.testing.assert_allclose(tree["true_mass"].to_numpy(), ev["true_mass"])
    assert 5 < np.median(ev["true_mass"]) < 100 and ev["true_mass"].std() > 10  # a spread to learn, not a constant


def test_the_spec_carries_the_target_scale_and_one_output(jets):
    splits = make_splits(_spec(jets))
    kw = splits.model_kwargs
    assert kw["num_classes"] == 1 and kw["input_spec"]["target"] == {"jet_mass": "true_mass"}
    mean, std = kw["input_spec"]["target_scale"]
    train_mass = splits.train.arrays["target"]
    assert mean == pytest.approx(np.log(train_mass).mean()) and std == pytest.approx(np.log(train_mass).std())
    assert splits.train.arrays["target"].dtype == np.float64 and splits.info["classes"] == ["all"]


def test_regression_beats_predicting_the_mean_by_a_margin(trained):
    splits, model, trainer, task = trained
    result = trainer.test(model, task, splits.test)
    true, w = splits.test.arrays["target"], splits.test.arrays["weight"].astype(np.float64)
    mean_rmse = np.sqrt(np.average((true - np.average(splits.train.arrays["target"])) ** 2, weights=w))
    assert result["test/rmse"] < 0.5 * mean_rmse, (result, mean_rmse)
    assert abs(result["test/bias"]) < 0.1 and result["test/resolution"] < 0.3
    pred = trainer.predict(model, task, splits.test).numpy()
    assert pred.shape == true.shape and pred.dtype == np.float64
    assert regression_summary(pred, true, w)["rmse"] == pytest.approx(result["test/rmse"], rel=1e-4)


def test_metrics_against_numpy():
    rng = np.random.default_rng(0)
    true = rng.uniform(10, 100, 5000)
    pred = true * rng.normal(1.05, 0.1, 5000)
    s = regression_summary(pred, true)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)))
    assert s["mae"] == pytest.approx(np.mean(np.abs(pred - true)))
    r = pred / true
    assert s["bias"] == pytest.approx(np.median(r) - 1, abs=1e-3)
    assert s["resolution"] == pytest.approx((np.quantile(r, 0.84) - np.quantile(r, 0.16)) / 2, rel=1e-2)
    assert s["resolution"] == pytest.approx(0.1, rel=0.1)
    w = rng.integers(1, 3, 5000).astype(float)  # integer weights = repeated examples
    rep = np.repeat(r, w.astype(int))
    assert weighted_quantile(r, 0.3, w)[0] == pytest.approx(np.quantile(rep, 0.3), abs=2e-3)
    table = response_in_bins(pred, true, None, bins=4)
    assert table["count"].sum() == 5000 and np.all(np.abs(table["median"] - 1.05) < 0.02)


def test_predictions_back_in_an_entry_aligned_friend_tree(trained, jets, tmp_path):
    splits, model, trainer, task = trained
    out = predict_root(model, jets, tmp_path / "mass.root")
    friend = uproot.open(out)["scores"].arrays(library="np")
    assert set(friend) == {"pred_jet_mass"} and len(friend["pred_jet_mass"]) == 800
    pred = trainer.predict(model, task, splits.test).numpy()
    np.testing.assert_allclose(friend["pred_jet_mass"][splits.test.arrays["entry"]], pred, rtol=1e-5)


def test_evaluation_writes_the_response_table_and_plots(trained, tmp_path):
    splits, model, trainer, task = trained
    paths = task.write_outputs(trainer, model, splits.test, tmp_path / "evaluation")
    assert sorted(p.name for p in paths) == ["pred_vs_true.png", "response.png", "response_bins.csv"]
    table = np.genfromtxt(tmp_path / "evaluation" / "response_bins.csv", delimiter=",", names=True)
    assert table["count"].sum() == len(splits.test) and np.all(table["median"] > 0.5)
    assert (tmp_path / "evaluation" / "response.png").read_bytes()[:4] == b"\x89PNG"


def test_regression_model_conforms(jets):
    splits = make_splits(_spec(jets))
    model = torchsci.create_model("physics/pfn", **splits.model_kwargs, phi=(8, 8), head=(8,))
    batch = splits.train[:3]
    # the one output and the float64 target change nothing in PFN's graph: its pt2/ONNX parity is in test_models
    check_model(model, (batch["particles"], batch["mask"], batch["features"]), exports=())


def test_cli_train_writes_the_evaluation_outputs(jets, tmp_path, capsys):
    rc = main(["train", "experiment=physics/jet_mass_regression", "data.name=physics/root", f"data.files={jets}",
               "data.tree=jets", "~data.objects", "~data.features", "+data.features={log_pt: 'log(jet_pt)'}",
               "~data.particles", "+data.particles={p4: {px: part_px, py: part_py, pz: part_pz, E: part_E}, "
               "max_particles: 8, features: [log_pt, log_energy, deta, dphi]}", "data.selection=null", "data.target={jet_mass: true_mass}",
               "~data.splits", "+data.splits={train: 'event_number % 4 != 0', test: 'event_number % 4 == 0'}",
               "model.name=physics/pfn", "~model.k", "~model.blocks", "model.head=[16]", "+model.phi=[16]",
               "trainer.max_epochs=1", "trainer.progress=false", f"run_dir={tmp_path / 'run'}"])
    assert rc == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {re.sub(r".*/", "", p) for p in results["outputs"]} == {"response_bins.csv", "response.png", "pred_vs_true.png"}
    assert results["test"]["test/rmse"] > 0


def test_bad_regression_inputs_are_one_clear_error(jets, tmp_path):
    with pytest.raises(ConfigError, match="target_transform='sqrt'.*'log'"):
        RootSpec(**{**_spec(jets), "target_transform": "sqrt"})
    with pytest.raises(ConfigError, match="target_scale"):
        RootSpec(**{**_spec(jets), "target_scale": [1.0, 0.0]})
    with pytest.raises(DataError, match=r"jets.root: target '\(true_mass - 30\)'.*positive.*selection="):
        make_splits({**_spec(jets), "target": "(true_mass - 30)"})
    splits = torchsci.registry.create_dataset("physics/root", **{k: v for k, v in _spec(jets).items()
                                                                 if not k.startswith("target")}, label="jet_pt > 300")
    model = torchsci.create_model("physics/pfn", **splits.model_kwargs)
    with pytest.raises(ConfigError, match="physics/regression task needs data with target="):
        RegressionTask().forward(model, splits.train[:2])
    with pytest.raises(ConfigError, match="loss='mae'"):
        RegressionTask(loss="mae")
    assert torch.is_tensor(splits.train[:2]["label"])


def test_kfold_regression_writes_out_of_fold_predictions_in_the_target_units(jets, tmp_path):
    from torchsci_physics.folds import train_folds

    cfg = torchsci.compose(["experiment=physics/jet_mass_regression", "trainer=smoke", "trainer.tensorboard=false",
                            "trainer.verbose=false", "trainer.max_epochs=1", "model.name=physics/mlp", "~model.k",
                            "~model.blocks", "~model.head", "~model.dropout", "data.name=physics/root"])
    spec = _spec(jets, folds="event_number % 2")
    cfg.data = {"name": "physics/root", **{k: v for k, v in spec.items() if k != "splits"}}
    result = train_folds(cfg, tmp_path / "kfold")
    assert len(result.checkpoints) == 2 and all(t["test/rmse"] > 0 for t in result.test)
    friend = uproot.open(result.friends[f"{jets}:jets"])["scores"].arrays(library="np")
    models = [torchsci.load_model(c).eval() for c in result.checkpoints]
    assert len(friend["pred_jet_mass"]) == 800 and np.isfinite(friend["pred_jet_mass"]).all()
    np.testing.assert_array_equal(friend["fold"], np.arange(800) % 2)
    # entry 1 (fold 1) is predicted by the model trained on fold 0, in GeV
    row = make_splits({**_spec(jets), "splits": {"train": "event_number == 1"}}).train[:1]
    task = RegressionTask()
    with torch.no_grad():
        want = task.predict(task.forward(models[1], row), row).item()
    assert friend["pred_jet_mass"][1] == pytest.approx(want, rel=1e-5) and 1 < want < 300
