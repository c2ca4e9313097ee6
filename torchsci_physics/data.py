"""ROOT trees to padded tensors: jets (or events) with their particles, labels, weights and splits.

A :class:`RootSpec` says, in the field's words, what one training example is: which ``files`` and
``tree``, the per-example ``features`` (branches and expressions), the ``particles`` (jagged branches
padded to ``max_particles`` with a mask: one collection, or several named ones such as tracks and
towers, each with its own branches and length), the ``label``, ``weight`` and ``selection``,
and the ``splits`` (named selections such as ``"EventNumber % 2 == 1"``). :class:`RootDataset` reads
it all into memory; :class:`RootStream` streams it chunk by chunk for data larger than memory.

One batch is a dict of tensors::

    particles  (batch, max_particles, C)  float32   standardised inside the model, not here
    mask       (batch, max_particles)     bool      True for real particles
    points     (batch, max_particles, 2)  float32   (delta eta, delta phi) to the jet axis, for kNN
    vectors    (batch, max_particles, 4)  float32   (px, py, pz, E), for pairwise features
    features   (batch, G)                 float32   per-example features
    label (batch,) int64, weight (batch,) float32, entry (batch,) int64, object (batch,) int64
    target     (batch,)                   float64   the regression target (only with ``target=``)

Layout is particle-major (``[B, P, C]``), like :class:`torchsci.data.Padded`. With several named
collections (``particles={"tracks": ..., "towers": ...}``) each is padded separately and its four
particle entries are keyed by its name: ``particles.tracks``, ``mask.tracks``, ``points.tracks``,
``vectors.tracks``, ``particles.towers``, ...; the models take them as dicts (see
:mod:`torchsci_physics.models`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np
import torch
import vector
from torch.utils.data import Dataset, IterableDataset

from torchsci.data import DataSplits
from torchsci.distributed import reader_shard
from torchsci.errors import ConfigError, DataError
from torchsci_physics import expressions as language
from torchsci_physics import reading
from torchsci_physics.reweighting import ReweightTable, as_reweight

PARTICLE_NAMES = ("pt", "eta", "phi", "energy", "mass", "px", "py", "pz", "log_pt", "log_energy", "deta", "dphi",
                  "dR", "pt_frac", "log_pt_frac", "energy_frac", "log_energy_frac")
_EPS = 1e-8


@dataclasses.dataclass
class Collection:
    """A collection of particles (tracks, constituents) per example, padded to ``max_particles``.

    Parameters
    ----------
    p4
        The particles' four-momenta: a ``std::vector<TLorentzVector>`` branch (``"{obj}TrksP4"``) or a
        mapping of components to jagged branches in one of vector's systems (``{"px": "Jet_Px", "py":
        ..., "pz": ..., "E": ...}`` or ``{"pt", "eta", "phi", "mass"}``).
    features
        Per-particle inputs, ``{name: expression}`` (or a list of names). Besides branches, an
        expression can use the derived names ``pt, eta, phi, energy, mass, px, py, pz, log_pt,
        log_energy`` and, relative to the jet ``axis``: ``deta, dphi, dR`` (delta eta, delta phi,
        delta R), ``pt_frac, log_pt_frac, energy_frac, log_energy_frac``.
    axis
        The jet's four-momentum (an expression, e.g. ``"{obj}P4"``); default: the sum of the particles.
    max_particles
        Padding length. Truncation keeps the leading ``max_particles`` particles by ``sort_by``
        (default: by pT, highest first); ``sort_by=None`` keeps the file's order.
    numbered
        Gather flat numbered branches (``j1_pt, j2_pt, ...``): component and feature names contain
        ``{i}``, which runs from 1 to ``numbered``; ``valid`` (default ``"pt > 0"``) says which are real.
    objects
        Gather flat branches named per object (``pt_lead_jet, pt_sub_jet, ...``): ``{i}`` runs over these
        names (``objects=["lead_jet", "sub_jet"]``), in this order; ``valid`` as for ``numbered``.

    Examples
    --------
    >>> from torchsci_physics.data import Collection
    >>> jets = Collection(p4={"pt": "pt_{i}", "eta": "eta_{i}", "phi": "phi_{i}", "mass": "m_{i}"},
    ...                   objects=["lead_jet", "sub_jet"], max_particles=2, features=["log_pt", "eta"])
    >>> jets.members()
    ['lead_jet', 'sub_jet']
    """

    p4: str | dict[str, str]
    features: dict[str, str] | list[str] = dataclasses.field(
        default_factory=lambda: ["deta", "dphi", "log_pt", "log_energy", "log_pt_frac", "log_energy_frac", "dR"])
    axis: str | None = None
    max_particles: int = 50
    sort_by: str | None = "pt"
    numbered: int | None = None
    valid: str | None = None
    objects: list[str] | None = None

    def __post_init__(self) -> None:
        numbered = self.numbered
        if numbered is not None and (isinstance(numbered, bool) or not isinstance(numbered, int)
                                     or not 1 <= numbered <= MAX_NUMBERED):
            # checked before anything is built from it: numbered=10**9 must not become a billion names
            raise ConfigError(f"particles p4={self.p4!r}: numbered must be an integer from 1 to {MAX_NUMBERED}, "
                              f"got {numbered!r}.")
        if self.numbered is not None and self.objects is not None:
            raise ConfigError(f"particles p4={self.p4!r}: give numbered= (j{{i}} for i = 1..n) or objects= (named "
                              "branches such as pt_{i} for i in the names), not both.")
        if self.objects is not None:
            if isinstance(self.objects, str) or not self.objects or not all(isinstance(o, str) for o in self.objects):
                raise ConfigError(f"particles objects={self.objects!r} must be a non-empty list of names (e.g. "
                                  "['lead_jet', 'sub_jet']) that {i} in the branch names runs over.")
            self.objects = list(self.objects)
        if self.objects is not None or self.numbered:
            comps = self.p4.values() if isinstance(self.p4, Mapping) else [self.p4]
            if not isinstance(self.p4, Mapping) or not any("{i}" in v for v in comps):
                raise ConfigError(f"particles p4={self.p4!r}: with numbered= or objects= the four-momentum is a "
                                  "mapping of components whose branch names hold {i}, e.g. {'pt': 'pt_{i}', 'eta': "
                                  "'eta_{i}', 'phi': 'phi_{i}', 'mass': 'm_{i}'}.")

    def members(self) -> list[str] | None:
        """What ``{i}`` runs over: ``1 .. numbered`` or the ``objects`` names; ``None`` for a jagged collection."""
        if self.objects is not None:
            return list(self.objects)
        if self.numbered:
            return [str(i) for i in range(1, self.numbered + 1)]
        return None

    def feature_map(self) -> dict[str, str]:
        return {f: f for f in self.features} if isinstance(self.features, (list, tuple)) else dict(self.features)


@dataclasses.dataclass
class RootSpec:
    """What one example is, read from ROOT files. See the module docstring for the batch layout.

    Parameters
    ----------
    files
        Glob patterns, or ``{class name: patterns}`` when the label is the file (or tree) an event
        came from; a value may be ``{"files": patterns, "tree": name}`` for a per-class tree (``tree``
        may be a list of trees), or a list of such groups: one class from several trees or file groups,
        ``{"background": [{"files": "a.root", "tree": "bkg_a"}, {"files": "b/*.root", "tree": "bkg_b"}]}``.
    tree
        TTree or RNTuple name (the default for groups that name none).
    objects
        Per-object examples: every ``{obj}`` in an expression is replaced by each name in turn, so
        ``objects=["jet1", "jet2"]`` makes two rows per event.
    features
        Per-example inputs, ``{name: expression}`` or a list of expressions.
    particles
        A :class:`Collection` (or its keyword arguments as a dict), or several named ones,
        ``{"tracks": Collection(...), "towers": {...}}``, each padded separately (names must be
        Python identifiers). ``points`` are (delta eta, delta phi) to each collection's ``axis``:
        give the collections the same ``axis`` for a common frame.
    label, classes
        An expression giving class indices (a boolean gives 0/1), and the class names. With
        ``files`` as a mapping, the label is the file's class and ``classes`` its keys.
    weight
        An expression for event weights (default 1).
    selection
        Which examples to keep (an expression giving booleans).
    splits
        ``{split name: selection}``, e.g. ``{"train": "EventNumber % 2 == 0", "test": "EventNumber % 2 == 1"}``.
    step_size
        Entries read per chunk.
    observers
        ``{name: expression}`` (or a list) carried with every example but never given to the model:
        event numbers, truth masses, the observable of a sculpting check; batch entry ``observers (B, O)``
        (float64), and branches of the friend trees that prediction writes.
    reweight
        A :class:`~torchsci_physics.reweighting.Reweight` (or its fields as a mapping): training
        examples reweighted to be flat in (or to follow a reference class in) binned variables, with
        class weights; validation and test keep the physical weights.
    target, target_transform, target_scale
        Regression (weaver's ``target_mass``): ``target`` is an expression for the value to learn (e.g.
        ``"{obj}P4.mass"``), or ``{name: expression}`` to name it (the default name is ``target``); no
        ``label`` is needed (all examples are one class ``all`` unless ``label``/``files`` give classes,
        which reweighting then uses). ``target_transform="log"`` learns ``log(target)`` (targets must be
        positive). ``target_scale`` ``[mean, std]`` of the transformed target standardises it; measured on
        the training split when not given, and saved with the model so predictions come back in the
        target's units. Use it with the ``physics/regression`` task.
    folds, fold
        k-fold training: ``folds`` is an expression giving each entry's fold, ``0 .. k-1`` (e.g.
        ``"event_number % 5"``); with ``fold=f`` the splits are ``test``: fold ``f``, ``train``: the other
        folds, and ``val``: those of the other folds in ``splits["val"]``, when given (taken out of train).
        :func:`torchsci_physics.folds.train_folds` trains every fold and scores each event out of fold.
    """

    files: Any
    tree: str = "tree"
    objects: list[str] | None = None
    features: dict[str, str] | list[str] = dataclasses.field(default_factory=dict)
    particles: Collection | dict[str, Any] | None = None
    label: str | None = None
    classes: list[str] | None = None
    weight: str | None = None
    selection: str | None = None
    splits: dict[str, str] = dataclasses.field(default_factory=dict)
    step_size: int = 100_000
    observers: dict[str, str] | list[str] = dataclasses.field(default_factory=dict)
    reweight: Any = None
    folds: str | None = None
    fold: int | None = None
    target: str | dict[str, str] | None = None
    target_transform: str | None = None
    target_scale: list[float] | None = None

    def __post_init__(self) -> None:
        self.reweight = as_reweight(self.reweight)
        self._check_target()
        if self.fold is not None and not self.folds:
            raise ConfigError(f"fold={self.fold} needs folds= (an expression giving each entry's fold, e.g. "
                              "'event_number % 5').")
        if isinstance(self.particles, Mapping):
            if "p4" in self.particles:
                self.particles = Collection(**self.particles)
            else:
                self.particles = {name: _collection(name, c) for name, c in self.particles.items()}
                if not self.particles:
                    raise ConfigError("particles={} names no collection; give one (p4=..., max_particles=...) or "
                                      "several as {name: {p4: ..., ...}}.")
        if not isinstance(self.tree, str):
            raise ConfigError(f"tree={self.tree!r} must be one tree name; for several trees give each class its "
                              "groups: files={'background': [{'files': ..., 'tree': 'bkg_a'}, {'files': ..., "
                              "'tree': 'bkg_b'}]}.")
        if isinstance(self.files, Mapping):
            if self.label is not None:
                raise ConfigError("files= is a {class: files} mapping, so the label is the file's class; drop label=.")
            self.classes = list(self.files)
        if self.classes is None:
            self.classes = ["all"] if self.target is not None and self.label is None else ["background", "signal"]
        if self.particles is None and not self.features:
            raise ConfigError("RootSpec needs features= or particles= (or both): nothing would go into the model.")
        check_expressions(self)

    def _check_target(self) -> None:
        if self.target is not None:
            if isinstance(self.target, Mapping):
                if len(self.target) != 1 or not all(isinstance(k, str) and k.isidentifier() for k in self.target):
                    raise ConfigError(f"target={dict(self.target)!r}: give one expression, or one {{name: expression}} "
                                      "with a Python-identifier name, e.g. target: {jet_mass: '{obj}P4.mass'}.")
            elif not isinstance(self.target, str):
                raise ConfigError(f"target={self.target!r} must be an expression (a string) or {{name: expression}}.")
        if self.target_transform not in (None, "log"):
            raise ConfigError(f"target_transform={self.target_transform!r}: use 'log' or null (none).")
        if self.target_scale is not None:
            scale = list(self.target_scale)
            if (len(scale) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in scale)
                    or not scale[1] > 0):
                raise ConfigError(f"target_scale={self.target_scale!r} must be [mean, std] with std > 0 (or null to "
                                  "measure it on the training split).")
            self.target_scale = [float(v) for v in scale]
        if (self.target_transform or self.target_scale) and self.target is None:
            raise ConfigError("target_transform/target_scale are for regression: give target= (an expression) too.")

    def target_name(self) -> str | None:
        """The regression target's name (``"target"`` unless ``target`` is ``{name: expression}``)."""
        if self.target is None:
            return None
        return next(iter(self.target)) if isinstance(self.target, Mapping) else "target"

    def target_expression(self) -> str | None:
        if self.target is None:
            return None
        return next(iter(self.target.values())) if isinstance(self.target, Mapping) else self.target

    def feature_map(self) -> dict[str, str]:
        return {f: f for f in self.features} if isinstance(self.features, (list, tuple)) else dict(self.features)

    def observer_map(self) -> dict[str, str]:
        return {f: f for f in self.observers} if isinstance(self.observers, (list, tuple)) else dict(self.observers)

    def fold_splits(self) -> dict[str, str]:
        """The splits of ``fold`` (see the class docstring); ``splits`` when no fold is chosen."""
        if self.fold is None:
            return dict(self.splits)
        others, val = f"(({self.folds}) != {int(self.fold)})", self.splits.get("val")
        out = {"train": others if val is None else f"{others} & (({val}) == 0)"}
        if val is not None:
            out["val"] = f"{others} & ({val})"
        out["test"] = f"(({self.folds}) == {int(self.fold)})"
        return out

    def collections(self) -> dict[str | None, Collection]:
        """The particle collections by name; the single-collection form has the name ``None``."""
        if self.particles is None:
            return {}
        if isinstance(self.particles, Collection):
            return {None: self.particles}
        return dict(self.particles)

    def sources(self) -> list[tuple[str, str, int | None]]:
        """``(path, tree, class index or None)`` for every file."""
        if isinstance(self.files, Mapping):
            return [s for k, (name, value) in enumerate(self.files.items()) for s in _class_sources(name, value, self.tree, k)]
        return [(p, self.tree, None) for p in reading.expand_files(self.files)]

    def input_spec(self) -> dict[str, Any]:
        """The JSON-able part that turns a tree into model inputs: saved with the model for prediction."""
        particles = ({name: dataclasses.asdict(c) for name, c in self.collections().items()}
                     if isinstance(self.particles, Mapping) else
                     dataclasses.asdict(self.particles) if self.particles is not None else None)
        return {"tree": self.tree, "objects": self.objects, "features": self.feature_map(), "particles": particles,
                "classes": list(self.classes), "selection": self.selection, "observers": self.observer_map(),
                "folds": self.folds, "target": self.target if not isinstance(self.target, Mapping) else dict(self.target),
                "target_transform": self.target_transform, "target_scale": self.target_scale}


