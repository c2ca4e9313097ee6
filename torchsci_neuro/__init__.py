"""torchsci_neuro: the neuro plug-in of torchsci.

Models (:mod:`torchsci_neuro.models`), a SynthSeg-style synthetic training-data generator
(:mod:`torchsci_neuro.synth`) built on the MNI152 template that ships inside nilearn
(:mod:`torchsci_neuro.templates`), and a segmentation task with Dice metrics (:mod:`torchsci_neuro.task`).
"""

from __future__ import annotations

from typing import Any


def synth_brain(**kwargs: Any) -> Any:
    """``neuro/synth_brain``: a :class:`torchsci_neuro.synth.SynthBrainDataset` built with ``kwargs``."""
    from torchsci_neuro.synth import SynthBrainDataset  # noqa: PLC0415 (scipy and the template load on use)

    return SynthBrainDataset(**kwargs)


def register(registry: Any) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models and datasets to `registry`."""
    from torchsci_neuro import models  # noqa: PLC0415 (torch-only; field libraries load on first use)

    models.register(registry)
    registry.register_dataset("neuro/synth_brain")(synth_brain)
    registry.register_command("neuro", _add_commands)


def _add_commands(subparsers: Any) -> None:
    from torchsci_neuro.commands import add_commands  # noqa: PLC0415 (nibabel, scipy, skimage load here)

    add_commands(subparsers)


def segment(scan: Any, task: str = "tissue", device: Any = "auto", model: Any = None, **kwargs: Any) -> Any:
    """Segment a brain scan into labels on its own grid; see :func:`torchsci_neuro.inference.segment`."""
    from torchsci_neuro.inference import segment as _segment  # noqa: PLC0415

    return _segment(scan, task=task, device=device, model=model, **kwargs)
