"""Recurrent cells written in plain PyTorch, for researchers who change the cell and still want speed.

:class:`LSTMCell` computes exactly what :class:`torch.nn.LSTMCell` computes (same parameter names, so
weights load both ways) and adds variational dropout (Gal & Ghahramani, 2016): one dropout mask per
sequence on the inputs and one on the hidden state, reused at every time step, instead of a fresh mask
per step. :class:`LayerNormLSTMCell` normalises the gate pre-activations and the cell state (Ba, Kiros &
Hinton, 2016). :class:`Recurrent` runs a cell over a sequence with a plain Python loop over time steps.

Nothing here is compiled by default; mark a cell instance or the whole :class:`Recurrent` layer with
``@torchsci.compile`` (``benchmarks/rnn_cells.py`` measures both against :class:`torch.nn.LSTM`).
Compiling the cell gives one small graph run once per step (compiles in seconds); compiling the layer
unrolls the time loop into one graph per sequence length (minutes for 100 steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]
Masks = tuple[torch.Tensor | None, torch.Tensor | None]


def dropout_mask(p: float, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """An inverted-dropout mask (entries 0 or ``1 / (1 - p)``) of ``shape``, or ``None`` when ``p == 0``.

    Examples
    --------
    >>> import torch
    >>> from torchsci.nn import dropout_mask
    >>> mask = dropout_mask(0.5, (2, 1000), torch.zeros(()))
    >>> sorted(mask.unique().tolist())
    [0.0, 2.0]
    """
    if p == 0:
        return None
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)


class LSTMCell(nn.Module):
    """One LSTM step, ``(x_t, (h, c)) -> (h', c')``, with variational dropout on inputs and hidden state.

    Gates follow :class:`torch.nn.LSTMCell` (input, forget, cell, output; parameters ``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh``), so with no dropout the two agree to rounding given the
    same weights. Dropout masks are not drawn here: :class:`Recurrent` draws them once per sequence with
    :meth:`sample_masks` and passes the same masks to every step.

    Parameters
    ----------
    input_size, hidden_size
        Widths of ``x_t`` and of ``h``/``c``.
    bias
        Add the biases ``bias_ih`` and ``bias_hh``.
    dropout
        Probability of dropping an input feature (one mask per sequence).
    recurrent_dropout
        Probability of dropping a unit of the previous hidden state (one mask per sequence).

    Examples
    --------
    >>> import torch
    >>> from torchsci.nn import LSTMCell
    >>> cell = LSTMCell(3, 5)
    >>> h, c = cell(torch.randn(2, 3))
    >>> tuple(h.shape), tuple(c.shape)
    ((2, 5), (2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        super().__init__()
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0 <= p < 1:
                raise ValueError(f"{type(self).__name__}: {name}={p} must lie in [0, 1).")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``±1/sqrt(hidden_size)``, as :class:`torch.nn.LSTMCell` initialises."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}, dropout={self.dropout}, "
                f"recurrent_dropout={self.recurrent_dropout}")

    def sample_masks(self, batch: int, like: torch.Tensor) -> Masks:
        """Draw this sequence's input and hidden-state masks; ``(None, None)`` in eval mode or without dropout."""
        if not self.training:
            return None, None
        return (dropout_mask(self.dropout, (batch, self.input_size), like),
                dropout_mask(self.recurrent_dropout, (batch, self.hidden_size), like))

    def zero_state(self, x: torch.Tensor) -> State:
        """Zero ``(h, c)`` for the batch of ``x``."""
        h = x.new_zeros(x.shape[0], self.hidden_size)
        return h, h

    def input_gates(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The inputs' share of the gate pre-activations, ``(..., 4 * hidden_size)``, for any leading dims.

        :class:`Recurrent` calls it once on the whole sequence: one large matrix product instead of
        one per step, as :class:`torch.nn.LSTM` does.
        """
        if mask is not None:
            x = x * mask
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recurrent_gates(self, h: torch.Tensor) -> torch.Tensor:
        """The previous hidden state's share of the gate pre-activations."""
        return F.linear(h, self.weight_hh, self.bias_hh)

    def hidden(self, c: torch.Tensor) -> torch.Tensor:
        """What the output gate lets through: ``tanh(c)``."""
        return torch.tanh(c)

    def forward(self, x: torch.Tensor, state: State | None = None, masks: Masks = (None, None),
                projected: bool = False) -> State:
        """One step. With ``projected=True``, ``x`` is already :meth:`input_gates` of the input (masked)."""
        h, c = self.zero_state(x) if state is None else state
        mask_x, mask_h = masks
        gates_x = x if projected else self.input_gates(x, mask_x)
        if mask_h is not None:
            h = h * mask_h
        i, f, g, o = (gates_x + self.recurrent_gates(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * self.hidden(c), c


class LayerNormLSTMCell(LSTMCell):
    """:class:`LSTMCell` with layer normalisation of both gate pre-activations and of the cell state.

    ``gates = LN(W_ih x) + LN(W_hh h)`` and ``h' = o * tanh(LN(c'))`` (Ba, Kiros & Hinton, 2016); the
    layer norms' shifts take the place of the biases.

    Examples
    --------
    >>> import torch
    >>> from torchsci.nn import LayerNormLSTMCell
    >>> h, c = LayerNormLSTMCell(3, 4, recurrent_dropout=0.25)(torch.randn(2, 3))
    >>> tuple(h.shape)
    (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0, recurrent_dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, bias=False, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.norm_ih = nn.LayerNorm(4 * hidden_size)
        self.norm_hh = nn.LayerNorm(4 * hidden_size)
        self.norm_c = nn.LayerNorm(hidden_size)

    def reset_parameters(self) -> None:
        """Weights as :class:`LSTMCell`; layer norms to the identity."""
        bound = 1 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        for norm in (getattr(self, n, None) for n in ("norm_ih", "norm_hh", "norm_c")):
            if norm is not None:
                norm.reset_parameters()

    def input_gates(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm_ih(super().input_gates(x, mask))

    def recurrent_gates(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm_hh(super().recurrent_gates(h))

    def hidden(self, c: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm_c(c))


class Recurrent(nn.Module):
    """Run a cell over a sequence, one Python loop iteration per time step.

    Dropout masks are drawn once per sequence (in training mode) and reused at every step, which is
    what makes the dropout variational. The inputs' share of the gates is computed for the whole
    sequence at once (:meth:`LSTMCell.input_gates`); each step then calls the cell with
    ``projected=True``, so a cell marked ``@torchsci.compile`` compiles just the recurrent part.

    Parameters
    ----------
    cell
        An :class:`LSTMCell` or :class:`LayerNormLSTMCell` (anything with the same ``forward``,
        ``sample_masks`` and ``zero_state``).
    batch_first
        Sequences are ``(batch, time, features)``; otherwise ``(time, batch, features)``.

    Returns
    -------
    tuple
        ``outputs`` (every step's ``h``, laid out like the input) and the final ``(h, c)``.

    Examples
    --------
    >>> import torch
    >>> from torchsci.nn import LSTMCell, Recurrent
    >>> lstm = Recurrent(LSTMCell(3, 8, dropout=0.1, recurrent_dropout=0.25))
    >>> outputs, (h, c) = lstm(torch.randn(2, 10, 3))
    >>> tuple(outputs.shape), torch.equal(outputs[:, -1], h)
    ((2, 10, 8), True)
    """

    def __init__(self, cell: LSTMCell, batch_first: bool = True) -> None:
        super().__init__()
        self.cell = cell
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        time_dim = 1 if self.batch_first else 0
        first = x.select(time_dim, 0)
        if state is None:
            state = self.cell.zero_state(first)
        mask_x, mask_h = self.cell.sample_masks(first.shape[0], first)
        if mask_x is not None and self.batch_first:
            mask_x = mask_x.unsqueeze(1)  # the same mask at every time step
        outputs = []
        for gates_x in self.cell.input_gates(x, mask_x).unbind(time_dim):
            state = self.cell(gates_x, state, (None, mask_h), projected=True)
            outputs.append(state[0])
        return torch.stack(outputs, time_dim), state
