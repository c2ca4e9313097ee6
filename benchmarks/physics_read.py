"""Events/s of the physics loaders vs a bare ``uproot.iterate`` + padding loop, and peak memory vs input size.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/physics_read.py --copies 16 --rounds 3

Input: ``uproot-issue96.root`` (13,607 events, two jets each, up to 6 tracks) replicated ``--copies``
times into one bigger TTree written by uproot (``mktree`` + ``extend``, uproot's default ZLIB
compression) in a temporary directory. TLorentzVector objects cannot be written by uproot, so the
copy stores their components as flat (jets) and jagged (tracks) branches, as many ntuples do.

Every reader produces the same examples: per jet (two rows per event, ``jetID > 0``), 8 track
features padded to 6 with a mask (leading tracks by pT), 3 jet features and the label. Rounds are
interleaved so machine load hits all readers alike; the best round counts.

Peak memory: each (reader, input) pair runs in a fresh subprocess that reports its peak resident
set (``VmHWM`` of ``/proc/self/status``; ``getrusage``'s ``ru_maxrss`` would carry over the parent's
peak through fork + exec on Linux) after one full pass, for inputs growing in file size
(``--memory-copies``) and in number of files (the biggest file listed ``--memory-files`` times).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import awkward as ak
import numpy as np
import torch
import uproot
import vector

from torchsci.data import make_loader
from torchsci_physics.data import RootDataset, RootStream
from torchsci_physics.datasets import RELATIVE_FEATURES, issue96_path

vector.register_awkward()
STEP = 100_000
JETS = ("jet1", "jet2")

SPEC = {
    "tree": "events",
    "objects": list(JETS),
    "features": {"log_pt": "log({obj}_pt)", "eta": "{obj}_eta", "charged_multiplicity": "{obj}_nch"},
    "particles": {
        "p4": {"px": "{obj}_trk_px", "py": "{obj}_trk_py", "pz": "{obj}_trk_pz", "E": "{obj}_trk_E"},
        "axis": 'ak.zip({"pt": {obj}_pt, "eta": {obj}_eta, "phi": {obj}_phi, "mass": {obj}_mass}, with_name="Momentum4D")',
        "max_particles": 6,
        "features": {**RELATIVE_FEATURES, "charge": "{obj}_trk_charge"},
    },
    "label": "{obj}_id == 21",
    "classes": ["quark", "gluon"],
    "selection": "{obj}_id > 0",
    "step_size": STEP,
}


def make_file(copies: int, directory: str) -> str:
    """issue96 replicated ``copies`` times as one uproot-written TTree ``events``; reused if present."""
    path = os.path.join(directory, f"issue96_x{copies}.root")
    if os.path.exists(path):
        return path
    a = uproot.open(issue96_path())["tree"].arrays(["EventNumber", *(f"{j}{b}" for j in JETS for b in
                                                     ("P4", "TrksP4", "TrksChg", "ID", "ChgMult"))])
    columns: dict[str, object] = {"event": ak.to_numpy(a.EventNumber).astype(np.int64)}
    for j in JETS:
        jet = vector.zip({"px": a[f"{j}P4"].fP.fX, "py": a[f"{j}P4"].fP.fY, "pz": a[f"{j}P4"].fP.fZ, "E": a[f"{j}P4"].fE})
        columns.update({f"{j}_pt": jet.pt, f"{j}_eta": jet.eta, f"{j}_phi": jet.phi, f"{j}_mass": jet.tau,
                        f"{j}_id": a[f"{j}ID"], f"{j}_nch": a[f"{j}ChgMult"]})
        trk = a[f"{j}TrksP4"]
        tracks = {"px": trk.fP.fX, "py": trk.fP.fY, "pz": trk.fP.fZ, "E": trk.fE, "charge": a[f"{j}TrksChg"]}
        columns[f"{j}_trk"] = ak.zip({k: ak.values_astype(v, np.float32) for k, v in tracks.items()})
    for k, v in columns.items():
        if isinstance(v, ak.Array) and v.ndim == 1:
            v = ak.to_numpy(v)
            columns[k] = v.astype(np.float32) if v.dtype == np.float64 else v
    tmp = path + ".part"
    with uproot.recreate(tmp) as f:
        f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in columns.items()})
        for _ in range(copies):
            f["events"].extend(columns)
    os.replace(tmp, path)
    return path


def bare(files: list[str], batch_size: int) -> int:
    """What one writes by hand: uproot.iterate, four-vectors, sort by pT, pad, stack, batch."""
    jets = 0
    branches = [f"{j}_{b}" for j in JETS for b in ("pt", "eta", "phi", "mass", "id", "nch", "trk_px", "trk_py",
                                                   "trk_pz", "trk_E", "trk_charge")]
    for a in uproot.iterate([f + ":events" for f in files], branches, step_size=STEP, library="ak"):
        for j in JETS:
            keep = a[f"{j}_id"] > 0
            t = {b: a[f"{j}_trk_{b}"][keep] for b in ("px", "py", "pz", "E", "charge")}
            p4 = vector.zip({"px": t["px"], "py": t["py"], "pz": t["pz"], "E": t["E"]})
            ax = vector.zip({"pt": a[f"{j}_pt"][keep], "eta": a[f"{j}_eta"][keep], "phi": a[f"{j}_phi"][keep],
                             "mass": a[f"{j}_mass"][keep]})
            order = ak.argsort(p4.pt, ascending=False)
            p4, q = p4[order], t["charge"][order]
            cols = [p4.eta - ax.eta, p4.deltaphi(ax), np.log(p4.pt), np.log(p4.E), np.log(p4.pt / ax.pt),
                    np.log(p4.E / ax.E), p4.deltaR(ax), q]
            x = np.stack([ak.to_numpy(ak.fill_none(ak.pad_none(c, 6, clip=True), 0)) for c in cols], -1).astype(np.float32)
            mask = np.arange(6) < np.minimum(ak.to_numpy(ak.num(p4)), 6)[:, None]
            feats = np.stack([np.log(ak.to_numpy(ax.pt)), ak.to_numpy(ax.eta),
                              ak.to_numpy(a[f"{j}_nch"][keep])], -1).astype(np.float32)
            label = ak.to_numpy(a[f"{j}_id"][keep] == 21).astype(np.int64)
            for s in range(0, len(x), batch_size):
                batch = (torch.from_numpy(x[s:s + batch_size]), torch.from_numpy(mask[s:s + batch_size]),
                         torch.from_numpy(feats[s:s + batch_size]), torch.from_numpy(label[s:s + batch_size]))
                jets += len(batch[0])
    return jets


def in_memory(files: list[str], batch_size: int) -> int:
    """Read everything, then batches in file order (like the bare loop; shuffled batches cost a gather more)."""
    data = RootDataset({**SPEC, "files": files})
    return sum(len(data.__getitems__(range(s, min(s + batch_size, len(data))))["label"])
               for s in range(0, len(data), batch_size))


def streaming(files: list[str], batch_size: int, workers: int = 0) -> int:
    """As in training: chunks in shuffled order through a 50k-row shuffle buffer, the Trainer's loader, main process."""
    stream = RootStream({**SPEC, "files": files}, buffer_size=50_000)
    loader = make_loader(stream, batch_size=batch_size, train=True, seed=0, num_workers=workers)
    return sum(len(b["label"]) for b in loader)


