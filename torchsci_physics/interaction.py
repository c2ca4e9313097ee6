"""A tagger for small sets of objects whose messages are built from pairwise Lorentz invariants.

:class:`PairInteractionNetwork` (``physics/pairnet``) is an interaction network (Battaglia et al.
2016; Moreno et al. 2020 for jets) on the complete graph of an event's objects. Each pair ``(i, j)``
of real objects gets an edge from the embedded pair invariants ``e_ij`` (ln delta R, ln kT, ln z,
ln m^2 of :mod:`torchsci_physics.pairs`, normalised so the units do not matter); each round computes
messages ``m_ij = MLP(x_i, x_j, e_ij)``, sums them per object, updates the objects
``x_i += MLP(x_i, sum_j m_ij)`` and carries the messages on as the next round's edges. The objects
are then summed and the head classifies (with the per-event features, when given).

Unlike the Particle Transformer, whose pair features only bias attention weights, the pair
invariants here are the messages themselves, so a class defined by one pair's mass among several
jets is learnt directly (see :mod:`torchsci_physics.toys`). The cost grows as ``P^2``: meant for
events of a few to a few tens of objects (jets, leptons, photons), not for hundreds of constituents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchsci_physics.models import _real, _Tagger
from torchsci_physics.pairs import PairEmbedding, pair_mask


def _mlp(widths: Sequence[int], last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(1, len(widths)):
        layers.append(nn.Linear(widths[i - 1], widths[i]))
        if last_activation or i < len(widths) - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class _Round(nn.Module):
    """One round: messages from (x_i, x_j, e_ij), summed over real j, and a residual object update.

    The first message layer is linear, so ``W [x_i; x_j; e_ij] = A x_i + B x_j + C e_ij`` is computed
    per object and per pair and broadcast, instead of materialising the ``(B, P, P, 2D + E)`` concatenation.
    """

    def __init__(self, dim: int, edge: int, message: Sequence[int]) -> None:
        super().__init__()
        self.own, self.other = nn.Linear(dim, message[0]), nn.Linear(dim, message[0], bias=False)
        self.edge = nn.Linear(edge, message[0], bias=False)
        self.message = _mlp(message)
        self.update = _mlp((dim + message[-1], dim, dim), last_activation=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.own(x).unsqueeze(2) + self.other(x).unsqueeze(1) + self.edge(e)
        m = self.message(F.gelu(m))
        m = torch.where(valid.unsqueeze(-1), m, torch.zeros((), dtype=m.dtype, device=m.device))
        x = x + self.update(torch.cat([self.norm(x), m.sum(2)], dim=-1))
        return x, m


class PairInteractionNetwork(_Tagger):
    """Interaction network on all pairs of objects, with pairwise Lorentz invariants as messages.

    Inputs as for :class:`~torchsci_physics.models.ParticleTransformer`: ``particles (B, P, C)``,
    ``mask (B, P)``, ``vectors (B, P, 4)`` (px, py, pz, E, any unit) and, with ``num_features > 0``,
    ``features (B, G)``; several collections (jets, leptons, MET) as dicts, joined into one set of
    objects (see :mod:`torchsci_physics.models`). Padded objects never change the output.

    Parameters
    ----------
    dim
        Width of the object embedding.
    pair_widths
        The pointwise MLP from the four normalised pair invariants to the edge features.
    message
        Widths of the message MLP (its input is the objects' and the edge's linear embeddings).
    rounds
        Message-passing rounds; from the second on the messages of the last round are the edges.
    head, dropout
        The classifier on the summed objects (and the per-event features).

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.interaction import PairInteractionNetwork
    >>> net = PairInteractionNetwork(num_particle_features=3, dim=16, pair_widths=(16,), message=(16,))
    >>> x, v = torch.randn(4, 5, 3), torch.rand(4, 5, 4) + torch.tensor([0, 0, 0, 2.0])
    >>> net(x, torch.ones(4, 5, dtype=torch.bool), v).shape
    torch.Size([4, 2])
    """

    input_names = ("particles", "mask", "vectors", "features")

    def __init__(self, num_particle_features: int | Mapping[str, int] = 7, num_features: int = 0,
                 num_classes: int = 2, dim: int = 64, pair_widths: Sequence[int] = (64, 64),
                 message: Sequence[int] = (64, 64), rounds: int = 2, head: Sequence[int] = (64, 64),
                 dropout: float = 0.0, particle_mean=None, particle_std=None, feature_mean=None, feature_std=None,
                 input_spec: dict[str, Any] | None = None) -> None:
        super().__init__(num_particle_features, num_features, num_classes, dim, head, dropout, particle_mean,
                         particle_std, feature_mean, feature_std, input_spec, embed_width=dim)
        if rounds < 1:
            raise ValueError(f"rounds={rounds}: an interaction network needs at least one round")
        self.embed = _mlp((self.particle_width, dim, dim), last_activation=False)
        self.pair_embed = PairEmbedding(tuple(pair_widths))
        edges = [pair_widths[-1]] + [message[-1]] * (rounds - 1)
        self.rounds = nn.ModuleList(_Round(dim, e, tuple(message)) for e in edges)
        self.norm = nn.LayerNorm(dim)

    def forward(self, particles: torch.Tensor | Mapping[str, torch.Tensor], mask: torch.Tensor | Mapping[str, torch.Tensor],
                vectors: torch.Tensor | Mapping[str, torch.Tensor], features: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, (vectors,) = self.particle_inputs(particles, mask, vectors)
        x = _real(self.embed(x), mask)
        e = self.pair_embed(vectors, mask)
        valid = pair_mask(mask)
        for block in self.rounds:
            x, e = block(x, e, valid)
            x = _real(x, mask)
        return self.classify(_real(self.norm(x), mask).sum(1), features)
