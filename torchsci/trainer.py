"""The Trainer: the one training loop of the suite.

Read it top to bottom: :meth:`Trainer.fit` sets up the device, precision and process group, builds the
optimizer and schedule (:mod:`torchsci.optim`), restores a checkpoint if asked, then runs epochs of
:meth:`Trainer._train_epoch` and :meth:`Trainer._evaluate`. A model is a plain ``nn.Module``; a
:class:`torchsci.task.Task` says how to get outputs, loss and metrics from a batch.

Exact resume is a property of the design: everything random a run depends on (python, numpy and torch
RNGs, the shuffling order, the augmentation streams, see :mod:`torchsci.data`) is owned here and stored
in each checkpoint together with the loader position, so a run killed at any step and resumed from its
last checkpoint ends with bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from torchsci import distributed
from torchsci.callbacks import Callback
from torchsci.checkpoint import CheckpointDir, load_state
from torchsci.data import make_loader
from torchsci.device import Precision, move_to, resolve_device
from torchsci.errors import CheckpointError, ConfigError, TorchsciError
from torchsci.hybrid import compile_enabled
from torchsci.io import make_run_dir
from torchsci.loggers import CSVLog, TensorBoardLog
from torchsci.metrics import Mean
from torchsci.optim import OPTIMIZERS as OPTIMIZERS  # re-exported: torchsci.trainer.OPTIMIZERS keeps working
from torchsci.optim import build_optimizer, build_scheduler, check_optimizer, check_scheduler
from torchsci.seed import capture_rng, restore_rng, seed_everything, set_deterministic
from torchsci.task import Task


class TrainingDiverged(TorchsciError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class Progress:
    """Counters of a run; stored in every checkpoint."""

    epoch: int = 0
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    loss_sum: float = 0.0  # running train loss of the current epoch
    loss_count: float = 0.0
    best_score: float | None = None


@dataclasses.dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    model: nn.Module
    history: list[dict[str, float]]
    run_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_score: float | None
    stopped_early: bool


@dataclasses.dataclass
class _Run:
    """What one call of :meth:`Trainer.fit` works on; its epoch, step and checkpoint helpers take it."""

    model: nn.Module  # on the run's device; its weights are what checkpoints hold
    net: nn.Module  # what the training steps call: ``model``, or DDP and/or torch.compile around it
    task: Task
    train_data: Dataset
    val_data: Dataset | None
    collate_fn: Callable | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    ckpt: CheckpointDir
    csv_log: CSVLog
    tb_log: TensorBoardLog | None = None  # opened once the resume point is known; None off the main process
    progress: Progress = dataclasses.field(default_factory=Progress)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Trainer:
    """Train, evaluate and predict with any ``nn.Module`` and :class:`~torchsci.task.Task`.

    Parameters
    ----------
    max_epochs, max_steps
        Stop after this many epochs or optimizer steps, whichever comes first.
    batch_size, eval_batch_size, num_workers, drop_last
        Loader settings. Under ``torchrun`` ``batch_size`` is per process, so the global batch is
        ``batch_size * world_size``.
    optimizer, lr, weight_decay
        ``"adam" | "adamw" | "sgd" | "radam"`` or a callable ``params -> Optimizer``.
    scheduler, scheduler_interval
        ``None``, ``"cosine"`` (to the last step), ``"plateau"`` (on the monitored metric) or a
        callable ``optimizer -> LRScheduler``, stepped every ``"step"`` or ``"epoch"``.
    accumulate_grad_batches, gradient_clip_norm
        Gradient accumulation over micro-batches; clipping of the global gradient norm.
    device, precision
        See :func:`torchsci.device.resolve_device` and :class:`torchsci.device.Precision`.
    seed, deterministic
        The run seed (all randomness of the run derives from it: shuffling, dropout, augmentation) and
        torch's deterministic-kernel mode. The model's initial weights were drawn before ``fit``: build
        it with ``create_model(..., seed=...)`` for a run that repeats bit for bit.
    run_dir
        Where checkpoints and logs go (default ``runs/<date>_<time>``).
    checkpoint_every_n_steps, keep_last_checkpoints
        Mid-epoch checkpoints (epoch ends are always checkpointed) and how many step files to keep.
    log_every_n_steps, tensorboard, progress, verbose
        Step logging interval, TensorBoard events, a progress bar (default: only on a terminal), and
        one summary line per epoch.
    callbacks
        :class:`~torchsci.callbacks.Callback` objects, e.g. :class:`~torchsci.callbacks.EarlyStopping`.
    compile
        Train through ``torch.compile`` of the whole model: ``True``, or a dict of ``torch.compile``
        settings (``{"mode": "max-autotune"}``). Checkpoints are unaffected (the compiled wrapper is never
        saved); the global switch (``TORCHSCI_COMPILE=0``, ``torchsci.set_compile(False)``) turns it off.

    Examples
    --------
    >>> import torch, tempfile
    >>> from torch.utils.data import TensorDataset
    >>> from torchsci import Trainer, RegressionTask
    >>> x = torch.randn(64, 3); data = TensorDataset(x, x.sum(1, keepdim=True))
    >>> trainer = Trainer(max_epochs=2, batch_size=16, run_dir=tempfile.mkdtemp(), verbose=False, tensorboard=False)
    >>> result = trainer.fit(torch.nn.Linear(3, 1), RegressionTask(), data, val_data=data)
    >>> sorted(result.history[-1])
    ['epoch', 'lr', 'step', 'train/items_per_s', 'train/loss', 'val/loss', 'val/mae', 'val/rmse']
    """

    def __init__(
        self,
        *,
        max_epochs: int = 10,
        max_steps: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str | Callable[[torch.optim.Optimizer], Any] | None = None,
        scheduler_interval: str = "step",
        accumulate_grad_batches: int = 1,
        gradient_clip_norm: float | None = None,
        device: str = "auto",
        precision: str = "32",
        seed: int = 0,
        deterministic: bool = False,
        run_dir: str | os.PathLike | None = None,
        checkpoint_every_n_steps: int | None = None,
        keep_last_checkpoints: int | None = 2,
        log_every_n_steps: int = 50,
        tensorboard: bool = True,
        progress: bool | None = None,
        verbose: bool = True,
        callbacks: Sequence[Callback] = (),
        compile: bool | dict[str, Any] = False,  # noqa: A002 (the setting's natural name)
    ) -> None:
        check_optimizer(optimizer)
        check_scheduler(scheduler, scheduler_interval)
        for name, value in (("max_epochs", max_epochs), ("batch_size", batch_size),
                            ("accumulate_grad_batches", accumulate_grad_batches), ("max_steps", max_steps),
                            ("eval_batch_size", eval_batch_size), ("log_every_n_steps", log_every_n_steps),
                            ("checkpoint_every_n_steps", checkpoint_every_n_steps),
                            ("keep_last_checkpoints", keep_last_checkpoints)):
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}: must be at least 1.")
        if num_workers < 0:
            raise ConfigError(f"num_workers={num_workers}: must be 0 (load in the main process) or more.")
        # lr 0 is allowed: a run that must keep the weights (evaluating a fine-tuning set-up, a frozen check)
        for name, value, low in (("lr", lr, "0 or more"), ("weight_decay", weight_decay, "0 or more"),
                                 ("gradient_clip_norm", gradient_clip_norm, "above 0")):
            if value is not None and not (math.isfinite(value) and (value > 0 or (value == 0 and low == "0 or more"))):
                raise ConfigError(f"{name}={value}: must be a finite number {low}.")
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.drop_last = num_workers, drop_last
        self.optimizer_spec, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.scheduler_spec, self.scheduler_interval = scheduler, scheduler_interval
        self.accumulate, self.clip = accumulate_grad_batches, gradient_clip_norm
        self.seed, self.deterministic = seed, deterministic
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs") / stamp
        self._named_run_dir = run_dir is not None  # else fit() creates a unique runs/<stamp>[-N]
        self.checkpoint_every, self.keep_last = checkpoint_every_n_steps, keep_last_checkpoints
        self.log_every, self.use_tensorboard = log_every_n_steps, tensorboard
        self.progress, self.verbose = progress, verbose
        self.callbacks = list(callbacks)
        self.should_stop = False
        self.compile = compile
        self.dist = distributed.env_info()
        self.device = resolve_device(device, self.dist.local_rank)
        self.precision = Precision(precision, self.device)

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        self.dist = distributed.init(self.device.type)
        if self.deterministic:
            set_deterministic(True)
        seed_everything(self.seed)

    def _steps_per_epoch(self, data: Any) -> int | None:
        if isinstance(data, IterableDataset) or not hasattr(data, "__len__"):
            return None
        per_rank = math.ceil(len(data) / self.dist.world_size)
        batches = per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)
        return math.ceil(batches / self.accumulate)

    def _say(self, message: str) -> None:
        if self.verbose and self.dist.is_main:
            tqdm.write(message, file=sys.stdout)

    def _bar(self, total: int | None, desc: str, initial: int = 0) -> tqdm:
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        return tqdm(total=total, desc=desc, initial=initial, leave=False, dynamic_ncols=True,
                    disable=not (show and self.dist.is_main))

    # ------------------------------------------------------------------ checkpoints
    def _state(self, run: _Run) -> dict[str, Any]:
        rngs = distributed.all_gather_object(capture_rng())
        return {
            "model": _unwrap(run.model).state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "progress": dataclasses.asdict(run.progress),
            "rng": rngs,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "meta": {
                "world_size": self.dist.world_size,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "max_steps": self.max_steps,
                "max_epochs": self.max_epochs,
                "model_spec": getattr(_unwrap(run.model), "torchsci_spec", None),
            },
        }

    def _save(self, run: _Run, is_best: bool) -> Path:
        state = self._state(run)  # every rank joins the RNG gather inside
        step = run.progress.step
        path = run.ckpt.step_path(step)
        if self.dist.is_main:
            path = run.ckpt.save(state, step, is_best=is_best)
        distributed.barrier()
        return path

    def _restore(self, run: _Run, path: Path) -> Progress:
        state = load_state(path)
        meta = state.get("meta", {})
        if meta.get("batch_size") not in (None, self.batch_size) or meta.get("world_size") not in (None, self.dist.world_size):
            raise CheckpointError(
                f"{path} was written with batch_size={meta.get('batch_size')} on {meta.get('world_size')} "
                f"process(es); this run has batch_size={self.batch_size} on {self.dist.world_size}. Resume with "
                "the same settings, or start a new run from its weights (torchsci.checkpoint.load_weights)."
            )
        try:
            run.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"weights in {path} do not fit this model: {exc}") from exc
        run.optimizer.load_state_dict(state["optimizer"])
        if run.scheduler is not None and state["scheduler"] is not None:
            run.scheduler.load_state_dict(state["scheduler"])
        if run.scaler is not None and state["scaler"] is not None:
            run.scaler.load_state_dict(state["scaler"])
        for cb, cb_state in zip(self.callbacks, state.get("callbacks", []), strict=False):
            cb.load_state_dict(cb_state)
        if self.scheduler_spec == "cosine" and (meta.get("max_steps"), meta.get("max_epochs")) != (self.max_steps, self.max_epochs):
            warnings.warn(
                f"{path} was written by a run with max_steps={meta.get('max_steps')}, max_epochs={meta.get('max_epochs')}; "
                f"this one has max_steps={self.max_steps}, max_epochs={self.max_epochs}. The cosine schedule keeps "
                "the checkpoint's length, so the learning rate will not follow the new one.", stacklevel=3)
        restore_rng(state["rng"][min(self.dist.rank, len(state["rng"]) - 1)])
        return Progress(**state["progress"])

    def _resolve_resume(self, resume: str | os.PathLike | None, ckpt: CheckpointDir) -> Path | None:
        if resume is None:
            return None
        if str(resume) == "last":
            return ckpt.last if ckpt.last.is_file() else None
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError(f"resume={str(resume)!r}: no such checkpoint file.")
        return path

    RUN_FILES = ("metrics.csv", "tensorboard", "checkpoints")

    def _check_run_dir(self, resume: str | os.PathLike | None, resume_path: Path | None) -> bool:
        """Refuse to start a fresh run in a folder that holds another run's logs or checkpoints.

        Returns whether the folder holds logs of a run killed before its first checkpoint, which
        ``resume="last"`` restarts from step 0 in place (their rows are replayed).
        """
        own = resume_path is not None and Path(resume_path).resolve().parent == (self.run_dir / "checkpoints").resolve()
        if own or not self.run_dir.is_dir():
            return False
        found = [name for name in self.RUN_FILES if (self.run_dir / name).exists()
                 and (not (self.run_dir / name).is_dir() or any((self.run_dir / name).iterdir()))]
        if not found:
            return False
        if str(resume) == "last" and not any((self.run_dir / "checkpoints").glob("*.ckpt")):
            return True
        if resume_path is not None:
            raise ConfigError(f"resume={str(resume)!r} is a checkpoint of another run folder, but run_dir="
                              f"{str(self.run_dir)!r} already holds a run ({', '.join(found)}); continue it in a new "
                              "run_dir, or resume that checkpoint's own folder.")
        raise ConfigError(
            f"run_dir={str(self.run_dir)!r} already holds a run ({', '.join(found)}); starting another there would "
            "mix their logs and overwrite its checkpoints. Continue it with resume='last' (command line: "
            "resume=last or resume=<run folder>), or choose a new run_dir.")

    @staticmethod
    def _check_data(train_data: Any, val_data: Any) -> None:
        for split, data in (("training", train_data), ("validation", val_data)):
            if data is not None and hasattr(data, "__len__") and not isinstance(data, IterableDataset) \
                    and len(data) == 0:
                fix = "give it examples" if split == "training" else "give it examples or pass val_data=None"
                raise ConfigError(f"the {split} data is empty (0 examples): there is nothing to "
                                  f"{'train on' if split == 'training' else 'validate on'}; {fix}.")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: nn.Module,
        task: Task,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        collate_fn: Callable | None = None,
        resume: str | os.PathLike | None = None,
    ) -> FitResult:
        """Train ``model`` on ``train_data``, validating on ``val_data`` after every epoch.

        ``resume`` is a checkpoint path, or ``"last"`` for this run folder's latest checkpoint (a fresh
        start when there is none yet, so one command both starts and resumes a run).

        Exact resume needs the global generators: ``fit`` seeds Python's, numpy's and torch's from the
        Trainer's ``seed`` (:func:`torchsci.seed_everything`) and leaves them as training left them. A
        script that draws its own random numbers after ``fit`` and must not depend on training saves them
        first: ``state = torchsci.seed.capture_rng()``, then ``torchsci.seed.restore_rng(state)``.
        """
        self._setup()
        self.should_stop = False
        model = model.to(device=self.device, dtype=self.precision.param_dtype)
        optimizer = build_optimizer(model, self.optimizer_spec, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = build_scheduler(optimizer, self.scheduler_spec, interval=self.scheduler_interval,
                                    max_epochs=self.max_epochs, max_steps=self.max_steps,
                                    steps_per_epoch=self._steps_per_epoch(train_data),
                                    monitor_mode=task.monitor_mode)
        scaler = self.precision.grad_scaler()
        self._check_data(train_data, val_data)
        if not self._named_run_dir and not self.dist.enabled:
            self.run_dir = make_run_dir(self.run_dir.parent, self.run_dir.name)
            self._named_run_dir = True
        run = _Run(model=model, net=model, task=task, train_data=train_data, val_data=val_data,
                   collate_fn=collate_fn, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                   ckpt=CheckpointDir(self.run_dir / "checkpoints", keep_last=self.keep_last),
                   csv_log=CSVLog(self.run_dir / "metrics.csv"))
        resume_path = self._resolve_resume(resume, run.ckpt)
        stale = self._check_run_dir(resume, resume_path)
        if resume_path is not None:
            run.progress = self._restore(run, resume_path)
            self._say(f"resumed from {resume_path} at epoch {run.progress.epoch}, step {run.progress.step}")
        progress = run.progress

        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume_path is not None:
                run.csv_log.resume(progress.step)
            if self.use_tensorboard:
                # Resuming (or restarting a run killed before its first checkpoint) purges the events
                # logged after the checkpoint's step, so TensorBoard never shows two runs' values mixed.
                purge = progress.step if resume_path is not None else 0 if stale else None
                run.tb_log = TensorBoardLog(self.run_dir / "tensorboard", resume_step=purge)
        history = [{k: float(v) for k, v in row.items()} for row in run.csv_log.rows if "train/loss" in row]

        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            run.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.compile and compile_enabled():
            run.net = torch.compile(run.net, **(self.compile if isinstance(self.compile, dict) else {}))
        for cb in self.callbacks:
            cb.on_fit_start(self)

        last_path = resume_path
        try:
            while progress.epoch < self.max_epochs and not self._steps_done(run) and not self.should_stop:
                started, items_before = time.perf_counter(), progress.loss_count
                mid_epoch, complete = self._train_epoch(run)
                if mid_epoch is not None:
                    last_path = mid_epoch
                metrics = {"epoch": progress.epoch, "step": progress.step,
                           "lr": optimizer.param_groups[0]["lr"],
                           "train/loss": progress.loss_sum / max(progress.loss_count, 1e-12),
                           "train/items_per_s": (progress.loss_count - items_before) * self.dist.world_size
                           / max(time.perf_counter() - started, 1e-9)}
                if val_data is not None:
                    metrics.update(self._evaluate(model, task, val_data, collate_fn, "val"))
                for cb in self.callbacks:
                    cb.on_epoch_end(self, metrics)
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(metrics.get(task.monitor, metrics["train/loss"]))
                elif scheduler is not None and self.scheduler_interval == "epoch":
                    scheduler.step()
                is_best = self._is_best(run, metrics)
                history.append(metrics)
                self._say(self._summary(metrics))
                if self.dist.is_main:
                    logged = {k: v for k, v in metrics.items() if k not in ("epoch", "step")}
                    run.csv_log.log(logged, progress.step, progress.epoch)
                    run.csv_log.flush()
                    if run.tb_log is not None:
                        run.tb_log.log(logged, progress.step)
                        run.tb_log.flush()
                if complete:  # max_steps can end training mid-epoch; a resume then finishes that epoch
                    progress.epoch += 1
                    progress.batch_in_epoch, progress.loss_sum, progress.loss_count = 0, 0.0, 0.0
                last_path = self._save(run, is_best)
        finally:
            if run.tb_log is not None:
                run.tb_log.close()
        return FitResult(
            model=model, history=history, run_dir=self.run_dir, last_checkpoint=last_path,
            best_checkpoint=run.ckpt.best if run.ckpt.best.is_file() else None,
            best_score=progress.best_score, stopped_early=self.should_stop,
        )

    def _steps_done(self, run: _Run) -> bool:
        return self.max_steps is not None and run.progress.step >= self.max_steps

    def _is_best(self, run: _Run, metrics: dict[str, float]) -> bool:
        task, progress = run.task, run.progress
        key = task.monitor if task.monitor in metrics else "train/loss"
        value = metrics[key]
        if math.isnan(value):
            return False
        better = progress.best_score is None or (
            value > progress.best_score if (task.monitor_mode == "max" and key == task.monitor) else value < progress.best_score
        )
        if better:
            progress.best_score = value
        return better

    @staticmethod
    def _summary(metrics: dict[str, float]) -> str:
        parts = [f"epoch {int(metrics['epoch'])}", f"step {int(metrics['step'])}"]
        parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "step")]
        return " | ".join(parts)

    def _train_epoch(self, run: _Run) -> tuple[Path | None, bool]:
        """One epoch from the loader position in ``run.progress``.

        Returns the last mid-epoch checkpoint written (or ``None``) and whether the epoch was completed.
        """
        model, task, data, progress = run.net, run.task, run.train_data, run.progress
        model.train()
        iterable = isinstance(data, IterableDataset)
        start = progress.batch_in_epoch
        loader = make_loader(data, batch_size=self.batch_size, train=True, seed=self.seed, epoch=progress.epoch,
                             start_batch=0 if iterable else start, dist=self.dist, num_workers=self.num_workers,
                             collate_fn=run.collate_fn, drop_last=self.drop_last,
                             pin_memory=self.device.type == "cuda")
        batches: Iterable = iter(loader)
        if iterable:
            for _ in range(start):  # a stream reaches its position only by reading up to it
                next(batches, None)
        total = None if iterable else start + len(loader)
        sync_known = total is not None
        # Step losses stay on the device in a list until logged: no per-step sync or extra kernels.
        window: list[tuple[torch.Tensor, int]] = []
        last_path = None
        dtype = self.precision.param_dtype if self.precision.name == "64" else None
        with self._bar(total, f"epoch {progress.epoch}", initial=start) as bar:
            for batch in batches:
                progress.batch_in_epoch += 1
                boundary = progress.batch_in_epoch % self.accumulate == 0 or progress.batch_in_epoch == total
                batch = move_to(batch, self.device, dtype, non_blocking=True)
                no_sync = (self.dist.enabled and sync_known and not boundary)
                with model.no_sync() if no_sync else contextlib.nullcontext():
                    with self.precision.autocast():
                        outputs = task.forward(model, batch)
                        loss = task.loss(outputs, batch)
                    scaled = loss / self.accumulate if self.accumulate > 1 else loss
                    (run.scaler.scale(scaled) if run.scaler is not None else scaled).backward()
                window.append((loss.detach(), task.batch_size(batch)))
                bar.update(1)
                if not boundary:
                    continue
                self._optimizer_step(run)
                if progress.step % self.log_every == 0:
                    self._flush_window(run, window, bar)
                if self.checkpoint_every and progress.step % self.checkpoint_every == 0 and progress.batch_in_epoch != total:
                    self._fold_window(run, window)
                    if self.dist.is_main:
                        run.csv_log.flush()  # the log on disk always reaches the newest checkpoint
                    last_path = self._save(run, is_best=False)
                if self._steps_done(run) and progress.batch_in_epoch != total:
                    self._fold_window(run, window)
                    return last_path, False
        if progress.batch_in_epoch % self.accumulate != 0 and total is None:  # a stream's leftover micro-batches
            self._optimizer_step(run)
        self._fold_window(run, window)
        return last_path, True

    def _optimizer_step(self, run: _Run) -> None:
        """One optimizer step on the accumulated gradients, then the step counter, callbacks and schedule."""
        model, optimizer, scheduler, scaler = run.net, run.optimizer, run.scheduler, run.scaler
        if self.clip is not None:
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.progress.step += 1
        for cb in self.callbacks:
            cb.on_train_step_end(self, run.model, run.progress.step)  # the user's module, never a wrapper
        if scheduler is not None and self.scheduler_interval == "step" \
                and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()

    def _fold_window(self, run: _Run, window: list[tuple[torch.Tensor, int]]) -> float:
        """Move the window's step losses into the epoch's running train loss; return their mean.

        Also where a diverged run is caught: a NaN or infinite loss stops training with an explanation.
        """
        if not window:
            return math.nan
        progress = run.progress
        losses = torch.stack([loss.double() for loss, _ in window])
        sizes = torch.tensor([n for _, n in window], dtype=torch.float64, device=losses.device)
        total, count = float((losses * sizes).sum()), float(sizes.sum())
        window.clear()
        if not math.isfinite(total):
            raise TrainingDiverged(
                f"the training loss became {total} by step {progress.step} (epoch {progress.epoch}). Check the inputs "
                "for NaN or infinite values, lower the learning rate, set gradient_clip_norm, or use precision='32'."
            )
        progress.loss_sum += total
        progress.loss_count += count
        return total / count

    def _flush_window(self, run: _Run, window: list[tuple[torch.Tensor, int]], bar: tqdm) -> None:
        mean = self._fold_window(run, window)
        bar.set_postfix(loss=f"{mean:.4g}", refresh=False)
        if self.dist.is_main:
            values = {"train/step_loss": mean, "lr": run.optimizer.param_groups[0]["lr"]}
            run.csv_log.log(values, run.progress.step, run.progress.epoch)
            if run.tb_log is not None:
                run.tb_log.log(values, run.progress.step)

    # ------------------------------------------------------------------ evaluation and prediction
    def _eval_loader(self, data: Dataset, collate_fn: Callable | None):
        return make_loader(data, batch_size=self.eval_batch_size, train=False, seed=self.seed, dist=self.dist,
                           num_workers=self.num_workers, collate_fn=collate_fn,
                           pin_memory=self.device.type == "cuda")

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, task: Task, data: Dataset, collate_fn: Callable | None, prefix: str) -> dict[str, float]:
        model = _unwrap(model)
        was_training = model.training
        model.eval()
        loss_metric = Mean()
        metrics = task.metrics()
        loader = self._eval_loader(data, collate_fn)
        dtype = self.precision.param_dtype if self.precision.name == "64" else None
        total = None if isinstance(data, IterableDataset) else len(loader)
        with self._bar(total, prefix) as bar:
            for batch in loader:
                batch = move_to(batch, self.device, dtype, non_blocking=True)
                with self.precision.autocast():
                    outputs = task.forward(model, batch)
                    loss = task.loss(outputs, batch)
                loss_metric.update(loss, weight=torch.tensor(float(task.batch_size(batch))))
                task.update_metrics(metrics, outputs, batch)
                bar.update(1)
        model.train(was_training)
        result = {f"{prefix}/loss": loss_metric.compute()}
        result.update({f"{prefix}/{name}": m.compute() for name, m in metrics.items()})
        return result

    def _prepare_eval(self, model: nn.Module, ckpt_path: str | os.PathLike | None) -> nn.Module:
        self.dist = distributed.init(self.device.type)
        model = model.to(device=self.device, dtype=self.precision.param_dtype)
        if ckpt_path is not None:
            from torchsci.checkpoint import load_weights

            load_weights(model, ckpt_path)
        return model

    def validate(self, model: nn.Module, task: Task, data: Dataset, *, collate_fn: Callable | None = None,
                 ckpt_path: str | os.PathLike | None = None) -> dict[str, float]:
        """Loss and metrics of ``model`` (optionally with weights from ``ckpt_path``) on ``data``."""
        return self._evaluate(self._prepare_eval(model, ckpt_path), task, data, collate_fn, "val")

    def test(self, model: nn.Module, task: Task, data: Dataset, *, collate_fn: Callable | None = None,
             ckpt_path: str | os.PathLike | None = None) -> dict[str, float]:
        """Like :meth:`validate`, with metrics named ``test/...``."""
        return self._evaluate(self._prepare_eval(model, ckpt_path), task, data, collate_fn, "test")

    @torch.no_grad()
    def predict(self, model: nn.Module, task: Task, data: Dataset, *, collate_fn: Callable | None = None,
                ckpt_path: str | os.PathLike | None = None) -> Any:
        """``task.predict`` for every batch of ``data`` in order; tensors are concatenated on the CPU.

        Prediction is not sharded: under ``torchrun`` every process predicts the whole set.
        """
        model = self._prepare_eval(model, ckpt_path)
        model.eval()
        loader = make_loader(data, batch_size=self.eval_batch_size, train=False, seed=self.seed,
                             num_workers=self.num_workers, collate_fn=collate_fn)
        dtype = self.precision.param_dtype if self.precision.name == "64" else None
        outputs = []
        total = None if isinstance(data, IterableDataset) else len(loader)
        with self._bar(total, "predict") as bar:
            for batch in loader:
                batch = move_to(batch, self.device, dtype, non_blocking=True)
                with self.precision.autocast():
                    out = task.predict(task.forward(model, batch), batch)
                outputs.append(move_to(out, torch.device("cpu")))
                bar.update(1)
        if outputs and all(isinstance(o, torch.Tensor) for o in outputs):
            return torch.cat(outputs)
        return outputs
