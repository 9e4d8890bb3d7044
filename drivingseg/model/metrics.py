"""Exact segmentation metrics: an int64 confusion matrix and the KITTI road MaxF / AP.

The confusion matrix ``cm[true, pred]`` is accumulated with integer counts (no float
rounding, whatever the number of frames); IoU, precision, recall and F1 per class and
the mean IoU over road and car are derived from it. Pixels labelled ``ignore_index`` do
not count. :class:`RoadPR` follows the KITTI road devkit (``evaluateRoad.py``): 256
thresholds ``t / 255`` over the road probability; a pixel is called road at ``t`` when its
probability is ``>= t / 255`` (each pixel is counted at the highest threshold it reaches,
so continuous probabilities score as the devkit scores them); MaxF is the best F1 over
thresholds and AP the PASCAL VOC 11-point average precision, both over all frames'
pixels together (perspective space).

Inputs are checked, since a mix-up scores silently wrong otherwise: class ids must be whole
numbers (probabilities passed as predictions truncated to class 0), road labels 0, 1 or
``ignore_index`` (3-class labels dropped the car pixels, the road's false positives) and
road probabilities in [0, 1]. Bad input raises :class:`~drivingseg.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drivingseg.errors import ConfigError
from drivingseg.model.config import CLASS_NAMES, IGNORE_INDEX

__all__ = ["ClassScores", "ConfusionMatrix", "RoadPR", "confusion_matrix", "mean_iou_of",
           "scores_of"]

SCORED_CLASSES = ("road", "car")


def confusion_matrix(
    labels: npt.ArrayLike, pred: npt.ArrayLike, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> npt.NDArray[np.int64]:
    """``cm[t, p]`` = pixels with label ``t`` predicted ``p``; ignored pixels skipped."""
    t_in, p_in = np.asarray(labels), np.asarray(pred)
    if t_in.shape != p_in.shape:  # before ravel: a transposed frame has the same pixel count
        raise ConfigError(f"labels and predictions differ in size: {t_in.shape} vs {p_in.shape}")
    t = _class_ids(t_in, "labels")
    p = _class_ids(p_in, "predictions")
    keep = t != ignore_index
    t, p = t[keep], p[keep]
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        found = sorted({int(v) for v in np.unique(np.r_[t, p]) if not 0 <= v < num_classes})
        raise ConfigError(f"class ids must be in [0, {num_classes}) or {ignore_index}, "
                          f"got {found[:5]!r}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    ).astype(np.int64)


def _class_ids(values: npt.NDArray[Any], what: str) -> npt.NDArray[np.int64]:
    """``values`` as int64 ids; ConfigError for values that are not whole numbers (a
    probability map given as predictions would be truncated to class 0)."""
    if values.dtype.kind not in "biuf":
        raise ConfigError(f"{what} must be class ids (integers), got dtype {values.dtype}")
    flat = values.ravel()
    if values.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.floor(flat))
        if bad.any():
            message = (f"{what} must be whole class ids, got {flat[bad][0].item()!r} "
                       f"(dtype {values.dtype}); pass Segmentation.class_ids, not probabilities")
            raise ConfigError(message)
    return flat.astype(np.int64)


@dataclass(frozen=True)
class ClassScores:
    """Scores of one class; ``None`` where the denominator is 0 (class absent)."""

    name: str
    tp: int
    fp: int
    fn: int
    iou: float | None
    precision: float | None
    recall: float | None
    f1: float | None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


class ConfusionMatrix:
    """Accumulates an int64 confusion matrix over frames."""

    def __init__(self, classes: tuple[str, ...] = CLASS_NAMES) -> None:
        self.classes = classes
        self.matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)

    def update(self, labels: npt.ArrayLike, pred: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Add one frame; returns that frame's own matrix."""
        cm = confusion_matrix(labels, pred, len(self.classes))
        self.matrix += cm
        return cm

    def merge(self, other: npt.ArrayLike) -> None:
        """Add another matrix of the same classes (a worker's, a frame's)."""
        matrix = np.asarray(other)
        if matrix.shape != self.matrix.shape:
            message = (f"cannot merge a confusion matrix of shape {matrix.shape!r} into one "
                       f"of {len(self.classes)} classes {self.classes!r}")
            raise ConfigError(message)
        self.matrix += matrix.astype(np.int64)

    def scores(self) -> list[ClassScores]:
        return scores_of(self.matrix, self.classes)

    def mean_iou(self, names: tuple[str, ...] = SCORED_CLASSES) -> float | None:
        return mean_iou_of(self.matrix, self.classes, names)


