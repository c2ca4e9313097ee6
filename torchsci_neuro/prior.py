"""Where a brain can be: the MNI152 brain, affinely fitted to the model's own brain posterior.

This layer sits between the network's posteriors and the labels. The network sometimes calls tissue
brain that no brain reaches: neck muscles under the cerebellum, the clivus, the orbits, dura over the
vertex (on the pydeface average head, 179 mL more than 10 mm outside a reference mask, up to 59 mm).
Those false positives are connected to the brain, so keeping the largest component does not remove
them. An affine fit of the template brain to the posterior does: it follows the scan's position, size
and tilt, but an affine cannot stretch the template into the neck, and a trimmed refit (only the
posterior inside the first fit's reach) keeps the outliers from pulling it. What lies more than
``margin_mm`` outside the fitted brain is called background.

The fit is contrast-agnostic (it matches the posterior, not intensities) and takes about a second on
a 4 mm grid. It is a prior, not a registration for analysis: its affine is not returned as one.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from torchsci_neuro.templates import _BRAIN_T1_THRESHOLD, template_path

_FIT_SPACING_MM = 6.0


@functools.lru_cache(maxsize=1)
def _template_brain() -> tuple[torch.Tensor, np.ndarray]:
    """The MNI brain at 6 mm (fraction of brain in each 6 mm block) and its voxel-to-world affine.

    Built from nilearn's skull-stripped MNI152 T1 by block averages, which takes a fraction of the time
    of the 1 mm tissue map (:func:`~torchsci_neuro.templates.mni_tissue_labels`).
    """
    import nibabel as nib  # noqa: PLC0415

    image = nib.load(str(template_path("t1")))
    step = int(_FIT_SPACING_MM)
    brain = np.asarray(image.dataobj) > _BRAIN_T1_THRESHOLD
    shape = [n // step for n in brain.shape]
    blocks = brain[: shape[0] * step, : shape[1] * step, : shape[2] * step]
    fraction = blocks.reshape(shape[0], step, shape[1], step, shape[2], step).mean(axis=(1, 3, 5))
    fraction = np.where(ndi.binary_fill_holes(fraction > 0.5), np.maximum(fraction, 0.5), fraction)
    affine = image.affine.copy()
    affine[:3, :3] = image.affine[:3, :3] * step
    affine[:3, 3] = image.affine[:3, :3] @ np.full(3, (step - 1) / 2.0) + image.affine[:3, 3]
    return torch.from_numpy(np.ascontiguousarray(fraction, dtype=np.float32)), affine


def _moments(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.argwhere(mask) * spacing
    return points.mean(axis=0), points.std(axis=0)


def fit_brain_prior(brain_probability: np.ndarray, spacing: float, margin_mm: float = 6.0,
                    iterations: int = 80) -> np.ndarray:
    """Voxels where a brain can be, from the brain posterior ``(D, H, W)`` on a grid of ``spacing`` mm.

    Parameters
    ----------
    brain_probability
        Posterior of "not background" on the model grid, axes in RAS order (as
        :func:`~torchsci_neuro.inference.canonical` gives them).
    spacing
        Voxel edge of that grid in mm.
    margin_mm
        How far outside the fitted template brain a brain voxel may still lie.
    iterations
        Adam steps per fit (two fits: all of the posterior, then only what lies near the first fit).

    Returns
    -------
    np.ndarray
        Boolean mask of the same shape: True where brain is allowed. All True when the posterior holds
        too little brain to fit (under 100 mL): there is nothing to constrain.

    Examples
    --------
    >>> grid = np.zeros((60, 70, 60), np.float32); grid[10:50, 10:60, 10:50] = 1.0
    >>> allowed = fit_brain_prior(grid, 2.0)
    >>> bool(allowed[30, 35, 30]), bool(allowed[0, 0, 0])
    (True, False)
    """
    brain = brain_probability > 0.5
    if brain.sum() * spacing ** 3 / 1000.0 < 100.0:
        return np.ones(brain_probability.shape, dtype=bool)
    template, template_affine = _template_brain()
    factor = max(1, round(_FIT_SPACING_MM / spacing))
    target = F.avg_pool3d(torch.from_numpy(brain_probability.astype(np.float32))[None, None], factor,
                          ceil_mode=True)[0, 0]
    centre, spread = _moments(brain, np.full(3, spacing))

    def grid_points(shape: tuple[int, ...], step: float, first: float) -> torch.Tensor:
        """mm coordinates of voxel centres relative to the posterior's centroid, ``(N, 3)``."""
        axes = [torch.arange(n, dtype=torch.float32) * step + first - float(c)
                for n, c in zip(shape, centre, strict=True)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)

    # Template side: world mm (relative to its brain's centroid) -> grid_sample's normalised coordinates.
    t_world = np.argwhere(template.numpy() > 0.5) @ template_affine[:3, :3].T + template_affine[:3, 3]
    t_centre, t_spread = t_world.mean(axis=0), t_world.std(axis=0)
    world_to_voxel = np.linalg.inv(template_affine)
    norm = np.diag(2.0 / (np.asarray(template.shape) - 1.0))
    to_norm = torch.from_numpy((norm @ world_to_voxel[:3, :3]).astype(np.float32))
    offset = torch.from_numpy((norm @ (world_to_voxel[:3, :3] @ t_centre + world_to_voxel[:3, 3]) - 1.0)
                              .astype(np.float32))
    moving = template[None, None]
    # Start: centroids matched, per-axis size ratio (the canonical axes are already R, A, S).
    linear = torch.tensor(np.diag(t_spread / np.maximum(spread, 1e-3)), dtype=torch.float32, requires_grad=True)
    shift = torch.zeros(3, requires_grad=True)

    def warped(points: torch.Tensor) -> torch.Tensor:
        world = points @ linear.T + shift
        coords = (world @ to_norm.T + offset).flip(-1)  # grid_sample wants (x, y, z) = (W, H, D)
        return F.grid_sample(moving, coords.view(1, 1, 1, -1, 3), align_corners=True).view(-1)

    coarse_points = grid_points(tuple(target.shape), spacing * factor, (factor - 1) * spacing / 2)
    target_flat = target.reshape(-1)
    weights = torch.ones_like(target_flat)
    for _ in range(2):
        # Adam's steps are about lr in each parameter's own unit: 0.5 mm of shift, 0.005 of the matrix.
        optimizer = torch.optim.Adam([{"params": [linear], "lr": 0.005}, {"params": [shift], "lr": 0.5}])
        for _ in range(iterations):
            optimizer.zero_grad()
            loss = (weights * (warped(coarse_points) - target_flat) ** 2).sum() / weights.sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            fitted = warped(coarse_points).view(target.shape).numpy() > 0.5
        # Trimmed refit: the second fit sees only the posterior near the first fit's brain.
        near = ndi.distance_transform_edt(~fitted, sampling=spacing * factor) <= 2 * margin_mm
        weights = torch.from_numpy(near.reshape(-1).astype(np.float32))
    with torch.no_grad():
        fitted = warped(grid_points(brain.shape, spacing, 0.0)).view(brain.shape).numpy() > 0.5
    return ndi.distance_transform_edt(~fitted, sampling=spacing) <= margin_mm
