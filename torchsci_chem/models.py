"""Property-prediction networks on molecules, in plain torch (no PyG/DGL).

:class:`DMPNN` is the directed message-passing network of chemprop (Yang et al., J. Chem. Inf. Model.
2019, 59, 3370): hidden states live on directed bonds; the message into bond ``u -> v`` sums the states
of the bonds entering ``u`` except the reverse bond ``v -> u``, and the new state is
``relu(W_i [x_u, e_uv] + W_h message)``; after ``depth`` steps the bond states
entering each atom are summed, combined with the atom's features and read out per molecule. Every
aggregation is ``index_add``, so the number of atoms, bonds and molecules are dynamic shapes in
``torch.export``.

Each model carries the target standardisation of its training data as buffers (``target_mean``,
``target_std``) and returns predictions in the original units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchsci.errors import ConfigError
from torchsci.models import MLP
from torchsci.registry import PretrainedWeights, forwards_to
from torchsci_chem.descriptors import RDKIT2D_V1
from torchsci_chem.featurize import ATOM_FEATURES, BOND_FEATURES
from torchsci_chem.standardize import DEFAULT_STANDARDIZE


def _vector(values: Sequence[float] | None, size: int, fill: float) -> torch.Tensor:
    if values is None:
        return torch.full((size,), fill)
    t = torch.as_tensor(list(values), dtype=torch.float32)
    if t.shape != (size,):
        raise ConfigError(f"expected {size} standardisation values, got {tuple(t.shape)}.")
    return t


class _Standardised(nn.Module):
    """Buffers for target (and extra-feature) standardisation fitted on a training split."""

    def _init_scales(self, num_tasks: int, extra_features: int, target_mean, target_std, extra_mean, extra_std):
        self.register_buffer("target_mean", _vector(target_mean, num_tasks, 0.0))
        self.register_buffer("target_std", _vector(target_std, num_tasks, 1.0))
        self.register_buffer("extra_mean", _vector(extra_mean, extra_features, 0.0))
        self.register_buffer("extra_std", _vector(extra_std, extra_features, 1.0))

    def _init_kind(self, task_kind: str, num_classes: int, num_tasks: int) -> None:
        if task_kind not in ("regression", "classification", "multiclass"):
            raise ConfigError(f"task_kind={task_kind!r}: use 'regression', 'classification' or 'multiclass'.")
        if task_kind == "multiclass" and (num_classes < 2 or num_tasks % num_classes):
            raise ConfigError(f"task_kind='multiclass' needs num_classes >= 2 dividing num_tasks={num_tasks} "
                              f"(num_tasks = n_targets * num_classes), got num_classes={num_classes}.")
        self.task_kind, self.num_classes = task_kind, (num_classes if task_kind == "multiclass" else 0)

    def _scale_extra(self, extra: torch.Tensor) -> torch.Tensor:
        # Clamped because descriptors of unusual molecules can sit far outside the training range.
        return ((extra - self.extra_mean) / self.extra_std).clamp(-10.0, 10.0)

    def _unscale(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.target_std + self.target_mean

    def _init_descriptors(self, names: Sequence[str], rdkit_version: str | None) -> None:
        self.descriptor_names = tuple(names)
        self.descriptor_rdkit = rdkit_version
        if not names:
            return
        from torchsci_chem.descriptors import reference_values

        if len(names) != self.extra_features:
            raise ConfigError(f"{len(names)} descriptor_names for extra_features={self.extra_features}; they must match.")
        # Values of the installed RDKit now; a loaded state dict replaces them with the training-time values,
        # which the hook below checks against a fresh computation.
        self.register_buffer("descriptor_reference", torch.from_numpy(reference_values(names)))
        self.register_load_state_dict_post_hook(_check_descriptors)


def _check_descriptors(module: nn.Module, incompatible) -> None:
    from torchsci_chem.descriptors import check_reference

    check_reference(module.descriptor_names, module.descriptor_reference.cpu().numpy(),
                    module.descriptor_rdkit or "unknown")


class DMPNN(_Standardised):
    """Directed message-passing neural network (chemprop's D-MPNN) with an MLP head.

    Parameters
    ----------
    atom_features, bond_features
        Widths of the atom and bond feature rows (:mod:`torchsci_chem.featurize` defaults).
    hidden, depth
        Width of the bond states and number of message-passing steps.
    readout
        ``"mean"``, ``"sum"`` or ``"norm"`` (sum / 100) over each molecule's atoms.
    ffn_hidden, ffn_layers
        Width and number of layers of the head.
    dropout
        Dropout on messages and in the head.
    num_tasks
        Outputs per molecule.
    extra_features, extra_kind
        Width and kind (``"descriptors"``, ``"morgan"``, ...; see
        :func:`torchsci_chem.featurize.molecule_features`) of optional per-molecule features
        concatenated before the head; the kind lets :func:`torchsci_chem.predict` recompute them.
    uncertainty
        ``"mve"`` (mean-variance estimation): the head also predicts a variance per task, and the output
        is ``(n_molecules, 2 * num_tasks)``, the means then the variances, both in original units;
        train it with :class:`torchsci_chem.task.PropertyTask`, which then minimises the Gaussian NLL.
    target_mean, target_std, extra_mean, extra_std
        Standardisation fitted on the training split (predictions come back in original units).
    descriptor_names, descriptor_rdkit
        The named descriptors (:mod:`torchsci_chem.descriptors`) that are the extra features, and the RDKit
        version they were computed with. The model then holds their values on the reference panel
        (buffer ``descriptor_reference``); loading a state dict checks them against the installed RDKit
        and raises :class:`~torchsci_chem.descriptors.DescriptorMismatchError` naming the descriptor.
    standardize
        Standardisation steps (:mod:`torchsci_chem.standardize`) of the training molecules, which
        :func:`torchsci_chem.predict` applies to new ones.
    task_kind, num_classes
        What the outputs are: ``"regression"`` (values in original units), ``"classification"`` (one logit
        per binary task) or ``"multiclass"`` (``num_classes`` logits per task, task-major, so
        ``num_tasks = n_targets * num_classes``); :func:`torchsci_chem.predict` turns logits into
        probabilities. Set by the ``chem/csv`` dataset's ``task=``.

    Examples
    --------
    >>> from torchsci_chem.featurize import collate_graphs, featurize
    >>> from torchsci_chem.models import DMPNN
    >>> batch = collate_graphs(featurize(["CCO", "c1ccccc1O", "[Na+]"]).graphs)
    >>> DMPNN(hidden=32)(*batch.inputs()).shape
    torch.Size([3, 1])
    """

    takes_graph = True

    def __init__(self, atom_features: int = ATOM_FEATURES, bond_features: int = BOND_FEATURES, hidden: int = 300,
                 depth: int = 3, readout: str = "mean", ffn_hidden: int = 300, ffn_layers: int = 2,
                 dropout: float = 0.0, num_tasks: int = 1, extra_features: int = 0, extra_kind: str | None = None,
                 uncertainty: str | None = None,
                 target_mean: Sequence[float] | None = None, target_std: Sequence[float] | None = None,
                 extra_mean: Sequence[float] | None = None, extra_std: Sequence[float] | None = None,
                 descriptor_names: Sequence[str] = (), descriptor_rdkit: str | None = None,
                 standardize: Sequence[str] = (), task_kind: str = "regression", num_classes: int = 0) -> None:
        super().__init__()
        self._init_kind(task_kind, num_classes, num_tasks)
        if uncertainty not in (None, "mve"):
            raise ConfigError(f"DMPNN(uncertainty={uncertainty!r}): use None or 'mve'.")
        self.predicts_variance = uncertainty == "mve"
        if readout not in ("mean", "sum", "norm"):
            raise ConfigError(f"DMPNN(readout={readout!r}): use 'mean', 'sum' or 'norm'.")
        if depth < 1:
            raise ConfigError(f"DMPNN(depth={depth}): at least one message-passing step is needed.")
        self.depth, self.readout, self.hidden = depth, readout, hidden
        self.extra_features, self.extra_kind = extra_features, extra_kind
        self.w_i = nn.Linear(atom_features + bond_features, hidden, bias=False)
        self.w_h = nn.Linear(hidden, hidden, bias=False)
        self.w_o = nn.Linear(atom_features + hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        outputs = 2 * num_tasks if self.predicts_variance else num_tasks
        self.head = MLP(hidden + extra_features, outputs, hidden=(ffn_hidden,) * (ffn_layers - 1), dropout=dropout)
        self._init_scales(num_tasks, extra_features, target_mean, target_std, extra_mean, extra_std)
        self.standardize = tuple(standardize)
        self._init_descriptors(descriptor_names, descriptor_rdkit)

    def encode(self, atoms: torch.Tensor, bonds: torch.Tensor, edge_index: torch.Tensor, molecule: torch.Tensor,
               molecule_sizes: torch.Tensor) -> torch.Tensor:
        """One learned vector per molecule, ``(n_molecules, hidden)``; edges ``2i``/``2i+1`` must be reverses."""
        src, dst = edge_index[0], edge_index[1]
        hidden = self.hidden
        # As in chemprop, every update adds the pre-activation input h0, not relu(h0): on ESOL's five random
        # splits the mean test RMSE went from 0.741 to 0.668 with this alone (benchmarks/README.md).
        h0 = self.w_i(torch.cat([atoms.index_select(0, src), bonds], dim=1))
        h = torch.relu(h0)
        # In-place updates of fresh tensors: the same arithmetic in the same order (bitwise equal outputs), one
        # pass over the edge tensors fewer per op; the forward took 0.47 s instead of 0.58 s per 2,048 molecules
        # (one thread, batches of 64). An edge's reverse is its partner in the (2i, 2i+1) pair: without autograd,
        # each half of the pairs subtracts the other half in place (no reversed copy, 5% off the forward); with
        # it, a gather by the reverse index (its backward a scatter; a flip, or in-place ops on views, were
        # slower there). Every form computes bitwise the same messages (tests/chem/test_models.py).
        reverse = torch.arange(h.shape[0], device=h.device) ^ 1 if h.requires_grad else None  # 2i <-> 2i + 1
        for _ in range(self.depth - 1):
            into_atom = h.new_zeros((atoms.shape[0], hidden)).index_add_(0, dst, h)
            message = into_atom.index_select(0, src)
            if reverse is not None:
                message = message.sub_(h.index_select(0, reverse))
            else:
                halves, h_halves = message.view(-1, 2, hidden), h.view(-1, 2, hidden)
                halves[:, 0].sub_(h_halves[:, 1])
                halves[:, 1].sub_(h_halves[:, 0])
            h = self.dropout(torch.relu_(self.w_h(message).add_(h0)))
        into_atom = h.new_zeros((atoms.shape[0], hidden)).index_add_(0, dst, h)
        atom_h = self.dropout(torch.relu_(self.w_o(torch.cat([atoms, into_atom], dim=1))))
        pooled = atom_h.new_zeros((molecule_sizes.shape[0], hidden)).index_add_(0, molecule, atom_h)
        if self.readout == "mean":
            pooled = pooled / molecule_sizes.clamp_min(1).unsqueeze(1).to(pooled.dtype)
        elif self.readout == "norm":
            pooled = pooled / 100.0
        return pooled

    def forward(self, atoms: torch.Tensor, bonds: torch.Tensor, edge_index: torch.Tensor, molecule: torch.Tensor,
                molecule_sizes: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        z = self.encode(atoms, bonds, edge_index, molecule, molecule_sizes)
        if self.extra_features:
            if extra is None:
                raise ConfigError(f"this DMPNN was built with extra_features={self.extra_features}; pass the "
                                  "per-molecule extra features (GraphBatch.extra).")
            z = torch.cat([z, self._scale_extra(extra)], dim=1)
        out = self.head(z)
        if not self.predicts_variance:
            return self._unscale(out)
        mean, raw = out.chunk(2, dim=1)
        variance = (torch.nn.functional.softplus(raw) + 1e-6) * self.target_std ** 2
        return torch.cat([self._unscale(mean), variance], dim=1)


class DMPNNEnsemble(nn.Module):
    """Several independently trained :class:`DMPNN` s; the forward pass is their mean prediction.

    :meth:`forward_members` gives every member's prediction, whose spread across members is the
    ensemble's uncertainty estimate.

    Parameters
    ----------
    members
        Number of D-MPNNs; the other keyword arguments go to each.
    calibration_size
        Number of validation molecules whose conformal scores (buffer ``conformal_scores``, with
        ``conformal_beta``; see :mod:`torchsci_chem.uncertainty`) the ensemble holds for calibrated
        intervals; 0: none.
    domain_size
        Number of training molecules whose packed fingerprints (buffer ``domain_fingerprints``, with the
        in-domain threshold ``domain_threshold``; see :mod:`torchsci_chem.domain`) the ensemble holds; 0: none.
    """

    takes_graph = True

    def __init__(self, members: int = 5, calibration_size: int = 0, domain_size: int = 0, **kwargs) -> None:
        super().__init__()
        if members < 1:
            raise ConfigError(f"DMPNNEnsemble(members={members}): need at least one member.")
        self.members = nn.ModuleList(DMPNN(**kwargs) for _ in range(members))
        self.calibration_size, self.domain_size = calibration_size, domain_size
        if calibration_size:
            self.register_buffer("conformal_scores", torch.zeros(calibration_size, dtype=torch.float64))
            self.register_buffer("conformal_beta", torch.ones(1, dtype=torch.float64))
        if domain_size:
            from torchsci_chem.domain import PACKED_BYTES

            self.register_buffer("domain_fingerprints", torch.zeros(domain_size, PACKED_BYTES, dtype=torch.uint8))
            self.register_buffer("domain_threshold", torch.zeros(1, dtype=torch.float64))

    def forward_members(self, atoms: torch.Tensor, bonds: torch.Tensor, edge_index: torch.Tensor,
                        molecule: torch.Tensor, molecule_sizes: torch.Tensor,
                        extra: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions of every member, ``(members, n_molecules, num_tasks)``."""
        return torch.stack([m(atoms, bonds, edge_index, molecule, molecule_sizes, extra) for m in self.members])

    def forward(self, atoms: torch.Tensor, bonds: torch.Tensor, edge_index: torch.Tensor, molecule: torch.Tensor,
                molecule_sizes: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_members(atoms, bonds, edge_index, molecule, molecule_sizes, extra).mean(dim=0)


class FingerprintMLP(_Standardised):
    """An MLP on per-molecule feature vectors (Morgan fingerprints, descriptors): the baseline.

    Examples
    --------
    >>> from torchsci_chem.featurize import morgan_fingerprints
    >>> from torchsci_chem.models import FingerprintMLP
    >>> x = torch.as_tensor(morgan_fingerprints(["CCO", "CCN"], n_bits=256))
    >>> FingerprintMLP(extra_features=256)(x).shape
    torch.Size([2, 1])
    """

    takes_graph = False

    def __init__(self, extra_features: int = 2048, hidden: Sequence[int] = (512, 256), dropout: float = 0.0,
                 num_tasks: int = 1, extra_kind: str | None = "morgan", target_mean: Sequence[float] | None = None,
                 target_std: Sequence[float] | None = None, extra_mean: Sequence[float] | None = None,
                 extra_std: Sequence[float] | None = None, task_kind: str = "regression", num_classes: int = 0) -> None:
        super().__init__()
        self._init_kind(task_kind, num_classes, num_tasks)
        self.net = MLP(extra_features, num_tasks, hidden=tuple(hidden), dropout=dropout)
        self.extra_features, self.extra_kind = extra_features, extra_kind
        self._init_scales(num_tasks, extra_features, target_mean, target_std, extra_mean, extra_std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self._unscale(self.net(self._scale_extra(features)))


def example_graph_inputs() -> tuple[torch.Tensor, ...]:
    """A batch of three molecules of different sizes (one with no bonds) for the conformance tests."""
    from torchsci_chem.featurize import collate_graphs, featurize

    return collate_graphs(featurize(["CC(=O)Oc1ccccc1C(=O)O", "[Na+]", "C/C=C/Cl"]).graphs).inputs()


def select_molecules(inputs: tuple[torch.Tensor, ...], indices: list[int]) -> tuple[torch.Tensor, ...]:
    """The graph inputs of just the molecules ``indices`` (repeats allowed), renumbered as a new batch."""
    atoms, bonds, edge_index, molecule, sizes, *extra = inputs
    parts_a, parts_b, parts_e, parts_m = [], [], [], []
    offset = 0
    for new, i in enumerate(indices):
        atom_ids = (molecule == i).nonzero().reshape(-1)
        edge_ids = (molecule.index_select(0, edge_index[0]) == i).nonzero().reshape(-1)
        remap = torch.full((atoms.shape[0],), -1, dtype=torch.long)
        remap[atom_ids] = torch.arange(atom_ids.numel()) + offset
        parts_a.append(atoms.index_select(0, atom_ids))
        parts_b.append(bonds.index_select(0, edge_ids))
        parts_e.append(remap[edge_index.index_select(1, edge_ids)])
        parts_m.append(torch.full((atom_ids.numel(),), new, dtype=torch.long))
        offset += atom_ids.numel()
    idx = torch.tensor(indices)
    picked = (torch.cat(parts_a), torch.cat(parts_b), torch.cat(parts_e, dim=1), torch.cat(parts_m),
              sizes.index_select(0, idx))
    return picked + tuple(e.index_select(0, idx) for e in extra)


ESOL_WEIGHTS = PretrainedWeights(
    "torchsci_chem", "weights/esol-dmpnn-rdkit2d.safetensors",
    sha256="671e86e6554d12f6b51cdca05cfd1e81456ca16c9bb42798ea9e66dad4d02bac",
    kwargs={"members": 5, "hidden": 200, "depth": 3, "readout": "mean", "ffn_hidden": 200,
            "extra_features": len(RDKIT2D_V1), "extra_kind": "rdkit2d-v1", "descriptor_names": list(RDKIT2D_V1),
            "descriptor_rdkit": "2026.09.1", "standardize": list(DEFAULT_STANDARDIZE), "calibration_size": 113,
            "domain_size": 902},
    description="ESOL aqueous solubility (logS, mol/L), 5 D-MPNNs with the rdkit2d-v1 descriptors, conformal "
                "intervals and applicability domain; see torchsci_chem/weights/MODEL_CARD.md",
)


def _property_weights(name: str, members: int, sha256: str, calibration_size: int, domain_size: int,
                      what: str) -> PretrainedWeights:
    return PretrainedWeights(
        "torchsci_chem", f"weights/{name}-dmpnn-rdkit2d.safetensors", sha256=sha256,
        kwargs={"members": members, "hidden": 200, "depth": 3, "readout": "mean", "ffn_hidden": 200,
                "extra_features": len(RDKIT2D_V1), "extra_kind": "rdkit2d-v1", "descriptor_names": list(RDKIT2D_V1),
                "descriptor_rdkit": "2026.09.1", "standardize": list(DEFAULT_STANDARDIZE),
                "calibration_size": calibration_size, "domain_size": domain_size},
        description=f"{what}, {members} D-MPNNs with the rdkit2d-v1 descriptors, trained on a scaffold split, "
                    f"conformal intervals and applicability domain; see torchsci_chem/weights/MODEL_CARD_{name}.md",
    )


FREESOLV_WEIGHTS = _property_weights("freesolv", 5, "5e75184389011d8a5d6db05bc1bc0088aab0d56c2ab3c50553cae6521e634b13", 64, 514,
                                     "FreeSolv hydration free energy (kcal/mol)")
LIPO_WEIGHTS = _property_weights("lipo", 5, "5a4e327dd7ce9882b5c9ba1186a7b20cb1cf4abcb558227f65abf43fdbbf731b", 420, 3360,
                                 "Lipophilicity: octanol/water distribution coefficient logD at pH 7.4")
PROPERTY_WEIGHTS = {"esol": ESOL_WEIGHTS, "freesolv": FREESOLV_WEIGHTS, "lipo": LIPO_WEIGHTS}
"""The shipped models' weights by short name (``torchsci_chem.predict(..., model=name)``)."""


def register(registry) -> None:
    registry.register_model("chem/dmpnn", example_inputs=example_graph_inputs, batch_of=select_molecules)(dmpnn)
    registry.register_model("chem/dmpnn_ensemble", example_inputs=example_graph_inputs, batch_of=select_molecules,
                            pretrained=dict(PROPERTY_WEIGHTS))(dmpnn_ensemble)
    registry.register_model("chem/fingerprint_mlp", example_inputs=lambda: ((torch.rand(3, 2048) > 0.9).float(),))(
        fingerprint_mlp)


@forwards_to(DMPNN)
def dmpnn(**kwargs: Any) -> DMPNN:
    """``chem/dmpnn``: :class:`DMPNN` (chemprop's D-MPNN); takes its arguments."""
    return DMPNN(**kwargs)


@forwards_to(DMPNNEnsemble, DMPNN)
def dmpnn_ensemble(members: int = 3, **kwargs: Any) -> DMPNNEnsemble:
    """``chem/dmpnn_ensemble``: :class:`DMPNNEnsemble`, the mean of ``members`` D-MPNNs with :class:`DMPNN`'s arguments."""
    return DMPNNEnsemble(members, **kwargs)


@forwards_to(FingerprintMLP)
def fingerprint_mlp(**kwargs: Any) -> FingerprintMLP:
    """``chem/fingerprint_mlp``: :class:`FingerprintMLP` on fingerprints or descriptors; takes its arguments."""
    return FingerprintMLP(**kwargs)
