"""Figures of the report page, rendered off-screen to PNG bytes.

Every function takes one section of the report dict (see docs of ``drivingseg report``)
and returns PNG bytes, or ``None`` when the section is absent or holds nothing to draw.
Figures are built as plain :class:`matplotlib.figure.Figure` objects on the Agg canvas
(never through ``pyplot``), so no window opens, no global figure registry grows, and
nothing needs a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "all_plots",
    "class_metrics_bars",
    "confusion_matrix_heatmap",
    "detection_pr_curves",
    "kitti_road_pr_curve",
    "latency_boxplot",
    "per_frame_iou",
    "range_error_histogram",
    "range_iou_bars",
]

_DPI = 100
_METRICS = ("iou", "precision", "recall", "f1")
_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _new_figure(width_in: float, height_in: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes and release its artists."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    fig.clear()
    return buffer.getvalue()


def _num(value: Any) -> float:
    """A JSON number (or ``None``) as a float, ``nan`` for missing values."""
    if value is None:
        return math.nan
    return float(value)


def class_metrics_bars(segmentation: Mapping[str, Any] | None) -> bytes | None:
    """Grouped bars of IoU, precision, recall and F1 per class (in %)."""
    if not segmentation or not segmentation.get("per_class"):
        return None
    per_class: Mapping[str, Mapping[str, Any]] = segmentation["per_class"]
    names = [str(name) for name in per_class]
    fig, ax = _new_figure(7.0, 3.6)
    x = np.arange(len(names), dtype=np.float64)
    width = 0.8 / len(_METRICS)
    for k, metric in enumerate(_METRICS):
        values = np.array([_num(per_class[n].get(metric)) * 100.0 for n in per_class])
        offset = (k - (len(_METRICS) - 1) / 2) * width
        bars = ax.bar(x + offset, np.nan_to_num(values), width, label=metric, color=_COLOURS[k])
        labels = ["–" if math.isnan(v) else f"{v:.0f}" for v in values]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 110)
    ax.set_ylabel("%")
    ax.set_title("Per-class metrics")
    ax.legend(ncols=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    return _to_png(fig)


def confusion_matrix_heatmap(segmentation: Mapping[str, Any] | None) -> bytes | None:
    """Row-normalised confusion matrix (rows: label) with the raw counts in the cells."""
    if not segmentation or not segmentation.get("confusion_matrix"):
        return None
    counts = np.asarray(segmentation["confusion_matrix"], dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.size == 0:
        return None
    names = [str(c) for c in segmentation.get("classes", [])]
    if len(names) != counts.shape[0]:
        names = [str(i) for i in range(counts.shape[0])]
    row_sums = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    fig, ax = _new_figure(5.2, 4.4)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of label row")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            colour = "white" if share[i, j] > 0.6 else "black"
            text = f"{share[i, j] * 100:.1f} %\n{int(counts[i, j]):,}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    ax.set_title("Confusion matrix (pixels)")
    return _to_png(fig)


def kitti_road_pr_curve(kitti_road: Mapping[str, Any] | None) -> bytes | None:
    """KITTI road precision-recall curve with the MaxF operating point marked."""
    curve = (kitti_road or {}).get("curve") or {}
    precision = np.asarray(curve.get("precision") or [], dtype=np.float64)
    recall = np.asarray(curve.get("recall") or [], dtype=np.float64)
    if kitti_road is None or precision.size == 0 or precision.shape != recall.shape:
        return None
    fig, ax = _new_figure(5.0, 4.0)
    ax.plot(recall, precision, color=_COLOURS[0], label="road")
    if kitti_road.get("recall") is not None and kitti_road.get("precision") is not None:
        max_f = _num(kitti_road.get("max_f")) * 100.0
        ax.plot(
            [_num(kitti_road["recall"])],
            [_num(kitti_road["precision"])],
            "o",
            color=_COLOURS[3],
            label=f"MaxF {max_f:.1f} %",
        )
    return _pr_png(fig, ax, "KITTI road: precision-recall", "lower left")


def _pr_png(fig: Figure, ax: Axes, title: str, legend_loc: Literal["best", "lower left"]
            ) -> bytes:
    """Finish a precision-recall plot: unit axes, labels, legend, grid; as PNG."""
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(loc=legend_loc)
    ax.grid(alpha=0.3)
    return _to_png(fig)


def range_iou_bars(by_range: Mapping[str, Any] | None) -> bytes | None:
    """Car IoU per lidar range bin, each bar labelled with its pixel count."""
    bins: Sequence[Mapping[str, Any]] = (by_range or {}).get("car") or []
    if not bins:
        return None
    labels = [f"{_num(b.get('lo_m')):g}-{_num(b.get('hi_m')):g} m" for b in bins]
    values = np.array([_num(b.get("iou")) * 100.0 for b in bins])
    fig, ax = _new_figure(6.0, 3.4)
    bars = ax.bar(np.arange(len(bins)), np.nan_to_num(values), color=_COLOURS[0])
    texts = [
        ("no car" if math.isnan(v) else f"{v:.0f} %") + f"\n{int(b.get('pixels') or 0):,} px"
        for v, b in zip(values, bins, strict=True)
    ]
    ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
    ax.set_xticks(np.arange(len(bins)), labels)
    ax.set_ylim(0, 120)
    ax.set_ylabel("car IoU (%)")
    ax.set_xlabel("lidar range")
    ax.set_title("Car IoU by lidar range")
    ax.grid(axis="y", alpha=0.3)
    return _to_png(fig)


def detection_pr_curves(detection: Mapping[str, Any] | None) -> bytes | None:
    """Box detection precision-recall curves, one per IoU threshold."""
    pr: Mapping[str, Mapping[str, Any]] = (detection or {}).get("pr") or {}
    curves = {
        key: (
            np.asarray(c.get("recall") or [], dtype=np.float64),
            np.asarray(c.get("precision") or [], dtype=np.float64),
        )
        for key, c in pr.items()
        if c
    }
    curves = {k: v for k, v in curves.items() if v[0].size and v[0].shape == v[1].shape}
    if detection is None or not curves:
        return None
    ap: Mapping[str, Any] = detection.get("ap") or {}
    fig, ax = _new_figure(5.0, 4.0)
    for k, (key, (recall, precision)) in enumerate(curves.items()):
        ap_value = ap.get(key)
        ap_text = "n/a" if ap_value is None else f"{float(ap_value) * 100:.1f} %"
        label = f"IoU {key}: AP {ap_text}"
        ax.step(recall, precision, where="post", color=_COLOURS[k % len(_COLOURS)], label=label)
    return _pr_png(fig, ax, "Box detection: precision-recall", "best")


def range_error_histogram(detection: Mapping[str, Any] | None) -> bytes | None:
    """Histogram of signed range errors (detected minus ground-truth range, m)."""
    errors = np.asarray((detection or {}).get("range_errors_m") or [], dtype=np.float64)
    errors = errors[np.isfinite(errors)]
    if errors.size == 0:
        return None
    fig, ax = _new_figure(5.0, 3.4)
    ax.hist(errors, bins=min(40, max(10, errors.size // 3)), color=_COLOURS[2])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.axvline(float(np.median(errors)), color=_COLOURS[3], linestyle="--", label="median (signed)")
    ax.set_xlabel("range error (m, detection - ground truth)")
    ax.set_ylabel("boxes")
    ax.set_title(f"Range error of matched boxes (n = {errors.size})")
    ax.legend()
    ax.grid(alpha=0.3)
    return _to_png(fig)


def latency_boxplot(latency: Mapping[str, Any] | None) -> bytes | None:
    """Box plot of the per-frame latency samples of each stage and of the total."""
    section: Mapping[str, Any] = latency or {}
    stats: dict[str, Mapping[str, Any]] = dict(section.get("stages") or {})
    if section.get("total"):
        stats["total"] = section["total"]
    samples = {
        name: np.asarray(s.get("samples_ms") or [], dtype=np.float64) for name, s in stats.items()
    }
    samples = {name: v[np.isfinite(v)] for name, v in samples.items()}
    samples = {name: v for name, v in samples.items() if v.size}
    if not samples:
        return None
    fig, ax = _new_figure(7.0, 3.6)
    ax.boxplot(list(samples.values()), tick_labels=list(samples), showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("ms per frame (log scale)")
    ax.set_title("Latency per stage")
    ax.grid(axis="y", alpha=0.3, which="major")
    ax.grid(axis="y", alpha=0.1, which="minor")
    return _to_png(fig)


def per_frame_iou(
    frames: Sequence[Mapping[str, Any]], inputs: Sequence[Mapping[str, Any]] = ()
) -> bytes | None:
    """Per-frame mean IoU over the frame index, one line per input."""
    series: dict[int, list[tuple[int, float]]] = {}
    for frame in frames:
        if frame.get("mean_iou") is None:
            continue
        series.setdefault(int(frame.get("input", 0)), []).append(
            (int(frame.get("index", 0)), float(frame["mean_iou"]) * 100.0)
        )
    if not series:
        return None
    kinds = {int(i.get("index", -1)): str(i.get("kind", "")) for i in inputs}
    fig, ax = _new_figure(8.0, 3.2)
    for k, (index, points) in enumerate(sorted(series.items())):
        points.sort()
        x = [p[0] for p in points]
        y = [p[1] for p in points]
        label = f"input {index}" + (f" ({kinds[index]})" if kinds.get(index) else "")
        style = "-o" if len(points) <= 60 else "-"
        ax.plot(x, y, style, markersize=3, color=_COLOURS[k % len(_COLOURS)], label=label)
    ax.set_ylim(0, 100)
    ax.set_xlabel("frame index")
    ax.set_ylabel("mean IoU (%)")
    ax.set_title("Per-frame mean IoU")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _to_png(fig)


def all_plots(report: Mapping[str, Any]) -> dict[str, bytes]:
    """Every figure the report's sections allow, keyed by name; absent ones are left out."""
    segmentation = report.get("segmentation")
    detection = report.get("detection")
    figures = {
        "class_metrics": class_metrics_bars(segmentation),
        "confusion_matrix": confusion_matrix_heatmap(segmentation),
        "kitti_road_pr": kitti_road_pr_curve(report.get("kitti_road")),
        "range_iou": range_iou_bars(report.get("by_range")),
        "detection_pr": detection_pr_curves(detection),
        "range_error": range_error_histogram(detection),
        "latency": latency_boxplot(report.get("latency")),
        "per_frame_iou": per_frame_iou(report.get("frames") or [], report.get("inputs") or []),
    }
    return {name: png for name, png in figures.items() if png is not None}
