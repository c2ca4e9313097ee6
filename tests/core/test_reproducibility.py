"""A Python run repeats bit for bit, as a CLI run does: ``create_model(..., seed=)`` then ``Trainer(seed=).fit``.

Regression for issue 11's reproducibility bug: the Trainer seeds when ``fit`` starts, after the model's
weights were drawn from whatever the global random state was, so two runs of a lab script differed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import torchsci


def _fit(tmp_path: Path, name: str, seed: int | None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(64, 5, generator=g), torch.randn(64, 1, generator=g))
    model = torchsci.create_model("core/mlp", in_features=5, out_features=1, hidden=[16, 16], dropout=0.2, seed=seed)
    trainer = torchsci.Trainer(max_epochs=2, batch_size=8, seed=0, device="cpu", run_dir=tmp_path / name,
                               verbose=False, tensorboard=False, progress=False)
    trainer.fit(model, torchsci.RegressionTask(), data)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_create_model_with_a_seed_then_fit_gives_identical_weights(tmp_path):
    first = _fit(tmp_path, "a", seed=0)
    torch.randn(1000)  # whatever ran before in the session must not matter
    second = _fit(tmp_path, "b", seed=0)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # the global stream is left as it was: seeding the model does not reseed the caller
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    torchsci.create_model("core/mlp", in_features=5, out_features=1, seed=0)
    assert torch.equal(torch.rand(3), want)


def test_without_a_seed_the_initial_weights_follow_the_global_state(tmp_path):
    """The bug the seed fixes: the same flow twice, unseeded, ends with different weights."""
    first = _fit(tmp_path, "a", seed=None)
    second = _fit(tmp_path, "b", seed=None)
    assert not all(torch.equal(first[k], second[k]) for k in first)
