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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import torch

from drivingseg.errors import ModelError
from drivingseg.model.augment import Sample
from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import ModelConfig, TTAConfig
from drivingseg.model.ensemble import Ensemble
from drivingseg.model.tta import TTASegmenter
from drivingseg.model.unet import UNet

__all__ = ["load_teacher", "teacher_models", "teacher_targets"]

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


def teacher_models(paths: Sequence[os.PathLike[str]], student: ModelConfig,
                   device: torch.device, layout: torch.memory_format) -> list[UNet | Ensemble]:
    """The teachers that run in the training loop, in eval mode on ``device``."""
    teachers = []
    for path in paths:
        model = load_teacher(path, student).model.to(device).eval()
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
