"""Quark vs gluon jet tagging on a real ROOT file, end to end, through torchsci.Trainer.

Reads ``uproot-issue96.root`` (scikit-hep-testdata 0.3.12: no download), trains a tagger on even
events, reports the weighted ROC AUC and background rejection on odd events against the charged-
multiplicity cut, writes ROC and score plots and a friend tree of scores into the run folder.

    python examples/physics_qg_tagging.py --model physics/particlenet --epochs 10

The same training from the command line: ``torchsci train experiment=physics/qg_tagging``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import torchsci
from torchsci_physics.datasets import issue96_path
from torchsci_physics.metrics import background_rejection, roc_auc
from torchsci_physics.plots import plot_roc, plot_scores
from torchsci_physics.predict import predict_root

MODEL_ARGS = {"physics/particlenet": {"k": 4}, "physics/pfn": {}, "physics/part": {}, "physics/mlp": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics/particlenet", choices=sorted(MODEL_ARGS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--run-dir", default="runs/physics_qg")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_dir = Path(args.run_dir)

    splits = torchsci.registry.create_dataset("physics/qg_issue96")
    model = torchsci.create_model(args.model, **splits.model_kwargs, **MODEL_ARGS[args.model], seed=args.seed)
    task = torchsci.registry.create_task("physics/tagging")
    trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=256, lr=2e-3, scheduler="cosine", device="auto",
                               seed=args.seed, run_dir=run_dir)
    start = time.perf_counter()
    run = trainer.fit(model, task, splits.train, splits.val)
    seconds = time.perf_counter() - start
    jets = len(splits.train) * len(run.history)
    print(f"trained {args.model} in {seconds:.0f} s ({jets / seconds:.0f} jets/s)")

    best = torchsci.load_model(run.best_checkpoint)
    test = splits.test
    probs = trainer.predict(best, task, test).numpy()
    labels, weights = test.arrays["label"], test.arrays["weight"]
    multiplicity = test.arrays["features"][:, 2]  # charged_multiplicity: the classic single-variable tagger
    leading = test.arrays["object"] == 0
    print(f"{'odd events':<34}{'AUC':>8}{'1/eps_B@30%':>14}{'1/eps_B@50%':>14}")
    for name, score in ((args.model, probs), ("charged multiplicity", np.stack([-multiplicity, multiplicity], 1))):
        for which, rows in (("both jets", slice(None)), ("leading jet", leading)):
            auc = roc_auc(labels[rows], score[rows], weights[rows])
            r30, r50 = (background_rejection(labels[rows], score[rows], weights[rows], e) for e in (0.3, 0.5))
            print(f"{name + ', ' + which:<34}{auc:>8.3f}{r30:>14.1f}{r50:>14.1f}")

    plot_roc({args.model: (labels, probs, weights), "charged multiplicity": (labels, np.stack([-multiplicity, multiplicity], 1), weights)},
             run_dir / "roc.png", signal_name="gluon", background_name="quark")
    plot_scores(labels, probs, weights, run_dir / "scores.png", class_names=["quark", "gluon"])
    out = predict_root(best, issue96_path(), run_dir / "scores.root", observers=["EventNumber", "jet1ID", "jet2ID"])
    print(f"wrote {run_dir / 'roc.png'}, {run_dir / 'scores.png'} and the friend tree {out}")


if __name__ == "__main__":
    main()
