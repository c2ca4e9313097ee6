"""neuro/unet3d through the core's conformance battery."""

from __future__ import annotations

import pytest
import torch

import torchsci
from torchsci.testing import check_model
from torchsci_neuro.models import UNet3D


@pytest.mark.parametrize("channels_last", [False, True])
def test_unet3d_passes_check_model(channels_last):
    entry = torchsci.registry.model_entry("neuro/unet3d")
    model = torchsci.create_model("neuro/unet3d", channels_last=channels_last)
    report = check_model(model, entry.example_inputs())
    assert "export:pt2" in report.passed and not report.known_gaps


def test_unet3d_outputs_logits_per_class_for_any_size():
    model = UNet3D(channels=(4, 8, 16))
    assert model(torch.zeros(1, 1, 20, 17, 12)).shape == (1, 4, 20, 17, 12)


def test_channels_last_does_not_change_results():
    torch.manual_seed(0)
    plain = UNet3D(channels=(4, 8))
    fast = UNet3D(channels=(4, 8), channels_last=True)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 16, 16, 8)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-4)
