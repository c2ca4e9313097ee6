"""Sphinx configuration of the torchsci documentation site (``make docs`` builds it into docs/_build/html).

Warnings are errors (``-W`` in the Makefile) and every cross-reference must resolve (``nitpicky``); the
tutorials in ``tutorials/`` are jupytext percent-format ``.py`` notebooks that myst-nb executes (cached
in ``_build/<full|smoke>/.jupyter_cache``, so an unchanged notebook is not run again) and the build fails on any
error in a cell. ``TORCHSCI_SMOKE=1`` makes the tutorials run on tiny data (what CI builds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import torchsci  # noqa: E402

project = "torchsci"
author = "the torchsci authors"
copyright = "the torchsci authors"  # noqa: A001 (Sphinx's name)
release = version = torchsci.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
    "torchsci_docs",
]

exclude_patterns = ["_build", "_ext", "conf.py", "check_site.py", "tutorials/colab", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- API reference: autosummary writes one page per module into api/generated/ ------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = True
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_inherit_docstrings = False  # an undocumented forward() would show nn.Module.forward's text
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types; signatures stay readable
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False

# Every reference must resolve. This build is offline (no intersphinx inventories can be downloaded), so
# names of other projects (torch, numpy, nibabel, ...) cannot resolve and are the only ones let through;
# a broken reference to a torchsci name still fails the build.
nitpicky = True
EXTERNAL = ("torch", "numpy", "np", "nibabel", "nib", "uproot", "awkward", "ak", "rdkit", "Chem", "omegaconf",
            "hydra", "scipy", "argparse", "pathlib", "os", "collections", "typing", "types", "dataclasses",
            "onnxruntime", "nn", "tqdm", "matplotlib", "PIL", "contextlib", "enum", "abc", "logging")
nitpick_ignore_regex = [
    ("py:.*", rf"({'|'.join(EXTERNAL)})(\..*)?"),
    ("py:class", r"(Any|Callable|Sequence|Mapping|Iterable|Iterator|Path|T|optional|callable)"),
    ("py:class", r"(int|float|str|bool|dict|list|tuple|bytes|object|None|type)"),
]

# --- tutorials: myst-nb executes the jupytext notebooks ------------------------------------------------------
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("TORCHSCI_DOCS_EXECUTE", "cache")
# Smoke and full executions are cached apart: the cache is keyed on the notebook's code, not on the environment.
SMOKE = os.environ.get("TORCHSCI_SMOKE") == "1"
nb_execution_cache_path = str(HERE / "_build" / ("smoke" if SMOKE else "full") / ".jupyter_cache")
nb_execution_in_temp = True
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 1800
nb_execution_excludepatterns: list[str] = []
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# --- HTML ---------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"torchsci {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