def _class_sources(name: str, value: Any, default_tree: str, label: int) -> list[tuple[str, str, int]]:
    """The (path, tree, label) of one class: patterns, a ``{files, tree}`` group, or a list of groups/patterns."""
    groups = value if isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value) else [value]
    out = []
    for group in groups:
        if isinstance(group, Mapping):
            unknown = set(group) - {"files", "tree"}
            if "files" not in group or unknown:
                raise ConfigError(f"files[{name!r}]: a file group is {{'files': patterns, 'tree': name}}; got keys "
                                  f"{sorted(group)}.")
            patterns, trees = group["files"], group.get("tree", default_tree)
        else:
            patterns, trees = group, default_tree
        trees = [trees] if isinstance(trees, str) else trees
        if not isinstance(trees, (list, tuple)) or not trees or not all(isinstance(t, str) for t in trees):
            raise ConfigError(f"files[{name!r}]: tree={trees!r} must be a tree name or a list of tree names.")
        out += [(p, t, label) for p in reading.expand_files(patterns) for t in trees]
    return out


def _collection(name: Any, c: Any) -> Collection:
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"particles: collection name {name!r} must be a Python identifier (e.g. 'tracks'): it "
                          "names the batch entries particles.<name>, mask.<name> and the model's input embeddings.")
    if isinstance(c, Collection):
        return c
    if not isinstance(c, Mapping):
        raise ConfigError(f"particles: collection {name!r} must be a mapping of Collection fields (p4=..., "
                          f"max_particles=...), got {c!r}.")
    return Collection(**c)


