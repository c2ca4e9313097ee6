"""Peak memory (RSS) of ``torchsci chem predict`` on libraries of growing length: streaming keeps it flat.

Writes libraries of N rows (ESOL's SMILES repeated, every 1,000th row an invalid SMILES, which must come
back in the output with its reason), runs the CLI on each in a fresh process with ``--on-invalid skip``
and reports the process's peak RSS (``ru_maxrss``), rows written, invalid rows kept and mol/s.

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/chem_stream.py --model CKPT \\
        --sizes 10000 100000 --workdir /tmp/stream
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from torchsci_chem.datasets import esol_path

CHILD = """
import resource, sys
from torchsci.cli import main
code = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="esol")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--workdir", default="/tmp/chem-stream")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    with esol_path().open() as fh:
        smiles = [r["smiles"] for r in csv.DictReader(fh)]
    print(f"load average at start {os.getloadavg()[0]:.2f}; model {args.model}; chunk {args.chunk_size}", flush=True)
    print("| rows | peak RSS (MB) | rows written | invalid rows kept | wall s | mol/s |\n|---|---|---|---|---|---|")
    results = []
    for n in args.sizes:
        lib = work / f"library_{n}.csv"
        with lib.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "smiles"])
            for i in range(n):
                writer.writerow([i, "not_a_smiles" if i % 1000 == 999 else smiles[i % len(smiles)]])
        out = work / f"pred_{n}.csv"
        out.unlink(missing_ok=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, "chem", "predict", str(lib), "-o", str(out), "--model",
                               args.model, "--on-invalid", "skip", "--chunk-size", str(args.chunk_size),
                               "--no-progress"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        rss = int(next(ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS_KB"))) / 1024
        with out.open() as fh:
            rows = list(csv.DictReader(fh))
        kept = sum(1 for r in rows if r["invalid"])
        results.append({"rows": n, "rss_mb": rss, "written": len(rows), "invalid_kept": kept, "wall_s": wall})
        print(f"| {n} | {rss:.0f} | {len(rows)} | {kept} | {wall:.0f} | {n / wall:.0f} |", flush=True)
        del rows
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
