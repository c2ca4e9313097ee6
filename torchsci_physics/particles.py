"""One collection's particles as padded arrays, with the derived per-particle features.

The padding layer: from the awkward arrays of one chunk (:mod:`torchsci_physics.reading`) and a
:class:`~torchsci_physics.spec.Collection`, :func:`pad_collection` builds ``particles (N, P, C)``,
``mask``, ``points`` (delta eta, delta phi to the jet axis) and ``vectors`` (px, py, pz, E). It gathers
jagged, numbered (``j{i}_pt``) or per-object (``pt_{i}``) branches, derives :data:`PARTICLE_NAMES`
(``log_pt``, ``deta``, ``dR``, ``pt_frac``, ...) relative to the ``axis``, keeps the leading
``max_particles`` by ``sort_by`` and scatters them into the padded layout, on flat numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np
import vector

from torchsci.errors import DataError
from torchsci_physics import reading
from torchsci_physics.spec import Collection

PARTICLE_NAMES = ("pt", "eta", "phi", "energy", "mass", "px", "py", "pz", "log_pt", "log_energy", "deta", "dphi",
                  "dR", "pt_frac", "log_pt_frac", "energy_frac", "log_energy_frac")
"""Derived per-particle names an expression can use besides branches (:class:`~torchsci_physics.spec.Collection`)."""
_EPS = 1e-8


def _numbered(expression: str, members: Sequence[str], ns: Mapping[str, Any], path: str, obj: str | None) -> ak.Array:
    """One column per member (``{i}`` replaced by each), as a regular (entries, members) array."""
    columns = [np.asarray(reading.to_numpy(reading.evaluate(reading.substitute(expression.replace("{i}", m), obj),
                                                            ns, path), expression, path, _length(ns)))
               for m in members]
    return ak.from_regular(ak.Array(np.stack(columns, axis=1)))


def _length(ns: Mapping[str, Any]) -> int:
    for v in ns.values():
        if isinstance(v, ak.Array):
            return len(v)
    return int(ns.get("__len__", 0))


def _flat_vector(array: Any, what: str, path: str) -> Any:
    """The components of a (flat) awkward vector array as a ``vector`` numpy array (same coordinate system)."""
    fields = ak.fields(array)
    if not fields or not hasattr(array, "pt"):
        raise DataError(f"{path}: {what} must give four-momenta (got {ak.type(array)}).")
    columns = {f: ak.to_numpy(array[f]) for f in fields}
    # float32 branches stay float32 (the padded output is float32): half the memory traffic of float64
    dtype = np.float32 if all(c.dtype == np.float32 for c in columns.values()) else np.float64
    return vector.array({f: c.astype(dtype, copy=False) for f, c in columns.items()})


def _per_particle(value: Any, counts: np.ndarray, event: np.ndarray, what: str, path: str) -> np.ndarray:
    """An expression's value as one float per particle (flat): per-event values are repeated over the particles."""
    if isinstance(value, (bool, int, float, np.number)):
        return np.full(len(event), value, np.float64)
    if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == len(event):
        return value.astype(np.float64, copy=False)  # already flat (a derived particle name)
    value = ak.Array(value) if not isinstance(value, ak.Array) else value
    if value.ndim == 1 and len(value) == len(counts):
        return reading.to_numpy(value, what, path, len(counts))[event]
    if value.ndim == 2 and len(value) == len(counts) and np.array_equal(ak.to_numpy(ak.num(value, axis=1)), counts):
        return reading.to_numpy(ak.flatten(value, axis=1), what, path, len(event))
    raise DataError(f"{path}: {what} must give one number per particle or per entry; got {ak.type(value)}, which "
                    "does not line up with the particles' four-momenta.")


