"""Event classification in the field's words: classes from several trees, reweighting, observers, sculpting,
k-fold out-of-fold friend trees; on an ntuple written by uproot, from Python and from the experiment config."""

import pathlib

import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci_physics.data import RootDataset, make_splits
from torchsci_physics.folds import train_folds
from torchsci_physics.sculpting import plot_sculpting, sculpting
from torchsci_physics.task import TaggingTask
from torchsci_physics.toys import write_resonance_ntuple

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
EDGES = [0, 100, 150, 200, 300, 500, 1000]


@pytest.fixture(scope="module")
def ntuple(tmp_path_factory):
    return str(write_resonance_ntuple(tmp_path_factory.mktemp("events") / "resonance.root", 900, objects=4, seed=7,
                                      trees_by_class=True))


def _files(path):
    return {"background": [{"files": path, "tree": "background_a"}, {"files": path, "tree": "background_b"}],
            "signal": {"files": path, "tree": "signal"}}


def _spec(path, **kw):
    return dict(files=_files(path), features={"n_jets": "num(jet_px)", "log_ht": "log(ht)"}, weight="mc_weight",
                particles=dict(p4={"px": "jet_px", "py": "jet_py", "pz": "jet_pz", "E": "jet_E"}, max_particles=4,
                               features=["log_pt", "log_energy", "deta", "dphi"]),
                observers={"event_number": "event_number", "true_mass": "true_mass"},
                splits={"train": "event_number % 4 != 0", "test": "event_number % 4 == 0"}, **kw)


def _ht(path):
    trees = [uproot.open(path)[t].arrays(["ht", "mc_weight", "event_number"], library="np")
             for t in ("background_a", "background_b", "signal")]
    return {k: np.concatenate([t[k] for t in trees]) for k in trees[0]}


def _hist(values, weights):
    return np.histogram(np.clip(values, EDGES[0], EDGES[-1] - 1e-9), bins=EDGES, weights=weights)[0]


def test_reweighting_flattens_each_class_in_the_training_split_only(ntuple):
    splits = make_splits(_spec(ntuple, reweight={"variables": {"ht": "ht"}, "bins": {"ht": EDGES},
                                                 "class_weights": {"signal": 2.0}, "max_weight": 1e6}))
    train, test = splits.train.arrays, splits.test.arrays
    truth = _ht(ntuple)
    ht_train = truth["ht"][truth["event_number"] % 4 != 0]
    for c in (0, 1):
        rows = train["label"] == c
        h = _hist(ht_train[rows], train["weight"][rows])
        filled = _hist(ht_train[rows], None) > 0
        np.testing.assert_allclose(h[filled], h[filled].mean(), rtol=1e-4)  # flat in ht
    totals = [train["weight"][train["label"] == c].sum() for c in (0, 1)]
    assert totals[1] == pytest.approx(2 * totals[0], rel=1e-4)
    assert sum(totals) == pytest.approx(truth["mc_weight"][truth["event_number"] % 4 != 0].sum(), rel=1e-4)
    np.testing.assert_allclose(test["weight"], truth["mc_weight"][truth["event_number"] % 4 == 0], rtol=1e-6)


def test_reweighting_to_a_reference_class_gives_the_background_its_shape(ntuple):
    splits = make_splits(_spec(ntuple, reweight={"variables": ["ht"], "bins": {"ht": EDGES}, "method": "reference",
                                                 "reference": "signal", "max_weight": 1e6}))
    train = splits.train.arrays
    truth = _ht(ntuple)
    ht = truth["ht"][truth["event_number"] % 4 != 0]
    sig = _hist(ht[train["label"] == 1], train["weight"][train["label"] == 1])
    bkg = _hist(ht[train["label"] == 0], train["weight"][train["label"] == 0])
    shared = _hist(ht[train["label"] == 0], None) > 0  # a bin without background cannot take the signal's share
    assert shared.sum() >= 4
    np.testing.assert_allclose(bkg[shared] / bkg.sum(), sig[shared] / sig[shared].sum(), atol=1e-5)
    stream = make_splits(_spec(ntuple, step_size=200, reweight={"variables": ["ht"], "bins": {"ht": EDGES},
                                                                "method": "reference", "reference": "signal",
                                                                "max_weight": 1e6}), streaming=True)
    streamed = np.concatenate([b["weight"].numpy() for b in stream.train.batched(64)])
    assert streamed.sum() == pytest.approx(train["weight"].sum(), rel=1e-3)


