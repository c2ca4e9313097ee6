"""What one training example is, read from ROOT files: :class:`RootSpec` and its particle :class:`Collection`.

The specification layer: nothing here opens a file. A spec names the ``files`` and ``tree``, the
per-example ``features``, the ``particles`` (one collection or several named ones), the ``label``,
``weight``, ``selection``, ``splits``, ``observers``, reweighting, regression target and folds. It is
checked when it is built (:func:`check_expressions`: every expression against
:mod:`torchsci_physics.expressions`, since a spec can come from a config or a checkpoint's
``input_spec``), and it knows which expressions it reads (:func:`expressions_for`) and which keys its
batches hold (:func:`batch_keys`). :mod:`torchsci_physics.chunks` reads what it describes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from torchsci.errors import ConfigError
from torchsci_physics import expressions as language
from torchsci_physics import reading
from torchsci_physics.reweighting import as_reweight

MAX_NUMBERED = 1000
_PARTICLE_KEYS = ("particles", "mask", "points", "vectors")

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
    """What one example is, read from ROOT files. See :mod:`torchsci_physics.data` for the batch layout.

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


def expressions_for(spec: RootSpec, obj: str | None, with_targets: bool) -> list[str]:
    """Every expression ``spec`` reads for the object ``obj`` (``{obj}`` substituted, ``{i}`` expanded).

    ``with_targets`` adds the label, weight, regression target and reweighting variables (prediction reads
    files that need not hold them).
    """
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
        language.check_all(expressions_for(spec, obj, True) + [reading.substitute(e, obj) for e in extra], where)

