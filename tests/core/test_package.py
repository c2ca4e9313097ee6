"""Packaging: the core imports no field library, and the command line works."""

from __future__ import annotations

import json
import subprocess
import sys

DOMAIN = ["nibabel", "skimage", "uproot", "awkward", "vector", "rdkit", "hydra", "matplotlib", "sklearn",
          "tensorboard", "onnx", "onnxruntime",
          # heavy parts of torch that only export/compile need (sympy alone costs ~1 s of import time)
          "sympy", "torch.fx.experimental.symbolic_shapes", "torch._inductor"]


def test_import_torchsci_imports_no_domain_library():
    code = f"import sys, json, torchsci; print(json.dumps([m for m in {DOMAIN!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_cli_lists_models_and_environment():
    out = subprocess.run([sys.executable, "-m", "torchsci.cli", "models"], check=True, capture_output=True, text=True)
    assert "core/mlp" in out.stdout.split()
    env = subprocess.run([sys.executable, "-m", "torchsci.cli", "env"], check=True, capture_output=True, text=True)
    assert "device='auto' resolves to: cpu" in env.stdout or "cuda" in env.stdout
    bad = subprocess.run([sys.executable, "-m", "torchsci.cli", "models", "nothing/*"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == ""


def test_every_shipped_folder_is_listed_in_the_packages():
    # setuptools warns about (and will stop installing) data folders missing from `packages`; a new config group
    # or data folder must be added to pyproject.toml's list.
    from pathlib import Path

    import tomllib

    root = Path(__file__).parents[2]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"torchsci.configs"} | {"torchsci.configs." + ".".join(p.relative_to(root / "configs").parts)
                                      for p in (root / "configs").rglob("*") if p.is_dir() and p.name != "__pycache__"}
    for plugin in ("torchsci", "torchsci_neuro", "torchsci_physics", "torchsci_chem"):
        on_disk |= {".".join(p.relative_to(root).parts) for p in [root / plugin, *(root / plugin).rglob("*")]
                    if p.is_dir() and p.name != "__pycache__"}
    assert listed == on_disk
