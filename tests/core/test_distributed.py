"""torchrun with 2 CPU processes (gloo) gives the same weights as one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

JOB = Path(__file__).parent / "jobs" / "train_job.py"
COMMON = ["--no-augment", "--dropout", "0", "--workers", "0", "--items", "64", "--epochs", "2"]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(JOB), "--run-dir", str(tmp_path / "one"), "--out", str(tmp_path / "one.st"),
                    "--batch-size", "8", *COMMON], check=True, timeout=300, env=env, capture_output=True)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(JOB), "--run-dir", str(tmp_path / "two"), "--out", str(tmp_path / "two.st"),
                          "--batch-size", "4", *COMMON], timeout=300, env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = load_file(str(tmp_path / "one.st")), load_file(str(tmp_path / "two.st"))
    assert one.keys() == two.keys()
    moved = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved < 1e-5, f"DDP and single-process weights differ by {moved}"
    # Trained weights really moved from their initial values (the comparison is not vacuous).
    torch.manual_seed(0)
    import torchsci

    init = torchsci.create_model("core/mlp", in_features=6, out_features=1, hidden=[32, 32]).state_dict()
    assert max(float((init[k] - one[k]).abs().max()) for k in one) > 1e-3
    # Only rank 0 wrote checkpoints and logs, and wrote them once.
    assert (tmp_path / "two" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "two" / "metrics.csv").read_text().count("\n") == \
        (tmp_path / "one" / "metrics.csv").read_text().count("\n")
