"""What a config may make Hydra build: the ``hydra`` node vetted against an allowlist before Hydra acts.

Hydra itself builds objects from a few keys of the composed config: ``hydra.callbacks`` (any
``_target_``), ``hydra.launcher`` and ``hydra.sweeper`` (a plug-in class, its parameters instantiated
recursively), ``hydra.job_logging`` / ``hydra.hydra_logging`` (Python's ``logging.config``, which
imports and calls ``class``/``()`` names and opens ``filename``), and ``hydra.job.env_set`` (the
environment of the job and of every process it starts). A shared config file, or a run folder's
``config.yaml`` replayed with ``--config-dir``, could use any of them to write files or run programs,
outside the ``_target_`` allowlist of :mod:`torchsci.config`.

:func:`vet_command_line` composes the config exactly as Hydra will (same search path, ``--config-dir``,
``--config-path``, ``--config-name``, run or multirun mode, and every job of a sweep) and refuses,
before Hydra runs, anything outside this policy (default deny):

- ``hydra.callbacks``: none.
- ``hydra.launcher``: Hydra's basic launcher, the joblib launcher, the submitit local and SLURM
  launchers, each with its documented scalar settings only (no ``setup`` shell lines, no
  ``additional_parameters``).
- ``hydra.sweeper``: Hydra's basic sweeper.
- logging: formatters (``format``, ``datefmt``), ``logging.StreamHandler`` to stdout/stderr,
  ``logging.NullHandler`` and ``logging.FileHandler`` writing a ``.log`` file (in the run folder or the
  working directory; no path separators but ``${hydra.runtime.output_dir}/``);
  no filters, no ``()`` factories, no other classes.
- ``hydra.job.env_set`` / ``env_copy``: thread counts and device visibility only.
- ``hydra.searchpath``: ``file://`` folders and the ``pkg://`` config packages of torchsci and its plug-ins.
- ``--experimental-rerun`` (it unpickles a file): refused.
- every other ``_target_`` of the config: one of :func:`torchsci.config.allowed_targets`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torchsci.errors import ConfigError

#: Launchers a config may select, with the settings each may change.
LAUNCHERS: dict[str, frozenset[str]] = {
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher": frozenset(),
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": frozenset((
        "n_jobs", "backend", "prefer", "require", "verbose", "timeout", "pre_dispatch", "batch_size", "temp_folder",
        "max_nbytes", "mmap_mode")),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": frozenset((
        "submitit_folder", "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
        "name", "stderr_to_stdout")),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": frozenset((
        "submitit_folder", "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
        "name", "stderr_to_stdout", "partition", "qos", "comment", "constraint", "exclude", "gres", "cpus_per_gpu",
        "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "account", "signal_delay_s", "max_num_timeout",
        "array_parallelism")),
}
#: Settings that are allowed keys but only when empty (they hold shell lines or scheduler directives).
_EMPTY_ONLY = frozenset(("setup", "additional_parameters", "srun_args"))
SWEEPERS: dict[str, frozenset[str]] = {
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper": frozenset(("max_batch_size", "params")),
}
_JOBLIB_BACKENDS = (None, "loky", "threading", "multiprocessing")
#: Environment variables a config may set for its job (``hydra.job.env_set``) or copy (``env_copy``).
ENV_NAMES = frozenset(("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                       "NUMEXPR_NUM_THREADS", "TORCHSCI_COMPILE"))
_HANDLERS = {"logging.StreamHandler": {"class", "formatter", "level", "stream"},
             "logging.FileHandler": {"class", "formatter", "level", "filename", "mode", "encoding", "delay"},
             "logging.NullHandler": {"class", "level"}}
_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
_LOG_FILE = re.compile(r"(?:\$\{hydra\.runtime\.output_dir\}/)?(?:\$\{hydra\.job\.name\}|[\w.-])+\.log")
_ALLOWED_SUMMARY = ("Hydra keys a config may set to build things: hydra/launcher=basic|joblib|submitit_local|"
                    "submitit_slurm, the basic sweeper, no hydra.callbacks, logging to the console or a .log file in "
                    "the run folder, no other _target_ (see torchsci.hydra_guard)")


def _refuse(where: str, key: str, why: str) -> ConfigError:
    return ConfigError(f"{where}: {key}: {why}; refused before Hydra runs. {_ALLOWED_SUMMARY}.")


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _no_target_below(node: Any, path: str, where: str) -> None:
    for sub, value in _walk(node, path):
        if isinstance(value, dict) and "_target_" in value:
            raise _refuse(where, f"{sub}._target_", f"{value['_target_']!r} would be built by Hydra")


def _plugin(node: Any, key: str, table: dict[str, frozenset[str]], where: str) -> None:
    if node is None:
        return
    if not isinstance(node, dict) or node.get("_target_") not in table:
        target = node.get("_target_") if isinstance(node, dict) else node
        raise _refuse(where, f"{key}._target_", f"{target!r} is not an allowed {key.split('.')[-1]} (allowed: "
                                                f"{', '.join(table)})")
    allowed = table[node["_target_"]]
    for name, value in node.items():
        if name == "_target_":
            continue
        if name in _EMPTY_ONLY:
            if value not in (None, [], {}):
                raise _refuse(where, f"{key}.{name}", "shell lines and scheduler directives cannot come from a config "
                                                      "(set them in your cluster's own setup)")
            continue
        if name not in allowed:
            raise _refuse(where, f"{key}.{name}", f"not a setting of {node['_target_'].rsplit('.', 1)[-1]} a config "
                                                  f"may change (allowed: {', '.join(sorted(allowed)) or 'none'})")
        _no_target_below(value, f"{key}.{name}", where)
        if name == "backend" and value not in _JOBLIB_BACKENDS:
            raise _refuse(where, f"{key}.backend", f"{value!r} is not one of loky, threading, multiprocessing")
        if name == "params":
            if not isinstance(value, (dict, type(None))) or any(not isinstance(v, (str, int, float, bool))
                                                                 for v in (value or {}).values()):
                raise _refuse(where, f"{key}.params", "sweep parameters must be 'key: a,b,c' strings")
        elif isinstance(value, (dict, list)):
            raise _refuse(where, f"{key}.{name}", "must be a single value")


def _logging(node: Any, key: str, where: str) -> None:  # noqa: C901 - one check per part of logging's schema
    if node is None:
        return
    if not isinstance(node, dict):
        raise _refuse(where, key, f"must be a logging configuration, got {node!r}")
    for name in node:
        if name not in ("version", "formatters", "handlers", "root", "loggers", "disable_existing_loggers",
                        "incremental"):
            raise _refuse(where, f"{key}.{name}", "not an allowed part of a logging configuration (no filters)")
    for name, formatter in (node.get("formatters") or {}).items():
        if not isinstance(formatter, dict) or set(formatter) - {"format", "datefmt", "style", "class"} \
                or formatter.get("class", "logging.Formatter") != "logging.Formatter" \
                or formatter.get("style", "%") not in ("%", "$"):
            raise _refuse(where, f"{key}.formatters.{name}", "a formatter may set format, datefmt and style "
                                                             "('%' or '$') of logging.Formatter only")
    for name, handler in (node.get("handlers") or {}).items():
        at = f"{key}.handlers.{name}"
        cls = handler.get("class") if isinstance(handler, dict) else None
        if cls not in _HANDLERS:
            raise _refuse(where, f"{at}.class", f"{cls!r} is not an allowed handler (allowed: {', '.join(_HANDLERS)})")
        extra = set(handler) - _HANDLERS[cls]
        if extra:
            raise _refuse(where, f"{at}.{sorted(extra)[0]}", f"not an allowed setting of {cls}")
        if cls == "logging.StreamHandler" and handler.get("stream", "ext://sys.stderr") not in _STREAMS:
            raise _refuse(where, f"{at}.stream", "a stream handler writes to ext://sys.stdout or ext://sys.stderr")
        if cls == "logging.FileHandler":
            filename = handler.get("filename")
            if not isinstance(filename, str) or not _LOG_FILE.fullmatch(filename) or ".." in filename:
                raise _refuse(where, f"{at}.filename", f"{filename!r}: a log file must be "
                                                       "${hydra.runtime.output_dir}/<name>.log (or <name>.log)")
            if handler.get("mode", "a") not in ("a", "w"):
                raise _refuse(where, f"{at}.mode", "must be 'a' or 'w'")
    for name, logger in [("root", node.get("root")), *((f"loggers.{k}", v) for k, v in (node.get("loggers") or {}).items())]:
        if logger is not None and (not isinstance(logger, dict) or set(logger) - {"level", "handlers", "propagate"}):
            raise _refuse(where, f"{key}.{name}", "a logger may set level, handlers and propagate only")


def _environment(job: dict[str, Any], where: str) -> None:
    for name in list(job.get("env_set") or {}) + list(job.get("env_copy") or []):
        if name not in ENV_NAMES:
            raise _refuse(where, f"hydra.job.env_set.{name}", f"a config may set only {', '.join(sorted(ENV_NAMES))} "
                                                              "(others change what the job and its subprocesses load)")
    name = job.get("name")
    if name is not None and not re.fullmatch(r"[\w.-]+|\$\{[\w.:-]+\}", str(name)):
        raise _refuse(where, "hydra.job.name", f"{name!r} must be a plain name (it names the log file)")


def _searchpath(paths: Any, where: str) -> None:
    from torchsci.registry import registry

    # The config packages of torchsci and of the plug-ins that registered theirs (registry.register_configs).
    own = {"pkg://torchsci.configs", *(f"pkg://{package}" for package in registry.configs)}
    for i, path in enumerate(paths or []):
        if not isinstance(path, str) or not (path.startswith("file://") or path in own
                                             or re.fullmatch(r"pkg://torchsci\w*(\.\w+)*", path)):
            raise _refuse(where, f"hydra.searchpath[{i}]", f"{path!r}: only file:// folders and the config "
                                                           "packages of torchsci and its plug-ins")


def vet_config(cfg: Any, where: str = "config") -> None:
    """Refuse a composed config (with its ``hydra`` node) that would make Hydra build anything outside the policy.

    Every ``_target_`` outside ``hydra`` must be in :func:`torchsci.config.allowed_targets`. Values are
    checked before interpolation, so a ``_target_`` cannot hide behind ``${...}``.

    Examples
    --------
    >>> from omegaconf import OmegaConf
    >>> from torchsci.hydra_guard import vet_config
    >>> try:
    ...     vet_config(OmegaConf.create({"hydra": {"callbacks": {"x": {"_target_": "builtins.open"}}}}))
    ... except Exception as exc:
    ...     print(str(exc).split(";")[0])
    config: hydra.callbacks.x: Hydra would build 'builtins.open'
    """
    from omegaconf import OmegaConf

    from torchsci.config import allowed_targets

    plain = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else dict(cfg)
    hydra = plain.pop("hydra", None) or {}
    callbacks = hydra.get("callbacks")
    if callbacks not in (None, {}, []):
        if isinstance(callbacks, dict):
            name, value = next(iter(callbacks.items()))
            target = value.get("_target_") if isinstance(value, dict) else value
            raise _refuse(where, f"hydra.callbacks.{name}", f"Hydra would build {target!r}")
        raise _refuse(where, "hydra.callbacks", f"Hydra would build {callbacks!r}")
    for key, value in hydra.items():
        if key not in ("callbacks", "launcher", "sweeper"):
            _no_target_below(value, f"hydra.{key}", where)
    _plugin(hydra.get("launcher"), "hydra.launcher", LAUNCHERS, where)
    _plugin(hydra.get("sweeper"), "hydra.sweeper", SWEEPERS, where)
    for key in ("job_logging", "hydra_logging"):
        _logging(hydra.get(key), f"hydra.{key}", where)
    _environment(hydra.get("job") or {}, where)
    _searchpath(hydra.get("searchpath"), where)
    table = None
    for path, value in _walk(plain, ""):
        if isinstance(value, dict) and "_target_" in value:
            table = table if table is not None else allowed_targets()
            if value["_target_"] not in table:
                raise ConfigError(f"{where}: {path}._target_={value['_target_']!r} is refused: a config may only build "
                                  "torch optimizers, LR schedulers and losses, torchsci callbacks and tasks, and "
                                  "registered models, datasets and tasks.")


def vet_command_line(argv: Sequence[str], task_function: Callable[..., Any], config_path: str,
                     config_name: str) -> None:
    """Compose the config of a Hydra command line exactly as Hydra will, and :func:`vet_config` it (every sweep job too).

    ``task_function`` is the function decorated with ``hydra.main`` (its module anchors relative
    ``--config-path`` values, as in Hydra). Nothing runs, nothing is written and logging is not
    configured; a config outside the policy is a :class:`~torchsci.errors.ConfigError`.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
        get_args_parser,
    )
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from torchsci.config import explain

    try:
        args = get_args_parser().parse_args(list(argv))
    except SystemExit as exc:
        raise ConfigError(f"command line {' '.join(argv)!r} is not a valid Hydra command line.") from exc
    if args.experimental_rerun is not None:
        raise ConfigError(f"--experimental-rerun {args.experimental_rerun}: refused, it unpickles the file (which "
                          "can run code); replay a run with --config-dir <run>/.hydra --config-name config instead.")
    if args.shell_completion:
        return  # completion only lists keys: nothing is built, logged or run
    where = "config"
    if args.config_dir is not None:
        where = f"{args.config_dir}/{args.config_name or config_name}.yaml"
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task_function)
    search_path = create_automatic_config_search_path(calling_file, calling_module, args.config_path or config_path)
    if args.config_dir is not None:
        config_dir = os.path.abspath(args.config_dir)
        if not os.path.isdir(config_dir):
            raise ConfigError(f"--config-dir {args.config_dir}: no such folder.")
        search_path.prepend(provider="command-line", path=f"file://{config_dir}",
                            anchor=SearchPathQuery(provider="schema"))
    name = args.config_name or config_name
    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(task_name=detect_task_name(calling_file, calling_module),
                                         config_search_path=search_path)
        overrides = list(args.overrides)
        multirun = args.multirun or hydra.get_mode(config_name=name, overrides=overrides) == RunMode.MULTIRUN
        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        cfg = hydra.compose_config(config_name=name, overrides=overrides, run_mode=mode)
        vet_config(cfg, where)
        if multirun:
            sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False) or {}
            params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
            task = params + list(OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False))
            parsed = OverridesParser.create(config_loader=hydra.config_loader).parse_overrides(task)
            for job in BasicSweeper.split_arguments(parsed, None)[0]:
                vet_config(hydra.config_loader.load_sweep_config(cfg, list(job)), f"{where} (sweep job {' '.join(job)})")
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{where}: {explain(exc)}") from exc
    finally:
        GlobalHydra.instance().clear()
