"""predict() parses each SMILES once and may prepare and predict molecules in worker processes: same answers as
the separate functions that parse for themselves, and the same answers for every n_jobs."""

from __future__ import annotations

import csv
import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

import torchsci_chem
from tests.badinput import run_cli
from torchsci import ConfigError, DataError
from torchsci_chem import preparation, workers
from torchsci_chem.datasets import data_path
from torchsci_chem.descriptors import RDKIT2D_V1, compute_descriptors, descriptor_function
from torchsci_chem.domain import applicability, nearest_similarity, packed_fingerprints
from torchsci_chem.featurize import collate_graphs, featurize, parse_smiles
from torchsci_chem.inference import load, member_predictions
from torchsci_chem.models import DMPNN
from torchsci_chem.standardize import DEFAULT_STANDARDIZE, standardize_report
from torchsci_chem.uncertainty import spread

# invalid rows, a salt, a metal, a radical, enantiomers and a SMILES written twice, between real molecules
ODD = ["not a smiles", "", "CCO", "[Na+].[Cl-]", "OCC", "C[C@@H](N)C(=O)O", "C[C@H](N)C(=O)O", "[CH3]",
       "C[Pt]", "CC(=O)[O-].[Na+]", "C1CC", "CCO"]


def shipped_smiles() -> list[str]:
    out = []
    for name in ("ESOL.csv", "solubility_external.csv"):
        with data_path(name).open() as fh:
            out += [r["smiles"] for r in csv.DictReader(fh)]
    return out


@pytest.fixture(scope="module")
def esol():
    return load("esol")


@pytest.fixture(scope="module")
def library() -> list[str]:
    mols = shipped_smiles()
    # the odd rows at the start, the middle and the end, so that they fall in several preparation blocks
    return ODD + mols[:800] + ODD + mols[800:] + ODD


@pytest.fixture()
def small_blocks(monkeypatch) -> list[str]:
    """Blocks of 16 strings (with ``batch_size=8``: two batches) and 96 rows with odd rows in the first, a
    middle and the last block; the calls that went to worker processes that run the network are counted."""
    monkeypatch.setattr(workers, "BLOCK", 16)
    mols = shipped_smiles()
    return ODD + mols[:40] + ODD + mols[-20:] + ODD


@pytest.fixture()
def data_parallel_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = workers._in_workers

    def counted(tasks, net, batch_size, n):
        calls.append(n)
        yield from original(tasks, net, batch_size, n)

    monkeypatch.setattr(workers, "_in_workers", counted)
    return calls


@pytest.mark.slow
def test_single_parse_agrees_with_the_functions_that_parse_for_themselves(esol, library):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = torchsci_chem.predict(library, model=esol, interval=0.9, on_invalid="skip")
    reports = [standardize_report(s, DEFAULT_STANDARDIZE) for s in library]
    assert full.standardized == [r.smiles for r in reports]
    assert full.changes == [r.changes for r in reports] and full.flags == [r.flags for r in reports]
    ok = [i for i, why in enumerate(full.invalid) if not why]
    assert len(ok) == len(library) - 3 * 3 and full.invalid[0] == "RDKit cannot parse it"
    assert np.isnan(full.value[[i for i in range(len(library)) if i not in set(ok)]]).all()
    rules = applicability(library)
    for i in ok:
        assert full.applicability[i].reason.startswith(rules[i].reason)
    fps = packed_fingerprints([parse_smiles(library[i], DEFAULT_STANDARDIZE) for i in ok])
    similarity = nearest_similarity(fps, esol.domain_fingerprints.numpy())
    assert np.array_equal(full.similarity[ok], similarity)
    # the network on graphs and descriptors that member_predictions computes from its own parses
    each, _ = member_predictions(esol, [library[i] for i in ok], DEFAULT_STANDARDIZE, batch_size=64)
    mean, std = spread(each, None)
    assert np.allclose(full.value[ok], mean[:, 0], rtol=1e-6, atol=1e-6)
    assert np.allclose(full.std[ok], std[:, 0], rtol=1e-5, atol=1e-6) and (std > 0).all()


