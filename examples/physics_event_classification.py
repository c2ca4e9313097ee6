"""Event classification from four-vectors, end to end: an analysis ntuple, pair invariants, folds, sculpting.

Writes ``resonance.root`` (a generated ntuple: signal in tree ``signal``, background in two trees; the
class is whether one pair of the four jets, in random order, comes from a 125 GeV resonance), trains
the experiment config ``physics/event_classification`` (``physics/pairnet``, reweighted flat in HT,
observers carried along) and, for comparison, a Deep Set (``physics/pfn``) and the Particle Transformer
on the same data; reports the weighted test AUC and the sculpting of the background's true mass at 50%
signal efficiency, writes ``roc.png`` and ``sculpting.png``; with ``--kfold``, trains the five folds of
``event_number % 5`` and writes one out-of-fold friend tree per input tree.

    python examples/physics_event_classification.py --models physics/pairnet physics/pfn --kfold
    python examples/physics_event_classification.py --write-only      # just the ntuple, for the CLI:
    torchsci train experiment=physics/event_classification
    torchsci physics kfold experiment=physics/event_classification
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import torchsci
from torchsci.runner import build, build_trainer
from torchsci_physics.folds import train_folds
from torchsci_physics.metrics import roc_auc
from torchsci_physics.plots import plot_roc
from torchsci_physics.sculpting import plot_sculpting, sculpting
from torchsci_physics.toys import write_resonance_ntuple

MODEL_ARGS = {
    "physics/pairnet": [],
    "physics/pfn": ["model.name=physics/pfn", "~model.dim", "~model.pair_widths", "~model.message", "~model.rounds"],
    "physics/part": ["model.name=physics/part", "~model.pair_widths", "~model.message", "~model.rounds",
                     "+model.heads=4", "+model.blocks=2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--models", nargs="+", default=["physics/pairnet", "physics/pfn"], choices=sorted(MODEL_ARGS))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--run-dir", default="runs/physics_events")
    parser.add_argument("--kfold", action="store_true", help="also train the 5 folds and write out-of-fold friend trees")
    parser.add_argument("--write-only", action="store_true", help="only write resonance.root (for the CLI)")
    args = parser.parse_args()
    ntuple = write_resonance_ntuple("resonance.root", args.events, objects=4, seed=0, trees_by_class=True)
    print(f"wrote {ntuple}: trees signal, background_a, background_b")
    if args.write_only:
        return
    run_dir = Path(args.run_dir)
    base = ["experiment=physics/event_classification", f"trainer.max_epochs={args.epochs}", "trainer.progress=false"]
    curves, shapes = {}, {}
    for name in args.models:
        cfg = torchsci.compose([*base, *MODEL_ARGS[name], f"run_dir={run_dir / name.split('/')[1]}"])
        trainer = build_trainer(cfg, run_dir / name.split("/")[1])
        torchsci.seed_everything(cfg.seed)
        model, task, splits = build(cfg)
        start = time.perf_counter()
        fit = trainer.fit(model, task, splits.train, collate_fn=splits.collate_fn)
        seconds = time.perf_counter() - start
        best = torchsci.load_model(fit.best_checkpoint or fit.last_checkpoint)
        test = splits.test.arrays
        probs = trainer.predict(best, task, splits.test).numpy()
        labels, weights, mass = test["label"], test["weight"], test["observers"][:, 1]
        auc = roc_auc(labels, probs, weights)
        shape = sculpting(mass, labels, probs, weights, efficiency=0.5)
        print(f"{name:<18} test AUC {auc:.3f}   sculpting JSD at 50% signal eff. {shape.jsd:.3f} "
              f"(background kept {shape.background_efficiency:.1%})   {seconds:.0f} s")
        curves[name], shapes[name] = (labels, probs, weights), shape
    plot_roc(curves, run_dir / "roc.png")
    for name, shape in shapes.items():
        plot_sculpting(shape, run_dir / f"sculpting_{name.split('/')[1]}.png", observable="true pair mass [GeV]")
    print(f"wrote {run_dir / 'roc.png'} and the sculpting plots")
    if args.kfold:
        result = train_folds(torchsci.compose([*base, f"run_dir={run_dir / 'kfold'}"]), run_dir / "kfold")
        print(f"k-fold: test AUC per fold {np.round([t['test/auc'] for t in result.test], 3).tolist()}")
        for source, friend in result.friends.items():
            print(f"  {source} -> {friend}")


if __name__ == "__main__":
    main()
