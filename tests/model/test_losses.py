"""Losses: Dice and Lovasz-softmax against hand-computed values; ignored pixels skipped."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from drivingseg.model.config import IGNORE_INDEX
from drivingseg.model.losses import (
    dice_loss,
    distillation_loss,
    lovasz_softmax,
    segmentation_loss,
)


def _hard(pred: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    """Logits that put (almost) all probability on ``pred``."""
    return functional.one_hot(pred, 3).permute(0, 3, 1, 2).float() * scale


def test_dice_loss_is_zero_for_a_perfect_prediction() -> None:
    labels = torch.tensor([[[0, 1], [2, 255]]])
    logits = _hard(labels.clamp(max=2), 50.0)
    assert float(dice_loss(logits, labels, (1, 2))) < 1e-3
    assert float(dice_loss(-logits, labels, (1, 2))) > 0.5


def test_lovasz_equals_one_minus_iou_at_a_hard_prediction() -> None:
    """At a one-hot prediction the Lovasz extension is the Jaccard loss itself.

    Road: labelled at (0,1), (0,2); predicted at (0,1), (1,1) -> IoU 1/3. Car: labelled
    at (1,0), (1,1); predicted at (1,0) -> IoU 1/2. The ignored pixel (1,2) is predicted
    road and must not count. Loss = mean(1 - 1/3, 1 - 1/2) = 7/12.
    """
    labels = torch.tensor([[[0, 1, 1], [2, 2, 255]]])
    pred = torch.tensor([[[0, 1, 0], [2, 1, 1]]])
    got = float(lovasz_softmax(_hard(pred), labels, (1, 2)))
    assert got == pytest.approx(7 / 12, abs=1e-5)
    assert float(lovasz_softmax(_hard(labels.clamp(max=2)), labels, (1, 2))) < 1e-5


def test_lovasz_skips_absent_classes_and_gives_gradients() -> None:
    labels = torch.tensor([[[0, 1], [1, 0]]])  # no car
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = lovasz_softmax(logits, labels, (1, 2))
    assert float(loss.detach()) == pytest.approx(2 / 3, abs=1e-5)  # road probs 1/3 everywhere
    loss.backward()
    assert logits.grad is not None and float(logits.grad[0, 1].sum()) < 0  # raise road
    none = torch.full((1, 2, 2), 255)
    assert float(lovasz_softmax(logits, none, (1, 2)).detach()) == 0.0


def test_segmentation_loss_adds_the_terms_it_is_given() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 8, 8))
    logits = torch.randn(2, 3, 8, 8)
    w = torch.ones(3)
    ce = functional.cross_entropy(logits, labels, weight=w)
    both = segmentation_loss(logits, labels, w, dice_weight=0.5, lovasz_weight=2.0)
    expected = (ce + 0.5 * dice_loss(logits, labels, (1, 2))
                + 2.0 * lovasz_softmax(logits, labels, (1, 2)))
    torch.testing.assert_close(both, expected)
    torch.testing.assert_close(segmentation_loss(logits, labels, w, 0.0), ce)


def test_distillation_is_zero_at_the_teachers_and_skips_ignored_pixels() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 4, 5)
    labels = torch.randint(0, 3, (2, 4, 5))
    assert float(distillation_loss(teacher, [teacher], labels)) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([0.5, -0.2, 0.1])
    shifted = teacher - shift.view(1, -1, 1, 1)  # a student's raw scores before adjustment
    assert float(distillation_loss(shifted, [teacher], labels, shift)) == pytest.approx(
        0.0, abs=1e-6)
    # Two teachers: the target is their mean probability, so one of them alone is not it.
    other = torch.randn(2, 3, 4, 5)
    mean = torch.log(torch.stack([teacher.softmax(1), other.softmax(1)]).mean(0))
    assert float(distillation_loss(mean, [teacher, other], labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(teacher, [teacher, other], labels)) > 0.01
    # A pixel marked ignore does not count, however wrong the student is there.
    wrong = teacher.clone()
    wrong[0, :, 0, 0] = torch.tensor([50.0, -50.0, 0.0])
    labels[0, 0, 0] = IGNORE_INDEX
    assert float(distillation_loss(wrong, [teacher], labels)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("lovasz_weight", [0.0, 1.0])
def test_a_batch_without_a_labelled_pixel_gives_zero_loss_not_nan(lovasz_weight: float) -> None:
    """A crop of padding and unlabelled pixels only: the weighted mean over no pixels was
    NaN, and one NaN step makes every weight NaN."""
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    labels = torch.full((2, 4, 5), IGNORE_INDEX, dtype=torch.long)
    loss = segmentation_loss(logits, labels, torch.tensor([0.7, 1.0, 1.9]), 0.5, lovasz_weight)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))