def collection_key(kind: str, name: str | None) -> str:
    """The batch key of a collection's ``kind`` (particles, mask, points, vectors): ``kind`` or ``kind.name``."""
    return kind if name is None else f"{kind}.{name}"


def batch_keys(spec: RootSpec) -> list[str]:
    """The keys a batch of ``spec`` holds (label and weight only where targets were read)."""
    keys = ["features"] + (["observers"] if spec.observers else [])
    for name in spec.collections():
        keys += [collection_key(k, name) for k in _PARTICLE_KEYS]
    return keys + ["label", "weight", "entry", "object"] + (["target"] if spec.target is not None else [])


# ---------------------------------------------------------------------------------------------- one chunk
def _expressions(spec: RootSpec, obj: str | None, with_targets: bool) -> list[str]:
    exprs = list(spec.feature_map().values())
    if with_targets:
        exprs += [e for e in (spec.label, spec.weight, spec.target_expression()) if e]
        exprs += list(spec.reweight.variable_map().values()) if spec.reweight else []
    exprs += [e for e in (spec.selection, spec.folds, *spec.splits.values()) if e]
    exprs += list(spec.observer_map().values())
    single = isinstance(spec.particles, Collection)
    for c in spec.collections().values():
        comps = [c.p4] if isinstance(c.p4, str) else list(c.p4.values())
        own = comps + [e for e in (c.axis,) if e] + list(c.feature_map().values())
        members = c.members()
        if members is not None:
            # one collection: as before, every expression with {i} is expanded; several: each expands its own
            if single:
                own, exprs = exprs + own, []
            own = [x for e in own for x in ([e.replace("{i}", m) for m in members] if "{i}" in e else [e])]
        exprs += own
    return [reading.substitute(e, obj) for e in exprs]


