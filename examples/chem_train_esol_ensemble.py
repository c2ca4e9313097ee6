"""The recipe of the shipped ESOL model (torchsci_chem/weights/esol-dmpnn.safetensors; see MODEL_CARD.md).

Five D-MPNNs trained through torchsci.Trainer on the same random 80/10/10 split (seed 0), each with its
own initialisation seed; the checkpoint with the best validation RMSE of each is kept; the test RMSE
of every member and of the ensemble mean is printed. Writes the safetensors file and prints its sha256.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python examples/chem_train_esol_ensemble.py --out /tmp/esol
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import torchsci
from torchsci.registry import registry

RECIPE = {"members": 5, "hidden": 200, "depth": 3, "readout": "mean", "ffn_hidden": 200, "epochs": 40,
          "batch_size": 50, "lr": 1e-3, "scheduler": "cosine", "split": "random", "split_seed": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/esol-ensemble")
    args = parser.parse_args()
    out = Path(args.out)
    data = registry.create_dataset("chem/esol", split=RECIPE["split"], seed=RECIPE["split_seed"])
    arch = {k: RECIPE[k] for k in ("hidden", "depth", "readout", "ffn_hidden")}
    task = registry.create_task("chem/property")
    ensemble = torchsci.create_model("chem/dmpnn_ensemble", members=RECIPE["members"], **arch, **data.model_kwargs)
    member_rmse = []
    for k in range(RECIPE["members"]):
        torch.manual_seed(k)
        model = torchsci.create_model("chem/dmpnn", **arch, **data.model_kwargs)
        trainer = torchsci.Trainer(max_epochs=RECIPE["epochs"], batch_size=RECIPE["batch_size"], lr=RECIPE["lr"],
                                   scheduler=RECIPE["scheduler"], seed=k, device="cpu", run_dir=out / f"member{k}",
                                   verbose=False, tensorboard=False)
        run = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
        test = trainer.test(run.model, task, data.test, collate_fn=data.collate_fn, ckpt_path=run.best_checkpoint)
        member_rmse.append(test["test/rmse"])
        ensemble.members[k].load_state_dict(run.model.state_dict())
        print(f"member {k}: best val RMSE {run.best_score:.3f}, test RMSE {test['test/rmse']:.3f}", flush=True)
    trainer = torchsci.Trainer(device="cpu", run_dir=out / "ensemble", verbose=False, tensorboard=False)
    test = trainer.test(ensemble, task, data.test, collate_fn=data.collate_fn)
    y = np.array([data.test[i][2][0] for i in range(len(data.test))])
    print(f"ensemble test RMSE {test['test/rmse']:.3f} (members {np.mean(member_rmse):.3f} +- "
          f"{np.std(member_rmse):.3f}) on {len(y)} molecules")
    path = out / "esol-dmpnn.safetensors"
    save_file({k: v.contiguous() for k, v in ensemble.state_dict().items()}, path)
    kwargs = {"members": RECIPE["members"], **arch, **data.model_kwargs}
    summary = {"recipe": RECIPE, "kwargs": kwargs, "test_rmse_ensemble": test["test/rmse"],
               "test_mae_ensemble": test["test/mae"], "test_rmse_members": member_rmse,
               "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
               "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "kwargs"}, indent=1))
    assert math.isfinite(test["test/rmse"])


if __name__ == "__main__":
    main()
