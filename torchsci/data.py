"""Data loading that a run can stop and resume in the middle of an epoch.

Three pieces make a loader position part of a checkpoint:

- :class:`ResumableBatchSampler` batches ``torch.utils.data.DistributedSampler``'s order (shuffled per
  epoch from the run seed, sharded over ranks) and can start part-way through an epoch.
- :class:`SeededDataset` gives every batch its own random stream, derived from (run seed, epoch,
  batch index), inside DataLoader workers. Random augmentation therefore depends on which batch is
  being made, not on which worker makes it or how many batches that worker made before, so a resumed
  run draws the same augmentations. With ``num_workers=0`` no reseeding is needed: data and model
  share the main process's RNG, which the checkpoint stores.
- :func:`make_loader` builds the ``DataLoader`` from a dataset, never touching the global RNG.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    Sampler,
    get_worker_info,
)

from torchsci.distributed import DistInfo
from torchsci.seed import derive_seed


@dataclasses.dataclass
class Padded:
    """Variable-length items padded to one length, with a mask of the real entries.

    ``values`` has shape ``(batch, length, ...)``; ``mask`` is ``(batch, length)`` and True where an
    entry is real. Moves to a device like a tensor (see :func:`torchsci.device.move_to`).

    Examples
    --------
    >>> from torchsci.data import pad_sequences
    >>> p = pad_sequences([torch.ones(2, 3), torch.ones(1, 3)])
    >>> tuple(p.values.shape), p.mask.tolist()
    ((2, 2, 3), [[True, True], [True, False]])
    """

    values: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> Padded:
        return Padded(self.values.to(device), self.mask.to(device))


def pad_sequences(items: Sequence[torch.Tensor], max_length: int | None = None, value: float = 0.0) -> Padded:
    """Stack tensors of shape ``(length_i, ...)`` into a :class:`Padded` batch.

    Items longer than ``max_length`` keep their first ``max_length`` entries (sort them first if a
    different truncation order is wanted).
    """
    if not items:
        raise ValueError("pad_sequences needs at least one item")
    length = max(int(t.shape[0]) for t in items)
    if max_length is not None:
        length = min(length, max_length)
    trailing = items[0].shape[1:]
    values = items[0].new_full((len(items), length, *trailing), value)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, t in enumerate(items):
        n = min(int(t.shape[0]), length)
        values[i, :n] = t[:n]
        mask[i, :n] = True
    return Padded(values, mask)


@dataclasses.dataclass
class DataSplits:
    """What a registered dataset factory returns: the splits, how to batch them, and facts for the model.

    ``model_kwargs`` are model arguments the data decides (``in_features``, ``num_classes``, the
    standardisation of inputs); the config-driven runner passes them to ``create_model`` unless the
    config sets them. ``info`` holds anything worth saving with the run (split indices, class names).
    """

    train: Dataset
    val: Dataset | None = None
    test: Dataset | None = None
    collate_fn: Callable | None = None
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BatchTag:
    """Leads every training batch's index list: which epoch and batch it is (seeds its random streams)."""

    epoch: int
    batch: int


class ResumableBatchSampler(Sampler[list]):
    """Batches of ``torch.utils.data.DistributedSampler``'s per-epoch order, able to start at any batch.

    Each batch is ``[BatchTag(epoch, batch), index, index, ...]``: one tag per batch rather than per item
    keeps the sampler as cheap as a plain shuffled loader; :class:`SeededDataset` strips the tag.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, seed: int, dist: DistInfo, epoch: int = 0,
                 start_batch: int = 0, drop_last: bool = False) -> None:
        self.order = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                        seed=seed, drop_last=False)
        self.order.set_epoch(epoch)
        self.epoch, self.batch_size, self.start_batch, self.drop_last = epoch, batch_size, start_batch, drop_last

    def _batches(self) -> int:
        n = self.order.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        indices = list(self.order)
        for b in range(self.start_batch, self._batches()):
            yield [BatchTag(self.epoch, b), *indices[b * self.batch_size:(b + 1) * self.batch_size]]

    def __len__(self) -> int:
        return max(self._batches() - self.start_batch, 0)


class _ShardSampler(Sampler[int]):
    """Evaluation sampler: rank r takes items r, r + world, ... (no padding, so no item counts twice)."""

    def __init__(self, length: int, dist: DistInfo) -> None:
        self.indices = range(dist.rank, length, dist.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededDataset(Dataset):
    """Wraps a map-style dataset so each training batch made in a worker has its own seeded RNG streams."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[Any]) -> Any:
        if keys and isinstance(keys[0], BatchTag):
            tag, keys = keys[0], keys[1:]
            if get_worker_info() is not None:
                s = derive_seed(self.seed, tag.epoch, tag.batch)
                random.seed(s)
                np.random.seed(s % 2**32)
                torch.manual_seed(s)
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(keys)
        return [self.dataset[k] for k in keys]


def dataset_collate(dataset: Any, collate_fn: Callable | None) -> Callable | None:
    """The collate function to use: the one given, else the dataset's own ``collate`` attribute."""
    return collate_fn if collate_fn is not None else getattr(dataset, "collate", None)


_SINGLE_PROCESS = DistInfo()


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, seed: int, epoch: int = 0,
                start_batch: int = 0, dist: DistInfo = _SINGLE_PROCESS, num_workers: int = 0,
                collate_fn: Callable | None = None, drop_last: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` for one epoch that uses no global random state.

    Map-style training data is shuffled by :class:`ResumableBatchSampler` and starts at ``start_batch``;
    evaluation data is read in order, sharded over ranks. ``IterableDataset`` s are passed through
    (their ``set_epoch`` is called when they have one); skipping their first batches on resume is the
    caller's job, since only reading them reaches that position. An iterable dataset with a
    ``batched(batch_size, drop_last)`` method returning an iterable of whole batches is read through
    it (``collate_fn`` then applies to each batch): the DataLoader otherwise fetches one item per call.
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch, 0x5EED))
    collate = dataset_collate(dataset, collate_fn)
    common = dict(num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory, generator=generator)
    if isinstance(dataset, IterableDataset):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batched = getattr(dataset, "batched", None)
        if batched is not None:
            return DataLoader(batched(batch_size, drop_last), batch_size=None, **common)
        return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, **common)
    wrapped = SeededDataset(dataset, seed)
    if train:
        batches: Sampler = ResumableBatchSampler(dataset, batch_size=batch_size, seed=seed, dist=dist, epoch=epoch,
                                                 start_batch=start_batch, drop_last=drop_last)
    else:
        batches = BatchSampler(_ShardSampler(len(dataset), dist), batch_size=batch_size, drop_last=False)  # type: ignore[arg-type]
    return DataLoader(wrapped, batch_sampler=batches, **common)
