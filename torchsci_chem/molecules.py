"""SMILES to RDKit molecules: parsing, sanitisation and standardisation, with a reason for every failure.

The layer where a string becomes a molecule. :func:`parse_smiles` parses and sanitises one SMILES and
applies standardisation steps (:data:`~torchsci_chem.featurize.STANDARDIZE_STEPS`, implemented in
:mod:`torchsci_chem.standardize`); a SMILES that is unparsable, empty, unsanitisable or over-sized is
refused with its reason, which :func:`torchsci_chem.featurize.featurize` records per row as an
:class:`InvalidMolecule` and :func:`describe_invalid` lists for the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from rdkit import Chem, rdBase

from torchsci.errors import DataError


class InvalidMolecule(NamedTuple):
    """A SMILES that could not be featurised: its ``row`` label, the ``smiles`` and the ``reason``."""

    row: Any
    smiles: str
    reason: str


class _Invalid(Exception):
    pass


def describe_invalid(invalid: Sequence[InvalidMolecule], source: str = "input", limit: int = 20) -> str:
    """One message listing molecules that could not be featurised: row, SMILES and reason, at most ``limit`` rows.

    Parameters
    ----------
    invalid
        The refused molecules, as :func:`torchsci_chem.featurize.featurize` records them.
    source
        What they came from (a file name), for the message's first line.
    limit
        Rows listed before "... and N more".

    Returns
    -------
    str
        The message; empty when nothing was refused.

    Examples
    --------
    >>> print(describe_invalid([InvalidMolecule(3, "C1CC", "unclosed ring")], source="mols.csv"))
    1 molecule(s) in mols.csv could not be featurised:
      row 3: 'C1CC': unclosed ring
    """
    if not invalid:
        return ""
    lines = [f"  row {r.row}: {r.smiles!r}: {r.reason}" for r in invalid[:limit]]
    if len(invalid) > limit:
        lines.append(f"  ... and {len(invalid) - limit} more")
    return f"{len(invalid)} molecule(s) in {source} could not be featurised:\n" + "\n".join(lines)


def _standardizers(steps: Sequence[str]) -> list[Any]:
    from torchsci_chem.standardize import standardizers

    return standardizers(steps)


def parse_smiles(smiles: str, standardize: Sequence[str] = (), max_atoms: int | None = None) -> Chem.Mol:
    """Parse and sanitise one SMILES, apply the standardisation ``steps``; raise :class:`DataError` if impossible.

    ``standardize`` takes any of :data:`~torchsci_chem.featurize.STANDARDIZE_STEPS`: ``"cleanup"`` (RDKit's normalisation of
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
    quiet = rdBase.BlockLogs()  # noqa: F841 (rdMolStandardize logs every step it runs at info level)
    return _finish(_parse_raw(smiles), steps, max_atoms)


def _parse_raw(smiles: Any, mol: Chem.Mol | None = None) -> Chem.Mol:
    """The sanitised molecule of ``smiles`` before standardisation (``mol``: its parse, when already done)."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise _Invalid("empty or not a string")
    if mol is None:
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:  # parse again without sanitising, only to say why
        if smiles.lstrip().startswith("InChI="):
            raise _Invalid("an InChI, not a SMILES; convert it first (RDKit: Chem.MolToSmiles(Chem.MolFromInchi(s)))")
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            raise _Invalid("RDKit cannot parse it")
        try:
            Chem.SanitizeMol(raw)
        except Exception as exc:  # RDKit raises several unrelated types (valence, kekulisation, ...)
            raise _Invalid(f"RDKit cannot sanitise it ({exc})") from None
        raise _Invalid("RDKit cannot sanitise it")
    return mol


def _finish(mol: Chem.Mol, steps: Sequence[Any], max_atoms: int | None) -> Chem.Mol:
    """Standardise a parsed molecule with the step functions ``steps`` and check its size (logs blocked by the caller)."""
    for step in steps:
        mol = step(mol)
    return _check_size(mol, max_atoms)


def _check_size(mol: Chem.Mol, max_atoms: int | None) -> Chem.Mol:
    if mol.GetNumAtoms() == 0:
        raise _Invalid("it has no atoms")
    if max_atoms is not None and mol.GetNumAtoms() > max_atoms:
        raise _Invalid(f"it has {mol.GetNumAtoms()} heavy atoms, more than max_atoms={max_atoms}")
    return mol
