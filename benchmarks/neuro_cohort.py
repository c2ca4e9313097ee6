"""A study of scans through ``torchsci neuro segment DIR --jobs 2`` against a shell loop of the single-scan command
and deepbet's folder mode, in one run: scans per minute and peak memory.

The cohort is made from the scans that ship offline: the MNI152 2009a T1 from nilearn's wheel (1 mm,
197x233x189) and nibabel's real ``anatomical.nii`` (2 mm, LAS), as copies resampled to 1.5-3 mm, stored in
other axis orders (RAS, LPS, LAS, PIR, ...) and cropped by up to 10% per side (seeded), ``--scans`` of them.

- study: ``torchsci neuro segment DIR -o OUT --jobs 2 --quiet``: BIDS-style derivatives (labels, brain mask,
  QC figure, sidecar) and one volumes table with posterior intervals; one start-up and model load per job.
- loop: ``for f in DIR/*.nii.gz; do torchsci neuro segment $f -o ... --volumes ... --qc ... --quiet; done``:
  the same labels, a volumes CSV and a QC figure per scan; start-up and model loading paid per scan.
- deepbet (if ``--deepbet`` names its ``deepbet-cli``): ``deepbet-cli -i DIR -o BRAINS -m MASKS --no_gpu``,
  its folder mode. Note that deepbet extracts the brain only (two networks at 128^3 and 256^3), while
  torchsci segments CSF, GM and WM; the comparison is of throughput on the same files.

Peak memory is the largest sum of the resident set sizes of the command's whole process tree (sampled
every 0.1 s from /proc), so the study's two worker processes count together. The 1-minute load average
is recorded before and after each tool: on a shared machine it changes the figures more than anything.

Command (2 CPU cores)::

    .venv/bin/python benchmarks/neuro_cohort.py --scans 20 --work-dir /tmp/neuro-cohort \\
        --deepbet /root/bench-venvs/monai/bin/deepbet-cli --json runs/neuro_cohort.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_to_output

ORIENTATIONS = [("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S"), ("P", "I", "R"), ("A", "S", "L"),
                ("R", "S", "A"), ("I", "L", "P")]
SPACINGS = [1.5, 2.0, 2.5, 3.0]


def offline_sources() -> dict[str, nib.Nifti1Image]:
    import nilearn

    mni = nib.load(Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    anat = nib.load(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii")
    return {name: nib.Nifti1Image(np.asarray(img.dataobj, np.float32), img.affine)
            for name, img in (("mni", mni), ("anat", anat))}


def make_cohort(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` scans in ``folder``: resampled, reoriented and cropped copies of the offline scans."""
    rng = np.random.default_rng(seed)
    sources = offline_sources()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name = "anat" if i % 5 == 4 else "mni"
        image = sources[name]
        if name == "mni":
            image = resample_to_output(image, (SPACINGS[i % len(SPACINGS)],) * 3, order=1)
        target = nib.orientations.axcodes2ornt(ORIENTATIONS[i % len(ORIENTATIONS)])
        image = image.as_reoriented(nib.orientations.ornt_transform(nib.orientations.io_orientation(image.affine), target))
        crop = tuple(slice(int(rng.integers(0, n // 10 + 1)), n - int(rng.integers(0, n // 10 + 1)))
                     for n in image.shape)
        image = image.slicer[crop]
        path = folder / f"scan-{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj, np.float32), image.affine), path)
        paths.append(path)
    return paths


def _tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def timed(command: str, env: dict[str, str]) -> dict:
    """Run ``command`` in bash; wall time, peak process-tree RSS, exit code, load average before/after."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    return {"command": command, "wall_s": round(wall, 1), "peak_rss_mib": round(peak[0] / 2**20),
            "returncode": process.returncode, "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "stderr_tail": stderr[-800:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--deepbet", default=None, help="path of deepbet-cli (in its own venv); skipped if absent")
    parser.add_argument("--work-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--tools", default="study,loop,deepbet", help="which of study,loop,deepbet to run, in order")
    args = parser.parse_args()

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="neuro-cohort-"))
    scans = make_cohort(work / "scans", args.scans)
    torchsci = shlex.quote(str(Path(sys.executable).with_name("torchsci")))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    commands = {
        "torchsci study": f"{torchsci} neuro segment {work}/scans -o {work}/study --jobs {args.jobs} --quiet",
        "torchsci loop": (f"mkdir -p {work}/loop && for f in {work}/scans/*.nii.gz; do n=$(basename $f .nii.gz); "
                          f"{torchsci} neuro segment $f -o {work}/loop/$n.nii.gz --volumes {work}/loop/$n.csv "
                          f"--qc {work}/loop/$n.png --quiet || exit 1; done"),
    }
    if args.deepbet and Path(args.deepbet).is_file():
        commands["deepbet folder"] = (f"mkdir -p {work}/deepbet/brain {work}/deepbet/mask && {shlex.quote(args.deepbet)} "
                                      f"-i {work}/scans -o {work}/deepbet/brain -m {work}/deepbet/mask --no_gpu")
    wanted = {"study": "torchsci study", "loop": "torchsci loop", "deepbet": "deepbet folder"}
    commands = {wanted[t]: commands[wanted[t]] for t in args.tools.split(",") if wanted[t] in commands}
    results = {}
    for name, command in commands.items():
        result = timed(command, env)
        result["scans_per_min"] = round(len(scans) / result["wall_s"] * 60, 2)
        results[name] = result
        print(f"{name}: {result['wall_s']} s, {result['scans_per_min']} scans/min, peak {result['peak_rss_mib']} MiB, "
              f"load {result['load_before']} -> {result['load_after']}, exit {result['returncode']}", flush=True)
    outputs = {"torchsci study": len(list((work / "study").glob("*_desc-tissue_dseg.nii.gz"))),
               "torchsci loop": len(list((work / "loop").glob("*.nii.gz"))),
               "deepbet folder": len(list((work / "deepbet" / "mask").glob("*.nii.gz")))}
    print(f"\n{len(scans)} scans ({work / 'scans'}), {os.cpu_count()} CPUs\n")
    print("| tool | wall s | scans/min | peak RSS (MiB, process tree) | outputs | load avg before -> after |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall_s']} | {r['scans_per_min']} | {r['peak_rss_mib']} | {outputs[name]}/{len(scans)} "
              f"| {r['load_before']} -> {r['load_after']} |")
    if "torchsci loop" in results and "torchsci study" in results:
        loop = results["torchsci loop"]["wall_s"]
        print(f"\nstudy speed-up over the loop: {loop / results['torchsci study']['wall_s']:.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"scans": len(scans), "results": results, "outputs": outputs}, indent=2))
    return 0 if all(r["returncode"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
