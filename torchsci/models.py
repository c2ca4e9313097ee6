"""The core's own model: a multilayer perceptron, the baseline every field compares against."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchsci.registry import registry
from torchsci.task import ClassificationTask, RegressionTask

registry.register_task("core/regression")(RegressionTask)
registry.register_task("core/classification")(ClassificationTask)
import torchsci.datasets  # noqa: E402,F401 (registers the core's generated datasets)


class MLP(nn.Module):
    """A multilayer perceptron with GELU, optional layer norm and dropout.

    Parameters
    ----------
    in_features, out_features
        Input and output widths; inputs are ``(..., in_features)``.
    hidden
        Widths of the hidden layers.
    dropout
        Dropout probability after each hidden layer.
    norm
        Apply layer normalisation before each activation.

    Examples
    --------
    >>> import torch
    >>> from torchsci.models import MLP
    >>> MLP(3, 2, hidden=(8,))(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 64),
                 dropout: float = 0.0, norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.GELU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@registry.register_model("core/mlp", example_inputs=lambda: (torch.randn(3, 5),))
def mlp(in_features: int = 5, out_features: int = 1, hidden: Sequence[int] = (64, 64), dropout: float = 0.0,
        norm: bool = False) -> MLP:
    """``core/mlp``: :class:`MLP` for tabular features."""
    return MLP(in_features, out_features, tuple(hidden), dropout, norm)
