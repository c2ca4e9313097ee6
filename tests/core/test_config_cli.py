"""Config-driven runs: the torchsci command on Hydra, Python parity, safe instantiation, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import torchsci
from torchsci import ConfigError
from torchsci.config import config_options
from torchsci.registry import registry

SMOKE = ["experiment=core/oscillator", "trainer=smoke", "trainer.tensorboard=false", "trainer.verbose=false",
         "data.train_size=200", "data.val_size=50", "data.test_size=50"]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchsci.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_python_and_cli_runs_agree_and_a_saved_config_reproduces_them(tmp_path):
    py = torchsci.run(torchsci.compose([*SMOKE, f"run_dir={tmp_path / 'py'}"]))
    out = cli("train", *SMOKE, f"run_dir={tmp_path / 'cli'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from_cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert from_cli["test"] == py["test"]
    timing = ("train/items_per_s",)  # wall-clock throughput differs run to run; everything else must not
    assert {k: v for k, v in from_cli["final"].items() if k not in timing} == \
        {k: v for k, v in py["final"].items() if k not in timing}

    saved = OmegaConf.load(tmp_path / "cli" / "config.yaml")
    saved.run_dir = str(tmp_path / "replay")
    assert torchsci.run(saved)["test"] == py["test"]
    replay = cli("train", "--config-dir", str(tmp_path / "cli"), "--config-name", "config",
                 f"run_dir={tmp_path / 'replay_cli'}", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert json.loads((tmp_path / "replay_cli" / "results.json").read_text())["test"] == py["test"]


def test_evaluate_and_predict_from_a_checkpoint(tmp_path):
    torchsci.run(torchsci.compose([*SMOKE, f"run_dir={tmp_path / 'run'}"]))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    scores = torchsci.run(torchsci.compose([*SMOKE, f"ckpt={ckpt}", f"run_dir={tmp_path / 'eval'}"]), "evaluate")
    assert set(scores["test"]) == {"test/loss", "test/rmse", "test/mae"}
    out = cli("predict", *SMOKE, f"ckpt={ckpt}", "predict.output=preds/x.csv", f"run_dir={tmp_path / 'pred'}",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "preds" / "x.csv").read_text().splitlines()  # relative to the cwd, not the run folder
    assert lines[0] == "prediction" and len(lines) == 51


def test_multirun_sweep_runs_each_job_in_its_own_folder(tmp_path):
    out = cli("train", "-m", *SMOKE, "trainer.lr=1e-3,1e-2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
              f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = [json.loads((tmp_path / "sweep" / str(i) / "results.json").read_text()) for i in (0, 1)]
    lrs = [OmegaConf.load(tmp_path / "sweep" / str(i) / "config.yaml").trainer.lr for i in (0, 1)]
    assert sorted(lrs) == [1e-3, 1e-2]
    assert results[0]["test"] != results[1]["test"]


@pytest.mark.parametrize(
    "attack",
    [
        "trainer.optimizer={_target_:logging.os.system,command:'touch PWNED'}",
        "trainer.optimizer={_target_:os.system,command:'touch PWNED'}",
        "+trainer.callbacks=[{_target_:subprocess.run,args:[touch,PWNED]}]",
        "+trainer.callbacks=[{_target_:torchsci.EarlyStopping,monitor:{_target_:builtins.exec,source:'open(\"PWNED\",\"w\")'}}]",
        "model={_target_:posix.system,command:'touch PWNED'}",
    ],
)
def test_configs_cannot_run_code(tmp_path, attack):
    out = cli("train", *SMOKE, attack, f"run_dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "is refused" in out.stderr
    assert not (tmp_path / "PWNED").exists()


def test_allowed_targets_build(tmp_path):
    cfg = torchsci.compose([*SMOKE, f"run_dir={tmp_path}", "trainer.optimizer={_target_:torch.optim.SGD,momentum:0.9}",
                            "trainer.scheduler={_target_:torch.optim.lr_scheduler.StepLR,step_size:2}",
                            "trainer.scheduler_interval=epoch"])
    results = torchsci.run(cfg)
    state = torchsci.load_state(results["last_checkpoint"])
    assert state["optimizer"]["param_groups"][0]["momentum"] == 0.9


@pytest.fixture
def exploding_data():
    """A dataset that fails loudly if it is ever built: config errors must be caught before data loads."""
    def explode(train_size: int = 8000, val_size: int = 1000, test_size: int = 1000, seed: int = 0):
        raise AssertionError("data was loaded before the config was checked")

    registry.register_dataset("test/explode")(explode)
    yield
    registry.datasets.pop("test/explode")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hiden=[8]", "model.hiden: unknown setting. Did you mean hidden?"),
        ("task.los=mae", "task.los: unknown setting. Did you mean loss?"),
        ("model.name=core/mpl", "no model named 'core/mpl'. Did you mean core/mlp?"),
        ("trainer.precision=fp8", "precision='fp8' is not one of 32, 64, bf16-mixed, 16-mixed"),
        ("trainer.optimizer=lion", "optimizer='lion': choose one of adam, adamw"),
        ("+model.pretrained=true", "model.pretrained: 'core/mlp' ships no weights; models that do:"),
    ],
)
def test_mistakes_are_caught_before_any_data_loads(tmp_path, exploding_data, override, message):
    cfg = torchsci.compose([*SMOKE, "data.name=test/explode", override, f"run_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        torchsci.run(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", "Did you mean trainer.max_epochs"),
        ("trainer.max_epochs=abc", "'abc' of type 'str' could not be converted to Integer"),
        ("experiment=core/oscilator", "Did you mean core/oscillator?"),
    ],
)
def test_compose_errors_name_the_key_and_close_matches(override, message):
    with pytest.raises(ConfigError, match=message):
        torchsci.compose(["experiment=core/oscillator", override])


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    out = cli("train", "experiment=core/oscillator", "trainer.max_epoch=3", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("torchsci train: error:") and "Traceback" not in out.stderr


def test_help_lists_experiments(tmp_path):
    out = cli("train", "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "experiment/core: oscillator" in out.stdout
    assert "core/oscillator" in config_options("experiment")


def test_a_dict_override_that_hydra_merges_gets_a_note_naming_the_kept_keys(tmp_path):
    # Hydra merges `data.features={...}` into the experiment's mapping: the user is told, with the replace form
    merged = cli("train", "experiment=physics/qg_two_collections", "data.features={eta: jet1P4.eta}", "--cfg", "job",
                 cwd=tmp_path)
    assert merged.returncode == 0
    assert "note: data.features={eta: jet1P4.eta} was merged" in merged.stderr and "(kept: log_pt)" in merged.stderr
    replaced = cli("train", "experiment=physics/qg_two_collections", "~data.features", "+data.features={eta: jet1P4.eta}",
                   "--cfg", "job", cwd=tmp_path)
    assert replaced.returncode == 0 and "note:" not in replaced.stderr
    assert "log_pt: log(jet1P4.pt)" not in replaced.stdout and "eta: jet1P4.eta" in replaced.stdout


def test_export_help_explains_both_forms_of_the_command(tmp_path):
    # before: `torchsci export --help` fell to Hydra and printed the training config, not the export options
    out = cli("export", "--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "--format {pt2,aoti,onnx,torchscript}" in out.stdout and "--example-shape" in out.stdout
    assert "torchsci export experiment=" in out.stdout and "max_epochs" not in out.stdout


@pytest.mark.slow
def test_installed_non_editable_package_runs_from_any_directory(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir),
                    str(repo)], check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("torchsci-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import torchsci, torchsci.configs; print(torchsci.configs.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site))  # the installed copy, not the source tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = cli("train", *SMOKE, cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stderr
    assert len(list((elsewhere / "outputs").glob("*/*_oscillator/results.json"))) == 1


def test_export_from_a_config_and_from_a_checkpoint(tmp_path):
    torchsci.run(torchsci.compose([*SMOKE, f"run_dir={tmp_path / 'run'}"]))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = torchsci.run(torchsci.compose([*SMOKE, f"ckpt={ckpt}", "export.format=onnx",
                                         f"export.output={tmp_path / 'm.onnx'}", f"run_dir={tmp_path / 'exp'}"]), "export")
    assert out["export"]["max_abs_diff"] < 1e-5 and (tmp_path / "m.onnx").is_file()
    runner = torchsci.load_exported(tmp_path / "m.onnx")
    import torch

    assert tuple(torch.as_tensor(runner(torch.randn(7, 3))).shape) == (7, 1)
    plain = cli("export", str(ckpt), "--format", "pt2", "--example-shape", "4,3", "-o", str(tmp_path / "pt2"),
                cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    wrong = cli("export", str(ckpt), "--format", "pt2", "-o", str(tmp_path / "pt2"), cwd=tmp_path)
    assert wrong.returncode == 2 and "--example-shape" in wrong.stderr and "Traceback" not in wrong.stderr


def test_shell_completion_answers_for_keys_and_groups(tmp_path):
    """What Hydra's bash completion script asks ``torchsci-train -sc query=bash`` while the user types."""
    def query(line: str) -> str:
        env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
        return cli("train", "-sc", "query=bash", cwd=tmp_path, env=env).stdout

    assert "trainer.max_epochs=" in query("torchsci-train trainer.max_").split()
    assert "experiment/" in query("torchsci-train exp").split()
    script = cli("train", "-sc", "install=bash", cwd=tmp_path).stdout
    assert "complete" in script and "torchsci-train" in script
