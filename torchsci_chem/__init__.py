"""torchsci_chem: molecular property prediction from SMILES on torchsci.

RDKit featurisation (:mod:`torchsci_chem.featurize`, over :mod:`~torchsci_chem.molecules`,
:mod:`~torchsci_chem.graphs` and :mod:`~torchsci_chem.fingerprints`), CSV/SDF datasets and splits
(:mod:`torchsci_chem.datasets`), a D-MPNN and a fingerprint MLP (:mod:`torchsci_chem.models`), the
``chem/property`` task (:mod:`torchsci_chem.task`) and a pretrained ESOL solubility model one call away
(:func:`predict`). Importing this package imports neither RDKit nor torch; :func:`register` does.
"""

from __future__ import annotations

import importlib
from typing import Any

# The verb, imported on first use (PEP 562: this package imports neither RDKit nor torch) and returned as
# the real function, so ``inspect.signature`` and ``help()`` show its parameters.
_VERBS = {"predict": "torchsci_chem.inference", "predict_file": "torchsci_chem.inference"}

__all__ = ["predict", "predict_file", "register"]


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'torchsci_chem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_VERBS})


def register(registry) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models, datasets, task and commands."""
    registry.require("rdkit", "sklearn", extra="chem")  # absent, not fatal, without them (docs/plugins.md)
    from torchsci_chem import datasets, inference, models
    from torchsci_chem.task import PropertyTask

    models.register(registry)
    datasets.register(registry)
    registry.register_task("chem/property")(PropertyTask)
    registry.register_command("chem", inference.add_commands)
    registry.register_configs("torchsci_chem.configs")  # experiment/chem/... (docs/plugins.md)
