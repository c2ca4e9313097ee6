"""Lab script: train a D-MPNN on a CSV of SMILES and a measured property, test it, predict new molecules.

The Python form of ``torchsci train experiment=chem/esol`` (torchsci_chem/configs/experiment/chem/esol.yaml):

    OMP_NUM_THREADS=1 python examples/chem_property.py                         # ESOL, shipped
    OMP_NUM_THREADS=1 python examples/chem_property.py my.csv --smiles smiles --target logS
"""

from __future__ import annotations

import argparse

import torchsci
from torchsci.registry import registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", nargs="?", help="CSV of SMILES and targets (default: the shipped ESOL)")
    parser.add_argument("--smiles", default="smiles")
    parser.add_argument("--target", default="logS")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--split", default="random", choices=["random", "scaffold", "kfold"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs/chem_property")
    args = parser.parse_args()

    if args.csv:
        data = registry.create_dataset("chem/csv", path=args.csv, smiles=args.smiles, targets=args.target,
                                       split=args.split, seed=args.seed)
    else:
        data = registry.create_dataset("chem/esol", split=args.split, seed=args.seed)
    model = torchsci.create_model("chem/dmpnn", **data.model_kwargs, seed=args.seed)
    task = registry.create_task("chem/property")
    trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=50, lr=1e-3, scheduler="cosine", seed=args.seed,
                               run_dir=args.run_dir, device="cpu")
    run = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
    test = trainer.test(run.model, task, data.test, collate_fn=data.collate_fn, ckpt_path=run.best_checkpoint)
    print(f"test RMSE {test['test/rmse']:.3f}, MAE {test['test/mae']:.3f} on {len(data.test)} molecules")


if __name__ == "__main__":
    main()
