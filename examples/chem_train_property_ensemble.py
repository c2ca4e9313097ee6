"""The recipe of the shipped property models: ``model="esol"``, ``"lipo"`` and ``"freesolv"``
(torchsci_chem/weights/{esol,lipo,freesolv}-dmpnn-rdkit2d.safetensors; MODEL_CARD.md, MODEL_CARD_lipo.md,
MODEL_CARD_freesolv.md).

D-MPNNs with the named descriptor list ``rdkit2d-v1`` before the head, on standardised molecules, trained
through torchsci.Trainer, each member with its own initialisation seed, the best-validation checkpoint kept.
ESOL uses a random 80/10/10 split (seed 0), Lipophilicity and FreeSolv a scaffold-balanced one (seed 0).
The validation split calibrates the conformal intervals and the in-domain threshold, both stored in the
weight file with the training fingerprints; the test split is only reported (against chemprop:
benchmarks/chem_lipo_freesolv.py; ESOL's external set: benchmarks/chem_external.py).

    # members can train in separate processes, then one call assembles them
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python examples/chem_train_property_ensemble.py lipo --out /tmp/lipo --member 0
    ...
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python examples/chem_train_property_ensemble.py lipo --out /tmp/lipo --assemble
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import torchsci
from torchsci.registry import registry
from torchsci_chem.domain import nearest_similarity, packed_fingerprints
from torchsci_chem.ensembles import calibrated_ensemble
from torchsci_chem.featurize import parse_smiles
from torchsci_chem.inference import member_predictions
from torchsci_chem.standardize import DEFAULT_STANDARDIZE
from torchsci_chem.uncertainty import interval, spread

SPLITS = {"esol": "random", "lipo": "scaffold", "freesolv": "scaffold"}
RECIPE = {"property": "lipo", "members": 5, "hidden": 200, "depth": 3, "readout": "mean", "ffn_hidden": 200, "epochs": 30,
          "batch_size": 50, "lr": 1e-3, "scheduler": "cosine", "split": "scaffold", "split_seed": 0,
          "extra": "rdkit2d-v1", "standardize": list(DEFAULT_STANDARDIZE), "domain_coverage": 0.95}
ARCH = ("hidden", "depth", "readout", "ffn_hidden")


def dataset():
    return registry.create_dataset(f"chem/{RECIPE['property']}", split=RECIPE["split"], seed=RECIPE["split_seed"],
                                   extra=RECIPE["extra"], standardize=RECIPE["standardize"])


def train_member(k: int, out: Path) -> None:
    start = time.perf_counter()
    data = dataset()
    torch.manual_seed(k)
    model = torchsci.create_model("chem/dmpnn", **{a: RECIPE[a] for a in ARCH}, **data.model_kwargs)
    trainer = torchsci.Trainer(max_epochs=RECIPE["epochs"], batch_size=RECIPE["batch_size"], lr=RECIPE["lr"],
                               scheduler=RECIPE["scheduler"], seed=k, device="cpu", run_dir=out / f"member{k}",
                               verbose=False, tensorboard=False)
    run = trainer.fit(model, registry.create_task("chem/property"), data.train, val_data=data.val,
                      collate_fn=data.collate_fn)
    save_file({n: t.contiguous() for n, t in torchsci.load_model(run.best_checkpoint).state_dict().items()},
              out / f"member{k}.safetensors")
    print(f"member {k}: best val RMSE {run.best_score:.3f}; {time.perf_counter() - start:.0f} s", flush=True)


def assemble(out: Path) -> None:
    data = dataset()
    members = []
    for k in range(RECIPE["members"]):
        members.append(torchsci.create_model("chem/dmpnn", **{a: RECIPE[a] for a in ARCH}, **data.model_kwargs))
        members[-1].load_state_dict(load_file(out / f"member{k}.safetensors"))
    # intervals calibrated on the validation split, the domain from the training molecules (the library's
    # calibrated_ensemble; tests/chem/test_ensembles.py rebuilds the shipped ESOL file's calibration with it)
    ensemble = calibrated_ensemble(members, data, domain_coverage=RECIPE["domain_coverage"])
    kwargs = ensemble.torchsci_spec["kwargs"]
    steps = RECIPE["standardize"]
    fingerprints = ensemble.domain_fingerprints.numpy()
    scores, beta = ensemble.conformal_scores.numpy(), float(ensemble.conformal_beta)
    threshold = float(ensemble.domain_threshold)

    def evaluate(part):
        members, variances = member_predictions(ensemble, part.smiles, steps)
        mean, sigma = spread(members, variances)
        similarity = nearest_similarity(packed_fingerprints([parse_smiles(s, steps) for s in part.smiles]),
                                        fingerprints)
        return part.targets[:, 0].astype(np.float64), mean[:, 0], sigma[:, 0], members[:, :, 0], similarity

    y_val, mu_val, _, _, _ = evaluate(data.val)
    y, mu, sigma, members, sim = evaluate(data.test)
    rmse = lambda p: float(np.sqrt(np.mean((p - y) ** 2)))  # noqa: E731
    lo, hi = interval(mu, sigma, scores, beta, 0.9)
    path = out / f"{RECIPE['property']}-dmpnn-rdkit2d.safetensors"
    save_file({n: t.contiguous() for n, t in ensemble.state_dict().items()}, path)
    summary = {"recipe": RECIPE, "kwargs": kwargs, "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
               "val_rmse_ensemble": float(np.sqrt(np.mean((mu_val - y_val) ** 2))),
               "test_rmse_ensemble": rmse(mu), "test_mae_ensemble": float(np.mean(np.abs(mu - y))),
               "test_rmse_members": [rmse(m) for m in members], "conformal_beta": beta,
               "test_coverage_90": float(np.mean((y >= lo) & (y <= hi))), "test_mean_width_90": float(np.mean(hi - lo)),
               "domain_threshold": threshold, "test_in_domain": float(np.mean(sim >= threshold)),
               "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "kwargs"}, indent=1))


def parser(prog: str | None = None, fixed_property: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``fixed_property`` drops the positional (examples/chem_train_esol_ensemble.py)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    if fixed_property is None:
        p.add_argument("property", choices=sorted(SPLITS))
    p.add_argument("--members", type=int, default=RECIPE["members"])
    p.add_argument("--out", default=f"runs/{fixed_property or 'property'}-ensemble")
    p.add_argument("--member", type=int, help="train this member only")
    p.add_argument("--assemble", action="store_true", help="build the ensemble file from trained members")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="(smoke tests only)")
    return p


def main(argv: list[str] | None = None, fixed_property: str | None = None, prog: str | None = None) -> None:
    args = parser(prog, fixed_property).parse_args(argv)
    name = fixed_property or args.property
    out = Path(args.out)
    RECIPE.update(epochs=args.epochs, property=name, members=args.members, split=SPLITS[name])
    out.mkdir(parents=True, exist_ok=True)
    if args.member is not None:
        train_member(args.member, out)
    if args.assemble:
        assemble(out)
    if args.member is None and not args.assemble:
        for k in range(RECIPE["members"]):
            train_member(k, out)
        assemble(out)


if __name__ == "__main__":
    main()
