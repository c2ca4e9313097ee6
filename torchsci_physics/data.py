"""ROOT trees to padded tensors: jets (or events) with their particles, labels, weights and splits.

A :class:`RootSpec` says, in the field's words, what one training example is: which ``files`` and
``tree``, the per-example ``features`` (branches and expressions), the ``particles`` (jagged branches
padded to ``max_particles`` with a mask: one collection, or several named ones such as tracks and
towers, each with its own branches and length), the ``label``, ``weight`` and ``selection``,
and the ``splits`` (named selections such as ``"EventNumber % 2 == 1"``). :class:`RootDataset` reads
it all into memory; :class:`RootStream` streams it chunk by chunk for data larger than memory.

One batch is a dict of tensors::

    particles  (batch, max_particles, C)  float32   standardised inside the model, not here
    mask       (batch, max_particles)     bool      True for real particles
    points     (batch, max_particles, 2)  float32   (delta eta, delta phi) to the jet axis, for kNN
    vectors    (batch, max_particles, 4)  float32   (px, py, pz, E), for pairwise features
    features   (batch, G)                 float32   per-example features
    label (batch,) int64, weight (batch,) float32, entry (batch,) int64, object (batch,) int64
    target     (batch,)                   float64   the regression target (only with ``target=``)

Layout is particle-major (``[B, P, C]``), like :class:`torchsci.data.Padded`. With several named
collections (``particles={"tracks": ..., "towers": ...}``) each is padded separately and its four
particle entries are keyed by its name: ``particles.tracks``, ``mask.tracks``, ``points.tracks``,
``vectors.tracks``, ``particles.towers``, ...; the models take them as dicts (see
:mod:`torchsci_physics.models`).

The layers, each a module: :mod:`~torchsci_physics.spec` (:class:`RootSpec`, :class:`Collection`, their
checks), :mod:`~torchsci_physics.particles` (padding and derived particle features),
:mod:`~torchsci_physics.chunks` (one chunk of entries to rows), :mod:`~torchsci_physics.in_memory`
(:class:`RootDataset`), :mod:`~torchsci_physics.streaming` (:class:`RootStream`, :func:`collate`) and
:mod:`~torchsci_physics.splits` (:func:`make_splits`, standardisation, the regression target's
transform). Every name stays importable from here, the path configs and scripts use.
"""

from __future__ import annotations

from torchsci_physics.chunks import chunk_units, iter_blocks, needed_branches, read_block  # noqa: F401 (re-exported)
from torchsci_physics.in_memory import RootDataset  # noqa: F401 (re-exported)
from torchsci_physics.particles import PARTICLE_NAMES, pad_collection  # noqa: F401 (re-exported)
from torchsci_physics.spec import (  # noqa: F401 (re-exported)
    MAX_NUMBERED,
    Collection,
    RootSpec,
    batch_keys,
    check_expressions,
    collection_key,
    expressions_for,
)
from torchsci_physics.splits import (  # noqa: F401 (re-exported)
    make_splits,
    standardisation,
    target_scale,
    transform_target,
    untransform_target,
)
from torchsci_physics.streaming import RootStream, StreamBatches, StreamRow, collate  # noqa: F401 (re-exported)
