"""Training losses: class-weighted cross-entropy plus an IoU-shaped term (soft Dice or
Lovasz-softmax) over road and car.

A ``NOT_ROAD_INDEX`` pixel (KITTI road's "not road": background or car) is scored as one
class whose probability is that of every class but road, so the network is taught that it
is not road and nothing about whether it is a car.

Cross-entropy alone optimises per-pixel accuracy, where the few car pixels count little;
the second term scores each class as a whole, closer to the IoU that evaluation reports.
Lovasz-softmax (Berman, Rannen Triki, Blaschko, CVPR 2018) is the tight convex surrogate
of the Jaccard loss: at a hard (one-hot) prediction it equals ``1 - IoU`` exactly.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from drivingseg.model.config import CLASS_NAMES, IGNORE_INDEX, NOT_ROAD_INDEX

__all__ = ["FOREGROUND", "dice_loss", "distillation_loss", "lovasz_softmax", "merge_not_road",
           "segmentation_loss", "soft_target_loss"]

FOREGROUND: tuple[int, ...] = (1, 2)
"""The classes the IoU-shaped terms score: road and car."""


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    """1 - soft Dice averaged over ``classes``, on non-ignored pixels of the batch."""
    valid = (labels != IGNORE_INDEX).unsqueeze(1).float()
    probs = torch.softmax(logits.float(), dim=1) * valid
    target = functional.one_hot(labels.clamp(max=logits.shape[1] - 1), logits.shape[1])
    target = target.permute(0, 3, 1, 2).float() * valid
    idx = list(classes)
    inter = (probs[:, idx] * target[:, idx]).sum(dim=(0, 2, 3))
    denom = probs[:, idx].sum(dim=(0, 2, 3)) + target[:, idx].sum(dim=(0, 2, 3))
    return 1.0 - ((2 * inter + 1.0) / (denom + 1.0)).mean()


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at errors sorted descending."""
    total = fg_sorted.sum()
    intersection = total - fg_sorted.cumsum(0)
    union = total + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(
    logits: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...]
) -> torch.Tensor:
    """Lovasz-softmax over the batch's non-ignored pixels, averaged over those of ``classes``
    present in ``labels`` (an absent class has no IoU to optimise)."""
    probs = torch.softmax(logits.float(), dim=1).permute(0, 2, 3, 1)
    valid = labels != IGNORE_INDEX
    p, y = probs[valid], labels[valid]
    losses = []
    for c in classes:
        fg = (y == c).float()
        if not bool(fg.any()):
            continue
        errors = (fg - p[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    if not losses:
        return logits.float().sum() * 0.0
    return torch.stack(losses).mean()


_ROAD = CLASS_NAMES.index("road")
_NEVER = -1e4
"""A class score whose softmax probability is 0 in float32 (a finite stand-in for -inf)."""


def merge_not_road(logits: torch.Tensor, labels: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits`` (float32) and ``labels`` with each ``NOT_ROAD_INDEX`` pixel made a
    background pixel whose background score is the log-sum-exp of every class but road
    (so its probability is ``1 - p(road)``) and whose other classes get probability 0."""
    logits = logits.float()
    not_road = labels == NOT_ROAD_INDEX
    if not bool(not_road.any()):
        return logits, labels
    others = [c for c in range(logits.shape[1]) if c != _ROAD]
    merged = torch.full_like(logits, _NEVER)
    merged[:, _ROAD] = logits[:, _ROAD]
    merged[:, 0] = torch.logsumexp(logits[:, others], dim=1)
    return (torch.where(not_road.unsqueeze(1), merged, logits),
            labels.masked_fill(not_road, 0))


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    dice_weight: float,
    lovasz_weight: float = 0.0,
) -> torch.Tensor:
    """Class-weighted cross-entropy + ``dice_weight`` x Dice + ``lovasz_weight`` x Lovasz;
    zero (with a gradient) for a batch without a labelled pixel, where the mean of no
    pixels would be NaN and turn every weight NaN at the next step."""
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.float().sum() * 0.0
    logits, labels = merge_not_road(logits, labels)
    scored = tuple(c for c in FOREGROUND if c < logits.shape[1])  # a road-only model: road
    loss = functional.cross_entropy(
        logits.float(), labels, weight=weights, ignore_index=IGNORE_INDEX)
    if dice_weight > 0:
        loss = loss + dice_weight * dice_loss(logits, labels, scored)
    if lovasz_weight > 0:
        loss = loss + lovasz_weight * lovasz_softmax(logits, labels, scored)
    return loss


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: list[torch.Tensor],
    labels: torch.Tensor,
    shift: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(teachers || student) per pixel, averaged over non-ignored pixels, times T^2.

    The target is the mean of the teachers' softmax at temperature ``temperature`` (an
    ensemble's probabilities). ``shift`` (the logit adjustment, ``-log(class weight)``) is
    added to the student's scores first: a student trained with class-weighted
    cross-entropy holds ``weight_c x p(c | x)`` there, and the teachers' saved heads are
    already adjusted to ``p(c | x)``.
    """
    t = float(temperature)
    target = torch.stack([torch.softmax(x.float() / t, dim=1) for x in teacher_logits]).mean(0)
    return soft_target_loss(student_logits, target, labels, shift, t)


def soft_target_loss(
    student_logits: torch.Tensor,
    target: torch.Tensor,
    labels: torch.Tensor,
    shift: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(target || student) per pixel over non-ignored pixels, times T^2: ``target`` holds
    class probabilities (N x C x H x W), e.g. teachers' stored ones; ``shift`` as in
    :func:`distillation_loss`."""
    t = float(temperature)
    student = student_logits.float()
    if shift is not None:
        student = student + shift.to(student).view(1, -1, 1, 1)
    target = target.float()
    log_student = torch.log_softmax(student / t, dim=1)
    kl = (target * (torch.log(target.clamp_min(1e-8)) - log_student)).sum(dim=1)
    valid = labels != IGNORE_INDEX
    if not bool(valid.any()):
        return student.sum() * 0.0
    return kl[valid].mean() * (t * t)