def test_observers_ride_along_and_sculpting_is_measured(ntuple, tmp_path):
    splits = make_splits(_spec(ntuple))
    batch = splits.test[:5]
    truth = _ht(ntuple)
    assert batch["observers"].dtype == torch.float64
    np.testing.assert_array_equal(batch["observers"][:, 0].numpy(), truth["event_number"][truth["event_number"] % 4 == 0][:5])
    # a score that is the true mass sculpts the background towards 125; one that ignores it does not
    test = splits.test.arrays
    mass = test["observers"][:, 1]
    by_mass = np.stack([np.abs(mass - 125), -np.abs(mass - 125)], 1)
    blind = np.random.default_rng(0).uniform(size=(len(mass), 2))
    assert sculpting(mass, test["label"], by_mass, bins=10).jsd > 0.3 > 0.1 > sculpting(mass, test["label"], blind, bins=10).jsd
    assert plot_sculpting(sculpting(mass, test["label"], by_mass), tmp_path / "sculpting.png").stat().st_size > 1000
    model = torchsci.create_model("physics/pfn", **splits.model_kwargs, phi=[8], head=[8])
    trainer = torchsci.Trainer(max_epochs=1, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    task = TaggingTask(signal="signal", sculpting="true_mass")
    metrics = trainer.validate(model, task, splits.test)
    probs = trainer.predict(model, task, splits.test).numpy()
    assert metrics["val/sculpting@0.5"] == pytest.approx(sculpting(mass, test["label"], probs, test["weight"]).jsd,
                                                         rel=1e-4)
    with pytest.raises(torchsci.errors.ConfigError, match="names no observer"):
        trainer.validate(model, TaggingTask(sculpting="mjj"), splits.test)


def test_kfold_scores_every_event_out_of_fold_in_one_friend_tree_per_input_tree(ntuple, tmp_path):
    cfg = torchsci.compose(["experiment=physics/event_classification", "trainer=smoke", "trainer.tensorboard=false",
                            "trainer.verbose=false", "trainer.max_epochs=1", "model.dim=8", "model.pair_widths=[8]",
                            "model.message=[8]", "model.head=[8]", "data.folds=event_number % 3",
                            f"hydra.searchpath=[file://{CONFIGS}]"])
    cfg.data.files = _files(ntuple)
    result = train_folds(cfg, tmp_path / "kfold")
    assert len(result.checkpoints) == 3 and all(0 <= t["test/auc"] <= 1 for t in result.test)
    assert sorted(result.friends) == [f"{ntuple}:{t}" for t in ("background_a", "background_b", "signal")]
    models = [torchsci.load_model(c).eval() for c in result.checkpoints]
    for source, friend in result.friends.items():
        tree = uproot.open(ntuple)[source.rsplit(":", 1)[1]]
        scores = uproot.open(friend)["scores"].arrays(library="np")
        numbers = tree["event_number"].array(library="np")
        assert len(scores["score_signal"]) == tree.num_entries  # entry-aligned with its input tree
        np.testing.assert_array_equal(scores["fold"], numbers % 3)
        np.testing.assert_array_equal(scores["event_number"], numbers)
        np.testing.assert_allclose(scores["score_signal"] + scores["score_background"], 1, rtol=1e-5)
        # entry 0 is scored by the model of its own fold, which never trained on it
        row = RootDataset({**_spec(ntuple), "files": {"only": {"files": ntuple, "tree": tree.name}}, "splits": {}})[:1]
        model = models[int(numbers[0] % 3)]
        with torch.no_grad():
            want = TaggingTask().forward(model, row).softmax(-1)[0, 1].item()
        assert scores["score_signal"][0] == pytest.approx(want, rel=1e-4)


def test_the_config_run_writes_roc_scores_and_sculpting_plots_after_testing_and_evaluating(ntuple, tmp_path):
    from torchsci.runner import run

    overrides = ["experiment=physics/event_classification", "trainer=smoke", "trainer.tensorboard=false",
                 "trainer.verbose=false", "trainer.max_epochs=1", "model.dim=8", "model.pair_widths=[8]",
                 "model.message=[8]", "model.head=[8]", f"hydra.searchpath=[file://{CONFIGS}]"]
    cfg = torchsci.compose([*overrides, f"run_dir={tmp_path / 'train'}"])
    cfg.data.files = _files(ntuple)
    results = run(cfg, "train")
    names = sorted(pathlib.Path(p).name for p in results["outputs"])
    assert names == ["roc.png", "scores.png", "sculpting.png"]
    assert all((tmp_path / "train" / "evaluation" / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    assert 0 <= results["test"]["test/sculpting@0.5"] <= 1
    cfg = torchsci.compose([*overrides, f"run_dir={tmp_path / 'evaluate'}", f"+ckpt={results['best_checkpoint']}"])
    cfg.data.files = _files(ntuple)
    evaluated = run(cfg, "evaluate")
    assert sorted(pathlib.Path(p).name for p in evaluated["outputs"]) == names
    assert all(pathlib.Path(p).is_relative_to(tmp_path / "evaluate") for p in evaluated["outputs"])
