"""Reading layer: ROOT files to awkward arrays, and the expressions physicists write over branches.

This module only opens files, checks that trees and branches exist, reads entry ranges and evaluates
expressions (``"log(jet1P4.pt)"``, ``"num(jet1TrksChg)"``, ``"(jet1P4 + jet2P4).mass"``). Turning those
arrays into padded tensors is :mod:`torchsci_physics.data`'s job.

Expressions are written in the small language of :mod:`torchsci_physics.expressions` (branch names,
numbers, operators, numpy's element-wise functions, ``num``/``sum``/``max``/... over jagged axes,
four-vector properties, integer and mask subscripts), checked and evaluated there: never by Python's
``eval``, so an expression from a config or a checkpoint cannot run code. A ``TLorentzVector`` branch
(or ``std::vector<TLorentzVector>``) appears as a ``vector`` four-momentum array, so ``.pt``, ``.eta``,
``.phi``, ``.mass``, ``.deltaR(...)`` and ``+`` work on it.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Iterable, Mapping
from typing import Any

import awkward as ak
import numpy as np
import uproot
import vector

from torchsci.errors import ConfigError, DataError
from torchsci_physics import expressions as language

vector.register_awkward()

OBJECT_PLACEHOLDER = "{obj}"


def expand_files(patterns: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Glob patterns (``"ntuples/*.root"``, ``~`` expanded) to a sorted list of existing files.

    Raises :class:`~torchsci.errors.DataError` naming a pattern that matches nothing.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else ([pattern] if os.path.isfile(pattern) else [])
        if not found:
            raise DataError(f"no ROOT file matches {pattern!r} (working directory {os.getcwd()}); check the path "
                            "or the glob pattern.")
        files.extend(found)
    return files


def open_tree(path: str, tree: str) -> Any:
    """The TTree or RNTuple ``tree`` of file ``path``; one clear error for a missing, corrupt or wrong file."""
    try:
        file = uproot.open(path, array_cache=None)  # chunks are read once; a cache per open file only grows memory
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file.") from exc
    except Exception as exc:  # uproot raises many kinds for bad bytes
        raise DataError(f"{path}: not a readable ROOT file (truncated or corrupt?): {type(exc).__name__}: {exc}") from exc
    try:
        return file[tree]
    except Exception as exc:
        kinds = ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")
        try:
            trees = sorted({k.split(";")[0] for k, c in file.classnames().items() if c in kinds})
        except Exception:
            trees = []
        if not isinstance(exc, KeyError) and tree.split("/")[0] in {k.split(";")[0] for k in file.keys()}:
            raise DataError(f"{path}: tree {tree!r} cannot be read (truncated or corrupt file?): "
                            f"{type(exc).__name__}: {exc}") from exc
        close = difflib.get_close_matches(tree, trees, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DataError(f"{path}: no tree named {tree!r}. Trees in this file: {', '.join(trees) or 'none'}.{hint}") from exc


def branch_names(tree: Any) -> list[str]:
    """Top-level branch (TTree) or field (RNTuple) names."""
    return list(tree.keys(recursive=False)) if isinstance(tree, uproot.TTree) else list(tree.keys())


def substitute(expression: str, obj: str | None) -> str:
    """Put the object name (``"jet1"``) where an expression says ``{obj}``."""
    if OBJECT_PLACEHOLDER in expression and obj is None:
        raise ConfigError(f"expression {expression!r} uses {{obj}} but no objects= were given (e.g. objects=['jet1', 'jet2']).")
    return expression.replace(OBJECT_PLACEHOLDER, obj) if obj is not None else expression


def names_in(expression: str) -> set[str]:
    """The names an expression reads (candidates for branches); an expression outside the language is an
    :class:`~torchsci_physics.expressions.ExpressionError`, raised before any branch is read."""
    return language.names_in(expression)


def branches_for(expressions: Iterable[str], available: Iterable[str], path: str, local: Iterable[str] = ()) -> set[str]:
    """Branches that ``expressions`` need; a name that is neither a branch nor known is an error naming close branches."""
    available = list(available)
    known = set(available)
    needed: set[str] = set()
    for expression in expressions:
        for name in names_in(expression):
            if name in known:
                needed.add(name)
            elif not language.is_known_name(name) and name not in set(local):
                close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
                hint = f" Closest branches: {', '.join(close)}." if close else f" Branches: {', '.join(available[:30])}."
                raise DataError(f"{path}: no branch named {name!r} (used in {expression!r}).{hint}")
    return needed


def _is_lorentz(array: ak.Array) -> bool:
    fields = ak.fields(array)
    return set(fields) == {"fP", "fE"}


def as_physics(array: ak.Array) -> ak.Array:
    """A ``TLorentzVector`` record array as a ``vector`` four-momentum array; anything else unchanged."""
    if _is_lorentz(array):
        return vector.zip({"px": array.fP.fX, "py": array.fP.fY, "pz": array.fP.fZ, "E": array.fE})
    return array


def read_range(tree: Any, branches: Iterable[str], path: str, entry_start: int | None = None,
               entry_stop: int | None = None) -> dict[str, ak.Array]:
    """Read ``branches`` over an entry range; TLorentzVector branches come back as four-momenta."""
    branches = sorted(branches)
    if not branches:
        n = (entry_stop if entry_stop is not None else tree.num_entries) - (entry_start or 0)
        return {"__len__": n}  # type: ignore[dict-item]
    try:
        arrays = tree.arrays(branches, entry_start=entry_start, entry_stop=entry_stop, library="ak")
    except Exception as exc:
        raise DataError(f"{path}: reading branches {', '.join(branches)} (entries {entry_start}-{entry_stop}) failed; "
                        f"the file may be truncated or corrupt: {type(exc).__name__}: {exc}") from exc
    return {name: as_physics(arrays[name]) for name in branches}


def evaluate(expression: str, namespace: Mapping[str, Any], path: str) -> Any:
    """Evaluate ``expression`` with branch arrays (and derived names) from ``namespace``.

    See :func:`torchsci_physics.expressions.evaluate`: the expression is checked against the language
    first; a failure on these arrays is a :class:`~torchsci.errors.DataError` naming ``path``.
    """
    return language.evaluate(expression, namespace, path)


def to_numpy(values: Any, what: str, path: str, length: int, dtype: type = np.float64) -> np.ndarray:
    """A flat per-entry result as a numpy array of ``length``; errors say which expression gave what."""
    if isinstance(values, (bool, int, float, np.number)):
        return np.full(length, values, dtype=dtype)
    try:
        out = ak.to_numpy(values) if isinstance(values, ak.Array) else np.asarray(values)
    except Exception as exc:
        raise DataError(f"{path}: {what} is not one number per entry (got {ak.type(values)}); reduce jagged "
                        "values with num(), sum(), max() or index them, e.g. x[:, 0].") from exc
    if out.dtype.fields is not None or out.ndim != 1 or out.shape[0] != length:
        raise DataError(f"{path}: {what} must give one number per entry; got an array of shape {out.shape} "
                        f"(type {getattr(values, 'type', out.dtype)}).")
    return out.astype(dtype, copy=False)
