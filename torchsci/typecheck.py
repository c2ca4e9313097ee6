"""Config values against the type hints of the function they are passed to.

A config passes ``model.hidden=64`` or ``model.hidden=[a,b]`` to a factory whose signature says
``hidden: Sequence[int]``; without a check the mistake surfaces as a traceback deep inside the model.
:func:`check_arguments` compares each value with its parameter's annotation (``int``, ``float``,
``bool``, ``str``, ``None``, unions, ``Literal``, sequences and mappings of those) before anything is
built, and raises one :class:`~torchsci.errors.ConfigError` naming the key, the value and the type
expected. Annotations it cannot judge (classes, callables, ``Any``) accept every value: the schema
comes from the signature, so a signature without hints is checked only for names.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from torchsci.errors import ConfigError

_UNKNOWN = object()


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: check names only, as before
        return {}


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence, set, frozenset):
        inner = args[0] if args else Any
        return f"a list of {_describe(inner)}" if inner is not Any else "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _accepts(value: Any, annotation: Any) -> bool:
    if annotation is Any or annotation is _UNKNOWN or isinstance(annotation, typing.TypeVar):
        return True
    if annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence, set, frozenset, collections.abc.Iterable):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_accepts(v, a) for v, a in zip(value, args, strict=True))
        return all(_accepts(v, args[0]) for v in value) if args else True
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if annotation is dict:
        return isinstance(value, Mapping)
    return True  # a class, a callable, a protocol: not something a config value is judged against


def check_arguments(fn: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> None:
    """Raise a :class:`~torchsci.errors.ConfigError` for the first value that does not fit ``fn``'s hints.

    Examples
    --------
    >>> from collections.abc import Sequence
    >>> from torchsci.typecheck import check_arguments
    >>> def mlp(hidden: Sequence[int] = (64, 64), dropout: float = 0.0): ...
    >>> check_arguments(mlp, {"hidden": [128, 128], "dropout": 0}, "model")
    >>> check_arguments(mlp, {"hidden": 64}, "model")
    Traceback (most recent call last):
    ...
    torchsci.errors.ConfigError: model.hidden=64: expected a list of int, e.g. model.hidden=[64,64].
    """
    hints = _hints(fn)
    try:
        defaults = {n: p.default for n, p in inspect.signature(fn).parameters.items()}
    except (TypeError, ValueError):
        defaults = {}
    for key, value in kwargs.items():
        annotation = hints.get(key, _UNKNOWN)
        if _accepts(value, annotation):
            continue
        example = defaults.get(key, inspect.Parameter.empty)
        hint = ""
        if example is not inspect.Parameter.empty and example is not None and _accepts(example, annotation):
            shown = "[" + ",".join(str(v) for v in example) + "]" if isinstance(example, (list, tuple)) else example
            hint = f", e.g. {where}.{key}={shown}"
        raise ConfigError(f"{where}.{key}={value!r}: expected {_describe(annotation)}{hint}.")
