"""Turn training checkpoints of the tissue U-Net into the shipped weight file, and measure it.

The weights of the last checkpoints of a run (taken while the learning rate anneals) are averaged
(stochastic weight averaging, Izmailov et al., 2018): single checkpoints of this recipe swing by several
Dice points from one hundred steps to the next, their average does not. The averaged model is measured
on three things, printed as a Markdown table for the model card:

1. the fixed synthetic validation set of the training recipe (held out: seed 20240, never trained on);
2. the MNI152 2009a T1 from nilearn's wheel, segmented with :func:`torchsci_neuro.segment`, against the
   tissue labels derived from its GM/WM probability maps. This image was never a training input (training
   images are synthesised from label maps), but its labels ARE the generator's source, so it is not an
   independent real-scan test;
3. the same T1 wrapped in a synthetic head (skull, scalp, neck, face from the generator's label map with
   T1-like intensities): a full-head check of the mask.

Then the averaged weights are written as safetensors and their sha256 printed for the registry::

    OMP_NUM_THREADS=1 PYTHONPATH=. python examples/neuro_ship_weights.py \\
        /root/torchsci-neuro-runs/keep/step-00000{09,10,11,12}00.ckpt \\
        --out torchsci_neuro/weights/unet3d-tissue.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from safetensors.torch import save_file

import torchsci
from torchsci.checkpoint import load_state
from torchsci_neuro.inference import segment
from torchsci_neuro.models import TISSUE_WEIGHTS
from torchsci_neuro.synth import FixedSynthDataset, normalise_intensity
from torchsci_neuro.task import SegmentationTask, dice_overlap, hausdorff95
from torchsci_neuro.templates import TISSUE_NAMES, mni_head_labels, mni_tissue_labels, template_path

MODEL_KWARGS = TISSUE_WEIGHTS["kwargs"]  # the registry's arguments of the shipped weights


def average_weights(checkpoints: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the model weights of ``checkpoints`` (float32, contiguous)."""
    total: dict[str, torch.Tensor] = {}
    for path in checkpoints:
        for name, tensor in load_state(path)["model"].items():
            tensor = tensor.detach().to(torch.float64)
            total[name] = total[name] + tensor if name in total else tensor.clone()
    return {name: (t / len(checkpoints)).to(torch.float32).contiguous() for name, t in total.items()}


def synthetic_scores(model: torch.nn.Module, samples: int, seed: int) -> dict[str, float]:
    """Dice per tissue and of the brain on the recipe's fixed synthetic validation scans (96^3 at 2 mm)."""
    data = FixedSynthDataset(samples, seed=seed, shape=(96, 96, 96), voxel_size=2.0)
    task = SegmentationTask()
    metrics = task.metrics()
    with torch.inference_mode():
        for i in range(len(data)):
            image, labels = data[i]
            logits = model(image[None])
            task.update_metrics(metrics, logits, (image[None], labels[None]))
    return {name: metric.compute() for name, metric in metrics.items()}


def scan_scores(labels: np.ndarray, truth: np.ndarray, voxel_size: tuple[float, ...]) -> dict[str, float]:
    """Dice and HD95 (mm) of the brain and of each tissue."""
    scores = {"dice_brain": dice_overlap(labels > 0, truth > 0), "hd95_brain": hausdorff95(labels > 0, truth > 0, voxel_size)}
    for label in (1, 2, 3):
        name = TISSUE_NAMES[label].lower()
        scores[f"dice_{name}"] = dice_overlap(labels == label, truth == label)
    scores["dice_tissue_mean"] = float(np.mean([scores[f"dice_{TISSUE_NAMES[k].lower()}"] for k in (1, 2, 3)]))
    return scores


def full_head_scan(seed: int = 7) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The MNI T1 inside the generator's synthetic head (1 mm, 197x233x259) and its tissue labels."""
    rng = np.random.RandomState(seed)
    head = mni_head_labels()
    t1 = np.asarray(nib.load(template_path("t1")).dataobj, dtype=np.float32)
    t1 = normalise_intensity(t1)
    pad = head.labels.shape[2] - t1.shape[2]
    image = np.zeros(head.labels.shape, np.float32)
    image[:, :, pad:] = t1
    # Extra-cerebral labels: extra CSF, bone, muscle, fat, cord, neck, face, eye with T1-like brightness.
    means = {4: 0.15, 5: 0.08, 6: 0.4, 7: 0.9, 8: 0.6, 9: 0.45, 10: 0.5, 11: 0.2}
    for label, mean in means.items():
        where = head.labels == label
        image[where] = mean + rng.normal(0.0, 0.04, size=int(where.sum()))
    image = np.clip(image, 0.0, None) * 600.0
    truth = np.where(head.labels <= 3, head.labels, 0).astype(np.uint8)
    return nib.Nifti1Image(image, head.affine), truth


def main(argv: list[str] | None = None) -> None:
    """Average, measure, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="write the averaged weights here")
    parser.add_argument("--val-samples", type=int, default=16)
    parser.add_argument("--val-seed", type=int, default=20240)
    args = parser.parse_args(argv)

    weights = average_weights(args.checkpoints)
    model = torchsci.create_model("neuro/unet3d", **MODEL_KWARGS)
    model.load_state_dict(weights)
    model.eval()
    print(f"averaged {len(args.checkpoints)} checkpoints: {', '.join(p.name for p in args.checkpoints)}", flush=True)

    rows: list[tuple[str, dict[str, float]]] = []
    started = time.perf_counter()
    rows.append((f"synthetic validation ({args.val_samples} scans, seed {args.val_seed}, 2 mm)",
                 synthetic_scores(model, args.val_samples, args.val_seed)))
    print(f"synthetic validation in {time.perf_counter() - started:.0f} s", flush=True)

    truth = mni_tissue_labels().labels
    started = time.perf_counter()
    labels = np.asarray(segment(template_path("t1"), model=model, device="cpu").dataobj)
    rows.append(("MNI152 2009a T1, skull-stripped, 1 mm (label source, not independent)",
                 scan_scores(labels, truth, (1.0, 1.0, 1.0))))
    print(f"MNI T1 in {time.perf_counter() - started:.0f} s", flush=True)

    image, head_truth = full_head_scan()
    started = time.perf_counter()
    labels = np.asarray(segment(image, model=model, device="cpu").dataobj)
    rows.append(("MNI T1 in a synthetic full head (skull, scalp, neck, face)", scan_scores(labels, head_truth, (1.0,) * 3)))
    print(f"full head in {time.perf_counter() - started:.0f} s", flush=True)

    keys = ["dice_brain", "dice_csf", "dice_gm", "dice_wm", "dice_tissue_mean", "hd95_brain"]
    print("\n| data | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, scores in rows:
        if "dice_tissue_mean" not in scores:
            scores["dice_tissue_mean"] = float(np.mean([scores["dice_csf"], scores["dice_gm"], scores["dice_wm"]]))
        cells = [f"{scores[k]:.3f}" if k in scores and scores[k] == scores[k] else "n/a" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # One metadata key: safetensors writes several in no fixed order, and the file's sha256 must be
        # reproducible from the same checkpoints.
        about = {"model": "neuro/unet3d", "kwargs": MODEL_KWARGS, "averaged": [p.name for p in args.checkpoints]}
        save_file(weights, str(args.out), metadata={"torchsci": json.dumps(about, sort_keys=True)})
        digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
        print(f"\nwrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), sha256 {digest}")


if __name__ == "__main__":
    main()
