"""Which atoms push a prediction up or down: gradient x input per atom, drawn on the molecule with RDKit.

An atom's attribution is the sum over its feature columns of (d prediction / d feature) x feature, for
one task of a graph model. It is a local, first-order explanation of this model, not a measured
contribution of the atom to the property; read the sign and ranking, not the magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from torchsci.errors import ConfigError
from torchsci.io import atomic_output, check_output
from torchsci_chem.featurize import featurize, parse_smiles
from torchsci_chem.inference import core_module, load, model_inputs


def atom_attributions(smiles: str, model: str | Path | nn.Module = "esol", task: int = 0) -> np.ndarray:
    """Gradient x input of the prediction for ``task`` with respect to each atom's features, ``(n_atoms,)``.

    Examples
    --------
    >>> from torchsci_chem.attribution import atom_attributions
    >>> atom_attributions("c1ccccc1O", model="esol").shape
    (7,)
    """
    net = load(model)
    if not getattr(core_module(net), "takes_graph", True):
        raise ConfigError(f"{type(net).__name__} does not see atoms; attributions need a graph model (chem/dmpnn).")
    inputs = next(model_inputs(net, featurize([smiles]).graphs, [smiles]))
    atoms = inputs[0].detach().requires_grad_(True)
    prediction = net(atoms, *inputs[1:])[0, task]
    (grad,) = torch.autograd.grad(prediction, atoms)
    return (grad * atoms).sum(dim=1).detach().double().numpy()


def draw_attributions(smiles: str, path: str | Path, model: str | Path | nn.Module = "esol", task: int = 0,
                      size: tuple[int, int] = (400, 400)) -> np.ndarray:
    """Draw :func:`atom_attributions` on the molecule as a PNG (green raises the prediction, pink lowers it).

    Returns the attributions that were drawn.
    """
    from rdkit.Chem.Draw import SimilarityMaps, rdMolDraw2D  # lazy: drawing needs Cairo

    inputs = [model] if isinstance(model, (str, Path)) and Path(model).is_file() else []
    check_output(path, inputs, suffixes=(".png",), what="attribution image")  # before the model runs
    weights = atom_attributions(smiles, model, task)
    drawer = rdMolDraw2D.MolDraw2DCairo(*size)
    SimilarityMaps.GetSimilarityMapFromWeights(parse_smiles(smiles), weights.tolist(), draw2d=drawer)
    drawer.FinishDrawing()
    with atomic_output(path, inputs, suffixes=(".png",), what="attribution image") as tmp:
        tmp.write_bytes(drawer.GetDrawingText())
    return weights
