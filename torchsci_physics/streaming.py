"""Examples streamed chunk by chunk, for more data than fits in memory: :class:`RootStream`.

The streaming dataset: work units (:func:`~torchsci_physics.chunks.chunk_units`) are shuffled per epoch
and dealt out to DataLoader workers and ``torchrun`` ranks, rows mix through a shuffle buffer, and
:meth:`RootStream.batched` cuts whole batches out of the blocks. :class:`StreamRow` is one row by
reference and :func:`collate` batches rows of either dataset (the in-memory one,
:class:`~torchsci_physics.in_memory.RootDataset`, hands over whole batches that pass through).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from torchsci.distributed import reader_shard
from torchsci.errors import ConfigError
from torchsci_physics.chunks import chunk_units, iter_blocks
from torchsci_physics.reweighting import ReweightTable
from torchsci_physics.spec import RootSpec, batch_keys


class StreamRow(Mapping):
    """One example of a streamed block, read like a dict of arrays: a reference, not a copy.

    :class:`RootStream` yields these so a row costs one small object; :func:`collate` gathers a batch
    of rows with one fancy index per block instead of stacking per-row dicts.
    """

    __slots__ = ("block", "index")

    def __init__(self, block: dict[str, np.ndarray], index: int) -> None:
        self.block, self.index = block, index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.block[key][self.index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.block)

    def __len__(self) -> int:
        return len(self.block)


def collate(batch: Any) -> dict[str, torch.Tensor]:
    """Batches from :meth:`RootDataset.__getitems__` pass through; rows (from a stream) are gathered per block."""
    if isinstance(batch, Mapping):
        return dict(batch)
    if not all(isinstance(row, StreamRow) for row in batch):
        return {k: torch.from_numpy(np.stack([row[k] for row in batch])) for k in batch[0]}
    pieces, start = [], 0
    for i in range(1, len(batch) + 1):
        if i == len(batch) or batch[i].block is not batch[start].block:
            index = np.fromiter((row.index for row in batch[start:i]), np.int64, i - start)
            pieces.append({k: v[index] for k, v in batch[start].block.items()})
            start = i
    if len(pieces) == 1:
        return {k: torch.from_numpy(v) for k, v in pieces[0].items()}
    return {k: torch.from_numpy(np.concatenate([p[k] for p in pieces])) for k in pieces[0]}



class RootStream(IterableDataset):
    """Examples streamed chunk by chunk: for more data than fits in memory.

    Work units (``step_size``-entry chunks of every file) are shuffled per epoch from ``(seed,
    epoch)`` and dealt out to DataLoader workers and ``torchrun`` ranks; each worker reads its units
    one at a time and mixes rows through a shuffle buffer of ``buffer_size`` examples, so the order
    depends only on ``(seed, epoch)`` and the number of readers (a resumed run reads the same batches).
    Peak memory is one chunk plus the buffer, whatever the number or size of files. Iterating gives
    rows; :meth:`batched` gives whole batches, which is how :func:`torchsci.data.make_loader` (and so
    the Trainer) reads a stream.

    Parameters
    ----------
    spec, split
        As for :class:`RootDataset`.
    buffer_size
        Rows held for shuffling (0 reads in file order: for evaluation).
    shuffle
        Shuffle the unit order and rows (training); ``False`` keeps file order.
    """

    collate = staticmethod(collate)

    def __init__(self, spec: RootSpec | Mapping[str, Any], split: str | None = None, *, buffer_size: int = 50_000,
                 shuffle: bool = True, seed: int = 0) -> None:
        self.spec = spec if isinstance(spec, RootSpec) else RootSpec(**spec)
        if split is not None and split not in self.spec.splits:
            raise ConfigError(f"split={split!r}: the spec's splits are {list(self.spec.splits) or 'none'}.")
        self.split = None if split is None else list(self.spec.splits).index(split)
        self.buffer_size, self.shuffle, self.seed, self.epoch = buffer_size, shuffle, seed, 0
        self.units = chunk_units(self.spec, self.spec.sources())
        #: a fitted reweighting (make_splits sets it on the training stream); None: physical weights
        self.reweighting: ReweightTable | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _shard() -> tuple[int, int]:
        """(this reader's index, number of readers) over ``torchrun`` ranks times DataLoader workers."""
        return reader_shard()

    def _my_units(self) -> list[tuple[int, int, int]]:
        units = list(self.units)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
            units = [units[i] for i in order]
        shard, shards = self._shard()
        return units[shard::shards]

    def _blocks(self) -> Iterator[dict[str, np.ndarray]]:
        """This worker's rows in their final (shuffled) order, one block of arrays at a time."""
        keys = batch_keys(self.spec)
        # Rows are mixed from (seed, epoch, reader) alone, not from the global RNG: a run resumed mid-epoch
        # re-reads the epoch up to its position, and must see the same order the interrupted run saw.
        rng = np.random.default_rng([self.seed, self.epoch, *self._shard()]) if self.shuffle else None
        pool: dict[str, np.ndarray] | None = None
        for block in iter_blocks(self.spec, self._my_units()):
            keep = block["split"] == self.split if self.split is not None else slice(None)
            if self.reweighting is not None:
                block["weight"] = (block["weight"] * self.reweighting.factors(block["reweight"], block["label"])).astype(np.float32)
            block = {k: block[k][keep] for k in keys if k in block}
            if rng is None or self.buffer_size <= 0:
                yield block
                continue
            pool = block if pool is None else {k: np.concatenate([pool[k], block[k]]) for k in block}
            size = len(pool["entry"])
            if size >= self.buffer_size:
                perm = rng.permutation(size)
                carry = self.buffer_size // 2  # rows carried over mix with the next chunk
                out, rest = perm[:size - carry], perm[size - carry:]
                yield {k: v[out] for k, v in pool.items()}
                pool = {k: v[rest] for k, v in pool.items()}
        if pool is not None and rng is not None:
            perm = rng.permutation(len(pool["entry"]))
            yield {k: v[perm] for k, v in pool.items()}

    def __iter__(self) -> Iterator[StreamRow]:
        for block in self._blocks():
            yield from map(StreamRow, itertools.repeat(block), range(len(block["entry"])))

    def batched(self, batch_size: int, drop_last: bool = False) -> StreamBatches:
        """The same rows in the same order, as whole batches (what :func:`torchsci.data.make_loader` reads).

        Batch boundaries are those a ``DataLoader(stream, batch_size)`` makes in each worker; a batch
        costs a slice of a block (or a concatenation where it spans two) instead of one fetch per row.
        """
        return StreamBatches(self, batch_size, drop_last)


class StreamBatches(IterableDataset):
    """Batches of ``batch_size`` rows of a :class:`RootStream` (the last one shorter unless ``drop_last``)."""

    def __init__(self, stream: RootStream, batch_size: int, drop_last: bool = False) -> None:
        self.stream, self.batch_size, self.drop_last = stream, batch_size, drop_last

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pending: list[dict[str, np.ndarray]] = []
        count = 0
        for block in self.stream._blocks():
            n, start = len(block["entry"]), 0
            while start < n:
                take = min(self.batch_size - count, n - start)
                pending.append({k: v[start:start + take] for k, v in block.items()})
                count, start = count + take, start + take
                if count == self.batch_size:
                    yield _join(pending)
                    pending, count = [], 0
        if pending and not self.drop_last:
            yield _join(pending)


def _join(pieces: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    # every row of a block goes into exactly one batch, so a batch may view the block's memory
    if len(pieces) == 1:
        return {k: torch.from_numpy(v) for k, v in pieces[0].items()}
    return {k: torch.from_numpy(np.concatenate([p[k] for p in pieces])) for k in pieces[0]}

