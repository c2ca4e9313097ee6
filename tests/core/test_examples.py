"""Every example script, by enumeration: its imports resolve and its command line parses (``--help``).

Run in this interpreter (``runpy``), so the suite pays for no fresh torch import per example; the full runs
are the examples' own (their docstrings give the commands; ``tests/physics/test_reproducible_example.py``
runs one end to end).
"""

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_the_examples_are_found():
    assert len(SCRIPTS) >= 8 and {"core_demo.py", "neuro_segment.py", "chem_property.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_an_example_starts_and_prints_its_usage(script, monkeypatch, capsys):
    field = script.stem.split("_")[0]
    if field != "core":
        pytest.importorskip(f"torchsci_{field}")
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.sh")), ids=lambda p: p.stem)
def test_a_shell_example_is_valid_bash(script):
    if shutil.which("bash") is None:
        pytest.skip("no bash on this machine")
    subprocess.run(["bash", "-n", str(script)], check=True)
