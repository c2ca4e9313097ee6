"""Generated ntuples with a known answer: events whose class is set by one pair's invariant mass.

The generator (numpy for the randomness, ``vector`` for the kinematics, uproot to write a TTree)
makes events of ``objects`` jets in random order. In every event two of the jets are the decay
products of a parent particle; the rest are soft extra jets. In signal events the parent has the
mass ``signal_mass`` (a narrow peak); in background events its mass is flat over ``background_mass``.
The jets' own distributions are nearly the same in both classes, so a model that looks at one jet
at a time (a Deep Set) cannot tell them apart, while one that forms pair masses can: the test of
:class:`~torchsci_physics.interaction.PairInteractionNetwork` and of the Particle Transformer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _decay(rng: np.random.Generator, mass: np.ndarray, daughter_mass: float) -> tuple:
    """Two daughters of parents of ``mass`` (isotropic in the parent frame), boosted to a random lab momentum."""
    import vector

    n = len(mass)
    p_star = np.sqrt(np.maximum((mass / 2) ** 2 - daughter_mass**2, 1e-6))
    cos_t, phi = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    px, py, pz = p_star * sin_t * np.cos(phi), p_star * sin_t * np.sin(phi), p_star * cos_t
    e = np.sqrt(p_star**2 + daughter_mass**2)
    one = vector.array({"px": px, "py": py, "pz": pz, "E": e})
    two = vector.array({"px": -px, "py": -py, "pz": -pz, "E": e})
    parent = vector.array({"pt": rng.exponential(60, n) + 20, "eta": rng.normal(0, 1.2, n),
                           "phi": rng.uniform(-np.pi, np.pi, n), "mass": mass})
    return one.boost_p4(parent), two.boost_p4(parent)


def resonance_events(n_events: int, objects: int = 4, *, seed: int = 0, signal_fraction: float = 0.5,
                     signal_mass: float = 125.0, width: float = 2.0, background_mass: tuple[float, float] = (40.0, 300.0),
                     unit: float = 1.0) -> dict[str, np.ndarray]:
    """Branches of ``n_events`` events: jagged-free, one column per jet slot (``jet_px[:, k]``), in random order.

    Returns ``{"jet_px", "jet_py", "jet_pz", "jet_E"}`` as ``(n_events, objects)`` arrays (in GeV times
    ``unit``: ``unit=1000`` for MeV), the scalar sum of the jets' pT ``ht``, ``is_signal`` (0/1),
    ``event_number``, ``mc_weight`` and the true pair mass ``true_mass`` (an observer a model must never see).

    Examples
    --------
    >>> from torchsci_physics.toys import resonance_events
    >>> ev = resonance_events(6, objects=4)
    >>> ev["jet_px"].shape, sorted(set(ev["is_signal"].tolist()))
    ((6, 4), [0, 1])
    """
    import vector

    if objects < 2:
        raise ValueError(f"objects={objects}: a pair needs at least two jets per event")
    rng = np.random.default_rng(seed)
    is_signal = (rng.uniform(size=n_events) < signal_fraction).astype(np.int32)
    mass = np.where(is_signal == 1, rng.normal(signal_mass, width, n_events), rng.uniform(*background_mass, n_events))
    one, two = _decay(rng, mass, daughter_mass=5.0)
    extra = objects - 2
    soft = vector.array({"pt": rng.exponential(8, (n_events, extra)) + 5, "eta": rng.normal(0, 1.0, (n_events, extra)),
                         "phi": rng.uniform(-np.pi, np.pi, (n_events, extra)), "mass": np.full((n_events, extra), 5.0)})
    columns = {}
    for name, attr in (("jet_px", "px"), ("jet_py", "py"), ("jet_pz", "pz"), ("jet_E", "E")):
        columns[name] = np.concatenate([getattr(one, attr)[:, None], getattr(two, attr)[:, None],
                                        np.asarray(getattr(soft, attr)).reshape(n_events, extra)], axis=1) * unit
    order = np.argsort(rng.uniform(size=(n_events, objects)), axis=1)  # the pair sits anywhere in the list
    columns = {k: np.take_along_axis(v, order, axis=1) for k, v in columns.items()}
    ht = np.hypot(columns["jet_px"], columns["jet_py"]).sum(axis=1)
    return {**columns, "ht": ht, "is_signal": is_signal, "event_number": np.arange(n_events, dtype=np.int64),
            "mc_weight": rng.uniform(0.5, 1.5, n_events), "true_mass": mass * unit}


def write_resonance_ntuple(path: str | os.PathLike, n_events: int, objects: int = 4, *, tree: str = "events",
                           seed: int = 0, unit: float = 1.0, trees_by_class: bool = False, **kwargs: float) -> Path:
    """Write :func:`resonance_events` as TTree ``tree`` with jagged jet branches (``jet_px``, ...): the layout
    of a real ntuple (``std::vector<float>`` per event).

    ``trees_by_class=True`` writes the classes as an analysis often does, one tree per sample:
    ``signal``, and the background in two trees ``background_a`` (even event numbers) and ``background_b``.

    Examples
    --------
    >>> import os, tempfile, uproot
    >>> from torchsci_physics.toys import write_resonance_ntuple
    >>> path = write_resonance_ntuple(os.path.join(tempfile.mkdtemp(), "toy.root"), 10)
    >>> uproot.open(path)["events"].num_entries
    10
    """
    import awkward as ak
    import uproot

    events = resonance_events(n_events, objects, seed=seed, unit=unit, **kwargs)
    data = {k: (ak.from_regular(ak.from_numpy(v.astype(np.float32))) if v.ndim == 2 else v) for k, v in events.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signal, even = events["is_signal"] == 1, events["event_number"] % 2 == 0
    parts = ({"signal": signal, "background_a": ~signal & even, "background_b": ~signal & ~even} if trees_by_class
             else {tree: np.ones(n_events, bool)})
    with uproot.recreate(path) as f:
        for name, rows in parts.items():
            f.mktree(name, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
            f[name].extend({k: v[rows] for k, v in data.items()})
    return path


def jet_mass_events(n_jets: int, *, seed: int = 0, unit: float = 1.0, max_constituents: int = 24) -> dict[str, Any]:
    """Jets for a mass regression: jagged constituents (measured) and the true jet mass (the target).

    Each jet has 3-``max_constituents`` massless constituents spread around its axis with a width
    that varies from jet to jet (so the mass varies from a few GeV to ~100 GeV); the true mass is that
    of the sum of the true constituents. The measured constituents have a 10% energy smearing and
    lose 10% of the constituents at random, so the target is learnable from them but not a formula of them.

    Returns ``part_px, part_py, part_pz, part_E`` (lists per jet), ``jet_pt``, ``jet_eta``, the measured
    constituents' mass ``jet_mass_reco`` (what a reconstructed jet's mass would be), ``true_mass``,
    ``event_number``, ``mc_weight``, in GeV times ``unit``.

    Examples
    --------
    >>> from torchsci_physics.toys import jet_mass_events
    >>> jets = jet_mass_events(5)
    >>> len(jets["part_px"]), bool((jets["true_mass"] > 0).all())
    (5, True)
    """
    import awkward as ak

    rng = np.random.default_rng(seed)
    counts = np.clip(rng.poisson(12, n_jets), 3, max_constituents)
    jet = np.repeat(np.arange(n_jets), counts)
    jet_pt = rng.uniform(150, 500, n_jets)
    jet_eta, jet_phi = rng.normal(0, 1.0, n_jets), rng.uniform(-np.pi, np.pi, n_jets)
    width = rng.uniform(0.02, 0.25, n_jets)
    frac = rng.exponential(1.0, len(jet))
    frac /= np.bincount(jet, frac, n_jets)[jet]
    pt = frac * jet_pt[jet]
    eta = jet_eta[jet] + rng.normal(0, 1, len(jet)) * width[jet]
    phi = jet_phi[jet] + rng.normal(0, 1, len(jet)) * width[jet]
    px, py, pz, e = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)
    total = [np.bincount(jet, x, n_jets) for x in (px, py, pz, e)]
    true_mass = np.sqrt(np.maximum(total[3] ** 2 - total[0] ** 2 - total[1] ** 2 - total[2] ** 2, 0))
    smear = np.clip(rng.normal(1, 0.1, len(jet)), 0.5, 1.5)
    keep = rng.uniform(size=len(jet)) > 0.1
    keep[np.r_[0, np.cumsum(counts)[:-1]]] = True  # every jet keeps its first constituent
    reco_counts = np.bincount(jet[keep], minlength=n_jets)
    out = {name: ak.unflatten((x * smear)[keep].astype(np.float32) * unit, reco_counts)
           for name, x in (("part_px", px), ("part_py", py), ("part_pz", pz), ("part_E", e))}
    reco = [np.bincount(jet[keep], (x * smear)[keep], n_jets) for x in (px, py, pz, e)]
    reco_mass = np.sqrt(np.maximum(reco[3] ** 2 - reco[0] ** 2 - reco[1] ** 2 - reco[2] ** 2, 0))
    return {**out, "jet_pt": jet_pt * unit, "jet_eta": jet_eta, "jet_mass_reco": reco_mass * unit,
            "true_mass": true_mass * unit,
            "event_number": np.arange(n_jets, dtype=np.int64), "mc_weight": rng.uniform(0.5, 1.5, n_jets)}


def write_jet_mass_ntuple(path: str | os.PathLike, n_jets: int, *, tree: str = "jets", seed: int = 0,
                          unit: float = 1.0) -> Path:
    """Write :func:`jet_mass_events` as TTree ``tree`` (jagged ``std::vector<float>`` constituents) with uproot.

    Examples
    --------
    >>> import os, tempfile, uproot
    >>> from torchsci_physics.toys import write_jet_mass_ntuple
    >>> path = write_jet_mass_ntuple(os.path.join(tempfile.mkdtemp(), "jets.root"), 10)
    >>> uproot.open(path)["jets"].num_entries
    10
    """
    import awkward as ak
    import uproot

    data = jet_mass_events(n_jets, seed=seed, unit=unit)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        f[tree].extend(data)
    return path
