"""Merge per-frame results into the report dict (the schema html.py renders).

Everything that is counted is merged as exact integers (confusion matrices, KITTI road
histograms, by-range TP/FP/FN) in (input, frame) order, so the report does not depend
on how the frames were split into chunks, which executor ran them or in which order
they finished. Ratios are derived from the merged counts at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np

from drivingseg.model.evaluate import scored_classes
from drivingseg.model.metrics import SCORED_CLASSES, RoadPR, mean_iou_of, scores_of
from drivingseg.report.fleet import FleetResult
from drivingseg.report.inputs import ReportInput
from drivingseg.report.worker import STAGES, ChunkResult, ChunkTask, FrameResult

__all__ = ["CLASS_ALIASES", "FORMAT", "GalleryPick", "build_report", "class_columns",
           "class_value", "collect", "pick_gallery", "scoring_precision"]

FORMAT = "drivingseg-report/1"
BOX_CLASSES = ("Car", "Van")
RANGE_NOTE = "car IoU over pixels hit by a lidar point, binned by that point's range"
CLASS_ALIASES = {"not_road": "background"}
"""KITTI road's classes by the class whose cells they add into in the overall matrix (and
whose column shows them in frames.csv and the page)."""

_V = TypeVar("_V")


def class_value(values: Mapping[str, _V] | None, column: str) -> _V | None:
    """``values[column]``, else the value of a class shown in that column (a KITTI road
    input's ``not_road`` in the ``background`` column); ``None`` when there is neither."""
    values = values or {}
    if column in values:
        return values[column]
    for name, target in CLASS_ALIASES.items():
        if target == column and name in values:
            return values[name]
    return None


def class_columns(names: Iterable[str]) -> list[str]:
    """The columns that show ``names``, in first-seen order: a class whose column is
    already there (``not_road`` beside ``background``) adds none."""
    columns: list[str] = []
    for name in names:
        if name not in columns and CLASS_ALIASES.get(name) not in columns:
            columns.append(name)
    return columns


@dataclass(frozen=True)
class GalleryPick:
    """A frame chosen for the gallery and why."""

    frame: FrameResult
    reason: str


def collect(tasks: Sequence[ChunkTask], specs: Sequence[ReportInput],
            fleet: FleetResult[ChunkResult]) -> tuple[list[FrameResult], list[dict[str, Any]]]:
    """Scored frames in (input, frame) order and the failures (frames and whole chunks)."""
    frames: list[FrameResult] = []
    failures: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for result in fleet.results:
        if result is None:
            continue
        frames.extend(result.frames)
        for f in result.failures:
            failures.append(((f.input, f.index), {"input": f.input, "path": f.path,
                                                  "frames": [f.name], "error": f.error}))
    for tf in fleet.failures:
        task = tasks[tf.task]
        first = task.frames[0].index if task.frames else 0
        failures.append(((task.input, first), {
            "input": task.input, "path": specs[task.input].path,
            "frames": [fr.name for fr in task.frames], "error": tf.error}))
    frames.sort(key=lambda fr: (fr.input, fr.index))
    failures.sort(key=lambda item: item[0])
    return frames, [entry for _, entry in failures]


def _per_class(matrix: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    return {s.name: asdict(s) for s in scores_of(matrix, classes)}


def _averaged(matrix: np.ndarray, classes: tuple[str, ...]) -> list[str]:
    """The classes ``mean_iou_road_car`` is the mean of: road and car where present (KITTI
    road: road alone), as ``drivingseg eval``'s ``mean_iou_classes``."""
    return [s.name for s in scores_of(matrix, classes)
            if s.name in SCORED_CLASSES and s.iou is not None]


def _segmentation(specs: Sequence[ReportInput],
                  frames: Sequence[FrameResult]) -> dict[str, Any] | None:
    seg_specs = [s for s in specs if s.segmentation_gt]
    scored = [f for f in frames if f.confusion is not None]
    if not seg_specs or not scored:
        return None
    road_only = all(s.road_only for s in seg_specs)
    classes = scored_classes(road_only)
    total = np.zeros((len(classes), len(classes)), dtype=np.int64)
    per_input = []
    for spec in seg_specs:
        own = scored_classes(spec.road_only)
        m = np.zeros((len(own), len(own)), dtype=np.int64)
        n = 0
        for f in scored:
            if f.input == spec.index and f.confusion is not None:
                m += f.confusion
                n += 1
        total[: len(own), : len(own)] += m  # KITTI road: not_road/road sit on background/road
        per_input.append({"input": spec.index, "frames": n, "per_class": _per_class(m, own),
                          "mean_iou_road_car": mean_iou_of(m, own),
                          "mean_iou_classes": _averaged(m, own)})
    return {"classes": list(classes), "frames": len(scored),
            "confusion_matrix": total.tolist(), "per_class": _per_class(total, classes),
            "mean_iou_road_car": mean_iou_of(total, classes),
            "mean_iou_classes": _averaged(total, classes), "per_input": per_input}


def _groups(frames: Sequence[FrameResult]) -> dict[int, list[FrameResult]]:
    """``frames`` by input, in input order (the frames come in (input, frame) order)."""
    groups: dict[int, list[FrameResult]] = {}
    for f in frames:
        groups.setdefault(f.input, []).append(f)
    return groups


def _road_pr(frames: Sequence[FrameResult]) -> RoadPR:
    pr = RoadPR()
    for f in frames:
        if f.road_hist is not None:
            pr.pos_hist += f.road_hist[0]
            pr.neg_hist += f.road_hist[1]
    return pr


def _kitti_road(frames: Sequence[FrameResult]) -> dict[str, Any] | None:
    scored = [f for f in frames if f.road_hist is not None]
    if not scored:
        return None
    pr = _road_pr(scored)
    precision, recall = pr.curve()
    per_input = []
    for index, group in _groups(scored).items():
        own = _road_pr(group).result()
        per_input.append({"input": index, "frames": len(group), "max_f": own["max_f"],
                          "ap": own["ap"]})
    return {**pr.result(), "frames": len(scored),
            "curve": {"precision": precision.tolist(), "recall": recall.tolist()},
            "per_input": per_input}


def _range_bins(frames: Sequence[FrameResult], edges_m: Sequence[float]) -> list[dict[str, Any]]:
    total: np.ndarray = np.stack([f.range_counts for f in frames if f.range_counts is not None]
                                 ).sum(axis=0, dtype=np.int64)
    bins = []
    for j, (lo, hi) in enumerate(pairwise(edges_m)):
        tp, fp, fn, pixels = (int(v) for v in total[j])
        bins.append({"lo_m": lo, "hi_m": hi, "tp": tp, "fp": fp, "fn": fn,
                     "iou": tp / (tp + fp + fn) if tp + fp + fn else None, "pixels": pixels})
    return bins


def _by_range(frames: Sequence[FrameResult], edges_m: Sequence[float]) -> dict[str, Any] | None:
    scored = [f for f in frames if f.range_counts is not None]
    if not scored:
        return None
    per_input = [{"input": index, "frames": len(group), "frames_with_car": _with_car(group),
                  "car": _range_bins(group, edges_m)}
                 for index, group in _groups(scored).items()]
    return {"bin_edges_m": list(edges_m), "note": RANGE_NOTE, "frames": len(scored),
            "frames_with_car": _with_car(scored), "car": _range_bins(scored, edges_m),
            "per_input": per_input}


def _with_car(frames: Sequence[FrameResult]) -> int:
    """How many of ``frames`` have labelled car pixels hit by lidar (car TP + FN): the
    others add false positives only, so 'frames with car labels' would overstate them."""
    return sum(1 for f in frames
               if f.range_counts is not None and int(f.range_counts[:, [0, 2]].sum()) > 0)


def _box_scores(frames: Sequence[FrameResult]) -> dict[str, Any]:
    """AP, curves, counts and range errors of the box frames ``frames``."""
    from drivingseg.detect.evaluate import BoxEvaluator

    evaluator = BoxEvaluator()
    for f in frames:
        evaluator.add((f.input, f.index), f.match)
    result = dict(evaluator.result())
    out: dict[str, Any] = {"thresholds": result.pop("thresholds", None),
                           "classes": list(BOX_CLASSES), "frames": len(frames)}
    for key, value in result.items():
        out[key] = value
        if key == "n_det":  # n_det: scored at the lowest threshold; n_proposals: all of them
            out["n_proposals"] = sum(len(f.detections) for f in frames)
    return out


def _detection(frames: Sequence[FrameResult]) -> dict[str, Any] | None:
    matched = [f for f in frames if f.match is not None]
    if not matched:
        return None
    out = _box_scores(matched)
    out["per_input"] = []
    for index, group in _groups(matched).items():
        own = _box_scores(group)
        out["per_input"].append({"input": index, **{k: own[k] for k in (
            "frames", "n_gt", "n_proposals", "n_det", "ap", "range_error_m")}})
    return out


def scoring_precision(device: str) -> str:
    """The precision the report's segmenters run in (``fp16`` auto: float16 on CUDA, else
    float32), which the streaming node may not share (bfloat16 on a CPU that has it): said
    in the report so that its masks and the node's can be told apart."""
    from drivingseg.model.device import torch_device

    return "float16" if torch_device(device).type == "cuda" else "float32"


def latency_stats(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, mean, p50/p90/p99, max (ms) and the samples themselves."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
    return {"n": int(arr.size), "mean_ms": float(arr.mean()), "p50_ms": p50, "p90_ms": p90,
            "p99_ms": p99, "max_ms": float(arr.max()), "samples_ms": arr.tolist()}


def _latency(frames: Sequence[FrameResult]) -> dict[str, Any]:
    stages: dict[str, Any] = {}
    for stage in STAGES:
        samples = [f.latency_ms[stage] for f in frames if stage in f.latency_ms]
        if samples:
            stages[stage] = latency_stats(samples)
    out: dict[str, Any] = {"stages": stages}
    if frames:
        out["total"] = latency_stats([sum(f.latency_ms.values()) for f in frames])
    return out


def _n_gt(frame: FrameResult) -> int:
    return sum(1 for b in frame.gt_boxes if not getattr(b, "ignore", False))


def _frame_row(f: FrameResult) -> dict[str, Any]:
    """One ``frames`` row; ``n_gt_boxes`` is None on a frame without box ground truth
    (unscored, not "no car to find")."""
    return {"input": f.input, "index": f.index, "frame": f.name, "image": f.image,
            "iou": f.iou, "mean_iou": f.mean_iou, "pixel_accuracy": f.pixel_accuracy,
            "n_detections": len(f.detections),
            "n_gt_boxes": _n_gt(f) if f.match is not None else None,
            "latency_ms": dict(f.latency_ms)}


def pick_gallery(frames: Sequence[FrameResult], k: int) -> list[GalleryPick]:
    """The ``k`` worst frames: lowest mean IoU (segmentation inputs) and most missed
    boxes (box-only inputs), taken in turn, worst first."""
    seg = sorted((f for f in frames if f.mean_iou is not None),
                 key=lambda f: (f.mean_iou, f.input, f.index))
    box = sorted((f for f in frames if f.confusion is None and f.match is not None
                  and f.missed_boxes > 0), key=lambda f: (-f.missed_boxes, f.input, f.index))
    picks: list[GalleryPick] = []
    for i in range(max(len(seg), len(box))):
        if i < len(seg):
            worst = 100 * (seg[i].mean_iou or 0.0)
            picks.append(GalleryPick(seg[i], f"lowest mean IoU {worst:.1f} %"))
        if i < len(box):
            picks.append(GalleryPick(box[i], f"missed {box[i].missed_boxes} of "
                                             f"{_n_gt(box[i])} boxes"))
    return picks[: max(0, k)]


def build_report(
    specs: Sequence[ReportInput],
    frames: Sequence[FrameResult],
    failures: Sequence[dict[str, Any]],
    *,
    meta: dict[str, Any],
    gallery: Sequence[GalleryPick] = (),
    gallery_k: int | None = None,
    range_edges_m: Sequence[float] = (),
) -> dict[str, Any]:
    """The report dict. ``meta``: created_utc, command, weights, input_size, resize, tta, device,
    executor, wall_s (copied in that order after ``format``); ``gallery_k``: the frames the
    gallery was asked for (``--gallery``; 0 turned it off)."""
    inputs = []
    for spec in specs:
        entry = spec.summary()
        entry["frames_ok"] = sum(1 for f in frames if f.input == spec.index)
        inputs.append(entry)
    report: dict[str, Any] = {"format": FORMAT}
    for key in ("created_utc", "command", "weights", "input_size", "resize", "tta", "device",
                "precision", "executor", "wall_s"):
        report[key] = meta.get(key)
    report.update({
        "inputs": inputs,
        "segmentation": _segmentation(specs, frames),
        "kitti_road": _kitti_road(frames),
        "by_range": _by_range(frames, range_edges_m) if range_edges_m else None,
        "detection": _detection(frames),
        "latency": _latency(frames),
        "frames": [_frame_row(f) for f in frames],
        "failures": list(failures),
        "gallery_k": gallery_k,
        "gallery": [{"input": p.frame.input, "index": p.frame.index, "frame": p.frame.name,
                     "image": p.frame.image, "reason": p.reason} for p in gallery],
    })
    return report
