"""Featurisation speed: torchsci_chem.featurize against chemprop 2.3.1's featuriser and a plain RDKit-to-numpy loop.

The plain loop is the usual way a featuriser is written: per atom, a Python list of one-hot blocks
built with ``list.index``, then ``np.array`` per molecule. Both produce the same features (checked).
chemprop's ``SimpleMoleculeMolGraphFeaturizer`` (its default, V2 atom features) runs on the same
SMILES in its own environment (it pins an older rdkit) through ``benchmarks/chem_chemprop_peer.py``,
one process, timed inside that process (start-up excluded): SMILES to MolGraph, and the featuriser
alone on molecules parsed beforehand. Its features differ from ours (72 atom and 14 bond columns
against our 55 and 14), so only speed is compared. Rounds are interleaved so that load on the
shared machine hits all alike; the load average is printed.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_featurize.py --repeat 3 \\
        --chemprop-python /root/bench-venvs/chemprop/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
from rdkit import Chem

from torchsci_chem import featurize as F
from torchsci_chem import graphs as G

PEER = Path(__file__).with_name("chem_chemprop_peer.py")


def _onek(value, choices):
    row = [0.0] * (len(choices) + 1)
    row[choices.index(value) if value in choices else -1] = 1.0
    return row


def plain_loop(smiles: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        atoms = []
        for a in mol.GetAtoms():
            atoms.append(_onek(a.GetAtomicNum(), list(F.ELEMENTS)) + _onek(a.GetTotalDegree(), list(range(6)))
                         + _onek(a.GetFormalCharge(), list(G._CHARGES)) + _onek(a.GetChiralTag(), list(G._CHIRAL))
                         + _onek(a.GetTotalNumHs(), list(range(5))) + _onek(a.GetHybridization(), list(G._HYBRID))
                         + [float(a.GetIsAromatic()), float(a.IsInRing()), a.GetMass() * 0.01])
        bonds, edges = [], []
        for b in mol.GetBonds():
            f = (_onek(b.GetBondType(), list(G._BOND_TYPES)) + [float(b.GetIsConjugated()), float(b.IsInRing())]
                 + _onek(b.GetStereo(), list(G._STEREO)))
            u, v = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
            bonds += [f, f]
            edges += [(u, v), (v, u)]
        out.append((np.array(atoms, dtype=np.float32), np.array(bonds, dtype=np.float32).reshape(-1, F.BOND_FEATURES),
                    np.array(edges, dtype=np.int64).reshape(-1, 2).T))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best of each is reported")
    parser.add_argument("--copies", type=int, default=4, help="ESOL repeated this many times (1,128 each)")
    parser.add_argument("--chemprop-python", help="python of the chemprop 2.3.1 environment; without it, no chemprop rows")
    args = parser.parse_args()
    import csv

    with files("torchsci_chem").joinpath("data/ESOL.csv").open() as fh:
        smiles = [row["smiles"] for row in csv.DictReader(fh)] * args.copies
    ours = F.featurize(smiles[:50]).graphs
    theirs = plain_loop(smiles[:50])
    for g, (a, b, e) in zip(ours, theirs, strict=True):  # same features, or the comparison is meaningless
        assert np.allclose(g.atoms, a) and np.allclose(g.bonds, b) and (g.edge_index == e).all()
    best: dict[str, float] = {}
    runs = {"plain RDKit loop, 1 process": lambda: plain_loop(smiles),
            "torchsci_chem.featurize, 1 process": lambda: F.featurize(smiles),
            "torchsci_chem.featurize, 2 processes": lambda: F.featurize(smiles, n_jobs=2),
            "torchsci_chem.featurize, cached (2nd pass)": None}
    smiles_file = Path(tempfile.mkdtemp(), "smiles.txt")
    smiles_file.write_text("\n".join(smiles))
    for _ in range(args.repeat):
        if args.chemprop_python:
            out = smiles_file.with_name("chemprop.json")
            subprocess.run([args.chemprop_python, str(PEER), "featurize", str(smiles_file), str(out)], check=True)
            timing = json.loads(out.read_text())
            assert timing["n"] == len(smiles)
            for key, name in (("from_smiles_seconds", "chemprop 2.3.1 make_mol + MolGraph featuriser, 1 process"),
                              ("from_mols_seconds", "chemprop 2.3.1 MolGraph featuriser on parsed mols, 1 process")):
                best[name] = max(best.get(name, 0.0), len(smiles) / timing[key])
        for name, fn in runs.items():
            if fn is None:
                cache = F.GraphCache()
                F.featurize(smiles, cache=cache)
                fn = lambda cache=cache: F.featurize(smiles, cache=cache)  # noqa: E731
            t = time.perf_counter()
            fn()
            rate = len(smiles) / (time.perf_counter() - t)
            best[name] = max(best.get(name, 0.0), rate)
    print(f"{len(smiles)} molecules (ESOL x{args.copies}), best of {args.repeat}, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| featuriser | molecules/s |\n|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} |")
    if args.chemprop_python:
        ratio = best["torchsci_chem.featurize, 1 process"] / best["chemprop 2.3.1 make_mol + MolGraph featuriser, 1 process"]
        print(f"torchsci_chem.featurize (1 process, SMILES in) / chemprop (1 process, SMILES in): {ratio:.2f}x")


if __name__ == "__main__":
    main()
