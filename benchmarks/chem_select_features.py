"""Feature choice for the shipped solubility model, by validation RMSE on scaffold-balanced ESOL splits only.

No test set and no external set is looked at here: each candidate trains on the training part of a
scaffold-balanced 80/10/10 split and the best validation RMSE (the checkpoint the Trainer keeps) is
printed. Candidates: the graph alone, the graph plus the named descriptor list ``rdkit2d-v1``, and the
graph plus RDKit's whole (version-dependent) descriptor list, all with the shipped standardisation.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_select_features.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

import torchsci
from torchsci.registry import registry
from torchsci_chem.standardize import DEFAULT_STANDARDIZE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--features", nargs="+", default=["none", "rdkit2d-v1", "descriptors"])
    args = parser.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    print("| scaffold seed | extra features | best validation RMSE | load |\n|---|---|---|---|", flush=True)
    for seed in args.seeds:
        for extra in args.features:
            data = registry.create_dataset("chem/esol", split="scaffold", seed=seed,
                                           extra=None if extra == "none" else extra, standardize=DEFAULT_STANDARDIZE)
            torch.manual_seed(seed)
            model = torchsci.create_model("chem/dmpnn", hidden=200, depth=3, readout="mean", ffn_hidden=200,
                                          **data.model_kwargs)
            trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=50, lr=1e-3, scheduler="cosine", seed=seed,
                                       device="cpu", run_dir=tempfile.mkdtemp(), verbose=False, tensorboard=False)
            run = trainer.fit(model, registry.create_task("chem/property"), data.train, val_data=data.val,
                              collate_fn=data.collate_fn)
            print(f"| {seed} | {extra} | {run.best_score:.3f} | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
