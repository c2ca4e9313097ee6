"""torchsci_chem: molecular property prediction from SMILES on torchsci.

RDKit featurisation (:mod:`torchsci_chem.featurize`), CSV/SDF datasets and splits
(:mod:`torchsci_chem.datasets`), a D-MPNN and a fingerprint MLP (:mod:`torchsci_chem.models`), the
``chem/property`` task (:mod:`torchsci_chem.task`) and a pretrained ESOL solubility model one call away
(:func:`predict`). Importing this package imports neither RDKit nor torch; :func:`register` does.
"""

from __future__ import annotations

from typing import Any


def predict(*args: Any, **kwargs: Any) -> Any:
    """Predict molecular properties; see :func:`torchsci_chem.inference.predict`."""
    from torchsci_chem.inference import predict as _predict  # noqa: PLC0415

    return _predict(*args, **kwargs)


def register(registry) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models, datasets, task and commands."""
    registry.require("rdkit", "sklearn", extra="chem")  # absent, not fatal, without them (docs/plugins.md)
    from torchsci_chem import datasets, inference, models  # noqa: PLC0415
    from torchsci_chem.task import PropertyTask  # noqa: PLC0415

    models.register(registry)
    datasets.register(registry)
    registry.register_task("chem/property")(PropertyTask)
    registry.register_command("chem", inference.add_commands)
    registry.register_configs("torchsci_chem.configs")  # experiment/chem/... (docs/plugins.md)
