"""Training jets/s: the same ParticleNet on the same jets, trained by torchsci and by weaver-core, in one run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/physics_train.py --weaver-python /root/bench-venvs/weaver/bin/python

weaver-core lives in its own benchmark venv (never a torchsci dependency)::

    python3.11 -m venv /root/bench-venvs/weaver
    /root/bench-venvs/weaver/bin/pip install torch==2.13.0 weaver-core==0.5.3

Data: the jets of ``uproot-issue96.root`` (``jetID > 0``, both jets of each event) written by uproot
as one jet per entry (TTree ``jets``): the 8 track features of the q/g example (delta eta, delta
phi, log pT, log E, log pT and E fractions, delta R, charge) for up to 6 leading tracks, stored as
jagged branches so both frameworks read the same numbers. Model on both sides: ParticleNet with
k = 4, EdgeConv blocks (32, 32, 32) and (64, 64, 64), mean pooling over real tracks, a 128-wide
head with dropout 0.1, 2 classes; Adam, lr 1e-3, batch 256, CPU, one thread each, in-memory data,
main-process loading. Inputs are standardised with the same training-set means and widths.

Each framework trains ``--steps`` steps per run; runs alternate (torchsci, weaver, torchsci, ...).
torchsci's rates are steps x batch over the wall time of ``Trainer.fit`` (data already read; set-up
and the final fsync'd checkpoint included) and the Trainer's own ``train/items_per_s`` of its training
loop (like weaver's figure, no set-up or checkpoint); weaver's is the ``avg. speed`` of its own
training-epoch log line (its in-memory read of this small file falls inside that epoch), and its
whole-process wall time is reported beside it.

``--models physics/pairnet ...`` adds torchsci rows for other models on the same jets (tracks as the
set, their four-momenta for pair features; ``physics/pairnet`` at dim 32, pair MLP 32-32, messages
32-32, two rounds; ``physics/part`` at its defaults): jets/s only, weaver-core runs ParticleNet alone.
``--models physics/part`` also runs weaver-core's ParticleTransformer sized like torchsci's
(``benchmarks/weaver/part.py``: embedding 64, 3 + 1 blocks, 4 heads, pair embedding 64-64-64, head 64,
no dropout; the tracks' four-momenta as its ``pf_vectors``), interleaved after torchsci's ParT.
``--weaver-python none`` skips weaver-core.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time

import awkward as ak
import numpy as np
import uproot

import torchsci
from torchsci_physics.data import RootDataset
from torchsci_physics.datasets import QG_ISSUE96, issue96_path

FEATURES = ("deta", "dphi", "log_pt", "log_energy", "log_pt_frac", "log_energy_frac", "dR", "charge")
HERE = os.path.dirname(os.path.abspath(__file__))


def make_jet_file(directory: str) -> tuple[str, np.ndarray, np.ndarray]:
    """One jet per entry, track features as jagged branches; returns the path and the feature mean/std."""
    jets = RootDataset({**QG_ISSUE96, "files": issue96_path(), "splits": {}}).arrays
    counts = jets["mask"].sum(1)
    real = jets["particles"][jets["mask"]]
    columns: dict[str, object] = {"event": jets["entry"], "label_gluon": jets["label"].astype(np.int32),
                                  "label_quark": (1 - jets["label"]).astype(np.int32)}
    tracks = {f"trk_{name}": real[:, i] for i, name in enumerate(FEATURES)}
    tracks.update({f"trk_{c}": jets["vectors"][jets["mask"]][:, i] for i, c in enumerate(("px", "py", "pz", "E"))})
    columns["trk"] = ak.zip({k[4:]: ak.unflatten(v, counts) for k, v in tracks.items()})
    path = os.path.join(directory, "issue96_jets.root")
    with uproot.recreate(path) as f:
        f.mktree("jets", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in columns.items()})
        f["jets"].extend(columns)
    return path, real.mean(0), real.std(0)


def weaver_data_config(path: str, mean: np.ndarray, std: np.ndarray, vectors: bool = False) -> str:
    """weaver's data config: the same inputs, standardised with the same numbers, no clipping (``vectors``: the
    tracks' four-momenta as ``pf_vectors`` too, for ParT's pair features)."""
    def var(name: str, i: int) -> str:
        return f"      - [trk_{name}, {mean[i]:.8g}, {1 / std[i]:.8g}, -1.0e+9, 1.0e+9, 0]"
    lines = ["treename: jets", "selection: null", "new_variables:", "  trk_mask: ak.ones_like(trk_deta)",
             # weaver wants one set of preprocessing numbers per variable name: the points get their own names
             "  point_deta: trk_deta", "  point_dphi: trk_dphi",
             "preprocess:", "  method: manual", "  data_fraction: 1", "inputs:",
             "  pf_points:", "    length: 6", "    pad_mode: constant", "    vars:",
             "      - [point_deta, 0, 1, -1.0e+9, 1.0e+9, 0]", "      - [point_dphi, 0, 1, -1.0e+9, 1.0e+9, 0]",
             "  pf_features:", "    length: 6", "    pad_mode: constant", "    vars:",
             *[var(name, i) for i, name in enumerate(FEATURES)],
             *(["  pf_vectors:", "    length: 6", "    pad_mode: constant", "    vars:",
                *[f"      - [trk_{c}, null]" for c in ("px", "py", "pz", "E")]] if vectors else []),
             "  pf_mask:", "    length: 6", "    pad_mode: constant", "    vars:", "      - [trk_mask, null]",
             "labels:", "  type: simple", "  value: [label_quark, label_gluon]", "observers: []", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


MODELS = {"physics/particlenet": dict(k=4, blocks=[[32, 32, 32], [64, 64, 64]], head=[128], dropout=0.1),
          "physics/pairnet": dict(dim=32, pair_widths=[32, 32], message=[32, 32], rounds=2),
          "physics/part": {}, "physics/pfn": {}}


def torchsci_run(jet_file: str, steps: int, batch_size: int, run_dir: str, model_name: str = "physics/particlenet"
                 ) -> tuple[float, float]:
    """jets/s over the wall time of ``Trainer.fit``, and the Trainer's own rate of its training loop."""
    spec = {"files": jet_file, "tree": "jets",
            "particles": {"p4": {"px": "trk_px", "py": "trk_py", "pz": "trk_pz", "E": "trk_E"}, "max_particles": 6,
                          "sort_by": None, "features": {name: f"trk_{name}" for name in FEATURES}},
            "label": "label_gluon", "classes": ["quark", "gluon"], "splits": {"train": "event >= 0"}}
    splits = torchsci.registry.create_dataset("physics/root", **spec)
    model = torchsci.create_model(model_name, **splits.model_kwargs, **MODELS[model_name])
    trainer = torchsci.Trainer(max_epochs=1000, max_steps=steps, batch_size=batch_size, optimizer="adam", lr=1e-3,
                               device="cpu", run_dir=run_dir, verbose=False, tensorboard=False, progress=False,
                               log_every_n_steps=10**9)
    start = time.perf_counter()
    result = trainer.fit(model, torchsci.registry.create_task("physics/tagging"), splits.train)
    return steps * batch_size / (time.perf_counter() - start), result.history[-1]["train/items_per_s"]


