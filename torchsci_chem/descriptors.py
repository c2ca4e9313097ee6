"""Named molecular descriptors whose values a shipped model can check: the version-stable feature layer.

RDKit's ``Descriptors.descList`` grows and changes between releases, so a model trained on "whatever the
installed RDKit has" silently gets other inputs elsewhere. Here a model stores an explicit list of
descriptor *names* (each resolved to one RDKit function, or to a function of this module) and the values
of those descriptors on a fixed :data:`REFERENCE_PANEL` of molecules computed when it was trained.
:func:`check_reference` recomputes the panel with the installed RDKit and raises
:class:`DescriptorMismatchError` naming the first descriptor that is missing or gives other values, and
both RDKit versions.

:data:`RDKIT2D_V1` is the list the shipped models use: RDKit's 2D descriptors that have existed with the
same definition for many releases (counts, connectivity and shape indices, surface-area bins, fragment
counts, Crippen logP/MR), without the ones added or redefined recently (BCUT2D, AvgIpc, SPS, qed, the
stereo and bridgehead counts) or numerically fragile (Ipc, Gasteiger charges, Morgan densities), plus
Delaney's aromatic proportion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import Descriptors, rdMolDescriptors
from rdkit.Chem.EState import EState

from torchsci.errors import ConfigError, DataError


class DescriptorMismatchError(DataError):
    """A model's descriptor is missing from, or computes other values with, the installed RDKit."""


def aromatic_proportion(mol: Chem.Mol) -> float:
    """Aromatic heavy atoms / heavy atoms: Delaney's "AP" (J. Chem. Inf. Comput. Sci. 2004, 44, 1000)."""
    n = mol.GetNumHeavyAtoms()
    return sum(a.GetIsAromatic() for a in mol.GetAtoms() if a.GetAtomicNum() > 1) / n if n else 0.0


_OWN: dict[str, Callable[[Chem.Mol], float]] = {"AromaticProportion": aromatic_proportion}

_UNSTABLE = ("qed", "SPS", "Ipc", "AvgIpc", "MaxPartialCharge", "MinPartialCharge", "MaxAbsPartialCharge",
             "MinAbsPartialCharge", "FpDensityMorgan1", "FpDensityMorgan2", "FpDensityMorgan3", "NumAmideBonds",
             "NumAtomStereoCenters", "NumUnspecifiedAtomStereoCenters", "NumBridgeheadAtoms", "NumSpiroAtoms",
             "NumHeterocycles", "Phi", "NumRadicalElectrons")

RDKIT2D_V1: tuple[str, ...] = (
    "MaxAbsEStateIndex", "MaxEStateIndex", "MinAbsEStateIndex", "MinEStateIndex", "MolWt", "HeavyAtomMolWt",
    "ExactMolWt", "NumValenceElectrons", "BalabanJ", "BertzCT", "Chi0", "Chi0n", "Chi0v", "Chi1", "Chi1n", "Chi1v",
    "Chi2n", "Chi2v", "Chi3n", "Chi3v", "Chi4n", "Chi4v", "HallKierAlpha", "Kappa1", "Kappa2", "Kappa3",
    "LabuteASA", *(f"PEOE_VSA{i}" for i in range(1, 15)), *(f"SMR_VSA{i}" for i in range(1, 11)),
    *(f"SlogP_VSA{i}" for i in range(1, 13)), "TPSA", *(f"EState_VSA{i}" for i in range(1, 12)),
    *(f"VSA_EState{i}" for i in range(1, 11)), "FractionCSP3", "HeavyAtomCount", "NHOHCount", "NOCount",
    "NumAliphaticCarbocycles", "NumAliphaticHeterocycles", "NumAliphaticRings", "NumAromaticCarbocycles",
    "NumAromaticHeterocycles", "NumAromaticRings", "NumHAcceptors", "NumHDonors", "NumHeteroatoms",
    "NumRotatableBonds", "NumSaturatedCarbocycles", "NumSaturatedHeterocycles", "NumSaturatedRings", "RingCount",
    "MolLogP", "MolMR",
    "fr_Al_COO", "fr_Al_OH", "fr_ArN", "fr_Ar_N", "fr_Ar_NH", "fr_Ar_OH", "fr_COO", "fr_C_O", "fr_C_S",
    "fr_NH0", "fr_NH1", "fr_NH2", "fr_N_O", "fr_aldehyde", "fr_alkyl_halide", "fr_amide", "fr_aniline",
    "fr_aryl_methyl", "fr_benzene", "fr_bicyclic", "fr_ester", "fr_ether", "fr_halogen", "fr_ketone", "fr_nitrile",
    "fr_nitro", "fr_phenol", "fr_pyridine", "fr_sulfide", "fr_sulfonamd", "fr_unbrch_alkane", "fr_urea",
    "AromaticProportion",
)
"""The descriptor list of the shipped property models (138 names)."""

DESCRIPTOR_SETS: dict[str, tuple[str, ...]] = {"rdkit2d-v1": RDKIT2D_V1}
"""Named descriptor lists usable as a dataset's ``extra=`` kind."""

REFERENCE_PANEL: tuple[str, ...] = (
    "CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "Clc1ccc(cc1)C(c1ccc(Cl)cc1)C(Cl)(Cl)Cl",
    "CN1C(=O)N(C)c2ncn(C)c2C1=O", "NS(=O)(=O)c1cc2c(cc1Cl)NCNS2(=O)=O", "CCOP(=S)(OCC)Oc1ccc(cc1)[N+](=O)[O-]",
    "C1CCC2(CC1)OCCO2", "Brc1ccc2[nH]ccc2c1", "FC(F)(F)c1ccc(Oc2ccccc2)nc1", "CC(C)(C)c1ccc(O)cc1", "C#CC(C)(O)CC",
)
"""Molecules on which a model's descriptor values are recorded and rechecked (varied elements, rings, charges)."""


