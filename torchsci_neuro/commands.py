"""``torchsci neuro ...`` shell commands, and the files they write beside the labels (volumes, QC image)."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from torchsci.errors import ConfigError, DataError
from torchsci.io import atomic_output, check_output
from torchsci_neuro.inference import TASKS, label_volumes, segment
from torchsci_neuro.io import Scan, load_scan
from torchsci_neuro.quality import QUALITY_THRESHOLD, LowQualityWarning

NIFTI_SUFFIXES = (".nii.gz", ".nii")

def write_volumes(labels: nib.spatialimages.SpatialImage, task: str, path: str | Path,
                  inputs: Sequence[str | Path] = ()) -> Path:
    """Write ``label,name,voxels,volume_ml`` rows (one per label, background excluded) to a CSV file.

    Labels from :func:`~torchsci_neuro.inference.segment` with a quality score add a ``quality_score``
    column (the scan's score on every row), so a table of many scans can be filtered on it. The file is
    written atomically and never over one of ``inputs``.
    """
    rows = label_volumes(labels, task)
    fields = ["label", "name", "voxels", "volume_ml"]
    quality = labels.extra.get("quality") if hasattr(labels, "extra") else None
    if quality is not None:
        fields.append("quality_score")
        rows = [{**row, "quality_score": quality["score"]} for row in rows]
    with atomic_output(path, inputs, suffixes=(".csv",), what="volumes") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def write_probabilities(probs: np.ndarray, labels: nib.spatialimages.SpatialImage, path: str | Path,
                        inputs: Sequence[str | Path] = ()) -> Path:
    """Write ``(C, X, Y, Z)`` class posteriors as a 4D float32 NIfTI (classes last) on the labels' grid."""
    image = nib.Nifti1Image(np.moveaxis(probs, 0, -1).astype(np.float32), labels.affine, labels.header.copy())
    image.set_data_dtype(np.float32)
    with atomic_output(path, inputs, suffixes=NIFTI_SUFFIXES, what="probabilities") as tmp:
        nib.save(image, tmp)
    return Path(path)


def write_qc(scan: str | Path | nib.spatialimages.SpatialImage | Scan, labels: nib.spatialimages.SpatialImage, task: str,
             path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Overlay the labels on three orthogonal slices through the brain's centre and save a PNG.

    The picture of :func:`torchsci_neuro.report.qc_figure`: RAS order whatever the file's orientation,
    L/R (and P/A) markers, a colour legend, and the scan file's name (not its folder) as the title.
    Never written over one of ``inputs``.
    """
    from torchsci_neuro.report import qc_figure  # lazy: matplotlib loads here

    return qc_figure(scan, labels, task, check_output(path, inputs, suffixes=(".png",), what="QC image"))


def _is_study(args: argparse.Namespace) -> bool:
    """Several inputs, a folder, a glob, a study option or an output folder: a study; else the one-file command."""
    import glob

    inputs = args.scan
    return (len(inputs) > 1 or Path(inputs[0]).is_dir() or glob.has_magic(inputs[0]) or args.jobs != 1
            or bool(args.shard or args.report or args.participant_label or args.session_label)
            or args.output is None or Path(args.output).is_dir() or args.output.endswith(("/", os.sep)))


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text}: write it as i/n, e.g. 0/4 (SLURM: $SLURM_ARRAY_TASK_ID/4).") from None
    return index, count


def _cmd_study(args: argparse.Namespace) -> int:
    from torchsci_neuro.study import segment_study

    if args.qc:
        raise ConfigError("--qc is for one scan; a study writes every scan's QC figure under figures/ and "
                          "--report report.html puts them in one page.")
    result = segment_study(args.scan, args.output, task=args.task, model=args.model, device=args.device,
                           n_jobs=args.jobs, shard_index=_parse_shard(args.shard) if args.shard else None,
                           participant_label=args.participant_label, session_label=args.session_label,
                           interval=args.interval, table=args.volumes, report=args.report, mirror=args.mirror,
                           overlap=args.overlap, batch_size=args.batch_size, precision=args.precision,
                           progress=not args.quiet, refine=not args.no_refine)
    written = ", ".join(str(p) for p in (result.table, result.report) if p is not None)
    total = len(result.segmented) + len(result.skipped) + len(result.failed)
    print(f"{len(result.segmented)} segmented, {len(result.skipped)} already done, {len(result.failed)} failed "
          f"of {total}; wrote {written}", file=sys.stderr)
    return 1 if result.failed else 0


def _cmd_segment(args: argparse.Namespace) -> int:
    if _is_study(args):
        return _cmd_study(args)
    inputs = [args.scan[0]] + ([args.model] if args.model else [])
    # Every output is checked before the (long) segmentation, so a bad name costs seconds, not minutes.
    outputs = [(args.output, NIFTI_SUFFIXES, "labels")]
    outputs += [(args.probabilities, NIFTI_SUFFIXES, "probabilities")] if args.probabilities else []
    outputs += [(args.volumes, (".csv",), "volumes")] if args.volumes else []
    outputs += [(args.qc, (".png",), "QC image")] if args.qc else []
    for path, suffixes, what in outputs:
        check_output(path, inputs, suffixes=suffixes, what=what)
    scan = load_scan(args.scan[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowQualityWarning)  # reported below, once, in the command's words
        result = segment(scan, task=args.task, device=args.device, model=args.model, mirror=args.mirror,
                         overlap=args.overlap, batch_size=args.batch_size, precision=args.precision,
                         progress=not args.quiet, probabilities=bool(args.probabilities),
                         refine=not args.no_refine)
    labels, probs = result if args.probabilities else (result, None)
    quality = labels.extra.get("quality")
    if quality is not None:
        low = quality["score"] < QUALITY_THRESHOLD
        print(f"{args.scan[0]}: quality score {quality['score']:.2f} (threshold {QUALITY_THRESHOLD}; brain "
              f"{quality['brain_ml']:.0f} mL, mean posterior {quality['mean_confidence']:.2f}, CSF/GM/WM intensity "
              f"{quality['csf_intensity']:.2f}/{quality['gm_intensity']:.2f}/{quality['wm_intensity']:.2f})"
              + (": WARNING, this does not look like a T1-weighted brain scan the model can segment; labels and "
                 "volumes are not to be trusted" if low else ""), file=sys.stderr)
        if low and args.strict:
            raise DataError(f"{args.scan[0]}: quality score {quality['score']:.2f} is below {QUALITY_THRESHOLD} and "
                            "--strict was given, so nothing was written; check that the file is a T1-weighted "
                            "brain scan, or drop --strict to write the labels anyway.")
    with atomic_output(args.output, inputs, suffixes=NIFTI_SUFFIXES, what="labels") as tmp:
        nib.save(labels, tmp)
    written = [str(args.output)]
    if probs is not None:
        written.append(str(write_probabilities(probs, labels, args.probabilities, inputs)))
    if args.volumes:
        written.append(str(write_volumes(labels, args.task, args.volumes, inputs)))
    if args.qc:
        written.append(str(write_qc(scan, labels, args.task, args.qc, inputs)))
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``torchsci neuro segment`` (called through :meth:`torchsci.registry.Registry.register_command`)."""
    p = subparsers.add_parser("segment", help="segment a T1-weighted brain scan (NIfTI) into labels on its grid",
                              description="Brain mask or tissue labels (0 background, 1 CSF, 2 GM, 3 WM) "
                                          "on the input's own grid.")
    p.add_argument("scan", nargs="+",
                   help="input .nii or .nii.gz (3D, or 4D with one volume); for a study: several files, "
                        "quoted globs ('data/**/*.nii.gz'), a folder, or a BIDS dataset root")
    p.add_argument("-o", "--output", default=None,
                   help="output labels .nii.gz for one scan; the derivatives folder for a study (default for "
                        "a BIDS dataset: ROOT/derivatives/torchsci)")
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
    p.add_argument("--no-refine", action="store_true",
                   help="keep the network's own tissue labels (at 2 mm, resampled) instead of refining them at the "
                        "scan's resolution by its intensities; the brain mask is the same either way")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2, nothing written) when the scan's quality score is below the threshold")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    study = p.add_argument_group("study", "several scans, a folder or a BIDS dataset in; BIDS derivatives, one "
                                 "volumes table (--volumes, default OUT/volumes.tsv) and a QC report out; "
                                 "exit code 1 if any scan failed")
    study.add_argument("--jobs", type=int, default=1, help="scans at once, each with cores/jobs threads")
    study.add_argument("--shard", default=None, metavar="I/N",
                       help="only the I-th of N parts of the sorted scan list (0-based, for SLURM array jobs)")
    study.add_argument("--participant-label", nargs="+", default=None, help="BIDS subjects to do (01 or sub-01)")
    study.add_argument("--session-label", nargs="+", default=None, help="BIDS sessions to do")
    study.add_argument("--interval", choices=("posterior", "mirror", "none"), default="posterior",
                       help="each volume's interval: from the class posteriors, or from a left-right mirrored "
                            "second run (2x slower)")
    study.add_argument("--report", default=None, help="also write a self-contained HTML QC report here")
    p.set_defaults(func=_cmd_segment)
