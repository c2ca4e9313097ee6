"""Config-driven runs: the schema, composition with Hydra, validation, and safe instantiation.

A run's config has five parts: ``model`` / ``data`` / ``task`` name registry entries (plus their
arguments), ``trainer`` holds :class:`~torchsci.Trainer` settings, and the top level holds ``name``,
``seed`` and the paths of a run (``resume``, ``ckpt``, ``run_dir``). The YAML config groups live in
``configs/`` at the repository root and ship inside the wheel as ``torchsci.configs``.

Everything is checked before any data is read: unknown keys, bad types, unknown registry names and
unknown arguments are errors that name the key and the close matches. ``_target_`` may only name an
object in :func:`allowed_targets` (torch optimizers, LR schedulers and losses, torchsci callbacks and
tasks, registry entries); nothing else is ever imported from a config, so a config file cannot run
code (``logging.os.system`` and friends are refused).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import inspect
import os
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from torchsci.errors import ConfigError, RegistryError
from torchsci.typecheck import check_arguments

CONFIG_MODULE = "torchsci.configs"


#: Trainer arguments that a run sets at its top level instead (``seed``, ``run_dir`` of :class:`RunConfig`).
RUN_LEVEL = ("seed", "run_dir")


def _config_type(hint: Any) -> Any:
    """The closest type OmegaConf can check for a Trainer argument's annotation (``Any`` when none is)."""
    plain = (int, float, bool, str)
    if hint in plain:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1 and args[0] in plain:
        return typing.Optional[args[0]]  # noqa: UP045 (OmegaConf reads typing.Optional on every Python)
    if typing.get_origin(hint) in (list, tuple, Sequence, collections.abc.Sequence):
        return list[Any]
    return Any


def _trainer_config() -> type:
    """:class:`TrainerConfig`, derived from :class:`~torchsci.Trainer`'s signature: its one source."""
    from torchsci.trainer import Trainer

    hints = typing.get_type_hints(Trainer.__init__)
    fields = []
    for name, param in inspect.signature(Trainer.__init__).parameters.items():
        if name == "self" or name in RUN_LEVEL:
            continue
        kind = _config_type(hints[name])
        if isinstance(param.default, (list, tuple, dict)):
            default = dataclasses.field(default_factory=functools.partial(type(param.default) if isinstance(
                param.default, dict) else list, param.default))
        else:
            default = dataclasses.field(default=param.default)
        fields.append((name, kind, default))
    cls = dataclasses.make_dataclass("TrainerConfig", fields)
    cls.__module__ = __name__
    return cls


TrainerConfig = _trainer_config()
TrainerConfig.__doc__ = """The :class:`~torchsci.Trainer` settings of a config: every Trainer argument but ``seed`` and
``run_dir`` (set at the run's top level), with the Trainer's own defaults, derived from its signature.

``optimizer`` and ``scheduler`` take a name (``"adamw"``, ``"cosine"``) or a mapping with an allowed
``_target_`` (``{_target_: torch.optim.SGD, momentum: 0.9}``); ``callbacks`` a list of such mappings.

Examples
--------
>>> from torchsci.config import TrainerConfig
>>> TrainerConfig().max_epochs, TrainerConfig(compile=True).compile
(10, True)
"""


@dataclasses.dataclass
class PredictConfig:
    """What ``torchsci predict`` reads and writes: a split of the data and a ``.csv`` or ``.npy`` file."""

    split: str = "test"
    output: str = "predictions.csv"


@dataclasses.dataclass
class ExportConfig:
    """What ``torchsci export`` writes."""

    format: str = "onnx"
    output: str | None = None


@dataclasses.dataclass
class RunConfig:
    """A whole run. ``model``/``data``/``task`` hold ``name`` (a registry entry) or ``_target_``, plus arguments."""

    name: str = "run"
    seed: int = 0
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: dict[str, Any] = dataclasses.field(default_factory=dict)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    run_dir: str | None = None
    resume: str | None = None
    ckpt: str | None = None
    predict: PredictConfig = dataclasses.field(default_factory=PredictConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)


