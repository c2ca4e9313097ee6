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
    tables = {"model": {n: e.factory for n, e in torchsci.registry.models.items()},
              "dataset": torchsci.registry.datasets, "task": torchsci.registry.tasks}
    for kind, table in tables.items():
        for name, factory in table.items():
            params = inspect.signature(factory).parameters.values()
            assert not any(p.kind is p.VAR_KEYWORD for p in params), f"{kind} {name}: {inspect.signature(factory)}"
