"""Can the model judge this molecule? Structural rules behind the ``applicable`` flag of chem predictions.

A first, rule-based judgement (the applicability-domain score of the chem work replaces or refines
:func:`applicability`; the shape it returns is the core's :class:`torchsci.applicability.Applicability`):
the shipped models were trained on neutral, closed-shell, single organic molecules, so a salt or
mixture (several fragments), an element outside the training set's, a radical or a charged species
is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

from torchsci.applicability import Applicability

ELEMENTS = ("H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I")
"""Elements of common organic training sets (ESOL has C H N O F P S Cl Br I)."""

BASIS = f"structure rules: one neutral closed-shell fragment of the elements {' '.join(ELEMENTS)}"


def judge_mol(mol: object) -> Applicability:
    """The rule-based :class:`~torchsci.applicability.Applicability` of one parsed RDKit molecule."""
    from rdkit import Chem  # noqa: PLC0415

    reasons = []
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        reasons.append(f"a salt or mixture ({len(fragments)} fragments)")
    others = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetSymbol() not in ELEMENTS})
    if others:
        reasons.append(f"contains {', '.join(others)} (outside the training elements)")
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
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
    from rdkit import Chem, RDLogger  # noqa: PLC0415

    RDLogger.DisableLog("rdApp.*")
    try:
        mols = [Chem.MolFromSmiles(s) if s else None for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")
    return [None if m is None else judge_mol(m) for m in mols]
