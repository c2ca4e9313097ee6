"""The registry: models, datasets and shipped pretrained weights, by name.

Plain dicts filled by decorators. Plug-ins register into it from their ``register(registry)``
function, found through the ``torchsci.plugins`` entry-point group, so a new field is a new package
and never a change to the core. Names are ``"<field>/<name>"`` (``"neuro/unet3d"``,
``"physics/particlenet"``, ``"core/mlp"``).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib.resources
import importlib.util
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchsci.errors import PretrainedWeightsError, RegistryError

CORE_CONFIGS = "torchsci.configs"  # the core's own config groups (configs/ in the repository)


class _Forwarding:
    """A factory whose ``**kwargs`` are declared to be ``targets``' arguments (see :func:`forwards_to`)."""

    def __init__(self, factory: Callable[..., Any], targets: tuple[Any, ...], exclude: tuple[str, ...]) -> None:
        functools.update_wrapper(self, factory)
        self._targets, self._exclude, self._signature = targets, exclude, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        # Computed on first use, so registering a plug-in imports none of its targets' libraries.
        if self._signature is None:
            own = [p for p in inspect.signature(self.__wrapped__).parameters.values() if p.kind is not p.VAR_KEYWORD]
            names = {p.name for p in own} | set(self._exclude)
            for target in self._targets:
                if isinstance(target, str):
                    module, _, attr = target.partition(":")
                    target = getattr(importlib.import_module(module), attr)
                for p in inspect.signature(target).parameters.values():
                    if p.name not in names and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                        own.append(p.replace(kind=p.KEYWORD_ONLY))
                        names.add(p.name)
            self._signature = inspect.signature(self.__wrapped__).replace(parameters=own)
        return self._signature


def forwards_to(*targets: Callable[..., Any] | str, exclude: tuple[str, ...] = ()) -> Callable:
    """Declare that a factory's ``**kwargs`` are ``targets``' arguments, making them its real signature.

    The registry accepts only factories whose signature names every argument, because config validation
    reads it (``model.hiddn=300`` is one error naming ``hidden``); a thin factory over a class declares
    what its ``**kwargs`` are instead of repeating them. A target may be ``"module:Name"``, imported only
    when the signature is first read; ``exclude`` names arguments the factory sets itself.

    Examples
    --------
    >>> import inspect
    >>> from torchsci.registry import forwards_to
    >>> class Net:
    ...     def __init__(self, width: int = 8, depth: int = 2) -> None: ...
    >>> @forwards_to(Net)
    ... def net(seed: int = 0, **kwargs):
    ...     return Net(**kwargs)
    >>> [(p.name, p.default) for p in inspect.signature(net).parameters.values()]
    [('seed', 0), ('width', 8), ('depth', 2)]
    """

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        return _Forwarding(factory, targets, exclude)

    return decorator


def _typed(factory: Callable[..., Any], kind: str, name: str) -> None:
    if isinstance(factory, _Forwarding):
        return  # declared; its signature is read when a config is checked
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return  # builtins without a signature cannot hide arguments behind **kwargs either
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise RegistryError(f"{kind} '{name}': its factory {factory.__module__}.{factory.__qualname__} takes **kwargs, "
                            "so a config cannot be checked against it; give it real arguments or declare what "
                            "they are with @torchsci.registry.forwards_to(Target).")


@dataclass(frozen=True)
class PretrainedWeights:
    """A weight file shipped inside a package, with its checksum.

    ``package`` and ``resource`` locate the safetensors file through ``importlib.resources``
    (e.g. ``"torchsci_neuro"``, ``"weights/unet3d-tissue.safetensors"``); ``sha256`` guards it.
    ``kwargs`` are the model arguments these weights were trained with.
    """

    package: str
    resource: str
    sha256: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def path(self) -> Path:
        return Path(str(importlib.resources.files(self.package).joinpath(self.resource)))

    def load(self) -> dict[str, torch.Tensor]:
        """The verified state dict."""
        from safetensors.torch import load_file

        path = self.path()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"pretrained weight file {path} is missing from the installed {self.package} package; "
                f"reinstall it (pip install --force-reinstall torchsci)."
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise PretrainedWeightsError(
                f"pretrained weight file {path} is corrupt: sha256 {digest[:16]}... but the registry expects "
                f"{self.sha256[:16]}...; reinstall the package."
            )
        return load_file(str(path))


