"""``torchsci neuro ...`` shell commands, and the files they write beside the labels (volumes, QC image)."""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from torchsci.errors import DataError
from torchsci_neuro.inference import LABEL_NAMES, TASKS, label_volumes, segment
from torchsci_neuro.io import Scan, load_scan
from torchsci_neuro.quality import QUALITY_THRESHOLD, LowQualityWarning


def write_volumes(labels: nib.spatialimages.SpatialImage, task: str, path: str | Path) -> Path:
    """Write ``label,name,voxels,volume_ml`` rows (one per label, background excluded) to a CSV file.

    Labels from :func:`~torchsci_neuro.inference.segment` with a quality score add a ``quality_score``
    column (the scan's score on every row), so a table of many scans can be filtered on it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = label_volumes(labels, task)
    fields = ["label", "name", "voxels", "volume_ml"]
    quality = labels.extra.get("quality") if hasattr(labels, "extra") else None
    if quality is not None:
        fields.append("quality_score")
        rows = [{**row, "quality_score": quality["score"]} for row in rows]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_probabilities(probs: np.ndarray, labels: nib.spatialimages.SpatialImage, path: str | Path) -> Path:
    """Write ``(C, X, Y, Z)`` class posteriors as a 4D float32 NIfTI (classes last) on the labels' grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.moveaxis(probs, 0, -1).astype(np.float32), labels.affine, labels.header.copy())
    image.set_data_dtype(np.float32)
    nib.save(image, path)
    return path


def write_qc(scan: str | Path | nib.spatialimages.SpatialImage | Scan, labels: nib.spatialimages.SpatialImage, task: str,
             path: str | Path) -> Path:
    """Overlay the labels on three orthogonal slices through the brain's centre and save a PNG.

    Both images are shown in RAS order (sagittal, coronal, axial; left of the brain on the image's left
    in coronal and axial views), so the picture reads the same whatever the file's orientation.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    image = load_scan(scan)
    ornt = nib.orientations.io_orientation(image.affine)
    data = nib.orientations.apply_orientation(image.data, ornt)
    label_data = nib.orientations.apply_orientation(np.asarray(labels.dataobj).reshape(image.shape), ornt)
    foreground = np.argwhere(label_data > 0)
    centre = foreground.mean(axis=0).round().astype(int) if len(foreground) else np.array(data.shape) // 2
    low, high = np.percentile(data, [0.5, 99.5])
    colours = ListedColormap(["#00000000", "#1f77b4", "#ff7f0e", "#2ca02c"][: len(LABEL_NAMES[task])])
    views = [("sagittal", data[centre[0]], label_data[centre[0]]),
             ("coronal", data[:, centre[1]], label_data[:, centre[1]]),
             ("axial", data[:, :, centre[2]], label_data[:, :, centre[2]])]
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, slab, slab_labels) in zip(axes, views, strict=True):
        ax.imshow(slab.T, cmap="gray", origin="lower", vmin=low, vmax=high)
        overlay = np.ma.masked_equal(slab_labels.T, 0)
        ax.imshow(overlay, cmap=colours, origin="lower", alpha=0.45, vmin=0, vmax=len(LABEL_NAMES[task]) - 1,
                  interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    names = ", ".join(f"{i} {n}" for i, n in enumerate(LABEL_NAMES[task]) if i > 0)
    figure.suptitle(f"{image.source}: {task} ({names})", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _cmd_segment(args: argparse.Namespace) -> int:
    scan = load_scan(args.scan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowQualityWarning)  # reported below, once, in the command's words
        result = segment(scan, task=args.task, device=args.device, model=args.model, mirror=args.mirror,
                         overlap=args.overlap, batch_size=args.batch_size, precision=args.precision,
                         progress=not args.quiet, probabilities=bool(args.probabilities))
    labels, probs = result if args.probabilities else (result, None)
    quality = labels.extra.get("quality")
    if quality is not None:
        low = quality["score"] < QUALITY_THRESHOLD
        print(f"{args.scan}: quality score {quality['score']:.2f} (threshold {QUALITY_THRESHOLD}; brain "
              f"{quality['brain_ml']:.0f} mL, mean posterior {quality['mean_confidence']:.2f}, CSF/GM/WM intensity "
              f"{quality['csf_intensity']:.2f}/{quality['gm_intensity']:.2f}/{quality['wm_intensity']:.2f})"
              + (": WARNING, this does not look like a T1-weighted brain scan the model can segment; labels and "
                 "volumes are not to be trusted" if low else ""), file=sys.stderr)
        if low and args.strict:
            raise DataError(f"{args.scan}: quality score {quality['score']:.2f} is below {QUALITY_THRESHOLD} and "
                            "--strict was given, so nothing was written; check that the file is a T1-weighted "
                            "brain scan, or drop --strict to write the labels anyway.")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    nib.save(labels, output)
    written = [str(output)]
    if probs is not None:
        written.append(str(write_probabilities(probs, labels, args.probabilities)))
    if args.volumes:
        written.append(str(write_volumes(labels, args.task, args.volumes)))
    if args.qc:
        written.append(str(write_qc(scan, labels, args.task, args.qc)))
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``torchsci neuro segment`` (called through :meth:`torchsci.registry.Registry.register_command`)."""
    p = subparsers.add_parser("segment", help="segment a T1-weighted brain scan (NIfTI) into labels on its grid",
                              description="Brain mask or tissue labels (0 background, 1 CSF, 2 GM, 3 WM) "
                                          "on the input's own grid.")
    p.add_argument("scan", help="input .nii or .nii.gz (3D, or 4D with one volume)")
    p.add_argument("-o", "--output", required=True, help="output labels .nii.gz")
    p.add_argument("--task", choices=TASKS, default="tissue")
    p.add_argument("--model", default=None,
                   help="torchsci checkpoint (.ckpt) to use; default: the shipped weights")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda:0, ...")
    p.add_argument("--volumes", default=None, help="also write per-label volumes in mL to this CSV")
    p.add_argument("--qc", default=None, help="also write an overlay on three orthogonal slices to this PNG")
    p.add_argument("--mirror", action="store_true", help="left-right mirror test-time augmentation (2x slower)")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap fraction")
    p.add_argument("--batch-size", type=int, default=2, help="windows per forward pass")
    p.add_argument("--precision", default="auto", choices=("auto", "32", "bf16-mixed", "64"),
                   help="auto: bfloat16 where the hardware has it natively (about 1.8x faster); 32 for "
                        "labels that do not depend on the machine")
    p.add_argument("--probabilities", default=None,
                   help="also write the class posteriors (4D float32, classes last) on the input grid to this NIfTI")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2, nothing written) when the scan's quality score is below the threshold")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_segment)
