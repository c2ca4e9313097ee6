"""neuro/unet3d through the core's conformance battery."""

from __future__ import annotations

import pytest
import torch

import torchsci
from torchsci.testing import run_check
from torchsci_neuro.models import UNet3D


# The whole battery runs on neuro/unet3d once, in the registry enumeration (tests/core/test_registry.py);
# channels_last changes only memory layout, so it gets the checks layout can break.
@pytest.mark.parametrize("check", ["non_contiguous", "batch_consistency", "export:pt2"])
def test_unet3d_channels_last_passes_the_layout_checks(check):
    entry = torchsci.registry.model_entry("neuro/unet3d")
    run_check(check, torchsci.create_model("neuro/unet3d", channels_last=True), entry.example_inputs())


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
