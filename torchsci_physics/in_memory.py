"""Examples held in memory as padded numpy arrays: :class:`RootDataset`.

The in-memory dataset: every chunk of every file is read once (:func:`~torchsci_physics.chunks.iter_blocks`)
into one set of arrays, from which each split is a view; a batch is one fancy index per array
(``__getitems__``), so loading costs no per-example Python. For data larger than memory use
:class:`~torchsci_physics.streaming.RootStream`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchsci.errors import ConfigError, DataError
from torchsci_physics.chunks import iter_blocks
from torchsci_physics.spec import RootSpec, batch_keys
from torchsci_physics.streaming import collate


class RootDataset(Dataset):
    """Examples held in memory as padded numpy arrays; fast batched fetching through ``__getitems__``.

    Parameters
    ----------
    spec
        A :class:`RootSpec`, or its keyword arguments.
    split
        Keep only this split (a key of ``spec.splits``); ``None`` keeps every example.
    arrays
        Already-read arrays (from :meth:`read`), to build several splits from one read.

    Examples
    --------
    >>> import skhep_testdata
    >>> from torchsci_physics.data import RootDataset
    >>> jets = RootDataset(dict(files=skhep_testdata.data_path("uproot-issue96.root"), tree="tree",
    ...                         objects=["jet1"], features={"multiplicity": "{obj}ChgMult"},
    ...                         label="{obj}ID == 21", selection="{obj}ID > 0", classes=["quark", "gluon"]))
    >>> len(jets), sorted(jets[:4])
    (13605, ['entry', 'features', 'label', 'object', 'weight'])
    """

    collate = staticmethod(collate)

    def __init__(self, spec: RootSpec | Mapping[str, Any], split: str | None = None,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        self.spec = spec if isinstance(spec, RootSpec) else RootSpec(**spec)
        arrays = arrays if arrays is not None else self.read(self.spec)
        if split is not None:
            if split not in self.spec.splits:
                raise ConfigError(f"split={split!r}: the spec's splits are {list(self.spec.splits) or 'none'}.")
            keep = arrays["split"] == list(self.spec.splits).index(split)
            arrays = {k: v[keep] for k, v in arrays.items()}
            if not keep.any():
                raise DataError(f"split {split!r} ({self.spec.splits[split]!r}) selects no examples from "
                                f"{self.spec.files}.")
        keys = batch_keys(self.spec)
        self.arrays = {k: arrays[k] for k in keys if k in arrays}
        self.source = arrays.get("source")

    @staticmethod
    def read(spec: RootSpec, **kwargs: Any) -> dict[str, np.ndarray]:
        """Read every chunk of every file into one set of arrays."""
        blocks = list(iter_blocks(spec, **kwargs))
        arrays = blocks[0] if len(blocks) == 1 else {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
        if len(arrays["entry"]) == 0:
            raise DataError(f"the selection {spec.selection!r} keeps no examples from {spec.files}.")
        return arrays

    def __len__(self) -> int:
        return len(self.arrays["entry"])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        return {k: torch.from_numpy(v[idx]) for k, v in self.arrays.items()}

    def __getitem__(self, index: Any) -> dict[str, torch.Tensor]:
        if isinstance(index, slice):
            return self.__getitems__(range(len(self))[index])
        return {k: torch.from_numpy(np.asarray(v[index])) for k, v in self.arrays.items()}