@dataclass
class ModelEntry:
    """A registered model: its factory, an example-input maker for the conformance tests, and weights."""

    name: str
    factory: Callable[..., nn.Module]
    example_inputs: Callable[[], tuple] | None = None
    pretrained: dict[str, PretrainedWeights] = field(default_factory=dict)
    known_gaps: dict[str, str] = field(default_factory=dict)
    batch_of: Callable[[tuple, list[int]], tuple] | None = None


class Registry:
    """Models and datasets by name. The module-level :data:`registry` is the one the suite uses."""

    def __init__(self) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.datasets: dict[str, Callable[..., Any]] = {}
        self.tasks: dict[str, Callable[..., Any]] = {}
        self.commands: dict[str, Callable[[Any], None]] = {}
        self.configs: list[str] = []  # packages of Hydra config groups, the core's first (see register_configs)
        self.plugins: dict[str, str] = {}  # loaded plug-ins: entry-point name -> the distribution that provides it
        self.unavailable: dict[str, str] = {}  # plug-ins whose field libraries are not installed, with why
        self._plugins_loaded = False

    # -- filling
    def register_model(self, name: str, *, example_inputs: Callable[[], tuple] | None = None,
                       pretrained: dict[str, PretrainedWeights] | None = None,
                       known_gaps: dict[str, str] | None = None,
                       batch_of: Callable[[tuple, list[int]], tuple] | None = None) -> Callable:
        """Decorator registering a model factory under ``name``.

        ``example_inputs`` returns a batch of at least two items (a tuple of positional inputs) for
        :func:`torchsci.testing.check_model`; ``batch_of(inputs, indices)`` picks items from it when
        they are not simply dimension 0 of every tensor (graphs). ``known_gaps`` maps a conformance
        check to the reason this model cannot pass it.
        """

        def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            _typed(factory, "model", name)
            if name in self.models and self.models[name].factory is not factory:
                raise RegistryError(f"model '{name}' is registered twice ({factory.__module__}).")
            self.models[name] = ModelEntry(name, factory, example_inputs, dict(pretrained or {}),
                                           dict(known_gaps or {}), batch_of)
            return factory

        return decorator

    def register_dataset(self, name: str) -> Callable:
        """Decorator registering a dataset factory under ``name``."""

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            _typed(factory, "dataset", name)
            self.datasets[name] = factory
            return factory

        return decorator

    def register_task(self, name: str) -> Callable:
        """Decorator registering a task class or factory under ``name`` (``"chem/property"``)."""

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            _typed(factory, "task", name)
            self.tasks[name] = factory
            return factory

        return decorator

    def register_command(self, field: str, add_parser: Callable[[Any], None]) -> None:
        """Give a plug-in its ``torchsci <field> ...`` subcommands.

        ``add_parser(subparsers)`` receives the ``argparse`` sub-parser collection of ``torchsci <field>``
        and adds commands to it, each with ``set_defaults(func=...)`` (``func(args) -> int``).
        """
        self.commands[field] = add_parser

    def register_configs(self, package: str) -> None:
        """Put the Hydra config groups in ``package`` (``"torchsci_neuro.configs"``) on every run's search path.

        The package holds group folders (``experiment/neuro/segment.yaml``, ``model/...``) beside the
        core's, so ``experiment=neuro/segment`` resolves without the core knowing the field.
        """
        if package not in self.configs:
            self.configs.append(package)

    @staticmethod
    def require(*modules: str, extra: str | None = None) -> None:
        """Raise ``ImportError`` unless every top-level module in ``modules`` is installed (none is imported).

        A plug-in's ``register`` calls this first, so a missing field library makes the plug-in absent
        with a message saying what to install, instead of failing later on first use.

        Examples
        --------
        >>> from torchsci.registry import Registry
        >>> Registry.require("numpy")
        >>> Registry.require("no_such_library_xyz", extra="genomics")
        Traceback (most recent call last):
        ...
        ImportError: needs no_such_library_xyz, not installed (pip install 'torchsci[genomics]')
        """
        def installed(module: str) -> bool:
            try:
                return importlib.util.find_spec(module) is not None
            except ImportError:  # a finder that refuses the name (as the suite's library-hiding test does)
                return False

        missing = [m for m in modules if not installed(m)]
        if missing:
            how = f" (pip install 'torchsci[{extra}]')" if extra else ""
            raise ImportError(f"needs {', '.join(missing)}, not installed{how}")

    def _tables(self) -> tuple[dict, ...]:
        return self.models, self.datasets, self.tasks, self.commands

    def load_plugins(self) -> None:
        """Import every installed plug-in once (entry-point group ``torchsci.plugins``).

        A plug-in whose entry point or ``register`` raises ``ImportError`` (its field libraries are not
        installed) is absent: whatever it registered before failing is removed, and
        :attr:`unavailable` records why, for ``torchsci models`` and ``torchsci env``.
        """
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        import torchsci.models  # noqa: F401 (the core's own models)

        self.register_configs(CORE_CONFIGS)
        for ep in entry_points(group="torchsci.plugins"):
            before = [dict(table) for table in self._tables()], list(self.configs)
            try:
                ep.load()(self)
            except ImportError as exc:
                for table, saved in zip(self._tables(), before[0], strict=True):
                    table.clear()
                    table.update(saved)
                self.configs[:] = before[1]
                self.unavailable[ep.name] = str(exc)
                continue
            self.plugins[ep.name] = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value

    # -- reading
    def model_entry(self, name: str) -> ModelEntry:
        """A registered model's entry: factory, example inputs (for tests and export), shipped weights."""
        self.load_plugins()
        if name not in self.models:
            close = difflib.get_close_matches(name, self.models, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            missing = "".join(f" (plug-in '{k}' is not available: {v})" for k, v in self.unavailable.items()
                              if name.startswith(k + "/"))
            raise RegistryError(f"no model named '{name}'.{hint}{missing} See torchsci.list_models().")
        return self.models[name]

    def list_models(self, pattern: str = "*", pretrained: bool = False) -> list[str]:
        self.load_plugins()
        return sorted(n for n, e in self.models.items()
                      if fnmatch.fnmatch(n, pattern) and (e.pretrained or not pretrained))

    def create_model(self, name: str, pretrained: bool | str = False, *, seed: int | None = None,
                     **kwargs: Any) -> nn.Module:
        entry = self.model_entry(name)
        weights = None
        if pretrained:
            tag = pretrained if isinstance(pretrained, str) else next(iter(entry.pretrained), None)
            if tag is None or tag not in entry.pretrained:
                have = ", ".join(entry.pretrained) or "none"
                raise PretrainedWeightsError(f"model '{name}' has no pretrained weights '{tag}' (shipped: {have}).")
            weights = entry.pretrained[tag]
            kwargs = {**weights.kwargs, **kwargs}
        if seed is None:
            model = entry.factory(**kwargs)
        else:
            from torchsci.seed import capture_rng, restore_rng, seed_everything

            saved = capture_rng()  # the caller's random streams are left as they were
            try:
                seed_everything(seed)
                model = entry.factory(**kwargs)
            finally:
                restore_rng(saved)
        try:
            json.dumps(kwargs)
            model.torchsci_spec = {"name": name, "kwargs": kwargs}
        except TypeError:
            pass  # arguments that are not plain data cannot be recorded for rebuilding from a checkpoint
        if weights is not None:
            model.load_state_dict(weights.load())
        return model

    def _lookup(self, table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
        self.load_plugins()
        if name not in table:
            close = difflib.get_close_matches(name, table, n=3)
            raise RegistryError(f"no {kind} named '{name}'." + (f" Did you mean {', '.join(close)}?" if close else "")
                                + f" Registered: {', '.join(sorted(table)) or 'none'}.")
        return table[name]

    def create_dataset(self, name: str, **kwargs: Any) -> Any:
        """Build a registered dataset (a :class:`torchsci.data.DataSplits` for training factories)."""
        return self._lookup(self.datasets, "dataset", name)(**kwargs)

    def create_task(self, name: str, **kwargs: Any) -> Any:
        """Build a registered task."""
        return self._lookup(self.tasks, "task", name)(**kwargs)


#: The registry the suite uses; each plug-in registers into it from its ``register(registry)``.
registry = Registry()


def __getattr__(name: str) -> Any:
    # torchsci.registry is this module; it was once the Registry object (bound over the module in torchsci's
    # namespace). Its remaining attributes (models, unavailable, register_model, ...) still answer, with a warning.
    if not name.startswith("_") and hasattr(registry, name):
        import warnings

        warnings.warn(f"torchsci.registry.{name}: torchsci.registry is the module; the Registry object is "
                      f"torchsci.registry.registry (use torchsci.registry.registry.{name}).",
                      DeprecationWarning, stacklevel=2)
        return getattr(registry, name)
    raise AttributeError(f"module 'torchsci.registry' has no attribute {name!r}")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names of registered models matching a glob ``pattern`` (only those with shipped weights if asked).

    Examples
    --------
    >>> import torchsci
    >>> "core/mlp" in torchsci.list_models("core/*")
    True
    """
    return registry.list_models(pattern, pretrained)


def create_model(name: str, pretrained: bool | str = False, *, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``pretrained=True`` (or a tag) loads its shipped, checksummed weights.

    ``seed`` draws the initial weights from that seed (python, numpy and torch seeded, then put back
    as they were), so ``create_model(..., seed=0)`` followed by ``Trainer(seed=0).fit(...)`` gives the
    same weights in every run, as ``torchsci train`` does; without it the weights come from the
    current global random state.

    Examples
    --------
    >>> import torchsci
    >>> model = torchsci.create_model("core/mlp", in_features=4, out_features=1)
    >>> tuple(model(torch.zeros(2, 4)).shape)
    (2, 1)
    >>> a, b = (torchsci.create_model("core/mlp", in_features=4, out_features=1, seed=0) for _ in range(2))
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    return registry.create_model(name, pretrained, seed=seed, **kwargs)


def create_dataset(name: str, **kwargs: Any) -> Any:
    """Build a registered dataset (a :class:`torchsci.data.DataSplits` for training factories).

    Examples
    --------
    >>> import torchsci
    >>> splits = torchsci.registry.create_dataset("core/oscillator", train_size=8, val_size=4, test_size=0)
    >>> len(splits.train), len(splits.val)
    (8, 4)
    """
    return registry.create_dataset(name, **kwargs)


def create_task(name: str, **kwargs: Any) -> Any:
    """Build a registered task (``torchsci.registry.create_task("core/regression")``)."""
    return registry.create_task(name, **kwargs)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of model ``name``: its factory, example inputs, shipped weights and known gaps."""
    return registry.model_entry(name)


def load_plugins() -> None:
    """Load every installed plug-in into :data:`registry` (once per process; absent ones are recorded)."""
    registry.load_plugins()


def load_model(checkpoint: str | Path, *, field: str | None = None) -> nn.Module:
    """Rebuild a registry model from a checkpoint written by the Trainer, with its weights.

    ``field`` (``"neuro"``, ``"chem"``, ...) refuses, before anything is built, a checkpoint of a model
    registered by another field: a command of one field given another field's checkpoint says so in
    one line instead of failing somewhere inside the model.

    Examples
    --------
    >>> import tempfile, torch, torchsci
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.randn(8, 5), torch.randn(8, 1))
    >>> trainer = torchsci.Trainer(max_epochs=1, run_dir=tempfile.mkdtemp(), verbose=False, tensorboard=False)
    >>> run = trainer.fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), data)
    >>> type(torchsci.load_model(run.last_checkpoint)).__name__
    'MLP'
    """
    from torchsci.checkpoint import load_state
    from torchsci.errors import CheckpointError, TorchsciError

    state = load_state(checkpoint)
    meta = state.get("meta")
    spec = meta.get("model_spec") if isinstance(meta, dict) else None
    if not spec:
        raise CheckpointError(f"{checkpoint} does not say which registered model wrote it (it was not built with "
                              "torchsci.create_model); build the model yourself and use checkpoint.load_weights.")
    # The header is data from whoever wrote the file: the name must be registered and the arguments plain
    # JSON values; nothing in it is imported or evaluated (a factory may check its own arguments further).
    name, kwargs = (spec.get("name"), spec.get("kwargs")) if isinstance(spec, dict) else (None, None)
    if not isinstance(name, str) or not isinstance(kwargs, dict) or "pretrained" in kwargs:
        raise CheckpointError(f"{checkpoint}: meta.model_spec must be {{'name': <registered model>, 'kwargs': "
                              f"{{...}}}}, got {spec!r:.200}.")
    if field is not None and not name.startswith(f"{field}/"):
        raise CheckpointError(f"{checkpoint}: a checkpoint of '{name}' (a {name.split('/')[0]} "
                              f"model), but this needs a {field} model; pass a checkpoint of one of "
                              f"{', '.join(registry.list_models(f'{field}/*')) or f'the {field} models'}.")
    try:
        registry.model_entry(name)
    except RegistryError as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from exc
    try:
        model = registry.create_model(name, **kwargs)
    except (TorchsciError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint}: its header does not build model {name!r}: {exc}") from exc
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint}: weights do not fit model {name!r}: {exc}") from exc
    return model