def run(smiles, n_jobs, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = torchsci_chem.predict(smiles, model="esol", n_jobs=n_jobs, on_invalid="skip", **kwargs)
    return out, [str(w.message) for w in caught]


@pytest.mark.slow
def test_worker_processes_give_the_answers_of_one_process(small_blocks, data_parallel_calls, monkeypatch):
    library = small_blocks
    one, one_warnings = run(library, 1, details=True, batch_size=8)
    assert data_parallel_calls == []
    two, two_warnings = run(library, 2, details=True, batch_size=8)
    assert data_parallel_calls == [2]  # two workers, each preparing and predicting its blocks
    assert np.array_equal(one.value, two.value, equal_nan=True) and np.array_equal(one.std, two.std, equal_nan=True)
    assert one.invalid == two.invalid and one.applicability == two.applicability
    assert one.standardized == two.standardized and np.array_equal(one.similarity, two.similarity, equal_nan=True)
    assert one_warnings == two_warnings
    # the invalid rows in input order, as the warning lists them
    rows = [int(line.split()[1].rstrip(":")) for line in two_warnings[0].splitlines()[1:] if line.startswith("  row")]
    assert rows == sorted(rows) and rows[:3] == [0, 1, 10] and rows[-1] == len(library) - 2
    plain, _ = run(library, 2, batch_size=8)
    assert np.array_equal(plain, one.value, equal_nan=True)
    three, three_warnings = run(library, 3, details=True, batch_size=8)  # blocks can finish out of order
    assert data_parallel_calls == [2, 2, 3]
    assert np.array_equal(three.value, one.value, equal_nan=True) and three.invalid == one.invalid
    assert np.array_equal(three.std, one.std, equal_nan=True) and three_warnings == one_warnings
    # one molecule written twice, in one block and across blocks, gets one bitwise-equal prediction
    ethanol = [k for k, s in enumerate(library) if s in ("CCO", "OCC")]
    assert len(ethanol) == 9 and len(set(three.value[ethanol].tolist())) == 1
    # where workers cannot run the network (no fork, a GPU model), they prepare and this process predicts
    monkeypatch.setattr(workers, "data_parallel", lambda net: False)
    fallback, fallback_warnings = run(library, 2, details=True, batch_size=8)
    assert data_parallel_calls == [2, 2, 3] and fallback_warnings == one_warnings
    assert np.array_equal(fallback.value, one.value, equal_nan=True) and fallback.invalid == one.invalid


@pytest.mark.slow
def test_a_failing_worker_is_one_clear_error(small_blocks, monkeypatch):
    original = workers.prepare

    def failing(strings, needs, start=0):
        if start == 32:
            raise RuntimeError("boom")
        return original(strings, needs, start)

    monkeypatch.setattr(workers, "prepare", failing)  # the forked workers inherit it
    with pytest.raises(DataError, match=r"worker process failed on molecules 32-47 .*RuntimeError: boom") as caught:
        run(small_blocks, 2, batch_size=8)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    def dying(strings, needs, start=0):
        if start == 48:
            os._exit(3)  # as if killed: no exception to send back
        return original(strings, needs, start)

    monkeypatch.setattr(workers, "prepare", dying)
    with pytest.raises(DataError, match="a worker process died"):
        run(small_blocks, 2, batch_size=8)


@pytest.mark.slow
def test_an_exception_or_ctrl_c_here_ends_the_workers(small_blocks, esol):
    from torchsci_chem.inference import _extra_spec

    blocks = workers.predicted_blocks(small_blocks, preparation.Needs(extra=_extra_spec(esol)), esol, 8, 2)
    next(blocks)
    assert len(multiprocessing.active_children()) == 2
    blocks.close()  # what an exception or KeyboardInterrupt in predict()'s loop over the blocks does to them
    assert multiprocessing.active_children() == []


FORKED_AFTER_TWO_THREADS = """
import csv, warnings, numpy as np, torch, torchsci_chem
from torchsci_chem import workers
from torchsci_chem.datasets import data_path
torch.set_num_threads(2)
a = torch.randn(1500, 1500)
(a @ a).sum(), torch.relu(torch.randn(4_000_000)).sum()  # GNU OpenMP's pool of 2 threads is running now
with data_path("ESOL.csv").open() as fh:
    smiles = [r["smiles"] for r in csv.DictReader(fh)][:768]
warnings.simplefilter("ignore")
# batches of 256: large enough that torch's element-wise ops would run a parallel region if they had 2 threads
two = torchsci_chem.predict(smiles, n_jobs=2, batch_size=256)
assert np.array_equal(two, torchsci_chem.predict(smiles, batch_size=256))
print("done")
"""


@pytest.mark.slow
def test_workers_forked_from_a_parent_that_ran_two_threads_complete():
    # A forked child whose first parallel region runs on GNU OpenMP's pool inherited from the parent waits
    # forever; the workers set one thread first. Mutation-checked: with neither torch.set_num_threads(1) of
    # torchsci_chem/workers.py (the worker's start, run_block's), this script hung until killed at 90 s.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", FORKED_AFTER_TWO_THREADS], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(root)}, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


@pytest.mark.slow
def test_worker_processes_raise_one_error_listing_every_invalid_row(small_blocks):
    library = small_blocks
    with pytest.raises(DataError) as caught:
        torchsci_chem.predict(library, model="esol", n_jobs=2, batch_size=8)
    message = str(caught.value)
    assert "9 molecule(s)" in message and f"row {len(library) - 2}: 'C1CC'" in message


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True])
def test_bad_n_jobs_is_one_clear_error(n_jobs):
    with pytest.raises(ConfigError, match="n_jobs"):
        torchsci_chem.predict(["CCO"], n_jobs=n_jobs)


