"""One chunk of a tree's entries to a block of example rows: the reading loop of :class:`RootSpec` data.

A *block* is a dict of numpy arrays, one row per example (per entry, or per entry and object with
``objects=``): ``features``, the padded particle entries (:mod:`torchsci_physics.particles`), ``label``,
``weight``, ``target``, ``observers``, plus the bookkeeping ``entry``, ``object``, ``source``,
``selected``, ``split`` and ``fold``. :func:`read_block` reads one ``[entry_start, entry_stop)`` range
and checks it (no NaN input, labels within the classes, finite weights and targets);
:func:`chunk_units` cuts every file into ``step_size``-entry work units and :func:`iter_blocks` reads
units in turn, which is what both :class:`~torchsci_physics.in_memory.RootDataset` and
:class:`~torchsci_physics.streaming.RootStream` are built on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from torchsci.errors import ConfigError, DataError
from torchsci_physics import reading
from torchsci_physics.particles import PARTICLE_NAMES, pad_collection
from torchsci_physics.spec import RootSpec, collection_key, expressions_for


def _local_names(spec: RootSpec) -> set[str]:
    return set(PARTICLE_NAMES) if spec.collections() else set()


def needed_branches(spec: RootSpec, tree: Any, path: str, with_targets: bool = True) -> set[str]:
    """Every branch the spec reads from ``tree`` (a missing one is an error naming close branches)."""
    available = reading.branch_names(tree)
    exprs = [e for obj in (spec.objects or [None]) for e in expressions_for(spec, obj, with_targets)]
    return reading.branches_for(exprs, available, path, local=_local_names(spec))



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
            out.update({collection_key(k, name): v for k, v in pad_collection(c, ns, path, obj).items()})
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

