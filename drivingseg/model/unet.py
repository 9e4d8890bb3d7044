"""The U-Net: a shrinking encoder, a ConvTranspose2d decoder and concatenation skips.

Each encoder level applies two 3x3 conv + norm + ReLU and halves width and height with a
2x2 max-pool while the channel count doubles; the decoder doubles width and height with
a stride-2 transpose convolution, concatenates the encoder activation of the same level
(the skip connection that brings back fine spatial detail) and applies two more 3x3
convs. A 1x1 conv maps the last activation to one score per class. Inputs of any size
are padded to a multiple of ``2 ** depth`` and the scores cropped back.

With ``context: aspp`` the bottleneck activation also passes through :class:`ContextASPP`
(atrous spatial pyramid pooling, as DeepLab v3): dilated 3x3 branches and an image-pooling
branch widen what each bottleneck position sees, up to the whole frame. It adds its output
to the bottleneck through a zero-initialised 1x1 conv, so it starts as the identity and can
be grafted onto a trained model. Off by default: on held-out CamVid it gave no gain over
training the plain network longer (docs/MODEL.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from drivingseg.errors import ModelError
from drivingseg.model.config import ModelConfig

__all__ = ["ContextASPP", "UNet", "count_parameters"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(8 if channels % 8 == 0 else 4, channels)
    return nn.Identity()


class DoubleConv(nn.Sequential):
    """(3x3 conv, norm, ReLU) twice; the width and height are kept."""

    def __init__(self, in_ch: int, out_ch: int, norm: str) -> None:
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias),
            _norm(norm, out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
            _norm(norm, out_ch),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Stride-2 transpose convolution, concatenation with the skip, then a DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_ch, out_ch, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class ContextASPP(nn.Module):
    """``x + fuse([1x1(x), 3x3 dil 2(x), 3x3 dil 4(x), image pool(x)])``, ``fuse`` zero at start."""

    def __init__(self, channels: int, norm: str, branch_channels: int = 64) -> None:
        super().__init__()
        bias = norm == "none"

        def branch(kernel: int, dilation: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, branch_channels, kernel, padding=dilation * (kernel // 2),
                          dilation=dilation, bias=bias),
                _norm(norm, branch_channels),
                nn.ReLU(inplace=True),
            )

        self.branches = nn.ModuleList([branch(1, 1), branch(3, 2), branch(3, 4)])
        self.image_pool = nn.Sequential(nn.Conv2d(channels, branch_channels, 1), nn.ReLU())
        self.fuse = nn.Conv2d(4 * branch_channels, channels, 1)
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True)).expand(
            -1, -1, x.shape[2], x.shape[3])
        feats = [b(x) for b in self.branches] + [pooled]
        out: torch.Tensor = x + self.fuse(torch.cat(feats, dim=1))
        return out


class UNet(nn.Module):
    """U-Net over ``config.in_channels`` inputs giving ``config.num_classes`` logits.

    ``forward`` takes N x C x H x W float input (normalised RGB, optionally followed by
    the lidar channels) of any H and W and returns N x classes x H x W logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        chans = [config.base_channels * 2**i for i in range(config.depth + 1)]
        self.stem = DoubleConv(config.in_channels, chans[0], config.norm)
        self.down = nn.ModuleList(
            DoubleConv(chans[i], chans[i + 1], config.norm) for i in range(config.depth)
        )
        self.up = nn.ModuleList(
            Up(chans[i + 1], chans[i], config.norm) for i in reversed(range(config.depth))
        )
        self.context: nn.Module = (
            ContextASPP(chans[-1], config.norm) if config.context == "aspp" else nn.Identity())
        self.head = nn.Conv2d(chans[0], config.num_classes, kernel_size=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ModelError` saying how to fix an input of the wrong shape."""
        cfg = self.config
        if x.ndim != 4:
            message = (
                f"model input must be N x C x H x W, got shape {tuple(x.shape)!r}; "
                "add a batch dimension with x.unsqueeze(0)"
            )
            raise ModelError(message)
        if x.shape[1] != cfg.in_channels:
            hint = (
                "pass RGB plus the 4 lidar channels (depth_m, height_m, intensity, valid)"
                if cfg.uses_lidar
                else "pass 3 RGB channels (channels first: x.permute(0, 3, 1, 2))"
            )
            message = (
                f"model expects {cfg.in_channels} input channels, got {x.shape[1]!r} "
                f"(shape {tuple(x.shape)!r}); {hint}"
            )
            raise ModelError(message)
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ModelError(f"model input has an empty image, shape {tuple(x.shape)!r}")

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder level's features (N x ``base_channels`` x H x W), which the 1x1
        head turns into logits; training heads of its own (``train.fine_weight``) read them."""
        self.check_input(x)
        h, w = int(x.shape[2]), int(x.shape[3])
        m = self.config.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = functional.pad(x, (0, pad_w, 0, pad_h))
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(functional.max_pool2d(skips[-1], 2)))
        y = self.context(skips.pop())
        for block in self.up:
            y = block(y, skips.pop())
        return y[:, :, :h, :w] if (pad_h or pad_w) else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.decode(x))
        return logits


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