def pad_collection(c: Collection, ns: dict[str, Any], path: str, obj: str | None) -> dict[str, np.ndarray]:
    """Padded particle arrays for one object: particles (N, P, C), mask, points, vectors.

    Everything past the four-momenta runs on flat numpy arrays (one value per particle, ``event``
    saying whose): awkward's per-call broadcasting over jagged lists cost more than the arithmetic.
    """
    members = c.members()
    if members is not None:
        comps = {k: _numbered(v, members, ns, path, obj) for k, v in dict(c.p4).items()}  # type: ignore[arg-type]
        p4 = vector.zip(comps)
    elif isinstance(c.p4, str):
        p4 = reading.evaluate(reading.substitute(c.p4, obj), ns, path)
    else:
        p4 = vector.zip({k: reading.evaluate(reading.substitute(v, obj), ns, path) for k, v in c.p4.items()})
    if not hasattr(p4, "pt") or p4.ndim != 2:
        raise DataError(f"{path}: particles p4={c.p4!r} must give a jagged list of four-momenta per entry "
                        f"(got {ak.type(p4)}).")
    n = len(p4)
    counts = ak.to_numpy(ak.num(p4, axis=1)).astype(np.int64)
    event = np.repeat(np.arange(n), counts)
    v = _flat_vector(ak.flatten(p4, axis=1), f"particles p4={c.p4!r}", path)
    px, py, pz, energy = v.x, v.y, v.z, v.t
    if c.axis:
        jet = reading.evaluate(reading.substitute(c.axis, obj), ns, path)
        if getattr(jet, "ndim", 0) != 1 or len(jet) != n:
            raise DataError(f"{path}: axis={c.axis!r} must give one four-momentum per entry (got {ak.type(jet)}).")
        a = _flat_vector(jet, f"axis={c.axis!r}", path)
    else:
        a = vector.array({k: np.bincount(event, weights=x, minlength=n) for k, x in
                          (("px", px), ("py", py), ("pz", pz), ("E", energy))})
    pt, eta, phi = v.rho, v.eta, v.phi
    deta = eta - a.eta[event]
    dphi = (phi - a.phi[event] + np.pi) % (2 * np.pi) - np.pi  # vector's deltaphi convention
    local: dict[str, np.ndarray] = dict(
        pt=pt, eta=eta, phi=phi, energy=energy, mass=v.tau, px=px, py=py, pz=pz,
        log_pt=np.log(np.maximum(pt, _EPS)), log_energy=np.log(np.maximum(energy, _EPS)),
        deta=deta, dphi=dphi, dR=np.sqrt(deta**2 + dphi**2), pt_frac=pt / a.rho[event], energy_frac=energy / a.t[event])
    local.update(log_pt_frac=np.log(np.maximum(local["pt_frac"], _EPS)),
                 log_energy_frac=np.log(np.maximum(local["energy_frac"], _EPS)))

    def per_particle(expr: str, what: str) -> np.ndarray:
        if expr in local:
            return local[expr]
        if members is not None and "{i}" in expr:
            value = _numbered(expr, members, ns, path, obj)
        else:
            expr = reading.substitute(expr, obj)
            scope = dict(ns)
            scope.update({k: ak.unflatten(local[k], counts) for k in reading.names_in(expr) & local.keys()})
            value = reading.evaluate(expr, scope, path)
        return _per_particle(value, counts, event, what, path)

    names = list(c.feature_map())
    columns = [per_particle(e, f"particle feature {k!r}") for k, e in c.feature_map().items()]
    columns += [deta, dphi, px, py, pz, energy]
    if members is not None:
        valid = per_particle(c.valid or "pt > 0", "valid") != 0
        columns = [x[valid] for x in columns]
        event = event[valid]
        counts = np.bincount(event, minlength=n)
        local = {k: x[valid] for k, x in local.items()}
    if c.sort_by:
        key = local[c.sort_by] if c.sort_by in local else per_particle(c.sort_by, f"sort_by={c.sort_by!r}")
        order = _leading_first(key, event, counts)
    else:
        order = None
    p = c.max_particles
    position = np.arange(len(event)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = position < p
    slot = (event * p + position)[kept]
    source = order[kept] if order is not None else kept
    k = len(names)
    out = {"mask": np.arange(p)[None, :] < np.minimum(counts, p)[:, None]}
    for name, part in (("particles", columns[:k]), ("points", columns[k:k + 2]), ("vectors", columns[k + 2:])):
        rows = np.empty((len(slot), len(part)), np.float32)  # kept particles in padded order, then one row scatter
        for j, column in enumerate(part):
            rows[:, j] = column[source]
        padded = np.zeros((n * p, len(part)), np.float32)
        padded[slot] = rows
        out[name] = padded.reshape(n, p, len(part))
    return out


def _leading_first(key: np.ndarray, event: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """The permutation that orders each event's particles by ``key``, highest first (stable; NaN last).

    ``None`` when they already are in that order. Events are sorted as rows of a dense
    (events, longest) table when that is at most a few times the particle count: one row-wise
    argsort is several times faster than ``np.lexsort`` over (event, key).
    """
    if len(key) < 2 or not (~(key[1:] <= key[:-1]) & (event[1:] == event[:-1])).any():
        return None
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    longest = int(counts.max())
    if len(counts) * longest > 4 * len(key) + 4096:  # a few very long events: the dense table would be mostly padding
        return np.lexsort((-key, event))
    position = np.arange(len(key)) - starts
    table = np.full((len(counts), longest), np.nan)  # padding sorts after every real value, NaN included (stable)
    table[event, position] = -key
    return starts + np.argsort(table, axis=1, kind="stable")[event, position]

