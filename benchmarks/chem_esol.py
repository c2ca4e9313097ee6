"""ESOL: torchsci's D-MPNN and chemprop 2.3.1 on the same split indices in one run, test RMSE and training molecules/s.

The issue's protocol: random 80/10/10 split with seed 0 (seeds 1-4 with --splits 5), 30 epochs, the
best-validation checkpoint tested; plus the scaffold-balanced split (seeds 0..n-1 with --scaffold n).
The split indices are torchsci's (``torchsci_chem.datasets``); they are written to a JSON file and
given to chemprop with ``--splits-file``, so both train, validate and test on the same molecules.
For each split the two runs follow each other (order alternating from split to split) so that load
on the shared machine hits both alike; the 1-minute load average is printed with every row.

torchsci: D-MPNN hidden 300, depth 3, mean readout, one hidden head layer of 300, batch 50, AdamW
lr 1e-3 with a cosine schedule. chemprop: its ``chemprop train`` defaults (hidden 300, depth 3, norm
aggregation, batch 64, Noam-like warmup schedule) with ``--epochs 30``, ``--pytorch-seed`` = split
seed. chemprop pins an older rdkit, so it runs from its own environment (never a project
dependency) through ``benchmarks/chem_chemprop_peer.py``:

    python3.11 -m venv /root/bench-venvs/chemprop
    /root/bench-venvs/chemprop/bin/pip install torch==2.13.0 chemprop==2.3.1
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_esol.py --splits 5 --scaffold 2 \\
        --chemprop-python /root/bench-venvs/chemprop/bin/python

Training molecules/s is epochs x training molecules / wall time of the fit call (per-epoch
validation and checkpoints included, featurisation and testing excluded) for both. Building any torch
optimizer imports ``torch._dynamo`` once per process (1-2 s); chemprop's ``import lightning`` does so
before its timed fit, so this script imports it up front too, and neither rate holds that import. Test RMSE is
computed here, in logS units, from each side's test predictions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (see below)

import torchsci
from torchsci.registry import registry
from torchsci_chem.datasets import ESOL_TARGET, esol_path
from torchsci_chem.standardize import DEFAULT_STANDARDIZE

PEER = Path(__file__).with_name("chem_chemprop_peer.py")


def run_torchsci(split: str, seed: int, epochs: int, extra: str | None, standardize: bool = False,
                 hidden: int = 300) -> tuple[float, float, dict]:
    torch.manual_seed(seed)
    data = registry.create_dataset("chem/esol", split=split, seed=seed, extra=extra,
                                   standardize=DEFAULT_STANDARDIZE if standardize else ())
    model = torchsci.create_model("chem/dmpnn", hidden=hidden, depth=3, readout="mean", ffn_hidden=hidden,
                                  **data.model_kwargs)
    task = registry.create_task("chem/property")
    trainer = torchsci.Trainer(max_epochs=epochs, batch_size=50, lr=1e-3, scheduler="cosine", seed=seed,
                               device="cpu", run_dir=tempfile.mkdtemp(), verbose=False, tensorboard=False)
    start = time.perf_counter()
    fit = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
    seconds = time.perf_counter() - start
    test = trainer.test(fit.model, task, data.test, collate_fn=data.collate_fn, ckpt_path=fit.best_checkpoint)
    return test["test/rmse"], epochs * len(data.train) / seconds, data.info["indices"]


def run_chemprop(python: str, indices: dict, seed: int, epochs: int, smiles: list[str],
                 targets: np.ndarray) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        splits, timing, out = Path(tmp, "splits.json"), Path(tmp, "timing.json"), Path(tmp, "out")
        splits.write_text(json.dumps([indices]))
        cmd = [python, str(PEER), "train", str(timing), "--data-path", str(esol_path()), "--smiles-columns", "smiles",
               "--target-columns", ESOL_TARGET, "--splits-file", str(splits), "--epochs", str(epochs),
               "--pytorch-seed", str(seed), "--accelerator", "cpu", "--devices", "1", "--output-dir", str(out)]
        log = Path(tmp, "chemprop.log")
        with log.open("w") as fh:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            raise RuntimeError(f"chemprop failed (exit {done.returncode}):\n{log.read_text()[-3000:]}")
        with (out / "model_0" / "test_predictions.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        test = indices["test"]
        if [r["smiles"] for r in rows] != [smiles[i] for i in test]:  # chemprop must have tested our test set
            raise RuntimeError("chemprop's test predictions are not the molecules of the given test split")
        pred = np.array([float(r[ESOL_TARGET]) for r in rows])
        rmse = float(np.sqrt(np.mean((pred - targets[test]) ** 2)))
        fit_seconds = sum(json.loads(timing.read_text())["fit_seconds"])
    return rmse, epochs * len(indices["train"]) / fit_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--splits", type=int, default=1, help="random splits with seeds 0..n-1")
    parser.add_argument("--scaffold", type=int, default=0, help="scaffold-balanced splits with seeds 0..n-1")
    parser.add_argument("--extra", choices=["descriptors", "morgan", "morgan_counts", "rdkit2d-v1"],
                        help="per-molecule features concatenated before torchsci's head (chemprop stays at defaults)")
    parser.add_argument("--standardize", action="store_true",
                        help="torchsci standardises molecules as the shipped models do (chemprop: as given)")
    parser.add_argument("--hidden", type=int, default=300, help="torchsci's bond-state and head width")
    parser.add_argument("--job", help="run only this split, e.g. random:3 or scaffold:1 (to run splits in parallel)")
    parser.add_argument("--chemprop-python", help="python of the chemprop 2.3.1 environment; without it, torchsci only")
    args = parser.parse_args()
    with esol_path().open() as fh:
        rows = list(csv.DictReader(fh))
    smiles = [r["smiles"] for r in rows]
    targets = np.array([float(r[ESOL_TARGET]) for r in rows])
    print(f"extra features (torchsci): {args.extra}, standardize {args.standardize}, hidden {args.hidden}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("| split | seed | torchsci test RMSE | chemprop test RMSE | torchsci training mol/s | "
          "chemprop training mol/s | speed ratio | load avg |\n|---|---|---|---|---|---|---|---|", flush=True)
    results: dict[str, list[tuple]] = {"random": [], "scaffold": []}
    jobs = [("random", s) for s in range(args.splits)] + [("scaffold", s) for s in range(args.scaffold)]
    if args.job:
        split, _, seed = args.job.partition(":")
        jobs = [(split, int(seed))]
    for k, (split, seed) in enumerate(jobs):
        ours = theirs = None
        if args.chemprop_python and k % 2:  # chemprop first on every other split
            indices = registry.create_dataset("chem/esol", split=split, seed=seed).info["indices"]
            theirs = run_chemprop(args.chemprop_python, indices, seed, args.epochs, smiles, targets)
        rmse, rate, indices = run_torchsci(split, seed, args.epochs, args.extra, args.standardize, args.hidden)
        ours = (rmse, rate)
        if args.chemprop_python and theirs is None:
            theirs = run_chemprop(args.chemprop_python, indices, seed, args.epochs, smiles, targets)
        results[split].append((ours, theirs))
        name = "random 80/10/10" if split == "random" else "scaffold-balanced 80/10/10"
        cp_rmse, cp_rate, ratio = ("-", "-", "-") if theirs is None else (
            f"{theirs[0]:.3f}", f"{theirs[1]:,.0f}", f"{ours[1] / theirs[1]:.2f}x")
        print(f"| {name} | {seed} | {ours[0]:.3f} | {cp_rmse} | {ours[1]:,.0f} | {cp_rate} | {ratio} | "
              f"{os.getloadavg()[0]:.2f} |", flush=True)
    for split, res in results.items():
        if len(res) > 1:
            ours = np.array([r[0][0] for r in res])
            line = f"| {split}, mean ± std over {len(res)} | | {ours.mean():.3f} ± {ours.std():.3f} | "
            if res[0][1] is not None:
                theirs = np.array([r[1][0] for r in res])
                line += f"{theirs.mean():.3f} ± {theirs.std():.3f} | "
            else:
                line += "- | "
            print(line + "| | | |")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
