"""U-Net shapes, the transpose-convolution worked example, config and input errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drivingseg.errors import ModelError
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.unet import UNet, count_parameters


def test_transpose_conv_worked_example_sums_overlaps() -> None:
    """2x2 input, 3x3 filter, padding 1, stride 2 -> 4x4, overlapping contributions summed.

    By hand: each input x[i, j] adds x[i, j] * K to the 5x5 "full" output at rows
    2i..2i+2, cols 2j..2j+2; padding 1 drops the first row and column and output_padding
    1 keeps the 4th, so the result is full[1:5, 1:5]. With x = [[1, 2], [3, 4]] and
    K = [[1, 2, 1], [2, 4, 2], [1, 2, 1]] the full output is
        [1, 2, 3, 4, 2]
        [2, 4, 6, 8, 4]
        [4, 8,10,12, 6]     (10 = 1*1 + 2*1 + 3*1 + 4*1: all four inputs overlap here)
        [6,12,14,16, 8]
        [3, 6, 7, 8, 4]
    """
    conv = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]).view(1, 1, 3, 3))
    x = torch.tensor([[1.0, 2], [3, 4]]).view(1, 1, 2, 2)
    expected = torch.tensor(
        [[4.0, 6, 8, 4], [8, 10, 12, 6], [12, 14, 16, 8], [6, 7, 8, 4]]
    )
    out = conv(x)
    assert out.shape == (1, 1, 4, 4)
    assert torch.equal(out[0, 0], expected)


def test_unet_upsamples_with_stride_2_transpose_convs() -> None:
    model = UNet(ModelConfig(depth=3, base_channels=8))
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 3
    assert all(m.stride == (2, 2) for m in ups)


@pytest.mark.parametrize("hw", [(37, 53), (16, 16), (1, 1), (65, 30)])
def test_any_input_size_gives_same_size_logits(hw: tuple[int, int]) -> None:
    model = UNet(ModelConfig(depth=3, base_channels=4, norm="group")).eval()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3, *hw)


def test_padding_does_not_change_the_valid_region_much() -> None:
    """Cropping back returns the top-left region the input occupied (not a resampled one)."""
    torch.manual_seed(0)
    model = UNet(ModelConfig(depth=2, base_channels=4, norm="none")).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        full = model(x)
        odd = model(x[:, :, :15, :15])
    assert odd.shape == (1, 3, 15, 15)
    assert torch.allclose(full[:, :, :8, :8], odd[:, :, :8, :8], atol=1e-5)


def test_lidar_variant_takes_seven_channels() -> None:
    model = UNet(ModelConfig(depth=2, base_channels=4, in_channels=7))
    assert model(torch.randn(1, 7, 20, 24)).shape == (1, 3, 20, 24)
    assert 1_000 < count_parameters(model) < 100_000


def test_wrong_channel_count_says_how_to_fix() -> None:
    model = UNet(ModelConfig(depth=2, base_channels=4))
    with pytest.raises(ModelError, match=r"expects 3 input channels, got 360.*permute"):
        model(torch.randn(1, 360, 480, 3))
    with pytest.raises(ModelError, match=r"N x C x H x W.*unsqueeze"):
        model(torch.randn(3, 32, 32))


def test_aspp_context_starts_as_the_identity_and_is_in_the_path() -> None:
    torch.manual_seed(0)
    plain = UNet(ModelConfig(depth=2, base_channels=8)).eval()
    ctx = UNet(ModelConfig(depth=2, base_channels=8, context="aspp")).eval()
    missing, unexpected = ctx.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context.") for k in missing)
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        torch.testing.assert_close(ctx(x), plain(x))
        torch.nn.init.normal_(ctx.context.fuse.weight, std=1.0)
        assert ctx(x).shape == (1, 3, 37, 50)
        assert float((ctx(x) - plain(x)).abs().max()) > 1e-3
        assert ctx(torch.randn(1, 3, 3, 3)).shape == (1, 3, 3, 3)  # 1 x 1 bottleneck


def test_config_errors_list_valid_choices() -> None:
    with pytest.raises(ModelError, match=r"unknown norm 'layer'; valid choices: batch, group"):
        ModelConfig(norm="layer")
    with pytest.raises(ModelError, match=r"unknown context 'psp'; valid choices: none, aspp"):
        ModelConfig(context="psp")
    with pytest.raises(ModelError, match=r"in_channels must be 3 .* or 7 .*got 4"):
        ModelConfig(in_channels=4)
    with pytest.raises(ModelError, match=r"depth must be an integer in \[1, 6\], got 9"):
        ModelConfig(depth=9)
    with pytest.raises(ModelError, match=r"num_classes must be an integer in \[2, 3\], got 5 "
                                         r"\(the classes are background, road, car"):
        ModelConfig(num_classes=5)
    with pytest.raises(ModelError, match=r"unknown model config keys \['widht'\]; valid keys"):
        ModelConfig.from_dict({"widht": 3})
    with pytest.raises(ModelError, match=r"input width must be an integer in \[16, 4096\]"):
        InputSpec(width=8)
