"""Jets/s of the physics loaders vs a hand-written uproot + numpy padding loop, in one run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/physics_loader.py --copies 8

The input is uproot-issue96.root listed ``--copies`` times (13,607 events, 2 jets each, 6 tracks).
All three readers produce the same thing: per jet, 8 track features padded to 6 with a mask, label
and weight. Rounds are interleaved so machine load hits all readers alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import awkward as ak
import numpy as np
import torch
import uproot
import vector

from torchsci_physics.data import RootDataset, RootStream
from torchsci_physics.datasets import QG_ISSUE96, issue96_path

vector.register_awkward()


def hand_written(files: list[str], batch_size: int) -> int:
    """What one writes by hand: uproot.iterate, four-vectors, pad, stack, batch."""
    jets = 0
    for arrays in uproot.iterate([f + ":tree" for f in files], step_size=100_000,
                                 filter_name=["jet*TrksP4", "jet*P4", "jet*TrksChg", "jet*ID", "jet*ChgMult"]):
        for j in ("jet1", "jet2"):
            keep = arrays[f"{j}ID"] > 0
            p, a, q = arrays[f"{j}TrksP4"][keep], arrays[f"{j}P4"][keep], arrays[f"{j}TrksChg"][keep]
            p4 = vector.zip({"px": p.fP.fX, "py": p.fP.fY, "pz": p.fP.fZ, "E": p.fE})
            ax = vector.zip({"px": a.fP.fX, "py": a.fP.fY, "pz": a.fP.fZ, "E": a.fE})
            order = ak.argsort(p4.pt, ascending=False)
            p4, q = p4[order], q[order]
            cols = [p4.eta - ax.eta, p4.deltaphi(ax), np.log(p4.pt), np.log(p4.E), np.log(p4.pt / ax.pt),
                    np.log(p4.E / ax.E), p4.deltaR(ax), q]
            x = np.stack([ak.to_numpy(ak.fill_none(ak.pad_none(c, 6, clip=True), 0)) for c in cols], -1).astype(np.float32)
            mask = np.arange(6) < np.minimum(ak.to_numpy(ak.num(p4)), 6)[:, None]
            label = ak.to_numpy(arrays[f"{j}ID"][keep] == 21).astype(np.int64)
            for s in range(0, len(x), batch_size):
                batch = (torch.from_numpy(x[s:s + batch_size]), torch.from_numpy(mask[s:s + batch_size]),
                         torch.from_numpy(label[s:s + batch_size]))
                jets += len(batch[0])
    return jets


def in_memory(files: list[str], batch_size: int) -> int:
    data = RootDataset({**QG_ISSUE96, "files": files, "splits": {}})
    return epoch_from_memory(data, batch_size)


def epoch_from_memory(data: RootDataset, batch_size: int) -> int:
    order = np.random.permutation(len(data))
    return sum(len(data.__getitems__(order[s:s + batch_size])["label"]) for s in range(0, len(data), batch_size))


def streaming(files: list[str], batch_size: int, workers: int) -> int:
    stream = RootStream({**QG_ISSUE96, "files": files, "splits": {}}, buffer_size=50_000)
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, collate_fn=stream.collate, num_workers=workers)
    return sum(len(b["label"]) for b in loader)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    files = [issue96_path()] * args.copies
    readers = {"hand-written uproot + numpy": lambda: hand_written(files, args.batch_size),
               "RootDataset (in memory; read + batches)": lambda: in_memory(files, args.batch_size),
               f"RootStream ({args.workers} workers)": lambda: streaming(files, args.batch_size, args.workers)}
    held = RootDataset({**QG_ISSUE96, "files": files, "splits": {}})
    readers["RootDataset, later epochs (batches from memory)"] = lambda: epoch_from_memory(held, args.batch_size)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in readers.items():
            start = time.perf_counter()
            jets = fn()
            rate = jets / (time.perf_counter() - start)
            best[name] = max(best.get(name, 0.0), rate)
    print(f"{args.copies} x issue96 ({args.copies * 13607} events), batch {args.batch_size}, "
          f"load average {os.getloadavg()[0]:.1f}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    base = best["hand-written uproot + numpy"]
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} jets/s | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
