"""The docs site's own extension (docs/_ext/torchsci_docs.py): the CLI reference and cross-reference resolution."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_ext"))
import torchsci_docs  # noqa: E402

import torchsci  # noqa: E402


def test_the_cli_reference_lists_every_command_of_every_plugin():
    paths = [" ".join(p) for p in torchsci_docs.command_paths()]
    assert paths[0] == "" and {"train", "export", "export CHECKPOINT", "models", "env"} <= set(paths)
    for field in torchsci.registry.registry.commands:
        assert field in paths
        assert any(p.startswith(f"{field} ") for p in paths), f"no subcommand of {field} in the reference"


@pytest.mark.parametrize("path", [["neuro", "segment"], ["export", "CHECKPOINT"], ["train"]])
def test_help_text_is_what_the_command_prints(path):
    text = torchsci_docs.help_text(path)
    assert ("usage: torchsci" in text) or ("experiment" in text)
    if path == ["train"]:
        assert "experiment/core: oscillator" in text  # Hydra's help lists the experiments found


@pytest.mark.parametrize(("target", "module", "want"), [
    ("torchsci.DataError", None, "torchsci.errors.DataError"),        # a public alias
    ("torchsci.Trainer.fit", None, "torchsci.trainer.Trainer.fit"),   # a method through an alias
    ("DataError", "torchsci_chem.featurize", "torchsci.errors.DataError"),  # a name the module imports
    ("torchsci.registry", None, "torchsci.registry"),                 # the module (it no longer holds the instance)
    ("torch.Tensor", None, "torch.Tensor"),                           # external: found, not ours
    ("FloatingPointError", "torchsci.trainer", "builtins.FloatingPointError"),  # a builtin base class
    ("NoSuchName", "torchsci", None),
])
def test_references_resolve_as_python_resolves_names(target, module, want):
    assert torchsci_docs.canonical_name(target, module) == want
