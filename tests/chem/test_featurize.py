"""Featurisation: feature content, directed-edge layout, invalid input reports, standardisation, cache, speed paths."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from torchsci import ConfigError, DataError
from torchsci_chem import featurize as F
from torchsci_chem import graphs as G


def test_ethanol_atoms_and_bonds():
    g = F.featurize(["CCO"]).graphs[0]
    assert g.atoms.shape == (3, F.ATOM_FEATURES) and g.bonds.shape == (4, F.BOND_FEATURES)
    c, o = F.ELEMENTS.index(6), F.ELEMENTS.index(8)
    assert g.atoms[0, c] == 1 and g.atoms[2, o] == 1 and g.atoms[:, : len(F.ELEMENTS) + 1].sum() == 3
    assert g.atoms[2, G._HS_OFF + 1] == 1  # the hydroxyl O carries one hydrogen
    assert g.atoms[0, G._DEG_OFF + 4] == 1  # total degree counts hydrogens
    assert np.allclose(g.atoms[:, -1], [0.12011, 0.12011, 0.15999], atol=1e-4)
    assert (g.bonds[:, G._BT[int(Chem.BondType.SINGLE)]] == 1).all()


def test_edges_come_in_reverse_pairs_with_equal_features():
    g = F.featurize(["CC(=O)Oc1ccccc1C(=O)O"]).graphs[0]
    e = g.edge_index
    assert (e[0, 0::2] == e[1, 1::2]).all() and (e[1, 0::2] == e[0, 1::2]).all()
    assert np.array_equal(g.bonds[0::2], g.bonds[1::2])


def test_aromaticity_ring_charge_chirality_stereo_and_unknown_element():
    benzene = F.featurize(["c1ccccc1"]).graphs[0]
    assert (benzene.atoms[:, G._AROM_COL] == 1).all() and (benzene.atoms[:, G._AROM_COL + 1] == 1).all()
    assert (benzene.bonds[:, G._BT[int(Chem.BondType.AROMATIC)]] == 1).all()
    charged = F.featurize(["C[N+](C)(C)C"]).graphs[0]
    assert charged.atoms[1, G._CHG_OFF + G._CHARGES.index(1)] == 1
    chiral = F.featurize(["C[C@H](N)O"]).graphs[0]
    assert chiral.atoms[1, G._CHI[int(Chem.ChiralType.CHI_TETRAHEDRAL_CCW)]] == 1
    trans = F.featurize(["F/C=C/F"]).graphs[0]
    double = trans.bonds[:, G._BT[int(Chem.BondType.DOUBLE)]] == 1
    assert trans.bonds[double, G._ST[int(Chem.BondStereo.STEREOE)]].all()
    gold = F.featurize(["[Au]"]).graphs[0]
    assert gold.atoms[0, len(F.ELEMENTS)] == 1  # the "other" element slot
    assert gold.edge_index.shape == (2, 0)


def test_block_reading_matches_rdkits_per_atom_and_per_bond_properties():
    # Degree and ring membership are derived from the bond list and the ring info, with bond ends shifted
    # to the block's numbering: check them against RDKit's own per-atom calls on molecules read as one block.
    smiles = ["[2H]C([2H])([2H])O", "[H]C([H])([H])[H]", "c1ccc2c(c1)CCC2", "C1CC1C1CC1", "[NH4+].[Cl-]",
              "O=[N+]([O-])c1ccccc1", "CC(C)(C)[Si](C)(C)Cl", "[13CH4]", "C1CCC2(CC1)CCCC2", "P(=O)(O)(O)O"]
    mols = [Chem.MolFromSmiles(s) for s in smiles] + [Chem.AddHs(Chem.MolFromSmiles("CC(=O)O"))]  # H atoms in the graph
    graphs = F.mols_to_graphs(mols)
    for mol, g in zip(mols, graphs, strict=True):
        degree = g.atoms[:, G._DEG_OFF:G._DEG_OFF + G._MAX_DEGREE + 2].argmax(1)
        assert degree.tolist() == [min(a.GetTotalDegree(), G._MAX_DEGREE + 1) for a in mol.GetAtoms()]
        assert g.atoms[:, G._AROM_COL + 1].tolist() == [float(a.IsInRing()) for a in mol.GetAtoms()]
        assert np.allclose(g.atoms[:, -1], [a.GetMass() / 100 for a in mol.GetAtoms()])
        assert g.bonds[0::2, G._CONJ_COL + 1].tolist() == [float(b.IsInRing()) for b in mol.GetBonds()]
        assert g.edge_index[:, 0::2].T.tolist() == [[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()]


def test_invalid_smiles_is_one_error_listing_every_bad_row():
    with pytest.raises(DataError) as err:
        F.featurize(["CCO", "C1CC", "", "c1cccc1", "N(C)(C)(C)(C)C"], source="mols.csv")
    msg = str(err.value)
    assert "4 molecule(s) in mols.csv" in msg
    for row, why in [(1, "cannot parse"), (2, "empty"), (3, "sanitise"), (4, "sanitise")]:
        assert f"row {row}:" in msg and why in msg
    assert "on_invalid='skip'" in msg


def test_skip_keeps_the_valid_ones_and_reports_the_rest():
    out = F.featurize(["CCO", "xyz", "C" * 30], on_invalid="skip", max_atoms=20, rows=[2, 3, 4])
    assert out.kept.tolist() == [0]
    assert [r.row for r in out.invalid] == [3, 4]
    assert "more than max_atoms=20" in out.report()
    with pytest.raises(ConfigError):
        F.featurize(["CCO"], on_invalid="ignore")


def test_standardisation_strips_salts_and_neutralises():
    out = F.featurize(["CC(=O)[O-].[Na+]"], standardize=("largest_fragment", "neutralize")).graphs[0]
    assert out.num_atoms == 4
    assert out.atoms[:, G._CHG_OFF + G._CHARGES.index(0)].all()
    with pytest.raises(ConfigError, match="unknown step"):
        F.featurize(["CCO"], standardize=("desalt",))


def test_cache_is_keyed_by_canonical_smiles_and_bound_to_settings():
    cache = F.GraphCache()
    first = F.featurize(["OCC", "CCO", "c1ccccc1"], cache=cache)
    assert len(cache) == 2 and first.graphs[0] is first.graphs[1]
    again = F.featurize(["CCO"], cache=cache)
    assert again.graphs[0] is first.graphs[0]
    with pytest.raises(ConfigError, match="one cache per standardisation"):
        F.featurize(["CCO"], cache=cache, standardize=("neutralize",))


def test_processes_give_the_same_arrays_as_one_process():
    smiles = ["CCO", "c1ccccc1O", "CC(=O)N", "bad", "C1CCCCC1", "O=C=O", "CCCl", "N#N", "CS(=O)C", "[Na+]"] * 3
    one = F.featurize(smiles, on_invalid="skip")
    two = F.featurize(smiles, on_invalid="skip", n_jobs=2)
    assert one.kept.tolist() == two.kept.tolist() and len(two.invalid) == 3
    for a, b in zip(one.graphs, two.graphs, strict=True):
        assert np.array_equal(a.atoms, b.atoms) and np.array_equal(a.edge_index, b.edge_index)


def test_collate_offsets_atoms_and_keeps_molecules_apart():
    graphs = F.featurize(["CCO", "[Na+]", "CC"]).graphs
    batch = F.collate_graphs(graphs, extra=np.ones((3, 2)))
    assert batch.molecule.tolist() == [0, 0, 0, 1, 2, 2]
    assert batch.molecule_sizes.tolist() == [3, 1, 2] and batch.num_molecules == 3
    assert batch.edge_index[:, 4:].tolist() == [[4, 5], [5, 4]]
    assert batch.extra.shape == (3, 2)


def test_fingerprints_bits_and_counts_and_descriptors():
    bits = F.morgan_fingerprints(["CCCCCC", "c1ccccc1"], n_bits=512)
    counts = F.morgan_fingerprints(["CCCCCC", "c1ccccc1"], n_bits=512, counts=True)
    assert bits.shape == (2, 512) and set(np.unique(bits)) <= {0.0, 1.0}
    assert counts.max() > 1 and ((counts > 0) == (bits > 0)).all()
    values, names = F.rdkit_descriptors(["CCO", "c1ccccc1"])
    assert values.shape == (2, len(names)) and np.isfinite(values).all()
    assert abs(values[0, names.index("MolWt")] - 46.07) < 0.01
    with pytest.raises(DataError, match="cannot parse"):
        F.morgan_fingerprints(["not a smiles"])
