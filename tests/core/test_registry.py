"""The registry: every registered model passes check_model; names, plug-ins and shipped weights."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save_file

import torchsci
from torchsci import PretrainedWeights, PretrainedWeightsError, RegistryError
from torchsci.registry import Registry, registry
from torchsci.testing import check_model

ALL_MODELS = torchsci.list_models()


def _architectures(names):
    # Names that differ only by their shipped weights (neuro/unet3d and neuro/unet3d-tissue: one factory, one
    # example) are one architecture: the battery runs once per architecture, on its first name.
    first = {}
    for name in names:
        entry = registry.models[name]
        first.setdefault((entry.factory, entry.example_inputs, entry.batch_of), name)
    return sorted(first.values())


MODELS = _architectures(ALL_MODELS)


def test_plugins_are_discovered_through_entry_points():
    registry.load_plugins()
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="torchsci.plugins")}
    assert {"neuro", "physics", "chem"} <= names
    assert "core/mlp" in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_every_registered_model_passes_the_conformance_battery(name):
    entry = registry.models[name]
    assert entry.example_inputs is not None, f"{name} registers no example_inputs"
    torch.manual_seed(0)
    # pt2 and ONNX for every model of every plug-in; a model that cannot records "export:onnx" in known_gaps
    report = check_model(torchsci.create_model(name), entry.example_inputs(), batch_of=entry.batch_of,
                         known_gaps=entry.known_gaps, exports=("pt2", "onnx"))
    assert "batch_consistency" in report.passed or "batch_consistency" in entry.known_gaps
    assert "export:onnx" in report.passed or "export:onnx" in entry.known_gaps


def test_the_battery_covers_every_registered_name():
    checked = {(registry.models[n].factory, registry.models[n].example_inputs) for n in MODELS}
    assert all((registry.models[n].factory, registry.models[n].example_inputs) in checked for n in ALL_MODELS)
    assert "neuro/unet3d" in MODELS and "neuro/unet3d-tissue" not in MODELS  # one U-Net, checked once


def test_unknown_model_suggests_close_names():
    with pytest.raises(RegistryError, match="Did you mean core/mlp"):
        torchsci.create_model("core/mpl")


def test_created_models_remember_how_to_rebuild_themselves(tmp_path):
    model = torchsci.create_model("core/mlp", in_features=3, hidden=[8])
    assert model.torchsci_spec == {"name": "core/mlp", "kwargs": {"in_features": 3, "hidden": [8]}}
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    trainer = torchsci.Trainer(max_epochs=1, batch_size=8, device="cpu", run_dir=tmp_path, verbose=False,
                               tensorboard=False)
    fitted = trainer.fit(model, torchsci.RegressionTask(), data).model
    rebuilt = torchsci.load_model(tmp_path / "checkpoints" / "last.ckpt")
    x = torch.randn(4, 3)
    assert torch.equal(rebuilt(x), fitted(x))


def _registry_with_weights(tmp_path, digest=None):
    name = f"weights_pkg_{abs(hash(str(tmp_path)))}"  # one package per test: imports are cached by name
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    save_file({"weight": torch.full((1, 2), 3.0), "bias": torch.zeros(1)}, pkg / "lin.safetensors")
    real = hashlib.sha256((pkg / "lin.safetensors").read_bytes()).hexdigest()
    reg = Registry()
    reg._plugins_loaded = True
    weights = PretrainedWeights(name, "lin.safetensors", digest or real, kwargs={"in_features": 2})
    reg.register_model("t/lin", pretrained={"default": weights})(lambda in_features=4: torch.nn.Linear(in_features, 1))
    return reg, pkg


def test_pretrained_weights_are_verified_and_loaded(tmp_path, monkeypatch):
    reg, _ = _registry_with_weights(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = reg.create_model("t/lin", pretrained=True)
    assert torch.equal(model.weight, torch.full((1, 2), 3.0))
    assert reg.list_models(pretrained=True) == ["t/lin"]


def test_corrupted_pretrained_weights_are_refused(tmp_path, monkeypatch):
    reg, _ = _registry_with_weights(tmp_path, digest="0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="corrupt: sha256"):
        reg.create_model("t/lin", pretrained=True)


def test_missing_pretrained_file_says_reinstall(tmp_path, monkeypatch):
    reg, pkg = _registry_with_weights(tmp_path)
    (pkg / "lin.safetensors").unlink()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="missing.*reinstall"):
        reg.create_model("t/lin", pretrained=True)


def test_unknown_pretrained_tag(tmp_path, monkeypatch):
    reg, _ = _registry_with_weights(tmp_path)
    with pytest.raises(PretrainedWeightsError, match="shipped: default"):
        reg.create_model("t/lin", pretrained="v2")


def test_torchsci_registry_is_the_module_and_the_objects_attributes_still_answer_with_a_warning():
    import importlib
    import inspect
    import warnings

    assert torchsci.registry is importlib.import_module("torchsci.registry") and inspect.ismodule(torchsci.registry)
    assert torchsci.registry.Registry is Registry and torchsci.registry.registry is registry
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the module's own functions: no warning
        assert torchsci.registry.model_entry("core/mlp") is registry.models["core/mlp"]
        assert type(torchsci.registry.create_task("core/regression")).__name__ == "RegressionTask"
    with pytest.warns(DeprecationWarning, match=r"use torchsci\.registry\.registry\.models"):
        assert torchsci.registry.models is registry.models
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        torchsci.registry.nothing  # noqa: B018
