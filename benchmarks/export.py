"""Every export format and int8 against eager, in one run: export time, artifact size, CPU latency, accuracy.

For core/mlp (64 -> 256 -> 256 -> 1, batch 256) and a small 3D conv net (one 48^3 volume, batch 2):

1. each format (pt2, onnx, torchscript; aoti with ``--aoti``, about a minute per model) is written with
   ``torchsci.export`` (which also checks parity), its file size taken, and the artifact loaded back as
   a deployment would (``torchsci.load_exported``; ONNX in an ONNX Runtime session with the same thread
   count as torch);
2. the float model is quantised with ``torchsci.quantize`` in both int8 modes (``dynamic``,
   ``weight_only``); its state_dict size, its pt2 artifact size and its accuracy against float on
   fresh inputs are recorded. torchao quantises linear layers only, so the conv net has no int8 rows.

Then every callable (eager float, each artifact, each int8 model in eager and as pt2) is timed
round-robin in the same rounds; the tables give the median ms per forward and the median per-round
ratio to eager float.

    python benchmarks/export.py [--threads 2] [--rounds 15] [--aoti]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import torchsci
from torchsci.errors import TorchsciError

sys.path.insert(0, str(Path(__file__).parent))
from export_inference import models as latency_models  # noqa: E402 (the same two models as the latency benchmark)


def onnx_session(path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda t: torch.from_numpy(session.run(None, {name: t.numpy()})[0])


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=5, help="forwards per timed sample")
    parser.add_argument("--aoti", action="store_true", help="also AOTInductor (about a minute per model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="torchsci-bench-inductor-"))
    formats = ["pt2", "onnx", "torchscript"] + (["aoti"] if args.aoti else [])
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds x {args.inner} forwards; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    format_rows, int8_rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for label, (model, x) in latency_models(conv_batch=2).items():  # export refuses a batch of 1
            ways: dict[str, Callable] = {"eager float32": model}
            export_info: dict[str, tuple[float, float]] = {}
            for fmt in formats:
                result = torchsci.export(model, (x,), format=fmt, path=Path(folder) / label[:4] / fmt)
                export_info[fmt] = (result.report.export_seconds, size_mb(result.path))
                ways[fmt] = onnx_session(result.path, args.threads) if fmt == "onnx" else \
                    torchsci.load_exported(result.path)
            accuracy: dict[str, tuple[float, float, float, float]] = {}
            fresh = torch.randn_like(x)
            for mode in ("dynamic", "weight_only"):
                try:
                    int8, report = torchsci.quantize(model, (fresh,), mode=mode)
                except TorchsciError as exc:
                    int8_rows.append((label, f"int8 {mode}", *["n/a"] * 4, f"not quantised: {exc}"))
                    continue
                pt2 = torchsci.export(int8, (x,), format="pt2", path=Path(folder) / label[:4] / mode).path
                ways[f"int8 {mode} eager"] = int8
                ways[f"int8 {mode} pt2"] = torchsci.load_exported(pt2)
                accuracy[mode] = (report.float_bytes / 1e6, report.quantized_bytes / 1e6, size_mb(pt2),
                                  report.relative_error)
            with torch.no_grad():
                times: dict[str, list[float]] = {name: [] for name in ways}
                for fn in ways.values():  # warm-up
                    fn(x)
                for _ in range(args.rounds):
                    for name, fn in ways.items():
                        start = time.perf_counter()
                        for _ in range(args.inner):
                            fn(x)
                        times[name].append((time.perf_counter() - start) / args.inner)

            def latency(name: str, times: dict[str, list[float]] = times) -> tuple[float, float]:
                ratio = statistics.median(e / t for e, t in zip(times["eager float32"], times[name], strict=True))
                return statistics.median(times[name]) * 1e3, ratio

            ms, _ = latency("eager float32")
            format_rows.append((label, "eager", "-", "-", f"{ms:.2f}", "1.00x"))
            for fmt in formats:
                seconds, mb = export_info[fmt]
                ms, ratio = latency(fmt)
                format_rows.append((label, fmt, f"{seconds:.1f}", f"{mb:.3f}", f"{ms:.2f}", f"{ratio:.2f}x"))
            pt2_float = export_info["pt2"][1]
            for mode, (float_mb, int8_mb, pt2_mb, rel) in accuracy.items():
                eager_ms, eager_ratio = latency(f"int8 {mode} eager")
                pt2_ms, pt2_ratio = latency(f"int8 {mode} pt2")
                int8_rows.append((label, f"int8 {mode}", f"{float_mb:.3f} -> {int8_mb:.3f}",
                                  f"{pt2_float:.3f} -> {pt2_mb:.3f}", f"{eager_ms:.2f} ({eager_ratio:.2f}x)",
                                  f"{pt2_ms:.2f} ({pt2_ratio:.2f}x)", f"{rel:.2g}"))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| model | format | export s | artifact MB | ms / forward | speed-up vs eager |")
    print("|---|---|---|---|---|---|")
    for row in format_rows:
        print("| " + " | ".join(row) + " |")
    print("\n| model | precision | state_dict MB float -> int8 | pt2 MB float -> int8 | eager ms (speed-up vs float) "
          "| pt2 ms (speed-up vs float eager) | relative error vs float |")
    print("|---|---|---|---|---|---|---|")
    for row in int8_rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
