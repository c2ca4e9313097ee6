"""Prediction molecules/s, torchsci against chemprop 2.3.1, same molecules, one thread each, interleaved rounds.

Molecules: the distinct SMILES (RDKit canonical, stereo kept) of the CSVs shipped in torchsci_chem/data
(ESOL, Lipophilicity, FreeSolv, the external solubility set), the first ``--n``. They are distinct on
purpose: ``torchsci_chem.predict`` featurises a molecule once per call however often it appears, which a
repeated list would turn into a cache benchmark.

- torchsci: ``torchsci_chem.predict(smiles, model=net)`` with its default batch (64), on a model loaded
  beforehand (``--torchsci-model``: a ``torchsci chem train`` checkpoint, or a shipped name such as ``lipo``).
- chemprop: a trained model file (``--chemprop-model``, e.g. ``model_0/best.pt`` of ``chemprop train``),
  predicted as ``chemprop predict`` does, in its own environment through ``chem_chemprop_peer.py predict``.

Both: SMILES in, predictions out; parsing and featurisation included; import, model loading and a warm-up
batch excluded; ``--threads`` torch threads (default 1). Each ``--cores`` setting is a table: ``1`` is one
process each; ``N`` is torchsci ``predict(n_jobs=N)`` (N worker processes each preparing and predicting their
own blocks of molecules, the main one collecting the results) against ``chemprop predict --num-workers N`` (SMILES parsed in chemprop's
process pool of N, graphs made by N DataLoader workers); worker start-up is inside the timing on both
sides. Rounds alternate which side goes first; the 1-minute load average is printed with every round.
``--shipped esol`` adds torchsci-only rows for a shipped model (a 5-member ensemble on 138 RDKit descriptors
as well as the graph), plain ``predict()`` and ``details=True`` (what ``torchsci chem predict`` computes).

    torchsci chem train torchsci_chem/data/FreeSolv.csv --target expt -o /tmp/p300 --epochs 1 --hidden 300 --device cpu
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_predict_speed.py --torchsci-model /tmp/p300/checkpoints/best.ckpt \\
        --chemprop-model /tmp/bench-lipo/chemprop/model_0/best.pt --chemprop-python /root/bench-venvs/chemprop/bin/python \\
        --cores 1 2 --shipped esol
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


def time_torchsci(net, smiles: list[str], n_jobs: int = 1, **kwargs) -> float:
    start = time.perf_counter()
    out = torchsci_chem.predict(smiles, model=net, device="cpu", n_jobs=n_jobs, **kwargs)
    seconds = time.perf_counter() - start
    values = out.value if hasattr(out, "value") else out
    assert np.isfinite(values).all()
    return len(smiles) / seconds


def time_chemprop(python: str, model: str, smiles_file: Path, num_workers: int = 0, threads: int = 1) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "timing.json")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run([python, str(PEER), "predict", model, str(smiles_file), str(out), str(num_workers),
                               str(threads)], env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"chemprop predict failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        timing = json.loads(out.read_text())
    return timing["n"] / timing["seconds"]


def compare(args: argparse.Namespace, net, smiles: list[str], smiles_file: Path, cores: int) -> list[float]:
    """Rounds of torchsci (``n_jobs=cores``) against chemprop (``num_workers`` 0 for one core, else ``cores``)."""
    workers = 0 if cores == 1 else cores
    print(f"\n{cores} core(s) each: torchsci n_jobs={cores}; chemprop num_workers={workers}; torch threads "
          f"{args.threads} on both sides\n| round | torchsci mol/s | chemprop mol/s | ratio | load avg |\n"
          "|---|---|---|---|---|", flush=True)
    ratios = []
    for r in range(args.rounds):
        if r % 2:
            theirs = time_chemprop(args.chemprop_python, args.chemprop_model, smiles_file, workers, args.threads)
            ours = time_torchsci(net, smiles, cores)
        else:
            ours = time_torchsci(net, smiles, cores)
            theirs = time_chemprop(args.chemprop_python, args.chemprop_model, smiles_file, workers, args.threads)
        ratios.append(ours / theirs)
        print(f"| {r} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | {os.getloadavg()[0]:.2f} |", flush=True)
    ratio = np.array(ratios)
    print(f"median ratio {np.median(ratio):.2f}x (min {ratio.min():.2f}x, max {ratio.max():.2f}x)", flush=True)
    return ratios


def shipped(name: str, smiles: list[str], rounds: int) -> None:
    """A shipped model's own speed (no chemprop counterpart): plain predict() and details=True (what the
    command computes: standardisation report, domain similarity, rules), one and two processes."""
    net = load(name)
    torchsci_chem.predict(smiles[:64], model=net, device="cpu")
    print(f"\nshipped model {name!r}, {len(smiles)} molecules\n| round | call | n_jobs | mol/s | load avg |\n"
          "|---|---|---|---|---|", flush=True)
    for r in range(rounds):
        for details in (False, True):
            for n_jobs in ((1, 2) if r % 2 == 0 else (2, 1)):
                rate = time_torchsci(net, smiles, n_jobs, details=details, on_invalid="skip")
                call = "predict(details=True)" if details else "predict()"
                print(f"| {r} | {call} | {n_jobs} | {rate:,.0f} | {os.getloadavg()[0]:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torchsci-model", required=True, help="a torchsci chem checkpoint or a shipped model name")
    parser.add_argument("--chemprop-model", required=True, help="a chemprop 2.3.1 model file (best.pt)")
    parser.add_argument("--chemprop-python", required=True, help="python of the chemprop 2.3.1 environment")
    parser.add_argument("--n", type=int, default=5000, help="distinct molecules per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2],
                        help="settings to compare: 1 = one process each; N = torchsci n_jobs=N against chemprop "
                             "num_workers=N (chemprop predict --num-workers N)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process, both sides")
    parser.add_argument("--shipped", default=None, help="also time this shipped model (e.g. esol), torchsci only")
    parser.add_argument("--shipped-n", type=int, default=1000, help="molecules for the shipped model's rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    smiles = distinct_smiles(args.n)
    net = load(args.torchsci_model)
    torchsci_chem.predict(smiles[:64], model=net, device="cpu")  # warm-up batch, as on chemprop's side
    with tempfile.TemporaryDirectory() as tmp:
        smiles_file = Path(tmp, "smiles.txt")
        smiles_file.write_text("\n".join(smiles) + "\n")
        print(f"{len(smiles)} distinct molecules; torch threads {torch.get_num_threads()}; {os.cpu_count()} cores; "
              f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
        for cores in args.cores:
            compare(args, net, smiles, smiles_file, cores)
    if args.shipped:
        shipped(args.shipped, smiles[:args.shipped_n], max(1, args.rounds // 2))
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
