"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to one never killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

import torchsci
from torchsci.checkpoint import load_state

JOB = Path(__file__).parent / "jobs" / "train_job.py"


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(JOB), *args], check=True, capture_output=True, text=True,
                          timeout=300, **kw)


def _assert_identical(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs by {(wa[k] - wb[k]).abs().max()}"


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["2", "0"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, workers):
    """With workers, augmentation streams are per batch; without, data and dropout share the saved main RNG."""
    _run("--run-dir", str(tmp_path / "full"), "--out", str(tmp_path / "full.safetensors"), "--workers", workers)

    # The same run, slowed down so it is surely still running when killed (52 items, batch 8: 7 steps an epoch).
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(JOB), "--run-dir", str(run_dir), "--out", str(tmp_path / "never.st"),
                             "--slow", "0.02", "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = run_dir / "checkpoints" / "step-000000006.ckpt"
    deadline = time.monotonic() + 240
    while not target.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the killed run never reached step 6"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "never.st").exists()

    progress = load_state(target)["progress"]
    assert progress["epoch"] == 0 and progress["batch_in_epoch"] == 6  # truly mid-epoch: 6 of 7 batches done
    _run("--run-dir", str(run_dir), "--out", str(tmp_path / "resumed.safetensors"), "--resume", str(target),
         "--workers", workers)
    _assert_identical(tmp_path / "full.safetensors", tmp_path / "resumed.safetensors")

    # The log of the resumed run has no rows from the steps replayed after the checkpoint.
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    full_rows = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [r.split(",")[:2] for r in full_rows]


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True))


def test_max_steps_mid_epoch_resumes_the_same_epoch(tmp_path):
    def trainer(max_steps, run):
        return torchsci.Trainer(max_epochs=2, max_steps=max_steps, batch_size=8, device="cpu", run_dir=tmp_path / run,
                                verbose=False, tensorboard=False)

    torch.manual_seed(0)
    full = trainer(None, "full").fit(torchsci.create_model("core/mlp", in_features=4, dropout=0.3),
                                     torchsci.RegressionTask(), _data())
    torch.manual_seed(0)
    part = trainer(3, "part").fit(torchsci.create_model("core/mlp", in_features=4, dropout=0.3),
                                  torchsci.RegressionTask(), _data())
    assert load_state(part.last_checkpoint)["progress"]["batch_in_epoch"] == 3
    rest = trainer(None, "part").fit(torchsci.create_model("core/mlp", in_features=4, dropout=0.3),
                                     torchsci.RegressionTask(), _data(), resume="last")
    for (k, a), b in zip(full.model.state_dict().items(), rest.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_resume_refuses_a_different_batch_size(tmp_path):
    t = torchsci.Trainer(max_epochs=1, batch_size=8, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    t.fit(torchsci.create_model("core/mlp", in_features=4), torchsci.RegressionTask(), _data())
    t2 = torchsci.Trainer(max_epochs=2, batch_size=4, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    with pytest.raises(torchsci.CheckpointError, match="batch_size=8"):
        t2.fit(torchsci.create_model("core/mlp", in_features=4), torchsci.RegressionTask(), _data(), resume="last")


def test_resume_from_missing_file_is_a_clear_error(tmp_path):
    t = torchsci.Trainer(max_epochs=1, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    with pytest.raises(torchsci.CheckpointError, match="no such checkpoint"):
        t.fit(torchsci.create_model("core/mlp", in_features=4), torchsci.RegressionTask(), _data(),
              resume=tmp_path / "nope.ckpt")


def test_resume_last_starts_fresh_when_no_checkpoint(tmp_path):
    t = torchsci.Trainer(max_epochs=1, batch_size=8, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    result = t.fit(torchsci.create_model("core/mlp", in_features=4), torchsci.RegressionTask(), _data(), resume="last")
    assert result.history[0]["epoch"] == 0 and os.path.exists(result.last_checkpoint)
