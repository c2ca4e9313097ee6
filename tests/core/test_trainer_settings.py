"""Trainer settings have one source, the Trainer's signature: every argument is a config setting."""

import dataclasses
import inspect

import pytest

import torchsci
from torchsci.config import RUN_LEVEL, TrainerConfig
from torchsci.runner import build_trainer


def test_every_trainer_argument_is_a_config_setting_with_the_trainers_default():
    params = {n: p for n, p in inspect.signature(torchsci.Trainer.__init__).parameters.items()
              if n != "self" and n not in RUN_LEVEL}
    fields = {f.name: f for f in dataclasses.fields(TrainerConfig)}
    assert list(fields) == list(params)
    for name, param in params.items():
        default = fields[name].default if fields[name].default is not dataclasses.MISSING else fields[name].default_factory()
        assert default == (list(param.default) if isinstance(param.default, tuple) else param.default), name
    assert set(RUN_LEVEL) <= {f.name for f in dataclasses.fields(torchsci.config.RunConfig)}


def test_compile_is_settable_from_a_config(tmp_path):
    cfg = torchsci.compose(["experiment=core/oscillator", "trainer.compile=true"])
    assert cfg.trainer.compile is True
    assert build_trainer(cfg, tmp_path).compile is True
    cfg = torchsci.compose(["experiment=core/oscillator", "trainer.compile={mode:max-autotune-no-cudagraphs}"])
    assert build_trainer(cfg, tmp_path).compile == {"mode": "max-autotune-no-cudagraphs"}


@pytest.mark.parametrize(("override", "value"), [("trainer.max_steps=7", 7), ("trainer.gradient_clip_norm=0.5", 0.5),
                                                 ("trainer.progress=false", False), ("trainer.drop_last=true", True)])
def test_settings_reach_the_trainer(tmp_path, override, value):
    key = override.split("=")[0].split(".")[1]
    trainer = build_trainer(torchsci.compose(["experiment=core/oscillator", override]), tmp_path)
    got = {"max_steps": trainer.max_steps, "gradient_clip_norm": trainer.clip, "progress": trainer.progress,
           "drop_last": trainer.drop_last}[key]
    assert got == value


def test_a_bad_value_still_names_the_setting():
    with pytest.raises(torchsci.ConfigError, match="max_steps"):
        torchsci.compose(["experiment=core/oscillator", "trainer.max_steps=abc"])
    with pytest.raises(torchsci.ConfigError, match="Did you mean trainer.compile"):
        torchsci.compose(["experiment=core/oscillator", "trainer.compil=true"])
