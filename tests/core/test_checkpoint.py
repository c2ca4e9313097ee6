"""Checkpoint files: round trip of nested state, atomic writes, and clear errors on bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from torchsci import CheckpointError, load_state, load_weights, save_state
from torchsci.checkpoint import CheckpointDir


def test_round_trip_of_nested_state_with_int_keys_tuples_and_specials(tmp_path):
    opt = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    opt.zero_grad()
    torch.nn.Linear(3, 2)(torch.ones(1, 3)).sum().backward()
    state = {
        "optimizer": opt.state_dict(),
        "array": np.arange(5, dtype=np.uint32),
        "tuple": (1, "a", (2.5, None)),
        "specials": [math.inf, -math.inf],
        "shared": {"a": torch.arange(4.0), "view": torch.arange(4.0)[1:3]},
    }
    back = load_state(save_state(state, tmp_path / "s.ckpt"))
    assert back["tuple"] == (1, "a", (2.5, None))
    assert back["specials"] == [math.inf, -math.inf]
    assert back["array"].dtype == np.uint32 and back["array"].tolist() == [0, 1, 2, 3, 4]
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(back["optimizer"]["param_groups"][0]["params"]) == {0, 1}
    assert torch.equal(back["shared"]["view"], torch.tensor([1.0, 2.0]))


def test_write_leaves_no_temporary_files(tmp_path):
    save_state({"x": torch.ones(3)}, tmp_path / "a.ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_state({"x": torch.ones(1000)}, tmp_path / "a.ckpt")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_state(path)


def test_plain_safetensors_is_not_mistaken_for_a_checkpoint(tmp_path):
    save_file({"weight": torch.ones(2, 3), "bias": torch.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="not a torchsci checkpoint"):
        load_state(tmp_path / "w.safetensors")
    model = load_weights(torch.nn.Linear(3, 2), tmp_path / "w.safetensors")
    assert torch.equal(model.weight, torch.ones(2, 3))


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    save_file({"weight": torch.ones(4, 3), "bias": torch.zeros(4)}, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="w.safetensors"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "w.safetensors")


def test_unsupported_objects_are_refused_with_their_path(tmp_path):
    with pytest.raises(CheckpointError, match="'a/b'"):
        save_state({"a": {"b": object()}}, tmp_path / "x.ckpt")


def test_checkpoint_dir_keeps_last_k_and_links_last_and_best(tmp_path):
    d = CheckpointDir(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        d.save({"step": step}, step, is_best=step == 1)
    assert [p.name for p in d.steps()] == ["step-000000002.ckpt", "step-000000003.ckpt"]
    assert load_state(d.last)["step"] == 3
    assert load_state(d.best)["step"] == 1  # the best survives pruning of its step file
