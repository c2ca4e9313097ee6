"""The shipped Lipophilicity and FreeSolv models against chemprop trained on the same scaffold split, one run.

Split: the one the shipped models were trained on, scaffold-balanced 80/10/10 with seed 0
(``registry.create_dataset("chem/lipo")`` / ``"chem/freesolv"``; ``examples/chem_train_property_ensemble.py``).
Test molecules have Bemis-Murcko scaffolds seen in neither training nor validation.

- torchsci: the shipped ensemble (``model="lipo"`` / ``"freesolv"``, or ``--weights`` for a file of the same
  kind before it is shipped), with its calibrated 90% intervals and applicability domain; also its first
  member alone.
- chemprop 2.3.1 with its ``chemprop train`` defaults (30 epochs) on exactly the same training and
  validation molecules (``--splits-file``), ``--chemprop-ensemble k`` models, then ``chemprop predict`` on
  the test molecules. chemprop is trained first; ``--wait`` then waits for ``--weights`` to appear, so the
  two are measured in one run on the same (loaded) box.

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_lipo_freesolv.py lipo \\
        --chemprop-python /root/bench-venvs/chemprop/bin/python --workdir /tmp/bench-lipo
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

import torchsci_chem
from torchsci.registry import registry
from torchsci_chem.datasets import FREESOLV_TARGET, LIPO_TARGET, data_path

PEER = Path(__file__).with_name("chem_chemprop_peer.py")
SETS = {"lipo": ("Lipophilicity.csv", LIPO_TARGET, "logD"), "freesolv": ("FreeSolv.csv", FREESOLV_TARGET, "kcal/mol")}


def chemprop(python: str, name: str, indices: dict, test_smiles: list[str], ensemble: int, workdir: Path) -> tuple:
    csv_name, target, _ = SETS[name]
    splits, out = workdir / "splits.json", workdir / "chemprop"
    splits.write_text(json.dumps([indices]))
    train = [python, str(PEER), "train", str(workdir / "timing.json"), "--data-path", str(data_path(csv_name)),
             "--smiles-columns", "smiles", "--target-columns", target, "--splits-file", str(splits),
             "--epochs", "30", "--pytorch-seed", "0", "--ensemble-size", str(ensemble), "--accelerator", "cpu",
             "--devices", "1", "--output-dir", str(out)]
    start = time.perf_counter()
    with (workdir / "chemprop_train.log").open("w") as fh:
        subprocess.run(train, stdout=fh, stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - start
    test = workdir / "test.csv"
    test.write_text("smiles\n" + "\n".join(test_smiles) + "\n")
    models = sorted(str(p) for p in out.glob("model_*/best.pt"))
    with (workdir / "chemprop_predict.log").open("w") as fh:
        subprocess.run([str(Path(python).with_name("chemprop")), "predict", "-i", str(test), "-o",
                        str(workdir / "preds.csv"), "--model-paths", *models, "--accelerator", "cpu", "--devices", "1"],
                       stdout=fh, stderr=subprocess.STDOUT, check=True)
    with (workdir / "preds.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    column = next(c for c in rows[0] if c != "smiles")
    if [r["smiles"] for r in rows] != test_smiles:
        raise RuntimeError("chemprop's predictions are not in the order of the test molecules")
    return np.array([float(r[column]) for r in rows]), seconds, len(models)


def rmse(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(SETS))
    parser.add_argument("--weights", help="a safetensors file of the shipped model's kind (default: the shipped one)")
    parser.add_argument("--wait", action="store_true", help="after chemprop, wait for --weights to exist")
    parser.add_argument("--chemprop-python", help="python of the chemprop 2.3.1 environment")
    parser.add_argument("--chemprop-ensemble", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{args.name}: load average at start {os.getloadavg()[0]:.2f}", flush=True)
    # the raw molecules of the split (chemprop gets the CSV's SMILES; torchsci standardises them itself)
    info = registry.create_dataset(f"chem/{args.name}").info
    csv_name, target, unit = SETS[args.name]
    with data_path(csv_name).open() as fh:
        rows = list(csv.DictReader(fh))
    test_idx = info["indices"]["test"]
    smiles = [rows[i]["smiles"] for i in test_idx]
    y = np.array([float(rows[i][target]) for i in test_idx])
    sizes = {k: len(v) for k, v in info["indices"].items()}
    print(f"scaffold split (seed 0): {sizes}", flush=True)
    results: dict[str, np.ndarray] = {}
    if args.chemprop_python:
        preds, seconds, n = chemprop(args.chemprop_python, args.name, info["indices"], smiles, args.chemprop_ensemble,
                                     workdir)
        results[f"chemprop 2.3.1 defaults, {n} model(s), same split"] = preds
        print(f"chemprop: trained {n} model(s) in {seconds:.0f} s wall (load {os.getloadavg()[0]:.2f})", flush=True)
    model = args.name
    if args.weights:
        while args.wait and not Path(args.weights).is_file():
            time.sleep(20)
        from safetensors.torch import load_file

        from torchsci_chem.models import PROPERTY_WEIGHTS

        model = registry.create_model("chem/dmpnn_ensemble", **PROPERTY_WEIGHTS[args.name].kwargs)
        model.load_state_dict(load_file(args.weights))
    out = torchsci_chem.predict(smiles, model=model, interval=0.9)
    from torchsci_chem.inference import load, member_predictions

    net = load(model)
    first = member_predictions(net, smiles, net.members[0].standardize)[0][0, :, 0]
    results = {f"torchsci ensemble ({len(net.members)} D-MPNN + rdkit2d-v1)": out.value,
               "torchsci, first member alone": first, **results}
    print(f"\n| {args.name} scaffold test ({len(y)} molecules, {unit}) | RMSE | MAE |\n|---|---|---|")
    for name, p in results.items():
        print(f"| {name} | {rmse(p, y):.3f} | {np.mean(np.abs(p - y)):.3f} |")
    covered = (y >= out.lower) & (y <= out.upper)
    print(f"\n90% intervals: coverage {covered.mean():.3f}, mean width {np.mean(out.upper - out.lower):.2f} {unit}; "
          f"in domain {int(out.in_domain.sum())} of {len(y)} (RMSE {rmse(out.value[out.in_domain], y[out.in_domain]):.3f}"
          f", out of domain {rmse(out.value[~out.in_domain], y[~out.in_domain]) if (~out.in_domain).any() else float('nan'):.3f})")
    (workdir / "results.json").write_text(json.dumps({k: rmse(p, y) for k, p in results.items()}, indent=1))


if __name__ == "__main__":
    main()
