"""Evaluation outputs of the physics tasks: plots and tables written after testing, from the CLI or Python.

The core runner calls a task's ``write_outputs(trainer, model, data, folder, ...)`` after ``torchsci
train`` tests the best checkpoint and after ``torchsci evaluate`` (``torchsci.runner.write_task_outputs``);
the files go to ``<run_dir>/evaluation/``. :func:`collect` predicts a dataset in order and keeps the
batch entries a plot needs (labels, weights, observers, targets) beside the predictions, so streamed
data work too. :func:`write_tagging_outputs` is the tagging task's: ``roc.png``, ``scores.png`` and,
with ``sculpting=`` set, ``sculpting.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchsci.task import Task


class _Collect(Task):
    """``task`` whose ``predict`` also returns the batch entries ``keys``: the rows a plot needs, in order."""

    def __init__(self, task: Task, keys: Sequence[str]) -> None:
        self.task, self.keys = task, tuple(keys)

    def forward(self, model: nn.Module, batch: Any) -> Any:
        return self.task.forward(model, batch)

    def predict(self, outputs: Any, batch: Any) -> dict[str, torch.Tensor]:
        out = {"prediction": self.task.predict(outputs, batch)}
        out.update({k: batch[k] for k in self.keys if k in batch})
        return out


def collect(trainer: Any, task: Task, model: nn.Module, data: Any, *, keys: Sequence[str] = ("label", "weight"),
            collate_fn: Any = None, ckpt_path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """``task.predict`` on every batch of ``data`` with the batch entries ``keys``, as numpy arrays in order.

    Examples
    --------
    >>> import torch, torchsci
    >>> from torchsci_physics.evaluation import collect
    >>> from torchsci.task import SupervisedTask
    >>> data = [{"inputs": torch.ones(3), "target": torch.tensor(1.0)}] * 5
    >>> rows = collect(torchsci.Trainer(device="cpu", verbose=False, tensorboard=False, progress=False),
    ...                SupervisedTask(), torch.nn.Linear(3, 1), data, keys=("target",))
    >>> rows["prediction"].shape, rows["target"].tolist()
    ((5, 1), [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    parts = trainer.predict(model, _Collect(task, keys), data, collate_fn=collate_fn, ckpt_path=ckpt_path)
    if not parts:
        return {}
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def write_tagging_outputs(task: Any, trainer: Any, model: nn.Module, data: Any, folder: str | os.PathLike, *,
                          collate_fn: Any = None, ckpt_path: str | os.PathLike | None = None) -> list[Path]:
    """The tagging task's plots of ``data``: ``roc.png``, ``scores.png``, and ``sculpting.png`` with ``sculpting=``."""
    from torchsci_physics.plots import plot_roc, plot_scores
    from torchsci_physics.sculpting import plot_sculpting, sculpting

    rows = collect(trainer, task, model, data, keys=("label", "weight", "observers"), collate_fn=collate_fn,
                   ckpt_path=ckpt_path)
    folder = Path(folder)
    probs, labels, weights = rows["prediction"], rows["label"], rows["weight"]
    classes = task.classes if task.classes and len(task.classes) == probs.shape[1] else [str(c) for c in range(probs.shape[1])]
    signal = task.signal_index(probs.shape[1])
    signal = 1 if signal is None else signal
    background = "rest" if len(classes) > 2 else classes[1 - signal]
    written = [plot_roc({type(getattr(model, "module", model)).__name__: (labels, probs, weights)}, folder / "roc.png",
                        signal, classes[signal], background)]
    if len(classes) == 2:
        written.append(plot_scores(labels, probs, weights, folder / "scores.png", classes, signal))
    if task.sculpting is not None:
        observable = task._observable({"observers": torch.from_numpy(rows["observers"])} if "observers" in rows else {})
        shape = sculpting(observable.numpy(), labels, probs, weights, signal=signal, efficiency=task.sculpting_efficiency)
        written.append(plot_sculpting(shape, folder / "sculpting.png", observable=task.sculpting,
                                      efficiency=task.sculpting_efficiency))
    return written
