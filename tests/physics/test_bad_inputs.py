"""Bad inputs to ``torchsci physics predict``: one clear line each, every input file unchanged; and event weights
as NLO samples have them (15% negative) in training and metrics, without a crash.

The corpus is written in the test: flat TTrees by uproot, a tagger trained on one by the Trainer, and a
checkpoint of another field.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import uproot
from sklearn.metrics import roc_auc_score

import torchsci
from tests.badinput import assert_one_clear_line, checksums, run_cli
from torchsci_physics.metrics import ROCAUC, background_rejection, roc_auc


def _events(path: Path, n: int = 2000, negative: float = 0.15, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    columns = {"event": np.arange(n, dtype=np.int64), "jet_pt": rng.exponential(50.0, n) + 20.0,
               "jet_nch": rng.poisson(10 + 6 * label).astype(np.float64), "is_gluon": label.astype(np.int64),
               "weight": np.where(rng.random(n) < negative, -1.0, 1.0) * rng.uniform(0.5, 1.5, n)}
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in columns.items()})
        f["events"].extend(columns)
    return columns


SPEC = dict(tree="events", features={"log_pt": "log(jet_pt)", "nch": "jet_nch"}, label="is_gluon",
            classes=["quark", "gluon"], weight="weight", splits={"train": "event % 2 == 0", "val": "event % 2 == 1"})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("physics_corpus")
    _events(root / "nlo.root")
    (root / "nlo_link.root").symlink_to(root / "nlo.root")
    (root / "not_root.root").write_text("event,jet_pt\n1,30.0\n")
    splits = torchsci.registry.create_dataset("physics/root", files=str(root / "nlo.root"), **SPEC)
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs)
    run = torchsci.Trainer(max_epochs=1, batch_size=256, device="cpu", run_dir=root / "run", verbose=False,
                           tensorboard=False).fit(model, torchsci.registry.create_task("physics/tagging"),
                                                  splits.train, splits.val)
    os.replace(run.last_checkpoint, root / "tagger.ckpt")
    data = torch.utils.data.TensorDataset(torch.randn(16, 5), torch.randn(16, 1))
    run = torchsci.Trainer(max_epochs=1, batch_size=8, run_dir=root / "core_run", verbose=False, tensorboard=False
                           ).fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), data)
    os.replace(run.last_checkpoint, root / "core_mlp.ckpt")
    return root


CASES = {
    "output_is_the_input": (["{root}/tagger.ckpt", "{root}/nlo.root", "-o", "{root}/nlo.root"],
                            ["nlo.root", "also an input"]),
    "output_is_a_symlink_to_the_input": (["{root}/tagger.ckpt", "{root}/nlo.root", "-o", "{root}/nlo_link.root"],
                                         ["nlo_link.root", "also an input"]),
    "output_is_the_checkpoint": (["{root}/tagger.ckpt", "{root}/nlo.root", "-o", "{root}/tagger.ckpt"],
                                 ["tagger.ckpt", "also an input"]),
    "output_not_root": (["{root}/tagger.ckpt", "{root}/nlo.root", "-o", "{out}/scores.csv"], ["scores.csv", ".root"]),
    "output_is_a_folder": (["{root}/tagger.ckpt", "{root}/nlo.root", "-o", "{out}"], ["is a folder"]),
    "checkpoint_of_another_field": (["{root}/core_mlp.ckpt", "{root}/nlo.root", "-o", "{out}/scores.root"],
                                    ["core_mlp.ckpt", "core/mlp", "physics model"]),
    "input_not_a_root_file": (["{root}/tagger.ckpt", "{root}/not_root.root", "-o", "{out}/scores.root"],
                              ["not_root.root"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(case, corpus, tmp_path, capsys):
    args, needles = CASES[case]
    args = [a.format(root=corpus, out=tmp_path) for a in args]
    before = checksums([corpus])
    code, err = run_cli(["physics", "predict", *args], capsys)
    assert_one_clear_line(code, err, *needles)
    assert checksums([corpus]) == before
    assert list(tmp_path.iterdir()) == []


def test_predict_writes_a_new_friend_file_and_keeps_the_input_trees(corpus, tmp_path, capsys):
    before = checksums([corpus])
    code, err = run_cli(["physics", "predict", corpus / "tagger.ckpt", corpus / "nlo.root", "-o",
                         tmp_path / "scores.root"], capsys)
    assert code == 0, err
    assert checksums([corpus]) == before
    assert uproot.open(corpus / "nlo.root").keys() == ["events;1"]
    assert uproot.open(tmp_path / "scores.root")["scores"].num_entries == 2000
    assert [p.name for p in tmp_path.iterdir()] == ["scores.root"]  # no temporary file left behind


# ------------------------------------------------------------------------------------------ negative weights
def _pairwise_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """The weighted P(signal scores above background), ties half, by brute force over all pairs."""
    sig, bkg = y == 1, y == 0
    above = (s[sig][:, None] > s[bkg][None, :]) + 0.5 * (s[sig][:, None] == s[bkg][None, :])
    return float((w[sig][:, None] * w[bkg][None, :] * above).sum() / (w[sig].sum() * w[bkg].sum()))


def test_auc_with_15_percent_negative_weights_is_the_signed_pairwise_probability(tmp_path):
    columns = _events(tmp_path / "e.root", n=600)
    y, w = columns["is_gluon"], columns["weight"]
    assert 0.10 < (w < 0).mean() < 0.20
    s = np.round(columns["jet_nch"] / 30 + np.random.default_rng(1).normal(0, 0.1, len(y)), 2)  # with ties
    scores = np.stack([1 - s, s], 1)
    assert roc_auc(y, scores, w) == pytest.approx(_pairwise_auc(y, s, w), rel=1e-9)
    assert roc_auc(y, scores, np.abs(w)) == pytest.approx(roc_auc_score(y, s, sample_weight=np.abs(w)), rel=1e-9)
    assert np.isfinite(background_rejection(y, scores, w, 0.5))
    metric = ROCAUC()
    metric.update(torch.as_tensor(scores), torch.as_tensor(y), torch.as_tensor(w))
    assert metric.compute() == pytest.approx(_pairwise_auc(y, s, w), rel=1e-9)


def test_training_on_nlo_weights_validates_without_a_crash(corpus, tmp_path):
    splits = torchsci.registry.create_dataset("physics/root", files=str(corpus / "nlo.root"), **SPEC)
    result = torchsci.Trainer(max_epochs=1, batch_size=256, device="cpu", verbose=False, tensorboard=False,
                              run_dir=tmp_path).fit(
        torchsci.create_model("physics/mlp", **splits.model_kwargs), torchsci.registry.create_task("physics/tagging"),
        splits.train, splits.val)
    assert 0.5 < result.history[-1]["val/auc"] < 1.0
