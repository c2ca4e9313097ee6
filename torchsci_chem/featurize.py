"""Molecules to arrays: SMILES -> RDKit molecule -> atom/bond feature arrays, fingerprints, descriptors.

This is the layer that talks to RDKit. It returns numpy arrays (:class:`MolGraph` per molecule) so that
featurisation can run in worker processes and be cached; :func:`collate_graphs` turns a list of them
into one batched graph of torch tensors (:class:`GraphBatch`) for the models.

Atoms become one-hot blocks (element with an "other" slot, total degree, formal charge, chirality tag,
total hydrogens, hybridisation) plus aromaticity, ring membership and mass/100. Bonds become bond type,
conjugation, ring membership and stereo. Every bond is stored as two directed edges, ``2 i`` (begin ->
end) and ``2 i + 1`` (end -> begin), which is what the directed message passing of
:class:`torchsci_chem.models.DMPNN` relies on to find an edge's reverse.

No SMILES is dropped silently: an unparsable, empty, unsanitisable or over-sized molecule is an
:class:`InvalidMolecule` with its row and reason; by default the whole batch fails with one
:class:`torchsci.DataError` that lists them, and ``on_invalid="skip"`` keeps the rest and reports them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import rdFingerprintGenerator

from torchsci.errors import ConfigError, DataError

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


class InvalidMolecule(NamedTuple):
    """A SMILES that could not be featurised: its ``row`` label, the ``smiles`` and the ``reason``."""

    row: Any
    smiles: str
    reason: str


class _Invalid(Exception):
    pass


_BLOCK = 2048
STANDARDIZE_STEPS = ("cleanup", "largest_fragment", "organic_fragment", "neutralize", "tautomer", "no_stereo")
"""Standardisation step names (see :mod:`torchsci_chem.standardize`), applied in this order."""


def _standardizers(steps: Sequence[str]) -> list[Any]:
    from torchsci_chem.standardize import standardizers

    return standardizers(steps)


def parse_smiles(smiles: str, standardize: Sequence[str] = (), max_atoms: int | None = None) -> Chem.Mol:
    """Parse and sanitise one SMILES, apply the standardisation ``steps``; raise :class:`DataError` if impossible.

    ``standardize`` takes any of :data:`STANDARDIZE_STEPS`: ``"cleanup"`` (RDKit's normalisation of
    functional groups), ``"largest_fragment"`` or ``"organic_fragment"`` (strip salts and solvents),
    ``"neutralize"``, ``"tautomer"`` (canonical tautomer) and ``"no_stereo"``, applied in that order.

    Examples
    --------
    >>> from torchsci_chem.featurize import parse_smiles
    >>> parse_smiles("[Na+].CC(=O)[O-]", standardize=("largest_fragment", "neutralize")).GetNumAtoms()
    4
    """
    try:
        return _parse(smiles, _standardizers(standardize), max_atoms)
    except _Invalid as exc:
        raise DataError(f"SMILES {smiles!r}: {exc}") from None


def _parse(smiles: Any, steps: Sequence[Any], max_atoms: int | None) -> Chem.Mol:
    if not isinstance(smiles, str) or not smiles.strip():
        raise _Invalid("empty or not a string")
    quiet = rdBase.BlockLogs()  # noqa: F841 (rdMolStandardize logs every step it runs at info level)
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:  # parse again without sanitising, only to say why
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            raise _Invalid("RDKit cannot parse it")
        try:
            Chem.SanitizeMol(raw)
        except Exception as exc:  # RDKit raises several unrelated types (valence, kekulisation, ...)
            raise _Invalid(f"RDKit cannot sanitise it ({exc})") from None
        raise _Invalid("RDKit cannot sanitise it")
    for step in steps:
        mol = step(mol)
    if mol.GetNumAtoms() == 0:
        raise _Invalid("it has no atoms")
    if max_atoms is not None and mol.GetNumAtoms() > max_atoms:
        raise _Invalid(f"it has {mol.GetNumAtoms()} heavy atoms, more than max_atoms={max_atoms}")
    return mol


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


class GraphCache:
    """Featurised molecules keyed by canonical SMILES, so the same molecule written two ways is done once.

    A cache belongs to one standardisation setting (featurising with another setting raises
    :class:`ConfigError`). Input strings seen before skip parsing entirely.

    Examples
    --------
    >>> from torchsci_chem.featurize import GraphCache, featurize
    >>> cache = GraphCache()
    >>> _ = featurize(["OCC", "CCO"], cache=cache)
    >>> len(cache)
    1
    """

    def __init__(self) -> None:
        self.graphs: dict[str, MolGraph] = {}
        self.canonical: dict[str, str] = {}
        self.setting: tuple | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def bind(self, setting: tuple) -> None:
        if self.setting is None:
            self.setting = setting
        elif self.setting != setting:
            raise ConfigError(f"this GraphCache holds molecules featurised with {self.setting}, not {setting}; "
                              "use one cache per standardisation setting.")


def _featurize_chunk(args: tuple) -> list[MolGraph | str | tuple[str, MolGraph]]:
    smiles, standardize, max_atoms, canonical = args
    steps = _standardizers(standardize)
    out: list[Any] = []
    mols: list[Chem.Mol] = []
    RDLogger.DisableLog("rdApp.*")  # failures are reported per row below, not as RDKit's stderr noise
    try:
        for s in smiles:
            try:
                mol = _parse(s, steps, max_atoms)
            except _Invalid as exc:
                out.append(str(exc))
                continue
            out.append(len(mols))
            mols.append(mol)
    finally:
        RDLogger.EnableLog("rdApp.*")
    graphs = mols_to_graphs(mols) if mols else []
    keys = [Chem.MolToSmiles(m) for m in mols] if canonical else None
    return [r if isinstance(r, str) else (keys[r], graphs[r]) if keys else graphs[r] for r in out]


@dataclasses.dataclass
class Featurized:
    """What :func:`featurize` returns: the graphs, which input positions they came from, and the failures."""

    graphs: list[MolGraph]
    kept: np.ndarray
    invalid: list[InvalidMolecule]

    def report(self) -> str:
        """A human-readable summary of the skipped molecules (empty when none were)."""
        return describe_invalid(self.invalid)


def describe_invalid(invalid: Sequence[InvalidMolecule], source: str = "input", limit: int = 20) -> str:
    if not invalid:
        return ""
    lines = [f"  row {r.row}: {r.smiles!r}: {r.reason}" for r in invalid[:limit]]
    if len(invalid) > limit:
        lines.append(f"  ... and {len(invalid) - limit} more")
    return f"{len(invalid)} molecule(s) in {source} could not be featurised:\n" + "\n".join(lines)


def featurize(smiles: Sequence[str], *, standardize: Sequence[str] = (), max_atoms: int | None = 500,
              on_invalid: str = "raise", n_jobs: int = 1, cache: GraphCache | None = None,
              rows: Sequence[Any] | None = None, source: str = "input") -> Featurized:
    """Featurise SMILES into :class:`MolGraph` s, in ``n_jobs`` processes, reusing ``cache``.

    Parameters
    ----------
    smiles
        The molecules.
    standardize
        Steps from :data:`STANDARDIZE_STEPS` applied to every molecule (see :func:`parse_smiles`).
    max_atoms
        Molecules with more heavy atoms are invalid (``None``: no limit).
    on_invalid
        ``"raise"``: one :class:`torchsci.DataError` listing every failed row; ``"skip"``: drop them,
        listing them in :attr:`Featurized.invalid` (summarised by :meth:`Featurized.report`).
    n_jobs
        Worker processes (``1``: this process).
    cache
        A :class:`GraphCache` shared between calls.
    rows, source
        Row labels (default: positions) and a name (a file) used in error messages.

    Examples
    --------
    >>> from torchsci_chem.featurize import featurize
    >>> out = featurize(["CCO", "not a molecule", "c1ccccc1"], on_invalid="skip")
    >>> out.kept.tolist(), out.invalid[0].row
    ([0, 2], 1)
    """
    if on_invalid not in ("raise", "skip"):
        raise ConfigError(f"on_invalid={on_invalid!r}: use 'raise' or 'skip'.")
    smiles = list(smiles)
    rows = list(range(len(smiles))) if rows is None else list(rows)
    results: list[Any] = [None] * len(smiles)
    todo = list(range(len(smiles)))
    if cache is not None:
        cache.bind((tuple(standardize), max_atoms))
        todo = []
        for i, s in enumerate(smiles):
            key = cache.canonical.get(s) if isinstance(s, str) else None
            if key is not None:
                results[i] = cache.graphs[key]
            else:
                todo.append(i)
    work = [smiles[i] for i in todo]
    canonical = cache is not None
    # Blocks bound the RDKit molecules alive at once; several per process even out uneven blocks.
    n_blocks = max(-(-len(work) // _BLOCK), 4 * n_jobs if n_jobs > 1 else 1)
    bounds = np.linspace(0, len(work), n_blocks + 1).astype(int)
    blocks = [(work[a:b], tuple(standardize), max_atoms, canonical) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if n_jobs > 1 and len(work) > 4 * n_jobs:
        with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
            done = [r for part in pool.imap(_featurize_chunk, blocks) for r in part]
    else:
        done = [r for block in blocks for r in _featurize_chunk(block)]
    for i, r in zip(todo, done, strict=True):
        if canonical and isinstance(r, tuple):
            key, graph = r
            graph = cache.graphs.setdefault(key, graph)
            cache.canonical[smiles[i]] = key
            r = graph
        results[i] = r
    invalid = [InvalidMolecule(rows[i], str(smiles[i]), r) for i, r in enumerate(results) if isinstance(r, str)]
    if invalid and on_invalid == "raise":
        raise DataError(describe_invalid(invalid, source) + "\nFix or remove these rows, or pass on_invalid='skip' "
                        "to drop them with this report.")
    kept = np.array([i for i, r in enumerate(results) if not isinstance(r, str)], dtype=np.int64)
    return Featurized([results[i] for i in kept], kept, invalid)


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


def _mols(molecules: Iterable[str | Chem.Mol]) -> list[Chem.Mol]:
    return [m if isinstance(m, Chem.Mol) else parse_smiles(m) for m in molecules]


def morgan_fingerprints(molecules: Iterable[str | Chem.Mol], radius: int = 2, n_bits: int = 2048,
                        counts: bool = False) -> np.ndarray:
    """Morgan (ECFP-like) fingerprints as a float32 array ``(n, n_bits)``: bits, or counts with ``counts=True``.

    Examples
    --------
    >>> from torchsci_chem.featurize import morgan_fingerprints
    >>> fp = morgan_fingerprints(["CCO", "c1ccccc1"], n_bits=1024, counts=True)
    >>> fp.shape, bool(fp[0].sum() > 0)
    ((2, 1024), True)
    """
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    as_array = gen.GetCountFingerprintAsNumPy if counts else gen.GetFingerprintAsNumPy
    mols = _mols(molecules)
    out = np.zeros((len(mols), n_bits), dtype=np.float32)
    for i, mol in enumerate(mols):
        out[i] = as_array(mol)
    return out


def rdkit_descriptors(molecules: Iterable[str | Chem.Mol]) -> tuple[np.ndarray, list[str]]:
    """RDKit's 2D descriptors as float32 ``(n, d)`` and their names (slow: ~100 molecules/s per core).

    Values are raw; non-finite ones become 0 and magnitudes are clipped at 1e5 so that the
    standardisation fitted on a training split (see :class:`torchsci_chem.datasets.SmilesCSVDataset`)
    stays finite.

    Examples
    --------
    >>> from torchsci_chem.featurize import rdkit_descriptors
    >>> values, names = rdkit_descriptors(["CCO"])
    >>> "MolWt" in names, values.shape[0]
    (True, 1)
    """
    from rdkit.Chem import Descriptors  # lazy: imports every descriptor module

    rows = [Descriptors.CalcMolDescriptors(m) for m in _mols(molecules)]
    names = list(rows[0]) if rows else [name for name, _ in Descriptors.descList]
    values = np.array([[r[n] for n in names] for r in rows], dtype=np.float64).reshape(len(rows), len(names))
    values = np.clip(np.nan_to_num(values, nan=0.0, posinf=1e5, neginf=-1e5), -1e5, 1e5)
    return values.astype(np.float32), names


EXTRA_KINDS = ("morgan", "morgan_counts", "descriptors", "rdkit2d-v1")


def molecule_features(molecules: Iterable[str | Chem.Mol], kind: str, standardize: Sequence[str] = ()) -> np.ndarray:
    """Per-molecule features of one ``kind`` (``"morgan"``, ``"morgan_counts"``, ``"descriptors"``, or a named
    descriptor list of :data:`torchsci_chem.descriptors.DESCRIPTOR_SETS` such as ``"rdkit2d-v1"``), float32.

    ``"descriptors"`` is every descriptor of the installed RDKit (its list changes between versions); a
    named list is fixed and checkable (:mod:`torchsci_chem.descriptors`).

    SMILES are parsed with the same ``standardize`` steps as the graphs, so that a model's extra
    features at prediction time match those it was trained with.

    Examples
    --------
    >>> from torchsci_chem.featurize import molecule_features
    >>> molecule_features(["CCO", "CCN"], "morgan").shape
    (2, 2048)
    """
    if kind not in EXTRA_KINDS:
        raise ConfigError(f"extra={kind!r}: choose one of {', '.join(EXTRA_KINDS)} or None.")
    mols = [m if isinstance(m, Chem.Mol) else parse_smiles(m, standardize) for m in molecules]
    if kind == "descriptors":
        return rdkit_descriptors(mols)[0]
    from torchsci_chem.descriptors import DESCRIPTOR_SETS, compute_descriptors

    if kind in DESCRIPTOR_SETS:
        return compute_descriptors(mols, DESCRIPTOR_SETS[kind])
    return morgan_fingerprints(mols, counts=kind == "morgan_counts")
