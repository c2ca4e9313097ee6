"""Parity of an exported artifact with eager: the inputs it is checked on and how far its outputs may differ.

The checking layer of :func:`torchsci.export`. From the example inputs it derives fresh inputs whose
shapes differ from the example (one item more in the batch; two items with every other dynamic dimension
doubled), built from the example's own items so they stay valid (masks stay masks, indices stay in
range); it then measures the largest absolute and relative difference between the artifact's outputs and
eager's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils import _pytree as pytree


# ------------------------------------------------------------------------------------------- inputs
def _tensor_leaves(obj: Any) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _shapes(inputs: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in _tensor_leaves(inputs)]


def _pick_first_dim(inputs: tuple, indices: list[int]) -> tuple:
    idx = torch.tensor(indices)
    return pytree.tree_map(lambda t: t.index_select(0, idx) if isinstance(t, torch.Tensor) else t, inputs)


def _double(t: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``t`` tiled twice along each of ``dims``: values stay valid (masks stay masks, indices stay in range)."""
    for d in dims:
        t = torch.cat([t, t], dim=d)
    return t


def _dynamic_dims(program: Any, inputs: tuple) -> list[list[int]]:
    """For each tensor input (flattened), the dimensions ``program`` kept dynamic."""
    user = set(program.graph_signature.user_inputs)
    metas = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    leaves = pytree.tree_leaves(inputs)
    if len(metas) != len(leaves):
        return [[] for _ in _tensor_leaves(inputs)]
    from torch.fx.experimental.symbolic_shapes import is_concrete_int  # lazy: pulls in sympy: ~1 s
    return [[d for d, size in enumerate(meta.shape) if not is_concrete_int(size)]
            for leaf, meta in zip(leaves, metas, strict=True) if isinstance(leaf, torch.Tensor)]


def _variants(inputs: tuple, items: int, dynamic: list[list[int]], batch_of: Callable | None,
              batch_dynamic: bool) -> list[tuple[str, tuple]]:
    """Fresh inputs of other shapes than the example, built from its own items (so they stay valid)."""
    pick = batch_of or _pick_first_dim
    if items < 2:
        return []
    if not batch_dynamic:
        return [("items in reverse order", pick(inputs, list(reversed(range(items)))))]
    found = [(f"batch of {items + 1}", pick(inputs, [*range(items), 0]))]
    pair = pick(inputs, [1, 0])
    skip_first = batch_of is None  # dim 0 is the batch, already varied above
    grow = [[d for d in dims if not (skip_first and d == 0)] for dims in dynamic]
    if any(grow):
        it = iter(grow)
        pair = pytree.tree_map(lambda t: _double(t, next(it)) if isinstance(t, torch.Tensor) else t, pair)
        found.append(("2 items, other dynamic dims doubled", pair))
    else:
        found.append(("2 items in reverse order", pair))
    return found


# ------------------------------------------------------------------------------------------- outputs
def _diffs(got: Any, want: Any) -> tuple[float, float, bool, str]:
    """(max abs diff, max rel diff, structure ok, why not)."""
    g, w = _tensor_leaves(got), _tensor_leaves(want)
    if len(g) != len(w):
        return float("inf"), float("inf"), False, f"{len(g)} outputs instead of {len(w)}"
    worst_abs = worst_rel = 0.0
    for a, b in zip(g, w, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            return float("inf"), float("inf"), False, f"an output of shape {tuple(a.shape)} instead of {tuple(b.shape)}"
        if not b.numel():
            continue
        a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
        if not torch.equal(torch.isnan(a64), torch.isnan(b64)):
            return float("nan"), float("nan"), True, "NaN where eager has a number (or the reverse)"
        diff = float((a64 - b64).nan_to_num(0.0).abs().max())
        scale = float(b64.nan_to_num(0.0).abs().max())
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf")))
    return worst_abs, worst_rel, True, ""


def _close(got: Any, want: Any, atol: float, rtol: float) -> bool:
    return all(torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), atol=atol, rtol=rtol)
               for a, b in zip(_tensor_leaves(got), _tensor_leaves(want), strict=True))
