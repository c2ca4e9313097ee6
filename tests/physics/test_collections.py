"""Several named particle collections per example: tracks and towers read from one ROOT tree, padded
separately, embedded per collection and processed jointly by PFN, ParticleNet and ParT."""

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci.errors import ConfigError, DataError
from torchsci.testing import check_model
from torchsci_physics.data import RootDataset, RootSpec, make_splits
from torchsci_physics.models import ParticleFlowNetwork, ParticleNet, ParticleTransformer
from torchsci_physics.predict import predict_root
from torchsci_physics.task import TaggingTask


@pytest.fixture(scope="module")
def tracks_and_towers(tmp_path_factory):
    """A tree written by uproot with two jagged collections (tracks: pt/eta/phi/charge, towers: pt/eta/phi/E).

    Signal events have harder tracks and more towers, so a model that reads both can learn the label.
    """
    rng = np.random.default_rng(0)
    n = 301
    signal = (np.arange(n) % 2).astype(np.int32)
    n_tracks = rng.integers(0, 9, n) + 2 * signal
    n_towers = rng.integers(1, 5, n) + 3 * signal
    t, w = int(n_tracks.sum()), int(n_towers.sum())
    track_pt = rng.exponential(10, t) + 1 + 10 * np.repeat(signal, n_tracks)
    data = {
        "event": np.arange(n, dtype=np.int64), "is_signal": signal,
        "Track_pt": ak.unflatten(track_pt, n_tracks), "Track_eta": ak.unflatten(rng.normal(0, 0.3, t), n_tracks),
        "Track_phi": ak.unflatten(rng.normal(0, 0.3, t), n_tracks),
        "Track_mass": ak.unflatten(np.full(t, 0.1396), n_tracks),
        "Track_charge": ak.unflatten(rng.choice([-1.0, 1.0], t), n_tracks),
        "Tower_pt": ak.unflatten(rng.exponential(5, w) + 0.5, n_towers),
        "Tower_eta": ak.unflatten(rng.normal(0, 0.4, w), n_towers),
        "Tower_phi": ak.unflatten(rng.normal(0, 0.4, w), n_towers),
        "Tower_mass": ak.unflatten(np.zeros(w), n_towers),
        # two jets as numbered flat branches; the second is absent (pt 0) in every third event
        "J1_pt": rng.exponential(50, n) + 30, "J1_eta": rng.normal(0, 1, n), "J1_phi": rng.uniform(-3, 3, n),
        "J2_pt": np.where(np.arange(n) % 3 == 0, 0.0, rng.exponential(30, n) + 20),
        "J2_eta": rng.normal(0, 1, n), "J2_phi": rng.uniform(-3, 3, n), "J_m": np.full(n, 5.0),
    }
    path = tmp_path_factory.mktemp("collections") / "jets.root"
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        f["jets"].extend(data)
    return path


def _spec(path, **overrides):
    spec = dict(
        files=str(path), tree="jets", label="is_signal", classes=["background", "signal"],
        features={"n_tracks": "num(Track_pt, axis=1)"},
        particles={
            "tracks": {"p4": {"pt": "Track_pt", "eta": "Track_eta", "phi": "Track_phi", "mass": "Track_mass"},
                       "max_particles": 5, "features": {"log_pt": "log_pt", "deta": "deta", "dphi": "dphi",
                                                        "charge": "Track_charge"}},
            "towers": {"p4": {"pt": "Tower_pt", "eta": "Tower_eta", "phi": "Tower_phi", "mass": "Tower_mass"},
                       "max_particles": 3, "features": ["log_pt", "log_energy", "dR"]},
        },
        splits={"train": "event % 3 != 0", "test": "event % 3 == 0"})
    spec.update(overrides)
    return spec


