"""Named descriptors: every name resolves, values match RDKit's own functions, and a changed RDKit is caught."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rdkit
import torch
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors

from torchsci.testing import check_model
from torchsci_chem.descriptors import (
    DESCRIPTOR_SETS,
    RDKIT2D_V1,
    REFERENCE_PANEL,
    DescriptorMismatchError,
    aromatic_proportion,
    check_reference,
    compute_descriptors,
    reference_values,
)
from torchsci_chem.featurize import collate_graphs, featurize, molecule_features
from torchsci_chem.models import DMPNN, select_molecules


def test_every_shipped_descriptor_exists_and_is_finite_on_the_panel():
    assert len(set(RDKIT2D_V1)) == len(RDKIT2D_V1) and DESCRIPTOR_SETS["rdkit2d-v1"] == RDKIT2D_V1
    values = reference_values(RDKIT2D_V1)
    assert values.shape == (len(REFERENCE_PANEL), len(RDKIT2D_V1)) and np.isfinite(values).all()
    assert (values.std(axis=0) > 0).mean() > 0.7  # the panel tells most descriptors apart


def test_values_are_rdkits_own_functions():
    mols = [Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1Cl", "CC(=O)Nc1ccc(O)cc1")]
    got = compute_descriptors(mols, ["MolLogP", "TPSA", "NumRotatableBonds", "AromaticProportion"])
    want = [[Crippen.MolLogP(m), rdMolDescriptors.CalcTPSA(m), Descriptors.NumRotatableBonds(m),
             aromatic_proportion(m)] for m in mols]
    assert np.allclose(got, want, rtol=1e-6)
    assert aromatic_proportion(mols[1]) == pytest.approx(6 / 7) and aromatic_proportion(mols[0]) == 0.0
    assert np.array_equal(molecule_features(["CCO"], "rdkit2d-v1"), compute_descriptors(mols[:1], RDKIT2D_V1))


def test_a_missing_descriptor_names_itself_and_the_rdkit_version():
    with pytest.raises(DescriptorMismatchError, match=rf"'MolLogP2' does not exist.*RDKit {rdkit.__version__}"):
        compute_descriptors([Chem.MolFromSmiles("CCO")], ["MolWt", "MolLogP2"])


def test_changed_values_name_the_descriptor_the_molecule_and_both_versions():
    names = ["MolWt", "TPSA", "BertzCT"]
    recorded = reference_values(names)
    check_reference(names, recorded)
    recorded[2, 1] += 0.5
    with pytest.raises(DescriptorMismatchError, match=rf"'TPSA' gives .* for {re.escape(REFERENCE_PANEL[2])}.*installed RDKit "
                                                      rf"{rdkit.__version__}.*RDKit 2023\.09\.1"):
        check_reference(names, recorded, "2023.09.1")
    with pytest.raises(DescriptorMismatchError, match="does not belong"):
        check_reference(names, recorded[:, :2])


def test_a_descriptor_model_checks_its_reference_values_when_loaded():
    names = ["MolLogP", "MolWt", "TPSA", "NumHDonors", "AromaticProportion"]
    torch.manual_seed(0)
    model = DMPNN(hidden=16, ffn_hidden=8, extra_features=len(names), extra_kind="named", descriptor_names=names,
                  descriptor_rdkit=rdkit.__version__)
    state = model.state_dict()
    assert torch.equal(state["descriptor_reference"], torch.from_numpy(reference_values(names)))
    DMPNN(hidden=16, ffn_hidden=8, extra_features=len(names), descriptor_names=names).load_state_dict(state)
    state["descriptor_reference"][0, 3] += 1.0
    with pytest.raises(DescriptorMismatchError, match="'NumHDonors'"):
        DMPNN(hidden=16, ffn_hidden=8, extra_features=len(names), descriptor_names=names).load_state_dict(state)
    with pytest.raises(Exception, match="descriptor_names for extra_features=3"):
        DMPNN(hidden=16, extra_features=3, descriptor_names=names)


def test_a_descriptor_model_passes_the_battery():
    names = ["MolLogP", "MolWt", "TPSA", "NumHDonors", "AromaticProportion"]
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "[Na+]", "C/C=C/Cl"]
    extra = compute_descriptors([Chem.MolFromSmiles(s) for s in smiles], names)
    inputs = collate_graphs(featurize(smiles).graphs, extra).inputs()
    torch.manual_seed(0)
    model = DMPNN(hidden=16, ffn_hidden=8, depth=2, extra_features=len(names), descriptor_names=names,
                  extra_mean=extra.mean(0).tolist(), extra_std=(extra.std(0) + 1).tolist())
    report = check_model(model, inputs, batch_of=select_molecules)
    assert {"batch_consistency", "non_contiguous", "float64", "backward", "export:pt2"} <= set(report.passed)
