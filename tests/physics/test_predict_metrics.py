"""Weighted metrics against sklearn, the tagging task through the Trainer, and scores back to ROOT."""

import math
import re

import numpy as np
import pytest
import torch
import uproot
from sklearn.metrics import roc_auc_score

import torchsci
from torchsci.cli import main
from torchsci_physics.metrics import ROCAUC, BackgroundRejection, background_rejection, roc_auc
from torchsci_physics.predict import write_friend_tree


def test_weighted_auc_and_rejection():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    s = rng.normal(labels, 1.0)
    scores = np.stack([1 - s, s], axis=1)
    w = rng.uniform(0.1, 2.0, 2000)
    assert roc_auc(labels, scores, w) == pytest.approx(roc_auc_score(labels, s, sample_weight=w))
    # 1/eps_B at eps_S = 0.5: the weighted background fraction above the weighted signal median
    order = np.argsort(-s[labels == 1])
    ws = w[labels == 1][order]
    cut = s[labels == 1][order][np.searchsorted(np.cumsum(ws) / ws.sum(), 0.5)]
    eps_b = w[(labels == 0) & (s >= cut)].sum() / w[labels == 0].sum()
    assert background_rejection(labels, scores, w, 0.5) == pytest.approx(1 / eps_b, rel=0.02)


def test_metric_objects_gather_batches_and_handle_multiclass():
    rng = np.random.default_rng(1)
    labels = torch.from_numpy(rng.integers(0, 3, 300))
    probs = torch.softmax(torch.randn(300, 3) + torch.nn.functional.one_hot(labels, 3), -1)
    auc, rej = ROCAUC(signal=None), BackgroundRejection(0.3, signal=2)
    for chunk in range(0, 300, 64):
        auc.update(probs[chunk:chunk + 64], labels[chunk:chunk + 64])
        rej.update(probs[chunk:chunk + 64], labels[chunk:chunk + 64])
    want = np.mean([roc_auc_score(labels.numpy() == c, probs[:, c].numpy()) for c in range(3)])
    assert auc.compute() == pytest.approx(want)
    assert rej.compute() == pytest.approx(background_rejection(labels.numpy(), probs.numpy(), None, 0.3, 2))
    assert math.isnan(roc_auc(np.zeros(4, int), np.random.rand(4, 2)))


def test_friend_tree_is_a_ttree_with_given_branches(tmp_path):
    out = write_friend_tree(tmp_path / "f.root", {"a": np.arange(5), "b": np.linspace(0, 1, 5).astype(np.float32)})
    f = uproot.open(out)
    assert f.classnames()["scores;1"] == "TTree"
    assert f["scores"]["a"].array(library="np").tolist() == [0, 1, 2, 3, 4]


def test_train_then_predict_cli_writes_an_entry_aligned_friend_tree(tmp_path, issue96, capsys):
    splits = torchsci.registry.create_dataset("physics/qg_issue96")
    torchsci.seed_everything(0)  # the initial weights must not depend on which tests ran before this one
    model = torchsci.create_model("physics/pfn", **splits.model_kwargs, phi=[16, 16], head=[16])
    trainer = torchsci.Trainer(max_epochs=1, max_steps=60, batch_size=256, device="cpu", run_dir=tmp_path / "run",
                               verbose=False, tensorboard=False)
    task = torchsci.registry.create_task("physics/tagging")
    run = trainer.fit(model, task, splits.train, splits.val)
    result = trainer.test(model, task, splits.test)
    assert result["test/auc"] > 0.7 and result["test/rejection@0.5"] > 2
    out = tmp_path / "scores.root"
    assert main(["physics", "predict", str(run.last_checkpoint), issue96, "-o", str(out),
                 "--observers", "EventNumber", "jet1ID"]) == 0
    friend = uproot.open(out)["scores"]
    source = uproot.open(issue96)["tree"]
    assert friend.num_entries == source.num_entries
    got = friend.arrays(library="np")
    np.testing.assert_array_equal(got["EventNumber"], source["EventNumber"].array(library="np"))
    np.testing.assert_array_equal(got["jet1ID"], source["jet1ID"].array(library="np"))
    np.testing.assert_allclose(got["jet1_score_quark"] + got["jet1_score_gluon"], 1.0, rtol=1e-5)
    assert not got["jet1_selected"][source["jet1ID"].array(library="np") < 0].any()
    # the same scores as predicting in Python from the reloaded checkpoint
    reloaded = torchsci.load_model(run.last_checkpoint)
    row = splits.test.__getitems__([0])
    entry, obj = int(row["entry"][0]), int(row["object"][0])
    with torch.no_grad():
        p = task.forward(reloaded.eval(), row).softmax(-1)[0, 1].item()
    assert got[f"jet{obj + 1}_score_gluon"][entry] == pytest.approx(p, rel=1e-5)


