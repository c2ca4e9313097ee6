"""Run a composed config: ``train``, ``evaluate``, ``predict`` (and ``export`` once the export layer is in).

The ``torchsci`` command and :func:`run` in a lab script go through the same code, so a run's saved
``config.yaml`` reproduces it from either side::

    results = torchsci.run(torchsci.compose(["experiment=core/oscillator"]))
    results = torchsci.run(omegaconf.OmegaConf.load("outputs/<day>/<time>_oscillator/config.yaml"))
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchsci.checkpoint import load_weights
from torchsci.config import _plain, instantiate, validate
from torchsci.data import DataSplits, make_loader
from torchsci.errors import ConfigError
from torchsci.io import atomic_output, check_output, make_run_dir
from torchsci.registry import registry
from torchsci.seed import seed_everything
from torchsci.trainer import Trainer

COMMANDS = ("train", "evaluate", "predict", "export")


def _run_dir(cfg: Any) -> tuple[Path, bool]:
    """The run folder, and whether it is still to be created under a unique name (see :func:`make_run_dir`)."""
    if cfg.get("run_dir"):
        return Path(cfg.run_dir), False
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.output_dir), False  # the CLI made it unique (cli.run_hydra)
    except ImportError:
        pass
    stamp = datetime.datetime.now()
    return Path("outputs") / stamp.strftime("%Y-%m-%d") / f"{stamp.strftime('%H-%M-%S')}_{cfg.name}", True


OUTPUTS = Path("outputs")
"""Where runs without ``run_dir`` go: ``outputs/<day>/<HH-MM-SS>_<name>[-N]`` (as ``hydra.run.dir`` says)."""


def new_run_dir(name: str) -> Path:
    """A new, unique run folder ``outputs/<day>/<HH-MM-SS>_<name>[-N]``, created atomically."""
    stamp = datetime.datetime.now()
    return make_run_dir(OUTPUTS / stamp.strftime("%Y-%m-%d"), f"{stamp.strftime('%H-%M-%S')}_{name}")


def _run_name(folder: Path) -> str | None:
    from omegaconf import OmegaConf

    try:
        return str(OmegaConf.load(folder / "config.yaml").get("name"))
    except Exception:  # an unreadable or foreign config.yaml: not a run of ours
        return None


def find_resume(name: str, resume: str) -> tuple[Path, str]:
    """The run folder to continue in place and the ``resume`` to give the Trainer there.

    ``resume="last"``: the latest interrupted run of the experiment ``name`` under ``outputs/`` (one with
    a ``checkpoints/last.ckpt`` and no ``results.json``, which a finished run writes); a run folder: that
    run; a checkpoint inside a run folder's ``checkpoints/``: that run, from that checkpoint.

    Raises
    ------
    torchsci.errors.ConfigError
        When there is nothing to resume, saying why and how to start the run instead.
    """
    path = Path(resume)
    if resume != "last":
        if path.is_dir():
            if not (path / "checkpoints" / "last.ckpt").is_file():
                raise ConfigError(f"resume={resume}: nothing to resume, this folder has no checkpoints/last.ckpt "
                                  "(the run stopped before its first checkpoint, or it is not a run folder).")
            return path, "last"
        if not path.is_file():
            raise ConfigError(f"resume={resume}: no such checkpoint file or run folder.")
        if path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
            return path.parent.parent, str(path)
        raise ConfigError(f"resume={resume}: this checkpoint is not inside a run folder's checkpoints/, so there is "
                          "no run to continue in place; give run_dir=<a new folder> to continue it there.")
    runs = [d for d in OUTPUTS.glob("*/*") if d.is_dir() and _run_name(d) == name]
    interrupted = [d for d in runs if not (d / "results.json").exists()]
    resumable = [d for d in interrupted if (d / "checkpoints" / "last.ckpt").is_file()]
    if resumable:
        return max(resumable, key=lambda d: (d / "checkpoints" / "last.ckpt").stat().st_mtime), "last"
    start = "start a new run with the same command without resume=last"
    if interrupted:
        raise ConfigError(f"resume=last: nothing to resume, the interrupted run(s) of {name!r} under {OUTPUTS}/ "
                          f"({', '.join(str(d) for d in sorted(interrupted)[-3:])}) stopped before their first "
                          f"checkpoint; {start}.")
    raise ConfigError(f"resume=last: nothing to resume, no interrupted run of {name!r} under {OUTPUTS}/ "
                      f"({len(runs)} finished); {start}, or give resume=<run folder>.")


def build_trainer(cfg: Any, run_dir: Path) -> Trainer:
    """A :class:`Trainer` from ``cfg.trainer`` (optimizer, scheduler and callbacks through the allowlist)."""
    try:
        return _build_trainer(cfg, run_dir)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("trainer.") else f"trainer.{message}") from exc


def _build_trainer(cfg: Any, run_dir: Path) -> Trainer:
    settings = dict(_plain(cfg.trainer))
    for key in ("optimizer", "scheduler"):
        if isinstance(settings.get(key), dict):
            built = instantiate(settings[key], f"trainer.{key}", partial=True)
            if key == "optimizer" and "lr" not in built.keywords:
                built = built.__class__(built.func, *built.args, **built.keywords, lr=settings["lr"])
            settings[key] = built
    settings["callbacks"] = [instantiate(cb, f"trainer.callbacks[{i}]") for i, cb in enumerate(settings["callbacks"])]
    return Trainer(**settings, seed=cfg.seed, run_dir=run_dir)


def _build(node: Any, part: str, defaults: dict[str, Any] | None = None) -> Any:
    node = dict(_plain(node))
    if "_target_" in node:
        return instantiate({**(defaults or {}), **node}, part)
    name = node.pop("name")
    if part == "model":
        return registry.create_model(name, **{**(defaults or {}), **node})
    if part == "data":
        return registry.create_dataset(name, **node)
    return registry.create_task(name, **node)


def build(cfg: Any) -> tuple[torch.nn.Module, Any, DataSplits]:
    """Model, task and data splits of a config (validated first, so mistakes surface before data is read)."""
    validate(cfg)
    splits = _build(cfg.data, "data")
    if not isinstance(splits, DataSplits):
        raise ConfigError(f"data '{cfg.data.get('name', cfg.data.get('_target_'))}' returned {type(splits).__name__}, "
                          "not torchsci.data.DataSplits; a dataset used by a config must return the splits.")
    if hasattr(splits.train, "__len__") and len(splits.train) == 0:
        raise ConfigError(f"data: the training split of '{cfg.data.get('name', cfg.data.get('_target_'))}' is empty "
                          "(0 examples), so there is nothing to train on; check the data settings (e.g. data.train_size).")
    model = _build(cfg.model, "model", defaults=splits.model_kwargs)
    task = _build(cfg.task, "task")
    return model, task, splits


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=True) + "\n")


def _split(splits: DataSplits, name: str) -> Any:
    data = getattr(splits, name, None) if name in ("train", "val", "test") else None
    if data is None:
        have = [s for s in ("train", "val", "test") if getattr(splits, s) is not None]
        raise ConfigError(f"predict.split={name!r}: this data has the splits {', '.join(have)}.")
    return data


def _save_predictions(preds: Any, output: Path, inputs: list[Any]) -> Path:
    array = preds.detach().cpu().numpy() if isinstance(preds, torch.Tensor) else np.asarray(preds)
    with atomic_output(output, inputs, what="predictions") as tmp:
        if output.suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, array)
        else:
            table = array.reshape(len(array), -1)
            header = ",".join(f"prediction_{i}" for i in range(table.shape[1])) if table.shape[1] > 1 else "prediction"
            np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt="%.8g")
    return output


def _export(cfg: Any, trainer: Trainer, model: torch.nn.Module, task: Any, splits: DataSplits, run_dir: Path) -> dict:
    """Export the weights in ``ckpt``, traced on a real batch of the data (test split first)."""
    import torchsci.export as exporting

    data = next(s for s in (splits.test, splits.val, splits.train) if s is not None)
    loader = make_loader(data, batch_size=max(2, trainer.eval_batch_size), train=False, seed=cfg.seed,
                         collate_fn=splits.collate_fn)
    batch = next(iter(loader))
    model = (load_weights(model, cfg.ckpt) if cfg.get("ckpt") else model).cpu().eval()
    spec = getattr(model, "torchsci_spec", None)
    batch_of = registry.models[spec["name"]].batch_of if spec else None
    result = exporting.export(model, task.model_inputs(model, batch), format=cfg.export.format,
                              path=cfg.export.output or run_dir / "export", batch_of=batch_of)
    print(result.report, file=sys.stderr)
    return {"path": str(result.path), "max_abs_diff": result.report.max_abs_diff,
            "max_rel_diff": result.report.max_rel_diff, "dynamic_dims": result.report.dynamic_dims}


def write_task_outputs(trainer: Trainer, model: torch.nn.Module, task: Any, splits: DataSplits, run_dir: Path,
                       ckpt_path: Any = None) -> list[str]:
    """The plots and tables a task writes from the test split (``task.write_outputs``) into ``run_dir/evaluation``.

    A plug-in's task opts in by defining ``write_outputs(trainer, model, data, folder, *, collate_fn,
    ckpt_path)`` returning the paths written (physics: ROC, sculpting, regression response); none otherwise.
    """
    write = getattr(task, "write_outputs", None)
    if write is None or splits.test is None:
        return []
    paths = write(trainer, model, splits.test, run_dir / "evaluation", collate_fn=splits.collate_fn, ckpt_path=ckpt_path)
    return [str(p) for p in paths]


def run(cfg: Any, command: str = "train") -> dict[str, Any]:
    """Run ``command`` on a composed config and return its results (also written to ``results.json``).

    ``train`` fits (resuming when ``resume`` is set) and tests the best checkpoint on the test split;
    ``evaluate`` scores the weights in ``ckpt`` (or, with ``model.pretrained``, the model's shipped
    weights) on the validation and test splits; ``predict`` writes
    the predictions of ``ckpt`` on ``predict.split`` to ``predict.output``; ``export`` writes ``ckpt`` as
    ``export.format`` (traced on a real batch, parity-checked) to ``export.output``.
    """
    from omegaconf import OmegaConf

    if command not in COMMANDS:
        raise ConfigError(f"command {command!r}: use one of {', '.join(COMMANDS)}.")
    if command != "train" and not cfg.get("ckpt") and not _plain(cfg.model).get("pretrained"):
        raise ConfigError(f"torchsci {command} needs the weights to use: ckpt=PATH (a .ckpt written by a run), "
                          "or +model.pretrained=true for a model that ships weights.")
    run_dir, unique = _run_dir(cfg)
    trainer = build_trainer(cfg, run_dir)
    seed_everything(cfg.seed)  # model initialisation and data generation follow the config's seed
    model, task, splits = build(cfg)
    if unique:  # two runs started in the same second get two folders
        run_dir = trainer.run_dir = make_run_dir(run_dir.parent, run_dir.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if splits.info:
        _write_json(run_dir / "data_info.json", splits.info)
    results: dict[str, Any] = {"command": command, "name": cfg.name, "run_dir": str(run_dir)}
    if command == "train":
        fit = trainer.fit(model, task, splits.train, splits.val, collate_fn=splits.collate_fn, resume=cfg.resume)
        results.update(best_checkpoint=str(fit.best_checkpoint) if fit.best_checkpoint else None,
                       last_checkpoint=str(fit.last_checkpoint) if fit.last_checkpoint else None,
                       epochs=len(fit.history), final=fit.history[-1] if fit.history else {})
        if splits.test is not None:
            best = fit.best_checkpoint or fit.last_checkpoint
            results["test"] = trainer.test(model, task, splits.test, collate_fn=splits.collate_fn, ckpt_path=best)
            if outputs := write_task_outputs(trainer, model, task, splits, run_dir, best):
                results["outputs"] = outputs
    elif command == "evaluate":
        for split, score in (("val", trainer.validate), ("test", trainer.test)):
            data = getattr(splits, split)
            if data is not None:
                results[split] = score(model, task, data, collate_fn=splits.collate_fn, ckpt_path=cfg.get("ckpt"))
        if outputs := write_task_outputs(trainer, model, task, splits, run_dir, cfg.get("ckpt")):
            results["outputs"] = outputs
    elif command == "export":
        results["export"] = _export(cfg, trainer, model, task, splits, run_dir)
    else:
        output = Path(cfg.predict.output)
        inputs = [cfg.ckpt, run_dir / "config.yaml"] + [v for k, v in _plain(cfg.data).items()
                                                         if isinstance(v, str) and k in ("path", "files", "root")]
        check_output(output, inputs, what="predictions")  # before predicting, not after
        if output.suffix not in (".npy", ".csv"):
            raise ConfigError(f"predict.output={str(output)!r}: use a .csv or .npy file name.")
        preds = trainer.predict(model, task, _split(splits, cfg.predict.split), collate_fn=splits.collate_fn,
                                ckpt_path=cfg.get("ckpt"))
        results["predictions"] = str(_save_predictions(preds, output, inputs))
    _write_json(run_dir / "results.json", results)
    summary = {k: v for k, v in results.items() if k in ("test", "val", "predictions", "best_checkpoint", "export")}
    if summary and trainer.dist.is_main:
        print(json.dumps(_jsonable(summary), indent=2, allow_nan=True), file=sys.stdout)
    return results
