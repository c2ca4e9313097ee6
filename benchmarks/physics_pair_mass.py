"""Test AUC on the generated one-pair-mass ntuple: physics/pairnet, the Particle Transformer and a Deep Set.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/physics_pair_mass.py --model physics/pairnet --events 4000 --epochs 15

Data: :func:`torchsci_physics.toys.write_resonance_ntuple` (seed 3), four jets per event in random
order, the class set by whether one pair comes from a 125 GeV resonance (background: a parent mass flat
in 40-300 GeV); jets as one collection (log pT, log E, delta eta, delta phi to the sum of the jets, and
their four-momenta for pair features), MC weights, train on ``event_number % 4 != 0``, test on the rest.
Adam lr 3e-3 with a cosine schedule, batch 128, CPU. The settings of tests/physics/test_pair_mass.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torchsci
from torchsci_physics.data import make_splits
from torchsci_physics.task import TaggingTask
from torchsci_physics.toys import write_resonance_ntuple

MODELS = {"physics/pairnet": dict(dim=32, pair_widths=(32, 32), message=(32, 32)), "physics/pfn": {},
          "physics/part": dict(dim=32, heads=4, blocks=2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="physics/pairnet", choices=sorted(MODELS))
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_resonance_ntuple(os.path.join(tmp, "toy.root"), args.events, 4, seed=3)
        spec = dict(files=str(path), tree="events", label="is_signal", weight="mc_weight",
                    particles=dict(p4={"px": "jet_px", "py": "jet_py", "pz": "jet_pz", "E": "jet_E"}, max_particles=4,
                                   features=["log_pt", "log_energy", "deta", "dphi"]),
                    splits={"train": "event_number % 4 != 0", "test": "event_number % 4 == 0"})
        splits = make_splits(spec)
        torchsci.seed_everything(args.seed)
        model = torchsci.create_model(args.model, **splits.model_kwargs, **MODELS[args.model])
        trainer = torchsci.Trainer(max_epochs=args.epochs, batch_size=128, lr=3e-3, scheduler="cosine", device="cpu",
                                   run_dir=os.path.join(tmp, "run"), verbose=False, tensorboard=False, progress=False)
        task = TaggingTask()
        start = time.perf_counter()
        trainer.fit(model, task, splits.train)
        seconds = time.perf_counter() - start
        test, train = trainer.test(model, task, splits.test)["test/auc"], trainer.test(model, task, splits.train)["test/auc"]
    print(f"{args.model}: test AUC {test:.3f}, train AUC {train:.3f}, {args.events} events x {args.epochs} epochs in "
          f"{seconds:.0f} s (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