def test_each_collection_is_padded_to_its_own_length(tracks_and_towers):
    data = RootDataset(_spec(tracks_and_towers))
    batch = data[:]
    assert batch["particles.tracks"].shape == (301, 5, 4) and batch["particles.towers"].shape == (301, 3, 3)
    assert batch["points.towers"].shape == (301, 3, 2) and batch["vectors.tracks"].shape == (301, 5, 4)
    assert "particles" not in batch and "mask" not in batch
    tree = uproot.open(tracks_and_towers)["jets"]
    track_pt = tree["Track_pt"].array()
    n_towers = ak.to_numpy(ak.num(tree["Tower_pt"].array()))
    np.testing.assert_array_equal(batch["mask.tracks"].sum(1).numpy(), np.minimum(ak.to_numpy(ak.num(track_pt)), 5))
    np.testing.assert_array_equal(batch["mask.towers"].sum(1).numpy(), np.minimum(n_towers, 3))
    # the leading tracks by pT, highest first, truncated to 5: each collection keeps its own leaders
    leading = ak.to_numpy(ak.fill_none(ak.pad_none(ak.sort(track_pt, ascending=False)[:, :5], 5, clip=True), 1.0))
    np.testing.assert_allclose(batch["particles.tracks"][..., 0].numpy(),
                               np.where(batch["mask.tracks"].numpy(), np.log(leading), 0), rtol=1e-5)
    assert RootSpec(**_spec(tracks_and_towers)).input_spec()["particles"]["towers"]["max_particles"] == 3


def test_standardisation_and_widths_are_per_collection(tracks_and_towers):
    splits = make_splits(_spec(tracks_and_towers))
    kw = splits.model_kwargs
    assert kw["num_particle_features"] == {"tracks": 4, "towers": 3}
    assert set(kw["particle_mean"]) == {"tracks", "towers"} and len(kw["particle_std"]["towers"]) == 3
    real = splits.train.arrays["particles.towers"][splits.train.arrays["mask.towers"]]
    np.testing.assert_allclose(kw["particle_mean"]["towers"], real.mean(0), rtol=1e-4)


def test_missing_branch_in_the_second_collection_names_the_file_and_close_branches(tracks_and_towers):
    spec = _spec(tracks_and_towers)
    spec["particles"]["towers"]["p4"]["eta"] = "Tower_etaa"
    with pytest.raises(DataError, match=r"jets.root: no branch named 'Tower_etaa'.*Tower_eta"):
        RootDataset(spec)


def test_numbered_branches_as_a_second_collection(tracks_and_towers):
    spec = _spec(tracks_and_towers)
    spec["particles"]["jets"] = {"p4": {"pt": "J{i}_pt", "eta": "J{i}_eta", "phi": "J{i}_phi", "mass": "J_m"},
                                 "numbered": 2, "max_particles": 2, "features": ["log_pt", "eta"]}
    batch = RootDataset(spec)[:]
    np.testing.assert_array_equal(batch["mask.jets"].sum(1).numpy(), np.where(np.arange(301) % 3 == 0, 1, 2))
    tree = uproot.open(tracks_and_towers)["jets"]
    np.testing.assert_allclose(batch["particles.jets"][:, 0, 1].numpy(),
                               np.where(tree["J1_pt"].array(library="np") >= tree["J2_pt"].array(library="np"),
                                        tree["J1_eta"].array(library="np"), tree["J2_eta"].array(library="np")),
                               rtol=1e-5)
    assert batch["particles.tracks"].shape == (301, 5, 4)


def test_nan_in_the_second_collection_names_it(tracks_and_towers):
    spec = _spec(tracks_and_towers)
    spec["particles"]["towers"]["features"] = {"log_pt": "log_pt", "bad": "log(Tower_pt - 3)"}
    with pytest.raises(DataError, match=r"jets.root: particle \(collection 'towers'\) input 'bad' is NaN"):
        RootDataset(spec)


@pytest.mark.parametrize("bad", [{"my-towers": {"p4": "x"}}, {"towers": 3}, {}])
def test_bad_collection_settings_are_config_errors(tracks_and_towers, bad):
    with pytest.raises(ConfigError, match="particles"):
        RootSpec(**_spec(tracks_and_towers, particles=bad))


