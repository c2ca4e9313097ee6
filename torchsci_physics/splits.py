"""Train/val/test datasets of a :class:`~torchsci_physics.spec.RootSpec`, and what a model takes from the training split.

:func:`make_splits` builds the datasets (in memory or streamed) of ``spec.splits`` (or of one k-fold
fold), fits the reweighting on the training split, and measures the facts a model is built with
(``model_kwargs``): input widths, number of classes, the input :func:`standardisation`, the regression
target's scale (:func:`target_scale`, in the space of :func:`transform_target`) and the ``input_spec``
that a saved model reads new files with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from torchsci.data import DataSplits
from torchsci.errors import ConfigError, DataError
from torchsci_physics.chunks import iter_blocks
from torchsci_physics.in_memory import RootDataset
from torchsci_physics.reweighting import ReweightTable
from torchsci_physics.spec import Collection, RootSpec
from torchsci_physics.streaming import RootStream, collate


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
