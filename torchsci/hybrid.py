"""The hybrid frontend: eager Python everywhere, ``@torchsci.compile`` on the pieces worth compiling.

A researcher keeps the model eager while experimenting, marks a stable piece (a residual block, a
recurrent cell, a loss) with ``@torchsci.compile``, and flips one switch to turn every mark off when
debugging: the environment variable ``TORCHSCI_COMPILE=0``, :func:`set_compile` or the context manager
``torchsci.compile.disabled()``. Marks cost nothing until the first call: compilation is lazy, and
decided again at every call, so the switch also works on objects that were marked long before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

from torchsci.errors import ConfigError

ENV_VAR = "TORCHSCI_COMPILE"
_override: bool | None = None  # set_compile()/disabled(); None: the environment decides

T = TypeVar("T")


def compile_enabled() -> bool:
    """Whether ``@torchsci.compile`` marks compile right now (``set_compile`` wins over ``TORCHSCI_COMPILE``).

    Examples
    --------
    >>> import torchsci
    >>> with torchsci.compile.disabled():
    ...     torchsci.compile_enabled()
    False
    """
    if _override is not None:
        return _override
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def set_compile(enabled: bool | None) -> None:
    """Turn every ``@torchsci.compile`` mark on or off; ``None`` hands the choice back to ``TORCHSCI_COMPILE``."""
    global _override
    _override = enabled


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the block with every ``@torchsci.compile`` mark off (plain eager), e.g. to debug with pdb."""
    global _override
    before = _override
    _override = False
    try:
        yield
    finally:
        _override = before


def _lazy(fn: Callable[..., Any], options: dict[str, Any]) -> Callable[..., Any]:
    """``fn`` that runs through ``torch.compile(fn)`` while compilation is on, and plain otherwise."""
    compiled: list[Callable[..., Any]] = []  # built at the first compiled call

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        # Inside a graph that is already being compiled (a whole model under Trainer(compile=True)),
        # the outer compilation traces through this piece.
        if not compile_enabled() or torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        if not compiled:
            compiled.append(torch.compile(fn, **options))
        return compiled[0](*args, **kwargs)

    run.__torchsci_compiled__ = True  # type: ignore[attr-defined]
    return run


def compile(  # noqa: A001 (torchsci.compile mirrors torch.compile)
    target: T | None = None,
    /,
    *,
    backend: str | Callable[..., Any] = "inductor",
    mode: str | None = None,
    fullgraph: bool = False,
    dynamic: bool | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Mark a module class, a module instance or a function to run through ``torch.compile``.

    Use it bare (``@torchsci.compile``) or with ``torch.compile``'s settings
    (``@torchsci.compile(backend="aot_eager", dynamic=True)``). A class keeps its name, ``state_dict``
    keys and pickling: only its ``forward`` is wrapped, and all instances share one compiled graph per
    input signature. An instance is marked in place and returned. A function comes back wrapped.
    Compilation happens at the first call with compilation on; see :func:`compile_enabled`.

    Examples
    --------
    >>> import torch, torchsci
    >>> @torchsci.compile(backend="eager")
    ... class Block(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.relu(x) + x
    >>> with torchsci.compile.disabled():  # eager, e.g. for a debugger
    ...     Block()(torch.ones(2)).tolist()
    [2.0, 2.0]
    """
    settings: dict[str, Any] = {"backend": backend, "fullgraph": fullgraph, "dynamic": dynamic}
    if mode is not None:
        settings["mode"] = mode
    if options is not None:
        settings["options"] = options
    if target is None:
        return functools.partial(compile, backend=backend, mode=mode, fullgraph=fullgraph, dynamic=dynamic,
                                 options=options)
    if isinstance(target, type) and issubclass(target, nn.Module):
        if not getattr(target.forward, "__torchsci_compiled__", False):
            target.forward = _lazy(target.forward, settings)
        return target
    if isinstance(target, nn.Module):
        target.forward = types.MethodType(_lazy(type(target).forward, settings), target)
        return target
    if callable(target):
        return _lazy(target, settings)
    raise ConfigError(f"torchsci.compile: cannot compile a {type(target).__name__}; mark an nn.Module class, "
                      "an nn.Module instance or a function.")


compile.disabled = disabled  # type: ignore[attr-defined]
compile.enabled = compile_enabled  # type: ignore[attr-defined]
