"""Applicability domain: how close a new molecule is to the molecules a model was trained on.

A model's training molecules are kept as packed Morgan fingerprints (radius 2, 2,048 bits: 256 bytes
each); a new molecule's *nearest similarity* is its largest Tanimoto similarity to any of them. A
molecule is *in domain* when that similarity reaches the model's threshold, which is chosen on the
validation split (:func:`choose_threshold`): the similarity that 95% of validation molecules reach, so
that molecules as new to the model as almost none of its validation molecules are flagged.

Structural rules (:func:`applicability`, :func:`judge_mol`) flag what no similarity measures: the shipped
models were trained on neutral, closed-shell, single organic molecules, so a salt or mixture, an element
outside the training set's, a radical or a charged species is flagged too. Both judgements reach the
user in the core's shape, :class:`torchsci.applicability.Applicability`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from torchsci.applicability import Applicability
from torchsci.errors import ConfigError

FINGERPRINT_BITS = 2048
PACKED_BYTES = FINGERPRINT_BITS // 8


def packed_fingerprints(mols: Iterable[Chem.Mol]) -> np.ndarray:
    """Morgan radius-2 bit fingerprints of parsed molecules, packed to uint8 ``(n, 256)``.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.domain import packed_fingerprints
    >>> packed_fingerprints([Chem.MolFromSmiles("CCO")]).shape
    (1, 256)
    """
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    bits = [gen.GetFingerprintAsNumPy(m).astype(bool) for m in mols]
    if not bits:
        return np.zeros((0, PACKED_BYTES), dtype=np.uint8)
    return np.packbits(np.stack(bits), axis=1)


def nearest_similarity(query: np.ndarray, reference: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """For each packed fingerprint of ``query``, its largest Tanimoto similarity to a row of ``reference``.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.domain import nearest_similarity, packed_fingerprints
    >>> ref = packed_fingerprints([Chem.MolFromSmiles(s) for s in ["CCO", "c1ccccc1"]])
    >>> q = packed_fingerprints([Chem.MolFromSmiles(s) for s in ["CCO", "CCCCCCO"]])
    >>> nearest_similarity(q, ref).round(2).tolist()
    [1.0, 0.36]
    """
    if reference.shape[0] == 0:
        raise ConfigError("nearest_similarity: the model holds no training fingerprints.")
    ref = np.unpackbits(reference, axis=1).astype(np.float32)
    ref_counts = ref.sum(axis=1)
    out = np.empty(query.shape[0], dtype=np.float64)
    for start in range(0, query.shape[0], chunk):
        q = np.unpackbits(query[start:start + chunk], axis=1).astype(np.float32)
        common = q @ ref.T
        union = q.sum(axis=1, keepdims=True) + ref_counts[None, :] - common
        sim = np.where(union > 0, common / np.maximum(union, 1.0), 1.0)
        out[start:start + chunk] = sim.max(axis=1)
    return out


def choose_threshold(validation_similarity: np.ndarray, coverage: float = 0.95) -> float:
    """The in-domain threshold: the similarity that a fraction ``coverage`` of validation molecules reach.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_chem.domain import choose_threshold
    >>> choose_threshold(np.linspace(0.0, 1.0, 101))
    0.05
    """
    v = np.sort(np.asarray(validation_similarity, dtype=np.float64))
    if v.size == 0 or not 0.0 < coverage < 1.0:
        raise ConfigError(f"choose_threshold: need validation similarities and 0 < coverage < 1 (got {v.size}, "
                          f"{coverage}).")
    return float(v[int(np.floor((1.0 - coverage) * v.size))])


ELEMENTS = ("H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I")
"""Elements of common organic training sets (ESOL has C H N O F P S Cl Br I)."""

BASIS = f"structure rules: one neutral closed-shell fragment of the elements {' '.join(ELEMENTS)}"


_OTHER_ELEMENT = Chem.MolFromSmarts(
    "[" + ";".join(f"!#{Chem.GetPeriodicTable().GetAtomicNumber(e)}" for e in ELEMENTS) + "]")


def judge_mol(mol: object) -> Applicability:
    """The rule-based :class:`~torchsci.applicability.Applicability` of one parsed RDKit molecule."""
    reasons = []
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        reasons.append(f"a salt or mixture ({len(fragments)} fragments)")
    # atoms fetched by index, and the element rule as one substructure query: RDKit's Python-level atom
    # sequence (mol.GetAtoms()) cost more than the rest of the rules together in predict()'s profile
    atoms = list(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))
    if mol.HasSubstructMatch(_OTHER_ELEMENT):
        others = sorted({a.GetSymbol() for a in atoms if a.GetSymbol() not in ELEMENTS})
        reasons.append(f"contains {', '.join(others)} (outside the training elements)")
    if any(map(Chem.Atom.GetNumRadicalElectrons, atoms)):
        reasons.append("a radical")
    charge = Chem.GetFormalCharge(mol)
    if charge and len(fragments) == 1:
        reasons.append(f"an ion (charge {charge:+d})")
    return Applicability(not reasons, "; ".join(reasons), basis=BASIS)


def applicability(smiles: Sequence[str]) -> list[Applicability | None]:
    """One judgement per SMILES (``None`` where RDKit cannot parse it: there is no prediction to judge).

    Examples
    --------
    >>> from torchsci_chem.domain import applicability
    >>> [f.applicable for f in applicability(["CCO", "[Na+].[Cl-]", "[CH3]", "C[Pt]"])]
    [True, False, False, False]
    """
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        mols = [Chem.MolFromSmiles(s) if s else None for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")
    return [None if m is None else judge_mol(m) for m in mols]
