"""Segmentation networks for 3D scans, registered as ``neuro/...`` models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the networks need torch only, so a benchmark peer's environment can import them
    from torchsci.registry import Registry

#: The shipped tissue segmenter (see torchsci_neuro/weights/MODEL_CARD.md): its file, checksum and arguments.
TISSUE_WEIGHTS = {
    "package": "torchsci_neuro",
    "resource": "weights/unet3d-tissue.safetensors",
    "sha256": "62bdb1053f524254808b49f863e096222d028ef56f2db89ad6daab560002e634",
    "kwargs": {"channels": [8, 16, 32, 64], "channels_last": True},
    "description": "T1 brain tissue (0 background, 1 CSF, 2 GM, 3 WM) at 2 mm, trained on synthetic scans "
                   "generated from the MNI152 2009a template; see torchsci_neuro/weights/MODEL_CARD.md",
}


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions, each followed by instance norm and leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [nn.Conv3d(c_in, out_channels, kernel_size=3, padding=1),
                       nn.InstanceNorm3d(out_channels, affine=True),
                       nn.LeakyReLU(0.01, inplace=True)]
        super().__init__(*layers)


class UNet3D(nn.Module):
    """A plain 3D U-Net: conv-instancenorm-leakyrelu blocks, max-pool down, trilinear up, skip concatenation.

    Parameters
    ----------
    in_channels
        Image channels (1 for a single MR contrast).
    num_classes
        Output channels: logits per class (4 for background, CSF, GM, WM).
    channels
        Widths per level, finest first; ``len(channels) - 1`` poolings.
    channels_last
        Keep weights and activations in ``torch.channels_last_3d`` layout: oneDNN then takes its fast
        convolution path on CPU (measured 25-30% faster training steps at 96^3 on one core).

    Notes
    -----
    Upsampling goes to the skip connection's exact size, so any input size works; sizes divisible by
    ``2 ** (len(channels) - 1)`` avoid the rounding of odd levels.

    Examples
    --------
    >>> model = UNet3D(channels=(4, 8))
    >>> tuple(model(torch.zeros(1, 1, 8, 8, 8)).shape)
    (1, 4, 8, 8, 8)
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 4, channels: Sequence[int] = (8, 16, 32, 64),
                 channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        channels = tuple(channels)
        self.encoders = nn.ModuleList()
        width = in_channels
        for c in channels:
            self.encoders.append(ConvBlock(width, c))
            width = c
        self.decoders = nn.ModuleList(ConvBlock(channels[i + 1] + channels[i], channels[i])
                                      for i in reversed(range(len(channels) - 1)))
        self.head = nn.Conv3d(channels[0], num_classes, kernel_size=1)
        if channels_last:
            self.to(memory_format=torch.channels_last_3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        skips = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool3d(x, kernel_size=2)
            x = encoder(x)
            skips.append(x)
        skips.pop()
        for decoder in self.decoders:
            skip = skips.pop()
            if self.channels_last:
                # Instance norm hands back contiguous tensors. Trilinear upsampling of bfloat16 runs about 4x faster
                # in channels-last (0.24 -> 0.06 s for 2x16x48^3 on one core), and concatenating two channels-last
                # tensors spares the decoder's convolution a reorder: a forward of 2x96^3 took 0.93 -> 0.73 CPU s.
                # The convolutions and the concatenation give the same numbers in either layout; the upsampling
                # differs by one bfloat16 ulp in about 1e-7 of its outputs (no label changed on four real scans).
                x = x.contiguous(memory_format=torch.channels_last_3d)
                skip = skip.contiguous(memory_format=torch.channels_last_3d)
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


def unet3d(in_channels: int = 1, num_classes: int = 4, channels: Sequence[int] = (8, 16, 32, 64),
           channels_last: bool = False) -> UNet3D:
    """``neuro/unet3d``: :class:`UNet3D` for tissue segmentation (background, CSF, GM, WM)."""
    return UNet3D(in_channels, num_classes, tuple(channels), channels_last)


def _example_inputs() -> tuple[torch.Tensor]:
    # Odd batch and non-cubic spatial dims divisible by 8: the conformance checks see anisotropic
    # shapes without the rounding of odd pooling levels.
    return (torch.randn(3, 1, 16, 16, 8),)


def register(registry: Registry) -> None:
    """Add this module's models to ``registry`` (called by :func:`torchsci_neuro.register`).

    The factories live at module level, so registering twice into one registry is harmless.
    """
    from torchsci.registry import PretrainedWeights  # lazy: see the TYPE_CHECKING import above

    registry.register_model("neuro/unet3d", example_inputs=_example_inputs)(unet3d)
    # The shipped tissue segmenter: the same factory, with its weights (and their arguments) attached. Fine-tune
    # it with torchsci train experiment=neuro/segment model.name=neuro/unet3d-tissue +model.pretrained=true.
    registry.register_model("neuro/unet3d-tissue", example_inputs=_example_inputs,
                            pretrained={"synth-mni152": PretrainedWeights(**TISSUE_WEIGHTS)})(unet3d)

