"""Time ``torchsci_neuro.segment()`` end to end on the MNI152 2009a 1 mm T1 (197x233x189, shipped in nilearn).

Each run is a fresh process (so peak RSS is that of one segmentation, model loading and reading included);
the script reports the median wall time of ``segment()`` over the runs, the largest peak RSS, and the
Dice between the brain mask (labels > 0) and the MNI brain (T1 > threshold).

The model is a CHECKPOINT FROM A PARTLY TRAINED RUN of the synthetic-only recipe
(``torchsci train experiment=neuro/synth_tissue``), not a shipped model: no model ships yet. The MNI
T1 is the template the generator's label maps come from, so this Dice is not a held-out accuracy.

Command (2 shared CPU cores, one thread)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/neuro_segment.py \\
        --checkpoint /root/torchsci-neuro-runs/synth_tissue/checkpoints/last.ckpt --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def mni_t1() -> Path:
    import nilearn  # noqa: PLC0415

    return Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def one_run(checkpoint: str, task: str, mirror: bool, threads: int) -> dict:
    """Segment once in this process; returns seconds, peak RSS and the Dice against the MNI brain."""
    import nibabel as nib  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from torchsci_neuro import segment  # noqa: PLC0415

    torch.set_num_threads(threads)
    path = mni_t1()
    started = time.perf_counter()
    labels = segment(path, task=task, model=checkpoint, device="cpu", mirror=mirror)
    seconds = time.perf_counter() - started
    predicted = np.asarray(labels.dataobj) > 0
    t1 = np.asarray(nib.load(path).dataobj)
    reference = t1 > 0  # the template is skull-stripped: every non-zero voxel is brain
    dice = 2.0 * float((predicted & reference).sum()) / float(predicted.sum() + reference.sum())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mib": rss_mib, "dice_brain_vs_mni": dice,
            "counts": np.bincount(np.asarray(labels.dataobj).ravel(), minlength=4).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", default="tissue", choices=["tissue", "brain_mask"])
    parser.add_argument("--mirror", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.checkpoint, args.task, args.mirror, args.threads)))
        return
    results = []
    for _ in range(args.runs):
        cmd = [sys.executable, __file__, "--one", "--checkpoint", args.checkpoint, "--task", args.task,
               "--threads", str(args.threads)] + (["--mirror"] if args.mirror else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = [r["seconds"] for r in results]
    print(f"segment(task={args.task!r}, mirror={args.mirror}) on MNI152 1 mm 197x233x189, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  runs (s): {', '.join(f'{s:.2f}' for s in seconds)}; median {statistics.median(seconds):.2f} s")
    print(f"  peak RSS: {max(r['peak_rss_mib'] for r in results):.0f} MiB")
    print(f"  brain Dice vs MNI (T1 > 0): {results[0]['dice_brain_vs_mni']:.4f}; label counts {results[0]['counts']}")
    print("  model: partly trained, synthetic-only checkpoint; not the shipped model (none ships yet)")


if __name__ == "__main__":
    main()
