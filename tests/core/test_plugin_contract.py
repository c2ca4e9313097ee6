"""The plug-in contract (docs/plugins.md): a field whose libraries are missing is absent, never fatal."""

import subprocess
import sys
from pathlib import Path

import pytest

import torchsci
from torchsci.registry import Registry

STORY = Path(__file__).parents[1] / "extras_story.py"


FIELDS = ["core", "neuro", "physics", "chem"]


@pytest.fixture(scope="module")
def stories():
    # All four at once: each is a fresh interpreter importing torch, mostly waiting on imports.
    procs = {f: subprocess.Popen([sys.executable, str(STORY), f, "--hide"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for f in FIELDS}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("field", FIELDS)
def test_each_extra_alone_runs_its_story_and_the_others_are_absent(stories, field):
    # The other fields' libraries are hidden from the import system, as in `pip install 'torchsci[<field>]'`.
    out, err = stories[field].communicate(timeout=600)
    assert stories[field].returncode == 0, out[-3000:] + err[-3000:]
    assert f"story {field} ok" in out


def test_a_plugin_failing_inside_register_leaves_nothing_behind(monkeypatch):
    torchsci.registry.load_plugins()  # the suite's registry, before entry points are replaced below
    reg = Registry()

    class EntryPoint:
        name, value, dist = "halfway", "halfway:register", None

        def load(self):
            def register(registry):
                registry.register_model("halfway/net")(lambda: None)
                registry.register_configs("halfway.configs")
                registry.require("no_such_field_library_xyz", extra="halfway")

            return register

    monkeypatch.setattr(sys.modules["torchsci.registry"], "entry_points", lambda group: [EntryPoint()])
    reg.load_plugins()
    assert "halfway/net" not in reg.models and "halfway.configs" not in reg.configs
    assert reg.unavailable == {"halfway": "needs no_such_field_library_xyz, not installed "
                                          "(pip install 'torchsci[halfway]')"}


def test_a_factory_hiding_its_arguments_is_refused_at_registration():
    reg = Registry()
    with pytest.raises(torchsci.RegistryError, match=r"takes \*\*kwargs.*forwards_to"):
        reg.register_model("toy/opaque")(lambda **kwargs: None)
    with pytest.raises(torchsci.RegistryError, match=r"dataset 'toy/opaque'"):
        reg.register_dataset("toy/opaque")(lambda **kwargs: None)


def test_a_misspelt_model_argument_is_one_config_error_naming_close_matches():
    # chem/dmpnn used to be dmpnn(**kwargs): the typo passed validation and died later in a bare TypeError.
    from torchsci.config import validate

    with pytest.raises(torchsci.ConfigError, match="model.hiddn: unknown setting. Did you mean hidden"):
        validate(torchsci.compose(["experiment=chem/esol", "model.hiddn=300"]))
    with pytest.raises(torchsci.ConfigError, match="data.max_rotation: unknown setting. Did you mean max_rotation_deg"):
        validate(torchsci.compose(["experiment=neuro/synth_tissue", "data.max_rotation=3"]))
    validate(torchsci.compose(["experiment=chem/esol", "model.hidden=64", "model.dropout=0.1"]))


def test_every_registered_factory_has_a_real_signature():
    import inspect

    torchsci.registry.load_plugins()
    tables = {"model": {n: e.factory for n, e in torchsci.registry.registry.models.items()},
              "dataset": torchsci.registry.registry.datasets, "task": torchsci.registry.registry.tasks}
    for kind, table in tables.items():
        for name, factory in table.items():
            params = inspect.signature(factory).parameters.values()
            assert not any(p.kind is p.VAR_KEYWORD for p in params), f"{kind} {name}: {inspect.signature(factory)}"


TOY = Path(__file__).parents[1] / "toyfield" / "run_toy.py"


@pytest.mark.slow
def test_a_fourth_field_plugs_in_through_its_entry_point_alone(tmp_path):
    # tests/toyfield/torchsci_toy: one model, one config group, one command; torchsci/ and configs/ unchanged.
    commands = [["models", "toy/*"], ["toy", "hello", "lab"],
                ["train", "experiment=toy/line", f"run_dir={tmp_path / 'run'}"],
                ["train", "experiment=toy/line", "model.in_featres=3"]]
    argv = [a for c in commands for a in [":::", *c]][1:]
    done = subprocess.run([sys.executable, str(TOY), str(tmp_path / "site"), *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    chunks = done.stdout.split("== exit ")  # chunk k+1 starts with command k's exit code
    codes = [int(chunk.split("\n", 1)[0]) for chunk in chunks[1:]]
    outputs = [chunks[0], *(chunk.split("\n", 1)[1] for chunk in chunks[1:-1])]
    errors = done.stderr.split("== exit")
    assert codes == [0, 0, 0, 2], (codes, done.stderr[-3000:])
    assert outputs[0].split() == ["toy/line"]
    assert outputs[1].strip() == "hello from the toy field, lab"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "model.in_featres: unknown setting. Did you mean in_features" in errors[3]


def test_plugin_experiments_come_from_the_plugin_packages():
    from torchsci.config import config_options

    configs = Path(__file__).parents[2] / "configs"
    assert sorted(p.name for p in (configs / "experiment").iterdir()) == ["core"]
    experiments = config_options("experiment")
    assert {"core/oscillator", "neuro/segment", "physics/qg_tagging", "chem/esol"} <= set(experiments)
    assert torchsci.compose(["experiment=neuro/segment"]).model.name == "neuro/unet3d"
    with pytest.raises(torchsci.ConfigError, match="experiment=chem/esl does not exist. Did you mean chem/esol"):
        torchsci.compose(["experiment=chem/esl"])


def test_config_dir_adds_a_users_own_experiments_and_groups(tmp_path):
    (tmp_path / "experiment" / "mine").mkdir(parents=True)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("name: core/mlp\nhidden: [4]\n")
    (tmp_path / "experiment" / "mine" / "toy.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny\n  - override /data: oscillator\n"
        "  - override /task: regression\nname: mine\n")
    cfg = torchsci.compose(["experiment=mine/toy"], config_dir=tmp_path)
    assert cfg.model.hidden == [4] and cfg.data.name == "core/oscillator"
    with pytest.raises(torchsci.ConfigError, match="experiment=mine/tyo does not exist. Did you mean mine/toy"):
        torchsci.compose(["experiment=mine/tyo"], config_dir=tmp_path)
    job = subprocess.run([sys.executable, "-m", "torchsci.cli", "train", "--config-dir", str(tmp_path),
                          "experiment=mine/toy", "--cfg", "job"], capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr
    assert "name: mine" in job.stdout and "- 4" in job.stdout
