"""Per-molecule feature vectors: Morgan fingerprints, RDKit's 2D descriptors and named descriptor lists.

What a :class:`~torchsci_chem.graphs.GraphBatch` carries as ``extra`` beside the graph, and what
fingerprint models take alone: :func:`molecule_features` computes one of :data:`EXTRA_KINDS` for many
molecules (SMILES are parsed with the same standardisation as the graphs). The fixed, checkable
descriptor lists live in :mod:`torchsci_chem.descriptors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from torchsci.errors import ConfigError
from torchsci_chem.molecules import parse_smiles


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
"""The kinds of per-molecule features :func:`molecule_features` computes."""


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
