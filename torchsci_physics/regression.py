"""Regression of a jet or event quantity (weaver's ``target_mass``): the ``physics/regression`` task and its metrics.

The target comes from the data (:class:`~torchsci_physics.data.RootSpec` ``target=``, an expression such
as ``"{obj}P4.mass"``, optionally learnt as ``log`` and standardised by ``target_scale``, both saved
with the model). The model has one output; the task turns it back into the target's units, so metrics,
predictions and friend trees are in GeV (or MeV) whatever the transform.

Metrics, weighted by the event weights: ``rmse``, ``mae``, and for the response ``pred / true`` its
``bias`` (weighted median minus 1) and ``resolution`` (half the 16-84% interval), the numbers a
calibration is judged by. :func:`response_in_bins` gives the same per bin of the true value, and
:meth:`RegressionTask.write_outputs` writes them (``response_bins.csv``) with the plots ``response.png``
(median response and resolution vs true, with a legend) and ``pred_vs_true.png`` after testing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torchsci.distributed import all_gather_object
from torchsci.errors import ConfigError
from torchsci.metrics import Metric
from torchsci.task import Task


def weighted_quantile(values: np.ndarray, q: Sequence[float] | float, weights: np.ndarray | None = None) -> np.ndarray:
    """Quantiles of ``values`` with (non-negative; negative ones count as 0) ``weights``, interpolated.

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.regression import weighted_quantile
    >>> weighted_quantile(np.array([1.0, 2.0, 3.0, 4.0]), [0.5]).tolist()
    [2.5]
    """
    values = np.asarray(values, np.float64)
    w = np.ones(len(values)) if weights is None else np.clip(np.asarray(weights, np.float64), 0, None)
    qs = np.atleast_1d(np.asarray(q, np.float64))
    if not len(values) or w.sum() <= 0:
        return np.full(len(qs), math.nan)
    order = np.argsort(values, kind="stable")
    v, w = values[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()  # midpoints: unweighted gives numpy's 'linear'-like midpoint rule
    return np.interp(qs, cdf, v)


def regression_summary(pred: np.ndarray, true: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """``rmse``, ``mae``, ``bias`` (median of pred/true minus 1), ``resolution`` (half the 16-84% of pred/true).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.regression import regression_summary
    >>> s = regression_summary(np.array([1.1, 2.2, 3.3]), np.array([1.0, 2.0, 3.0]))
    >>> round(s["bias"], 3), round(s["resolution"], 3), round(s["mae"], 3)
    (0.1, 0.0, 0.2)
    """
    pred, true = np.asarray(pred, np.float64).reshape(-1), np.asarray(true, np.float64).reshape(-1)
    w = np.ones(len(true)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if not len(true) or w.sum() <= 0:
        return {k: math.nan for k in ("rmse", "mae", "bias", "resolution")}
    err = pred - true
    with np.errstate(divide="ignore", invalid="ignore"):
        response = pred / true
    ok = np.isfinite(response)
    q16, q50, q84 = weighted_quantile(response[ok], [0.16, 0.5, 0.84], w[ok])
    return {"rmse": float(np.sqrt(np.sum(w * err**2) / w.sum())), "mae": float(np.sum(w * np.abs(err)) / w.sum()),
            "bias": float(q50 - 1), "resolution": float((q84 - q16) / 2)}


def response_in_bins(pred: np.ndarray, true: np.ndarray, weights: np.ndarray | None = None,
                     bins: int | np.ndarray = 8) -> dict[str, np.ndarray]:
    """Per bin of ``true``: edges, count, median response, its 16/84% quantiles, resolution, RMSE.

    ``bins`` as an integer gives equal-population bins over the true values (their weighted quantiles).
    """
    pred, true = np.asarray(pred, np.float64).reshape(-1), np.asarray(true, np.float64).reshape(-1)
    w = np.ones(len(true)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    edges = (np.unique(weighted_quantile(true, np.linspace(0, 1, int(bins) + 1), w)) if np.ndim(bins) == 0
             else np.asarray(bins, np.float64))
    if len(edges) >= 2:
        edges[0], edges[-1] = min(edges[0], true.min()), max(edges[-1], true.max())
    n = max(len(edges) - 1, 0)
    out = {k: np.full(n, math.nan) for k in ("median", "q16", "q84", "resolution", "rmse", "mae")}
    out["count"] = np.zeros(n, np.int64)
    out["edges"], out["center"] = edges, (edges[1:] + edges[:-1]) / 2
    which = np.clip(np.searchsorted(edges, true, side="right") - 1, 0, max(n - 1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        response = pred / true
    for b in range(n):
        rows = (which == b) & np.isfinite(response)
        out["count"][b] = int(rows.sum())
        if rows.any():
            out["q16"][b], out["median"][b], out["q84"][b] = weighted_quantile(response[rows], [0.16, 0.5, 0.84], w[rows])
            out["resolution"][b] = (out["q84"][b] - out["q16"][b]) / 2
            s = regression_summary(pred[rows], true[rows], w[rows])
            out["rmse"][b], out["mae"][b] = s["rmse"], s["mae"]
    return out


class RegressionMetric(Metric):
    """One of :func:`regression_summary`'s numbers over every (prediction, true, weight) of an epoch, all ranks."""

    def __init__(self, name: str = "rmse") -> None:
        self.name = name
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, preds: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        w = torch.ones(target.shape[0]) if weight is None else weight
        self.parts.append(tuple(t.detach().double().reshape(-1).cpu().numpy() for t in (preds, target, w)))

    def compute(self) -> float:
        parts = [p for rank in all_gather_object(self.parts) for p in rank]
        if not parts:
            return math.nan
        pred, true, w = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return regression_summary(pred, true, w)[self.name]


