"""The conformance battery every registered model passes: :func:`check_model`.

Like scikit-learn's ``check_estimator``: one shared set of checks, run by every model's tests (and by
the registry enumeration in ``tests/core/test_registry_models.py``). A model that cannot pass a check
records the reason in ``known_gaps``; nothing is skipped silently.

Checks: ``eval_deterministic``, ``batch_consistency`` (batch 1, 2 and the full odd-sized example agree
item by item), ``non_contiguous`` inputs, ``float64``, ``backward`` (finite gradients reach every
parameter), ``state_dict`` round-trip through safetensors, ``export:<format>`` for each format asked
(:func:`torchsci.export`: the artifact is written, read back and compared with eager on inputs of other
shapes than the example) and, when asked, ``gradcheck``. Each is a function of a :class:`Subject`
(:data:`CHECKS`), runnable alone with :func:`run_check`.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from torchsci.errors import ConformanceError
from torchsci.export import FORMATS


def map_tensors(fn: Callable[[torch.Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor inside tuples, lists, dicts and dataclasses."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(fn, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(fn, v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_tensors(fn, getattr(obj, f.name))
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def _leaves(obj: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    map_tensors(found.append, obj)
    return found


def _first_dim_batch(inputs: tuple, indices: list[int]) -> tuple:
    idx = torch.tensor(indices)
    return map_tensors(lambda t: t.index_select(0, idx), inputs)


def _non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values with a stride of 2 in the last dimension."""
    if t.dim() == 0:
        return t
    return torch.stack([t, torch.zeros_like(t)], dim=-1)[..., 0]


def _max_diff(a: Any, b: Any) -> float:
    la, lb = _leaves(a), _leaves(b)
    if len(la) != len(lb):
        return float("inf")
    worst = 0.0
    for x, y in zip(la, lb, strict=True):
        if x.shape != y.shape:
            return float("inf")
        if x.numel():
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    return worst


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and torch.allclose(x.double(), y.double(), atol=atol, rtol=rtol) for x, y in zip(la, lb, strict=True)
    )


@dataclasses.dataclass
class ConformanceReport:
    """Which checks passed, and which were not run because of a recorded known gap (with its reason)."""

    passed: list[str]
    known_gaps: dict[str, str]


def _batch_size(obj: Any) -> int:
    return int(_leaves(obj)[0].shape[0])


@dataclasses.dataclass
class Subject:
    """What every check looks at: the model under test, a float32 eval copy, the inputs and its outputs on them.

    Build one with :meth:`of`; :func:`check_model` builds one and runs every check on it.
    """

    model: nn.Module
    ref: nn.Module
    inputs: tuple
    expected: Any
    batch_of: Callable[[tuple, list[int]], tuple] | None = None
    atol: float = 1e-5
    rtol: float = 1e-4

    @classmethod
    def of(cls, model: nn.Module, example_inputs: tuple, *, batch_of: Callable[[tuple, list[int]], tuple] | None = None,
           atol: float = 1e-5, rtol: float = 1e-4) -> Subject:
        ref = copy.deepcopy(model).float().eval()
        inputs = map_tensors(lambda t: t.float() if t.is_floating_point() else t, example_inputs)
        with torch.no_grad():
            expected = ref(*inputs)
        return cls(model, ref, inputs, expected, batch_of, atol, rtol)

    def pick(self, indices: list[int]) -> tuple:
        return (self.batch_of or _first_dim_batch)(self.inputs, indices)


def check_eval_deterministic(s: Subject) -> str | None:
    """Two eval forwards on the same input agree exactly."""
    with torch.no_grad():
        again = s.ref(*s.inputs)
    d = _max_diff(s.expected, again)
    return None if d == 0 else f"two eval forwards on the same input differ by {d:.3g}"


def check_batch_consistency(s: Subject) -> str | None:
    """Batch 1 (first and last item), batch 2 and the full example agree item by item."""
    size = _batch_size((s.expected,))  # outputs hold one item per row, whatever the inputs look like
    if size < 2:
        return "example_inputs must hold at least 2 items (batch 1 is checked separately)"
    for indices in ([0], [size - 1], [0, 1]):
        with torch.no_grad():
            got = s.ref(*s.pick(indices))
        idx = torch.tensor(indices)
        want = map_tensors(lambda t, idx=idx: t.index_select(0, idx), s.expected)
        if not _close(got, want, s.atol, s.rtol):
            return f"items {indices} alone differ from the same items in the full batch by {_max_diff(got, want):.3g}"
    return None