READERS = {"bare": bare, "RootDataset": in_memory, "RootStream": streaming}


def peak_rss(reader: str, files: list[str], batch_size: int) -> dict[str, float]:
    """Run one full pass of ``reader`` in a fresh interpreter; its peak RSS in MiB and jets read."""
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); import physics_read as b; "
            f"n = b.READERS[{reader!r}]({files!r}, {batch_size}); "
            "hwm = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')); "
            "print(json.dumps({'jets': n, 'rss': hwm / 1024}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=16, help="issue96 copies in the speed file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--memory-copies", type=int, nargs="*", default=[4, 16, 64])
    parser.add_argument("--memory-files", type=int, default=4)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "torchsci-physics-read"))
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    big = make_file(args.copies, args.dir)
    files = [big]
    events = uproot.open(big)["events"].num_entries
    best: dict[str, float] = {}
    loads = []
    for _ in range(args.rounds):
        for name, fn in READERS.items():
            start = time.perf_counter()
            jets = fn(files, args.batch_size)
            best[name] = max(best.get(name, 0.0), events / (time.perf_counter() - start))
            loads.append(os.getloadavg()[0])
    print(f"speed: {os.path.basename(big)} ({events:,} events, {os.path.getsize(big) / 2**20:.0f} MiB, {jets:,} jets), "
          f"batch {args.batch_size}, best of {args.rounds}, load average {min(loads):.1f}-{max(loads):.1f}")
    print("| reader | events/s | vs bare |\n| --- | ---: | ---: |")
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} | {rate / best['bare']:.2f}x |")

    inputs = [(f"1 file x{c}", [make_file(c, args.dir)]) for c in args.memory_copies]
    last = make_file(args.memory_copies[-1], args.dir)
    inputs.append((f"{args.memory_files} files x{args.memory_copies[-1]}", [last] * args.memory_files))
    print(f"\npeak RSS (MiB), one pass in a fresh process each; load average {os.getloadavg()[0]:.1f}")
    print("| input | events | " + " | ".join(READERS) + " |\n| --- | ---: |" + " ---: |" * len(READERS))
    for label, fs in inputs:
        n = sum(uproot.open(f)["events"].num_entries for f in fs)
        rss = [peak_rss(r, fs, args.batch_size)["rss"] for r in READERS]
        print(f"| {label} | {n:,} | " + " | ".join(f"{r:,.0f}" for r in rss) + " |")


if __name__ == "__main__":
    main()
