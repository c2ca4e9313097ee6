"""Trained D-MPNNs as one model that :func:`torchsci_chem.predict` gives intervals and a domain flag for.

What the shipped property models are (torchsci_chem/weights/MODEL_CARD*.md), for a user's own data: the
members' mean is the prediction; the validation split calibrates split-conformal intervals
(:mod:`torchsci_chem.uncertainty`; single-target regression) and the in-domain threshold (the Tanimoto
similarity to the nearest training molecule that ``domain_coverage`` of validation molecules reach,
:mod:`torchsci_chem.domain`); the training molecules' fingerprints are stored for that similarity. The test
split is only measured (:func:`evaluate_ensemble`). ``torchsci chem train`` does all of this and writes
``model.ckpt``; in Python::

    members = [torchsci.load_model(run.best_checkpoint) for run in runs]   # trained on data.train
    ensemble = calibrated_ensemble(members, data)                          # data: the chem DataSplits
    torchsci.save_model(ensemble, "model.ckpt")
    torchsci_chem.predict(smiles, model="model.ckpt", interval=0.9)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import torchsci
from torchsci.errors import ConfigError


def _dmpnn_kwargs(members: Sequence[nn.Module]) -> dict[str, Any]:
    specs = [getattr(m, "torchsci_spec", None) for m in members]
    if not members or any(not s or s.get("name") != "chem/dmpnn" for s in specs):
        raise ConfigError("calibrated_ensemble: every member must be a 'chem/dmpnn' built by torchsci.create_model "
                          "or torchsci.load_model (other models have no ensemble form).")
    kwargs = dict(specs[0]["kwargs"])
    if any(s["kwargs"] != kwargs for s in specs[1:]):
        raise ConfigError("calibrated_ensemble: the members were built with different arguments; an ensemble needs "
                          "one architecture, target scaling and feature set.")
    return kwargs


def calibrated_ensemble(members: Sequence[nn.Module], data: Any, *, intervals: bool = True,
                        domain_coverage: float = 0.95) -> nn.Module:
    """Trained D-MPNN ``members`` as one ``chem/dmpnn_ensemble`` calibrated on ``data.val``, its domain ``data.train``.

    Parameters
    ----------
    members
        D-MPNNs of one architecture trained on ``data.train`` (from :func:`torchsci.create_model` or
        :func:`torchsci.load_model`); one member gives intervals of one width for every molecule, several
        give wider ones where they disagree.
    data
        The :class:`~torchsci.DataSplits` of a chem dataset the members were trained on; its validation molecules
        must not have been trained on.
    intervals
        Calibrate conformal intervals (single-target regression only; ignored otherwise). ``False``: only the
        applicability domain.
    domain_coverage
        Fraction of validation molecules that the in-domain threshold keeps in the domain.

    Returns
    -------
    torch.nn.Module
        A ``chem/dmpnn_ensemble`` in eval mode, with conformal scores (single-target regression only: at
        least 10 validation molecules with a measured target) and the training molecules' fingerprints.

    Examples
    --------
    >>> import torch, torchsci
    >>> from torchsci.registry import registry
    >>> from torchsci_chem.ensembles import calibrated_ensemble
    >>> data = registry.create_dataset("chem/esol", split="random", seed=0)
    >>> member = torchsci.create_model("chem/dmpnn", hidden=16, ffn_hidden=16, seed=0, **data.model_kwargs)
    >>> ensemble = calibrated_ensemble([member], data)
    >>> ensemble.calibration_size, ensemble.domain_size, 0 < float(ensemble.domain_threshold) < 1
    (113, 902, True)
    """
    from torchsci_chem.domain import choose_threshold, nearest_similarity, packed_fingerprints
    from torchsci_chem.featurize import parse_smiles
    from torchsci_chem.inference import _extra_spec, _prepare_and_run
    from torchsci_chem.preparation import Needs
    from torchsci_chem.uncertainty import calibrate, spread

    kwargs = _dmpnn_kwargs(members)
    steps = tuple(kwargs.get("standardize", ()))
    regression = kwargs.get("task_kind", "regression") == "regression"
    y_val = np.asarray(data.val.targets, dtype=np.float64)
    measured = int(np.isfinite(y_val[:, 0]).sum()) if y_val.shape[1] == 1 else 0
    calibrate_here = intervals and regression and y_val.shape[1] == 1
    if calibrate_here and measured < 10:
        raise ConfigError(f"calibrated_ensemble: {measured} validation molecules with a measured target; conformal "
                          "intervals need at least 10 (better 100 or more): give more data or a larger validation "
                          "split.")
    train_smiles = list(data.train.smiles)
    ensemble = torchsci.create_model("chem/dmpnn_ensemble", members=len(members),
                                     calibration_size=measured if calibrate_here else 0,
                                     domain_size=len(train_smiles), **kwargs).eval()
    for target, member in zip(ensemble.members, members, strict=True):
        target.load_state_dict(member.state_dict())
    fingerprints = packed_fingerprints([parse_smiles(s, steps) for s in train_smiles])
    ensemble.domain_fingerprints.copy_(torch.from_numpy(fingerprints))
    # one pass over the validation molecules, as predict() makes it: fingerprints and every member's outputs
    rows = _prepare_and_run(ensemble, list(data.val.smiles), Needs(steps, fingerprints=True, extra=_extra_spec(ensemble)),
                            n_jobs=1, batch_size=64, on_invalid="raise", progress=False)
    ensemble.domain_threshold.fill_(choose_threshold(nearest_similarity(rows.fingerprints, fingerprints),
                                                     domain_coverage))
    if calibrate_here:
        mean, sigma = spread(rows.each, rows.variances)
        scores, beta = calibrate(y_val[:, 0], mean[:, 0], sigma[:, 0])
        ensemble.conformal_scores.copy_(torch.from_numpy(scores))
        ensemble.conformal_beta.fill_(beta)
    return ensemble


def evaluate_ensemble(ensemble: nn.Module, part: Any, level: float = 0.9) -> dict[str, float]:
    """Held-out figures of a :func:`calibrated_ensemble` on a split ``part`` (e.g. ``data.test``).

    Returns ``molecules``, ``in_domain`` (fraction) and, for a calibrated single-target regression model,
    ``rmse``, ``mae``, ``coverage`` (fraction of measured targets inside the ``level`` intervals) and
    ``mean_width``; molecules without a measured target count only for ``in_domain``.

    Examples
    --------
    >>> from torchsci.registry import registry
    >>> from torchsci_chem.ensembles import evaluate_ensemble
    >>> import torchsci_chem.inference as inference
    >>> data = registry.create_dataset("chem/esol", split="random", seed=0, extra="rdkit2d-v1",
    ...                                standardize=inference.load("esol").members[0].standardize)
    >>> figures = evaluate_ensemble(inference.load("esol"), data.test)
    >>> figures["molecules"], round(figures["rmse"], 3), round(figures["coverage"], 3)
    (113, 0.571, 0.912)
    """
    from torchsci_chem.inference import predict

    smiles = list(part.smiles)
    calibrated = bool(getattr(ensemble, "calibration_size", 0))
    out = predict(smiles, model=ensemble, details=True, interval=level if calibrated else None, on_invalid="skip")
    figures: dict[str, float] = {"molecules": len(smiles)}
    if getattr(ensemble, "domain_size", 0):
        figures["in_domain"] = float(np.mean(out.in_domain))
    if calibrated:
        y = np.asarray(part.targets, dtype=np.float64)[:, 0]
        keep = np.isfinite(y) & np.isfinite(out.value.reshape(-1))
        mean, lower, upper = (a.reshape(-1)[keep] for a in (out.value, out.lower, out.upper))
        y = y[keep]
        figures.update(rmse=float(np.sqrt(np.mean((mean - y) ** 2))), mae=float(np.mean(np.abs(mean - y))),
                       coverage=float(np.mean((y >= lower) & (y <= upper))), mean_width=float(np.mean(upper - lower)))
    return figures
