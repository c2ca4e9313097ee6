"""Lab script: segment a T1-weighted scan into brain tissue, write labels, volumes (mL) and a QC picture.

The Python form of ``torchsci neuro segment scan.nii.gz -o labels.nii.gz --volumes volumes.csv --qc qc.png``:

    OMP_NUM_THREADS=1 python examples/neuro_segment.py                          # the MNI152 T1 shipped in nilearn
    OMP_NUM_THREADS=1 python examples/neuro_segment.py sub-01_T1w.nii.gz --task brain_mask --out-dir sub-01

The labels (``labels.nii.gz``) lie on the input's own grid, so they overlay the scan in any viewer.
By default the shipped pretrained model segments the scan; ``--checkpoint`` runs a model of your own
training instead (``torchsci train experiment=neuro/segment`` or ``experiment=neuro/synth_tissue``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nibabel as nib

import torchsci_neuro
from torchsci.errors import PretrainedWeightsError
from torchsci_neuro.commands import write_qc, write_volumes
from torchsci_neuro.inference import label_volumes
from torchsci_neuro.templates import template_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scan", nargs="?", help="T1-weighted .nii/.nii.gz (default: nilearn's MNI152 2009a T1)")
    parser.add_argument("--task", default="tissue", choices=["tissue", "brain_mask"])
    parser.add_argument("--checkpoint", default=None, help="a torchsci checkpoint (default: the shipped model)")
    parser.add_argument("--out-dir", default="runs/neuro_segment")
    parser.add_argument("--mirror", action="store_true", help="left-right test-time augmentation (2x slower)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    scan = Path(args.scan) if args.scan else template_path("t1")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        labels = torchsci_neuro.segment(scan, task=args.task, device=args.device, model=args.checkpoint,
                                        mirror=args.mirror, progress=True)
    except PretrainedWeightsError as error:
        raise SystemExit(f"{error}\nHere: python examples/neuro_segment.py --checkpoint run/checkpoints/best.ckpt") from None
    seconds = time.perf_counter() - start
    nib.save(labels, out / "labels.nii.gz")
    write_volumes(labels, args.task, out / "volumes.csv")
    write_qc(scan, labels, args.task, out / "qc.png")

    print(f"{scan.name}: {args.task} in {seconds:.1f} s; wrote {out}/labels.nii.gz, volumes.csv, qc.png")
    for row in label_volumes(labels, args.task):
        print(f"  {row['name']:>10}: {row['volume_ml']:8.1f} mL")


if __name__ == "__main__":
    main()