class RegressionTask(Task):
    """Weighted Huber (or MSE) loss on the standardised, optionally log-transformed target; metrics in its units.

    The data must have a ``target`` (:class:`~torchsci_physics.data.RootSpec` ``target=``); the model, one
    output (``num_classes=1``, which the dataset's ``model_kwargs`` give). Inputs are taken as by the
    tagging task (particles, mask, points, features, several collections).

    Parameters
    ----------
    loss
        ``"huber"`` (robust to the tails a jet-mass distribution has) or ``"mse"``.
    huber_delta
        Where the Huber loss turns from quadratic to linear, in units of the target's standard deviation.
    use_weights
        Weight the loss by the event weights (metrics are always weighted).
    bins
        Bins of the true value (equal population) for the response table and plot of :meth:`write_outputs`.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.regression import RegressionTask
    >>> task = RegressionTask()
    >>> task.scale = ("log", 4.0, 0.5)  # normally read from the model's input_spec
    >>> [round(v, 3) for v in task.predict(torch.zeros(2, 1), {}).tolist()]  # exp(4.0 + 0 * 0.5), in the target's units
    [54.598, 54.598]
    """

    monitor = "val/rmse"
    monitor_mode = "min"

    def __init__(self, loss: str = "huber", huber_delta: float = 1.0, use_weights: bool = True, bins: int = 8) -> None:
        if loss not in ("huber", "mse"):
            raise ConfigError(f"task loss={loss!r}: use 'huber' or 'mse'.")
        if not float(huber_delta) > 0:
            raise ConfigError(f"task huber_delta={huber_delta!r} must be positive (in units of the target's std).")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ConfigError(f"task bins={bins!r} must be a positive integer.")
        self.loss_name, self.huber_delta, self.use_weights, self.bins = loss, float(huber_delta), use_weights, bins
        self.scale: tuple[str | None, float, float] | None = None
        self.target_name = "target"

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        spec = getattr(getattr(model, "module", model), "input_spec", None) or {}
        if not spec.get("target") or not spec.get("target_scale"):
            raise ConfigError(f"{type(getattr(model, 'module', model)).__name__} carries no regression target: the "
                              "physics/regression task needs data with target= (e.g. data.target: '{obj}P4.mass') and a "
                              "model built from that dataset's model_kwargs.")
        mean, std = spec["target_scale"]
        self.scale = (spec.get("target_transform"), float(mean), float(std))
        target = spec["target"]
        self.target_name = next(iter(target)) if isinstance(target, dict) else "target"
        from torchsci_physics.task import TaggingTask

        out = model(*TaggingTask.inputs(model, batch))
        if out.ndim != 2 or out.shape[-1] != 1:
            raise ConfigError(f"physics/regression: the model gives outputs of shape {tuple(out.shape)}, not (batch, 1); "
                              "build it with num_classes=1 (a dataset with target= gives that in model_kwargs).")
        return out

    def model_inputs(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple:
        from torchsci_physics.task import TaggingTask

        return tuple(TaggingTask.inputs(model, batch))

    def _standardised(self, target: torch.Tensor) -> torch.Tensor:
        from torchsci_physics.splits import transform_target

        transform, mean, std = self.scale
        return (transform_target(target, transform) - mean) / std

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "target" not in batch:
            raise ConfigError("physics/regression: the batch has no 'target'; give the data target= (an expression).")
        t = self._standardised(batch["target"].to(outputs.dtype))
        o = outputs[:, 0]
        per = (F.huber_loss(o, t, reduction="none", delta=self.huber_delta) if self.loss_name == "huber"
               else F.mse_loss(o, t, reduction="none"))
        if not self.use_weights:
            return per.mean()
        w = batch["weight"].to(per.dtype)
        return (per * w).sum() / w.sum().clamp_min(torch.finfo(per.dtype).tiny)

    def metrics(self) -> dict[str, Metric]:
        return {name: RegressionMetric(name) for name in ("rmse", "mae", "bias", "resolution")}

    def update_metrics(self, metrics: dict[str, Metric], outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        pred = self.predict(outputs, batch)
        for m in metrics.values():
            m.update(pred, batch["target"], batch["weight"])

    def batch_size(self, batch: Any) -> int:
        return int(batch["entry"].shape[0])

    def predict(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prediction in the target's units, ``(batch,)`` (float64, so MeV-scale targets keep their digits)."""
        from torchsci_physics.splits import untransform_target

        if self.scale is None:
            raise ConfigError("physics/regression: predict before forward; the target's scale comes from the model.")
        transform, mean, std = self.scale
        return untransform_target(outputs[:, 0].double() * std + mean, transform)

    def write_outputs(self, trainer: Any, model: nn.Module, data: Any, folder: str | os.PathLike, *,
                      collate_fn: Any = None, ckpt_path: str | os.PathLike | None = None) -> list[Path]:
        """Predict ``data`` and write ``response_bins.csv``, ``response.png`` and ``pred_vs_true.png`` in ``folder``."""
        from torchsci_physics.evaluation import collect

        rows = collect(trainer, self, model, data, collate_fn=collate_fn, ckpt_path=ckpt_path,
                       keys=("target", "weight"))
        folder = Path(folder)
        table = response_in_bins(rows["prediction"], rows["target"], rows["weight"], self.bins)
        return [write_response_table(table, folder / "response_bins.csv"),
                plot_response(table, folder / "response.png", self.target_name),
                plot_pred_vs_true(rows["prediction"], rows["target"], rows["weight"], folder / "pred_vs_true.png",
                                  self.target_name)]


def write_response_table(table: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """:func:`response_in_bins` as CSV: one row per bin of the true value (written atomically)."""
    from torchsci.io import atomic_output

    columns = ["low", "high", "count", "median", "q16", "q84", "resolution", "rmse", "mae"]
    values = np.column_stack([table["edges"][:-1], table["edges"][1:], table["count"]]
                             + [table[k] for k in columns[3:]])
    with atomic_output(path, suffixes=(".csv",), what="response table") as tmp:
        np.savetxt(tmp, values, delimiter=",", header=",".join(columns), comments="", fmt="%.6g")
    return Path(path)


def plot_response(table: dict[str, np.ndarray], path: str | os.PathLike, target: str = "target") -> Path:
    """Median response pred/true (with the 16-84% band) and the resolution, vs the true value."""
    from torchsci_physics.plots import _pyplot, _save

    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    x = table["center"]
    top.axhline(1.0, color="grey", lw=1, ls="--", label="perfect response")
    top.fill_between(x, table["q16"], table["q84"], alpha=0.3, label="16-84% of pred / true")
    top.plot(x, table["median"], "o-", label="median pred / true")
    top.set_ylabel("response")
    top.legend()
    bottom.plot(x, table["resolution"], "s-", color="C3", label="resolution (half the 16-84% interval)")
    bottom.set_xlabel(f"true {target}")
    bottom.set_ylabel("resolution")
    bottom.legend()
    return _save(plt, fig, path)


def plot_pred_vs_true(pred: np.ndarray, true: np.ndarray, weights: np.ndarray | None, path: str | os.PathLike,
                      target: str = "target", bins: int = 50) -> Path:
    """2D histogram of predicted vs true, with the diagonal."""
    from matplotlib.colors import LogNorm

    from torchsci_physics.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    lo, hi = np.quantile(np.r_[true, pred], [0.005, 0.995])
    *_, image = ax.hist2d(true, pred, bins=bins, range=[[lo, hi], [lo, hi]], weights=weights, norm=LogNorm(), cmin=1e-12)
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls="--", label="pred = true")
    fig.colorbar(image, ax=ax, label="examples (weighted)")
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(loc="upper left")
    return _save(plt, fig, path)
