"""Sliding windows: the network run over a volume in overlapping windows blended with Gaussian weights.

This layer runs the model on the model grid: :func:`head_box` says where (the head's box, never a window
of pure air), :func:`window_starts` and :func:`gaussian_importance` how the windows tile and blend, and
:func:`sliding_window_probabilities` returns the blended class probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from torch import nn

from torchsci_neuro.masks import bounding_box, largest_component


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Blending weights of one window: a Gaussian of ``sigma = sigma_scale * size`` per axis, peak 1.

    Centre voxels of a window see the most context, so they get the largest say where windows
    overlap. Each axis is clamped away from zero (not the product: a floor on the product would give
    a window's corner as much say as a neighbour's well-placed voxel), so every weight is positive.

    Examples
    --------
    >>> w = gaussian_importance((8, 8, 8))
    >>> float(w.max()), bool(w.min() > 0)
    (1.0, True)
    """
    axes = []
    for size in window:
        centre = (size - 1) / 2.0
        sigma = max(sigma_scale * size, 1e-3)
        axis = torch.exp(-0.5 * ((torch.arange(size, dtype=torch.float64) - centre) / sigma) ** 2)
        axes.append((axis / axis.max()).clamp_min(1e-3))
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).float()


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start indices of windows of ``window`` voxels covering ``length`` voxels with ``overlap``.

    Examples
    --------
    >>> window_starts(100, 40, 0.5)
    [0, 20, 40, 60]
    >>> window_starts(30, 40, 0.5)
    [0]
    """
    if length <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    count = math.ceil((length - window) / step) + 1
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


@torch.inference_mode()
def sliding_window_probabilities(model: nn.Module, image: torch.Tensor, window: Sequence[int] = (96, 96, 96),
                                 overlap: float = 0.5, batch_size: int = 2, mirror_axes: Sequence[int] = (),
                                 progress: bool = False) -> torch.Tensor:
    """Class probabilities of a whole volume from overlapping windows blended with Gaussian weights.

    Parameters
    ----------
    model
        Maps ``(B, 1, *window)`` images to ``(B, C, *window)`` logits.
    image
        ``(D, H, W)`` normalised intensities (on the model's device); padded with zeros (air) on both
        sides where it is smaller than the window.
    window, overlap, batch_size
        Window size in voxels, fraction of a window shared with its neighbour, windows per forward pass.
    mirror_axes
        Test-time augmentation: also run each window mirrored along each of these spatial axes
        (0, 1, 2) and average the probabilities.
    progress
        Show a progress bar over windows.

    Returns
    -------
    torch.Tensor
        ``(C, D, H, W)`` float32 probabilities summing to 1 over ``C``.
    """
    from tqdm.auto import tqdm

    window = tuple(int(w) for w in window)
    shape = tuple(image.shape)
    padded_shape = tuple(max(n, w) for n, w in zip(shape, window, strict=True))
    # An axis shorter than the window is centred in it (air on both sides, as MONAI pads): padding at
    # one end only shifts the scan against the U-Net's pooling grid and changed 0.5% of the labels.
    # F.pad lists the last axis first.
    before = [(m - n) // 2 for n, m in zip(shape, padded_shape, strict=True)]
    if padded_shape != shape:
        image = F.pad(image, [p for n, m, b in zip(reversed(shape), reversed(padded_shape), reversed(before), strict=True)
                              for p in (b, m - n - b)])
    device = image.device
    importance = gaussian_importance(window).to(device)
    corners = list(product(*(window_starts(n, w, overlap) for n, w in zip(padded_shape, window, strict=True))))
    totals: torch.Tensor | None = None
    weight_sum = torch.zeros(padded_shape, device=device)
    flips = [()] + [(axis + 2,) for axis in mirror_axes]  # +2: batch and channel dims come first
    bar = tqdm(total=len(corners), desc="segment", unit="window", disable=not progress, leave=False)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first:first + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True)) for corner in chunk]
        batch = torch.stack([image[s] for s in slices])[:, None]
        probs = torch.zeros(())
        for dims in flips:
            mirrored = model(batch.flip(dims) if dims else batch).float().softmax(dim=1)
            probs = probs + (mirrored.flip(dims) if dims else mirrored)
        probs = probs / len(flips)
        if totals is None:
            totals = torch.zeros((probs.shape[1], *padded_shape), device=device)
        for s, p in zip(slices, probs, strict=True):
            totals[(slice(None), *s)] += p * importance
            weight_sum[s] += importance
        bar.update(len(chunk))
    bar.close()
    probs = totals / weight_sum
    return probs[(slice(None), *(slice(b, b + n) for b, n in zip(before, shape, strict=True)))]


def head_box(image: np.ndarray, margin: int, threshold: float = 0.1) -> tuple[slice, ...] | None:
    """Where to run the network: the box around the head on the model grid, grown by ``margin`` voxels.

    The head is the largest connected component of normalised intensities above ``threshold`` (after a
    one-voxel opening, so noise specks in the air do not join it); an image with none gives the whole
    grid. Running the windows inside this box only is what keeps the time and memory of a scan bounded
    by its head, not its field of view, and keeps windows of pure air (whose instance-normalised
    features are meaningless: the shipped model called several litres of air gray matter on 384^3 and
    512^3 grids) out of the result. ``None`` when nothing is above the threshold (a blank image).

    Examples
    --------
    >>> image = np.zeros((40, 40, 40), np.float32); image[10:20, 12:30, 5:9] = 1.0
    >>> head_box(image, margin=2)
    (slice(8, 22, None), slice(10, 32, None), slice(3, 11, None))
    """
    head = ndi.binary_opening(image > threshold)
    if not head.any():
        return None
    return bounding_box(largest_component(head), margin)
