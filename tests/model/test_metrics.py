"""Confusion matrix, IoU/precision/recall/F1 and KITTI MaxF/AP against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from drivingseg.errors import ConfigError
from drivingseg.model.metrics import ConfusionMatrix, RoadPR, confusion_matrix


def test_confusion_matrix_by_hand() -> None:
    labels = np.array([[0, 0, 1, 1], [1, 2, 2, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 2, 1, 2]], dtype=np.uint8)
    # label 0: pred 0, 1        -> cm[0] = [1, 1, 0]
    # label 1: pred 1, 1, 0     -> cm[1] = [1, 2, 0]
    # label 2: pred 2, 1        -> cm[2] = [0, 1, 1];  the 255 pixel is ignored
    expected = np.array([[1, 1, 0], [1, 2, 0], [0, 1, 1]])
    cm = confusion_matrix(labels, pred, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)

    acc = ConfusionMatrix()
    acc.update(labels, pred)
    acc.update(labels, pred)
    np.testing.assert_array_equal(acc.matrix, 2 * expected)
    road, car = acc.scores()[1], acc.scores()[2]
    # road: tp 4, fp (1+1)*2 = 4, fn 1*2 = 2 -> IoU 4/10, precision 4/8, recall 4/6
    assert (road.tp, road.fp, road.fn) == (4, 4, 2)
    assert road.iou == pytest.approx(0.4)
    assert road.precision == pytest.approx(0.5)
    assert road.recall == pytest.approx(4 / 6)
    assert road.f1 == pytest.approx(8 / 14)
    # car: tp 2, fp 0, fn 2 -> IoU 0.5
    assert car.iou == pytest.approx(0.5)
    assert car.precision == pytest.approx(1.0)
    assert acc.mean_iou() == pytest.approx(0.45)


def test_absent_class_scores_none() -> None:
    acc = ConfusionMatrix()
    acc.update(np.zeros(4, np.uint8), np.zeros(4, np.uint8))
    assert acc.scores()[2].iou is None
    assert acc.mean_iou() is None


def test_confusion_matrix_is_exact_for_large_counts() -> None:
    acc = ConfusionMatrix()
    acc.merge(np.full((3, 3), 2**40, dtype=np.int64))
    acc.update(np.array([1]), np.array([1]))
    assert acc.matrix[1, 1] == 2**40 + 1


def test_confusion_matrix_refuses_out_of_range_ids() -> None:
    with pytest.raises(ConfigError, match="class ids must be in"):
        confusion_matrix(np.array([3]), np.array([0]), 3)


def test_kitti_road_maxf_and_ap_by_hand() -> None:
    """labels road, road, not, not with probabilities 1.0, 0.4, 0.6, 0.2.

    Threshold <= 0.2: TP 2 FP 2 -> F 2/3; (0.2, 0.4]: TP 2 FP 1 -> P 2/3 R 1 F 0.8;
    (0.4, 0.6]: TP 1 FP 1 -> F 0.5; above: TP 1 FP 0 -> P 1 R 0.5 F 2/3. MaxF 0.8 at
    the first threshold above 0.2 (52/255). AP (11-point): recall levels 0..0.5 reach
    precision 1, levels 0.6..1.0 reach 2/3: (6 * 1 + 5 * 2/3) / 11. The ignored pixel
    (255) would be a false positive if it counted.
    """
    pr = RoadPR()
    pr.update(np.array([1, 1, 0, 0, 255]), np.array([1.0, 102 / 255, 153 / 255, 51 / 255, 1.0]))
    res = pr.result()
    assert res["max_f"] == pytest.approx(0.8)
    assert res["space"] == "perspective"  # not the leaderboard's bird's-eye view
    assert res["threshold"] == pytest.approx(52 / 255)
    assert res["precision"] == pytest.approx(2 / 3)
    assert res["recall"] == pytest.approx(1.0)
    assert res["ap"] == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_confusion_matrix_refuses_a_transposed_frame() -> None:
    """Same pixel count, other shape: used to be scored pixel against the wrong pixel."""
    labels = np.zeros((2, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match=r"differ in size: \(2, 3\) vs \(3, 2\)"):
        confusion_matrix(labels, np.zeros((3, 2), dtype=np.uint8), 3)


def test_kitti_road_refuses_probabilities_of_another_shape() -> None:
    with pytest.raises(ConfigError, match=r"differ in size: \(2, 3\) vs \(3, 2\)"):
        RoadPR().update(np.ones((2, 3), dtype=np.uint8), np.ones((3, 2)))


def test_kitti_road_without_road_pixels_is_undefined_not_zero() -> None:
    """No pixel labelled road: recall is 0/0, so MaxF and AP are null (as the per-class
    scores of an absent class), not a measured 0 %."""
    pr = RoadPR()
    pr.update(np.array([0, 0, 255]), np.array([0.1, 0.9, 0.5]))
    assert pr.result() == {"max_f": None, "ap": None, "threshold": None, "precision": None,
                           "recall": None, "space": "perspective"}


def _devkit_maxf_ap(road: np.ndarray, valid: np.ndarray, prob: np.ndarray
                    ) -> tuple[float, float, float]:
    """MaxF, AP and best threshold as the KITTI road devkit computes them
    (``evaluateRoad.py``: ``evalExp`` histograms over thresholds t / 255, ``prob >= t``
    is road; ``pxEval_maximizeFMeasure``), on float probabilities as given."""
    thresh = np.arange(256) / 255.0
    bins = np.concatenate(([-np.inf], thresh, [np.inf]))
    fn = np.cumsum(np.histogram(prob[road & valid], bins=bins)[0])[: len(thresh)]
    fp = np.flipud(np.cumsum(np.flipud(np.histogram(prob[~road & valid], bins=bins)[0])))
    fp = fp[1: 1 + len(thresh)]
    pos = int((road & valid).sum())
    tp = pos - fn
    recall = tp / float(pos)
    precision = tp / (tp + fp + 1e-10)
    keep = ~((recall == 0) & (precision == 0))
    recall, precision, thresh = recall[keep], precision[keep], thresh[keep]
    ap = sum(max(precision[recall >= level]) for level in np.arange(0, 1.1, 0.1)) / 11
    f = 2 * precision * recall / (precision + recall + 1e-10)
    return float(f.max()), float(ap), float(thresh[f.argmax()])


def test_kitti_road_agrees_with_the_devkit_on_continuous_probabilities() -> None:
    """The network's probabilities are not multiples of 1/255: a pixel counts as road at
    every threshold t / 255 it reaches, as in the devkit. Rounding to the nearest level
    called a probability of 0.999 road at threshold 1.0 (MaxF 2/3 where it is 1)."""
    pr = RoadPR()
    pr.update(np.array([1, 1, 0, 0]), np.array([1.0, 1.0, 0.999, 0.999]))
    res = pr.result()
    assert (res["max_f"], res["ap"], res["threshold"]) == (1.0, 1.0, 1.0)
    rng = np.random.default_rng(0)
    road = rng.random((2, 60, 80)) < 0.4
    valid = rng.random((2, 60, 80)) < 0.85  # KITTI's black don't-care pixels elsewhere
    logits = rng.normal(np.where(road, 1.5, -1.5), 1.5)
    prob = 1.0 / (1.0 + np.exp(-logits))
    pr = RoadPR()
    for lab_road, lab_valid, p in zip(road, valid, prob, strict=True):
        labels = np.where(lab_valid, lab_road.astype(np.uint8), np.uint8(255))
        pr.update(labels, p)
    res = pr.result()
    max_f, ap, threshold = _devkit_maxf_ap(road, valid, prob)
    assert res["max_f"] == pytest.approx(max_f, abs=1e-9)
    assert res["ap"] == pytest.approx(ap, abs=1e-9)
    assert res["threshold"] == pytest.approx(threshold)
    pr8 = RoadPR()  # an 8-bit probability map (k / 255) scores the same way
    prob8 = np.floor(prob * 255) / 255
    for lab_road, lab_valid, p in zip(road, valid, prob8, strict=True):
        pr8.update(np.where(lab_valid, lab_road.astype(np.uint8), np.uint8(255)), p)
    assert pr8.result()["max_f"] == pytest.approx(_devkit_maxf_ap(road, valid, prob8)[0],
                                                  abs=1e-9)


def test_confusion_matrix_refuses_probabilities_as_predictions() -> None:
    """A car-probability map given for the class ids was truncated to class 0 everywhere:
    a plausible, silently wrong confusion matrix."""
    labels = np.array([[2, 2], [0, 1]], dtype=np.uint8)
    with pytest.raises(ConfigError, match=r"predictions must be whole class ids, got 0\.89"):
        ConfusionMatrix().update(labels, np.array([[0.9, 0.8], [0.1, 0.2]], np.float32))
    # whole-valued floats are class ids still
    cm = confusion_matrix(labels, labels.astype(np.float64), 3)
    assert int(np.trace(cm)) == 4


def test_confusion_matrix_bad_ids_are_drivingseg_errors() -> None:
    """Negative labels crashed in np.bincount ("'list' argument must have no negative
    elements"); a matrix of other classes in merge failed to broadcast."""
    with pytest.raises(ConfigError, match=r"class ids must be in \[0, 3\) or 255, got \[-1\]"):
        confusion_matrix(np.array([-1, 0]), np.array([0, 0]), 3)
    with pytest.raises(ConfigError, match=r"shape \(2, 2\) into one of 3 classes"):
        ConfusionMatrix().merge(np.zeros((2, 2), dtype=np.int64))


def test_kitti_road_refuses_three_class_labels() -> None:
    """Labels 0/1/2 (car) passed as they come from ``load_pair``: the car pixels, not road,
    were silently left out, so road precision was too high."""
    with pytest.raises(ConfigError, match=r"road labels must be 1 \(road\), 0 .* got 2"):
        RoadPR().update(np.array([1, 2, 0]), np.array([0.9, 0.8, 0.1]))


@pytest.mark.parametrize("bad", [1.5, -0.2, float("nan")])
def test_kitti_road_refuses_probabilities_outside_0_1(bad: float) -> None:
    """Logits or 0..255 scores were clipped to the top level; NaN crashed in bincount."""
    with pytest.raises(ConfigError, match=r"road probabilities must lie in \[0, 1\]"):
        RoadPR().update(np.array([1, 0]), np.array([0.5, bad]))