def scores_of(matrix: npt.NDArray[np.int64], classes: tuple[str, ...]) -> list[ClassScores]:
    """Per-class TP/FP/FN, IoU, precision, recall and F1 from ``matrix[true, pred]``."""
    out = []
    for i, name in enumerate(classes):
        tp = int(matrix[i, i])
        fp = int(matrix[:, i].sum()) - tp
        fn = int(matrix[i, :].sum()) - tp
        out.append(ClassScores(name, tp, fp, fn, _ratio(tp, tp + fp + fn), _ratio(tp, tp + fp),
                               _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)))
    return out


def mean_iou_of(
    matrix: npt.NDArray[np.int64], classes: tuple[str, ...], names: tuple[str, ...] = SCORED_CLASSES
) -> float | None:
    """Mean IoU over ``names`` (the classes that are present)."""
    ious = [s.iou for s in scores_of(matrix, classes) if s.name in names and s.iou is not None]
    return float(np.mean(ious)) if ious else None


class RoadPR:
    """KITTI road MaxF and AP from per-pixel road probabilities (devkit convention)."""

    LEVELS = 256
    SLACK = 1e-6
    """Levels of rounding error forgiven when a probability is put on a threshold."""

    def __init__(self) -> None:
        self.pos_hist = np.zeros(self.LEVELS, dtype=np.int64)
        self.neg_hist = np.zeros(self.LEVELS, dtype=np.int64)

    def update(self, road_labels: npt.ArrayLike, road_prob: npt.ArrayLike) -> None:
        """``road_labels``: 1 road, 0 not road, ``IGNORE_INDEX`` don't care (3-class labels
        are refused: map car to 0 first); ``road_prob`` in [0, 1]."""
        lab_in, prob_in = np.asarray(road_labels), np.asarray(road_prob, dtype=np.float64)
        if lab_in.shape != prob_in.shape:
            raise ConfigError(f"road labels and probabilities differ in size: {lab_in.shape} "
                              f"vs {prob_in.shape}")
        lab, prob = lab_in.ravel(), prob_in.ravel()
        odd = (lab != 0) & (lab != 1) & (lab != IGNORE_INDEX)
        if odd.any():
            message = (f"road labels must be 1 (road), 0 (not road) or {IGNORE_INDEX} (don't "
                       f"care), got {lab[odd][0].item()!r}; map other classes (car 2) to 0 first")
            raise ConfigError(message)
        bad = ~((prob >= -self.SLACK) & (prob <= 1.0 + self.SLACK))  # NaN is bad too
        if bad.any():
            message = f"road probabilities must lie in [0, 1], got {prob[bad][0].item()!r}"
            raise ConfigError(message)
        # level = the highest threshold t / 255 the probability reaches (floor, as the devkit
        # compares prob >= t / 255; rounding called 0.4975 road at 127 / 255 = 0.498). The
        # slack keeps an 8-bit map's k / 255, a hair under k after the product, at level k.
        scaled = prob * (self.LEVELS - 1) + self.SLACK
        q = np.clip(np.floor(scaled), 0, self.LEVELS - 1).astype(np.int64)
        self.pos_hist += np.bincount(q[lab == 1], minlength=self.LEVELS)
        self.neg_hist += np.bincount(q[lab == 0], minlength=self.LEVELS)

    def curve(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(precision, recall) at thresholds ``t / 255`` for t = 0 .. 255."""
        tp = np.cumsum(self.pos_hist[::-1])[::-1]  # positives with level >= t
        fp = np.cumsum(self.neg_hist[::-1])[::-1]
        n_pos = int(self.pos_hist.sum())
        recall = tp / max(n_pos, 1)
        precision = tp / np.maximum(tp + fp, 1)
        return precision.astype(np.float64), recall.astype(np.float64)

    def result(self) -> dict[str, Any]:
        """``max_f``, ``ap``, and the threshold, precision and recall at MaxF; all ``None``
        when no pixel is labelled road (recall, so MaxF and AP, are undefined). ``space``
        says they are scored in perspective (image) space: the KITTI leaderboard's figures
        are in the bird's-eye view and are not comparable."""
        if not self.pos_hist.any():
            return {"max_f": None, "ap": None, "threshold": None, "precision": None,
                    "recall": None, "space": "perspective"}
        precision, recall = self.curve()
        keep = ~((recall == 0) & (precision == 0))
        thresholds = np.arange(self.LEVELS)[keep] / (self.LEVELS - 1)
        p, r = precision[keep], recall[keep]
        ap = 0.0
        for level in np.linspace(0.0, 1.0, 11):
            above = r >= level - 1e-12
            ap += float(p[above].max()) if above.any() else 0.0
        f = 2 * p * r / np.maximum(p + r, 1e-12)
        i = int(f.argmax())
        return {"max_f": float(f[i]), "ap": ap / 11, "threshold": float(thresholds[i]),
                "precision": float(p[i]), "recall": float(r[i]), "space": "perspective"}