WEAVER_NETWORKS = {"physics/particlenet": "particlenet.py", "physics/part": "part.py"}


def weaver_run(python: str, jet_file: str, config: str, steps: int, batch_size: int, run_dir: str,
               model_name: str = "physics/particlenet") -> tuple[float, float]:
    command = [python, "-m", "weaver.train", "--data-train", jet_file, "--data-config", config,
               "--network-config", os.path.join(HERE, "weaver", WEAVER_NETWORKS[model_name]),
               "--model-prefix", os.path.join(run_dir, "net"), "--gpus", "", "--num-workers", "0", "--in-memory",
               "--fetch-step", "1", "--train-val-split", "0.9", "--num-epochs", "1", "--steps-per-epoch", str(steps),
               "--steps-per-epoch-val", "1", "--batch-size", str(batch_size), "--optimizer", "adam",
               "--start-lr", "1e-3", "--lr-scheduler", "none"]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=run_dir,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
    wall = time.perf_counter() - start
    speeds = re.findall(r"Processed \d+ entries in total \(avg\. speed ([\d.]+) entries/s\)", out.stdout + out.stderr)
    if out.returncode != 0 or not speeds:
        raise RuntimeError(f"weaver-core failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    return float(speeds[0]), steps * batch_size / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weaver-python", default="/root/bench-venvs/weaver/bin/python")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", nargs="*", default=[], choices=sorted(set(MODELS) - {"physics/particlenet"}),
                        help="more torchsci models to time on the same jets")
    parser.add_argument("--no-particlenet", action="store_true",
                        help="skip the ParticleNet pair (time only --models, e.g. ParT on both sides)")
    args = parser.parse_args()
    use_weaver = args.weaver_python.lower() != "none"
    torch_threads = os.environ.get("OMP_NUM_THREADS")
    with tempfile.TemporaryDirectory() as tmp:
        jet_file, mean, std = make_jet_file(tmp)
        config = weaver_data_config(os.path.join(tmp, "weaver_data.yaml"), mean, std)
        config_vectors = weaver_data_config(os.path.join(tmp, "weaver_data_vectors.yaml"), mean, std, vectors=True)
        rates: dict[str, list[float]] = {"torchsci (fit)": [], "torchsci (training loop)": []}
        if use_weaver:
            rates.update({"weaver": [], "weaver (whole process)": []})
        for m in args.models:
            rates.update({f"torchsci {m} ({part})": [] for part in ("fit", "training loop")})
            if use_weaver and m in WEAVER_NETWORKS:
                rates.update({f"weaver {m}": [], f"weaver {m} (whole process)": []})
        loads = []
        for r in range(args.rounds):
            if not args.no_particlenet:
                fit, loop = torchsci_run(jet_file, args.steps, args.batch_size, os.path.join(tmp, f"t{r}"))
                rates["torchsci (fit)"].append(fit)
                rates["torchsci (training loop)"].append(loop)
                loads.append(os.getloadavg()[0])
            if use_weaver and not args.no_particlenet:
                os.makedirs(os.path.join(tmp, f"w{r}"))
                speed, whole = weaver_run(args.weaver_python, jet_file, config, args.steps, args.batch_size,
                                          os.path.join(tmp, f"w{r}"))
                rates["weaver"].append(speed)
                rates["weaver (whole process)"].append(whole)
                loads.append(os.getloadavg()[0])
            for m in args.models:
                fit, loop = torchsci_run(jet_file, args.steps, args.batch_size, os.path.join(tmp, f"{m[8:]}{r}"), m)
                rates[f"torchsci {m} (fit)"].append(fit)
                rates[f"torchsci {m} (training loop)"].append(loop)
                loads.append(os.getloadavg()[0])
                if use_weaver and m in WEAVER_NETWORKS:
                    os.makedirs(os.path.join(tmp, f"w{m[8:]}{r}"))
                    speed, whole = weaver_run(args.weaver_python, jet_file, config_vectors, args.steps,
                                              args.batch_size, os.path.join(tmp, f"w{m[8:]}{r}"), m)
                    rates[f"weaver {m}"].append(speed)
                    rates[f"weaver {m} (whole process)"].append(whole)
                    loads.append(os.getloadavg()[0])
    print(f"{args.rounds} interleaved rounds of {args.steps} steps x batch {args.batch_size}, OMP_NUM_THREADS="
          f"{torch_threads}, load average {min(loads):.1f}-{max(loads):.1f}")
    print("| trainer | jets/s per round | best | vs weaver-core (best) |\n| --- | --- | ---: | ---: |")
    rates = {name: values for name, values in rates.items() if values}
    for name, values in rates.items():
        # a model weaver-core also ran is compared with weaver's run of it; the rest with weaver's ParticleNet
        same = (f"weaver {name.split()[1]}" if name.startswith("torchsci physics/") else
                name.split(" (")[0] if name.startswith("weaver physics/") else "weaver")
        same = same if rates.get(same) else "weaver"
        base = max(rates[same]) if use_weaver and rates.get(same) else None
        ratio = f"{max(values) / base:.1f}x vs {same}" if base else "n/a"
        print(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {max(values):,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
