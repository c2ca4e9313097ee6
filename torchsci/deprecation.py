"""Renamed arguments: an old keyword keeps working, with a :class:`DeprecationWarning` naming the new one.

The fields' verbs share one vocabulary (``model=``, ``device="auto"``, ``batch_size=``, ``progress=``,
``n_jobs=``; ``docs/plugins.md``). Where a verb's argument is renamed onto it, :func:`renamed_arguments`
keeps the old name working for the users who call it, while ``inspect.signature`` and ``help()`` show
only the new one.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_arguments(**renames: str) -> Callable[[F], F]:
    """Accept each old keyword ``old=`` of the decorated function as ``renames[old]=``, with a warning.

    Parameters
    ----------
    **renames
        ``old_name="new_name"`` pairs; each new name must be a parameter of the decorated function.

    Examples
    --------
    >>> import warnings
    >>> from torchsci.deprecation import renamed_arguments
    >>> @renamed_arguments(jobs="n_jobs")
    ... def run(scans, *, n_jobs=1):
    ...     return n_jobs
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     run([], jobs=4), caught[0].category.__name__
    (4, 'DeprecationWarning')
    >>> import inspect; str(inspect.signature(run))
    '(scans, *, n_jobs=1)'
    """

    def decorate(func: F) -> F:
        parameters = inspect.signature(func).parameters
        missing = [new for new in renames.values() if new not in parameters]
        if missing:
            raise TypeError(f"renamed_arguments: {func.__qualname__} has no parameter {', '.join(missing)}.")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{func.__qualname__}() got both {old}= (its old name) and {new}=; "
                                    f"pass only {new}=.")
                warnings.warn(f"{func.__qualname__}({old}=...) is deprecated; use {new}=..., the name every "
                              "torchsci field's verbs share. The old name will be removed in a later release.",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_arguments__ = dict(renames)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
