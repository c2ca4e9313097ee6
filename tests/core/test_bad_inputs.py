"""Bad inputs to the core's commands: each is one clear line (exit code 2), and nothing the user owns changes.

Also the run folders: two runs started at once (or in the same second) get two folders, a second run into
a folder that holds a run is refused, and ``torchsci train ... resume=last`` after ``kill -9`` continues
the interrupted run in place, bit-identical to a run never killed.
"""

from __future__ import annotations

import csv
import datetime
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import torchsci
import torchsci.runner
from tests.badinput import assert_one_clear_line, checksums, run_cli
from torchsci.io import atomic_output, make_run_dir

TINY = ["experiment=core/oscillator", "trainer.max_epochs=1", "data.train_size=64", "data.val_size=16",
        "data.test_size=16", "trainer.batch_size=16", "trainer.tensorboard=false", "trainer.verbose=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run folder of the tiny oscillator (config.yaml, metrics.csv, checkpoints/)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    torchsci.run(torchsci.compose([*TINY, f"run_dir={run_dir}"]))
    return run_dir


def _corpus(trained: Path, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (torchsci arguments, what the one error line must say)."""
    ckpt = trained / "checkpoints" / "best.ckpt"
    return {
        "model_hidden_int": (["train", *TINY, "model.hidden=64"], ["model.hidden=64", "list of int"]),
        "model_hidden_strings": (["train", *TINY, "model.hidden=[a,b]"], ["model.hidden=['a', 'b']", "list of int"]),
        "trainer_lr_negative": (["train", *TINY, "trainer.lr=-1"], ["trainer.lr=-1", "0 or more"]),
        "trainer_num_workers_negative": (["train", *TINY, "trainer.num_workers=-2"], ["trainer.num_workers=-2"]),
        "data_train_size_zero": (["train", *TINY, "data.train_size=0"], ["data.train_size=0", "at least 1"]),
        "slurm_sweep_without_slurm": (["train", "-m", "hydra/launcher=slurm", *TINY, "trainer.lr=1e-3,3e-3"],
                                      ["hydra/launcher=slurm"]),
        "resume_last_nothing_to_resume": (["train", *TINY, "resume=last"], ["nothing to resume", "oscillator"]),
        "resume_missing_folder": (["train", *TINY, f"resume={tmp / 'no_such_run'}"], ["no_such_run", "no such"]),
        "run_dir_holds_a_run": (["train", *TINY, f"run_dir={trained}"], [str(trained), "already holds a run"]),
        "predict_output_is_the_checkpoint": (["predict", *TINY, f"ckpt={ckpt}", f"predict.output={ckpt}"],
                                             [str(ckpt), "also an input"]),
        "predict_output_suffix": (["predict", *TINY, f"ckpt={ckpt}", f"predict.output={tmp / 'p.txt'}"],
                                  ["p.txt", ".csv or .npy"]),
    }


CASES = ["model_hidden_int", "model_hidden_strings", "trainer_lr_negative", "trainer_num_workers_negative",
         "data_train_size_zero", "slurm_sweep_without_slurm", "resume_last_nothing_to_resume", "resume_missing_folder",
         "run_dir_holds_a_run", "predict_output_is_the_checkpoint", "predict_output_suffix"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line_and_changes_nothing(case, trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no sbatch here, whatever the machine has
    args, needles = _corpus(trained, tmp_path)[case]
    before = checksums([trained])
    code, err = run_cli(args, capsys)
    assert_one_clear_line(code, err, *needles)
    after = checksums([trained])
    assert {k: after.get(k) for k in before} == before, "a file of the finished run changed"
    assert not list(tmp_path.glob("outputs/*/*/metrics.csv")), "a refused command must not have trained"


def test_corpus_covers_every_case(trained, tmp_path):
    assert sorted(_corpus(trained, tmp_path)) == sorted(CASES)


# ------------------------------------------------------------------------------------------------ outputs
def test_atomic_output_refuses_the_input_through_a_symlink_and_a_hard_link(tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("smiles\nCCO\n")
    (tmp_path / "soft.csv").symlink_to(source)
    os.link(source, tmp_path / "hard.csv")
    for alias in ("soft.csv", "hard.csv", "./data.csv"):
        with pytest.raises(torchsci.errors.OutputError, match="also an input"), \
                atomic_output(tmp_path / alias, [source]) as tmp:
            tmp.write_text("overwritten")
    assert source.read_text() == "smiles\nCCO\n"


def test_atomic_output_leaves_the_old_file_when_writing_fails(tmp_path):
    out = tmp_path / "predictions.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


# ------------------------------------------------------------------------------------------------ run folders
def _claim(root: str, barrier) -> str:
    barrier.wait()
    return make_run_dir(root, "12-00-00_oscillator").name


def test_run_folders_are_unique_when_many_processes_start_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            names = pool.starmap(_claim, [(str(tmp_path), barrier)] * 4)
    assert sorted(names) == ["12-00-00_oscillator", "12-00-00_oscillator-1", "12-00-00_oscillator-2",
                             "12-00-00_oscillator-3"]


class _FrozenClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 12, 1, 12, 0, 0)


def test_two_python_runs_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torchsci.runner.datetime, "datetime", _FrozenClock)
    first = torchsci.run(torchsci.compose(TINY))
    second = torchsci.run(torchsci.compose([*TINY, "seed=1"]))
    assert Path(first["run_dir"]).name == "12-00-00_oscillator"
    assert Path(second["run_dir"]).name == "12-00-00_oscillator-1"
    for run in (first, second):
        rows = list(csv.DictReader(open(Path(run["run_dir"]) / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["0"]  # each folder holds exactly its own run's log


def test_two_cli_runs_started_together_get_two_folders(tmp_path):
    command = [sys.executable, "-m", "torchsci.cli", "train", *TINY]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    folders = sorted(tmp_path.glob("outputs/*/*"))
    assert len(folders) == 2, folders
    for folder in folders:
        assert len(list(csv.DictReader(open(folder / "metrics.csv")))) == 1
        assert (folder / "checkpoints" / "best.ckpt").is_file()


def test_two_sweeps_get_two_sweep_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, err = run_cli(["train", "-m", *TINY, "trainer.lr=1e-3,3e-3"], capsys)
        assert code == 0, err
    sweeps = sorted(tmp_path.glob("multirun/*/*"))
    assert len(sweeps) == 2, sweeps
    for sweep in sweeps:
        for job in ("0", "1"):
            assert len(list(csv.DictReader(open(sweep / job / "metrics.csv")))) == 1


def test_trainer_refuses_a_second_fresh_run_in_a_run_folder_and_resumes_it(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(32, 5), torch.randn(32, 1))

    def fit(resume=None):
        trainer = torchsci.Trainer(max_epochs=2, batch_size=8, run_dir=tmp_path, verbose=False)
        return trainer.fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), data, resume=resume)

    fit()
    before = checksums([tmp_path])
    with pytest.raises(torchsci.ConfigError, match="already holds a run"):
        fit()
    assert checksums([tmp_path]) == before
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1  # no second event file mixed in
    assert fit(resume="last").history[-1]["epoch"] == 1  # finished: resuming it changes nothing


def test_empty_training_data_is_refused(tmp_path):
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 5), torch.zeros(0, 1))
    trainer = torchsci.Trainer(max_epochs=1, run_dir=tmp_path, verbose=False, tensorboard=False)
    with pytest.raises(torchsci.ConfigError, match="training data is empty"):
        trainer.fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), empty)
    assert not (tmp_path / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------ CLI resume
SLOW = ["experiment=core/oscillator", "trainer.max_epochs=2", "data.train_size=480", "data.val_size=16",
        "data.test_size=16", "trainer.batch_size=8", "trainer.checkpoint_every_n_steps=10",
        "trainer.keep_last_checkpoints=null", "trainer.log_every_n_steps=5", "trainer.tensorboard=false",
        "trainer.device=cpu", "trainer.verbose=false"]


def _train(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchsci.cli", "train", *SLOW, *extra], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(folder / "checkpoints" / "last.ckpt")).items() if k.startswith("model/")}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # four command-line runs; a loaded machine needs minutes for each start
def test_cli_kill9_then_resume_last_continues_in_place_bit_identical(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "killed").mkdir()
    full = _train(tmp_path / "full")
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([sys.executable, "-m", "torchsci.cli", "train", *SLOW], cwd=tmp_path / "killed",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "killed").glob("outputs/*/*/checkpoints/step-000000020.ckpt")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never reached step 20"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (folder,) = (tmp_path / "killed").glob("outputs/*/*")
    assert not (folder / "results.json").exists()

    resumed = _train(tmp_path / "killed", "resume=last")  # the README's command
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {folder.relative_to(tmp_path / 'killed')}" in resumed.stderr
    assert len(list((tmp_path / "killed").glob("outputs/*/*"))) == 1, "resume must continue in place"
    (reference,) = (tmp_path / "full").glob("outputs/*/*")
    a, b = _weights(reference), _weights(folder)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(folder / "metrics.csv")))
    want = list(csv.DictReader(open(reference / "metrics.csv")))
    steps = [(r["step"], r["epoch"], "train/loss" in r and r["train/loss"] != "") for r in rows]
    assert len(steps) == len(set(steps)), "a metrics row was logged twice"
    assert [(r["step"], r["epoch"]) for r in rows] == [(r["step"], r["epoch"]) for r in want]

    again = _train(tmp_path / "killed", "resume=last")
    assert again.returncode == 2 and "nothing to resume" in again.stderr and "Traceback" not in again.stderr