MAX_NUMBERED = 1000


def check_expressions(spec: RootSpec, where: str = "RootSpec") -> None:
    """Check every expression of ``spec`` against :mod:`torchsci_physics.expressions`, before any file is read.

    A spec can come from a config or a checkpoint's ``input_spec`` header: its expressions are data,
    so anything outside the language is refused here, with the field that holds it.

    Examples
    --------
    >>> from torchsci_physics.data import RootSpec
    >>> from torchsci_physics.expressions import ExpressionError
    >>> try:
    ...     RootSpec(files=[], features={"x": "().__class__"})
    ... except ExpressionError as exc:
    ...     print(str(exc)[:40])
    RootSpec: expression '().__class__': att
    """
    for obj in spec.objects or []:
        if not isinstance(obj, str) or not obj.isidentifier():
            raise ConfigError(f"{where}: objects must be names such as 'jet1' (they replace {{obj}}), got {obj!r}.")
    fields: list[tuple[str, Any]] = [(f"features[{k!r}]", v) for k, v in spec.feature_map().items()]
    fields += [("label", spec.label), ("weight", spec.weight), ("selection", spec.selection),
               ("target", spec.target_expression())]
    fields += [(f"splits[{k!r}]", v) for k, v in spec.splits.items()]
    extra: list[str] = []
    for name, c in spec.collections().items():
        at = "particles" if name is None else f"particles[{name!r}]"
        if c.numbered is not None and (type(c.numbered) is not int or not 1 <= c.numbered <= MAX_NUMBERED):
            raise ConfigError(f"{where}: {at}.numbered must be an integer from 1 to {MAX_NUMBERED}, got {c.numbered!r}.")
        p4 = c.p4 if isinstance(c.p4, Mapping) else {"": c.p4}
        fields += [(f"{at}.p4{f'[{k!r}]' if k else ''}", v) for k, v in p4.items()]
        fields += [(f"{at}.features[{k!r}]", v) for k, v in c.feature_map().items()]
        fields += [(f"{at}.{k}", getattr(c, k)) for k in ("axis", "valid", "sort_by")]
        for e in (c.valid, c.sort_by):
            if isinstance(e, str):
                extra += [e.replace("{i}", str(i)) for i in range(1, (c.numbered or 1) + 1)] if "{i}" in e else [e]
    for at, value in fields:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {at} must be an expression (a string), got {type(value).__name__} {value!r}.")
    for obj in spec.objects or [None]:
        language.check_all(_expressions(spec, obj, True) + [reading.substitute(e, obj) for e in extra], where)


def _local_names(spec: RootSpec) -> set[str]:
    return set(PARTICLE_NAMES) if spec.collections() else set()


def needed_branches(spec: RootSpec, tree: Any, path: str, with_targets: bool = True) -> set[str]:
    """Every branch the spec reads from ``tree`` (a missing one is an error naming close branches)."""
    available = reading.branch_names(tree)
    exprs = [e for obj in (spec.objects or [None]) for e in _expressions(spec, obj, with_targets)]
    return reading.branches_for(exprs, available, path, local=_local_names(spec))


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


def _particles(c: Collection, ns: dict[str, Any], path: str, obj: str | None) -> dict[str, np.ndarray]:
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


