"""Auxiliary supervision with CamVid's eleven classes (``train.fine_weight``).

The three classes lump sky, buildings, trees, signs, poles, fences, pavement and people
into background, and most false car pixels of the held-out drive lie on exactly those
(docs/MODEL.md, "Where the remaining car errors are"). During training a second 1x1 head
reads the same last decoder features as the three-class head and is taught the fine
classes (:data:`~drivingseg.model.config.FINE_CLASSES`) with cross-entropy, so the
features must tell a building from a car, not only car from "not car". The head is not
saved with the weights: the shipped network, its size and its time are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from drivingseg.model.config import FINE_CLASSES, IGNORE_INDEX
from drivingseg.model.unet import UNet

__all__ = ["FineHead", "fine_loss"]


class FineHead(nn.Module):
    """A U-Net with a training-only fine-class head: ``forward`` returns the three-class
    logits and the fine-class logits, both N x classes x H x W."""

    def __init__(self, model: UNet, classes: int = len(FINE_CLASSES)) -> None:
        super().__init__()
        self.model = model
        self.head = nn.Conv2d(model.config.base_channels, classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.decode(x)
        return self.model.head(features), self.head(features)


def fine_loss(fine_logits: torch.Tensor, fine_labels: torch.Tensor) -> torch.Tensor:
    """Unweighted cross-entropy over the fine classes, ignoring ``IGNORE_INDEX`` pixels
    (zero when a batch has none labelled)."""
    if not bool((fine_labels != IGNORE_INDEX).any()):
        return fine_logits.float().sum() * 0.0
    return functional.cross_entropy(fine_logits.float(), fine_labels, ignore_index=IGNORE_INDEX)
