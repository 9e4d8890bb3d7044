"""Box evaluation: per-frame matching, then KITTI's 40-point AP over a whole run.

:func:`match_frame` turns one frame into a :class:`FrameMatch` of plain tuples (it
pickles, so worker processes can match frames and send the results to one
:class:`BoxEvaluator`). The evaluator sorts what it was given by key, so the numbers do
not depend on the order frames arrive in.

The precision/recall curve is counted as KITTI's devkit (``evaluate_object.cpp``,
``computeStatistics``) counts it: at each score threshold the frame is matched again with
only the detections at or above it, each box (in label order) taking the detection that
overlaps it most, by strictly more than the IoU threshold. That matching is not greedy by
score, so a frame's counts at each of its scores are kept (:attr:`FrameMatch.counts`).

Boxes use the exclusive-edge convention of :mod:`drivingseg.detect.proposals`: area is
``(x2 - x1) * (y2 - y1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from drivingseg.detect.box import Detection
from drivingseg.detect.gt import GtBox
from drivingseg.errors import ConfigError

__all__ = ["RECALL_POINTS", "BoxEvaluator", "FrameMatch", "ap_40", "box_cover", "box_iou",
           "match_frame"]

RECALL_POINTS = 40
"""KITTI's interpolated AP samples the precision envelope at recall 1/40 ... 40/40."""


@dataclass(frozen=True)
class FrameMatch:
    """One frame's detections matched against its ground truth at each IoU threshold.

    ``scores[t]`` has one entry per detection counted at threshold ``t`` by greedy matching
    by score (not absorbed by a don't-care box there, nor an unmatched short one), in
    score order; ``tp[t]`` one flag
    per entry of ``scores[t]``; ``n_gt`` counts the boxes to find; ``range_pairs`` holds
    (predicted, gt) range from the camera origin of detections matched at the lowest
    threshold that have lidar points: the norm of the detection's ``centroid_cam_m``
    against the box's :attr:`GtBox.range_m` (the same statistic of the lidar points in the
    labelled 3D box where it has them; a detection's own ``range_m`` is from the lidar,
    which sits up to metres from the camera).

    ``counts[t]`` holds, for each distinct score ``s`` of the frame's detections (highest
    first), ``(s, tp, fp, fn)`` as the devkit counts them with only the detections scoring
    at least ``s`` (see the module docstring); the curve and AP come from it. Without it
    (a hand-made match) they come from ``scores`` and ``tp``.
    """

    scores: dict[float, tuple[float, ...]]
    tp: dict[float, tuple[bool, ...]]
    n_gt: int
    range_pairs: tuple[tuple[float, float], ...]
    counts: dict[float, tuple[tuple[float, int, int, int], ...]] = field(default_factory=dict)


