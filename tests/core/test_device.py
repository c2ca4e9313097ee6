"""The device layer: resolution, precision policies, clear errors, and moving nested batches."""

from __future__ import annotations

import importlib.util
from collections import namedtuple
from dataclasses import dataclass

import pytest
import torch

from torchsci import ConfigError, DeviceError, Padded, Precision, move_to, resolve_device


def test_auto_and_cpu_resolve_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_where_absent_says_what_to_do(name):
    with pytest.raises(DeviceError, match="CUDA is not available.*device='auto' or 'cpu'"):
        resolve_device(name)


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="checks the error raised where torch_xla is absent")
def test_xla_without_torch_xla_says_what_to_install():
    with pytest.raises(DeviceError, match="pip install 'torch_xla"):
        resolve_device("xla")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error raised where MPS is absent")
def test_mps_where_absent():
    with pytest.raises(DeviceError, match="MPS is not available"):
        resolve_device("mps")


def test_unknown_device_and_precision_are_config_errors():
    with pytest.raises(ConfigError, match="'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="bf16-mixed"):
        Precision("fp8", torch.device("cpu"))


def test_precision_policies_on_cpu():
    cpu = torch.device("cpu")
    with Precision("bf16-mixed", cpu).autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    p16 = Precision("16-mixed", cpu)
    assert p16.autocast_dtype == torch.float16 and p16.grad_scaler() is not None
    assert Precision("64", cpu).param_dtype == torch.float64
    assert Precision("32", cpu).grad_scaler() is None


@dataclass
class Graph:
    atoms: torch.Tensor
    edges: torch.Tensor
    name: str = "g"


Pair = namedtuple("Pair", "a b")


def test_move_to_walks_every_container_and_casts_only_floats():
    batch = {
        "x": torch.zeros(2, dtype=torch.float32),
        "pair": Pair(torch.ones(1), [torch.ones(1, dtype=torch.long)]),
        "graph": Graph(torch.ones(3, 2), torch.zeros(2, 4, dtype=torch.long)),
        "padded": Padded(torch.ones(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)),
        "meta": "kept",
    }
    out = move_to(batch, torch.device("cpu"), torch.float64)
    assert out["x"].dtype == torch.float64
    assert isinstance(out["pair"], Pair) and out["pair"].b[0].dtype == torch.long
    assert isinstance(out["graph"], Graph) and out["graph"].atoms.dtype == torch.float64
    assert out["graph"].edges.dtype == torch.long and out["graph"].name == "g"
    assert isinstance(out["padded"], Padded) and out["padded"].mask.dtype == torch.bool
    assert out["meta"] == "kept"
