"""The shipped solubility model on the external set, against chemprop trained on the same data and Delaney's equation.

External set: ``torchsci_chem/data/solubility_external.csv`` (522 molecules of RDKit's Huuskonen
solubility data not in ESOL by InChIKey connectivity; ``benchmarks/chem_external_data.py``). No model or
recipe choice looks at it.

- torchsci: the shipped ensemble (``model="esol"``, or ``--weights`` for a file of the same kind), with
  calibrated 90% intervals and the applicability domain (their coverage is also reported on ESOL's own
  held-out test split, 113 molecules); also its first member alone.
- chemprop 2.3.1 with its ``chemprop train`` defaults (30 epochs) on exactly the shipped model's
  training and validation molecules (ESOL random 80/10/10, seed 0; ``--splits-file``), then
  ``chemprop predict`` on the external set; ``--chemprop-ensemble k`` trains k models (``--ensemble-size``).
- Delaney's ESOL equation (J. Chem. Inf. Comput. Sci. 2004, 44, 1000) computed with RDKit:
  logS = 0.16 - 0.63 clogP - 0.0062 MW + 0.066 RB - 0.74 AP (Crippen logP, molecular weight,
  rotatable bonds, aromatic proportion of heavy atoms).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_external.py \\
        --chemprop-python /root/bench-venvs/chemprop/bin/python
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
from rdkit.Chem import Crippen, Descriptors, Lipinski

import torchsci_chem
from torchsci.registry import registry
from torchsci_chem.datasets import ESOL_TARGET, esol_path
from torchsci_chem.descriptors import aromatic_proportion
from torchsci_chem.featurize import parse_smiles
from torchsci_chem.standardize import DEFAULT_STANDARDIZE

PEER = Path(__file__).with_name("chem_chemprop_peer.py")
EXTERNAL = Path(str(files("torchsci_chem").joinpath("data/solubility_external.csv")))
BINS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.8, 1.01)


def delaney(smiles: list[str]) -> np.ndarray:
    mols = [parse_smiles(s, DEFAULT_STANDARDIZE) for s in smiles]
    return np.array([0.16 - 0.63 * Crippen.MolLogP(m) - 0.0062 * Descriptors.MolWt(m)
                     + 0.066 * Lipinski.NumRotatableBonds(m) - 0.74 * aromatic_proportion(m) for m in mols])


def chemprop(python: str, indices: dict, smiles: list[str], ensemble: int, workdir: Path) -> np.ndarray:
    splits, out = workdir / "splits.json", workdir / "chemprop"
    splits.write_text(json.dumps([indices]))
    train = [python, str(PEER), "train", str(workdir / "timing.json"), "--data-path", str(esol_path()),
             "--smiles-columns", "smiles", "--target-columns", ESOL_TARGET, "--splits-file", str(splits),
             "--epochs", "30", "--pytorch-seed", "0", "--ensemble-size", str(ensemble), "--accelerator", "cpu",
             "--devices", "1", "--output-dir", str(out)]
    with (workdir / "chemprop_train.log").open("w") as fh:
        subprocess.run(train, stdout=fh, stderr=subprocess.STDOUT, check=True)
    ext = workdir / "external.csv"
    ext.write_text("smiles\n" + "\n".join(smiles) + "\n")
    models = sorted(str(p) for p in out.glob("model_*/best.pt"))
    chemprop_bin = str(Path(python).with_name("chemprop"))
    with (workdir / "chemprop_predict.log").open("w") as fh:
        subprocess.run([chemprop_bin, "predict", "-i", str(ext), "-o", str(workdir / "preds.csv"), "--model-paths",
                        *models, "--accelerator", "cpu", "--devices", "1"], stdout=fh, stderr=subprocess.STDOUT,
                       check=True)
    with (workdir / "preds.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    column = next(c for c in rows[0] if c != "smiles")
    if [r["smiles"] for r in rows] != smiles:
        raise RuntimeError("chemprop's predictions are not in the order of the external set")
    return np.array([float(r[column]) for r in rows])


def rmse(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", help="a safetensors file of the shipped model's kind (default: the shipped one)")
    parser.add_argument("--chemprop-python", help="python of the chemprop 2.3.1 environment")
    parser.add_argument("--chemprop-ensemble", type=int, default=1)
    parser.add_argument("--chemprop-preds", help="a CSV of chemprop predictions made before (column 2)")
    parser.add_argument("--graph-weights", help="the previous, graph-only shipped ESOL ensemble (git show "
                        "d56ba82:torchsci_chem/weights/esol-dmpnn.safetensors) to compare with")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    with EXTERNAL.open() as fh:
        rows = list(csv.DictReader(fh))
    smiles = [r["smiles"] for r in rows]
    y = np.array([float(r["logS"]) for r in rows])
    print(f"external set: {len(y)} molecules; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    model = "esol"
    if args.weights:
        from safetensors.torch import load_file

        from torchsci_chem.models import ESOL_WEIGHTS

        state = load_file(args.weights)
        # the calibration may hold another number of molecules than the shipped file (before or after a change)
        kwargs = {**ESOL_WEIGHTS.kwargs, "calibration_size": len(state["conformal_scores"])}
        model = registry.create_model("chem/dmpnn_ensemble", **kwargs)
        model.load_state_dict(state)
    out = torchsci_chem.predict(smiles, model=model, interval=0.9)
    test = registry.create_dataset("chem/esol", split="random", seed=0).test
    y_test = test.targets[:, 0]
    on_test = torchsci_chem.predict(test.smiles, model=model, interval=0.9)
    print(f"ESOL test split ({len(y_test)} molecules): 90% interval coverage "
          f"{np.mean((y_test >= on_test.lower) & (y_test <= on_test.upper)):.3f}, mean width "
          f"{np.mean(on_test.upper - on_test.lower):.2f} logS", flush=True)
    from torchsci_chem.inference import load, member_predictions

    net = load(model)
    first = member_predictions(net, smiles, net.members[0].standardize)[0][0, :, 0]
    results = {"torchsci ensemble (shipped)": out.value, "torchsci, first member alone": first,
               "Delaney equation (RDKit)": delaney(smiles)}
    if args.graph_weights:
        from safetensors.torch import load_file

        old = registry.create_model("chem/dmpnn_ensemble", members=5, hidden=200, depth=3, readout="mean",
                                    ffn_hidden=200)
        old.load_state_dict(load_file(args.graph_weights))
        results["torchsci previous graph-only ensemble"] = torchsci_chem.predict(smiles, model=old, standardize=False)
    if args.chemprop_preds:
        with open(args.chemprop_preds) as fh:
            results["chemprop 2.3.1 (same training data)"] = np.array(
                [float(list(r.values())[1]) for r in csv.DictReader(fh)])
    elif args.chemprop_python:
        indices = registry.create_dataset("chem/esol", split="random", seed=0).info["indices"]
        label = f"chemprop 2.3.1, {args.chemprop_ensemble} model(s), same training data"
        results[label] = chemprop(args.chemprop_python, indices, smiles, args.chemprop_ensemble, workdir)
    print("\n| model | external RMSE | MAE |\n|---|---|---|")
    for name, p in results.items():
        print(f"| {name} | {rmse(p, y):.3f} | {np.mean(np.abs(p - y)):.3f} |")
    covered = (y >= out.lower) & (y <= out.upper)
    print(f"\n90% intervals: coverage {covered.mean():.3f}, mean width {np.mean(out.upper - out.lower):.2f} logS, "
          f"median {np.median(out.upper - out.lower):.2f}; in domain: coverage {covered[out.in_domain].mean():.3f}; "
          f"out of domain: {covered[~out.in_domain].mean():.3f}")
    print(f"in domain: {int(out.in_domain.sum())} of {len(y)}; RMSE in {rmse(out.value[out.in_domain], y[out.in_domain]):.3f}, "
          f"out {rmse(out.value[~out.in_domain], y[~out.in_domain]):.3f}; judgeable {int(out.judgeable.sum())}")
    print("\n| nearest training similarity | molecules | torchsci RMSE | interval coverage | mean width |"
          + "".join(f" {n} RMSE |" for n in results if n.startswith(("chemprop", "Delaney"))))
    print("|---|---|---|---|---|" + "---|" * sum(n.startswith(("chemprop", "Delaney")) for n in results))
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        m = (out.similarity >= lo) & (out.similarity < hi)
        if not m.any():
            continue
        cells = "".join(f" {rmse(p[m], y[m]):.3f} |" for n, p in results.items() if n.startswith(("chemprop", "Delaney")))
        print(f"| {lo:.1f}-{min(hi, 1.0):.1f} | {int(m.sum())} | {rmse(out.value[m], y[m]):.3f} | {covered[m].mean():.2f} | "
              f"{np.mean(out.upper[m] - out.lower[m]):.2f} |{cells}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