def register_schema() -> None:
    """Make the schema known to Hydra as ``torchsci_schema`` (the base of ``configs/torchsci.yaml``)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="torchsci_schema", node=RunConfig)


# ---------------------------------------------------------------------------------------------- allowlist
def _subclasses(base: type) -> list[type]:
    seen, todo = [], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def allowed_targets() -> dict[str, Callable[..., Any]]:
    """Every object a config's ``_target_`` may name, by its public and its defining dotted name.

    Torch optimizers, LR schedulers and loss modules; torchsci callbacks and tasks (the core's and the
    plug-ins'); registered model, dataset and task factories.
    """
    from torchsci.callbacks import Callback
    from torchsci.registry import registry
    from torchsci.task import Task

    registry.load_plugins()
    objects: list[Any] = []
    objects += [v for v in vars(torch.optim).values() if isinstance(v, type) and issubclass(v, torch.optim.Optimizer)]
    sched = torch.optim.lr_scheduler
    objects += [v for v in vars(sched).values()
                if isinstance(v, type) and (issubclass(v, sched.LRScheduler) or v is sched.ReduceLROnPlateau)
                and v.__name__ not in ("LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler")]
    objects += [v for v in vars(torch.nn).values() if isinstance(v, type) and issubclass(v, torch.nn.modules.loss._Loss)]
    objects += _subclasses(Callback) + _subclasses(Task)
    objects += [e.factory for e in registry.models.values()]
    objects += list(registry.datasets.values()) + list(registry.tasks.values())
    table: dict[str, Callable[..., Any]] = {}
    for obj in objects:
        table[f"{obj.__module__}.{obj.__qualname__}"] = obj
    # Public spellings people write: torch.optim.SGD, torch.nn.MSELoss, torchsci.EarlyStopping.
    for prefix, namespace in (("torch.optim", torch.optim), ("torch.optim.lr_scheduler", sched), ("torch.nn", torch.nn)):
        for key, value in vars(namespace).items():
            if value in objects:
                table[f"{prefix}.{key}"] = value
    import torchsci

    for key, value in vars(torchsci).items():
        if value in objects:
            table[f"torchsci.{key}"] = value
    return table


def _plain(cfg: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def _check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], where: str) -> None:
    """Unknown argument names are config errors, found before anything is built."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    check_arguments(fn, {k: v for k, v in kwargs.items() if k in params}, where)  # values against the type hints
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}.{key}: unknown setting.{hint} Accepted: {', '.join(accepted)}.")


