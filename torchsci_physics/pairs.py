"""Pairwise Lorentz invariants of a padded set of four-momenta, normalised so the units do not matter.

:func:`pairwise_features` gives the Particle Transformer's four pair features (Qu, Li, Qian 2022, eq. 3):
``ln delta R, ln kT, ln z, ln m^2`` for every pair ``(i, j)`` of ``vectors (B, P, 4)`` = (px, py, pz, E).
Two of them carry units (``kT`` and ``m^2``): switching from GeV to MeV shifts ``ln kT`` by ``ln 1000``
and ``ln m^2`` by twice that. :class:`PairNorm` removes such shifts the way weaver's ``PairEmbed``
does (a batch normalisation of the inputs), restricted to real pairs: in training it standardises
with the mean and variance over the real off-diagonal pairs of the batch and keeps running averages
(the first batches set them exactly), which evaluation and export use. :class:`PairEmbedding` is
the paper's pointwise MLP from the normalised features to a width (per-head attention biases for
ParT, edge features for :class:`~torchsci_physics.interaction.PairInteractionNetwork`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

PAIR_FEATURES = ("ln_delta_r", "ln_kt", "ln_z", "ln_m2")


def pairwise_features(vectors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """ParT's pair features ``(B, P, P, 4)``: ln delta R, ln kT, ln z, ln m^2 from (px, py, pz, E).

    Raw values (normalise them with :class:`PairNorm`); symmetric in ``(i, j)``, finite for any input,
    padded (zero) vectors included.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.pairs import pairwise_features
    >>> v = torch.tensor([[[30.0, 0, 0, 30.0], [0, 40.0, 0, 40.0]]])
    >>> round(float(pairwise_features(v)[0, 0, 1, 3].exp()), 1)  # m^2 of two massless jets at 90 degrees
    2400.0
    """
    px, py, pz, e = vectors.unbind(-1)
    pt = torch.sqrt(px * px + py * py + eps)
    rap = 0.5 * torch.log((e + pz).clamp_min(eps) / (e - pz).clamp_min(eps))
    phi = torch.atan2(py, px)
    drap = rap.unsqueeze(2) - rap.unsqueeze(1)
    dphi = torch.remainder(phi.unsqueeze(2) - phi.unsqueeze(1) + math.pi, 2 * math.pi) - math.pi
    delta = torch.sqrt(drap * drap + dphi * dphi + eps)
    ptmin = torch.minimum(pt.unsqueeze(2), pt.unsqueeze(1))
    kt = ptmin * delta
    z = ptmin / (pt.unsqueeze(2) + pt.unsqueeze(1))
    s = vectors.unsqueeze(2) + vectors.unsqueeze(1)
    m2 = s[..., 3] ** 2 - s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2
    return torch.stack([torch.log(delta), torch.log(kt.clamp_min(eps)), torch.log(z.clamp_min(eps)),
                        torch.log(m2.clamp_min(eps))], dim=-1)


def pair_mask(mask: torch.Tensor) -> torch.Tensor:
    """``(B, P, P)``: True where both particles are real and ``i != j``."""
    p = torch.arange(mask.shape[1], device=mask.device)
    return mask.unsqueeze(2) & mask.unsqueeze(1) & (p.unsqueeze(1) != p.unsqueeze(0))


class PairNorm(nn.Module):
    """Batch normalisation of pair features over real pairs only, with running statistics for evaluation.

    ``forward(pairs (B, P, P, F), valid (B, P, P))`` returns the standardised features, zero where
    ``valid`` is False. A batch without any real pair leaves the statistics alone.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.pairs import PairNorm, pair_mask
    >>> norm = PairNorm(4)
    >>> pairs, valid = torch.randn(2, 5, 5, 4) + 7, pair_mask(torch.ones(2, 5, dtype=torch.bool))
    >>> abs(round(float(norm(pairs, valid)[valid].mean()), 4))  # abs: a mean of about 1e-9 rounds to -0.0 too
    0.0
    """

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    def forward(self, pairs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        v = valid.unsqueeze(-1)
        zero = torch.zeros((), dtype=pairs.dtype, device=pairs.device)
        pairs = torch.where(v, pairs, zero)
        if self.training:
            count = v.sum((0, 1, 2)).to(pairs.dtype)
            mean = pairs.sum((0, 1, 2)) / count.clamp_min(1)
            var = torch.where(v, (pairs - mean) ** 2, zero).sum((0, 1, 2)) / count.clamp_min(1)
            seen = count > 0
            with torch.no_grad():
                # a cumulative average over the first batches, then an exponential one
                rate = max(self.momentum, 1.0 / (int(self.batches) + 1)) if bool(seen.all()) else 0.0
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), rate)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), rate)
                self.batches += int(rate > 0)
            mean = torch.where(seen, mean, self.running_mean.to(pairs.dtype))
            var = torch.where(seen, var, self.running_var.to(pairs.dtype))
        else:
            mean, var = self.running_mean.to(pairs.dtype), self.running_var.to(pairs.dtype)
        return torch.where(v, (pairs - mean) / torch.sqrt(var + self.eps), zero)


class PairEmbedding(nn.Module):
    """Pair features of four-momenta to ``(B, P, P, widths[-1])``: :func:`pairwise_features`,
    :class:`PairNorm`, then a pointwise MLP (ParT's embedding of the interaction features).

    Entries of pairs that are not both real, or that are the diagonal, come out as the MLP of zero
    (a constant), never from padded values.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.pairs import PairEmbedding
    >>> embed = PairEmbedding((16, 4))
    >>> v = torch.rand(2, 5, 4) + torch.tensor([0, 0, 0, 2.0])
    >>> embed(v, torch.ones(2, 5, dtype=torch.bool)).shape
    torch.Size([2, 5, 5, 4])
    """

    def __init__(self, widths: Sequence[int] = (64, 64, 64, 8)) -> None:
        super().__init__()
        self.norm = PairNorm(len(PAIR_FEATURES))
        layers: list[nn.Module] = []
        w = len(PAIR_FEATURES)
        for i, h in enumerate(widths):
            layers.append(nn.Linear(w, h))
            if i < len(widths) - 1:
                layers.append(nn.GELU())
            w = h
        self.mlp = nn.Sequential(*layers)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(pairwise_features(vectors), pair_mask(mask)))
