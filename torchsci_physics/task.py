"""The ``physics/tagging`` task: classify jets or events from a batch of :mod:`torchsci_physics.data`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchsci.errors import DataError
from torchsci.metrics import Accuracy, Metric
from torchsci.task import Task
from torchsci_physics.metrics import ROCAUC, BackgroundRejection


class TaggingTask(Task):
    """Weighted cross-entropy on logits; reports accuracy, ROC AUC and background rejection at 30% and 50%.

    The model's ``input_names`` say which batch entries it takes (``("particles", "mask", "points")``
    for ParticleNet, ``("features",)`` for an MLP); ``features`` is passed only when the model was
    built with per-jet features. A model built for several particle collections (``collections``, e.g.
    ``("tracks", "towers")``) gets each particle input as a dict ``{collection: batch["particles.tracks"], ...}``.

    Parameters
    ----------
    signal
        The signal class for AUC and rejection (one-vs-rest); ``None`` averages the AUC over classes.
    efficiencies
        Signal efficiencies at which background rejection is reported.
    use_weights
        Weight the loss by the event weights too (metrics are always weighted).
    """

    monitor = "val/auc"
    monitor_mode = "max"

    def __init__(self, signal: int | None = 1, efficiencies: tuple[float, ...] = (0.3, 0.5),
                 use_weights: bool = True) -> None:
        self.signal, self.efficiencies, self.use_weights = signal, tuple(efficiencies), use_weights

    @staticmethod
    def inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        model = getattr(model, "module", model)
        names = list(getattr(model, "input_names", ("particles", "mask")))
        if "features" in names and names != ["features"] and not getattr(model, "num_features", 0):
            names.remove("features")
        collections = getattr(model, "collections", None)
        if collections:
            # several collections: each particle input is a dict {collection: batch["<input>.<collection>"]}
            wanted = [n if n == "features" else f"{n}.{c}" for n in names for c in ([None] if n == "features" else collections)]
        else:
            wanted = names
        missing = [n for n in wanted if n not in batch]
        if missing:
            raise DataError(f"{type(model).__name__} needs batch entries {missing}, but the batch has {sorted(batch)}; "
                            "give the dataset particles= (for particle inputs; one per collection the model was "
                            "built for) or features=.")
        if collections:
            return [batch[n] if n == "features" else {c: batch[f"{n}.{c}"] for c in collections} for n in names]
        return [batch[n] for n in names]

    def model_inputs(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple:
        return tuple(self.inputs(model, batch))

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(*self.inputs(model, batch))

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        per_jet = F.cross_entropy(outputs, batch["label"], reduction="none")
        if not self.use_weights:
            return per_jet.mean()
        w = batch["weight"].to(per_jet.dtype)
        return (per_jet * w).sum() / w.sum().clamp_min(torch.finfo(per_jet.dtype).tiny)

    def metrics(self) -> dict[str, Metric]:
        out: dict[str, Metric] = {"accuracy": Accuracy(), "auc": ROCAUC(self.signal)}
        if self.signal is not None:
            for eff in self.efficiencies:
                out[f"rejection@{eff:g}"] = BackgroundRejection(eff, self.signal)
        return out

    def update_metrics(self, metrics: dict[str, Metric], outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        probs = outputs.float().softmax(-1)
        for name, m in metrics.items():
            m.update(outputs if name == "accuracy" else probs, batch["label"], batch["weight"])

    def batch_size(self, batch: Any) -> int:
        return int(batch["label"].shape[0]) if "label" in batch else int(batch["entry"].shape[0])

    def predict(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.softmax(-1)