def instantiate(node: Any, where: str, partial: bool = False) -> Any:
    """Build what ``node`` describes, allowing only :func:`allowed_targets` as ``_target_``.

    Nested mappings with a ``_target_`` are built first; ``partial=True`` (or ``_partial_: true``)
    returns a ``functools.partial`` instead of calling the target.
    """
    node = _plain(node)
    if isinstance(node, list):
        return [instantiate(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "_target_" not in node:
        return {k: instantiate(v, f"{where}.{k}") for k, v in node.items()}
    target = node["_target_"]
    table = allowed_targets()
    if target not in table:
        close = difflib.get_close_matches(str(target), table, n=3)
        raise ConfigError(
            f"{where}._target_={target!r} is refused: a config may only build torch optimizers, LR schedulers and "
            "losses, torchsci callbacks and tasks, and registered models, datasets and tasks."
            + (f" Did you mean {', '.join(close)}?" if close else "")
        )
    fn = table[target]
    kwargs = {k: instantiate(v, f"{where}.{k}") for k, v in node.items() if k not in ("_target_", "_partial_")}
    _check_kwargs(fn, kwargs, where)
    if partial or node.get("_partial_", False):
        return functools.partial(fn, **kwargs)
    return fn(**kwargs)


# ---------------------------------------------------------------------------------------------- composing
def search_path(config_dir: str | os.PathLike | None = None) -> list[str]:
    """Where Hydra looks for config groups beyond the core's: ``config_dir`` (a user's own) and each plug-in's.

    Plug-ins add theirs with ``registry.register_configs(package)`` (docs/plugins.md).

    Examples
    --------
    >>> from torchsci.config import search_path
    >>> "pkg://torchsci_chem.configs" in search_path()
    True
    """
    from torchsci.registry import registry

    registry.load_plugins()
    own = [f"file://{Path(config_dir).resolve()}"] if config_dir else []
    return own + [f"pkg://{package}" for package in registry.configs if package != CONFIG_MODULE]


def with_search_path(overrides: Sequence[str], config_dir: str | os.PathLike | None = None) -> list[str]:
    """``overrides`` plus the ``hydra.searchpath`` of :func:`search_path` (merged into one the caller gave)."""
    paths = search_path(config_dir)
    out, merged = [], False
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            given = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
            item, merged = f"{key}=[{','.join([*given, *paths])}]", True
        out.append(item)
    if not merged and paths:
        out.append(f"hydra.searchpath=[{','.join(paths)}]")
    return out


def compose(overrides: Sequence[str] = (), config_name: str = "torchsci",
            config_dir: str | os.PathLike | None = None) -> Any:
    """The config the ``torchsci`` command would run with these overrides, composed in Python.

    ``config_dir`` adds a folder of the user's own groups and experiments, as ``--config-dir`` does.

    Examples
    --------
    >>> import torchsci
    >>> cfg = torchsci.compose(["experiment=core/oscillator", "trainer.max_epochs=2"])
    >>> cfg.model.name, cfg.trainer.max_epochs
    ('core/mlp', 2)
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return hydra_compose(config_name=config_name,
                                 overrides=with_search_path(normalise_overrides(overrides), config_dir))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(explain(exc, config_dir)) from exc


def config_options(group: str, config_dir: str | os.PathLike | None = None) -> list[str]:
    """The options of a config group over the core's, the plug-ins' and ``config_dir``'s groups.

    Examples
    --------
    >>> from torchsci.config import config_options
    >>> [name for name in config_options("experiment") if name.startswith(("core/", "chem/esol"))]
    ['chem/esol', 'chem/esol_descriptors', 'chem/esol_rdkit2d', 'core/oscillator']
    """
    import importlib.resources

    from torchsci.registry import registry

    registry.load_plugins()
    roots = [importlib.resources.files(package).joinpath(group) for package in dict.fromkeys([CONFIG_MODULE,
                                                                                              *registry.configs])]
    if config_dir:
        roots.append(Path(config_dir) / group)
    found: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                found.add(prefix + child.name[: -len(".yaml")])

    for root in roots:
        if root.is_dir():
            walk(root, "")
    return sorted(found)


def _clean(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines()
             if not ln.strip().startswith(("full_key:", "reference_type=", "object_type=", "To append", "provider=",
                                           "Config search path"))]
    return " ".join(ln for ln in lines if ln)


def explain(exc: BaseException, config_dir: str | os.PathLike | None = None) -> str:
    """A readable message for a Hydra/OmegaConf error, with close matches for unknown keys and options."""
    import re

    message = _clean(str(exc)) or type(exc).__name__
    if exc.__cause__ is not None:
        message += f" ({_clean(str(exc.__cause__))})"
    missing = re.search(r"Could not find '([^']+)'", message)
    if missing:
        group, _, option = missing.group(1).partition("/")
        options = config_options(group, config_dir)
        close = difflib.get_close_matches(option, options, n=3)
        message = f"{group}={option} does not exist." + (f" Did you mean {', '.join(close)}?" if close else "") \
            + f" Available: {', '.join(options) or 'none'}."
    key = getattr(exc, "full_key", None) or getattr(exc.__cause__, "full_key", None)
    if key:
        schema = [f.name for f in dataclasses.fields(RunConfig)] + [f"trainer.{f.name}" for f in dataclasses.fields(TrainerConfig)]
        leaf = str(key).rsplit(".", 1)[-1]
        close = [leaf] if leaf in schema and leaf != str(key) else difflib.get_close_matches(str(key), schema, n=3)
        if close and str(key) not in schema:
            message += f" Did you mean {', '.join(close)}?"
    return message


FREE_FORM = ("model", "data", "task")


def normalise_overrides(overrides: Sequence[str]) -> list[str]:
    """``model.x=1`` becomes ``++model.x=1``: arguments of models, data and tasks are free-form in the
    schema and checked against the factory's real signature by :func:`validate`, with close matches."""
    out = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.split(".", 1)[0] in FREE_FORM and ("." in key or value.startswith("{")):
            item = "++" + item
        out.append(item)
    return out


def merged_dict_overrides(overrides: Sequence[str], cfg: Any) -> list[str]:
    """Notes for ``key={...}`` overrides that Hydra MERGED into a mapping the config already had.

    Hydra's ``data.features={a: x}`` adds ``a`` to the experiment's ``data.features`` and keeps its other
    keys; a user who meant "these features only" would train on more than they listed without a word.
    Each returned line names the key, the keys kept and how to replace the mapping instead.

    Parameters
    ----------
    overrides
        The command line's overrides, as typed (``+``/``++`` prefixes allowed).
    cfg
        The config composed from them.

    Returns
    -------
    list[str]
        One note per merged override; empty when nothing was merged.

    Examples
    --------
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"data": {"features": {"pt": "x", "eta": "y"}}})
    >>> merged_dict_overrides(["data.features={pt: x}"], cfg)[0].split(";")[0]
    'data.features={pt: x} was merged into the existing data.features (kept: eta)'
    >>> merged_dict_overrides(["data.features={pt: x, eta: y}"], cfg)
    []
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import DictConfig, OmegaConf

    notes = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("~") or not value.lstrip().startswith("{"):
            continue
        key = key.lstrip("+")
        try:
            given = OverridesParser.create().parse_override(f"{key}={value}").value()
        except Exception:  # a malformed value is Hydra's to report
            continue
        node = OmegaConf.select(cfg, key, default=None)
        if not isinstance(given, dict) or not isinstance(node, DictConfig):
            continue
        kept = [str(k) for k in node.keys() if k not in given]
        if kept:
            notes.append(f"{key}={value} was merged into the existing {key} (kept: {', '.join(kept)}); "
                         f"to use only the keys you gave, write '~{key}' '+{key}={value}'")
    return notes


def validate(cfg: Any) -> None:
    """Check names and arguments of ``model``, ``data``, ``task`` and the trainer, without building data."""
    from torchsci.registry import registry

    plain = _plain(cfg)
    for part, table in (("model", None), ("data", registry.datasets), ("task", registry.tasks)):
        node = dict(plain.get(part) or {})
        if not node:
            raise ConfigError(f"the config has no '{part}'; choose an experiment (experiment=...) or set {part}.name.")
        if "_target_" in node:
            target = node["_target_"]
            if target not in allowed_targets():
                instantiate(node, part)  # raises the refusal with its explanation
            _check_kwargs(allowed_targets()[target], {k: v for k, v in node.items() if not k.startswith("_")}, part)
            continue
        name = node.pop("name", None)
        if name is None:
            raise ConfigError(f"{part} needs a 'name' (a registered {part}) or a '_target_'.")
        try:
            if part == "model":
                entry = registry.model_entry(name)
                fn = entry.factory
                if "pretrained" in node:  # create_model's own argument: start from the shipped weights
                    tag = node.pop("pretrained")
                    if tag and not entry.pretrained:
                        raise ConfigError(f"model.pretrained: '{name}' ships no weights; models that do: "
                                          f"{', '.join(registry.list_models(pretrained=True)) or 'none'}.")
            else:
                fn = registry._lookup(table, "dataset" if part == "data" else "task", name)
        except RegistryError as exc:
            raise ConfigError(f"{part}.name: {exc}") from exc
        _check_kwargs(fn, node, part)
    trainer = dict(plain["trainer"])
    for key in ("optimizer", "scheduler"):
        if isinstance(trainer.get(key), dict):
            instantiate(trainer[key], f"trainer.{key}", partial=True)
    for i, cb in enumerate(trainer.get("callbacks") or []):
        instantiate(cb, f"trainer.callbacks[{i}]")
