"""Jet taggers on padded particle sets: Particle Flow Network, ParticleNet, Particle Transformer, and an MLP.

Input convention (all models): particle-major ``particles (B, P, C)`` with ``mask (B, P)``, True for
real particles, as :mod:`torchsci_physics.data` produces; ParticleNet also takes ``points (B, P, 2)``
(delta eta, delta phi) for its k-nearest neighbours, the Particle Transformer ``vectors (B, P, 4)``
(px, py, pz, E) for its pairwise features. With ``num_features > 0`` the per-jet ``features (B, G)``
come last. Outputs are logits ``(B, num_classes)``.

Several particle collections (tracks and towers, charged and neutral candidates, secondary vertices):
build the model with ``num_particle_features={"tracks": 8, "towers": 5}`` and pass ``particles``,
``mask`` (and ``points``/``vectors``) as dicts keyed by collection, each ``(B, P_name, ...)`` with its
own length. Each collection is standardised and embedded into a common width by its own linear layer,
plus a learned collection-type embedding; the sets are then concatenated along the particle
dimension, with their masks, and processed jointly (:class:`CollectionEmbedding`).

A padded particle never changes the output: padded entries are zeroed on entry, never chosen as
neighbours, masked out of attention and of every pooling, whatever values they hold. Each model
standardises its inputs with the mean and standard deviation it was built with (measured on the
training set by :func:`torchsci_physics.data.make_splits`), stored as buffers in its state dict. Every
op is traceable by ``torch.export`` with a dynamic number of particles (kNN is ``topk`` on a masked
distance matrix; there is no data-dependent Python control flow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchsci.errors import ConfigError
from torchsci.models import MLP
from torchsci_physics.pairs import PairEmbedding, pairwise_features

__all__ = ["CollectionEmbedding", "EdgeConv", "JetMLP", "ParticleFlowNetwork", "ParticleNet", "ParticleTransformer",
           "Standardise", "checked_input_spec", "example_particles", "knn", "masked_mean", "padded_length",
           "pairwise_features", "register_models"]


class Standardise(nn.Module):
    """``(x - mean) / std`` on the last dimension, with the statistics as buffers (saved with the model)."""

    def __init__(self, width: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32) if mean else torch.zeros(width))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32) if std else torch.ones(width))
        if self.mean.shape != (width,) or self.std.shape != (width,):
            raise ValueError(f"standardisation has {self.mean.numel()} means and {self.std.numel()} stds for {width} inputs")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Padded entries set to zero (so any values they held, even NaN, are gone)."""
    return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only entries where ``mask`` (0 when none)."""
    m = mask.unsqueeze(-1)
    total = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim)
    return total / m.sum(dim).clamp_min(1).to(x.dtype)


class CollectionEmbedding(nn.Module):
    """Several padded particle collections as one set: per-collection standardisation and linear embedding
    into ``width``, plus a learned collection-type embedding, concatenated along the particle dimension.

    Padded particles come out as zeros with a False mask, whatever values they held.

    Parameters
    ----------
    num_particle_features
        ``{collection: number of per-particle inputs}``; the order is the order of concatenation.
    width
        The common width of the embedded particles.
    particle_mean, particle_std
        ``{collection: per-input statistics}`` (missing collections are left unstandardised).

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.models import CollectionEmbedding
    >>> embed = CollectionEmbedding({"tracks": 3, "towers": 2}, width=8)
    >>> x, mask, _ = embed({"tracks": torch.randn(4, 5, 3), "towers": torch.randn(4, 7, 2)},
    ...                    {"tracks": torch.ones(4, 5, dtype=torch.bool), "towers": torch.ones(4, 7, dtype=torch.bool)})
    >>> x.shape, mask.shape
    (torch.Size([4, 12, 8]), torch.Size([4, 12]))
    """

    def __init__(self, num_particle_features: Mapping[str, int], width: int,
                 particle_mean: Mapping[str, Sequence[float]] | None = None,
                 particle_std: Mapping[str, Sequence[float]] | None = None) -> None:
        super().__init__()
        if not num_particle_features:
            raise ValueError("num_particle_features={} names no collection")
        bad = [n for n in num_particle_features if not (isinstance(n, str) and n.isidentifier())]
        if bad:
            raise ValueError(f"collection names {bad} must be Python identifiers (e.g. 'tracks')")
        self.names = tuple(num_particle_features)
        mean, std = dict(particle_mean or {}), dict(particle_std or {})
        self.norms = nn.ModuleDict({n: Standardise(int(c), mean.get(n), std.get(n))
                                    for n, c in num_particle_features.items()})
        self.embeds = nn.ModuleDict({n: nn.Linear(int(c), width) for n, c in num_particle_features.items()})
        # small, like a token embedding: it marks the collection without drowning the particle's own inputs
        self.kind = nn.Parameter(0.02 * torch.randn(len(self.names), width))

    def forward(self, particles: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor],
                *extras: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(x (B, sum P, width), mask (B, sum P), [each extra (points, vectors) concatenated the same way])``."""
        for given, what in ((particles, "particles"), (mask, "mask"), *((e, "points/vectors") for e in extras)):
            missing = [n for n in self.names if n not in given]
            if missing:
                raise ValueError(f"{what} lacks collection(s) {missing}: the model was built for {list(self.names)}")
        xs = []
        for i, n in enumerate(self.names):
            m = mask[n]
            x = self.embeds[n](self.norms[n](_real(particles[n], m)))
            xs.append(_real(x + self.kind[i].to(x.dtype), m))
        joined = [torch.cat([_real(e[n], mask[n]) for n in self.names], dim=1) for e in extras]
        return torch.cat(xs, dim=1), torch.cat([mask[n] for n in self.names], dim=1), joined


