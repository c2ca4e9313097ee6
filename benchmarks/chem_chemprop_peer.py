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


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "featurize":
        featurize(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}: use 'train' or 'featurize'")
