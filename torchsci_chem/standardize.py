"""Molecules as chemists hand them over -> the form a property model was trained on, with a record of changes.

Each step is one of RDKit's ``rdMolStandardize`` operations (or stereo removal) and takes and returns
an RDKit molecule. :data:`DEFAULT_STANDARDIZE` is what the shipped models were trained and predict with:
RDKit's cleanup (normalised functional groups, e.g. charge-separated nitro), the largest *organic*
fragment (salts, counter-ions and solvents dropped), neutralisation, and removal of stereochemistry,
because the shipped properties (solubility, logD, hydration free energy) are the same for both
enantiomers. ``"tautomer"`` (RDKit's canonical tautomer) is available but not in the default: on
ESOL it changed 63 of 1,128 molecules and ran at about 50 molecules/s, the slowest step by far.

:func:`standardize_report` says for each molecule what changed and which *flags* it raises: ``"metal"``
(a metal atom anywhere in the input), ``"inorganic"`` (no carbon left), ``"salt"`` (fragments removed).
A flagged molecule is one the shipped models cannot judge: their training data hold none like it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

from torchsci.errors import ConfigError


def _no_stereo(mol: Chem.Mol) -> Chem.Mol:
    mol = Chem.Mol(mol)
    Chem.RemoveStereochemistry(mol)
    return mol


@functools.lru_cache(maxsize=1)
def _steps() -> dict[str, Callable[[Chem.Mol], Chem.Mol]]:
    # Built once per process: making RDKit's standardisers (the tautomer enumerator above all) cost about
    # 1 ms, more than standardising a molecule, and they were made per molecule. Callers never mutate the dict.
    return {
        "cleanup": rdMolStandardize.Cleanup,
        "largest_fragment": rdMolStandardize.LargestFragmentChooser().choose,
        "organic_fragment": rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose,
        "neutralize": rdMolStandardize.Uncharger().uncharge,
        "tautomer": rdMolStandardize.TautomerEnumerator().Canonicalize,
        "no_stereo": _no_stereo,
    }


STEPS: tuple[str, ...] = ("cleanup", "largest_fragment", "organic_fragment", "neutralize", "tautomer", "no_stereo")
"""Names of the standardisation steps, in the order they are applied."""

DEFAULT_STANDARDIZE: tuple[str, ...] = ("cleanup", "organic_fragment", "neutralize", "no_stereo")
"""The steps of the shipped models."""

_NONMETALS = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86})


def standardizers(steps: Sequence[str]) -> list[Callable[[Chem.Mol], Chem.Mol]]:
    """The step functions for ``steps``, in the canonical order of :data:`STEPS`; unknown names raise."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigError(f"standardize={list(steps)}: unknown step(s) {unknown}; choose from {list(STEPS)}.")
    made = _steps()
    return [made[s] for s in STEPS if s in steps]


def resolve(standardize: bool | Sequence[str], model_steps: Sequence[str] = DEFAULT_STANDARDIZE) -> tuple[str, ...]:
    """``True`` -> the model's steps, ``False`` -> none, a list -> those steps (checked)."""
    if standardize is True:
        return tuple(model_steps)
    if standardize is False or standardize is None:
        return ()
    if isinstance(standardize, str):
        raise ConfigError(f"standardize={standardize!r}: give True, False or a list of steps from {list(STEPS)}.")
    standardizers(standardize)
    return tuple(standardize)


@dataclasses.dataclass
class StandardizationReport:
    """What standardisation did to one molecule: ``smiles`` in and out, the ``changes``, and the ``flags``."""

    input: str
    smiles: str
    changes: list[str]
    flags: list[str]

    @property
    def judgeable(self) -> bool:
        """False when a flag says the shipped models saw nothing like this molecule."""
        return not self.flags


def standardize_report(smiles: str, steps: Sequence[str] = DEFAULT_STANDARDIZE) -> StandardizationReport:
    """Standardise one SMILES and describe every change; unparsable input has ``smiles == ""``.

    Examples
    --------
    >>> from torchsci_chem.standardize import standardize_report
    >>> r = standardize_report("CC(=O)[O-].[Na+]")
    >>> r.smiles, r.changes, r.flags
    ('CC(=O)O', ['removed fragment(s) [Na+]', 'neutralize'], ['salt', 'metal'])
    >>> standardize_report("C[C@@H](N)C(=O)O").changes
    ['no_stereo']
    """
    with rdBase.BlockLogs():  # RDKit's standardiser logs six info lines per molecule; the report says what changed
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
        return report_and_standardize(smiles, mol, steps)[0]


def report_and_standardize(smiles: str, mol: Chem.Mol | None,
                           steps: Sequence[str]) -> tuple[StandardizationReport, Chem.Mol | None]:
    """The :func:`standardize_report` of ``smiles`` from its parsed (sanitised, not yet standardised) ``mol``,
    and the standardised molecule (``None`` where ``mol`` is); the caller has blocked RDKit's logs.

    One parse then serves the report, the rules and the features (:mod:`torchsci_chem.preparation`).

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.standardize import report_and_standardize
    >>> report, mol = report_and_standardize("CCO.[Na+]", Chem.MolFromSmiles("CCO.[Na+]"), ["organic_fragment"])
    >>> report.flags, Chem.MolToSmiles(mol)
    (['salt', 'metal'], 'CCO')
    """
    if mol is None:
        return StandardizationReport(str(smiles), "", ["RDKit cannot parse it"], ["invalid"]), None
    flags, changes = [], []
    if any(a.GetAtomicNum() not in _NONMETALS for a in mol.GetAtoms()):
        flags.append("metal")
    made = _steps()
    after = Chem.MolToSmiles(mol)
    for name in (s for s in STEPS if s in steps):
        before = after  # the previous step's output, written once
        after_mol = made[name](mol)
        after = Chem.MolToSmiles(after_mol)
        if after != before:
            if name in ("largest_fragment", "organic_fragment"):
                kept = set(after.split("."))
                dropped = [f for f in before.split(".") if f not in kept]
                changes.append(f"removed fragment(s) {'.'.join(dropped)}")
                if "salt" not in flags:
                    flags.insert(0, "salt")
            else:
                changes.append(name)
        mol = after_mol
    if not any(a.GetAtomicNum() == 6 for a in mol.GetAtoms()):
        flags.append("inorganic")
    return StandardizationReport(smiles, after, changes, flags), mol
