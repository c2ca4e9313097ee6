"""ONNX export of the D-MPNN with dynamic numbers of atoms, bonds and molecules (dynamo exporter, onnxruntime).

The legacy exporter silently miscomputes index_add with repeated indices (FIELD_NOTES); the dynamo
exporter is the one used here, and parity is checked on a batch of other sizes than the traced one.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from torchsci_chem.featurize import collate_graphs, featurize
from torchsci_chem.models import DMPNN


def test_onnx_export_is_exact_on_molecules_of_other_sizes(tmp_path):
    torch.manual_seed(0)
    model = DMPNN(hidden=32, ffn_hidden=16, target_mean=[-3.0], target_std=[2.0]).eval()
    traced = collate_graphs(featurize(["CC(=O)Oc1ccccc1C(=O)O", "CCO", "C/C=C/Cl"]).graphs).inputs()
    atoms, edges, mols = torch.export.Dim("atoms"), torch.export.Dim("edges"), torch.export.Dim("molecules")
    dynamic = ({0: atoms}, {0: edges}, {1: edges}, {0: atoms}, {0: mols})
    path = tmp_path / "dmpnn.onnx"
    torch.onnx.export(model, traced, f=str(path), dynamo=True, dynamic_shapes=dynamic)
    other = collate_graphs(featurize(["c1ccc2ccccc2c1", "[Na+]", "CCCCCCCCN", "OCC(N)C(=O)O"]).graphs).inputs()
    session = ort.InferenceSession(str(path))
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), other, strict=True)}
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        want = model(*other).numpy()
    assert got.shape == (4, 1) and np.abs(got - want).max() < 1e-5