def check_non_contiguous(s: Subject) -> str | None:
    """Inputs with a stride of 2 give the same outputs."""
    nc = map_tensors(_non_contiguous, s.inputs)
    with torch.no_grad():
        got = s.ref(*nc)
    return None if _close(got, s.expected, s.atol, s.rtol) else \
        f"non-contiguous inputs change the output by {_max_diff(got, s.expected):.3g}"


def check_float64(s: Subject) -> str | None:
    """A float64 model on float64 inputs gives float64 outputs close to float32's."""
    m64 = copy.deepcopy(s.ref).double()
    x64 = map_tensors(lambda t: t.double() if t.is_floating_point() else t, s.inputs)
    with torch.no_grad():
        got = m64(*x64)
    bad = [t.dtype for t in _leaves(got) if t.is_floating_point() and t.dtype != torch.float64]
    if bad:
        return f"float64 model and inputs gave outputs of dtype {bad[0]}"
    return None if _close(got, s.expected, 1e-4, 1e-3) else \
        f"float64 outputs differ from float32 by {_max_diff(got, s.expected):.3g}"


def check_backward(s: Subject) -> str | None:
    """In training mode, finite gradients reach every trainable parameter."""
    trainable = copy.deepcopy(s.model).float().train()
    out = trainable(*s.inputs)
    total = sum(t.float().sum() for t in _leaves(out) if t.is_floating_point())
    total.backward()
    missing = [k for k, p in trainable.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        return f"no gradient reaches {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
    nonfinite = [k for k, p in trainable.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    return f"non-finite gradients in {', '.join(nonfinite[:5])}" if nonfinite else None


def check_state_dict(s: Subject) -> str | None:
    """Weights saved and loaded through safetensors into a perturbed copy give the same outputs."""
    from safetensors.torch import load, save

    blob = save({k: v.contiguous() for k, v in s.ref.state_dict().items()})
    other = copy.deepcopy(s.ref)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    other.load_state_dict(load(blob))
    with torch.no_grad():
        got = other(*s.inputs)
    return None if _max_diff(got, s.expected) == 0 else "weights saved and loaded through safetensors change the output"


def check_export(s: Subject, fmt: str = "pt2") -> str | None:
    """:func:`torchsci.export` in ``fmt`` writes, reads back and matches eager (it raises otherwise)."""
    from torchsci.export import export

    if fmt not in FORMATS:
        raise ValueError(f"exports={fmt!r}: choose from {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="torchsci-check-") as tmp:
        export(s.ref, s.inputs, format=fmt, path=tmp, batch_of=s.batch_of, atol=s.atol, rtol=s.rtol)
    return None


def check_gradcheck(s: Subject) -> str | None:
    """``torch.autograd.gradcheck`` in float64: analytic and numerical gradients agree (for small layers)."""
    m64 = copy.deepcopy(s.ref).double()
    x64 = map_tensors(lambda t: t.double().requires_grad_(True) if t.is_floating_point() else t, s.inputs)
    leaves = [t for t in _leaves(x64) if t.requires_grad]

    def fn(*args: torch.Tensor) -> Any:
        it = iter(args)
        rebuilt = map_tensors(lambda t: next(it) if t.requires_grad else t, x64)
        return tuple(t for t in _leaves(m64(*rebuilt)) if t.is_floating_point())

    ok = torch.autograd.gradcheck(fn, tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
    return None if ok else "analytic and numerical gradients disagree"


#: The battery's checks by name, in the order :func:`check_model` runs them (then ``export:<format>`` for each
#: format asked, with :func:`check_export`, and ``gradcheck`` when asked). Each returns ``None`` or the problem.
CHECKS: dict[str, Callable[[Subject], str | None]] = {
    "eval_deterministic": check_eval_deterministic,
    "batch_consistency": check_batch_consistency,
    "non_contiguous": check_non_contiguous,
    "float64": check_float64,
    "backward": check_backward,
    "state_dict": check_state_dict,
}


def _check_named(name: str) -> Callable[[Subject], str | None]:
    if name.startswith("export:"):
        fmt = name.split(":", 1)[1]
        if fmt not in FORMATS:
            raise ValueError(f"exports={fmt!r}: choose from {', '.join(FORMATS)}")
        return lambda s: check_export(s, fmt)
    if name == "gradcheck":
        return check_gradcheck
    if name not in CHECKS:
        raise ValueError(f"no conformance check named {name!r}; choose from "
                         f"{', '.join([*CHECKS, 'gradcheck', *(f'export:{f}' for f in FORMATS)])}")
    return CHECKS[name]


def _run(subject: Subject, names: Sequence[str], known_gaps: dict[str, str]) -> tuple[list[str], list[str]]:
    passed: list[str] = []
    failures: list[str] = []
    for name in names:
        if name in known_gaps:
            continue
        check = _check_named(name)
        try:
            problem = check(subject)
        except Exception as exc:  # a check that crashes has failed; say how
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{name}: {problem}")
        else:
            passed.append(name)
    return passed, failures


def _raise(model: nn.Module, failures: list[str]) -> None:
    if failures:
        raise ConformanceError(f"{type(model).__name__} failed {len(failures)} conformance check(s):\n  - "
                               + "\n  - ".join(failures))


def run_check(name: str, model: nn.Module, example_inputs: tuple, *,
              batch_of: Callable[[tuple, list[int]], tuple] | None = None, atol: float = 1e-5,
              rtol: float = 1e-4) -> None:
    """Run one check of the battery alone; raise :class:`~torchsci.errors.ConformanceError` if it fails.

    Parameters
    ----------
    name
        A key of :data:`CHECKS`, ``"export:<format>"`` or ``"gradcheck"``.
    model, example_inputs, batch_of, atol, rtol
        As for :func:`check_model`.

    Examples
    --------
    >>> import torch
    >>> from torchsci.testing import run_check
    >>> run_check("non_contiguous", torch.nn.Linear(4, 2), (torch.randn(3, 4),))
    """
    subject = Subject.of(model, example_inputs, batch_of=batch_of, atol=atol, rtol=rtol)
    _raise(model, _run(subject, [name], {})[1])


def check_model(
    model: nn.Module,
    example_inputs: tuple,
    *,
    batch_of: Callable[[tuple, list[int]], tuple] | None = None,
    known_gaps: dict[str, str] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    exports: Sequence[str] = ("pt2",),
    gradcheck: bool = False,
) -> ConformanceReport:
    """Run the conformance battery on ``model``; raise :class:`~torchsci.errors.ConformanceError` on failure.

    The battery is :data:`CHECKS`, then ``export:<format>`` for each of ``exports``, then ``gradcheck`` if
    asked; each can also run alone (:func:`run_check`).

    Parameters
    ----------
    model
        The module under test (not modified: checks run on copies).
    example_inputs
        Positional inputs for one batch of at least 2 items (3 or another odd number is best).
    batch_of
        ``batch_of(inputs, indices)`` returns the inputs of just those items; default: index
        dimension 0 of every tensor. Graph models, whose batches are not stacked, supply their own.
    known_gaps
        ``{check name: reason}`` for checks this model cannot pass; they are reported, not run.
    exports
        Export formats whose parity is checked: ``"pt2"``, ``"onnx"``, ``"aoti"``, ``"torchscript"``
        (see :func:`torchsci.export`; a gap is recorded as ``"export:onnx"``).
    gradcheck
        Also run ``torch.autograd.gradcheck`` in float64 (for small layers).

    Examples
    --------
    >>> import torch
    >>> from torchsci.testing import check_model
    >>> report = check_model(torch.nn.Linear(4, 2), (torch.randn(3, 4),))
    >>> "non_contiguous" in report.passed
    True
    """
    known_gaps = dict(known_gaps or {})
    for fmt in exports:
        if fmt not in FORMATS:
            raise ValueError(f"exports={fmt!r}: choose from {', '.join(FORMATS)}")
    subject = Subject.of(model, example_inputs, batch_of=batch_of, atol=atol, rtol=rtol)
    names = [*CHECKS, *(f"export:{fmt}" for fmt in exports), *(["gradcheck"] if gradcheck else [])]
    passed, failures = _run(subject, names, known_gaps)
    _raise(model, failures)
    return ConformanceReport(passed=passed, known_gaps=known_gaps)
