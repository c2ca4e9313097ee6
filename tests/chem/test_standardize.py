"""Standardisation: salts, charges and stereo as chemists hand them over, with a report of every change."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

import torchsci_chem
from torchsci import ConfigError
from torchsci_chem.featurize import featurize
from torchsci_chem.standardize import DEFAULT_STANDARDIZE, resolve, standardize_report

L_ALA, D_ALA = "C[C@@H](N)C(=O)O", "C[C@H](N)C(=O)O"


def test_enantiomers_get_identical_graphs_and_predictions():
    a, b = featurize([L_ALA, D_ALA], standardize=DEFAULT_STANDARDIZE).graphs
    assert np.array_equal(a.atoms, b.atoms) and np.array_equal(a.bonds, b.bonds)
    raw = featurize([L_ALA, D_ALA]).graphs
    assert not np.array_equal(raw[0].atoms, raw[1].atoms)  # without the step, chirality is a feature
    pred = torchsci_chem.predict([L_ALA, D_ALA, "CC(N)C(=O)O"], model="esol")
    assert pred[0] == pred[1] == pred[2]
    full = torchsci_chem.predict([L_ALA, "F/C=C/F", "F/C=C\\F"], details=True)
    assert full.changes[0] == ["no_stereo"] and full.value[1] == full.value[2]


def test_salts_are_predicted_as_their_parent_and_flagged():
    full = torchsci_chem.predict(["CC(=O)[O-].[Na+]", "CC(=O)O", "c1ccccc1[NH3+].[Cl-]"], details=True)
    assert full.value[0] == full.value[1]
    assert full.standardized[:2] == ["CC(=O)O", "CC(=O)O"] and full.standardized[2] == "Nc1ccccc1"
    assert full.changes[0] == ["removed fragment(s) [Na+]", "neutralize"]
    assert full.flags == [["salt", "metal"], [], ["salt"]]
    assert full.judgeable[1] and not full.judgeable[0] and not full.judgeable[2]


def test_inorganic_and_metal_compounds_cannot_be_judged():
    full = torchsci_chem.predict(["[Na+].[Cl-]", "N.N.Cl[Pt]Cl", "O=[N+]([O-])c1ccccc1"], details=True)
    assert "inorganic" in full.flags[0] and "metal" in full.flags[0]
    assert "metal" in full.flags[1]
    assert full.flags[2] == [] and full.changes[2] == []  # a nitro group is already in RDKit's standard form
    assert full.judgeable.tolist()[:2] == [False, False]


def test_standardize_false_keeps_the_input_and_a_bad_step_is_named():
    assert resolve(False) == () and resolve(True, ("cleanup",)) == ("cleanup",)
    kept = standardize_report("CC(=O)[O-].[Na+]", ())
    assert kept.changes == [] and kept.smiles == Chem.MolToSmiles(Chem.MolFromSmiles("CC(=O)[O-].[Na+]"))
    a = torchsci_chem.predict(["CC(=O)[O-].[Na+]"], standardize=False)
    b = torchsci_chem.predict(["CC(=O)[O-].[Na+]"])
    assert a[0] != b[0]
    with pytest.raises(ConfigError, match="unknown step.*'desalt'"):
        torchsci_chem.predict(["CCO"], standardize=["desalt"])
    with pytest.raises(ConfigError, match="True, False or a list"):
        resolve("cleanup")


def test_tautomer_step_gives_one_form_for_two_tautomers():
    a = standardize_report("Oc1ccccn1", ("tautomer",)).smiles
    b = standardize_report("O=c1cccc[nH]1", ("tautomer",)).smiles
    assert a == b
