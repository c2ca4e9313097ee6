"""Training-sample reweighting in binned variables, as weaver does it: flatten, or match a reference class.

A :class:`Reweight` (``RootSpec(reweight=...)``) names variables (expressions such as ``"log(jet_pt)"``)
and their bin edges. Fitted on the training split, it gives every training example a factor that
multiplies its event weight:

- ``method="flatten"``: ``1 / h_c(bin)``, so every class is flat in the variables (a tagger then cannot
  learn the class from the jet's pT or mass alone);
- ``method="reference"``: ``h_ref(bin) / h_c(bin)``, so every class takes the shape of class ``reference``
  (bins the reference does not populate get weight 0);

then each class is scaled so that its total training weight is proportional to ``class_weights``
(equal by default), and the training sample keeps its total weight (the loss keeps its scale). ``h_c`` is the weighted histogram of class ``c``; values outside the edges fall
into the first or last bin. Validation and test examples keep their physical weights, so metrics
stay those of the analysis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from torchsci.errors import ConfigError, DataError


@dataclasses.dataclass
class Reweight:
    """How to reweight the training sample.

    Parameters
    ----------
    variables
        ``{name: expression}`` (or a list of expressions) in which to reweight, e.g. ``{"pt": "jet_pt",
        "mass": "jet_sdmass"}``; empty: only ``class_weights`` apply.
    bins
        ``{name: bin edges}`` for each variable (at least two increasing edges).
    method
        ``"flatten"`` or ``"reference"``.
    reference
        The class whose shape the others take (``method="reference"``).
    class_weights
        ``{class: relative total weight}`` after reweighting; classes not named get 1.
    max_weight
        Factors are clipped at this multiple of their class mean (tames sparse bins).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.reweighting import Reweight
    >>> rw = Reweight(variables={"pt": "jet_pt"}, bins={"pt": [0, 50, 100]})
    >>> table = rw.fit(np.array([[10.0], [20.0], [70.0], [80.0]]), np.array([0, 0, 0, 1]), np.ones(4), ["b", "s"])
    >>> table.factors(np.array([[10.0], [70.0], [80.0]]), np.array([0, 0, 1])).round(3).tolist()
    [0.5, 1.0, 2.0]
    """

    variables: dict[str, str] | list[str] = dataclasses.field(default_factory=dict)
    bins: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    method: str = "flatten"
    reference: str | None = None
    class_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    max_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.method not in ("flatten", "reference"):
            raise ConfigError(f"reweight.method={self.method!r}: use 'flatten' or 'reference'.")
        if self.method == "reference" and not self.reference:
            raise ConfigError("reweight.method='reference' needs reweight.reference=<class name> (the shape to match).")
        for name in self.variable_map():
            edges = np.asarray(self.bins.get(name, []), dtype=np.float64)
            if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
                raise ConfigError(f"reweight.bins[{name!r}] must be two or more increasing bin edges (e.g. "
                                  f"[200, 300, 500, 1000]); got {self.bins.get(name)!r}.")
        unknown = set(self.bins) - set(self.variable_map())
        if unknown:
            raise ConfigError(f"reweight.bins has edges for {sorted(unknown)}, which are not reweight.variables "
                              f"({list(self.variable_map())}).")

    def variable_map(self) -> dict[str, str]:
        return {v: v for v in self.variables} if isinstance(self.variables, (list, tuple)) else dict(self.variables)

    def fit(self, values: np.ndarray, labels: np.ndarray, weights: np.ndarray, classes: Sequence[str]) -> ReweightTable:
        """The per-class histograms of the training examples (``values (N, V)`` in variable order)."""
        for name in [*self.class_weights, *([self.reference] if self.reference else [])]:
            if name not in classes:
                raise ConfigError(f"reweight names class {name!r}, which is not one of the classes {list(classes)}.")
        edges = [np.asarray(self.bins[n], dtype=np.float64) for n in self.variable_map()]
        shape = tuple(len(e) - 1 for e in edges)
        cells = _cells(values, edges)
        hists = np.zeros((len(classes), int(np.prod(shape, dtype=np.int64))))
        np.add.at(hists, (labels, cells), weights)
        table = ReweightTable(edges, hists, np.ones(len(classes)), np.full(len(classes), np.inf), self.method,
                              None if self.reference is None else list(classes).index(self.reference))
        raw = table.factors(values, labels)
        for c in range(len(classes)):
            positive = raw[(labels == c) & (raw > 0)]
            table.caps[c] = self.max_weight * positive.mean() if len(positive) else np.inf
        raw = table.factors(values, labels)
        target = np.array([float(self.class_weights.get(c, 1.0)) for c in classes])
        totals = np.array([np.sum(raw[labels == c] * weights[labels == c]) for c in range(len(classes))])
        present = totals > 0
        if not present.any():
            raise DataError("reweighting leaves no training weight: every class has zero total weight after it.")
        # each class to its share of the target, the sample to its own total weight
        share = np.where(present, target, 0.0) / target[present].sum() * float(np.sum(weights))
        table.scale = np.where(present, share / np.where(present, totals, 1.0), 0.0)
        return table


@dataclasses.dataclass
class ReweightTable:
    """A fitted :class:`Reweight`: bin edges, per-class histograms and per-class scale."""

    edges: list[np.ndarray]
    hists: np.ndarray
    scale: np.ndarray
    caps: np.ndarray
    method: str
    reference: int | None

    def factors(self, values: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The factor for each example (``values (N, V)``, ``labels (N,)``) that multiplies its weight."""
        labels = np.asarray(labels, dtype=np.int64)
        cells = _cells(values, self.edges)
        own = self.hists[labels, cells]
        top = self.hists[self.reference, cells] if self.method == "reference" else np.ones(len(labels))
        out = np.maximum(np.where(own > 0, top / np.where(own > 0, own, 1.0), 0.0), 0.0)
        return (np.minimum(out, self.caps[labels]) * self.scale[labels]).astype(np.float32)


def _cells(values: np.ndarray, edges: Sequence[np.ndarray]) -> np.ndarray:
    """The flat bin index of each row; values outside the edges go to the first or last bin."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), len(edges))
    index = [np.clip(np.searchsorted(e, values[:, k], side="right") - 1, 0, len(e) - 2) for k, e in enumerate(edges)]
    if not index:
        return np.zeros(len(values), np.int64)
    return np.ravel_multi_index(index, tuple(len(e) - 1 for e in edges)).astype(np.int64)


def as_reweight(value: Reweight | Mapping[str, Any] | None) -> Reweight | None:
    """``RootSpec(reweight=...)`` as a :class:`Reweight` (a mapping gives its fields)."""
    if value is None or isinstance(value, Reweight):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"reweight={value!r} must be a mapping of Reweight fields (variables, bins, method, ...).")
    return Reweight(**value)
