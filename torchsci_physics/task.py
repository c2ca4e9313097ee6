"""The ``physics/tagging`` task: classify jets or events from a batch of :mod:`torchsci_physics.data`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchsci.errors import ConfigError, DataError
from torchsci.metrics import Accuracy, Metric
from torchsci.task import Task, unwrap_model
from torchsci_physics.metrics import ROCAUC, BackgroundRejection
from torchsci_physics.sculpting import Sculpting


class TaggingTask(Task):
    """Weighted cross-entropy on logits; reports accuracy, ROC AUC and background rejection at 30% and 50%.

    The model's ``input_names`` say which batch entries it takes (``("particles", "mask", "points")``
    for ParticleNet, ``("features",)`` for an MLP); ``features`` is passed only when the model was
    built with per-jet features. A model built for several particle collections (``collections``, e.g.
    ``("tracks", "towers")``) gets each particle input as a dict ``{collection: batch["particles.tracks"], ...}``.

    Parameters
    ----------
    signal
        The signal class for AUC and rejection (one-vs-rest): a class name (``"ttH"``, looked up in the
        classes the model was trained on) or an index; ``None`` averages the AUC over classes. The
        default, ``"auto"``, is class 1 with two classes and an error with more, which would otherwise
        measure an arbitrary class against the rest.
    efficiencies
        Signal efficiencies at which background rejection is reported.
    use_weights
        Weight the loss by the event weights too (metrics are always weighted).
    sculpting
        The name of one of the data's ``observers`` (e.g. the dijet mass): reports
        ``sculpting@<eff>``, the Jensen-Shannon divergence of the background's distribution of it before
        and after a score cut at ``sculpting_efficiency`` of the signal (:mod:`torchsci_physics.sculpting`).
    """

    monitor = "val/auc"
    monitor_mode = "max"

    def __init__(self, signal: str | int | None = "auto", efficiencies: tuple[float, ...] = (0.3, 0.5),
                 use_weights: bool = True, sculpting: str | None = None, sculpting_efficiency: float = 0.5) -> None:
        self.sculpting, self.sculpting_efficiency = sculpting, float(sculpting_efficiency)
        self.observers: list[str] | None = None
        if signal is not None and not isinstance(signal, (str, int)) or isinstance(signal, bool):
            raise ConfigError(f"task signal={signal!r}: give a class name, a class index or null.")
        self.signal, self.efficiencies, self.use_weights = signal, tuple(efficiencies), use_weights
        self.classes: list[str] | None = None

    def signal_index(self, num_classes: int, classes: list[str] | None = None) -> int | None:
        """The signal's class index for a model with ``num_classes`` outputs and class names ``classes``.

        Examples
        --------
        >>> from torchsci_physics.task import TaggingTask
        >>> TaggingTask(signal="ttH").signal_index(3, ["ttbar", "ttH", "QCD"])
        1
        """
        classes = classes if classes is not None else self.classes
        if classes is not None and len(classes) != num_classes:
            classes = None  # names that do not match the outputs cannot name them
        if self.signal is None:
            return None
        if isinstance(self.signal, int):
            if not -num_classes <= self.signal < num_classes:
                raise ConfigError(f"task signal={self.signal}: the model has {num_classes} classes"
                                  + (f" {classes}" if classes else "") + "; give a class name or an index below it.")
            return self.signal % num_classes
        if self.signal == "auto":
            if num_classes == 2:
                return 1
            raise ConfigError(f"task signal: the model has {num_classes} classes"
                              + (f" {classes}" if classes else "") + "; say which is the signal (signal=<class name>), "
                              "or signal=null for the mean one-vs-rest AUC.")
        if classes is None:
            raise ConfigError(f"task signal={self.signal!r} is a class name, but the model carries no class names "
                              "(it was not built from a physics dataset's model_kwargs); give the class index.")
        if self.signal not in classes:
            raise ConfigError(f"task signal={self.signal!r} is not one of the classes {classes}; use one of those "
                              "names (or an index).")
        if classes.count(self.signal) > 1:
            raise ConfigError(f"task signal={self.signal!r} names {classes.count(self.signal)} classes of {classes}; "
                              "class names must be unique.")
        return classes.index(self.signal)

    @staticmethod
    def inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> list[Any]:
        model = unwrap_model(model)
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
        spec = getattr(unwrap_model(model), "input_spec", None) or {}
        if spec.get("classes"):
            self.classes = list(spec["classes"])
        if "observers" in spec:
            self.observers = list(spec["observers"] or [])
        return model(*self.inputs(model, batch))

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.signal_index(int(outputs.shape[-1]))  # an ambiguous or unknown signal fails at the first batch
        per_jet = F.cross_entropy(outputs, batch["label"], reduction="none")
        if not self.use_weights:
            return per_jet.mean()
        w = batch["weight"].to(per_jet.dtype)
        return (per_jet * w).sum() / w.sum().clamp_min(torch.finfo(per_jet.dtype).tiny)

    def metrics(self) -> dict[str, Metric]:
        # the signal index is set from the model's outputs and classes at the first update (see update_metrics)
        out: dict[str, Metric] = {"accuracy": Accuracy(), "auc": ROCAUC(None)}
        if self.signal is not None:
            for eff in self.efficiencies:
                out[f"rejection@{eff:g}"] = BackgroundRejection(eff, None)
        if self.sculpting is not None and self.signal is not None:
            out[f"sculpting@{self.sculpting_efficiency:g}"] = Sculpting(self.sculpting_efficiency, None)
        return out

    def _observable(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        names = self.observers
        if names is None or self.sculpting not in names or "observers" not in batch:
            raise ConfigError(f"task sculpting={self.sculpting!r} names no observer of the data (observers: "
                              f"{names or 'none'}); add it to data.observers, e.g. observers: {{{self.sculpting}: "
                              "'(jet1 + jet2).mass'}.")
        return batch["observers"][:, names.index(self.sculpting)]

    def update_metrics(self, metrics: dict[str, Metric], outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        probs = outputs.float().softmax(-1)
        signal = self.signal_index(int(outputs.shape[-1]))
        for name, m in metrics.items():
            if hasattr(m, "signal"):
                m.signal = signal
            if isinstance(m, Sculpting):
                m.update(probs, batch["label"], batch["weight"], self._observable(batch))
                continue
            m.update(outputs if name == "accuracy" else probs, batch["label"], batch["weight"])

    def batch_size(self, batch: Any) -> int:
        return int(batch["label"].shape[0]) if "label" in batch else int(batch["entry"].shape[0])

    def predict(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.softmax(-1)

    def write_outputs(self, trainer: Any, model: nn.Module, data: Any, folder: Any, *, collate_fn: Any = None,
                      ckpt_path: Any = None) -> list:
        """Plots of ``data`` in ``folder``: ``roc.png``, ``scores.png``, ``sculpting.png`` (with ``sculpting=``).

        The runner calls this after testing (``torchsci train``, ``torchsci evaluate``); see
        :mod:`torchsci_physics.evaluation`.
        """
        from torchsci_physics.evaluation import write_tagging_outputs

        return write_tagging_outputs(self, trainer, model, data, folder, collate_fn=collate_fn, ckpt_path=ckpt_path)