def read_block(spec: RootSpec, tree: Any, path: str, source: int, label_of_file: int | None,
               entry_start: int, entry_stop: int, *, with_targets: bool = True,
               apply_selection: bool = True) -> dict[str, np.ndarray]:
    """Rows (examples) for entries ``[entry_start, entry_stop)`` of one tree, as numpy arrays.

    ``split`` holds each row's split index (position in ``spec.splits``, -1 for none) and ``selected``
    whether it passes ``spec.selection``; with ``apply_selection=False`` no row is dropped (prediction
    writes one value per entry, so the output stays entry-aligned with the input).
    """
    branches = needed_branches(spec, tree, path, with_targets)
    ns = reading.read_range(tree, branches, path, entry_start, entry_stop)
    n = entry_stop - entry_start
    rows = []
    for k, obj in enumerate(spec.objects or [None]):
        def flat(expr: str, what: str, dtype: type = np.float64, obj: str | None = obj) -> np.ndarray:
            return reading.to_numpy(reading.evaluate(reading.substitute(expr, obj), ns, path), what, path, n, dtype)

        out: dict[str, np.ndarray] = {"entry": np.arange(entry_start, entry_stop, dtype=np.int64),
                                      "object": np.full(n, k, np.int64), "source": np.full(n, source, np.int64)}
        fm = spec.feature_map()
        out["features"] = (np.stack([flat(e, f"feature {name!r}") for name, e in fm.items()], axis=1).astype(np.float32)
                           if fm else np.zeros((n, 0), np.float32))
        for name, c in spec.collections().items():
            out.update({collection_key(k, name): v for k, v in _particles(c, ns, path, obj).items()})
        if spec.observers:
            out["observers"] = np.stack([flat(e, f"observer {name!r}") for name, e in spec.observer_map().items()], axis=1)
        if spec.folds:
            fold = flat(spec.folds, "folds")
            if not np.all(fold == np.round(fold)) or (fold < 0).any():
                raise DataError(f"{path}: folds={spec.folds!r} must give whole numbers 0, 1, ... (a fold per entry); got "
                                f"{fold[(fold != np.round(fold)) | (fold < 0)][0]}.")
            out["fold"] = fold.astype(np.int64)
        out["selected"] = flat(spec.selection, "selection", bool) if spec.selection else np.ones(n, bool)
        split = np.full(n, -1, np.int64)
        for s, (name, expr) in enumerate(spec.splits.items()):
            member = flat(expr, f"split {name!r}", bool)
            if (member & (split >= 0)).any():
                raise ConfigError(f"splits overlap: entry {int(np.argmax(member & (split >= 0))) + entry_start} of {path} "
                                  f"is in split {name!r} and in an earlier one; make the selections exclusive.")
            split[member] = s
        out["split"] = split
        if with_targets:
            if label_of_file is not None:
                out["label"] = np.full(n, label_of_file, np.int64)
            elif spec.label:
                raw = flat(spec.label, "label")
                if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
                    raise DataError(f"{path}: label {spec.label!r} gives non-integer values; it must give class indices.")
                out["label"] = raw.astype(np.int64)
            elif spec.target is not None:
                out["label"] = np.zeros(n, np.int64)  # regression without classes: one class, "all"
            else:
                raise ConfigError("no label: give label= (an expression) or files= as a {class: files} mapping.")
            out["weight"] = flat(spec.weight, "weight", np.float32) if spec.weight else np.ones(n, np.float32)
            if spec.target is not None:
                out["target"] = flat(spec.target_expression(), "target")
            if spec.reweight:
                rw = spec.reweight.variable_map()
                out["reweight"] = (np.stack([flat(e, f"reweight variable {k!r}") for k, e in rw.items()], axis=1)
                                   if rw else np.zeros((n, 0)))
        if apply_selection:
            keep = out["selected"]
            out = {key: v[keep] for key, v in out.items()}
        rows.append(out)
    block = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    _check_block(spec, block, path, with_targets)
    return block


def _check_block(spec: RootSpec, block: dict[str, np.ndarray], path: str, with_targets: bool) -> None:
    checks = [("features", None, "feature", list(spec.feature_map()))]
    for name, c in spec.collections().items():
        what = "particle" if name is None else f"particle (collection {name!r})"
        checks.append((collection_key("particles", name), collection_key("mask", name), what, list(c.feature_map())))
    for key, mask_key, what, names in checks:
        values = block[key]
        bad = ~np.isfinite(values)
        if mask_key is not None:
            bad &= block[mask_key][..., None]
        if bad.any():
            where = np.argwhere(bad)[0]
            column = names[where[-1]]
            raise DataError(f"{path}: {what} input {column!r} is NaN or infinite in {int(bad.any(axis=tuple(range(1, bad.ndim))).sum())} "
                            f"example(s), first at entry {int(block['entry'][where[0]])}; fix the expression or "
                            "filter those entries with selection=.")
    if with_targets:
        label = block["label"]
        k = len(spec.classes or [])
        outside = (label < 0) | (label >= k)
        if outside.any():
            raise DataError(f"{path}: label {spec.label!r} gives {int(label[outside][0])} at entry "
                            f"{int(block['entry'][outside][0])}, outside the {k} classes {spec.classes}; add a "
                            "selection= that removes such entries or fix classes=.")
        if not np.isfinite(block["weight"]).all():
            raise DataError(f"{path}: weight {spec.weight!r} is NaN or infinite for some entries.")
        if "target" in block:
            target, expr = block["target"], spec.target_expression()
            bad = ~np.isfinite(target)
            if spec.target_transform == "log":
                bad |= ~(target > 0)
            if bad.any():
                need = "positive (target_transform='log')" if spec.target_transform == "log" else "finite"
                raise DataError(f"{path}: target {expr!r} is {target[bad][0]} at entry {int(block['entry'][bad][0])} "
                                f"({int(bad.sum())} example(s)); it must be {need}. Remove such entries with "
                                f"selection=, e.g. selection: '{expr} > 0'.")


