"""Blocks of molecules prepared and run through the network, in this process or data-parallel in worker processes.

The layer between :mod:`~torchsci_chem.preparation` (strings become graphs and records) and
:mod:`~torchsci_chem.inference` (the result a caller sees). Input strings are cut into blocks of a fixed
multiple of the batch size; within a block, the molecules of distinct canonical SMILES go through the network
in order of first appearance, ``batch_size`` at a time. That rule does not depend on which process does the
block, so the network sees the same batches, and gives the same bits, for every ``n_jobs``.

With ``n_jobs > 1`` on Linux and a CPU model, ``n_jobs`` worker processes each prepare a block and run the
network on it (one torch thread each) and send back its records and outputs, never its graphs; this process
collects them in order. Workers are forked: the model is inherited, never pickled. A parent that ran a
multi-threaded torch op leaves GNU OpenMP's thread pool in a state where a forked child's first parallel
region waits forever on threads that do not exist in it; a child at one thread never enters a parallel region,
so each worker sets ``torch.set_num_threads(1)`` before any torch op (tests/chem/test_prediction_path.py
checks both). Elsewhere (macOS, Windows: no safe fork; a model on a GPU) workers only prepare blocks and this
process runs the network (:func:`~torchsci_chem.preparation.prepare_blocks`).
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch
from torch import nn

from torchsci.errors import DataError, TorchsciError
from torchsci_chem.preparation import Needs, PreparedBlock, prepare, prepare_blocks

BLOCK = 256
"""Input strings per block, rounded down to a multiple of the batch size (at least one batch): the unit of
work of a worker process. 5,000 molecules are 20 blocks, so two workers finish within a block of each other."""


def first_of_each(keys: Sequence[str]) -> tuple[list[int], list[int]]:
    """Positions of the first occurrence of each distinct key, and per key the index of its first occurrence
    among those.

    Examples
    --------
    >>> from torchsci_chem.workers import first_of_each
    >>> first_of_each(["CCO", "c1ccccc1", "CCO"])
    ([0, 1], [0, 1, 0])
    """
    index: dict[str, int] = {}
    firsts: list[int] = []
    of_each = []
    for k, key in enumerate(keys):
        if key not in index:
            index[key] = len(firsts)
            firsts.append(k)
        of_each.append(index[key])
    return firsts, of_each


def run_block(net: nn.Module, block: PreparedBlock, batch_size: int) -> np.ndarray | None:
    """Every member's outputs ``(members, distinct keys, outputs)`` for the block's distinct molecules (see the
    module docstring), ``None`` if it holds none.

    On the CPU the network runs on one torch thread, whatever :func:`torch.get_num_threads` says, and the
    setting is restored afterwards: MKL splits a small matrix product (a batch of 8 through the head of the
    shipped ``esol`` model) differently on two threads than on one, which changed float32 results in the last
    bit; at one thread everywhere they depend neither on ``n_jobs`` nor on the machine's core count.
    """
    from torchsci_chem.inference import _forward_batch

    firsts, _ = first_of_each(block.keys)
    if not firsts:
        return None
    graphs = [block.graphs[k] for k in firsts]
    extra = None if block.extra is None else block.extra[firsts]
    threads = torch.get_num_threads()
    on_cpu = next(net.parameters()).device.type == "cpu"
    if on_cpu and threads != 1:
        torch.set_num_threads(1)
    try:
        return np.concatenate([_forward_batch(net, graphs[a:a + batch_size],
                                              None if extra is None else extra[a:a + batch_size])
                               for a in range(0, len(graphs), batch_size)], axis=1)
    finally:
        if on_cpu and threads != 1:
            torch.set_num_threads(threads)


def data_parallel(net: nn.Module) -> bool:
    """Whether worker processes can run ``net`` themselves: forked (Linux) and on the CPU."""
    return sys.platform.startswith("linux") and next(net.parameters()).device.type == "cpu"


def predicted_blocks(strings: Sequence[Any], needs: Needs, net: nn.Module, batch_size: int, n_jobs: int,
                     stop_at_invalid: bool = False) -> Iterator[tuple[PreparedBlock, np.ndarray | None]]:
    """Each block of ``strings`` in order with its outputs (:func:`run_block`). With ``stop_at_invalid`` (the
    caller will raise), the network may stop at the first block with an invalid string: outputs ``None`` from
    there. Blocks come without graphs and extra features when workers ran them."""
    size = max(batch_size, BLOCK // batch_size * batch_size)
    tasks = [(list(strings[a:a + size]), needs, a) for a in range(0, len(strings), size)]
    if n_jobs > 1 and len(tasks) > 1 and data_parallel(net):
        yield from _in_workers(tasks, net, batch_size, min(n_jobs, len(tasks)))
        return
    # one process, or workers that only prepare: the network runs here, on the same blocks
    blocks = prepare_blocks(strings, needs, n_jobs, size)
    running = True
    for block in blocks:
        running = running and not (stop_at_invalid and any(block.reasons))
        yield block, run_block(net, block, batch_size) if running else None


_NET: nn.Module | None = None
_BATCH = 0


def _start_worker(net: nn.Module, batch_size: int) -> None:
    global _NET, _BATCH
    torch.set_num_threads(1)  # before any torch op in this forked child: see the module docstring
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it shuts the workers down
    _NET, _BATCH = net, batch_size


def _work(task: tuple) -> tuple[PreparedBlock, np.ndarray | None]:
    block = prepare(*task)
    outputs = run_block(_NET, block, _BATCH)
    return dataclasses.replace(block, graphs=[], extra=None), outputs


def _in_workers(tasks: list[tuple], net: nn.Module, batch_size: int,
                workers: int) -> Iterator[tuple[PreparedBlock, np.ndarray | None]]:
    gc.freeze()  # the children inherit the parent's objects as permanent: their collector never touches (copies) them
    with warnings.catch_warnings():
        # Python >= 3.12 warns about forking a process with threads (torch's); the workers' first act is
        # torch.set_num_threads(1), which is what makes it safe here
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(net, batch_size))
        futures = [pool.submit(_work, task) for task in tasks]  # the first submit forks the workers
    gc.unfreeze()
    finished = False
    try:
        for task, future in zip(tasks, futures, strict=True):
            try:
                result = future.result()
            except TorchsciError as exc:
                raise exc from None
            except BrokenProcessPool:
                raise DataError(f"predict(n_jobs={workers}): a worker process died (killed, or out of memory?) "
                                f"while preparing molecules {_rows(task)}; run with n_jobs=1 to find out why.") from None
            except Exception as exc:  # noqa: BLE001 - one clear error naming the molecules instead of a remote traceback
                raise DataError(f"predict(n_jobs={workers}): a worker process failed on molecules {_rows(task)} "
                                f"({type(exc).__name__}: {exc}); run with n_jobs=1 to see where.") from None
            yield result
        finished = True
    finally:
        if not finished:
            # an error, Ctrl-C or a caller that stopped early: end the workers now rather than after the blocks they
            # hold (up to three of a descriptor model took 3.3 s); the executor has no public way before Python 3.14
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _rows(task: tuple) -> str:
    strings, _, start = task
    return f"{start}-{start + len(strings) - 1} (counting each distinct SMILES once)"