def _boxes(boxes: npt.ArrayLike, name: str) -> np.ndarray:
    """``boxes`` as N x 4 float64 (one box of 4 numbers, or none, allowed); ConfigError for
    any other shape: an N x 3 array reshaped to 4 columns would score other boxes."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.shape == (4,):
        return arr.reshape(1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConfigError(f"boxes {name} must be N x 4 (x1, y1, x2, y2), got shape {arr.shape!r}")
    return arr


def _overlap(a: npt.ArrayLike, b: npt.ArrayLike
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas (N x M) of the boxes of ``a`` (N x 4, xyxy) and ``b`` (M x 4), and
    the areas of each."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    return inter, area_a, area_b


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """IoU of every box of ``a`` (N x 4, xyxy) with every box of ``b`` (M x 4): N x M."""
    inter, area_a, area_b = _overlap(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _check_thresholds(thresholds: tuple[float, ...]) -> tuple[float, ...]:
    ts = tuple(float(t) for t in thresholds)
    if not ts or any(not 0.0 < t <= 1.0 for t in ts) or len(set(ts)) != len(ts):
        message = f"IoU thresholds must be distinct values in (0, 1], got {thresholds!r}"
        raise ConfigError(message)
    return ts


def match_frame(
    detections: Sequence[Detection],
    gt: Sequence[GtBox],
    thresholds: tuple[float, ...] = (0.5, 0.7),
    *,
    min_det_height_px: float = 0.0,
) -> FrameMatch:
    """Greedy matching by descending score (ties: detection order), one detection per box,
    and the devkit's counts at each of the frame's scores (:attr:`FrameMatch.counts`).

    At each threshold ``t`` a detection takes the unmatched box to find with the highest
    IoU (more than ``t``, as the devkit's ``overlap > MIN_OVERLAP``). One that finds none
    is dropped at ``t``, as KITTI's devkit does, when it is lower than
    ``min_det_height_px``, when it takes an ignored box of a wanted or similar class (the
    same greedy matching, run after the first: each such box absorbs one detection, as the
    devkit's ``assigned_detection``, so duplicates on it stay false positives), or when a
    ``DontCare`` region covers more than ``t`` of its own area (a region absorbs any
    number); otherwise it is a false positive there.
    """
    ts = _check_thresholds(thresholds)
    order = sorted(range(len(detections)), key=lambda i: (-detections[i].score, i))
    dets = [detections[i] for i in order]
    det_boxes = np.array([d.box_xyxy_px for d in dets])
    gt_xyxy = np.array([g.box_xyxy_px for g in gt])
    care = np.array([not g.ignore for g in gt], dtype=bool)
    region = np.array([g.label.lower() == "dontcare" for g in gt], dtype=bool)
    iou = box_iou(det_boxes, gt_xyxy)
    ignored = ~care & ~region
    region_cover = box_cover(det_boxes, gt_xyxy[region]).max(axis=1, initial=0.0)
    short = [d.box_xyxy_px[3] - d.box_xyxy_px[1] < min_det_height_px for d in dets]
    matches = {t: _greedy(iou, care, t) for t in ts}
    absorbed = {t: _greedy(iou, ignored, t, [m < 0 and not s for m, s in zip(
        matches[t], short, strict=True)]) for t in ts}
    kept = {t: [k for k in range(len(dets)) if matches[t][k] >= 0 or not (
        short[k] or absorbed[t][k] >= 0 or region_cover[k] > t)] for t in ts}
    low = min(ts)
    pairs = tuple(
        (float(np.linalg.norm(xyz)), float(gt[matches[low][k]].range_m))
        for k in kept[low]
        if matches[low][k] >= 0 and (xyz := dets[k].centroid_cam_m) is not None
    )
    return FrameMatch(
        scores={t: tuple(float(dets[k].score) for k in kept[t]) for t in ts},
        tp={t: tuple(bool(matches[t][k] >= 0) for k in kept[t]) for t in ts},
        n_gt=int(care.sum()),
        range_pairs=pairs,
        counts={t: _kitti_counts(iou, region_cover, np.array([d.score for d in dets]),
                                 np.array(short, dtype=bool), care, region, t) for t in ts},
    )


def _kitti_counts(iou: npt.NDArray[np.float64], region_cover: npt.NDArray[np.float64],
                  scores: npt.NDArray[np.float64], short: npt.NDArray[np.bool_],
                  care: npt.NDArray[np.bool_], region: npt.NDArray[np.bool_], t: float
                  ) -> tuple[tuple[float, int, int, int], ...]:
    """``(s, tp, fp, fn)`` at each distinct score ``s``, highest first, counted as the
    devkit's ``computeStatistics(compute_fp=true, thresh=s)`` counts them.

    Boxes in label order each take the free detection (scoring at least ``s``) that
    overlaps them most, by more than ``t``; a short one only when no other does. A box
    to find so taken by a short detection is neither found nor missed; an ignored box's
    detection is no false positive, nor is a short one, nor one a ``DontCare`` region
    covers by more than ``t``.
    """
    out = []
    for s in sorted({float(v) for v in scores}, reverse=True):
        free = scores >= s
        tp = fn = 0
        for j in np.nonzero(~region)[0]:
            taken, best, on_short = -1, 0.0, False
            for k in np.nonzero(free & (iou[:, j] > t))[0]:
                if not short[k] and (iou[k, j] > best or on_short):
                    taken, best, on_short = int(k), float(iou[k, j]), False
                elif short[k] and taken < 0:
                    taken, on_short = int(k), True
            if taken < 0:
                fn += int(care[j])
                continue
            free[taken] = False
            tp += int(care[j] and not on_short)
        fp = int(np.count_nonzero(free & ~short & ~(region_cover > t)))
        out.append((s, tp, fp, fn))
    return tuple(out)


def box_cover(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """Share of each box of ``a`` (N x 4) that each box of ``b`` (M x 4) covers: N x M
    (KITTI's overlap of a detection with a ``DontCare`` region, over the detection's area)."""
    inter, area_a, _ = _overlap(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area_a[:, None] > 0, inter / area_a[:, None], 0.0)


def _greedy(iou: npt.NDArray[np.float64], boxes: npt.NDArray[np.bool_], t: float,
            eligible: Sequence[bool] | None = None) -> list[int]:
    """Index of the box (of those flagged in ``boxes``) each detection, in score order,
    takes at threshold ``t``, or -1; detections not ``eligible`` take none."""
    free = boxes.copy()
    out = []
    for k, row in enumerate(iou):
        if eligible is not None and not eligible[k]:
            out.append(-1)
            continue
        cand = np.where(free & (row > t), row, -1.0)
        j = int(np.argmax(cand)) if cand.size else -1
        if j >= 0 and cand[j] >= 0:
            free[j] = False
            out.append(j)
        else:
            out.append(-1)
    return out


def ap_40(tp: npt.NDArray[np.bool_], n_gt: int, scores: npt.ArrayLike | None = None
          ) -> tuple[float | None, list[float], list[float]]:
    """KITTI's 40-recall-point AP of ``tp`` flags ranked by descending ``scores``, and the
    raw precision/recall, one point per distinct score.

    Detections of equal score pass a score threshold together, so precision and recall are
    taken only after the last of each run of equal scores: the AP cannot depend on how
    ties were ordered. Without ``scores`` every detection is its own threshold.
    """
    if n_gt <= 0:
        return None, [], []
    tp = np.asarray(tp, dtype=bool)
    ends = np.arange(tp.shape[0])
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != tp.shape or np.any(np.diff(s) > 0):
            message = (f"scores must be {tp.shape[0]} values in descending order, one per "
                       f"tp flag, got shape {s.shape!r}")
            raise ConfigError(message)
        ends = np.nonzero(np.r_[s[1:] != s[:-1], True])[0] if s.size else ends
    ctp = np.cumsum(tp, dtype=np.float64)[ends]
    precision = ctp / (ends + 1)
    recall = ctp / n_gt
    return _ap_40(precision, recall), precision.tolist(), recall.tolist()


def _ap_40(precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64]) -> float:
    """Mean over recall 1/40 ... 1 of the best precision from the first point (in score
    order) that reaches that recall on."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    total = 0.0
    for r in np.arange(1, RECALL_POINTS + 1) / RECALL_POINTS:
        reached = np.nonzero(recall >= r - 1e-12)[0]
        total += float(envelope[reached[0]]) if reached.size else 0.0
    return total / RECALL_POINTS


def _steps(match: FrameMatch, t: float) -> tuple[tuple[float, int, int, int], ...]:
    """The frame's ``(s, tp, fp, fn)`` per distinct score: ``match.counts[t]``, or from its
    ``scores`` and ``tp`` flags when it has no counts."""
    if match.counts:
        return match.counts[t]
    steps: list[tuple[float, int, int, int]] = []
    tp = fp = 0
    for score, flag in zip(match.scores[t], match.tp[t], strict=True):
        tp, fp = tp + int(flag), fp + int(not flag)
        if steps and steps[-1][0] == score:
            steps.pop()
        steps.append((float(score), tp, fp, match.n_gt - tp))
    return tuple(steps)


def _curve(matches: Sequence[FrameMatch], t: float
           ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Precision and recall (``tp / (tp + fn)``, as the devkit) over all frames at each
    distinct score where the counts change, highest score first."""
    deltas = []
    for m in matches:
        prev = (0, 0, m.n_gt)
        for s, *now in _steps(m, t):
            deltas.append((-s, now[0] - prev[0], now[1] - prev[1], now[2] - prev[2]))
            prev = (now[0], now[1], now[2])
    deltas.sort()
    tp, fp, fn = 0, 0, sum(m.n_gt for m in matches)
    points: list[tuple[int, int, int]] = []
    for i, (neg_s, d_tp, d_fp, d_fn) in enumerate(deltas):
        tp, fp, fn = tp + d_tp, fp + d_fp, fn + d_fn
        last = i + 1 == len(deltas) or deltas[i + 1][0] != neg_s
        if last and tp + fp > 0 and (not points or points[-1] != (tp, fp, fn)):
            points.append((tp, fp, fn))
    arr = np.array(points, dtype=np.float64).reshape(-1, 3)
    found = arr[:, 0] + arr[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(found > 0, arr[:, 0] / found, 0.0)
    return arr[:, 0] / (arr[:, 0] + arr[:, 1]), recall


class BoxEvaluator:
    """Collects :class:`FrameMatch` results by key and computes AP and range errors."""

    def __init__(self, thresholds: tuple[float, ...] = (0.5, 0.7)) -> None:
        self.thresholds = _check_thresholds(thresholds)
        self._frames: dict[tuple[int, ...], FrameMatch] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, key: tuple[int, ...], match: FrameMatch) -> None:
        """Record one frame; ``key`` (e.g. input index, frame index) orders frames."""
        key = tuple(int(k) for k in key)
        if key in self._frames:
            raise ConfigError(f"frame key {key!r} was added twice")
        if set(match.tp) != set(self.thresholds) or (
                match.counts and set(match.counts) != set(self.thresholds)):
            message = (f"frame {key!r} was matched at thresholds {sorted(match.tp)!r}, the "
                       f"evaluator uses {list(self.thresholds)!r}")
            raise ConfigError(message)
        self._frames[key] = match

    def merge(self, other: BoxEvaluator) -> None:
        """Add every frame of ``other`` (e.g. a worker's evaluator)."""
        for key, match in other._frames.items():
            self.add(key, match)

    def result(self) -> dict[str, Any]:
        """AP per threshold, precision/recall curves and range errors (JSON-ready)."""
        keys = sorted(self._frames)
        n_gt = sum(self._frames[k].n_gt for k in keys)
        low = min(self.thresholds)
        out: dict[str, Any] = {"thresholds": list(self.thresholds), "n_gt": n_gt,
                               "n_det": sum(len(self._frames[k].scores[low]) for k in keys),
                               "ap": {}, "pr": {}}
        for t in self.thresholds:
            precision, recall = _curve([self._frames[k] for k in keys], t)
            out["ap"][str(t)] = _ap_40(precision, recall) if n_gt > 0 else None
            out["pr"][str(t)] = ({"precision": precision.tolist(), "recall": recall.tolist()}
                                 if n_gt > 0 else {"precision": [], "recall": []})
        errors = np.array([p - g for k in keys for p, g in self._frames[k].range_pairs])
        absolute = np.abs(errors)
        has = errors.size > 0
        out["range_error_m"] = {
            "n": int(errors.size),
            "mean": float(absolute.mean()) if has else None,
            "median": float(np.median(absolute)) if has else None,
            "p90": float(np.percentile(absolute, 90)) if has else None,
            "mean_signed": float(errors.mean()) if has else None,
        }
        out["range_errors_m"] = errors.tolist()
        return out
