"""Hand-written LSTM cells against torch.nn.LSTM on the CPU: forward + backward, in one interleaved run.

Paths, all with the same weights and checked against each other before timing:

- ``nn.LSTM``: PyTorch's library LSTM (one fused ATen kernel per layer);
- ``eager cell``: :class:`torchsci.nn.Recurrent` over :class:`torchsci.nn.LSTMCell`, plain eager;
- ``compiled cell``: the same with the cell marked ``torchsci.compile`` (one small graph per step);
- the compiled cell with recurrent dropout 0.25 (variational masks), and the layer-norm cell, eager and compiled;
- with ``--sequence``: the whole ``Recurrent`` layer marked, so dynamo unrolls the time loop into one graph
  (its first call compiles for minutes).

Timed rounds go round-robin over the paths so load on a shared machine hits all alike; the table gives
the median time per forward+backward and the median per-round ratio to ``nn.LSTM``.

    python benchmarks/rnn_cells.py [--threads 2] [--rounds 10] [--sequence] [--steps 100 --batch 64 --hidden 256]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

import torchsci
from torchsci.nn import LayerNormLSTMCell, LSTMCell, Recurrent


def paths(size: int, hidden: int, sequence: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    torch.manual_seed(0)
    library = nn.LSTM(size, hidden, batch_first=True)
    cell = LSTMCell(size, hidden)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in library.state_dict().items()})
    dropped = LSTMCell(size, hidden, recurrent_dropout=0.25)
    dropped.load_state_dict(cell.state_dict())
    norm = LayerNormLSTMCell(size, hidden)
    ways = {
        "nn.LSTM": lambda x: library(x)[0],
        "eager cell": Recurrent(copy.deepcopy(cell)),
        "compiled cell": Recurrent(torchsci.compile(copy.deepcopy(cell))),
        "compiled cell, recurrent dropout 0.25": Recurrent(torchsci.compile(dropped)),
        "eager layer-norm cell": Recurrent(copy.deepcopy(norm)),
        "compiled layer-norm cell": Recurrent(torchsci.compile(norm)),
    }
    if sequence:
        ways["compiled sequence (unrolled loop)"] = torchsci.compile(Recurrent(copy.deepcopy(cell)))
    return ways


def step(fn: Callable, x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--sequence", action="store_true", help="also compile the whole unrolled time loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="torchsci-bench-inductor-"))
    print(f"torch {torch.__version__}, {args.threads} threads, sequence {args.steps}, batch {args.batch}, "
          f"hidden {args.hidden}, {args.rounds} rounds; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ways = paths(args.hidden, args.hidden, args.sequence)
    x = torch.randn(args.batch, args.steps, args.hidden)
    prepare: dict[str, float] = {}
    for name, fn in ways.items():  # the first call compiles
        start = time.perf_counter()
        step(fn, x)
        prepare[name] = time.perf_counter() - start
    with torch.no_grad():
        want = ways["nn.LSTM"](x)
        for name in ("eager cell", "compiled cell", "compiled sequence (unrolled loop)"):
            if name in ways:
                got = ways[name](x)[0]
                assert torch.allclose(got, want, atol=1e-5), f"{name} disagrees with nn.LSTM"
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            start = time.perf_counter()
            step(fn, x)
            times[name].append(time.perf_counter() - start)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| path | median ms / forward+backward | vs nn.LSTM (same rounds) | first call s (compiles) |")
    print("|---|---|---|---|")
    for name in ways:
        ratio = statistics.median(t / ref for t, ref in zip(times[name], times["nn.LSTM"], strict=True))
        print(f"| {name} | {statistics.median(times[name]) * 1e3:.1f} | {ratio:.2f}x | {prepare[name]:.1f} |")


if __name__ == "__main__":
    main()
