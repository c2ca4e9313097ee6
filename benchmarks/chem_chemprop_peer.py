"""The chemprop side of the chemistry benchmarks, run with the python of chemprop's own environment.

chemprop 2.3.1 pins an older rdkit than torchsci_chem uses, so it lives in a separate virtual
environment and is never a project dependency. ``chem_esol.py`` and ``chem_featurize.py`` launch this
script with that environment's python (``--chemprop-python``); it is not meant to be run by hand.

``train OUT_JSON CHEMPROP_TRAIN_ARGS...`` runs chemprop's own ``chemprop train`` command unchanged and
records the wall time of its ``Trainer.fit`` (the same span torchsci's rate is taken over: training
with per-epoch validation and checkpoints, featurisation and testing excluded).

``featurize SMILES_FILE OUT_JSON`` times chemprop's molecule featuriser on one process: SMILES to
``MolGraph`` (``make_mol`` then ``SimpleMoleculeMolGraphFeaturizer``, as chemprop's datasets do), and
the featuriser alone on molecules parsed beforehand.

``predict MODEL_PT SMILES_FILE OUT_JSON [NUM_WORKERS [THREADS]]`` times predicting the SMILES with a trained
chemprop model the way ``chemprop predict --num-workers NUM_WORKERS`` does (``make_mol`` through chemprop's
``parallel_execute``, ``MoleculeDataset``, ``build_dataloader`` with its default batch of 64 and
NUM_WORKERS loader workers, lightning's ``Trainer.predict``) with THREADS torch threads (default 0 workers,
one thread): import, model loading and a warm-up batch excluded, SMILES parsing and featurisation included.
"""

from __future__ import annotations

import json
import sys
import time


def train(out_json: str, argv: list[str]) -> None:
    from chemprop.cli.main import main
    from lightning import pytorch as pl

    fit = pl.Trainer.fit
    seconds: list[float] = []

    def timed_fit(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fit(self, *args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    pl.Trainer.fit = timed_fit  # timing only: chemprop's CLI runs exactly as shipped
    sys.argv = ["chemprop", "train", *argv]
    main()
    with open(out_json, "w") as fh:
        json.dump({"fit_seconds": seconds}, fh)


def featurize(smiles_file: str, out_json: str) -> None:
    from chemprop.featurizers import SimpleMoleculeMolGraphFeaturizer
    from chemprop.utils import make_mol

    with open(smiles_file) as fh:
        smiles = fh.read().split()
    featurizer = SimpleMoleculeMolGraphFeaturizer()
    start = time.perf_counter()
    graphs = [featurizer(make_mol(s)) for s in smiles]
    from_smiles = time.perf_counter() - start
    mols = [make_mol(s) for s in smiles]
    start = time.perf_counter()
    graphs = [featurizer(m) for m in mols]
    from_mols = time.perf_counter() - start
    with open(out_json, "w") as fh:
        json.dump({"n": len(graphs), "from_smiles_seconds": from_smiles, "from_mols_seconds": from_mols}, fh)


def predict(model_path: str, smiles_file: str, out_json: str, num_workers: int = 0, threads: int = 1) -> None:
    import torch
    from chemprop import data
    from chemprop.models.utils import load_model
    from chemprop.utils import make_mol, parallel_execute
    from lightning import pytorch as pl

    torch.set_num_threads(threads)
    with open(smiles_file) as fh:
        smiles = fh.read().split()
    model = load_model(model_path, False)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", devices=1)

    def run(batch: list[str]) -> int:
        # as chemprop.cli.predict with --num-workers N: parallel_execute's process pool for make_mol, then the
        # dataset featurised on the fly by the DataLoader's N workers
        mols = parallel_execute(make_mol, [(s, False, False, False, False) for s in batch], n_workers=num_workers)
        dset = data.MoleculeDataset([data.MoleculeDatapoint(m, name=s) for s, m in zip(batch, mols, strict=True)],
                                    n_workers=num_workers)
        loader = data.build_dataloader(dset, 64, num_workers, shuffle=False, drop_last=False)
        return sum(len(p) for p in trainer.predict(model, loader))

    run(smiles[:64])  # warm-up: lightning's first predict sets itself up
    start = time.perf_counter()
    n = run(smiles)
    seconds = time.perf_counter() - start
    with open(out_json, "w") as fh:
        json.dump({"n": n, "seconds": seconds, "num_workers": num_workers, "threads": torch.get_num_threads()}, fh)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "featurize":
        featurize(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "predict":
        predict(sys.argv[2], sys.argv[3], sys.argv[4], *(int(a) for a in sys.argv[5:7]))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}: use 'train', 'featurize' or 'predict'")