def test_the_stream_yields_every_collection(tracks_and_towers):
    splits = make_splits(_spec(tracks_and_towers, step_size=50), streaming=True, buffer_size=64)
    rows = sum(len(b["entry"]) for b in splits.train.batched(32))
    assert rows == len(make_splits(_spec(tracks_and_towers)).train)
    first = next(iter(splits.train.batched(32)))
    assert first["particles.towers"].shape[1:] == (3, 3) and first["mask.tracks"].shape[1:] == (5,)


def test_one_model_trains_on_both_collections_and_predicts_back_to_root(tmp_path, tracks_and_towers):
    splits = make_splits(_spec(tracks_and_towers))
    torchsci.seed_everything(0)
    model = torchsci.create_model("physics/pfn", **splits.model_kwargs, phi=[32, 32], head=[32])
    assert model.collections == ("tracks", "towers")
    trainer = torchsci.Trainer(max_epochs=15, batch_size=32, lr=3e-3, device="cpu", run_dir=tmp_path / "run",
                               verbose=False, tensorboard=False)
    task = TaggingTask()
    run = trainer.fit(model, task, splits.train, splits.test)
    assert trainer.test(model, task, splits.test)["test/auc"] > 0.9
    reloaded = torchsci.load_model(run.last_checkpoint).eval()
    out = predict_root(reloaded, tracks_and_towers, tmp_path / "scores.root", observers=["event"])
    scores = uproot.open(out)["scores"].arrays(library="np")
    assert len(scores["event"]) == 301
    row = splits.test[:1]
    with torch.no_grad():
        want = task.forward(model.eval(), row).softmax(-1)[0, 1].item()
    assert scores["score_signal"][int(row["entry"][0])] == pytest.approx(want, rel=1e-5)


def test_the_experiment_config_reaches_several_collections(tmp_path):
    import pathlib

    config_dir = pathlib.Path(__file__).resolve().parents[2] / "configs"
    cfg = torchsci.compose(["experiment=physics/qg_two_collections", "trainer=smoke", "trainer.tensorboard=false",
                            "trainer.verbose=false", f"run_dir={tmp_path}", f"hydra.searchpath=[file://{config_dir}]"])
    assert set(cfg.data.particles) == {"leading", "second"}
    result = torchsci.run(cfg)
    assert 0.0 <= result["test"]["test/auc"] <= 1.0


# ---------------------------------------------------------------------------------------------- models
MODELS = {
    "pfn": (lambda **kw: ParticleFlowNetwork(phi=(16, 16), head=(16,), **kw), None),
    "particlenet": (lambda **kw: ParticleNet(k=3, blocks=((16, 16), (16,)), **kw), "points"),
    "part": (lambda **kw: ParticleTransformer(dim=16, heads=2, blocks=2, **kw), "vectors"),
}
WIDTHS = {"tracks": 4, "towers": 3}


def _collections(extra: str | None, batch: int = 3, dtype=torch.float32):
    """Tracks (length 7) and towers (length 5) with odd counts: one jet without towers, one with one track."""
    g = torch.Generator().manual_seed(0)
    lengths, counts = {"tracks": 7, "towers": 5}, {"tracks": [7, 1, 4], "towers": [2, 0, 5]}
    particles, mask, more = {}, {}, {}
    for name, length in lengths.items():
        particles[name] = torch.randn(batch, length, WIDTHS[name], generator=g, dtype=dtype)
        mask[name] = torch.arange(length) < torch.tensor(counts[name][:batch]).unsqueeze(1)
        if extra == "points":
            more[name] = 0.3 * torch.randn(batch, length, 2, generator=g, dtype=dtype)
        elif extra == "vectors":
            p3 = 20 * torch.randn(batch, length, 3, generator=g, dtype=dtype)
            more[name] = torch.cat([p3, p3.norm(dim=-1, keepdim=True) * 1.01 + 0.1], dim=-1)
    return (particles, mask, more) if extra else (particles, mask)


