"""The tutorials in docs/tutorials/ run top to bottom, as a reader runs them, on tiny data (TORCHSCI_SMOKE=1).

Each jupytext percent-format ``.py`` file is read into a notebook and executed cell by cell in a fresh
Jupyter kernel (nbclient), so a failing cell fails the test with that cell's traceback. The checks after
execution are what a reader would notice: plots render inline, the Colab badge opens this tutorial's
notebook, and the Colab notebook in docs/tutorials/colab/ is the current source (``make notebooks``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"
NAMES = ("core", "chem", "physics", "neuro")
# Plots each tutorial shows inline (a cell that silently stops plotting fails here).
MIN_FIGURES = {"core": 3, "chem": 3, "physics": 3, "neuro": 3}


def read(name: str) -> nbformat.NotebookNode:
    return jupytext.read(TUTORIALS / f"{name}.py", fmt="py:percent")


def test_every_tutorial_is_tested():
    assert sorted(p.stem for p in TUTORIALS.glob("*.py")) == sorted(NAMES)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole notebook; on a loaded 2-core box the smoke run of one took 8 minutes
@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHSCI_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernel and the `torchsci` command a tutorial calls are the ones beside this Python.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    notebook = read(name)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) >= MIN_FIGURES[name], f"{name}: {len(figures)} inline figures"


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_opens_in_colab_and_installs_only_there(name):
    cells = read(name).cells
    badge = f"https://colab.research.google.com/github/torchsci/torchsci/blob/main/docs/tutorials/colab/{name}.ipynb"
    assert cells[0].cell_type == "markdown" and badge in cells[0].source
    install = next(cell for cell in cells if cell.cell_type == "code")
    assert '"google.colab" in sys.modules' in install.source and "COLAB_RELEASE_TAG" in install.source
    assert "pip" in install.source and "git+https://github.com/torchsci/torchsci" in install.source


@pytest.mark.parametrize("name", NAMES)
def test_colab_notebook_is_the_current_source(name):
    committed = nbformat.read(TUTORIALS / "colab" / f"{name}.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in read(name).cells], (
        f"docs/tutorials/colab/{name}.ipynb is stale: run `make notebooks`")
