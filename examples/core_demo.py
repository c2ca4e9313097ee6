"""Core demo: learn a damped oscillator's displacement x(t; omega, zeta) with the torchsci Trainer.

Runs in well under a minute on 2 CPU cores and shows the whole core from a lab script: a registered
model, a task, validation, a cosine schedule, early stopping, checkpoints, an exact resume, and a plot.
The same run from the command line: ``torchsci train experiment=core/oscillator``.

    python examples/core_demo.py [--run-dir runs/core_demo] [--epochs 30]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

import torchsci
from torchsci.datasets import oscillator_splits as damped_oscillator_splits


def plot(run_dir: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("val/rmse")]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy([int(r["epoch"]) for r in rows], [float(r["train/loss"]) for r in rows], label="train MSE")
    ax.semilogy([int(r["epoch"]) for r in rows], [float(r["val/rmse"]) ** 2 for r in rows], label="validation MSE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error")
    ax.set_title("damped oscillator x(t; ω, ζ)")
    ax.legend()
    fig.tight_layout()
    out = run_dir / "loss.png"
    fig.savefig(out, dpi=120)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/core_demo"))
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()

    splits = damped_oscillator_splits()  # generated: x(t; omega, zeta), see torchsci.datasets
    train, val, test = splits.train, splits.val, splits.test
    torch.manual_seed(0)
    model = torchsci.create_model("core/mlp", in_features=3, out_features=1, hidden=[64, 64, 64])
    task = torchsci.RegressionTask()

    # The job "crashes" half-way through (a callback raises); a new Trainer with the same settings then
    # resumes from the last checkpoint, written mid-epoch, and finishes exactly as an uncrashed run would.
    class SimulatedCrash(RuntimeError):
        pass

    class CrashAt(torchsci.Callback):
        def on_epoch_end(self, trainer, metrics):
            if metrics["epoch"] == args.epochs // 2:
                raise SimulatedCrash

    settings = dict(max_epochs=args.epochs, batch_size=64, lr=3e-3, scheduler="cosine", device="auto", seed=0,
                    run_dir=args.run_dir, checkpoint_every_n_steps=100)
    try:
        torchsci.Trainer(**settings, callbacks=[torchsci.EarlyStopping("val/rmse", patience=8), CrashAt()]).fit(
            model, task, train, val)
    except SimulatedCrash:
        print(f"-- simulated crash; resuming from {args.run_dir / 'checkpoints' / 'last.ckpt'}")
    trainer = torchsci.Trainer(**settings, callbacks=[torchsci.EarlyStopping("val/rmse", patience=8)])
    result = trainer.fit(model, task, train, val, resume="last")

    best = torchsci.load_model(result.best_checkpoint)
    scores = trainer.test(best, task, test)
    print(f"test RMSE {scores['test/rmse']:.4f} (targets span -1..1; RMSE of predicting the mean: "
          f"{test.tensors[1].std().item():.3f})")
    png = plot(args.run_dir)
    print(f"run folder: {args.run_dir} (metrics.csv, tensorboard/, checkpoints/{', loss.png' if png else ''})")


if __name__ == "__main__":
    main()