def _make(name):
    torch.manual_seed(0)
    make, extra = MODELS[name]
    return make(num_particle_features=WIDTHS, particle_mean={"tracks": [0.5] * 4}, particle_std={"tracks": [2.0] * 4},
                dropout=0.0).eval(), extra


@pytest.mark.parametrize("name", MODELS)
def test_conformance_with_two_collections(name):
    model, extra = _make(name)
    report = check_model(model, _collections(extra), exports=("pt2", "onnx"))
    assert {"non_contiguous", "float64", "backward", "batch_consistency", "export:pt2", "export:onnx"} <= set(report.passed)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("garbled", ["tracks", "towers"])
def test_padded_entries_of_either_collection_never_change_the_output(name, garbled):
    model, extra = _make(name)
    inputs = _collections(extra)
    with torch.no_grad():
        want = model(*inputs)
        g = torch.Generator().manual_seed(1)
        mask = inputs[1][garbled]
        grown_mask = torch.cat([mask, torch.zeros(mask.shape[0], 3, dtype=torch.bool)], dim=1)
        changed = []
        for group in inputs:
            group = dict(group)
            t = group[garbled]
            if t.dtype == torch.bool:
                group[garbled] = grown_mask
            else:
                bigger = torch.cat([t, torch.zeros(t.shape[0], 3, t.shape[-1])], dim=1)
                noise = 50 * torch.randn(bigger.shape, generator=g)
                group[garbled] = torch.where(grown_mask.unsqueeze(-1), bigger, noise)
            changed.append(group)
        torch.testing.assert_close(model(*changed), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shuffled", ["tracks", "towers"])
def test_output_is_invariant_to_the_order_within_a_collection(name, shuffled):
    model, extra = _make(name)
    inputs = _collections(extra)
    order = torch.randperm(inputs[1][shuffled].shape[1], generator=torch.Generator().manual_seed(2))
    permuted = [{k: (v[:, order] if k == shuffled else v) for k, v in group.items()} for group in inputs]
    with torch.no_grad():
        torch.testing.assert_close(model(*permuted), model(*inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_batch_of_one_float64_and_gradients_reach_both_embeddings(name):
    model, extra = _make(name)
    model = model.double().train()
    inputs = _collections(extra, batch=1, dtype=torch.float64)
    out = model(*inputs)
    assert out.shape == (1, 2) and out.dtype == torch.float64 and torch.isfinite(out).all()
    out.sum().backward()
    for n in WIDTHS:
        assert model.collection_embed.embeds[n].weight.grad.abs().sum() > 0
    assert model.collection_embed.kind.grad.abs().sum() > 0


def test_the_collection_type_embedding_tells_collections_apart():
    """The same particle as a track or as a tower gives different outputs (same widths, so only the type differs)."""
    torch.manual_seed(0)
    model = ParticleFlowNetwork(num_particle_features={"tracks": 3, "towers": 3}, phi=(8,), head=(8,)).eval()
    # the same linear map for both: only the type embedding differs
    model.collection_embed.embeds.towers.load_state_dict(model.collection_embed.embeds.tracks.state_dict())
    x = torch.randn(1, 1, 3)
    one, none = torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool)
    with torch.no_grad():
        as_track = model({"tracks": x, "towers": x}, {"tracks": one, "towers": none})
        as_tower = model({"tracks": x, "towers": x}, {"tracks": none, "towers": one})
    assert not torch.allclose(as_track, as_tower)


def test_a_missing_collection_is_named():
    model = ParticleFlowNetwork(num_particle_features=WIDTHS)
    particles, mask = _collections(None)
    with pytest.raises(ValueError, match=r"lacks collection\(s\) \['towers'\]"):
        model({"tracks": particles["tracks"]}, mask)
