"""Molecules as graphs: atom and bond feature arrays (:class:`MolGraph`), batched for the models (:class:`GraphBatch`).

Atoms become one-hot blocks (element with an "other" slot, total degree, formal charge, chirality tag,
total hydrogens, hybridisation) plus aromaticity, ring membership and mass/100. Bonds become bond type,
conjugation, ring membership and stereo. Every bond is stored as two directed edges, ``2 i`` (begin ->
end) and ``2 i + 1`` (end -> begin), which is what the directed message passing of
:class:`torchsci_chem.models.DMPNN` relies on to find an edge's reverse. A :class:`MolGraph` holds numpy
arrays (so featurisation can run in worker processes and be cached); :func:`collate_graphs` turns a
list of them into one batched graph of torch tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rdkit import Chem

# Elements of drug-like and environmental chemistry; anything else shares the "other" slot.
ELEMENTS = (1, 3, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 19, 20, 26, 29, 30, 34, 35, 53)
_MAX_DEGREE, _MAX_HS = 5, 4
_CHARGES = (-2, -1, 0, 1, 2)
_CHIRAL = (Chem.ChiralType.CHI_UNSPECIFIED, Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
_HYBRID = (Chem.HybridizationType.S, Chem.HybridizationType.SP, Chem.HybridizationType.SP2,
           Chem.HybridizationType.SP3, Chem.HybridizationType.SP3D, Chem.HybridizationType.SP3D2)
_BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
_STEREO = (Chem.BondStereo.STEREONONE, Chem.BondStereo.STEREOANY, Chem.BondStereo.STEREOZ,
           Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOCIS, Chem.BondStereo.STEREOTRANS)


def _lookup(values: Sequence[Any], size: int, offset: int) -> np.ndarray:
    """A table from a raw RDKit value (an int or enum) to its one-hot column; unknown values -> "other"."""
    table = np.full(size, offset + len(values), dtype=np.int64)
    for i, v in enumerate(values):
        table[int(v)] = offset + i
    return table


# Column layout of an atom row: one-hot blocks, each with a trailing "other" slot, then three scalars.
_EL = _lookup(ELEMENTS, 128, 0)
_DEG_OFF = len(ELEMENTS) + 1
_CHG_OFF = _DEG_OFF + _MAX_DEGREE + 2
_CHI_OFF = _CHG_OFF + len(_CHARGES) + 1
_CHI = _lookup(_CHIRAL, 64, _CHI_OFF)
_HS_OFF = _CHI_OFF + len(_CHIRAL) + 1
_HYB_OFF = _HS_OFF + _MAX_HS + 2
_HYB = _lookup(_HYBRID, 64, _HYB_OFF)
_AROM_COL = _HYB_OFF + len(_HYBRID) + 1
ATOM_FEATURES = _AROM_COL + 3
"""Width of an atom feature row."""

_BT = _lookup(_BOND_TYPES, 64, 0)
_CONJ_COL = len(_BOND_TYPES) + 1
_ST = _lookup(_STEREO, 64, _CONJ_COL + 2)
BOND_FEATURES = _CONJ_COL + 2 + len(_STEREO) + 1
"""Width of a bond feature row."""


@dataclasses.dataclass
class MolGraph:
    """One molecule as arrays: ``atoms`` ``(n_atoms, ATOM_FEATURES)``, ``bonds`` ``(n_edges, BOND_FEATURES)``
    and ``edge_index`` ``(2, n_edges)`` (source, target atom) with edges ``2 i`` / ``2 i + 1`` reverses."""

    atoms: np.ndarray
    bonds: np.ndarray
    edge_index: np.ndarray

    @property
    def num_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @staticmethod
    def merge(parts: Sequence[MolGraph]) -> MolGraph:
        """Several molecules as one graph of disconnected components (a row with several SMILES columns)."""
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [p.num_atoms for p in parts[:-1]])
        return MolGraph(np.concatenate([p.atoms for p in parts]), np.concatenate([p.bonds for p in parts]),
                        np.concatenate([p.edge_index + o for p, o in zip(parts, offsets, strict=True)], axis=1))


def mol_to_graph(mol: Chem.Mol) -> MolGraph:
    """Atom and bond feature arrays of a parsed molecule (see :func:`mols_to_graphs` for many).

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.featurize import mol_to_graph, ATOM_FEATURES
    >>> g = mol_to_graph(Chem.MolFromSmiles("CCO"))
    >>> g.atoms.shape == (3, ATOM_FEATURES), g.edge_index.tolist()
    (True, [[0, 1, 1, 2], [1, 0, 2, 1]])
    """
    return mols_to_graphs([mol])[0]


# Read with one ``map`` per property over a molecule's atoms (bonds): each is one RDKit call per atom
# without Python bytecode in between, and ``GetAtomWithIdx`` avoids the slow Python-level sequence
# behind ``mol.GetAtoms()``. Total degree and ring membership come from the bond list and the ring
# info instead of a call per atom (``GetTotalDegree`` is degree + total Hs; ``IsInRing`` reads the same
# ring info).
_ATOM_GETTERS = (Chem.Atom.GetAtomicNum, Chem.Atom.GetTotalNumHs, Chem.Atom.GetFormalCharge, Chem.Atom.GetChiralTag,
                 Chem.Atom.GetHybridization, Chem.Atom.GetIsAromatic, Chem.Atom.GetMass)
_BOND_GETTERS = (Chem.Bond.GetBeginAtomIdx, Chem.Bond.GetEndAtomIdx, Chem.Bond.GetBondType, Chem.Bond.GetIsConjugated,
                 Chem.Bond.GetStereo)


def mols_to_graphs(mols: Sequence[Chem.Mol]) -> list[MolGraph]:
    """Feature arrays of many parsed molecules.

    The only per-atom and per-bond Python work is reading RDKit's properties into lists (RDKit's enums
    are ints, so they go to numpy unconverted); the one-hot encoding runs once, vectorised, over every
    atom and bond of ``mols``, and the result is split into per-molecule views.
    """
    atom_cols: list[list] = [[] for _ in _ATOM_GETTERS]
    bond_cols: list[list] = [[] for _ in _BOND_GETTERS]
    ring_atoms: list[int] = []
    ring_bonds: list[int] = []
    n_atoms: list[int] = []
    n_bonds: list[int] = []
    first_atom = first_bond = 0
    for mol in mols:
        na, nb = mol.GetNumAtoms(), mol.GetNumBonds()
        atoms = list(map(mol.GetAtomWithIdx, range(na)))
        for col, get in zip(atom_cols, _ATOM_GETTERS, strict=True):
            col += map(get, atoms)
        bonds = list(map(mol.GetBondWithIdx, range(nb)))
        for col, get in zip(bond_cols, _BOND_GETTERS, strict=True):
            col += map(get, bonds)
        info = mol.GetRingInfo()
        ring_atoms += [first_atom + a for ring in info.AtomRings() for a in ring]
        ring_bonds += [first_bond + b for ring in info.BondRings() for b in ring]
        first_atom += na
        first_bond += nb
        n_atoms.append(na)
        n_bonds.append(nb)
    ints = np.array(atom_cols[:5], dtype=np.int64).reshape(5, -1)
    n_total = ints.shape[1]
    braw = np.array(bond_cols, dtype=np.int64).reshape(5, -1)
    m = braw.shape[1]
    # Bonds per atom from both ends of every bond (explicit H atoms are atoms with bonds here, as in RDKit);
    # bond ends are per-molecule atom numbers, so shift them to the block's numbering first.
    first_atoms = np.repeat(np.cumsum([0] + n_atoms[:-1]), n_bonds)
    degree = np.bincount((braw[:2] + first_atoms).reshape(-1), minlength=n_total) + ints[1]
    cols = np.empty((n_total, 6), dtype=np.int64)
    cols[:, 0] = _EL[np.clip(ints[0], 0, 127)]
    cols[:, 1] = _DEG_OFF + np.minimum(degree, _MAX_DEGREE + 1)
    charge = ints[2] - _CHARGES[0]
    cols[:, 2] = _CHG_OFF + np.where((charge >= 0) & (charge < len(_CHARGES)), charge, len(_CHARGES))
    cols[:, 3] = _CHI[np.clip(ints[3], 0, 63)]
    cols[:, 4] = _HS_OFF + np.minimum(ints[1], _MAX_HS + 1)
    cols[:, 5] = _HYB[np.clip(ints[4], 0, 63)]
    atoms = np.zeros((n_total, ATOM_FEATURES), dtype=np.float32)
    np.put_along_axis(atoms, cols, 1.0, axis=1)
    atoms[:, _AROM_COL] = atom_cols[5]
    atoms[ring_atoms, _AROM_COL + 1] = 1.0
    atoms[:, _AROM_COL + 2] = atom_cols[6]
    atoms[:, -1] *= 0.01
    one = np.zeros((m, BOND_FEATURES), dtype=np.float32)
    rows = np.arange(m)
    one[rows, _BT[np.clip(braw[2], 0, 63)]] = 1.0
    one[:, _CONJ_COL] = braw[3]
    one[ring_bonds, _CONJ_COL + 1] = 1.0
    one[rows, _ST[np.clip(braw[4], 0, 63)]] = 1.0
    bonds = np.repeat(one, 2, axis=0)
    edges = np.empty((2, 2 * m), dtype=np.int64)
    edges[0, 0::2], edges[1, 0::2] = braw[0], braw[1]
    edges[0, 1::2], edges[1, 1::2] = braw[1], braw[0]
    atom_cuts = np.cumsum(n_atoms)[:-1]
    edge_cuts = 2 * np.cumsum(n_bonds)[:-1]
    return [MolGraph(a, b, e) for a, b, e in zip(np.split(atoms, atom_cuts), np.split(bonds, edge_cuts),
                                                  np.split(edges, edge_cuts, axis=1), strict=True)]


@dataclasses.dataclass
class GraphBatch:
    """Molecules batched as one disconnected graph of torch tensors; moves with :func:`torchsci.move_to`.

    ``molecule[a]`` is the molecule of atom ``a``; ``molecule_sizes`` the atoms per molecule (its
    length is the number of molecules, so exported models get it as a dynamic shape). ``extra`` holds
    per-molecule features (fingerprints, descriptors) or is ``None``.
    """

    atoms: torch.Tensor
    bonds: torch.Tensor
    edge_index: torch.Tensor
    molecule: torch.Tensor
    molecule_sizes: torch.Tensor
    extra: torch.Tensor | None = None

    @property
    def num_molecules(self) -> int:
        return int(self.molecule_sizes.shape[0])

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """Positional inputs of :class:`torchsci_chem.models.DMPNN`."""
        base = (self.atoms, self.bonds, self.edge_index, self.molecule, self.molecule_sizes)
        return base if self.extra is None else (*base, self.extra)


def collate_graphs(graphs: Sequence[MolGraph], extra: np.ndarray | None = None) -> GraphBatch:
    """Batch molecules into one :class:`GraphBatch` (atom indices offset per molecule).

    Examples
    --------
    >>> from torchsci_chem.featurize import collate_graphs, featurize
    >>> batch = collate_graphs(featurize(["CCO", "C"]).graphs)
    >>> batch.molecule.tolist(), batch.edge_index.tolist()
    ([0, 0, 0, 1], [[0, 1, 1, 2], [1, 0, 2, 1]])
    """
    sizes = np.fromiter((g.num_atoms for g in graphs), dtype=np.int64, count=len(graphs))
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    edges = np.concatenate([g.edge_index + o for g, o in zip(graphs, offsets, strict=True)], axis=1)
    return GraphBatch(
        atoms=torch.from_numpy(np.concatenate([g.atoms for g in graphs])),
        bonds=torch.from_numpy(np.concatenate([g.bonds for g in graphs]).reshape(-1, BOND_FEATURES)),
        edge_index=torch.from_numpy(edges.reshape(2, -1)),
        molecule=torch.from_numpy(np.repeat(np.arange(len(graphs)), sizes)),
        molecule_sizes=torch.from_numpy(sizes),
        extra=None if extra is None else torch.as_tensor(np.asarray(extra, dtype=np.float32)),
    )
