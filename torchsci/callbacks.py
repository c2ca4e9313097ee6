"""Callbacks: the two moments a run can be steered from outside, the start of fit and the end of an epoch.

Checkpointing, logging and progress are the Trainer's own job; callbacks are for decisions such as
stopping early, and for per-step bookkeeping such as weight averaging. A callback's ``state_dict`` goes into every checkpoint, so a resumed run remembers it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from torchsci.errors import ConfigError

if TYPE_CHECKING:
    from torchsci.trainer import Trainer


class Callback:
    """Base class; override what you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once after the model, optimizer and (on resume) state are ready."""

    def on_train_step_end(self, trainer: Trainer, model: torch.nn.Module, step: int) -> None:
        """Called after every optimizer step with the (unwrapped) model and the new step count."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Called after each epoch's validation with that epoch's metrics."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Examples
    --------
    >>> from torchsci.callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="val/rmse", patience=3)
    """

    def __init__(self, monitor: str = "val/loss", mode: str = "min", patience: int = 5, min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping(mode={mode!r}): use 'min' or 'max'.")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, trainer, metrics):
        if self.monitor not in metrics:
            raise ConfigError(f"EarlyStopping monitors '{self.monitor}', which this run does not report; "
                              f"reported: {', '.join(sorted(metrics))}.")
        value = metrics[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.should_stop = True

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
