"""The self-contained HTML page of ``drivingseg report``.

One file, nothing outside it: inline CSS, a few lines of inline script (both kept in
``assets/`` beside this module), and every image embedded as a ``data:`` URI (plots as
PNG, gallery panels as JPEG: photo panels are about five times smaller that way, see
:mod:`drivingseg.report.html_gallery`), so the page can be mailed, archived or opened
offline.
Every string that comes from the data is escaped.

The ``<body>`` carries ``data-report-status``: ``"loading"`` until the window's load
event, then ``"ok"``, ``"broken-images:N"`` (N images failed to decode) or
``"script-error: <message>"``, so a headless browser can tell whether the page works
(see :mod:`drivingseg.report.browser`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any

from drivingseg.errors import ConfigError
from drivingseg.fileio import write_text_atomic
from drivingseg.report.aggregate import class_columns, class_value
from drivingseg.report.html_cells import (
    _NONE,
    _absent,
    _alias_note,
    _averaged,
    _count,
    _has_input,
    _metric_row,
    _ms,
    _not_scored,
    _num_attr,
    _other_classes,
    _over,
    _pct,
    _per_input,
    _plots,
    _scored_rule,
    _section,
    _table,
)
from drivingseg.report.html_gallery import GalleryItem, gallery_section
from drivingseg.report.plots import all_plots
from drivingseg.report.worker import STAGES

__all__ = ["GalleryItem", "build_html", "render_html"]

@functools.cache
def _asset(name: str) -> str:
    """The text of a file in ``drivingseg/report/assets`` (the page's CSS and scripts)."""
    return resources.files("drivingseg.report").joinpath("assets", name).read_text("utf-8")


def _header(report: Mapping[str, Any]) -> str:
    size = report.get("input_size") or []
    size_text = " × ".join(str(int(v)) for v in size) + " px" if size else _NONE
    wall = report.get("wall_s")
    meta = [
        ("weights", f"<code>{escape(str(report.get('weights', _NONE)))}</code>"),
        ("input size", escape(f"{size_text}, {report.get('resize') or 'stretch'}")),
        ("test-time augmentation", escape(str((report.get("tta") or {}).get("summary", "off")))),
        ("device", escape(f"{report.get('device', _NONE)}, "
                          f"{report.get('precision') or 'float32'}")),
        ("executor", escape(str(report.get("executor", _NONE)))),
        ("wall time", _NONE if wall is None else f"{float(wall):.1f} s"),
        ("created", escape(str(report.get("created_utc", _NONE)))),
        ("command", f"<code>{escape(str(report.get('command', _NONE)))}</code>"),
    ]
    meta_rows = "".join(f'<tr><th class="t">{k}</th><td class="t">{v}</td></tr>' for k, v in meta)
    yes_no = {True: "yes", False: "no"}
    inputs = [
        (
            str(int(i.get("index", 0))),
            escape(str(i.get("kind", _NONE))),
            escape(str(i.get("path", ""))),
            _count(i.get("frames")),
            _count(i.get("frames_ok")),
            yes_no.get(bool(i.get("segmentation_gt")), _NONE),
            yes_no.get(bool(i.get("box_gt")), _NONE),
            yes_no.get(bool(i.get("lidar")), _NONE),
        )
        for i in report.get("inputs") or []
    ]
    headers = ("#", "kind", "path", "frames", "ok", "seg GT", "box GT", "lidar")
    return (
        "<header><h1>drivingseg report</h1>"
        f"<table>{meta_rows}</table><h3>Inputs</h3>"
        + _table(headers, inputs, left=3)
        + "</header>"
    )


def _summary(report: Mapping[str, Any]) -> str:
    seg = report.get("segmentation") or {}
    per_class = seg.get("per_class") or {}
    road = report.get("kitti_road") or {}
    ap = (report.get("detection") or {}).get("ap") or {}
    total = (report.get("latency") or {}).get("total") or {}
    seg_n, road_n = seg.get("frames"), road.get("frames")
    box_n, time_n = (report.get("detection") or {}).get("frames"), total.get("n")
    chips = [
        (f"mean IoU {'+'.join(_averaged(seg))}", _pct(seg.get("mean_iou_road_car")), seg_n),
        ("road IoU", _pct((per_class.get("road") or {}).get("iou")), seg_n),
        ("car IoU", _pct((per_class.get("car") or {}).get("iou")), seg_n),
        ("KITTI road MaxF", _pct(road.get("max_f")), road_n),
        ("KITTI road AP", _pct(road.get("ap")), road_n),
        ("box AP@0.5", _pct(ap.get("0.5")), box_n),
        ("box AP@0.7", _pct(ap.get("0.7")), box_n),
        ("latency p50 per frame", _ms(total.get("p50_ms")), time_n),
        ("latency p99 per frame", _ms(total.get("p99_ms")), time_n),
    ]
    items = "".join(f'<div class="chip"><b>{v}</b><span>{k}</span>{_over(n)}</div>'
                    for k, v, n in chips)
    return f'<div class="summary" id="summary">{items}</div>'


def _segmentation(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    seg = report.get("segmentation")
    if not seg:
        why = (_not_scored("an input with per-pixel ground truth")
               if _has_input(report, "segmentation_gt") else "No input has per-pixel ground truth")
        why += ", so segmentation accuracy was not measured."
        return _section("segmentation", "Segmentation", _absent(why))
    per_class: Mapping[str, Mapping[str, Any]] = seg.get("per_class") or {}
    headers = ("class", "TP px", "FP px", "FN px", "IoU", "precision", "recall", "F1")
    body = (
        f'<p>{_count(seg.get("frames"))} frames with ground truth; mean IoU over '
        f'{escape(" and ".join(_averaged(seg)))} <b>{_pct(seg.get("mean_iou_road_car"))}</b>.</p>'
        + _table(headers, [_metric_row(n, m) for n, m in per_class.items()])
    )
    kinds = {int(i.get("index", -1)): str(i.get("kind", "")) for i in report.get("inputs") or []}
    per_input = seg.get("per_input") or []
    if per_input:
        names = list(per_class)
        rows = [
            (
                escape(f"{int(p.get('input', 0))} ({kinds.get(int(p.get('input', 0)), '')})"),
                _count(p.get("frames")),
                _pct(p.get("mean_iou_road_car")) + _other_classes(p, _averaged(seg)),
                *(_pct((class_value(p.get("per_class"), n) or {}).get("iou")) for n in names),
            )
            for p in per_input
        ]
        headers_in = ("input", "frames", f"mean IoU {escape('+'.join(_averaged(seg)))}",
                      *(f"{escape(n)} IoU" for n in names))
        body += "<h3>Per input</h3>" + _table(headers_in, rows) + _alias_note(
            names, (c for p in per_input for c in p.get("per_class") or {}))
    body += _plots(figures, "class_metrics", "confusion_matrix")
    return _section("segmentation", "Segmentation", body)


def _kitti_road(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    road = report.get("kitti_road")
    if not road:
        why = (_not_scored("the KITTI road input(s)") if _has_input(report, "kind", "kitti_road")
               else "No KITTI road input (kitti_road kind)")
        why += ", so the KITTI road MaxF/AP was not computed."
        return _section("kitti-road", "KITTI road", _absent(why))
    threshold = road.get("threshold")
    row = (
        _pct(road.get("max_f")),
        _pct(road.get("ap")),
        _NONE if threshold is None else f"{float(threshold):.3f}",
        _pct(road.get("precision")),
        _pct(road.get("recall")),
    )
    table = _table(("MaxF", "AP", "threshold", "precision", "recall"), [row], left=0)
    frames = (f"<p>Over {_count(road['frames'])} frames of the KITTI road input(s), in "
              "perspective space.</p>" if road.get("frames") is not None else "")
    per_input = _per_input(report, road, ("MaxF", "AP"),
                           lambda e: (_pct(e.get("max_f")), _pct(e.get("ap"))))
    return _section("kitti-road", "KITTI road",
                    frames + table + per_input + _plots(figures, "kitti_road_pr"))


def _by_range(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    by_range = report.get("by_range")
    if not by_range:
        both = [i for i in report.get("inputs") or []
                if i.get("lidar") and i.get("segmentation_gt")]
        if any(i.get("kind") != "kitti_road" for i in both):
            why = _not_scored("an input with both lidar and segmentation ground truth")
        elif both:
            why = ("Only KITTI road inputs have both lidar and segmentation ground truth, and "
                   "their labels have no car class")
        else:
            why = "No input has both lidar and segmentation ground truth"
        why += ", so IoU by range is absent."
        return _section("by-range", "Car IoU by lidar range", _absent(why))
    rows = [
        (
            escape(f"{float(b.get('lo_m', 0)):g}-{float(b.get('hi_m', 0)):g} m"),
            _count(b.get("pixels")),
            _count(b.get("tp")),
            _count(b.get("fp")),
            _count(b.get("fn")),
            _pct(b.get("iou")),
        )
        for b in by_range.get("car") or []
    ]
    over = ("" if by_range.get("frames") is None else
            f", over {_count(by_range['frames'])} frames with lidar and per-pixel labels")
    if by_range.get("frames") is not None and by_range.get("frames_with_car") is not None:
        over += f" ({_count(by_range['frames_with_car'])} of them with car pixels hit by lidar)"
    note = f'<p class="muted">{escape(str(by_range.get("note", "")))}{over}.</p>'
    table = _table(("range", "pixels", "TP", "FP", "FN", "car IoU"), rows)
    bins = [escape(f"{float(b.get('lo_m', 0)):g}-{float(b.get('hi_m', 0)):g} m")
            for b in by_range.get("car") or []]
    per_input = _per_input(report, by_range, tuple(f"car IoU {b}" for b in bins),
                           lambda e: tuple(_pct(b.get("iou")) for b in e.get("car") or []))
    body = note + table + per_input + _plots(figures, "range_iou")
    return _section("by-range", "Car IoU by lidar range", body)


def _detection(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    det = report.get("detection")
    if not det:
        why = (_not_scored("an input with KITTI label_2 boxes") if _has_input(report, "box_gt")
               else "No input has KITTI label_2 boxes")
        why += ", so box detection was not evaluated."
        return _section("detection", "Box detection", _absent(why))
    ap: Mapping[str, Any] = det.get("ap") or {}
    err: Mapping[str, Any] = det.get("range_error_m") or {}
    classes = ", ".join(str(c) for c in det.get("classes") or []) or _NONE

    def metres(value: Any, signed: bool = False) -> str:
        return _NONE if value is None else f"{float(value):{'+' if signed else ''}.2f} m"

    over = "" if det.get("frames") is None else f" over {_count(det['frames'])} frames"
    low = min((float(t) for t in det.get("thresholds") or []), default=None)
    matched = "matched boxes" + ("" if low is None else f" (IoU ≥ {low:g}, with lidar points)")
    body = (
        f"<p>Classes {escape(classes)}{over}: {_count(det.get('n_gt'))} ground-truth boxes; "
        f"{_count(det.get('n_proposals'))} proposals (every detection: the sum of the Frames "
        "table's proposals column and of frames.csv's n_detections over the inputs with boxes), of "
        f"which {_count(det.get('n_det'))} scored detections "
        f"({escape(_scored_rule(det))}).</p>"
        + _table(("IoU threshold", "AP"), [(escape(str(k)), _pct(v)) for k, v in ap.items()])
        + _table(
            (matched, "mean |range error|", "median |error|", "p90 |error|",
             "mean signed error"),
            [(_count(err.get("n")), metres(err.get("mean")), metres(err.get("median")),
              metres(err.get("p90")), metres(err.get("mean_signed"), signed=True))],
            left=0,
        )
        + _per_input(report, det, ("GT boxes", "proposals", "scored", *(
            f"AP@{escape(str(k))}" for k in ap), "median |range error|"), lambda e: (
            _count(e.get("n_gt")), _count(e.get("n_proposals")), _count(e.get("n_det")),
            *(_pct((e.get("ap") or {}).get(k)) for k in ap),
            metres((e.get("range_error_m") or {}).get("median"))))
        + _plots(figures, "detection_pr", "range_error")
    )
    return _section("detection", "Box detection", body)


def _latency(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    latency = report.get("latency") or {}
    stats: dict[str, Mapping[str, Any]] = dict(latency.get("stages") or {})
    if latency.get("total"):
        stats["total"] = latency["total"]
    if not stats:
        return _section("latency", "Latency", _absent("No frame was timed, so latency is absent."))
    rows = [
        (
            f"<b>{escape(n)}</b>" if n == "total" else escape(n),
            _count(s.get("n")),
            _ms(s.get("mean_ms")),
            _ms(s.get("p50_ms")),
            _ms(s.get("p90_ms")),
            _ms(s.get("p99_ms")),
            _ms(s.get("max_ms")),
        )
        for n, s in stats.items()
    ]
    table = _table(("stage", "frames", "mean", "p50", "p90", "p99", "max"), rows)
    return _section("latency", "Latency per frame", table + _plots(figures, "latency"))


def _frames(report: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    frames: Sequence[Mapping[str, Any]] = report.get("frames") or []
    if not frames:
        why = "No frame was scored (see Failures)." if report.get("failures") else (
            "No frame was processed.")
        return _section("frames", "Frames", _absent(why))
    seg_classes = list((report.get("segmentation") or {}).get("classes") or [])
    classes = class_columns([*seg_classes, *(c for f in frames for c in f.get("iou") or {})])
    timed = {s for f in frames for s in f.get("latency_ms") or {}}
    stages = [s for s in STAGES if s in timed] + sorted(timed - set(STAGES))  # as frames.csv
    num = ["mean IoU", *(f"{c} IoU" for c in classes), "pixel acc.", "proposals", "GT boxes"]
    num += [f"{s} ms" for s in stages] + ["total ms"]
    head = '<th data-type="num">input</th><th data-type="num">index</th><th class="t">frame</th>'
    head += "".join(f'<th data-type="num">{escape(h)}</th>' for h in num)
    rows = []
    for f in frames:
        iou = f.get("iou") or {}
        lat = f.get("latency_ms") or {}
        total = sum(float(v) for v in lat.values() if v is not None) if lat else None
        cells = [
            (f.get("mean_iou"), _pct(f.get("mean_iou"))),
            *((class_value(iou, c), _pct(class_value(iou, c))) for c in classes),
            (f.get("pixel_accuracy"), _pct(f.get("pixel_accuracy"))),
            (f.get("n_detections"), _count(f.get("n_detections"))),
            (f.get("n_gt_boxes"), _count(f.get("n_gt_boxes"))),
            *((lat.get(s), _NONE if lat.get(s) is None else f"{lat[s]:.1f}") for s in stages),
            (total, _NONE if total is None else f"{total:.1f}"),
        ]
        title = escape(str(f.get("image", "")))
        rows.append(
            f'<tr><td data-v="{int(f.get("input", 0))}">{int(f.get("input", 0))}</td>'
            f'<td data-v="{int(f.get("index", 0))}">{int(f.get("index", 0))}</td>'
            f'<td class="t" title="{title}">{escape(str(f.get("frame", "")))}</td>'
            + "".join(f'<td data-v="{_num_attr(v)}">{text}</td>' for v, text in cells)
            + "</tr>"
        )
    table = (
        f'<div class="scroll"><table class="sortable" id="frames-table"><thead><tr>{head}</tr>'
        f'</thead><tbody>{"".join(rows)}</tbody></table></div>'
    )
    hint = f'<p class="muted">{len(frames):,} frames; click a column header to sort.</p>'
    hint += _alias_note(classes, (c for f in frames for c in f.get("iou") or {}))
    return _section("frames", "Frames", _plots(figures, "per_frame_iou") + hint + table)


def _failures(report: Mapping[str, Any]) -> str:
    failures: Sequence[Mapping[str, Any]] = report.get("failures") or []
    if not failures:
        return _section("failures", "Failures", '<p class="muted">None: every frame was read.</p>')
    rows = []
    for f in failures:
        names = [str(n) for n in f.get("frames") or []]
        shown = ", ".join(names[:10]) + (f" … (+{len(names) - 10})" if len(names) > 10 else "")
        rows.append((str(int(f.get("input", 0))), escape(str(f.get("path", ""))),
                     f"{len(names):,}: {escape(shown)}", escape(str(f.get("error", "")))))
    table = _table(("input", "path", "frames", "error"), rows, left=4)
    return _section("failures", f"Failures ({len(failures)})", table, cls="failures")


def build_html(report: Mapping[str, Any], gallery: Sequence[GalleryItem]) -> str:
    """The whole page as one string (see :func:`render_html`)."""
    figures = all_plots(report)
    failures = report.get("failures") or []
    failed_inputs = {f.get("input") for f in failures}  # one entry per failed frame or chunk
    banner = (
        f'<div class="banner">{len(failed_inputs)} input(s) had failures: '
        '<a href="#failures">see Failures</a>.</div>'
        if failures
        else ""
    )
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (("segmentation", "Segmentation"), ("kitti-road", "KITTI road"),
                     ("by-range", "By range"), ("detection", "Detection"),
                     ("latency", "Latency"), ("frames", "Frames"), ("gallery", "Gallery"),
                     ("failures", "Failures"))
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>drivingseg report {escape(str(report.get('created_utc', '')))}</title>",
        "<style>" + _asset("report.css") + "</style></head>",
        '<body data-report-status="loading"><script>' + _asset("status.js") + "</script><main>",
        _header(report),
        f"<nav>{nav}</nav>",
        _summary(report),
        banner,
        _segmentation(report, figures),
        _kitti_road(report, figures),
        _by_range(report, figures),
        _detection(report, figures),
        _latency(report, figures),
        _frames(report, figures),
        gallery_section(report, gallery),
        _failures(report),
        "</main><script>" + _asset("sort.js") + "</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_html(
    report: Mapping[str, Any], gallery: Sequence[GalleryItem], path: str | os.PathLike[str]
) -> None:
    """Write the report page for ``report`` (the report dict) to ``path``, atomically."""
    write_text_atomic(path, build_html(report, gallery), error=ConfigError, what="report page")
