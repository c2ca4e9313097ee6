"""Models that learn pair invariant masses: a generated ntuple whose class is one pair's mass among four
jets in random order (written by uproot), unit-robust pair features, conformance and ONNX export."""

import numpy as np
import pytest
import torch
import uproot

import torchsci
from torchsci.testing import check_model
from torchsci_physics.data import make_splits
from torchsci_physics.interaction import PairInteractionNetwork
from torchsci_physics.models import ParticleTransformer, example_particles
from torchsci_physics.pairs import PairNorm, pair_mask, pairwise_features
from torchsci_physics.task import TaggingTask
from torchsci_physics.toys import resonance_events, write_resonance_ntuple

JETS = {"px": "jet_px", "py": "jet_py", "pz": "jet_pz", "E": "jet_E"}


def _spec(path):
    return dict(files=str(path), tree="events", label="is_signal", weight="mc_weight",
                particles=dict(p4=JETS, max_particles=4, features=["log_pt", "log_energy", "deta", "dphi"]),
                splits={"train": "event_number % 4 != 0", "test": "event_number % 4 == 0"})


@pytest.fixture(scope="module")
def resonance_splits(tmp_path_factory):
    path = write_resonance_ntuple(tmp_path_factory.mktemp("toy") / "resonance.root", 4000, objects=4, seed=3)
    return make_splits(_spec(path))


def _test_auc(name, splits, tmp_path, **kw):
    torchsci.seed_everything(0)
    model = torchsci.create_model(name, **splits.model_kwargs, **kw)
    trainer = torchsci.Trainer(max_epochs=15, batch_size=128, lr=3e-3, scheduler="cosine", device="cpu",
                               run_dir=tmp_path / name.replace("/", "_"), verbose=False, tensorboard=False, progress=False)
    task = TaggingTask()
    trainer.fit(model, task, splits.train)
    return trainer.test(model, task, splits.test)["test/auc"]


def test_the_generated_class_depends_only_on_one_pair_mass(tmp_path):
    events = resonance_events(2000, objects=4, seed=5)
    path = write_resonance_ntuple(tmp_path / "r.root", 2000, objects=4, seed=5)
    tree = uproot.open(path)["events"].arrays(library="ak")
    np.testing.assert_allclose(np.asarray(tree["jet_px"][:, 2]), events["jet_px"][:, 2], rtol=1e-6)
    px, py, pz, e = (events[k].astype(np.float64) for k in ("jet_px", "jet_py", "jet_pz", "jet_E"))
    masses = [np.sqrt(np.maximum((e[:, i] + e[:, j]) ** 2 - (px[:, i] + px[:, j]) ** 2 - (py[:, i] + py[:, j]) ** 2
                                 - (pz[:, i] + pz[:, j]) ** 2, 0)) for i in range(4) for j in range(i + 1, 4)]
    closest = np.min(np.abs(np.stack(masses, 1) - events["true_mass"][:, None]), axis=1)
    assert np.quantile(closest, 0.99) < 0.05  # some pair is the parent, wherever it sits in the list
    signal = events["is_signal"] == 1
    assert abs(events["true_mass"][signal].mean() - 125) < 0.5 and events["true_mass"][~signal].std() > 50


# two tests, not one: each trains a model, and each stays within the per-test timeout on a loaded machine
def test_pairnet_learns_one_pair_mass(resonance_splits, tmp_path):
    pairnet = _test_auc("physics/pairnet", resonance_splits, tmp_path, dim=32, pair_widths=(32, 32), message=(32, 32))
    assert pairnet >= 0.95, f"pairnet AUC {pairnet:.3f}"


def test_a_deep_set_does_not_learn_one_pair_mass(resonance_splits, tmp_path):
    deep_set = _test_auc("physics/pfn", resonance_splits, tmp_path)
    assert deep_set < 0.9, f"the Deep Set reached {deep_set:.3f}: the data no longer needs pair masses"


@pytest.mark.parametrize("make", [
    lambda: PairInteractionNetwork(num_particle_features=7, dim=16, pair_widths=(16,), message=(16,), rounds=2),
    lambda: ParticleTransformer(num_particle_features=7, dim=16, heads=2, blocks=1),
], ids=["pairnet", "part"])
def test_pair_features_give_the_same_output_in_gev_and_mev(make):
    particles, mask, vectors = example_particles(with_vectors=True)
    gev, mev = make(), make()
    mev.load_state_dict(gev.state_dict())
    # training mode: batch statistics; then evaluation with the running statistics each batch left behind
    torch.testing.assert_close(mev(particles, mask, 1000 * vectors), gev(particles, mask, vectors), atol=2e-4, rtol=1e-4)
    gev.eval(), mev.eval()
    with torch.no_grad():
        torch.testing.assert_close(mev(particles, mask, 1000 * vectors), gev(particles, mask, vectors), atol=2e-4,
                                   rtol=1e-4)
        raw = pairwise_features(1000 * vectors) - pairwise_features(vectors)
    assert raw[..., 3][pair_mask(mask)].mean() == pytest.approx(2 * np.log(1000), rel=1e-3)  # the shift it removes


def test_pair_norm_ignores_padded_pairs_and_empty_batches():
    norm = PairNorm(4)
    pairs, mask = torch.randn(3, 5, 5, 4) * 2 + 5, torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2:] = False
    valid = pair_mask(mask)
    garbage = torch.where(valid.unsqueeze(-1), pairs, torch.full_like(pairs, 1e6))
    out = norm(garbage, valid)
    torch.testing.assert_close(out[valid].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    assert (out[~valid] == 0).all()
    torch.testing.assert_close(norm.running_mean, pairs[valid].mean(0))  # the first batch sets them exactly
    before = norm.running_mean.clone()
    norm(pairs, torch.zeros(3, 5, 5, dtype=torch.bool))  # no real pair: statistics untouched, output finite
    torch.testing.assert_close(norm.running_mean, before)


def test_pairnet_conformance_and_onnx_with_a_dynamic_number_of_objects(tmp_path):
    torch.manual_seed(0)
    model = PairInteractionNetwork(num_particle_features=7, num_features=2, num_classes=3, dim=16, pair_widths=(16, 16),
                                   message=(16,), particle_mean=[0.5] * 7, particle_std=[2.0] * 7,
                                   feature_mean=[1.0, -1.0], feature_std=[3.0, 0.5])
    inputs = (*example_particles(with_vectors=True), torch.randn(3, 2))
    report = check_model(model, inputs, exports=("pt2", "onnx"))
    assert {"non_contiguous", "batch_consistency", "float64", "backward", "export:pt2", "export:onnx"} <= set(report.passed)
    result = torchsci.export(model.eval(), inputs, format="onnx", path=tmp_path / "pairnet.onnx")
    assert "input 0 dim 1" in result.report.dynamic_dims and result.report.max_abs_diff < 1e-4
