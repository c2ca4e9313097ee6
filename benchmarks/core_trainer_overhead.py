"""Trainer overhead against a plain PyTorch loop, and the import time of torchsci over torch.

Both loops train the same MLP (32 -> 256 -> 256 -> 1, AdamW) on the same 16,384 in-memory samples,
batch 128, shuffled, on the CPU, one epoch each; they alternate (plain, Trainer, plain, ...) so load on
the machine hits both alike. Wall and CPU time are both reported: with one torch thread, process CPU time is far less disturbed by other
load on a shared machine. The Trainer runs with its defaults for checkpoints and logging minus
TensorBoard (an epoch-end checkpoint and a CSV log are included in its time).

    python benchmarks/core_trainer_overhead.py [--repeats 7] [--threads 1] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import torchsci
from torchsci.models import MLP

N, FEATURES, BATCH = 16384, 32, 128


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return MLP(FEATURES, 1, hidden=(256, 256))


def plain_epoch(data: TensorDataset, epochs: int) -> tuple[float, float]:
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True)
    start, cpu = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def trainer_epoch(data: TensorDataset, epochs: int) -> tuple[float, float]:
    model = make_model()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = torchsci.Trainer(max_epochs=epochs, batch_size=BATCH, device="cpu", run_dir=run_dir, tensorboard=False,
                                   verbose=False, progress=False)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.fit(model, torchsci.RegressionTask(), data)
        return time.perf_counter() - start, time.process_time() - cpu


def import_time(code: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timed run (amortises the Trainer's set-up)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, FEATURES, generator=g)
    data = TensorDataset(x, x[:, :1] * 2 - x[:, 1:2])
    plain_epoch(data, 1), trainer_epoch(data, 1)  # warm-up (allocator, first-call costs)
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_epoch(data, args.epochs))
        ours.append(trainer_epoch(data, args.epochs))
    steps = N // BATCH * args.epochs
    print(f"load average: {os.getloadavg()[0]:.2f}; torch threads: {args.threads}; torch {torch.__version__}; "
          f"{args.repeats} interleaved pairs of {args.epochs} epoch(s) ({steps} steps) each")
    for i, kind in enumerate(("wall", "CPU")):
        p = [t[i] for t in plain]
        o = [t[i] for t in ours]
        ratios = [b / a for a, b in zip(p, o, strict=True)]
        print(f"{kind:>4} time: plain {statistics.median(p):.3f} s ({steps / statistics.median(p):.0f} steps/s), "
              f"Trainer {statistics.median(o):.3f} s ({steps / statistics.median(o):.0f} steps/s); Trainer/plain "
              f"median {statistics.median(ratios):.3f} [min {min(ratios):.3f}, max {max(ratios):.3f}]")
    t_torch = import_time("import torch")
    t_sci = import_time("import torch, torchsci")
    print(f"import torch {t_torch:.2f} s; import torch, torchsci {t_sci:.2f} s; torchsci adds {t_sci - t_torch:.2f} s "
          "(best of 5, fresh interpreters)")


if __name__ == "__main__":
    main()
