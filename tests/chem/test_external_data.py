"""The external solubility set shares no molecule with ESOL, and its provenance is recorded beside it."""

from __future__ import annotations

import csv
import hashlib
from importlib.resources import files
from pathlib import Path

from rdkit import Chem

from torchsci_chem.datasets import esol_path
from torchsci_chem.featurize import parse_smiles
from torchsci_chem.standardize import DEFAULT_STANDARDIZE

EXTERNAL = Path(str(files("torchsci_chem").joinpath("data/solubility_external.csv")))


def _key(smiles: str) -> str:
    return Chem.MolToInchiKey(parse_smiles(smiles, DEFAULT_STANDARDIZE))[:14]


def test_no_external_molecule_is_in_esol_and_none_repeats():
    with EXTERNAL.open() as fh:
        rows = list(csv.DictReader(fh))
    with esol_path().open() as fh:
        esol = {_key(r["smiles"]) for r in csv.DictReader(fh)}
    keys = [_key(r["smiles"]) for r in rows]
    assert len(rows) == 522 and len(set(keys)) == len(keys)
    assert not set(keys) & esol
    assert keys == [r["inchikey14"] for r in rows]
    assert all(-13.0 < float(r["logS"]) < 2.5 for r in rows)


def test_provenance_names_the_source_licence_and_checksum():
    readme = (EXTERNAL.parent / "README.md").read_text()
    section = readme[readme.index("## solubility_external.csv"):]
    assert "Huuskonen" in section and "Apache-2.0" in section and "BSD-3-Clause" in section
    assert hashlib.sha256(EXTERNAL.read_bytes()).hexdigest() in section