def checked_input_spec(input_spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """``input_spec`` after checking it as a :class:`~torchsci_physics.data.RootSpec` (every expression in the language).

    A model rebuilt from a checkpoint gets its ``input_spec`` from the file's header: data that
    :func:`~torchsci_physics.predict.predict_root` will evaluate, so it is refused here, when the
    model is built, if any expression is outside the language or any field is unknown.
    """
    if input_spec is None:
        return None
    from torchsci_physics.spec import RootSpec  # lazy: awkward and uproot only for models that read ROOT

    if not isinstance(input_spec, Mapping):
        raise ConfigError(f"input_spec must be a mapping of RootSpec fields, got {type(input_spec).__name__}.")
    try:
        RootSpec(files=[], **input_spec)
    except TypeError as exc:
        raise ConfigError(f"input_spec: {exc} (its keys must be RootSpec fields).") from exc
    return input_spec


class _Tagger(nn.Module):
    """Shared parts: input standardisation (or several collections' embedding), per-jet features joined
    after pooling, the classifier head."""

    input_names: tuple[str, ...] = ("particles", "mask", "features")

    def __init__(self, num_particle_features: int | Mapping[str, int], num_features: int, num_classes: int,
                 pooled: int, head: Sequence[int], dropout: float, particle_mean, particle_std, feature_mean,
                 feature_std, input_spec: dict[str, Any] | None, embed_width: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.input_spec = checked_input_spec(input_spec)
        if isinstance(num_particle_features, Mapping):
            self.collections: tuple[str, ...] | None = tuple(num_particle_features)
            self.particle_norm = None
            self.collection_embed = CollectionEmbedding(num_particle_features, embed_width, particle_mean, particle_std)
            self.particle_width = embed_width
        else:
            self.collections = None
            self.particle_norm = Standardise(num_particle_features, particle_mean, particle_std)
            self.collection_embed = None
            self.particle_width = num_particle_features
        self.feature_norm = Standardise(num_features, feature_mean, feature_std) if num_features else None
        self.head = MLP(pooled + num_features, num_classes, tuple(head), dropout)

    def particle_inputs(self, particles: Any, mask: Any, *extras: Any) -> tuple[torch.Tensor, torch.Tensor, list]:
        """Standardised particles ``(B, P, particle_width)`` zeroed where padded, the mask, and the extras
        (points, vectors) zeroed where padded: one set, whether one collection or several (dicts) came in."""
        if self.collection_embed is not None:
            return self.collection_embed(particles, mask, *extras)
        return _real(self.particle_norm(_real(particles, mask)), mask), mask, [_real(e, mask) for e in extras]

    def classify(self, pooled: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        if self.feature_norm is not None:
            if features is None:
                raise ValueError(f"{type(self).__name__} was built with num_features={self.num_features}: pass features (B, G)")
            pooled = torch.cat([pooled, self.feature_norm(features)], dim=-1)
        return self.head(pooled)


class ParticleFlowNetwork(_Tagger):
    """Deep Sets / Particle Flow Network: a per-particle MLP, a masked sum, and an MLP on the sum.

    ``num_particle_features={"tracks": 3, "towers": 2}`` takes several collections as dicts (see the
    module docstring); the sum then runs over the particles of all of them.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.models import ParticleFlowNetwork
    >>> net = ParticleFlowNetwork(num_particle_features=3, num_classes=2)
    >>> net(torch.randn(4, 5, 3), torch.ones(4, 5, dtype=torch.bool)).shape
    torch.Size([4, 2])
    >>> two = ParticleFlowNetwork(num_particle_features={"tracks": 3, "towers": 2})
    >>> two({"tracks": torch.randn(4, 5, 3), "towers": torch.randn(4, 7, 2)},
    ...     {"tracks": torch.ones(4, 5, dtype=torch.bool), "towers": torch.ones(4, 7, dtype=torch.bool)}).shape
    torch.Size([4, 2])
    """

    def __init__(self, num_particle_features: int | Mapping[str, int] = 7, num_features: int = 0,
                 num_classes: int = 2, phi: Sequence[int] = (64, 64, 64), head: Sequence[int] = (64, 64),
                 dropout: float = 0.0, pooling: str = "sum", particle_mean=None, particle_std=None,
                 feature_mean=None, feature_std=None, input_spec: dict[str, Any] | None = None) -> None:
        super().__init__(num_particle_features, num_features, num_classes, phi[-1], head, dropout, particle_mean,
                         particle_std, feature_mean, feature_std, input_spec, embed_width=phi[0])
        if pooling not in ("sum", "mean"):
            raise ValueError(f"pooling={pooling!r}: use 'sum' (energy-flow style) or 'mean'")
        self.pooling = pooling
        layers: list[nn.Module] = []
        width = self.particle_width
        for h in phi:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.phi = nn.Sequential(*layers)

    def forward(self, particles: torch.Tensor | Mapping[str, torch.Tensor], mask: torch.Tensor | Mapping[str, torch.Tensor],
                features: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, _ = self.particle_inputs(particles, mask)
        h = _real(self.phi(x), mask)
        pooled = h.sum(1) if self.pooling == "sum" else masked_mean(h, mask, 1)
        return self.classify(pooled, features)


def knn(points: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, P, k)`` of each particle's ``k`` nearest real neighbours (itself excluded), and which are real.

    Padded particles and the particle itself get an infinite distance, so they come last; when a jet
    has fewer than ``k`` other real particles the extra picks are flagged False in the second output.
    """
    sq = points.pow(2).sum(-1)
    dist = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * points @ points.transpose(1, 2)
    p = points.shape[1]
    eye = torch.eye(p, dtype=torch.bool, device=points.device).unsqueeze(0)
    allowed = mask.unsqueeze(1) & ~eye
    dist = torch.where(allowed, dist, torch.full((), math.inf, dtype=dist.dtype, device=dist.device))
    idx = dist.topk(k, dim=-1, largest=False).indices
    return idx, allowed.gather(2, idx)


def _neighbours(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b, i, j]]`` as ``(B, P, k, C)``: one row gather from the flattened particles."""
    b, p, k = idx.shape
    flat = idx + (torch.arange(b, device=idx.device) * p).view(-1, 1, 1)
    return x.reshape(b * p, -1).index_select(0, flat.reshape(-1)).view(b, p, k, -1)


class EdgeConv(nn.Module):
    """One EdgeConv block: MLP on (x_i, x_j - x_i) over the k nearest neighbours, mean, plus a shortcut.

    The first layer is linear, so ``W [x_i; x_j - x_i] = (W_i - W_j) x_i + W_j x_j``: it runs once per
    particle and only its output is gathered per edge, instead of a k-times larger product on
    concatenated edge features (the same numbers up to float rounding, and the same parameters).
    """

    def __init__(self, width: int, channels: Sequence[int], k: int) -> None:
        super().__init__()
        self.k = k
        layers: list[nn.Module] = []
        w = 2 * width
        for c in channels:
            layers += [nn.Linear(w, c), nn.LayerNorm(c), nn.ReLU()]
            w = c
        self.edge = nn.Sequential(*layers)
        self.shortcut = nn.Linear(width, channels[-1])
        self.out = nn.ReLU()

    def forward(self, coords: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        idx, valid = knn(coords, mask, self.k)
        first = self.edge[0]
        w_centre, w_diff = first.weight.chunk(2, dim=1)
        own, other = F.linear(x, torch.cat([w_centre - w_diff, w_diff])).chunk(2, dim=-1)
        edges = self.edge[1:]((own + first.bias).unsqueeze(2) + _neighbours(other, idx))
        # edges are finite (inputs were zeroed where padded), so weighting by valid / count is a safe masked
        # mean, and one multiply costs a third of a select over the (B, P, k, C) edge tensor
        weights = valid.to(edges.dtype)
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(1)
        return _real(self.out((edges * weights.unsqueeze(-1)).sum(2) + self.shortcut(x)), mask)


def padded_length(input_spec: Mapping[str, Any] | None) -> int | None:
    """The number of particle slots per example the data of ``input_spec`` pads to (summed over collections)."""
    particles = (input_spec or {}).get("particles")
    if not particles:
        return None
    collections = [particles] if "p4" in particles else list(particles.values())
    return sum(int(c.get("max_particles", 50)) for c in collections)


class ParticleNet(_Tagger):
    """ParticleNet (Qu and Gouskos 2020): EdgeConv blocks with kNN in (eta, phi), then in feature space.

    ``points`` (delta eta, delta phi) choose the first block's neighbours; later blocks use the
    previous block's features. ``k`` must be below the padded length ``P`` (checked when the model is built from a dataset's ``model_kwargs``). With several collections
    (dicts, see the module docstring) neighbours are found across all of them (a track's neighbour may
    be a tower), and ``k`` must not exceed the sum of their lengths.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.models import ParticleNet
    >>> net = ParticleNet(num_particle_features=3, k=2, blocks=((8, 8),))
    >>> net(torch.randn(4, 5, 3), torch.ones(4, 5, dtype=torch.bool), torch.randn(4, 5, 2)).shape
    torch.Size([4, 2])
    """

    input_names = ("particles", "mask", "points", "features")

    def __init__(self, num_particle_features: int | Mapping[str, int] = 7, num_features: int = 0,
                 num_classes: int = 2, k: int = 8,
                 blocks: Sequence[Sequence[int]] = ((32, 32, 32), (64, 64, 64)), head: Sequence[int] = (128,),
                 dropout: float = 0.1, particle_mean=None, particle_std=None, feature_mean=None, feature_std=None,
                 input_spec: dict[str, Any] | None = None) -> None:
        super().__init__(num_particle_features, num_features, num_classes, blocks[-1][-1], head, dropout,
                         particle_mean, particle_std, feature_mean, feature_std, input_spec,
                         embed_width=blocks[0][0])
        length = padded_length(input_spec)
        if length is not None and k >= length:
            raise ConfigError(f"ParticleNet k={k}: the data pads to {length} particles per example (max_particles), "
                              f"so each has at most {length - 1} neighbours; set k to at most {length - 1} "
                              "(model.k=...) or raise max_particles.")
        self.blocks = nn.ModuleList()
        width = self.particle_width
        for channels in blocks:
            self.blocks.append(EdgeConv(width, tuple(channels), k))
            width = channels[-1]

    def forward(self, particles: torch.Tensor | Mapping[str, torch.Tensor], mask: torch.Tensor | Mapping[str, torch.Tensor],
                points: torch.Tensor | Mapping[str, torch.Tensor], features: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, (coords,) = self.particle_inputs(particles, mask, points)
        for block in self.blocks:
            x = block(coords, x, mask)
            coords = x
        return self.classify(masked_mean(x, mask, 1), features)


class _Attention(nn.Module):
    """Pre-norm multi-head attention with an additive per-head bias and a key mask, then an MLP."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv_q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        b, q_len, d = query.shape
        h, dh = self.heads, d // self.heads
        qn, kn = self.norm1(query), self.norm1(keys)
        q = self.qkv_q(qn).view(b, q_len, h, dh).transpose(1, 2)
        k, v = self.kv(kn).view(b, -1, 2, h, dh).permute(2, 0, 3, 1, 4).unbind(0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if bias is not None:
            scores = scores + bias
        # finfo.min, not -inf: a jet with no real particle must still give finite numbers
        scores = scores.masked_fill(~key_mask.view(b, 1, 1, -1), torch.finfo(scores.dtype).min)
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, q_len, d)
        x = query + self.proj(out)
        return x + self.mlp(self.norm2(x))


class ParticleTransformer(_Tagger):
    """Particle Transformer (Qu, Li, Qian 2022): attention over particles biased by pairwise features.

    Particle blocks attend among real particles with a learned per-head bias from the pair features
    (ln delta R, ln kT, ln z, ln m^2, :func:`~torchsci_physics.pairs.pairwise_features`), embedded as in
    the paper by a pointwise MLP of widths ``pair_widths`` after a batch normalisation over real pairs
    (:class:`~torchsci_physics.pairs.PairEmbedding`), so GeV and MeV inputs give the same biases;
    class-attention blocks then pool the particles into one token for the head.
    The default size is small (dim 64, 3 + 1 blocks) for CPU training. With several collections (dicts,
    see the module docstring) attention and pair features run across all of them.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.models import ParticleTransformer
    >>> net = ParticleTransformer(num_particle_features=3, dim=16, heads=2, blocks=1)
    >>> x, v = torch.randn(4, 5, 3), torch.rand(4, 5, 4) + torch.tensor([0, 0, 0, 2.0])
    >>> net(x, torch.ones(4, 5, dtype=torch.bool), v).shape
    torch.Size([4, 2])
    """

    input_names = ("particles", "mask", "vectors", "features")

    def __init__(self, num_particle_features: int | Mapping[str, int] = 7, num_features: int = 0,
                 num_classes: int = 2, dim: int = 64, heads: int = 4, blocks: int = 3, class_blocks: int = 1,
                 pair_widths: Sequence[int] = (64, 64, 64), head: Sequence[int] = (64,), dropout: float = 0.0, particle_mean=None,
                 particle_std=None, feature_mean=None, feature_std=None,
                 input_spec: dict[str, Any] | None = None) -> None:
        super().__init__(num_particle_features, num_features, num_classes, dim, head, dropout, particle_mean,
                         particle_std, feature_mean, feature_std, input_spec, embed_width=dim)
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of heads={heads}")
        self.heads = heads
        self.embed = nn.Sequential(nn.Linear(self.particle_width, dim), nn.GELU(), nn.Linear(dim, dim))
        self.pair_embed = PairEmbedding((*pair_widths, heads))
        self.particle_blocks = nn.ModuleList(_Attention(dim, heads, dropout) for _ in range(blocks))
        self.class_blocks = nn.ModuleList(_Attention(dim, heads, dropout) for _ in range(class_blocks))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, particles: torch.Tensor | Mapping[str, torch.Tensor], mask: torch.Tensor | Mapping[str, torch.Tensor],
                vectors: torch.Tensor | Mapping[str, torch.Tensor], features: torch.Tensor | None = None) -> torch.Tensor:
        x, mask, (vectors,) = self.particle_inputs(particles, mask, vectors)
        x = _real(self.embed(x), mask)
        bias = self.pair_embed(vectors, mask).permute(0, 3, 1, 2)
        for block in self.particle_blocks:
            x = _real(block(x, x, mask, bias), mask)
        token = self.cls.to(x.dtype).expand(x.shape[0], -1, -1)
        for block in self.class_blocks:
            token = block(token, x, mask, None)
        return self.classify(self.norm(token[:, 0]), features)


class JetMLP(nn.Module):
    """An MLP on per-jet (or per-event) features, standardised with the training set's statistics.

    Examples
    --------
    >>> import torch
    >>> from torchsci_physics.models import JetMLP
    >>> JetMLP(num_features=3)(torch.randn(4, 3)).shape
    torch.Size([4, 2])
    """

    input_names = ("features",)

    def __init__(self, num_features: int = 3, num_classes: int = 2, hidden: Sequence[int] = (64, 64),
                 dropout: float = 0.0, feature_mean=None, feature_std=None, input_spec: dict[str, Any] | None = None,
                 num_particle_features: int = 0, particle_mean=None, particle_std=None) -> None:
        # the particle arguments come with every dataset's model_kwargs; an MLP on jet features ignores them
        super().__init__()
        self.input_spec = checked_input_spec(input_spec)
        self.norm = Standardise(num_features, feature_mean, feature_std)
        self.net = MLP(num_features, num_classes, tuple(hidden), dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(features))


def example_particles(num_particle_features: int = 7, batch: int = 3, length: int = 11, with_points: bool = False,
                      with_vectors: bool = False) -> tuple[torch.Tensor, ...]:
    """A padded batch for the conformance battery: odd sizes, some jets short, one with one particle."""
    g = torch.Generator().manual_seed(0)
    particles = torch.randn(batch, length, num_particle_features, generator=g)
    counts = torch.tensor([length, length // 2, 1, length - 2, 3][:batch])
    mask = torch.arange(length).unsqueeze(0) < counts.unsqueeze(1)
    out: list[torch.Tensor] = [particles, mask]
    if with_points:
        out.append(0.3 * torch.randn(batch, length, 2, generator=g))
    if with_vectors:
        p3 = 20 * torch.randn(batch, length, 3, generator=g)
        energy = p3.norm(dim=-1, keepdim=True) * 1.01 + 0.1
        out.append(torch.cat([p3, energy], dim=-1))
    return tuple(out)


def register_models(registry: Any) -> None:
    """Add the physics models to ``registry``."""
    registry.register_model("physics/pfn", example_inputs=lambda: example_particles())(ParticleFlowNetwork)
    registry.register_model("physics/particlenet",
                            example_inputs=lambda: example_particles(with_points=True))(ParticleNet)
    registry.register_model("physics/part",
                            example_inputs=lambda: example_particles(with_vectors=True))(ParticleTransformer)
    from torchsci_physics.interaction import PairInteractionNetwork  # lazy: it builds on this module

    registry.register_model("physics/pairnet",
                            example_inputs=lambda: example_particles(with_vectors=True))(PairInteractionNetwork)
    registry.register_model("physics/mlp", example_inputs=lambda: (torch.randn(3, 3),))(JetMLP)
