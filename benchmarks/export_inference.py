"""Forward latency on the CPU: eager, inductor (default), inductor with freezing, and the exported ONNX file in
ONNX Runtime, for core/mlp and a small 3D conv net, in one interleaved run.

Each model is prepared four ways once (compile time reported), then the timed rounds go round-robin
(eager, inductor, frozen, onnxruntime, eager, ...) so load on a shared machine hits all alike; the table
gives the median per forward and the speed-up over eager measured in the same rounds. All paths use the
same thread count (torch and ONNX Runtime intra-op threads).

    python benchmarks/export_inference.py [--threads 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

import torchsci


class SmallConv3d(nn.Module):
    """conv-bn-relu x2 with a pooling step and a 1x1x1 head: a U-Net's encoder in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(1, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3, padding=1), nn.BatchNorm3d(32), nn.ReLU(), nn.Conv3d(32, 3, 1))

    def forward(self, scan: torch.Tensor) -> torch.Tensor:
        return self.net(scan)


def models(conv_batch: int = 1) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """core/mlp on a batch of 256 and :class:`SmallConv3d` on ``conv_batch`` 48^3 volumes, in eval mode."""
    torch.manual_seed(0)
    mlp = torchsci.create_model("core/mlp", in_features=64, out_features=1, hidden=[256, 256])
    conv = SmallConv3d()
    conv(torch.randn(2, 1, 16, 16, 16))  # give batch norm real running statistics
    return {"core/mlp (batch 256, 64 features)": (mlp.eval(), torch.randn(256, 64)),
            f"conv3d ({conv_batch}x1x48^3)": (conv.eval(), torch.randn(conv_batch, 1, 48, 48, 48))}


def prepare(model: nn.Module, x: torch.Tensor, threads: int, folder: str) -> dict[str, tuple[Callable, float]]:
    import onnxruntime as ort

    ways: dict[str, tuple[Callable, float]] = {}
    with torch.no_grad():
        ways["eager"] = (model, 0.0)
        start = time.perf_counter()
        default = torch.compile(model)
        default(x)
        ways["inductor"] = (default, time.perf_counter() - start)
        start = time.perf_counter()
        frozen = torchsci.export.optimize_for_inference(model, (x,))
        ways["inductor+freezing"] = (frozen, time.perf_counter() - start)
    start = time.perf_counter()
    # Batch 2 at export: the example's batch of 1 would be pinned; the file takes any batch.
    example = torch.cat([x, x]) if x.shape[0] == 1 else x
    path = torchsci.export(model, (example,), format="onnx", path=folder).path
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ways["onnxruntime"] = (lambda t: session.run(None, {name: t.numpy()})[0], time.perf_counter() - start)
    return ways


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=10, help="forwards per timed sample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="torchsci-bench-inductor-"))
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds x {args.inner} forwards, "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, (model, x) in models().items():
            ways = prepare(model, x, args.threads, folder)
            with torch.no_grad():
                want = model(x)
                for name, (fn, _) in ways.items():
                    got = torch.as_tensor(fn(x))
                    assert torch.allclose(got, want, atol=1e-4, rtol=1e-3), f"{label}: {name} disagrees with eager"
                times: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(args.rounds):
                    for name, (fn, _) in ways.items():
                        start = time.perf_counter()
                        for _ in range(args.inner):
                            fn(x)
                        times[name].append((time.perf_counter() - start) / args.inner)
            for name, (_, prep) in ways.items():
                ms = statistics.median(times[name]) * 1e3
                ratios = [e / t for e, t in zip(times["eager"], times[name], strict=True)]
                rows.append((label, name, ms, statistics.median(ratios), prep))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| model | path | median ms / forward | speed-up vs eager (same rounds) | prepare s |")
    print("|---|---|---|---|---|")
    for label, name, ms, ratio, prep in rows:
        print(f"| {label} | {name} | {ms:.3f} | {ratio:.2f}x | {prep:.1f} |")


if __name__ == "__main__":
    main()
