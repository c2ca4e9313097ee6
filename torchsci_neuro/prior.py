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
from dataclasses import dataclass, field

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
    import nibabel as nib

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


@functools.lru_cache(maxsize=1)
def _template_white_matter() -> torch.Tensor:
    """The MNI white-matter probability (nilearn's map) as 6 mm block averages, on :func:`_template_brain`'s grid."""
    import nibabel as nib

    # Only the white-matter file, read as _load_maps() reads it (the same float32 values), not all three maps.
    wm = np.asarray(nib.load(str(template_path("wm"))).dataobj, dtype=np.float32) / 255.0
    step = int(_FIT_SPACING_MM)
    shape = [n // step for n in wm.shape]
    blocks = wm[: shape[0] * step, : shape[1] * step, : shape[2] * step]
    fraction = blocks.reshape(shape[0], step, shape[1], step, shape[2], step).mean(axis=(1, 3, 5))
    return torch.from_numpy(np.ascontiguousarray(fraction, dtype=np.float32))


def _moments(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.argwhere(mask) * spacing
    return points.mean(axis=0), points.std(axis=0)


class HeaderOrientationWarning(UserWarning):
    """The scan's header gives an orientation its content disagrees with (a flipped or swapped axis)."""


#: Header errors the registration can see, as signed axis permutations of the canonical (R, A, S) axes:
#: ``matrix @ scan_axes`` gives the template's. A left-right flip is not among them: a brain is nearly
#: symmetric under it, so no content-based check can see it (SynthSeg's and every peer's blind spot too).
ORIENTATION_CANDIDATES = {
    "the anterior-posterior axis is flipped": ((1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "the superior-inferior axis is flipped": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "the anterior-posterior and superior-inferior axes are both flipped": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "the anterior-posterior and superior-inferior axes are swapped": ((1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "the left-right and anterior-posterior axes are swapped": ((0, 1, 0), (1, 0, 0), (0, 0, 1)),
    "the left-right and superior-inferior axes are swapped": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
}


@dataclass
class BrainFit:
    """The template brain affinely fitted to a brain posterior (see :func:`fit_template`).

    Attributes
    ----------
    allowed
        Boolean mask on the posterior's grid: True where brain is allowed (within the margin of the fit).
    loss
        Mean squared difference of the fitted template brain and the posterior after the fit (0 best).
    orientation
        ``None``, or which header error (a key of :data:`ORIENTATION_CANDIDATES`) fits the content
        clearly better than the header's own orientation.
    orientation_losses
        The short-fit loss of the header's orientation (``"header"``) and of each candidate.
    white_matter
        The template's white-matter probability carried onto the posterior's grid by the fit (``None`` when
        there was nothing to fit): where the scan's white matter should be, whatever its contrast.
    """

    allowed: np.ndarray
    loss: float
    orientation: str | None = None
    orientation_losses: dict[str, float] = field(default_factory=dict)
    white_matter: np.ndarray | None = None


def _adam_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, lr: float,
               step: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
    """One step of ``torch.optim.Adam`` with its defaults, in place: the operations of its single-tensor
    update in the same order, so the fit is the same to the last bit. ``torch.optim`` imports
    ``torch._dynamo`` on first use, about a CPU second of every fresh process that segments one scan."""
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr / (1 - beta1**step)
    denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


def _within(mask: np.ndarray, spacing: float, distance_mm: float) -> np.ndarray:
    """Voxels within ``distance_mm`` of ``mask`` (``mask`` included): ``distance_transform_edt(~mask) <= distance_mm``
    as a dilation by the ball of the offsets that close (the same float64 distances), about twice as fast on
    a head's box. All True (no constraint) when ``mask`` is empty, where the distance transform measured from
    a phantom voxel outside the array."""
    if not mask.any():
        return np.ones(mask.shape, dtype=bool)
    radius = int(distance_mm // spacing)
    offsets = np.indices((2 * radius + 1,) * 3) - radius
    ball = np.sqrt(((offsets * float(spacing)) ** 2).sum(axis=0)) <= distance_mm
    return ndi.binary_dilation(mask, ball)


def fit_brain_prior(brain_probability: np.ndarray, spacing: float, margin_mm: float = 6.0,
                    iterations: int = 80) -> np.ndarray:
    """Voxels where a brain can be, from the brain posterior ``(D, H, W)`` on a grid of ``spacing`` mm.

    Parameters
    ----------
    brain_probability
        Posterior of "not background" on the model grid, axes in RAS order (as
        :func:`~torchsci_neuro.grid.canonical` gives them).
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
    return fit_template(brain_probability, spacing, margin_mm, iterations, check_orientation=False).allowed


def fit_template(brain_probability: np.ndarray, spacing: float, margin_mm: float = 6.0, iterations: int = 80,
                 check_orientation: bool = True, orientation_iterations: int = 30,
                 orientation_ratio: float = 0.7) -> BrainFit:
    """Fit the MNI brain to a brain posterior: the allowed region of :func:`fit_brain_prior`, and a header check.

    The header check fits the template briefly (``orientation_iterations`` Adam steps from matched
    centroids and sizes) in the orientation the header gives and in each of
    :data:`ORIENTATION_CANDIDATES`; a candidate whose loss is below ``orientation_ratio`` times the
    header's says the header disagrees with the content. The allowed region always follows the header
    (a warning, not a silent fix: which of the two is wrong is the user's call).

    Examples
    --------
    >>> grid = np.zeros((60, 70, 60), np.float32); grid[10:50, 10:60, 10:50] = 1.0
    >>> fit = fit_template(grid, 2.0, check_orientation=False)
    >>> bool(fit.allowed[30, 35, 30]), fit.orientation is None
    (True, True)
    """
    brain = brain_probability > 0.5
    if brain.sum() * spacing ** 3 / 1000.0 < 100.0:
        return BrainFit(np.ones(brain_probability.shape, dtype=bool), float("nan"))
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
    # (x, y, z) order for grid_sample, which wants (W, H, D): the flip is folded into the matrix.
    to_norm = torch.from_numpy((norm @ world_to_voxel[:3, :3])[::-1].astype(np.float32).copy())
    offset = torch.from_numpy((norm @ (world_to_voxel[:3, :3] @ t_centre + world_to_voxel[:3, 3]) - 1.0)[::-1]
                              .astype(np.float32).copy())
    moving = template[None, None]

    def warped(points: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor, image: torch.Tensor = moving,
               ) -> torch.Tensor:
        # One affine map from the posterior's mm to grid_sample's coordinates (fewer passes over the points).
        coords = torch.addmm(to_norm @ shift + offset, points, (to_norm @ linear).T)
        return F.grid_sample(image, coords.view(1, 1, 1, -1, 3), align_corners=True).view(-1)

    coarse_points = grid_points(tuple(target.shape), spacing * factor, (factor - 1) * spacing / 2)
    target_flat = target.reshape(-1)

    def fit(axes: np.ndarray, steps: int, points: torch.Tensor, goal: torch.Tensor,
            start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Adam on the affine from matched centroids and per-axis sizes (scan axis i -> template axis of
        ``axes``' row), or from ``start``; returns the affine and the loss of the last step."""
        if start is None:
            size = t_spread[:, None] / np.maximum(spread, 1e-3)[None, :]
            start = (torch.tensor(axes * size, dtype=torch.float32), torch.zeros(3))
        linear = start[0].clone().requires_grad_(True)
        shift = start[1].clone().requires_grad_(True)
        # Adam's steps are about lr in each parameter's own unit: 0.5 mm of shift, 0.005 of the matrix.
        state = [(linear, 0.005, torch.zeros_like(linear), torch.zeros_like(linear)),
                 (shift, 0.5, torch.zeros_like(shift), torch.zeros_like(shift))]
        loss = torch.zeros(())
        for step in range(1, steps + 1):
            loss = ((warped(points, linear, shift) - goal) ** 2).mean()
            grads = torch.autograd.grad(loss, [linear, shift])
            with torch.no_grad():
                for (param, lr, exp_avg, exp_avg_sq), grad in zip(state, grads, strict=True):
                    _adam_step(param, grad, exp_avg, exp_avg_sq, lr, float(step))
        return linear.detach(), shift.detach(), float(loss.detach())

    identity = np.eye(3)
    linear, shift, loss = fit(identity, iterations, coarse_points, target_flat)
    fitted = (warped(coarse_points, linear, shift) > 0.5).view(target.shape).numpy()
    # Trimmed refit: the second fit sees only the posterior near the first fit's brain (dropping the points
    # outside it gives the same loss and gradients as weighting them by zero, at a fraction of the cost).
    near = torch.from_numpy(ndi.distance_transform_edt(~fitted, sampling=spacing * factor).reshape(-1)
                            <= 2 * margin_mm)
    linear, shift, loss = fit(identity, iterations, coarse_points[near], target_flat[near], start=(linear, shift))
    orientation, losses = None, {}
    if check_orientation:
        # Short fits on a twice coarser grid (12 mm): an eighth of the points, enough to tell orientations apart.
        pooled = F.avg_pool3d(target[None, None], 2, ceil_mode=True)[0, 0]
        points = grid_points(tuple(pooled.shape), 2 * spacing * factor, (2 * factor - 1) * spacing / 2)
        for name, axes in {"header": identity, **ORIENTATION_CANDIDATES}.items():
            losses[name] = fit(np.asarray(axes, float), orientation_iterations, points, pooled.reshape(-1))[2]
        best = min(ORIENTATION_CANDIDATES, key=losses.__getitem__)
        if losses[best] < orientation_ratio * losses["header"]:
            orientation = best
    with torch.no_grad():
        points = grid_points(brain.shape, spacing, 0.0)
        full = warped(points, linear, shift).view(brain.shape).numpy() > 0.5
        white = warped(points, linear, shift, _template_white_matter()[None, None]).view(brain.shape).numpy()
    return BrainFit(_within(full, spacing, margin_mm), loss, orientation,
                    {k: round(v, 5) for k, v in losses.items()}, white)
