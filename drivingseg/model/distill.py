"""Teachers for knowledge distillation (``train.distill_from``), run in the training loop or
once per training frame with test-time augmentation (``train.distill_tta``).

In the loop, each teacher runs on the augmented batch beside the student: one forward pass
per teacher per step. A teacher with test-time augmentation (``multiscale``: 12 views, 52
forward passes for the three-network ensemble) is too slow for that, so
:func:`teacher_targets` runs it once per training frame at the frame's own size and stores
the mean class probabilities (float16, H x W x classes) with the sample; the augmenter then
scales, crops and flips them with the image (bilinearly), and the loss compares the
student with the stored targets (:func:`~drivingseg.model.losses.soft_target_loss`).
Colour jitter does not change a stored target, which the teacher in the loop would see.
A teacher in the loop whose checkpoint standardises RGB with another mean and std than the
student's input gets the batch converted to its own (:class:`Renormalised`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from drivingseg.errors import ModelError
from drivingseg.model.augment import Sample
from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import RGB_CHANNELS, InputSpec, ModelConfig, TTAConfig
from drivingseg.model.tta import TTASegmenter

__all__ = ["Renormalised", "load_teacher", "teacher_models", "teacher_targets"]

log = logging.getLogger(__name__)


def load_teacher(path: str | os.PathLike[str], student: ModelConfig) -> Checkpoint:
    """A ``distill_from`` checkpoint, checked against the student (same input channels and
    classes)."""
    ckpt = load_checkpoint(path)
    if (ckpt.config.in_channels, ckpt.config.num_classes) != (
            student.in_channels, student.num_classes):
        message = (f"distill_from: teacher takes {ckpt.config.in_channels} channels and "
                   f"predicts {ckpt.config.num_classes} classes; the student "
                   f"{student.in_channels} and {student.num_classes}")
        raise ModelError(message, path=path)
    return ckpt


class Renormalised(nn.Module):
    """``model`` fed a batch standardised with ``given``'s mean and std, converted to those
    of ``own`` (the model's checkpoint) first; lidar channels pass unchanged."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, model: nn.Module, own: InputSpec, given: InputSpec) -> None:
        super().__init__()
        self.model = model
        own_mean, own_std = torch.tensor(own.mean), torch.tensor(own.std)
        mean, std = torch.tensor(given.mean), torch.tensor(given.std)
        self.register_buffer("scale", (std / own_std).view(1, RGB_CHANNELS, 1, 1))
        self.register_buffer("shift", ((mean - own_mean) / own_std).view(1, RGB_CHANNELS, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x[:, :RGB_CHANNELS] * self.scale.to(x.dtype) + self.shift.to(x.dtype)
        out: torch.Tensor = self.model(torch.cat([rgb, x[:, RGB_CHANNELS:]], dim=1))
        return out


def teacher_models(paths: Sequence[os.PathLike[str]], student: ModelConfig,
                   device: torch.device, layout: torch.memory_format,
                   spec: InputSpec | None = None) -> list[nn.Module]:
    """The teachers that run in the training loop, in eval mode on ``device``, on batches
    standardised as ``spec`` says (the student's input; None: as each teacher's own)."""
    teachers: list[nn.Module] = []
    for path in paths:
        ckpt = load_teacher(path, student)
        model: nn.Module = ckpt.model
        if spec is not None and (ckpt.spec.mean, ckpt.spec.std) != (spec.mean, spec.std):
            log.info("distill_from %s: standardised with mean %s, std %s; converting the "
                     "student's batches (mean %s, std %s)", path, ckpt.spec.mean,
                     ckpt.spec.std, spec.mean, spec.std)
            model = Renormalised(model, ckpt.spec, spec)
        model = model.to(device).eval()
        teachers.append(model.to(memory_format=layout))  # type: ignore[call-overload]
    if teachers:
        log.info("distilling from %d teachers: %s", len(teachers), [str(p) for p in paths])
    return teachers


def teacher_targets(
    paths: Sequence[os.PathLike[str]],
    samples: Sequence[Sample],
    tta: TTAConfig,
    student: ModelConfig,
    *,
    device: str | torch.device = "cpu",
    fp16: bool = False,
    show_progress: bool = True,
) -> list[Sample]:
    """``samples`` with ``soft`` set to the teachers' mean class probabilities under ``tta``,
    computed once at each frame's own size (float16 to halve the memory)."""
    segs = [TTASegmenter(load_teacher(p, student), tta, device=device, fp16=fp16)
            for p in paths]
    from drivingseg.cli._common import progress

    t0 = time.perf_counter()
    items = progress(samples, total=len(samples), desc="teacher") if show_progress else samples
    out = []
    for sample in items:
        total = None
        for seg in segs:
            probs = seg(sample.image, sample.lidar).probs
            assert probs is not None
            total = probs if total is None else total + probs
        assert total is not None
        soft = np.ascontiguousarray((total / len(segs)).transpose(1, 2, 0), dtype=np.float16)
        out.append(dataclasses.replace(sample, soft=soft))
    log.info("teacher targets (%s) of %d teachers on %d frames in %.0f s", tta.summary(),
             len(segs), len(out), time.perf_counter() - t0)
    return out