def _flat_jets(issue96, path, *, truth):
    """issue96's jets as flat branches in an uproot-written TTree; ``truth=False`` leaves out the ID branches."""
    a = uproot.open(issue96)["tree"].arrays(["EventNumber", "jet1P4", "jet1ChgMult", "jet1ID"], entry_stop=3000)
    p4 = a["jet1P4"]
    columns = {"event": a["EventNumber"].to_numpy().astype(np.int64),
               "jet1_pt": np.hypot(p4.fP.fX, p4.fP.fY).to_numpy(), "jet1_nch": a["jet1ChgMult"].to_numpy()}
    if truth:
        columns["jet1_id"] = a["jet1ID"].to_numpy()
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in columns.items()})
        f["events"].extend(columns)
    return columns


def test_predict_on_a_file_without_truth_branches_needs_no_selection(tmp_path, issue96, capsys):
    truth = _flat_jets(issue96, tmp_path / "mc.root", truth=True)
    data = _flat_jets(issue96, tmp_path / "data.root", truth=False)
    splits = torchsci.registry.create_dataset(
        "physics/root", files=str(tmp_path / "mc.root"), tree="events", objects=["jet1"],
        features={"log_pt": "log({obj}_pt)", "nch": "{obj}_nch"}, label="{obj}_id == 21", classes=["quark", "gluon"],
        selection="{obj}_id > 0", splits={"train": "event % 2 == 0", "test": "event % 2 == 1"})
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs)
    run = torchsci.Trainer(max_epochs=1, max_steps=3, batch_size=256, device="cpu", run_dir=tmp_path / "run",
                           verbose=False, tensorboard=False).fit(model, torchsci.registry.create_task("physics/tagging"),
                                                                 splits.train)
    out = tmp_path / "scores.root"
    assert main(["physics", "predict", str(run.last_checkpoint), str(tmp_path / "data.root"), "-o", str(out)]) == 2
    assert re.search(r"(?s)data\.root.*'jet1_id'.*training selection.*--no-selection", capsys.readouterr().err)
    assert main(["physics", "predict", str(run.last_checkpoint), str(tmp_path / "data.root"), "-o", str(out),
                 "--no-selection", "--observers", "event"]) == 0
    got = uproot.open(out)["scores"].arrays(library="np")
    assert sorted(got) == ["event", "jet1_score_gluon", "jet1_score_quark"]
    np.testing.assert_array_equal(got["event"], data["event"])
    np.testing.assert_allclose(got["jet1_score_quark"] + got["jet1_score_gluon"], 1.0, rtol=1e-5)
    # on the file with truth, scores do not depend on whether the selection is evaluated
    assert main(["physics", "predict", str(run.last_checkpoint), str(tmp_path / "mc.root"), "-o", str(out)]) == 0
    with_truth = uproot.open(out)["scores"].arrays(library="np")
    np.testing.assert_allclose(with_truth["jet1_score_gluon"], got["jet1_score_gluon"], rtol=1e-6)
    np.testing.assert_array_equal(with_truth["jet1_selected"], truth["jet1_id"] > 0)
