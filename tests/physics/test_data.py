"""ROOT files to padded jets: real files written by uproot, and one clear error per bad input."""

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci.data import make_loader
from torchsci.errors import ConfigError, DataError
from torchsci_physics.data import RootDataset, RootSpec, RootStream, make_splits
from torchsci_physics.task import TaggingTask


def test_issue96_jets_as_two_rows_per_event(qg_spec, issue96):
    splits = make_splits(qg_spec)
    tree = uproot.open(issue96)["tree"]
    ids = tree.arrays(["jet1ID", "jet2ID", "EventNumber"], library="np")
    even = ids["EventNumber"] % 2 == 0
    expected = int(((ids["jet1ID"] > 0) & even).sum() + ((ids["jet2ID"] > 0) & even).sum())
    assert len(splits.train) + len(splits.val) == expected
    assert len(splits.test) == int(((ids["jet1ID"] > 0) & ~even).sum() + ((ids["jet2ID"] > 0) & ~even).sum())
    batch = splits.train.__getitems__([0, 5, 7])
    assert batch["particles"].shape == (3, 6, 8) and batch["mask"].dtype == torch.bool
    kw = splits.model_kwargs
    assert kw["num_particle_features"] == 8 and kw["num_features"] == 3 and len(kw["particle_std"]) == 8
    assert kw["input_spec"]["objects"] == ["jet1", "jet2"]


def test_particle_features_match_a_direct_computation(qg_spec, issue96):
    data = RootDataset({**qg_spec, "splits": {}})
    row = data[0]
    arrays = uproot.open(issue96)["tree"].arrays(["jet1TrksP4", "jet1P4", "jet1TrksChg"], entry_stop=1)
    p, j = arrays.jet1TrksP4[0], arrays.jet1P4[0]
    pt = np.hypot(np.asarray(p.fP.fX), np.asarray(p.fP.fY))
    order = np.argsort(-pt)
    assert int(row["entry"]) == 0 and int(row["object"]) == 0
    np.testing.assert_allclose(row["particles"][: len(pt), 2].numpy(), np.log(pt[order]), rtol=1e-5)
    np.testing.assert_allclose(row["particles"][: len(pt), 4].numpy(), np.log(pt[order] / np.hypot(j.fP.fX, j.fP.fY)),
                               rtol=1e-4)
    np.testing.assert_array_equal(row["particles"][: len(pt), 7].numpy(), np.asarray(arrays.jet1TrksChg[0])[order])
    assert bool(row["mask"][: len(pt)].all())


def test_truncation_keeps_the_leading_particles_by_pt(qg_spec):
    spec = {**qg_spec, "splits": {}, "particles": {**qg_spec["particles"], "max_particles": 2}}
    data, full = RootDataset(spec), RootDataset({**qg_spec, "splits": {}})
    log_pt_short = data.arrays["particles"][:, :, 2]
    log_pt_full = full.arrays["particles"][:, :, 2]
    real = full.arrays["mask"][:, :2]
    np.testing.assert_array_equal(log_pt_short[real], log_pt_full[:, :2][real])
    assert (np.diff(np.where(full.arrays["mask"], log_pt_full, -1e9), axis=1) <= 0).all()


