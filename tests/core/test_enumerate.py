"""Testing by enumeration: every experiment config of every plug-in composes and validates."""

import pytest

import torchsci
from torchsci.config import config_options, validate


@pytest.mark.parametrize("experiment", config_options("experiment"))
def test_every_experiment_config_composes_and_validates(experiment):
    cfg = torchsci.compose([f"experiment={experiment}"])
    validate(cfg)  # registry names and every argument checked against the factories' real signatures
    assert cfg.model and cfg.data and cfg.task