def iter_blocks(spec: RootSpec, units: Sequence[tuple[int, int, int]] | None = None, **kwargs: Any
                ) -> Iterator[dict[str, np.ndarray]]:
    """Blocks over work units ``(source index, entry_start, entry_stop)`` (all chunks of all files by default)."""
    sources = spec.sources()
    if units is None:
        units = chunk_units(spec, sources)
    current: tuple[int, Any] | None = None
    for source, start, stop in units:
        path, tree_name, label = sources[source]
        if current is None or current[0] != source:
            current = (source, reading.open_tree(path, tree_name))
        yield read_block(spec, current[1], path, source, label, start, stop, **kwargs)


def chunk_units(spec: RootSpec, sources: Sequence[tuple[str, str, int | None]]) -> list[tuple[int, int, int]]:
    """Split every file into ``step_size``-entry chunks: the units that workers share out."""
    units = []
    for s, (path, tree_name, _) in enumerate(sources):
        n = reading.open_tree(path, tree_name).num_entries
        units += [(s, a, min(a + spec.step_size, n)) for a in range(0, n, spec.step_size)]
    return units


# ---------------------------------------------------------------------------------------------- datasets
class StreamRow(Mapping):
    """One example of a streamed block, read like a dict of arrays: a reference, not a copy.

    :class:`RootStream` yields these so a row costs one small object; :func:`collate` gathers a batch
    of rows with one fancy index per block instead of stacking per-row dicts.
    """

    __slots__ = ("block", "index")

    def __init__(self, block: dict[str, np.ndarray], index: int) -> None:
        self.block, self.index = block, index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.block[key][self.index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.block)

    def __len__(self) -> int:
        return len(self.block)


def collate(batch: Any) -> dict[str, torch.Tensor]:
    """Batches from :meth:`RootDataset.__getitems__` pass through; rows (from a stream) are gathered per block."""
    if isinstance(batch, Mapping):
        return dict(batch)
    if not all(isinstance(row, StreamRow) for row in batch):
        return {k: torch.from_numpy(np.stack([row[k] for row in batch])) for k in batch[0]}
    pieces, start = [], 0
    for i in range(1, len(batch) + 1):
        if i == len(batch) or batch[i].block is not batch[start].block:
            index = np.fromiter((row.index for row in batch[start:i]), np.int64, i - start)
            pieces.append({k: v[index] for k, v in batch[start].block.items()})
            start = i
    if len(pieces) == 1:
        return {k: torch.from_numpy(v) for k, v in pieces[0].items()}
    return {k: torch.from_numpy(np.concatenate([p[k] for p in pieces])) for k in pieces[0]}


_PARTICLE_KEYS = ("particles", "mask", "points", "vectors")


