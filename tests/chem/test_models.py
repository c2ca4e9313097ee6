"""Models and task: conformance, permutation invariance, no leakage across molecules, masking, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

import torchsci
from torchsci import ConfigError, DataError
from torchsci.testing import check_model
from torchsci_chem.datasets import ESOL_TARGET, MoleculeDataset, SmilesCSVDataset, esol_path, split_dataset
from torchsci_chem.featurize import collate_graphs, featurize, mols_to_graphs
from torchsci_chem.models import DMPNN, FingerprintMLP, example_graph_inputs, select_molecules
from torchsci_chem.task import PropertyOutputs, PropertyTask

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "[Na+]", "C/C=C/Cl", "c1ccc2ccccc2c1", "OCC(N)C(=O)O"]


@pytest.mark.parametrize("readout", ["mean", "sum", "norm"])
def test_dmpnn_with_extra_features_passes_the_battery(readout):
    torch.manual_seed(0)
    inputs = (*example_graph_inputs(), torch.randn(3, 7))
    model = DMPNN(hidden=16, ffn_hidden=8, depth=2, readout=readout, extra_features=7, num_tasks=2,
                  target_mean=[1.0, -1.0], target_std=[2.0, 0.5], dropout=0.1)
    report = check_model(model, inputs, batch_of=select_molecules)
    assert {"batch_consistency", "non_contiguous", "float64", "backward", "export:pt2"} <= set(report.passed)


def test_renumbering_atoms_gives_the_same_prediction():
    torch.manual_seed(0)
    model = DMPNN(hidden=32, ffn_hidden=16).eval()
    mols = [Chem.MolFromSmiles(s) for s in SMILES]
    rng = np.random.default_rng(0)
    shuffled = [Chem.RenumberAtoms(m, rng.permutation(m.GetNumAtoms()).tolist()) for m in mols]
    with torch.no_grad():
        a = model(*collate_graphs(mols_to_graphs(mols)).inputs())
        b = model(*collate_graphs(mols_to_graphs(shuffled)).inputs())
    assert torch.allclose(a, b, atol=1e-5)


def test_molecules_in_a_batch_do_not_leak_into_each_other():
    torch.manual_seed(0)
    model = DMPNN(hidden=32, ffn_hidden=16).eval()
    with torch.no_grad():
        together = model(*collate_graphs(featurize(SMILES).graphs).inputs())
        other = model(*collate_graphs(featurize([SMILES[0], "CCCCCCCCCCO", *SMILES[2:]]).graphs).inputs())
        alone = torch.cat([model(*collate_graphs(featurize([s]).graphs).inputs()) for s in SMILES])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(together[[0, 2, 3, 4]], other[[0, 2, 3, 4]], atol=1e-5)
    assert not torch.allclose(together[1], other[1])


def test_predictions_come_back_in_original_units():
    torch.manual_seed(0)
    plain = DMPNN(hidden=8, ffn_hidden=8)
    scaled = DMPNN(hidden=8, ffn_hidden=8, target_mean=[10.0], target_std=[3.0])
    scaled.load_state_dict({**plain.state_dict(), "target_mean": torch.tensor([10.0]), "target_std": torch.tensor([3.0])})
    x = collate_graphs(featurize(SMILES).graphs).inputs()
    assert torch.allclose(scaled(*x), plain(*x) * 3 + 10)
    with pytest.raises(ConfigError, match="readout"):
        DMPNN(readout="max")
    with pytest.raises(ConfigError, match="extra features"):
        DMPNN(extra_features=3)(*x)


def test_masked_loss_ignores_missing_targets_and_their_gradients():
    task = PropertyTask()
    pred = torch.zeros(3, 2, requires_grad=True)
    target = torch.tensor([[1.0, float("nan")], [2.0, 4.0], [float("nan"), float("nan")]])
    loss = task.loss(PropertyOutputs(pred, torch.tensor([1.0, 2.0])), (None, target))
    assert float(loss.detach()) == pytest.approx((1 + 4 + 4) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0 and (pred.grad[2] == 0).all() and pred.grad[1, 1] != 0
    metrics = task.metrics()
    task.update_metrics(metrics, PropertyOutputs(pred.detach(), None), (None, target))
    assert metrics["rmse"].compute() == pytest.approx(np.sqrt((1 + 4 + 16) / 3))
    with pytest.raises(DataError, match="num_tasks=2"):
        task.loss(PropertyOutputs(torch.zeros(3, 1), None), (None, target))
    with pytest.raises(ConfigError):
        PropertyTask(kind="ranking")


def test_classification_task_auroc_with_missing_labels():
    task = PropertyTask(kind="classification")
    logits = torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.5, -2.0], [-3.0, 0.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 0.0], [0.0, float("nan")]])
    metrics = task.metrics()
    task.update_metrics(metrics, PropertyOutputs(logits, None), (None, labels))
    assert metrics["auroc"].compute() == pytest.approx(1.0)
    assert torch.allclose(task.predict(PropertyOutputs(logits, None), None), torch.sigmoid(logits))
    assert task.monitor == "val/auroc" and task.monitor_mode == "max"


def test_dmpnn_and_fingerprint_mlp_learn_esol_through_the_trainer(tmp_path):
    data = SmilesCSVDataset(esol_path(), "smiles", ESOL_TARGET, extra="morgan")
    small = data.subset(range(300))
    splits = split_dataset(small, "random", seed=0)
    task = PropertyTask()
    for name, kw in [("chem/dmpnn", {"hidden": 64, "ffn_hidden": 32}), ("chem/fingerprint_mlp", {"hidden": [64]})]:
        kwargs = dict(splits.model_kwargs)
        if name == "chem/dmpnn":  # the graph alone, no fingerprint before the head
            for key in ("extra_mean", "extra_std", "extra_features"):
                kwargs.pop(key)
        model = torchsci.create_model(name, **kw, **kwargs)
        assert isinstance(model, (DMPNN, FingerprintMLP))
        trainer = torchsci.Trainer(max_epochs=8, batch_size=32, lr=2e-3, device="cpu", run_dir=tmp_path / name,
                                   verbose=False, tensorboard=False)
        run = trainer.fit(model, task, splits.train, val_data=splits.val, collate_fn=splits.collate_fn)
        before = trainer.test(torchsci.create_model(name, **kw, **kwargs), task, splits.test, collate_fn=splits.collate_fn)
        after = trainer.test(run.model, task, splits.test, collate_fn=splits.collate_fn)
        assert after["test/rmse"] < before["test/rmse"], name
        preds = trainer.predict(run.model, task, splits.test, collate_fn=splits.collate_fn)
        assert preds.shape == (len(splits.test), 1)
        rebuilt = torchsci.load_model(run.last_checkpoint)
        assert torch.allclose(rebuilt.target_mean, run.model.target_mean)


def test_dataset_items_collate_into_graph_batches():
    ds = MoleculeDataset(featurize(SMILES[:3]).graphs, SMILES[:3], np.zeros((3, 1), np.float32))
    graph, y = ds.collate([ds[i] for i in range(3)])
    assert graph.num_molecules == 3 and y.shape == (3, 1)
    assert PropertyTask().batch_size((graph, y)) == 3


def test_mean_variance_estimation_head_and_gaussian_nll():
    torch.manual_seed(0)
    model = DMPNN(hidden=16, ffn_hidden=8, num_tasks=2, uncertainty="mve", target_mean=[1.0, 2.0], target_std=[2.0, 3.0])
    check_model(model, example_graph_inputs(), batch_of=select_molecules)
    out = model(*example_graph_inputs())
    assert out.shape == (3, 4) and (out[:, 2:] > 0).all()
    task = PropertyTask()
    outputs = task.forward(model, (collate_graphs(featurize(SMILES[:3]).graphs), None))
    assert outputs.prediction.shape == (3, 2) and outputs.variance.shape == (3, 2)
    # standardised residual 1 with standardised variance 1 -> 0.5 * (log 1 + 1) = 0.5
    nll = task.loss(PropertyOutputs(torch.tensor([[3.0]]), torch.tensor([2.0]), torch.tensor([[4.0]])),
                    (None, torch.tensor([[1.0]])))
    assert float(nll) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="uncertainty"):
        DMPNN(uncertainty="evidential")


def test_the_ensemble_factory_declares_every_argument_a_config_may_set():
    # calibration_size / domain_size (the shipped models' conformal and domain buffers) were hidden behind **kwargs
    # before, so a config could not set them and a typo of them was not caught
    from torchsci.config import _check_kwargs
    from torchsci.registry import registry

    factory = registry.model_entry("chem/dmpnn_ensemble").factory
    _check_kwargs(factory, {"members": 2, "calibration_size": 10, "domain_size": 5, "hidden": 64}, "model")
    with pytest.raises(ConfigError, match="Did you mean calibration_size"):
        _check_kwargs(factory, {"calibraton_size": 10}, "model")
    model = factory(members=2, calibration_size=10, hidden=32)
    assert model.conformal_scores.shape == (10,)


def _reference_encode(net: DMPNN, atoms, bonds, edge_index, molecule, molecule_sizes) -> torch.Tensor:
    """The D-MPNN's encoder written out plainly (reverse edges by a flip of the (2i, 2i+1) pairs, no in-place ops)."""
    src, dst = edge_index
    h0 = net.w_i(torch.cat([atoms[src], bonds], dim=1))
    h = torch.relu(h0)
    for _ in range(net.depth - 1):
        into_atom = torch.zeros(atoms.shape[0], net.hidden, dtype=h.dtype).index_add(0, dst, h)
        h = torch.relu(net.w_h(into_atom[src] - h.view(-1, 2, net.hidden).flip(1).reshape(-1, net.hidden)) + h0)
    into_atom = torch.zeros(atoms.shape[0], net.hidden, dtype=h.dtype).index_add(0, dst, h)
    atom_h = torch.relu(net.w_o(torch.cat([atoms, into_atom], dim=1)))
    pooled = torch.zeros(molecule_sizes.shape[0], net.hidden, dtype=h.dtype).index_add(0, molecule, atom_h)
    return pooled / molecule_sizes.clamp_min(1).unsqueeze(1).to(pooled.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_message_passing_forms_with_and_without_autograd_are_bitwise_the_plain_formula(dtype):
    torch.manual_seed(3)
    net = DMPNN(hidden=37, depth=4).to(dtype)
    batch = collate_graphs(featurize(["CCO", "c1ccccc1C(=O)N", "[Na+]", "C1CC1C#N", "OC(F)(F)C(Cl)Br"]).graphs)
    inputs = [t.to(dtype) if t.is_floating_point() else t for t in batch.inputs()]
    with torch.no_grad():
        reference = _reference_encode(net, *inputs)
    with torch.inference_mode():  # the in-place halves
        inferred = net.encode(*inputs)
    trained = net.encode(*inputs)  # the gather by reverse index, with autograd
    assert trained.requires_grad
    assert torch.equal(inferred, reference) and torch.equal(trained.detach(), reference)
    trained.sum().backward()
    reference_net = DMPNN(hidden=37, depth=4).to(dtype)
    reference_net.load_state_dict(net.state_dict())
    _reference_encode(reference_net, *inputs).sum().backward()
    for (name, p), q in zip(net.named_parameters(), reference_net.parameters(), strict=True):
        if p.grad is not None or q.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name
