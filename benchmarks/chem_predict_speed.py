"""Prediction molecules/s, torchsci against chemprop 2.3.1, same molecules, one thread each, interleaved rounds.

Molecules: the distinct SMILES (RDKit canonical, stereo kept) of the CSVs shipped in torchsci_chem/data
(ESOL, Lipophilicity, FreeSolv, the external solubility set), the first ``--n``. They are distinct on
purpose: ``torchsci_chem.predict`` featurises a molecule once per call however often it appears, which a
repeated list would turn into a cache benchmark.

- torchsci: ``torchsci_chem.predict(smiles, model=net)`` with its default batch (256), on a model loaded
  beforehand (``--torchsci-model``: a ``torchsci chem train`` checkpoint, or a shipped name such as ``lipo``).
- chemprop: a trained model file (``--chemprop-model``, e.g. ``model_0/best.pt`` of ``chemprop train``),
  predicted as ``chemprop predict`` does, in its own environment through ``chem_chemprop_peer.py predict``.

Both: SMILES in, predictions out; parsing and featurisation included; import, model loading and a warm-up
batch excluded; ``torch.set_num_threads(1)``. Rounds alternate which side goes first; the 1-minute load
average is printed with every round.

    torchsci chem train torchsci_chem/data/FreeSolv.csv --target expt -o /tmp/p300 --epochs 1 --hidden 300 --device cpu
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_predict_speed.py --torchsci-model /tmp/p300/checkpoints/best.ckpt \\
        --chemprop-model /tmp/bench-lipo/chemprop/model_0/best.pt --chemprop-python /root/bench-venvs/chemprop/bin/python
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
from rdkit import Chem, RDLogger

import torchsci_chem
from torchsci_chem.datasets import data_path
from torchsci_chem.inference import load

PEER = Path(__file__).with_name("chem_chemprop_peer.py")
CSVS = ("ESOL.csv", "Lipophilicity.csv", "FreeSolv.csv", "solubility_external.csv")


def distinct_smiles(n: int) -> list[str]:
    RDLogger.DisableLog("rdApp.*")
    seen: set[str] = set()
    out: list[str] = []
    for name in CSVS:
        with data_path(name).open() as fh:
            for row in csv.DictReader(fh):
                mol = Chem.MolFromSmiles(row["smiles"])
                key = Chem.MolToSmiles(mol) if mol is not None else None
                if key and key not in seen:
                    seen.add(key)
                    out.append(row["smiles"])
    if len(out) < n:
        raise SystemExit(f"--n {n}: the shipped CSVs hold only {len(out)} distinct molecules.")
    return out[:n]


def time_torchsci(net, smiles: list[str]) -> float:
    start = time.perf_counter()
    values = torchsci_chem.predict(smiles, model=net, device="cpu")
    seconds = time.perf_counter() - start
    assert np.isfinite(values).all()
    return len(smiles) / seconds


def time_chemprop(python: str, model: str, smiles_file: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "timing.json")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([python, str(PEER), "predict", model, str(smiles_file), str(out)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"chemprop predict failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        timing = json.loads(out.read_text())
    return timing["n"] / timing["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torchsci-model", required=True, help="a torchsci chem checkpoint or a shipped model name")
    parser.add_argument("--chemprop-model", required=True, help="a chemprop 2.3.1 model file (best.pt)")
    parser.add_argument("--chemprop-python", required=True, help="python of the chemprop 2.3.1 environment")
    parser.add_argument("--n", type=int, default=5000, help="distinct molecules per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    smiles = distinct_smiles(args.n)
    net = load(args.torchsci_model)
    torchsci_chem.predict(smiles[:64], model=net, device="cpu")  # warm-up batch, as on chemprop's side
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        smiles_file = Path(tmp, "smiles.txt")
        smiles_file.write_text("\n".join(smiles) + "\n")
        print(f"{len(smiles)} distinct molecules; torch threads {torch.get_num_threads()}; {os.cpu_count()} cores; "
              f"load average at start {os.getloadavg()[0]:.2f}")
        print("| round | torchsci mol/s | chemprop mol/s | ratio | load avg |\n|---|---|---|---|---|", flush=True)
        for r in range(args.rounds):
            if r % 2:
                theirs = time_chemprop(args.chemprop_python, args.chemprop_model, smiles_file)
                ours = time_torchsci(net, smiles)
            else:
                ours = time_torchsci(net, smiles)
                theirs = time_chemprop(args.chemprop_python, args.chemprop_model, smiles_file)
            rows.append((ours, theirs))
            print(f"| {r} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | {os.getloadavg()[0]:.2f} |", flush=True)
    ratios = np.array([a / b for a, b in rows])
    print(f"median ratio {np.median(ratios):.2f}x (min {ratios.min():.2f}x, max {ratios.max():.2f}x); "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