class RootDataset(Dataset):
    """Examples held in memory as padded numpy arrays; fast batched fetching through ``__getitems__``.

    Parameters
    ----------
    spec
        A :class:`RootSpec`, or its keyword arguments.
    split
        Keep only this split (a key of ``spec.splits``); ``None`` keeps every example.
    arrays
        Already-read arrays (from :meth:`read`), to build several splits from one read.

    Examples
    --------
    >>> import skhep_testdata
    >>> from torchsci_physics.data import RootDataset
    >>> jets = RootDataset(dict(files=skhep_testdata.data_path("uproot-issue96.root"), tree="tree",
    ...                         objects=["jet1"], features={"multiplicity": "{obj}ChgMult"},
    ...                         label="{obj}ID == 21", selection="{obj}ID > 0", classes=["quark", "gluon"]))
    >>> len(jets), sorted(jets[:4])
    (13605, ['entry', 'features', 'label', 'object', 'weight'])
    """

    collate = staticmethod(collate)

    def __init__(self, spec: RootSpec | Mapping[str, Any], split: str | None = None,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        self.spec = spec if isinstance(spec, RootSpec) else RootSpec(**spec)
        arrays = arrays if arrays is not None else self.read(self.spec)
        if split is not None:
            if split not in self.spec.splits:
                raise ConfigError(f"split={split!r}: the spec's splits are {list(self.spec.splits) or 'none'}.")
            keep = arrays["split"] == list(self.spec.splits).index(split)
            arrays = {k: v[keep] for k, v in arrays.items()}
            if not keep.any():
                raise DataError(f"split {split!r} ({self.spec.splits[split]!r}) selects no examples from "
                                f"{self.spec.files}.")
        keys = batch_keys(self.spec)
        self.arrays = {k: arrays[k] for k in keys if k in arrays}
        self.source = arrays.get("source")

    @staticmethod
    def read(spec: RootSpec, **kwargs: Any) -> dict[str, np.ndarray]:
        """Read every chunk of every file into one set of arrays."""
        blocks = list(iter_blocks(spec, **kwargs))
        arrays = blocks[0] if len(blocks) == 1 else {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
        if len(arrays["entry"]) == 0:
            raise DataError(f"the selection {spec.selection!r} keeps no examples from {spec.files}.")
        return arrays

    def __len__(self) -> int:
        return len(self.arrays["entry"])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        return {k: torch.from_numpy(v[idx]) for k, v in self.arrays.items()}

    def __getitem__(self, index: Any) -> dict[str, torch.Tensor]:
        if isinstance(index, slice):
            return self.__getitems__(range(len(self))[index])
        return {k: torch.from_numpy(np.asarray(v[index])) for k, v in self.arrays.items()}


class RootStream(IterableDataset):
    """Examples streamed chunk by chunk: for more data than fits in memory.

    Work units (``step_size``-entry chunks of every file) are shuffled per epoch from ``(seed,
    epoch)`` and dealt out to DataLoader workers and ``torchrun`` ranks; each worker reads its units
    one at a time and mixes rows through a shuffle buffer of ``buffer_size`` examples, so the order
    depends only on ``(seed, epoch)`` and the number of readers (a resumed run reads the same batches).
    Peak memory is one chunk plus the buffer, whatever the number or size of files. Iterating gives
    rows; :meth:`batched` gives whole batches, which is how :func:`torchsci.data.make_loader` (and so
    the Trainer) reads a stream.

    Parameters
    ----------
    spec, split
        As for :class:`RootDataset`.
    buffer_size
        Rows held for shuffling (0 reads in file order: for evaluation).
    shuffle
        Shuffle the unit order and rows (training); ``False`` keeps file order.
    """

    collate = staticmethod(collate)

    def __init__(self, spec: RootSpec | Mapping[str, Any], split: str | None = None, *, buffer_size: int = 50_000,
                 shuffle: bool = True, seed: int = 0) -> None:
        self.spec = spec if isinstance(spec, RootSpec) else RootSpec(**spec)
        if split is not None and split not in self.spec.splits:
            raise ConfigError(f"split={split!r}: the spec's splits are {list(self.spec.splits) or 'none'}.")
        self.split = None if split is None else list(self.spec.splits).index(split)
        self.buffer_size, self.shuffle, self.seed, self.epoch = buffer_size, shuffle, seed, 0
        self.units = chunk_units(self.spec, self.spec.sources())
        #: a fitted reweighting (make_splits sets it on the training stream); None: physical weights
        self.reweighting: ReweightTable | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _shard() -> tuple[int, int]:
        """(this reader's index, number of readers) over ``torchrun`` ranks times DataLoader workers."""
        return reader_shard()

    def _my_units(self) -> list[tuple[int, int, int]]:
        units = list(self.units)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
            units = [units[i] for i in order]
        shard, shards = self._shard()
        return units[shard::shards]

    def _blocks(self) -> Iterator[dict[str, np.ndarray]]:
        """This worker's rows in their final (shuffled) order, one block of arrays at a time."""
        keys = batch_keys(self.spec)
        # Rows are mixed from (seed, epoch, reader) alone, not from the global RNG: a run resumed mid-epoch
        # re-reads the epoch up to its position, and must see the same order the interrupted run saw.
        rng = np.random.default_rng([self.seed, self.epoch, *self._shard()]) if self.shuffle else None
        pool: dict[str, np.ndarray] | None = None
        for block in iter_blocks(self.spec, self._my_units()):
            keep = block["split"] == self.split if self.split is not None else slice(None)
            if self.reweighting is not None:
                block["weight"] = (block["weight"] * self.reweighting.factors(block["reweight"], block["label"])).astype(np.float32)
            block = {k: block[k][keep] for k in keys if k in block}
            if rng is None or self.buffer_size <= 0:
                yield block
                continue
            pool = block if pool is None else {k: np.concatenate([pool[k], block[k]]) for k in block}
            size = len(pool["entry"])
            if size >= self.buffer_size:
                perm = rng.permutation(size)
                carry = self.buffer_size // 2  # rows carried over mix with the next chunk
                out, rest = perm[:size - carry], perm[size - carry:]
                yield {k: v[out] for k, v in pool.items()}
                pool = {k: v[rest] for k, v in pool.items()}
        if pool is not None and rng is not None:
            perm = rng.permutation(len(pool["entry"]))
            yield {k: v[perm] for k, v in pool.items()}

    def __iter__(self) -> Iterator[StreamRow]:
        for block in self._blocks():
            yield from map(StreamRow, itertools.repeat(block), range(len(block["entry"])))

    def batched(self, batch_size: int, drop_last: bool = False) -> StreamBatches:
        """The same rows in the same order, as whole batches (what :func:`torchsci.data.make_loader` reads).

        Batch boundaries are those a ``DataLoader(stream, batch_size)`` makes in each worker; a batch
        costs a slice of a block (or a concatenation where it spans two) instead of one fetch per row.
        """
        return StreamBatches(self, batch_size, drop_last)


class StreamBatches(IterableDataset):
    """Batches of ``batch_size`` rows of a :class:`RootStream` (the last one shorter unless ``drop_last``)."""

    def __init__(self, stream: RootStream, batch_size: int, drop_last: bool = False) -> None:
        self.stream, self.batch_size, self.drop_last = stream, batch_size, drop_last

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pending: list[dict[str, np.ndarray]] = []
        count = 0
        for block in self.stream._blocks():
            n, start = len(block["entry"]), 0
            while start < n:
                take = min(self.batch_size - count, n - start)
                pending.append({k: v[start:start + take] for k, v in block.items()})
                count, start = count + take, start + take
                if count == self.batch_size:
                    yield _join(pending)
                    pending, count = [], 0
        if pending and not self.drop_last:
            yield _join(pending)


def _join(pieces: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    # every row of a block goes into exactly one batch, so a batch may view the block's memory
    if len(pieces) == 1:
        return {k: torch.from_numpy(v) for k, v in pieces[0].items()}
    return {k: torch.from_numpy(np.concatenate([p[k] for p in pieces])) for k in pieces[0]}


# ---------------------------------------------------------------------------------------------- standardisation
def standardisation(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per-input mean and standard deviation over the given (training) examples; real particles only.

    Several named collections give ``particle_mean``/``particle_std`` as ``{collection: [...]}``.
    """
    out: dict[str, Any] = {}
    if "features" in arrays and arrays["features"].shape[1]:
        f = arrays["features"].astype(np.float64)
        out["feature_mean"], out["feature_std"] = f.mean(0).tolist(), _safe_std(f.std(0))
    if "particles" in arrays and arrays["particles"].shape[-1]:
        real = arrays["particles"][arrays["mask"]].astype(np.float64)
        if len(real):
            out["particle_mean"], out["particle_std"] = real.mean(0).tolist(), _safe_std(real.std(0))
    names = [k.split(".", 1)[1] for k in arrays if k.startswith("particles.")]
    if names:
        out["particle_mean"], out["particle_std"] = {}, {}
        for name in names:
            real = arrays[f"particles.{name}"][arrays[f"mask.{name}"]].astype(np.float64)
            if len(real) and real.shape[-1]:
                out["particle_mean"][name], out["particle_std"][name] = real.mean(0).tolist(), _safe_std(real.std(0))
    return out


def transform_target(target: Any, transform: str | None) -> Any:
    """``target`` (numpy or torch) in the space the model learns: ``log`` or unchanged."""
    if transform == "log":
        return torch.log(target) if isinstance(target, torch.Tensor) else np.log(target)
    return target


def untransform_target(value: Any, transform: str | None) -> Any:
    """The inverse of :func:`transform_target`."""
    if transform == "log":
        return torch.exp(value) if isinstance(value, torch.Tensor) else np.exp(value)
    return value


def target_scale(target: np.ndarray, transform: str | None) -> list[float]:
    """``[mean, std]`` of the transformed ``target`` (training examples): the regression's standardisation."""
    if not len(target):
        raise DataError("target: the training split is empty, nothing to measure the target's scale on.")
    t = transform_target(np.asarray(target, np.float64), transform)
    return [float(t.mean()), _safe_std(np.array([t.std()]))[0]]


def _safe_std(std: np.ndarray) -> list[float]:
    return [float(s) if s > 0 and math.isfinite(s) else 1.0 for s in std]


def make_splits(spec: RootSpec | Mapping[str, Any], *, streaming: bool = False, buffer_size: int = 50_000,
                seed: int = 0, standardise_on: int = 200_000) -> DataSplits:
    """Train/val/test datasets from ``spec.splits`` (keys ``train``, ``val``, ``test``), and the model facts.

    ``model_kwargs`` carries what the model needs from the data: input widths, ``num_classes``, the
    standardisation measured on the training split (the first ``standardise_on`` training examples
    when streaming) and ``input_spec``, so a saved model knows how to read new files.
    """
    spec = spec if isinstance(spec, RootSpec) else RootSpec(**spec)
    if spec.fold is not None:
        spec = dataclasses.replace(spec, splits=spec.fold_splits(), fold=None)
    missing = [s for s in ("train",) if s not in spec.splits]
    if missing:
        raise ConfigError(f"splits= needs a 'train' selection (have {list(spec.splits) or 'none'}); e.g. "
                          "{'train': 'EventNumber % 2 == 0', 'test': 'EventNumber % 2 == 1'}.")
    parts: dict[str, Any] = {}
    if streaming:
        for name in ("train", "val", "test"):
            if name in spec.splits:
                parts[name] = RootStream(spec, name, buffer_size=buffer_size if name == "train" else 0,
                                         shuffle=name == "train", seed=seed)
        sample = _first_rows(RootStream(spec, "train", buffer_size=0, shuffle=False), standardise_on)
        if spec.reweight:
            parts["train"].reweighting = _fit_reweight(spec, sample)
    else:
        arrays = RootDataset.read(spec)
        train_arrays = arrays
        if spec.reweight:
            train = arrays["split"] == list(spec.splits).index("train")
            table = _fit_reweight(spec, {k: v[train] for k, v in arrays.items()})
            weight = arrays["weight"].copy()
            weight[train] = weight[train] * table.factors(arrays["reweight"][train], arrays["label"][train])
            train_arrays = {**arrays, "weight": weight}
        for name in ("train", "val", "test"):
            if name in spec.splits:
                parts[name] = RootDataset(spec, name, arrays=train_arrays if name == "train" else arrays)
        sample = parts["train"].arrays
    if spec.target is not None and spec.target_scale is None:
        spec = dataclasses.replace(spec, target_scale=target_scale(sample["target"], spec.target_transform))
    kwargs: dict[str, Any] = dict(standardisation(sample),
                                  num_classes=1 if spec.target is not None else len(spec.classes or []),
                                  num_features=len(spec.feature_map()), input_spec=spec.input_spec())
    if isinstance(spec.particles, Collection):
        kwargs["num_particle_features"] = len(spec.particles.feature_map())
    elif spec.particles is not None:
        kwargs["num_particle_features"] = {name: len(c.feature_map()) for name, c in spec.collections().items()}
    counts = {name: len(d) for name, d in parts.items() if isinstance(d, RootDataset)}
    return DataSplits(train=parts["train"], val=parts.get("val"), test=parts.get("test"), collate_fn=collate,
                      model_kwargs=kwargs, info={"classes": spec.classes, "examples": counts})


def _fit_reweight(spec: RootSpec, rows: Mapping[str, np.ndarray]) -> ReweightTable:
    """The reweighting of ``spec`` fitted on training ``rows`` (with their ``reweight`` values)."""
    if not len(rows["label"]):
        raise DataError("reweight: the training split is empty, nothing to fit the reweighting on.")
    return spec.reweight.fit(rows["reweight"], rows["label"], rows["weight"].astype(np.float64), spec.classes)


def _first_rows(stream: RootStream, limit: int) -> dict[str, np.ndarray]:
    blocks, total = [], 0
    for block in iter_blocks(stream.spec, stream.units):
        keep = block["split"] == stream.split
        block = {k: v[keep] for k, v in block.items()}
        blocks.append(block)
        total += len(block["entry"])
        if total >= limit:
            break
    return {k: np.concatenate([b[k] for b in blocks])[:limit] for k in blocks[0]}
