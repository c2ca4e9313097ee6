"""The core's own models: a multilayer perceptron and an LSTM sequence regressor, the baselines every field compares against."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchsci.nn import LayerNormLSTMCell, LSTMCell, Recurrent
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


class SequenceRegressor(nn.Module):
    """Sequences ``(batch, time, features)`` -> one prediction per sequence, read from the last hidden state.

    A :class:`torchsci.nn.Recurrent` LSTM (plain or layer-norm cell, with variational dropout) and a
    linear head: the core's baseline for time series.

    Examples
    --------
    >>> import torch
    >>> from torchsci.models import SequenceRegressor
    >>> SequenceRegressor(3, 2, hidden=8, cell="layernorm")(torch.zeros(5, 7, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, cell: str = "lstm",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0) -> None:
        super().__init__()
        cells = {"lstm": LSTMCell, "layernorm": LayerNormLSTMCell}
        if cell not in cells:
            raise ValueError(f"SequenceRegressor: cell={cell!r}; choose one of {', '.join(cells)}.")
        self.lstm = Recurrent(cells[cell](in_features, hidden, dropout=dropout, recurrent_dropout=recurrent_dropout))
        self.head = nn.Linear(hidden, out_features)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(sequences)
        return self.head(h)


@registry.register_model("core/lstm", example_inputs=lambda: (torch.randn(3, 3, 4),))
def lstm(in_features: int = 4, out_features: int = 1, hidden: int = 32, cell: str = "lstm", dropout: float = 0.0,
         recurrent_dropout: float = 0.0) -> SequenceRegressor:
    """``core/lstm``: :class:`SequenceRegressor` over ``(batch, time, features)`` sequences."""
    return SequenceRegressor(in_features, out_features, hidden, cell, dropout, recurrent_dropout)