def descriptor_function(name: str) -> Callable[[Chem.Mol], float]:
    """The function computing descriptor ``name`` with the installed RDKit.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.descriptors import descriptor_function
    >>> round(descriptor_function("MolWt")(Chem.MolFromSmiles("CCO")), 2)
    46.07
    """
    if name in _OWN:
        return _OWN[name]
    table = dict(Descriptors.descList)
    if name not in table:
        import rdkit

        raise DescriptorMismatchError(f"descriptor '{name}' does not exist in the installed RDKit {rdkit.__version__}; "
                                      "install the RDKit version the model was trained with, or retrain it here.")
    return table[name]


def _alone(func: Callable[[Chem.Mol], float]) -> Callable[[Chem.Mol, dict], float]:
    return lambda mol, cache: func(mol)


def _crippen(index: int) -> Callable[[Chem.Mol, dict], float]:
    def value(mol: Chem.Mol, cache: dict) -> float:
        if "crippen" not in cache:
            cache["crippen"] = rdMolDescriptors.CalcCrippenDescriptors(mol)
        return cache["crippen"][index]
    return value


def _estate(func: Callable[..., float]) -> Callable[[Chem.Mol, dict], float]:
    return lambda mol, cache: func(mol, force=False)


# Descriptors that RDKit computes from one shared intermediate, which its functions recompute per name: MolLogP
# and MolMR are the two halves of one CalcCrippenDescriptors call, and the four E-state extremes each recompute
# the E-state indices unless told not to (force=False reuses the indices the first one stored on the molecule).
# The same RDKit functions on the same molecule, so the same values; a third less time for RDKIT2D_V1.
_shared: dict[str, Callable[[Chem.Mol, dict], float]] = {
    "MolLogP": _crippen(0), "MolMR": _crippen(1),
    **{n: _estate(getattr(EState, n)) for n in ("MaxAbsEStateIndex", "MaxEStateIndex", "MinAbsEStateIndex",
                                                 "MinEStateIndex")},
}


def compute_descriptors(molecules: Iterable[Chem.Mol], names: Sequence[str]) -> np.ndarray:
    """Descriptors ``names`` of parsed molecules as float32 ``(n, len(names))``.

    Non-finite values become 0 and magnitudes are clipped at 1e5, so a standardisation fitted on a
    training split stays finite.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from torchsci_chem.descriptors import RDKIT2D_V1, compute_descriptors
    >>> compute_descriptors([Chem.MolFromSmiles("CCO")], RDKIT2D_V1).shape
    (1, 138)
    """
    if not names:
        raise ConfigError("compute_descriptors: give at least one descriptor name.")
    funcs = [_shared.get(n) or _alone(descriptor_function(n)) for n in names]
    rows = []
    for m in molecules:
        cache: dict[str, Any] = {}
        rows.append([f(m, cache) for f in funcs])
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(funcs))
    values = np.clip(np.nan_to_num(values, nan=0.0, posinf=1e5, neginf=-1e5), -1e5, 1e5)
    return values.astype(np.float32)


def reference_values(names: Sequence[str]) -> np.ndarray:
    """Descriptors ``names`` on :data:`REFERENCE_PANEL` with the installed RDKit, ``(panel, len(names))``."""
    return compute_descriptors([Chem.MolFromSmiles(s) for s in REFERENCE_PANEL], names)


def check_reference(names: Sequence[str], recorded: np.ndarray, recorded_rdkit: str = "unknown") -> None:
    """Raise :class:`DescriptorMismatchError` unless the installed RDKit reproduces ``recorded``.

    ``recorded`` holds the values of ``names`` on :data:`REFERENCE_PANEL` when the model was trained
    (with RDKit ``recorded_rdkit``); a relative difference above 1e-4 (absolute 1e-4 near zero) is a
    mismatch.

    Examples
    --------
    >>> from torchsci_chem.descriptors import check_reference, reference_values
    >>> check_reference(["MolLogP", "TPSA"], reference_values(["MolLogP", "TPSA"]))
    """
    import rdkit

    now = reference_values(names)
    recorded = np.asarray(recorded, dtype=np.float32)
    if recorded.shape != now.shape:
        raise DescriptorMismatchError(f"the model records {recorded.shape} reference descriptor values but lists "
                                      f"{len(names)} descriptors on {len(REFERENCE_PANEL)} molecules; the weight file "
                                      "does not belong to this model definition.")
    bad = ~np.isclose(now, recorded, rtol=1e-4, atol=1e-4)
    if bad.any():
        col = int(np.argwhere(bad.any(axis=0))[0, 0])
        row = int(np.argwhere(bad[:, col])[0, 0])
        raise DescriptorMismatchError(
            f"descriptor '{names[col]}' gives {now[row, col]:.6g} for {REFERENCE_PANEL[row]} with the installed RDKit "
            f"{rdkit.__version__}, but {recorded[row, col]:.6g} with RDKit {recorded_rdkit}, which the model was trained "
            f"with ({int(bad.any(axis=0).sum())} descriptor(s) differ); install RDKit {recorded_rdkit} or retrain here.")
