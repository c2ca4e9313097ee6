"""Optimizers and learning-rate schedules by name, as the :class:`~torchsci.Trainer` builds them for a run.

A run names its optimizer (``"adam" | "adamw" | "sgd" | "radam"``) and schedule (``"cosine"``,
``"plateau"``), or passes a callable that builds one. :func:`check_optimizer` and :func:`check_scheduler`
refuse an unknown name when the Trainer is constructed (so a config fails before any data is loaded);
:func:`build_optimizer` and :func:`build_scheduler` build them in ``fit``, once the model and the data's
length are known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchsci.errors import ConfigError

#: ``{name: optimizer class}``: the names ``Trainer(optimizer=...)`` accepts.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "radam": torch.optim.RAdam,
}

# Named optimizers whose multi-tensor update gives bitwise the weights of the per-parameter loop on the CPU.
_FOREACH_SAME = frozenset({"adam", "adamw", "sgd"})

#: The names ``Trainer(scheduler=...)`` accepts besides ``None`` and a callable.
SCHEDULERS: tuple[str, ...] = ("cosine", "plateau")

#: How often a schedule steps: after every optimizer step or after every epoch.
SCHEDULER_INTERVALS: tuple[str, ...] = ("step", "epoch")


def check_optimizer(optimizer: str | Callable[..., torch.optim.Optimizer]) -> None:
    """Refuse an optimizer name that :func:`build_optimizer` does not know.

    Parameters
    ----------
    optimizer
        A name in :data:`OPTIMIZERS`, or a callable ``params -> Optimizer`` (always accepted).

    Raises
    ------
    ConfigError
        ``optimizer`` is a string that names no optimizer.

    Examples
    --------
    >>> from torchsci.optim import check_optimizer
    >>> check_optimizer("adamw")
    >>> check_optimizer("lion")
    Traceback (most recent call last):
    ...
    torchsci.errors.ConfigError: optimizer='lion': choose one of adam, adamw, sgd, radam or pass a callable.
    """
    if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)} or pass a callable.")


def check_scheduler(scheduler: str | Callable[[torch.optim.Optimizer], Any] | None, interval: str) -> None:
    """Refuse a schedule name or stepping interval that :func:`build_scheduler` does not know.

    Parameters
    ----------
    scheduler
        A name in :data:`SCHEDULERS`, ``None`` or a callable ``optimizer -> LRScheduler``.
    interval
        ``"step"`` or ``"epoch"`` (checked first, whatever ``scheduler`` is).

    Raises
    ------
    ConfigError
        ``interval`` is neither ``"step"`` nor ``"epoch"``, or ``scheduler`` is a string that names no
        schedule.

    Examples
    --------
    >>> from torchsci.optim import check_scheduler
    >>> check_scheduler("cosine", "epoch")
    >>> check_scheduler(None, "batch")
    Traceback (most recent call last):
    ...
    torchsci.errors.ConfigError: scheduler_interval='batch': use 'step' or 'epoch'.
    """
    if interval not in SCHEDULER_INTERVALS:
        raise ConfigError(f"scheduler_interval={interval!r}: use 'step' or 'epoch'.")
    if isinstance(scheduler, str) and scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler={scheduler!r}: use 'cosine', 'plateau', None or a callable.")


def build_optimizer(
    model: nn.Module,
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adamw",
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimizer of ``model``'s trainable parameters (those with ``requires_grad``).

    Parameters
    ----------
    model
        The module to optimize; frozen parameters are left out.
    optimizer
        A name in :data:`OPTIMIZERS` (built with ``lr`` and ``weight_decay``), or a callable
        ``params -> Optimizer`` that gets the parameter list and sets its own hyper-parameters.
    lr, weight_decay
        Learning rate and weight decay of a named optimizer.

    Returns
    -------
    torch.optim.Optimizer
        A new optimizer with no state.

    Examples
    --------
    >>> import torch
    >>> from torchsci.optim import build_optimizer
    >>> opt = build_optimizer(torch.nn.Linear(3, 1), "sgd", lr=0.1)
    >>> type(opt).__name__, opt.param_groups[0]["lr"]
    ('SGD', 0.1)
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if callable(optimizer):
        return optimizer(params)
    extra = {}
    if optimizer in _FOREACH_SAME and params and all(p.device.type == "cpu" for p in params):
        # PyTorch picks the multi-tensor ("foreach") update by itself only on GPUs; on the CPU it loops over the
        # parameters in Python. For these optimizers the foreach update does the same arithmetic in the same
        # order (bitwise equal weights: tests/core/test_optim.py, and 10 ESOL epochs of AdamW) and trains the
        # chem D-MPNN about 2% faster (benchmarks/README.md). RAdam's is not bitwise equal, so it keeps the loop.
        extra["foreach"] = True
    return OPTIMIZERS[optimizer](params, lr=lr, weight_decay=weight_decay, **extra)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    scheduler: str | Callable[[torch.optim.Optimizer], Any] | None,
    *,
    interval: str = "step",
    max_epochs: int,
    max_steps: int | None = None,
    steps_per_epoch: int | None = None,
    monitor_mode: str = "min",
) -> Any:
    """The learning-rate schedule of ``optimizer``, or ``None`` without one.

    Parameters
    ----------
    optimizer
        The optimizer whose learning rate the schedule sets.
    scheduler
        ``None``; ``"cosine"``: cosine annealing to the last step (or the last epoch with
        ``interval="epoch"``); ``"plateau"``: halve the learning rate when the monitored metric has not
        improved for 2 epochs; or a callable ``optimizer -> LRScheduler``.
    interval
        ``"step"`` or ``"epoch"``: what the Trainer steps the schedule after; it sets the cosine's length.
    max_epochs, max_steps, steps_per_epoch
        The run's length: a per-step cosine lasts ``max_steps``, or else ``steps_per_epoch * max_epochs``.
    monitor_mode
        ``"min"`` or ``"max"``: whether the metric ``"plateau"`` watches improves downwards or upwards.

    Returns
    -------
    Any
        A ``torch.optim.lr_scheduler`` object (or what the callable returned), or ``None``.

    Raises
    ------
    ConfigError
        A per-step ``"cosine"`` whose length is unknown: no ``max_steps`` and data without a length.

    Examples
    --------
    >>> import torch
    >>> from torchsci.optim import build_optimizer, build_scheduler
    >>> opt = build_optimizer(torch.nn.Linear(3, 1), "adamw", lr=0.1)
    >>> sched = build_scheduler(opt, "cosine", max_epochs=2, steps_per_epoch=5)
    >>> type(sched).__name__, sched.T_max
    ('CosineAnnealingLR', 10)
    """
    if scheduler is None:
        return None
    if scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=monitor_mode, factor=0.5,
                                                          patience=2)
    if scheduler == "cosine":
        if interval == "epoch":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
        total = max_steps or ((steps_per_epoch or 0) * max_epochs)
        if total <= 0:
            raise ConfigError("scheduler='cosine' per step needs max_steps when the data has no length.")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return scheduler(optimizer)
