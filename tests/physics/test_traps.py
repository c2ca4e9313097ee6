"""The four API traps of issue 15, each pinned by a test named after it on a file written by uproot."""

import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci.errors import ConfigError
from torchsci_physics.data import Collection, RootDataset, RootSpec, make_splits
from torchsci_physics.task import TaggingTask

JETS = ("lead_jet", "sub_jet", "third_jet")


@pytest.fixture(scope="module")
def analysis_ntuple(tmp_path_factory):
    """One file with three trees (ttH, bkg_a, bkg_b) of events with jets in branches named per jet, and a
    second file with one more background tree: like an analysis ntuple."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("ntuple")

    def events(n, offset):
        out = {"event_number": np.arange(offset, offset + n, dtype=np.int64), "mc_weight": rng.uniform(0.5, 2, n)}
        for k, jet in enumerate(JETS):
            out[f"pt_{jet}"] = rng.exponential(40, n) + 100 - 30 * k
            out[f"eta_{jet}"] = rng.normal(0, 1.5, n)
            out[f"phi_{jet}"] = rng.uniform(-np.pi, np.pi, n)
            out[f"m_{jet}"] = rng.uniform(5, 15, n)
        out["pt_third_jet"][: n // 4] = 0.0  # a quarter of the events have only two jets
        return out

    paths = {"main": folder / "ntuple.root", "extra": folder / "extra.root"}
    with uproot.recreate(paths["main"]) as f:
        for k, (tree, n) in enumerate((("ttH", 30), ("bkg_a", 20), ("bkg_b", 25))):
            data = events(n, 1000 * k)
            f.mktree(tree, {b: v.dtype for b, v in data.items()})
            f[tree].extend(data)
    with uproot.recreate(paths["extra"]) as f:
        data = events(15, 5000)
        f.mktree("bkg_c", {b: v.dtype for b, v in data.items()})
        f["bkg_c"].extend(data)
    return {k: str(v) for k, v in paths.items()}


JET_P4 = {"pt": "pt_{i}", "eta": "eta_{i}", "phi": "phi_{i}", "mass": "m_{i}"}


def test_one_class_from_several_trees_and_file_groups(analysis_ntuple):
    main, extra = analysis_ntuple["main"], analysis_ntuple["extra"]
    spec = RootSpec(files={"background": [{"files": main, "tree": "bkg_a"}, {"files": main, "tree": "bkg_b"},
                                          {"files": extra, "tree": "bkg_c"}],
                           "ttH": {"files": main, "tree": "ttH"}},
                    features={"ht": "pt_lead_jet + pt_sub_jet"}, weight="mc_weight")
    data = RootDataset(spec)
    assert spec.classes == ["background", "ttH"]
    assert data.arrays["label"].tolist() == [0] * (20 + 25 + 15) + [1] * 30
    # each row keeps its own file and tree: the event numbers come back in the order the groups were given
    numbers = np.concatenate([uproot.open(path)[tree]["event_number"].array(library="np")
                              for path, tree in ((main, "bkg_a"), (main, "bkg_b"), (extra, "bkg_c"), (main, "ttH"))])
    np.testing.assert_array_equal(data.arrays["entry"], numbers % 1000)
    # a list of trees in one group means the same
    same = RootDataset({**vars(spec), "classes": None, "files": {
        "background": [{"files": main, "tree": ["bkg_a", "bkg_b"]}, {"files": extra, "tree": "bkg_c"}],
        "ttH": {"files": main, "tree": "ttH"}}})
    np.testing.assert_array_equal(same.arrays["features"], data.arrays["features"])


def test_one_class_from_several_trees_refuses_a_list_as_the_tree_name(analysis_ntuple):
    with pytest.raises(ConfigError, match="tree=.*one tree name"):
        RootSpec(files=analysis_ntuple["main"], tree=["bkg_a", "bkg_b"], label="0", features=["mc_weight"])
    with pytest.raises(ConfigError, match=r"files\['background'\]: a file group"):
        RootSpec(files={"background": [{"path": analysis_ntuple["main"]}], "ttH": analysis_ntuple["main"]},
                 features=["mc_weight"]).sources()


def test_signal_as_a_class_name_and_ambiguity_refused():
    three = ["ttbar", "ttH", "QCD"]
    assert TaggingTask(signal="ttH").signal_index(3, three) == 1
    assert TaggingTask(signal=2).signal_index(3, three) == 2  # an index still works
    assert TaggingTask().signal_index(2, ["background", "signal"]) == 1
    with pytest.raises(ConfigError, match="3 classes.*say which is the signal"):
        TaggingTask().signal_index(3, three)
    with pytest.raises(ConfigError, match="not one of the classes"):
        TaggingTask(signal="tth").signal_index(3, three)
    with pytest.raises(ConfigError, match="names 2 classes"):
        TaggingTask(signal="ttH").signal_index(3, ["ttH", "ttH", "QCD"])
    with pytest.raises(ConfigError, match="3 classes"):
        TaggingTask(signal=3).signal_index(3, three)


def test_signal_as_a_class_name_measures_that_class(tmp_path, analysis_ntuple):
    main = analysis_ntuple["main"]
    spec = dict(files={"bkg_a": {"files": main, "tree": "bkg_a"}, "ttH": {"files": main, "tree": "ttH"},
                       "bkg_b": {"files": main, "tree": "bkg_b"}},
                features={"pt1": "pt_lead_jet", "eta1": "eta_lead_jet"}, splits={"train": "event_number >= 0"})
    splits = make_splits(spec)
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs, hidden=[8])
    trainer = torchsci.Trainer(max_epochs=1, batch_size=16, device="cpu", run_dir=tmp_path, verbose=False,
                               tensorboard=False)
    with pytest.raises(ConfigError, match="say which is the signal"):
        trainer.fit(model, TaggingTask(), splits.train)
    task = TaggingTask(signal="ttH")
    metrics = trainer.validate(model, task, splits.train)
    from torchsci_physics.metrics import roc_auc

    probs = trainer.predict(model, task, splits.train).numpy()
    want = roc_auc(splits.train.arrays["label"], probs, splits.train.arrays["weight"], signal=1)
    assert metrics["val/auc"] == pytest.approx(want)
    assert metrics["val/auc"] != pytest.approx(roc_auc(splits.train.arrays["label"], probs, signal=2))


def test_collection_of_objects_gathers_branches_named_per_object(analysis_ntuple):
    main = analysis_ntuple["main"]
    spec = RootSpec(files=main, tree="ttH", label="0", classes=["ttH"],
                    particles=Collection(p4=JET_P4, objects=list(JETS), max_particles=3, sort_by=None,
                                         features={"pt": "pt", "mass": "mass", "named_pt": "pt_{i}"}))
    data = RootDataset(spec)
    tree = uproot.open(main)["ttH"].arrays(library="np")
    assert data.arrays["particles"].shape == (30, 3, 3)
    for k, jet in enumerate(JETS):
        real = data.arrays["mask"][:, k]
        np.testing.assert_array_equal(real, tree[f"pt_{jet}"] > 0)
        np.testing.assert_allclose(data.arrays["particles"][real, k, 0], tree[f"pt_{jet}"][real], rtol=1e-5)
        np.testing.assert_allclose(data.arrays["particles"][real, k, 1], tree[f"m_{jet}"][real], rtol=1e-4)
        np.testing.assert_allclose(data.arrays["particles"][real, k, 2], tree[f"pt_{jet}"][real], rtol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        Collection(p4=JET_P4, objects=list(JETS), numbered=3)
    with pytest.raises(ConfigError, match="hold \\{i\\}"):
        Collection(p4={"pt": "pt_lead_jet", "eta": "eta_lead_jet", "phi": "phi_lead_jet", "mass": "m_lead_jet"},
                   objects=list(JETS))


def test_particlenet_k_at_least_max_particles_is_refused_when_built(analysis_ntuple):
    spec = dict(files=analysis_ntuple["main"], tree="ttH", label="event_number % 2", splits={"train": "event_number >= 0"},
                particles=dict(p4=JET_P4, objects=list(JETS), max_particles=3, features=["log_pt", "eta"]))
    splits = make_splits(spec)
    with pytest.raises(ConfigError, match="k=8: the data pads to 3 particles.*at most 2"):
        torchsci.create_model("physics/particlenet", **splits.model_kwargs)
    model = torchsci.create_model("physics/particlenet", **splits.model_kwargs, k=2, blocks=[[8]], head=[8])
    batch = splits.train[:4]
    assert model(batch["particles"], batch["mask"], batch["points"]).shape == (4, 2)
    assert torch.isfinite(model(batch["particles"], batch["mask"], batch["points"])).all()
