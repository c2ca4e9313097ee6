"""torchsci_physics: particle-physics plug-in of torchsci.

Train jet and event taggers directly on ROOT files (TTree or RNTuple, through uproot and awkward) and
write the scores back as a friend tree. Layers, each a module:

- :mod:`~torchsci_physics.reading`: files, trees, branches and expressions to awkward arrays;
- :mod:`~torchsci_physics.data`: :class:`RootSpec` to padded jets (in memory or streamed), gathering
  :mod:`~torchsci_physics.spec` (what an example is), :mod:`~torchsci_physics.particles` (padding, derived
  particle features), :mod:`~torchsci_physics.chunks` (entries to rows), :mod:`~torchsci_physics.in_memory`,
  :mod:`~torchsci_physics.streaming` and :mod:`~torchsci_physics.splits` (train/val/test, standardisation);
- :mod:`~torchsci_physics.models`: ``physics/pfn``, ``physics/particlenet``, ``physics/part``, ``physics/mlp``;
  :mod:`~torchsci_physics.interaction`: ``physics/pairnet`` (pair invariants as messages, on
  :mod:`~torchsci_physics.pairs`);
- :mod:`~torchsci_physics.reweighting`: flatten or match a reference in binned variables, class weights;
  :mod:`~torchsci_physics.folds`: k-fold training with out-of-fold friend trees (``torchsci physics kfold``);
  :mod:`~torchsci_physics.sculpting`: how much a score cut sculpts the background's mass;
  :mod:`~torchsci_physics.toys`: generated ntuples with a known answer;
- :mod:`~torchsci_physics.metrics` and :mod:`~torchsci_physics.task`: weighted ROC AUC, background
  rejection, the ``physics/tagging`` task; :mod:`~torchsci_physics.plots`: ROC and score plots;
  :mod:`~torchsci_physics.regression`: the ``physics/regression`` task (jet mass or energy: RMSE, MAE,
  response bias and resolution, response plots); :mod:`~torchsci_physics.evaluation`: the plots written
  after testing;
- :mod:`~torchsci_physics.predict`: scores to a ROOT friend tree, and ``torchsci physics predict``.

``import torchsci_physics`` and :func:`register` import no ROOT library; datasets do when built.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # The verbs: torchsci_physics.predict(model, files) (arrays; the module of the same name is callable) and
    # torchsci_physics.predict_root(model, files, output) (a friend tree), imported on first use.
    if name in ("predict", "predict_root"):
        import torchsci_physics.predict as module

        return module if name == "predict" else module.predict_root
    raise AttributeError(f"module 'torchsci_physics' has no attribute {name!r}")


__all__ = ["predict", "predict_root", "register"]


def __dir__() -> list[str]:
    return sorted({*globals(), "predict", "predict_root"})


def register(registry: Any) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models, datasets, task and commands."""
    registry.require("uproot", "awkward", "vector", "sklearn", extra="physics")  # absent, not fatal, without them
    # lazy: torch only at import time
    from torchsci_physics import datasets, folds, models, predict, regression, task

    def add_commands(subparsers: Any) -> None:
        predict.add_commands(subparsers)
        folds.add_commands(subparsers)

    models.register_models(registry)
    datasets.register_datasets(registry)
    registry.register_task("physics/tagging")(task.TaggingTask)
    registry.register_task("physics/regression")(regression.RegressionTask)
    registry.register_command("physics", add_commands)
    registry.register_configs("torchsci_physics.configs")  # experiment/physics/... (docs/plugins.md)
