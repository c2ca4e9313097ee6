"""torchsci.quantize: int8 models with an honest accuracy report, and the export formats that take them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import torchsci
from torchsci import ConfigError, ExportError
from torchsci.quantization import EXPORT_SUPPORT, is_quantized


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torchsci.create_model("core/mlp", in_features=16, out_features=3, hidden=[64, 32]).eval()


def test_import_torchsci_does_not_import_torchao():
    code = "import sys, torchsci; assert 'torchao' not in sys.modules; print(torchsci.quantize.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "quantize"


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
def test_quantize_reports_accuracy_against_the_float_model(model, mode):
    x = torch.randn(45, 16)
    data = DataLoader(TensorDataset(x, model(x).detach() + 0.1 * torch.randn(45, 3)), batch_size=16)
    int8, report = torchsci.quantize(model, data, mode=mode, task=torchsci.RegressionTask())
    assert report.mode == mode and report.batches == 3
    assert report.quantized_layers == ["net.0", "net.2", "net.4"]
    assert all(is_quantized(m.weight) for m in int8.modules() if isinstance(m, torch.nn.Linear))
    assert not any(is_quantized(p) for p in model.parameters())  # the float model is left alone
    assert 0 < report.max_abs_diff < 0.1 and 0 < report.relative_error < 0.05
    rmse_float, rmse_int8 = report.metrics["rmse"]
    assert rmse_int8 == pytest.approx(rmse_float, rel=0.2)
    assert report.quantized_bytes < report.float_bytes  # int8 weights; pickling overhead weighs on so small a net
    assert f"int8 {mode}: 3 linear layers" in str(report)
    # without a task: a tuple of inputs, or a list of them
    _, alone = torchsci.quantize(model, (x,), mode=mode)
    assert alone.metrics == {} and alone.max_abs_diff == pytest.approx(report.max_abs_diff, rel=0.5)


@pytest.mark.parametrize(("mode", "fmt"), [("dynamic", "pt2"), ("weight_only", "onnx")])
def test_formats_that_take_a_quantised_model_pass_parity(model, mode, fmt, tmp_path):
    int8, _ = torchsci.quantize(model, (torch.randn(8, 16),), mode=mode)
    result = torchsci.export(int8, (torch.randn(5, 16),), format=fmt, path=tmp_path)
    assert result.report.max_abs_diff < 1e-4
    run = torchsci.load_exported(result.path)
    x = torch.randn(7, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.as_tensor(run(x)), int8(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_formats_that_cannot_take_dynamic_int8_say_so(model, fmt, tmp_path):
    assert fmt not in EXPORT_SUPPORT["dynamic"]
    int8, _ = torchsci.quantize(model, (torch.randn(8, 16),), mode="dynamic")
    with pytest.raises(ExportError, match=rf"format '{fmt}' does not accept an int8 'dynamic'-quantised model.*"
                                          r"use format='pt2' or 'aoti', or quantise with mode='weight_only'"):
        torchsci.export(int8, (torch.randn(5, 16),), format=fmt, path=tmp_path)


def test_bad_requests_are_refused_with_the_reason(model):
    with pytest.raises(ConfigError, match="mode='int4'; choose one of dynamic, weight_only"):
        torchsci.quantize(model, (torch.randn(4, 16),), mode="int4")
    with pytest.raises(ConfigError, match="has no nn.Linear layer"):
        torchsci.quantize(torch.nn.Conv1d(2, 2, 3), (torch.randn(4, 2, 5),))
    with pytest.raises(ConfigError, match="data holds no batches"):
        torchsci.quantize(model, [], task=torchsci.RegressionTask())
