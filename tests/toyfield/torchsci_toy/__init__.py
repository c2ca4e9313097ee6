"""A toy fourth field, plugged into torchsci only through the ``torchsci.plugins`` entry point.

It uses nothing but the contract of docs/plugins.md: a typed model factory, a config group
(``experiment=toy/line``) and a command (``torchsci toy hello``). ``tests/core/test_plugin_contract.py``
installs it by writing a ``.dist-info`` with its entry point into a folder on ``sys.path``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Line(nn.Module):
    """A straight line through the inputs: ``y = x @ slope + intercept``."""

    def __init__(self, in_features: int = 1, out_features: int = 1) -> None:
        super().__init__()
        self.line = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.line(x)


def _hello(args: Any) -> int:
    print(f"hello from the toy field, {args.name}")
    return 0


def _add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("name")
    p.set_defaults(func=_hello)


def register(registry: Any) -> None:
    registry.require("torch")
    registry.register_model("toy/line", example_inputs=lambda: (torch.randn(3, 1),))(Line)
    registry.register_configs("torchsci_toy.configs")
    registry.register_command("toy", _add_commands)
