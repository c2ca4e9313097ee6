"""torchsci_neuro: the neuro plug-in of torchsci.

Segment a scan with one call, :func:`segment` (:mod:`torchsci_neuro.inference`; validated NIfTI reading in
:mod:`torchsci_neuro.io`; ``torchsci neuro segment`` in :mod:`torchsci_neuro.commands`), or a whole study with
:func:`segment_study` (:mod:`torchsci_neuro.study`: files, a folder or a BIDS dataset into BIDS derivatives,
one volumes table with intervals and an HTML QC report). Models (:mod:`torchsci_neuro.models`), a
SynthSeg-style synthetic training-data generator (:mod:`torchsci_neuro.synth`) built on the MNI152 template
that ships inside nilearn (:mod:`torchsci_neuro.templates`), training on a lab's own image/label pairs
(:mod:`torchsci_neuro.datasets`), and a segmentation task with Dice and 95% Hausdorff metrics
(:mod:`torchsci_neuro.task`).
"""

from __future__ import annotations

import importlib
from typing import Any

from torchsci.registry import forwards_to


@forwards_to("torchsci_neuro.synth:SynthBrainDataset", "torchsci_neuro.synth:synthesize", exclude=("rng", "head"))
def synth_brain(**kwargs: Any) -> Any:
    """``neuro/synth_brain``: a :class:`torchsci_neuro.synth.SynthBrainDataset` built with ``kwargs``."""
    from torchsci_neuro.synth import SynthBrainDataset  # lazy: scipy and the template load on use

    return SynthBrainDataset(**kwargs)


@forwards_to("torchsci_neuro.synth:synthesize", exclude=("rng", "head"))
def synth_tissue(samples_per_epoch: int = 400, val_samples: int = 16, val_seed: int = 20240,
                 shape: tuple[int, int, int] = (96, 96, 96), voxel_size: float = 2.0, **synth_kwargs: Any) -> Any:
    """``neuro/synth_tissue``: endless synthetic training scans and a fixed, seeded synthetic validation set.

    The data of the shipped tissue model's recipe (``torchsci_neuro/configs/experiment/neuro/synth_tissue.yaml``).
    """
    from torchsci.data import DataSplits
    from torchsci_neuro.synth import FixedSynthDataset, SynthBrainDataset

    shape = tuple(shape)
    train = SynthBrainDataset(length=samples_per_epoch, shape=shape, voxel_size=voxel_size, **synth_kwargs)
    val = FixedSynthDataset(val_samples, seed=val_seed, shape=shape, voxel_size=voxel_size, **synth_kwargs)
    return DataSplits(train=train, val=val, model_kwargs={"num_classes": 4},
                      info={"validation": f"{val_samples} synthetic scans, seed {val_seed} (not real scans)",
                            "voxel_size_mm": voxel_size, "shape": list(shape)})


def register(registry: Any) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models and datasets to `registry`."""
    registry.require("nibabel", "scipy", "skimage", extra="neuro")  # absent, not fatal, without them
    # torch, nibabel and scipy only; scikit-image, matplotlib and nilearn load on first use.
    from torchsci_neuro import datasets, models
    from torchsci_neuro.task import SegmentationTask

    models.register(registry)
    registry.register_dataset("neuro/synth_brain")(synth_brain)
    registry.register_dataset("neuro/synth_tissue")(synth_tissue)
    registry.register_dataset("neuro/labelled_scans")(datasets.labelled_scans)
    registry.register_task("neuro/segmentation")(SegmentationTask)
    registry.register_command("neuro", _add_commands)
    registry.register_configs("torchsci_neuro.configs")  # experiment/neuro/... (docs/plugins.md)


def _add_commands(subparsers: Any) -> None:
    from torchsci_neuro.commands import add_commands  # lazy: nibabel, scipy, skimage load here

    add_commands(subparsers)


# The verbs, imported on first use (PEP 562) so that ``import torchsci_neuro`` stays light, and returned
# as the real functions: ``inspect.signature`` and ``help()`` show their parameters.
_VERBS = {"segment": "torchsci_neuro.inference", "segment_study": "torchsci_neuro.study"}

__all__ = ["register", "segment", "segment_study", "synth_brain", "synth_tissue"]


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'torchsci_neuro' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_VERBS})