@pytest.fixture
def flat_files(tmp_path):
    """Two small files written by uproot: a signal and a background sample with numbered jets and jagged muons."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, shift in (("signal", 1.0), ("background", 0.0)):
        n = 40
        counts = rng.integers(0, 4, n)
        muon_pt = ak.unflatten(rng.exponential(20, counts.sum()) + 5 + 10 * shift, counts)
        data = {"event": np.arange(n, dtype=np.int64), "w": rng.uniform(0.5, 1.5, n),
                "j1_pt": rng.exponential(50, n) + 30, "j1_eta": rng.normal(0, 1, n), "j1_phi": rng.uniform(-3, 3, n),
                "j2_pt": np.where(np.arange(n) % 3 == 0, 0.0, rng.exponential(30, n) + 20),
                "j2_eta": rng.normal(0, 1, n), "j2_phi": rng.uniform(-3, 3, n),
                "Muon_pt": muon_pt, "Muon_eta": ak.unflatten(rng.normal(0, 1, counts.sum()), counts),
                "Muon_phi": ak.unflatten(rng.uniform(-3, 3, counts.sum()), counts),
                "Muon_m": ak.unflatten(np.full(counts.sum(), 0.105), counts)}
        paths[name] = tmp_path / f"{name}.root"
        with uproot.recreate(paths[name]) as f:
            f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
            f["events"].extend(data)
    return paths


def test_label_from_file_weights_and_numbered_branches(flat_files):
    spec = RootSpec(files={"background": str(flat_files["background"]), "signal": str(flat_files["signal"])},
                    tree="events", weight="w", features={"ht": "j1_pt + j2_pt"},
                    particles={"p4": {"pt": "j{i}_pt", "eta": "j{i}_eta", "phi": "j{i}_phi", "mass": "0 * j{i}_pt"},
                               "numbered": 2, "max_particles": 2, "features": ["log_pt", "deta", "dphi"]})
    data = RootDataset(spec)
    assert len(data) == 80 and data.arrays["label"].tolist() == [0] * 40 + [1] * 40
    assert data.arrays["mask"][:, 0].all()
    np.testing.assert_array_equal(data.arrays["mask"][:40, 1], np.arange(40) % 3 != 0)
    w = uproot.open(flat_files["background"])["events"]["w"].array(library="np")
    np.testing.assert_allclose(data.arrays["weight"][:40], w, rtol=1e-6)


def test_jagged_muons_with_components_and_an_invariant_mass(flat_files):
    spec = RootSpec(files=str(flat_files["signal"]), tree="events", label="event % 2",
                    features={"n_muons": "num(Muon_pt)"},
                    particles={"p4": {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi", "mass": "Muon_m"},
                               "max_particles": 3, "features": ["log_pt", "pt_frac", "mass"]})
    data = RootDataset(spec)
    tree = uproot.open(flat_files["signal"])["events"]
    np.testing.assert_array_equal(data.arrays["mask"].sum(1), np.minimum(ak.num(tree["Muon_pt"].array()), 3))
    np.testing.assert_allclose(data.arrays["particles"][..., 2][data.arrays["mask"]], 0.105, rtol=1e-3)
    assert RootDataset({**vars(spec), "features": {"m": "where(num(Muon_pt) > 0, 1.0, 0.0)"}}).arrays["features"].shape == (40, 1)


def test_rntuple_reads_like_a_ttree(tmp_path, flat_files):
    data = uproot.open(flat_files["signal"])["events"].arrays(["event", "j1_pt", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_m"])
    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as f:
        f["events"] = data  # uproot >= 5.7 writes an RNTuple here
    assert "RNTuple" in uproot.open(path).classnames()["events;1"]
    kwargs = dict(tree="events", label="event % 2", features=["j1_pt"],
                  particles={"p4": {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi", "mass": "Muon_m"},
                             "max_particles": 3, "features": ["log_pt"]})
    a, b = RootDataset(dict(files=str(path), **kwargs)), RootDataset(dict(files=str(flat_files["signal"]), **kwargs))
    for key in ("particles", "mask", "features", "label"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])


def test_stream_yields_the_same_examples_in_a_shuffled_order(qg_spec):
    spec = {**qg_spec, "step_size": 3000}
    stream = RootStream(spec, "test", buffer_size=4000, seed=1)
    memory = RootDataset(spec, "test")
    loader = torch.utils.data.DataLoader(stream, batch_size=512, collate_fn=stream.collate, num_workers=2)
    rows = [(int(e), int(o)) for b in loader for e, o in zip(b["entry"], b["object"], strict=True)]
    want = list(zip(memory.arrays["entry"].tolist(), memory.arrays["object"].tolist(), strict=True))
    assert sorted(rows) == sorted(want) and rows != want and len(set(rows)) == len(rows)
    stream.set_epoch(1)
    first_epoch_order = rows[:50]
    again = [(int(e), int(o)) for b in torch.utils.data.DataLoader(stream, batch_size=512, collate_fn=stream.collate)
             for e, o in zip(b["entry"], b["object"], strict=True)]
    assert again[:50] != first_epoch_order


def _rows(batches):
    return [(int(e), int(o)) for b in batches for e, o in zip(b["entry"], b["object"], strict=True)]


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_batches_itself_like_the_loader_batches_its_rows(qg_spec, workers):
    """make_loader reads whole batches from the stream: same rows, order and boundaries, workers included."""
    stream = RootStream({**qg_spec, "step_size": 3000}, "train", buffer_size=4000, seed=1)
    stream.set_epoch(2)
    rows = torch.utils.data.DataLoader(stream, batch_size=500, collate_fn=stream.collate, num_workers=workers)
    loader = make_loader(stream, batch_size=500, train=True, seed=0, epoch=2, num_workers=workers)
    assert loader.batch_size is None
    want, got = list(rows), list(loader)
    assert [len(b["label"]) for b in got] == [len(b["label"]) for b in want]
    for a, b in zip(want, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    whole = _rows(got)
    assert len(set(whole)) == len(whole) == len(RootDataset(qg_spec, "train"))
    dropping = make_loader(stream, batch_size=500, train=True, seed=0, epoch=2, num_workers=workers, drop_last=True)
    assert _rows(dropping) == _rows(b for b in got if len(b["label"]) == 500)  # each worker drops its short batch


@pytest.mark.parametrize("workers", [0, 2])
def test_training_on_a_stream_resumes_exactly(tmp_path, qg_spec, workers):
    splits = make_splits({**qg_spec, "step_size": 2500}, streaming=True, buffer_size=3000)

    def run(max_steps, folder, resume=None):
        torch.manual_seed(0)
        model = torchsci.create_model("physics/pfn", **splits.model_kwargs, phi=[16, 16], head=[16])
        trainer = torchsci.Trainer(max_epochs=2, max_steps=max_steps, batch_size=256, lr=1e-3, device="cpu",
                                   num_workers=workers, run_dir=tmp_path / folder, verbose=False, tensorboard=False, progress=False)
        return trainer.fit(model, TaggingTask(), splits.train, resume=resume)

    full = run(None, "full")
    run(9, "part")
    resumed = run(None, "part", resume="last")
    assert torchsci.load_state(resumed.last_checkpoint)["progress"]["epoch"] == 2
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_missing_branch_lists_close_names(qg_spec):
    with pytest.raises(DataError, match=r"uproot-issue96.root: no branch named 'jet1IDD'.*jet1ID"):
        RootDataset({**qg_spec, "label": "jet1IDD == 21", "objects": None, "selection": None,
                     "features": {"m": "jet1ChgMult"}, "particles": None})


def test_wrong_tree_lists_the_trees(qg_spec):
    with pytest.raises(DataError, match=r"no tree named 'tre'.*Trees in this file: CollectionTree, tree"):
        RootDataset({**qg_spec, "tree": "tre"})


def test_missing_file_and_empty_glob(tmp_path, qg_spec):
    with pytest.raises(DataError, match="no ROOT file matches"):
        RootDataset({**qg_spec, "files": str(tmp_path / "nothing*.root")})


def test_truncated_file_names_the_file(tmp_path, issue96, qg_spec):
    bad = tmp_path / "truncated.root"
    bad.write_bytes(open(issue96, "rb").read()[: 2_000_000])
    with pytest.raises(DataError, match="truncated.root"):
        RootDataset({**qg_spec, "files": str(bad)})


def test_nan_input_names_the_feature_and_entry(qg_spec):
    with pytest.raises(DataError, match=r"input 'bad' is NaN or infinite.*first at entry"):
        RootDataset({**qg_spec, "features": {"bad": "log({obj}ChgMult - 100)"}})


def test_label_outside_the_classes(qg_spec):
    with pytest.raises(DataError, match=r"outside the 2 classes"):
        RootDataset({**qg_spec, "label": "{obj}ID"})


def test_empty_selection_and_empty_split(qg_spec):
    with pytest.raises(DataError, match="keeps no examples"):
        RootDataset({**qg_spec, "selection": "{obj}ID > 100"})
    with pytest.raises(DataError, match="selects no examples"):
        RootDataset({**qg_spec, "splits": {"train": "EventNumber < 0"}}, "train")


def test_wrong_types_and_bad_settings(qg_spec):
    with pytest.raises(DataError, match="one number per entry"):
        RootDataset({**qg_spec, "features": {"tracks": "{obj}TrksChg"}})
    with pytest.raises(ConfigError, match="not valid Python"):
        RootDataset({**qg_spec, "label": "{obj}ID =="})
    with pytest.raises(ConfigError, match="overlap"):
        RootDataset({**qg_spec, "splits": {"a": "EventNumber > 0", "b": "EventNumber % 2 == 0"}})
