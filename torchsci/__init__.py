"""torchsci: the shared core of the torchsci suite.

One Trainer, one device layer, one checkpoint format, one registry and one conformance battery,
used by every field plug-in (``torchsci_neuro``, ``torchsci_physics``, ``torchsci_chem``). The core
imports no field library; plug-ins are found through the ``torchsci.plugins`` entry-point group.

Examples
--------
>>> import torch, tempfile
>>> from torch.utils.data import TensorDataset
>>> import torchsci
>>> x = torch.randn(128, 5); data = TensorDataset(x, x[:, :1] * 2)
>>> model = torchsci.create_model("core/mlp", in_features=5, out_features=1)
>>> trainer = torchsci.Trainer(max_epochs=1, batch_size=32, run_dir=tempfile.mkdtemp(), verbose=False)
>>> result = trainer.fit(model, torchsci.RegressionTask(), data, val_data=data)
>>> result.last_checkpoint.name
'step-000000004.ckpt'
"""

from torchsci import (
    export,  # a callable module: torchsci.export(model, ...), torchsci.export.load_exported
    registry,  # the module (create_dataset, create_task, ...); its object is registry.registry
)
from torchsci.callbacks import Callback, EarlyStopping
from torchsci.checkpoint import load_state, load_weights, save_model, save_state
from torchsci.config import compose
from torchsci.data import DataSplits, Padded, pad_sequences
from torchsci.device import Precision, move_to, resolve_device
from torchsci.errors import (
    CheckpointError,
    ConfigError,
    ConformanceError,
    DataError,
    DeviceError,
    ExportError,
    PretrainedWeightsError,
    RegistryError,
    TorchsciError,
)
from torchsci.export import load_exported
from torchsci.hybrid import compile, compile_enabled, set_compile
from torchsci.registry import PretrainedWeights, create_model, list_models, load_model
from torchsci.runner import run
from torchsci.seed import seed_everything
from torchsci.task import ClassificationTask, RegressionTask, SupervisedTask, Task
from torchsci.trainer import FitResult, Trainer, TrainingDiverged

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # torchsci.quantize imports torchao (seconds) only when it is first used
    if name == "quantize":
        from torchsci.quantization import quantize

        return quantize
    raise AttributeError(f"module 'torchsci' has no attribute {name!r}")


__all__ = [
    "Callback", "CheckpointError", "DataSplits", "ClassificationTask", "ConfigError", "ConformanceError", "DataError",
    "DeviceError", "EarlyStopping", "ExportError", "FitResult", "Padded", "Precision", "PretrainedWeights",
    "PretrainedWeightsError", "RegistryError", "RegressionTask", "SupervisedTask", "Task", "TorchsciError",
    "Trainer", "TrainingDiverged", "compile", "compile_enabled", "compose", "create_model", "export", "list_models",
    "load_exported", "load_model", "load_state", "load_weights", "move_to", "pad_sequences", "quantize", "registry",
    "resolve_device", "run", "save_model", "save_state", "seed_everything", "set_compile",
]
