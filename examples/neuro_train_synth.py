"""Train the neuro/unet3d tissue segmenter on synthetic scans generated from the MNI152 template.

One command both starts and resumes the run (``resume="last"``): re-run it with the same settings and it
continues from the newest checkpoint in ``--run-dir``. Validation is on a FIXED set of synthetic scans
(seeded): it measures how well the model learns the generator's task, not accuracy on real scans.

Example (a short timing run, then the long run at low priority)::

    PYTHONPATH=. OMP_NUM_THREADS=1 python examples/neuro_train_synth.py --run-dir /tmp/neuro-timing --max-steps 20
    nohup nice -n 19 env OMP_NUM_THREADS=1 python examples/neuro_train_synth.py > train.log 2>&1 &

The shipped weights came from two stages (see torchsci_neuro/weights/MODEL_CARD.md): stage 1 ran the
defaults (a 10000-step cosine schedule) and was stopped at step 1500; stage 2 starts from its weights with
a short cosine schedule that anneals to zero and up-weights CSF, which stage 1 had not learnt::

    python examples/neuro_train_synth.py --run-dir runs/stage1  # stopped at step 1500
    python examples/neuro_train_synth.py --run-dir runs/stage2 --init-from runs/stage1/checkpoints/step-000001500.ckpt \
        --max-steps 1200 --lr 5e-4 --class-weights 1 3 1 1 --seed 1

Fine-tuning the shipped weights with real full-head anatomy (issue 12): half of the training scans are
drawn from a real full-head T1 (pydeface's average head, from its wheel) labelled by
``templates.real_head_labels`` with deepbet's brain mask of it (deepbet runs in a benchmark venv, never
a dependency; see benchmarks/README.md), so skull base, neck, orbits and dura are seen as background::

    pip download --no-deps pydeface==2.1.0 -d /tmp/peers/pydeface && (cd /tmp/peers/pydeface && unzip -oq *.whl)
    /root/bench-venvs/monai/bin/python -c "from deepbet import run_bet; run_bet( \
        ['/tmp/peers/pydeface/pydeface/data/mean_reg2mean.nii.gz'], \
        mask_paths=['/tmp/peers/masks/pydeface_mask.nii.gz'], no_gpu=True)"
    OMP_NUM_THREADS=1 PYTHONPATH=. python examples/neuro_train_synth.py --run-dir runs/ft1 --init-pretrained \
        --real-head /tmp/peers/pydeface/pydeface/data/mean_reg2mean.nii.gz /tmp/peers/masks/pydeface_mask.nii.gz \
        --p-real-head 0.5 --lr 3e-4 --max-steps 450 --class-weights 1 3 1 1 --seed 3 --val-samples 4 \
        --samples-per-epoch 150 --checkpoint-every 25 --log-every 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import torchsci
from torchsci_neuro.synth import FixedSynthDataset, SynthBrainDataset
from torchsci_neuro.task import SegmentationTask
from torchsci_neuro.templates import real_head_labels

DEFAULT_RUN_DIR = Path("/root/torchsci-neuro-runs/synth_tissue")  # outside any work tree: survives checkouts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings; the defaults are those of the long CPU run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--samples-per-epoch", type=int, default=400)
    p.add_argument("--val-samples", type=int, default=16)
    p.add_argument("--val-seed", type=int, default=20240)
    p.add_argument("--crop", type=int, nargs=3, default=(96, 96, 96), help="voxels (R, A, S)")
    p.add_argument("--voxel-size", type=float, default=2.0, help="mm")
    p.add_argument("--channels", type=int, nargs="+", default=(8, 16, 32, 64))
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="plain NCDHW layout (channels-last is about 25%% faster on CPU)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the model")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from the weights of this checkpoint (a second, fine-tuning stage)")
    p.add_argument("--class-weights", type=float, nargs=4, default=None,
                   help="cross-entropy weights of background, CSF, GM, WM")
    p.add_argument("--init-pretrained", action="store_true",
                   help="start from the shipped neuro/unet3d-tissue weights (fine-tuning them)")
    p.add_argument("--real-head", type=Path, nargs=2, action="append", default=[], metavar=("IMAGE", "BRAIN_MASK"),
                   help="a real full-head T1 and its brain mask as a second label source "
                        "(templates.real_head_labels); repeatable")
    p.add_argument("--p-real-head", type=float, default=0.5, help="share of training scans drawn from --real-head")
    p.add_argument("--boundary-weight", type=float, default=0.0,
                   help="extra cross-entropy weight of the voxels near the brain's edge (SegmentationTask)")
    p.add_argument("--boundary-width", type=int, default=2, help="half-width of that band, in voxels")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> torchsci.FitResult:
    """Build data, model and task from the arguments and run (or resume) training."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    crop = tuple(args.crop)
    started = time.perf_counter()
    real_heads = [real_head_labels(image, mask) for image, mask in args.real_head]
    train = SynthBrainDataset(length=args.samples_per_epoch, shape=crop, voxel_size=args.voxel_size,
                              real_heads=real_heads, p_real_head=args.p_real_head)
    val = FixedSynthDataset(args.val_samples, seed=args.val_seed, shape=crop, voxel_size=args.voxel_size)
    print(f"template and {args.val_samples} synthetic validation scans ready in {time.perf_counter() - started:.1f} s",
          flush=True)
    model = torchsci.create_model("neuro/unet3d", channels=list(args.channels),
                                  channels_last=args.channels_last, seed=args.seed)
    if args.init_pretrained:
        model.load_state_dict(torchsci.create_model("neuro/unet3d-tissue", pretrained=True).state_dict())
        print("weights from the shipped neuro/unet3d-tissue", flush=True)
    if args.init_from is not None:
        torchsci.checkpoint.load_weights(model, args.init_from)
        print(f"weights from {args.init_from}", flush=True)
    trainer = torchsci.Trainer(
        max_epochs=10**9,  # max_steps ends the run; epochs only pace validation
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        num_workers=args.workers,
        optimizer="adamw",
        lr=args.lr,
        scheduler="cosine",
        device="cpu",
        seed=args.seed,
        run_dir=args.run_dir,
        checkpoint_every_n_steps=args.checkpoint_every,
        log_every_n_steps=args.log_every,
        tensorboard=False,
    )
    result = trainer.fit(model, SegmentationTask(class_weights=args.class_weights, boundary_weight=args.boundary_weight,
                                                    boundary_width=args.boundary_width), train, val, resume="last")
    print(f"done: best {result.best_score} at {result.best_checkpoint}; last {result.last_checkpoint}", flush=True)
    return result


if __name__ == "__main__":
    main()