def test_shared_descriptor_intermediates_give_rdkits_values():
    mols = [parse_smiles(s, DEFAULT_STANDARDIZE) for s in shipped_smiles()[:300]]
    funcs = [descriptor_function(n) for n in RDKIT2D_V1]
    alone = np.array([[f(Chem.Mol(m)) for f in funcs] for m in mols])  # a fresh copy per molecule: nothing cached
    alone = np.clip(np.nan_to_num(alone, nan=0.0, posinf=1e5, neginf=-1e5), -1e5, 1e5).astype(np.float32)
    assert np.array_equal(compute_descriptors(mols, RDKIT2D_V1), alone)


def reference_encode(net, atoms, bonds, edge_index, molecule, molecule_sizes):
    """The D-MPNN's message passing as written before the in-place form (out-of-place ops, reverse by index)."""
    src, dst = edge_index[0], edge_index[1]
    reverse = torch.arange(edge_index.shape[1]) ^ 1
    h0 = net.w_i(torch.cat([atoms.index_select(0, src), bonds], dim=1))
    h = torch.relu(h0)
    for _ in range(net.depth - 1):
        into_atom = h.new_zeros((atoms.shape[0], net.hidden)).index_add(0, dst, h)
        h = torch.relu(h0 + net.w_h(into_atom.index_select(0, src) - h.index_select(0, reverse)))
    into_atom = h.new_zeros((atoms.shape[0], net.hidden)).index_add(0, dst, h)
    atom_h = torch.relu(net.w_o(torch.cat([atoms, into_atom], dim=1)))
    pooled = atom_h.new_zeros((molecule_sizes.shape[0], net.hidden)).index_add(0, molecule, atom_h)
    return pooled / molecule_sizes.clamp_min(1).unsqueeze(1).to(pooled.dtype)


def test_in_place_message_passing_is_bitwise_the_out_of_place_one_with_the_same_gradients():
    torch.manual_seed(0)
    net = DMPNN(hidden=48, depth=4)
    batch = collate_graphs(featurize(shipped_smiles()[:64] + ["[Na+]", "C"]).graphs)
    inputs = batch.inputs()
    ours, theirs = net.encode(*inputs), reference_encode(net, *inputs)
    assert torch.equal(ours, theirs)
    grads = [torch.autograd.grad(z.square().sum(), list(net.parameters()), allow_unused=True) for z in (ours, theirs)]
    for a, b in zip(*grads, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(g is not None and g.abs().sum() > 0 for g in grads[0])


@pytest.mark.slow
def test_cli_jobs_gives_the_file_of_one_process(data_parallel_calls, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(workers, "BLOCK", 64)  # one batch (the default) per block, 2-4 blocks per chunk
    mols = shipped_smiles()
    library = ODD + mols[:150] + ODD + mols[-100:] + ODD
    source = tmp_path / "library.csv"
    with source.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "smiles"], *([f"m{k}", s] for k, s in enumerate(library))])
    outs = []
    for jobs in (1, 3):
        out = tmp_path / f"jobs{jobs}.csv"
        code, err = run_cli(["chem", "predict", source, "-o", out, "--on-invalid", "skip", "--jobs", jobs,
                             "--chunk-size", 200], capsys)
        assert code == 0, err
        outs.append(list(csv.DictReader(out.open())))
    assert len(data_parallel_calls) == 2  # both chunks of --jobs 3 went to workers that run the network
    assert outs[0] == outs[1] and [r["id"] for r in outs[1]] == [f"m{k}" for k in range(len(library))]
    assert [k for k, r in enumerate(outs[1]) if r["invalid"]] == [0, 1, 10, 162, 163, 172, 274, 275, 284]
