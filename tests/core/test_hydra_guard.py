"""Every key Hydra builds from is vetted before Hydra acts: from the command line and from a replayed config file.

Regression for issue 11: ``hydra.callbacks`` (and launchers, sweepers, logging handlers) were built by
Hydra outside the project's ``_target_`` allowlist, so a config could write any file. Each attack below
would create ``PWNED`` (or, for the environment and the cluster ``setup``, change what runs); the
command must refuse it with one line naming the key, and nothing may be written.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

import torchsci
from torchsci.cli import main
from torchsci.config import CONFIG_MODULE, register_schema, with_search_path

SMOKE = ["experiment=core/oscillator", "trainer=smoke", "trainer.tensorboard=false", "trainer.verbose=false",
         "data.train_size=64", "data.val_size=16", "data.test_size=16"]
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _open(marker):
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


def _file_handler(marker):
    return {"version": 1, "handlers": {"pwn": {"class": "logging.FileHandler", "filename": str(marker)}},
            "root": {"level": "INFO", "handlers": ["pwn"]}}


# name: (command-line overrides or None, what a config file adds, the key the refusal must name: one, or one
# for the command line and one for the file)
ATTACKS = {
    "hydra.callbacks": (
        lambda m: ["+hydra.callbacks.pwn._target_=builtins.open", f"+hydra.callbacks.pwn.file={m}",
                   "+hydra.callbacks.pwn.mode=w"],
        lambda m: {"hydra": {"callbacks": {"pwn": _open(m)}}}, "hydra.callbacks.pwn"),
    "hydra.callbacks (a Hydra class)": (
        lambda m: ["+hydra.callbacks.log._target_=hydra.experimental.callbacks.PickleJobInfoCallback"],
        lambda m: {"hydra": {"callbacks": {"log": {"_target_": "hydra.experimental.callbacks.LogJobReturnCallback"}}}},
        "hydra.callbacks.log"),
    "hydra.launcher (nested _target_)": (
        lambda m: ["-m", "hydra/launcher=joblib", "+hydra.launcher.pwn._target_=builtins.open",
                   f"+hydra.launcher.pwn.file={m}", "+hydra.launcher.pwn.mode=w"],
        lambda m: {"defaults": [{"override hydra/launcher": "joblib"}, "_self_"],
                   "hydra": {"mode": "MULTIRUN", "launcher": {"n_jobs": 1, "pwn": _open(m)}}},
        ("hydra.launcher.pwn", "Key 'pwn' not in 'JobLibLauncherConf'")),  # from a file, Hydra's schema refuses it
    "hydra.launcher (another class)": (
        lambda m: ["-m", "hydra.launcher._target_=pathlib.Path.touch", f"+hydra.launcher.self={m}"],
        lambda m: {"hydra": {"mode": "MULTIRUN", "launcher": {"_target_": "pathlib.Path.touch"}}},
        "hydra.launcher._target_"),
    "hydra.launcher (cluster setup lines)": (
        lambda m: ["-m", "hydra/launcher=slurm", f"hydra.launcher.setup=[touch {m}]"],
        lambda m: {"defaults": [{"override hydra/launcher": "submitit_slurm"}, "_self_"],
                   "hydra": {"mode": "MULTIRUN", "launcher": {"setup": [f"touch {m}"]}}},
        "hydra.launcher.setup"),
    "hydra.sweeper": (
        lambda m: ["-m", "+hydra.sweeper.pwn._target_=builtins.open", f"+hydra.sweeper.pwn.file={m}",
                   "+hydra.sweeper.pwn.mode=w"],
        lambda m: {"hydra": {"mode": "MULTIRUN", "sweeper": {"_target_": BASIC_SWEEPER, "pwn": _open(m)}}},
        ("hydra.sweeper.pwn", "Key 'pwn' not in 'BasicSweeperConf'")),
    "hydra.job_logging (file outside the run)": (
        lambda m: [f"hydra.job_logging.handlers.file.filename={m}"],
        lambda m: {"hydra": {"job_logging": _file_handler(m)}}, "hydra.job_logging.handlers"),
    "hydra.hydra_logging": (
        lambda m: ["+hydra.hydra_logging.handlers.pwn.class=logging.FileHandler",
                   f"+hydra.hydra_logging.handlers.pwn.filename={m}"],
        lambda m: {"hydra": {"hydra_logging": _file_handler(m)}}, "hydra.hydra_logging.handlers.pwn"),
    "hydra.job_logging (factory)": (
        None,
        lambda m: {"hydra": {"job_logging": {"version": 1, "formatters": {"pwn": {"()": "builtins.open",
                                                                                   "file": str(m), "mode": "w"}},
                                             "root": {"level": "INFO"}}}},
        "hydra.job_logging.formatters.pwn"),
    "hydra.job.env_set": (
        lambda m: [f"+hydra.job.env_set.LD_PRELOAD={m}"],
        lambda m: {"hydra": {"job": {"env_set": {"LD_PRELOAD": str(m)}}}}, "hydra.job.env_set.LD_PRELOAD"),
    "hydra.searchpath": (
        lambda m: ["hydra.searchpath=[pkg://os]"],
        lambda m: {"hydra": {"searchpath": ["pkg://antigravity"]}}, "hydra.searchpath[0]"),
    "a _target_ outside trainer": (
        lambda m: [f"+model.pwn={{_target_:builtins.open,file:{m},mode:w}}"],
        lambda m: {"model": {"pwn": _open(m)}}, "model.pwn._target_"),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _assert_refused(capsys, workdir, marker, key, where):
    err = capsys.readouterr().err
    assert err.startswith("torchsci train: error: ") and err.count("\n") == 1, err
    assert key in err and where in err, err
    assert not marker.exists()
    left = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.name != "replay")
    assert left in ([], ["replay/config.yaml"]), left  # nothing written: no run folder, no log, no output


@pytest.mark.parametrize("attack", [k for k, v in ATTACKS.items() if v[0] is not None])
def test_an_attack_from_the_command_line_is_refused_before_hydra_runs(workdir, capsys, attack):
    overrides, _, key = ATTACKS[attack]
    key = key[0] if isinstance(key, tuple) else key
    marker = workdir / "PWNED"
    planted = overrides(marker)
    flags = [a for a in planted if a == "-m"]  # Hydra's parser takes flags before the overrides
    assert main(["train", *flags, *SMOKE, f"run_dir={workdir / 'run'}", *(a for a in planted if a != "-m")]) == 2
    _assert_refused(capsys, workdir, marker, key, "config")


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_in_a_replayed_config_file_is_refused_before_hydra_runs(workdir, capsys, attack):
    _, planted, key = ATTACKS[attack]
    key = key[1] if isinstance(key, tuple) else key
    marker = workdir / "PWNED"
    saved = OmegaConf.to_container(torchsci.compose(SMOKE))  # what a run folder's config.yaml holds
    folder = workdir / "replay"
    folder.mkdir()
    OmegaConf.save(OmegaConf.merge(saved, planted(marker)), folder / "config.yaml")
    assert main(["train", "--config-dir", str(folder), "--config-name", "config", f"run_dir={workdir / 'run'}"]) == 2
    _assert_refused(capsys, workdir, marker, key, str(folder / "config.yaml"))


def test_a_sweep_job_that_plants_an_attack_is_refused(workdir, capsys):
    """The primary config is clean; one job of the sweep picks an experiment file that adds a Hydra callback."""
    marker = workdir / "PWNED"
    folder = workdir / "replay"
    (folder / "experiment").mkdir(parents=True)
    evil = OmegaConf.create({"hydra": {"callbacks": {"pwn": _open(marker)}}})
    (folder / "experiment" / "evil.yaml").write_text("# @package _global_\n" + OmegaConf.to_yaml(evil))
    assert main(["train", "-m", "--config-dir", str(folder), *SMOKE[1:], "experiment=core/oscillator,evil",
                 f"hydra.sweep.dir={workdir / 'sweep'}"]) == 2
    err = capsys.readouterr().err
    assert "(sweep job " in err and "experiment=evil)" in err and "hydra.callbacks.pwn" in err
    assert not marker.exists() and not (workdir / "sweep").exists()


def test_experimental_rerun_unpickles_so_it_is_refused(workdir, capsys):
    marker = workdir / "PWNED"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (workdir / "config.pickle").write_bytes(pickle.dumps(Payload()))
    assert main(["train", "--experimental-rerun", str(workdir / "config.pickle")]) == 2
    assert "--experimental-rerun" in capsys.readouterr().err and not marker.exists()


def test_the_callback_payload_is_live_when_hydra_acts_unvetted(workdir, monkeypatch):
    """Control: the same overrides given to a bare hydra.main create the file, so the refusal above matters."""
    register_schema()
    marker = workdir / "PWNED"

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="torchsci")
    def bare(cfg) -> None:
        pass

    overrides, _, _ = ATTACKS["hydra.callbacks"]
    monkeypatch.setattr(sys, "argv", ["bare", *SMOKE, *overrides(marker), f"hydra.run.dir={workdir / 'out'}",
                                      "hydra/job_logging=none", "hydra/hydra_logging=none"])
    bare()
    assert marker.exists()


def test_allowed_hydra_settings_still_compose(workdir, capsys):
    """Hydra's own logging options, the shipped launchers and sweeps over config groups pass the vetting."""
    from torchsci.hydra_guard import vet_command_line

    register_schema()

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="torchsci")
    def task(cfg) -> None:
        pass

    for argv in ([*SMOKE, "hydra/job_logging=disabled"], [*SMOKE, "hydra/job_logging=stdout"],
                 [*SMOKE, "hydra/hydra_logging=hydra_debug"], [*SMOKE, "+hydra.job.env_set.OMP_NUM_THREADS=2"],
                 ["-m", *SMOKE, "hydra/launcher=slurm", "trainer.lr=1e-3,1e-2"],
                 ["-m", *SMOKE, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.lr=1e-3,1e-2"],
                 ["-m", "experiment=core/oscillator,physics/qg_tagging", "trainer=smoke"]):
        # as the torchsci command does: the plug-ins' config groups on the search path
        vet_command_line(with_search_path(argv), task, f"pkg://{CONFIG_MODULE}", "torchsci")
    assert not list(Path(workdir).iterdir())
