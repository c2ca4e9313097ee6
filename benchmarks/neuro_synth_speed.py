"""Speed of the neuro training ingredients on this machine: synthetic-scan generation and one training step.

Prints the median seconds per generated scan and per UNet3D training step (forward, CE + Dice loss,
backward, AdamW), plain and channels-last, with the load average: on a shared box numbers swing with
load, so compare only numbers from one run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/neuro_synth_speed.py --crop 96 96 96 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from torchsci_neuro.models import UNet3D
from torchsci_neuro.synth import SynthBrainDataset
from torchsci_neuro.task import SegmentationTask


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crop", type=int, nargs=3, default=(96, 96, 96))
    p.add_argument("--voxel-size", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    crop = tuple(args.crop)
    print(f"load average before: {os.getloadavg()}; torch threads {args.threads}; crop {crop} at {args.voxel_size} mm")

    data = SynthBrainDataset(length=1, shape=crop, voxel_size=args.voxel_size)
    np.random.seed(0)
    print(f"generate one scan: {_median_seconds(lambda: data[0], args.repeats):.3f} s")

    image, labels = data[0]
    batch = (image[None], labels[None])
    task = SegmentationTask()
    for channels_last in (False, True):
        model = UNet3D(channels_last=channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer) -> None:
            loss = task.loss(task.forward(model, batch), batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = _median_seconds(step, args.repeats)
        print(f"train step, channels_last={channels_last}: {seconds:.2f} s ({1 / seconds:.2f} it/s)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
