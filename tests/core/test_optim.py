"""build_optimizer: named optimizers on the CPU use PyTorch's multi-tensor update, which must not change the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchsci.optim import OPTIMIZERS, build_optimizer


def _train(opt_factory, steps: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 13), nn.GELU(), nn.Linear(13, 3))
    opt = opt_factory(model)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(5, 7, generator=gen)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_cpu_named_optimizer_is_foreach_and_bitwise_equal_to_the_loop(name: str) -> None:
    model = nn.Linear(3, 2)
    assert build_optimizer(model, name).param_groups[0]["foreach"] is True
    ours = _train(lambda m: build_optimizer(m, name, lr=1e-2, weight_decay=1e-3))
    loop = _train(lambda m: OPTIMIZERS[name]([p for p in m.parameters()], lr=1e-2, weight_decay=1e-3, foreach=False))
    assert all(torch.equal(a, b) for a, b in zip(ours, loop, strict=True))
    assert not torch.equal(ours[0], _train(lambda m: build_optimizer(m, name, lr=1e-2), steps=0)[0])


def test_radam_keeps_the_loop_its_foreach_update_differs() -> None:
    assert build_optimizer(nn.Linear(3, 2), "radam").param_groups[0]["foreach"] is None
    foreach = _train(lambda m: torch.optim.RAdam(list(m.parameters()), lr=1e-2, foreach=True))
    assert not all(torch.equal(a, b) for a, b in zip(foreach, _train(lambda m: build_optimizer(m, "radam", lr=1e-2)),
                                                     strict=True))


def test_frozen_parameters_are_left_out_and_a_callable_is_used_as_given() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].weight.requires_grad_(False)
    opt = build_optimizer(model, "adamw")
    assert sum(len(g["params"]) for g in opt.param_groups) == 3
    custom = build_optimizer(model, lambda ps: torch.optim.SGD(ps, lr=0.5))
    assert custom.param_groups[0]["lr"] == 0.5 and custom.param_groups[0]["foreach"] is None
