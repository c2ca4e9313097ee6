"""The conformance battery every registered model passes: :func:`check_model`.

Like scikit-learn's ``check_estimator``: one shared set of checks, run by every model's tests (and by
the registry enumeration in ``tests/core/test_registry_models.py``). A model that cannot pass a check
records the reason in ``known_gaps``; nothing is skipped silently.

Checks: ``eval_deterministic``, ``batch_consistency`` (batch 1, 2 and the full odd-sized example agree
item by item), ``non_contiguous`` inputs, ``float64``, ``backward`` (finite gradients reach every
parameter), ``state_dict`` round-trip through safetensors, ``export:<format>`` for each format asked
(:func:`torchsci.export`: the artifact is written, read back and compared with eager on inputs of other
shapes than the example) and, when asked, ``gradcheck``.
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
    pick = batch_of or _first_dim_batch
    failures: list[str] = []
    passed: list[str] = []

    def run(name: str, fn: Callable[[], str | None]) -> None:
        if name in known_gaps:
            return
        try:
            problem = fn()
        except Exception as exc:  # a check that crashes has failed; say how
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{name}: {problem}")
        else:
            passed.append(name)

    ref = copy.deepcopy(model).float().eval()
    inputs = map_tensors(lambda t: t.float() if t.is_floating_point() else t, example_inputs)
    with torch.no_grad():
        expected = ref(*inputs)

    def deterministic() -> str | None:
        with torch.no_grad():
            again = ref(*inputs)
        d = _max_diff(expected, again)
        return None if d == 0 else f"two eval forwards on the same input differ by {d:.3g}"

    def batch_consistency() -> str | None:
        size = _batch_size((expected,))  # outputs hold one item per row, whatever the inputs look like
        if size < 2:
            return "example_inputs must hold at least 2 items (batch 1 is checked separately)"
        for indices in ([0], [size - 1], [0, 1]):
            with torch.no_grad():
                got = ref(*pick(inputs, indices))
            idx = torch.tensor(indices)
            want = map_tensors(lambda t, idx=idx: t.index_select(0, idx), expected)
            if not _close(got, want, atol, rtol):
                return f"items {indices} alone differ from the same items in the full batch by {_max_diff(got, want):.3g}"
        return None

    def non_contiguous() -> str | None:
        nc = map_tensors(_non_contiguous, inputs)
        with torch.no_grad():
            got = ref(*nc)
        return None if _close(got, expected, atol, rtol) else \
            f"non-contiguous inputs change the output by {_max_diff(got, expected):.3g}"

    def float64() -> str | None:
        m64 = copy.deepcopy(ref).double()
        x64 = map_tensors(lambda t: t.double() if t.is_floating_point() else t, inputs)
        with torch.no_grad():
            got = m64(*x64)
        bad = [t.dtype for t in _leaves(got) if t.is_floating_point() and t.dtype != torch.float64]
        if bad:
            return f"float64 model and inputs gave outputs of dtype {bad[0]}"
        return None if _close(got, expected, 1e-4, 1e-3) else \
            f"float64 outputs differ from float32 by {_max_diff(got, expected):.3g}"

    def backward() -> str | None:
        trainable = copy.deepcopy(model).float().train()
        out = trainable(*inputs)
        total = sum(t.float().sum() for t in _leaves(out) if t.is_floating_point())
        total.backward()
        missing = [k for k, p in trainable.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            return f"no gradient reaches {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
        nonfinite = [k for k, p in trainable.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        return f"non-finite gradients in {', '.join(nonfinite[:5])}" if nonfinite else None

    def state_dict() -> str | None:
        from safetensors.torch import load, save  # noqa: PLC0415

        blob = save({k: v.contiguous() for k, v in ref.state_dict().items()})
        other = copy.deepcopy(ref)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(torch.randn_like(p))
        other.load_state_dict(load(blob))
        with torch.no_grad():
            got = other(*inputs)
        return None if _max_diff(got, expected) == 0 else "weights saved and loaded through safetensors change the output"

    def exported(fmt: str) -> Callable[[], str | None]:
        def check() -> str | None:
            from torchsci.export import export  # noqa: PLC0415

            with tempfile.TemporaryDirectory(prefix="torchsci-check-") as tmp:
                export(ref, inputs, format=fmt, path=tmp, batch_of=batch_of, atol=atol, rtol=rtol)
            return None

        return check

    def grad_check() -> str | None:
        m64 = copy.deepcopy(ref).double()
        x64 = map_tensors(lambda t: t.double().requires_grad_(True) if t.is_floating_point() else t, inputs)
        leaves = [t for t in _leaves(x64) if t.requires_grad]

        def fn(*args: torch.Tensor) -> Any:
            it = iter(args)
            rebuilt = map_tensors(lambda t: next(it) if t.requires_grad else t, x64)
            return tuple(t for t in _leaves(m64(*rebuilt)) if t.is_floating_point())

        ok = torch.autograd.gradcheck(fn, tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
        return None if ok else "analytic and numerical gradients disagree"

    run("eval_deterministic", deterministic)
    run("batch_consistency", batch_consistency)
    run("non_contiguous", non_contiguous)
    run("float64", float64)
    run("backward", backward)
    run("state_dict", state_dict)
    for fmt in exports:
        if fmt not in FORMATS:
            raise ValueError(f"exports={fmt!r}: choose from {', '.join(FORMATS)}")
        run(f"export:{fmt}", exported(fmt))
    if gradcheck:
        run("gradcheck", grad_check)
    if failures:
        raise ConformanceError(f"{type(model).__name__} failed {len(failures)} conformance check(s):\n  - "
                               + "\n  - ".join(failures))
    return ConformanceReport(passed=passed, known_gaps=known_gaps)
