"""Cells, tables and sections of the report page (numbers formatted, strings escaped).

Helpers of :mod:`drivingseg.report.html`, kept apart so that module stays the page's
layout: how a ratio, a duration or a count is written, a table of ready HTML cells, a
section with its anchor, and the sentences that say why a figure is absent or which classes
a mean IoU averages.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any

from drivingseg.report.aggregate import CLASS_ALIASES

_NONE = "–"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NONE
    return f"{float(value) * 100:.1f} %"


def _ms(value: Any) -> str:
    return _NONE if value is None else f"{float(value):.1f} ms"


def _count(value: Any) -> str:
    return _NONE if value is None else f"{int(value):,}"


def _num_attr(value: Any) -> str:
    """Sort key of a numeric cell (empty for a missing value, which sorts last)."""
    return "" if value is None else repr(float(value))


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, mime: str = "image/png") -> str:
    return f'<img src="{_data_uri(data, mime)}" alt="{escape(alt)}">'


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", left: int = 1
) -> str:
    """A table whose cells are already HTML; the first ``left`` columns align left."""
    head = "".join(
        f'<th class="t">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="t">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(anchor: str, title: str, body: str, *, cls: str = "") -> str:
    return f'<section id="{anchor}" class="{cls}"><h2>{escape(title)}</h2>{body}</section>'


def _absent(sentence: str) -> str:
    return f'<p class="absent">{escape(sentence)}</p>'


def _has_input(report: Mapping[str, Any], key: str, value: Any = True) -> bool:
    """Whether some input of the report has ``key`` equal to ``value``."""
    return any(i.get(key) == value for i in report.get("inputs") or [])


def _not_scored(inputs: str) -> str:
    """Why a section is absent although some input could fill it: its frames all failed."""
    return f"No frame of {inputs} was scored (see Failures)"


def _plots(figures: Mapping[str, bytes], *names: str) -> str:
    images = [_img(figures[n], n.replace("_", " ")) for n in names if n in figures]
    return f'<div class="plots">{"".join(images)}</div>' if images else ""


def _averaged(section: Mapping[str, Any] | None) -> list[str]:
    """The classes a mean IoU averages (``mean_iou_classes``; road and car when absent)."""
    return [str(c) for c in (section or {}).get("mean_iou_classes") or ("road", "car")]


def _over(frames: Any) -> str:
    """A summary figure's frame count ("over 12 frames"); nothing when it has none."""
    return "" if frames is None else f"<small>over {_count(frames)} frames</small>"


def _other_classes(entry: Mapping[str, Any], overall: Sequence[str]) -> str:
    """`` (road)`` after a per-input mean IoU over other classes than the overall one's."""
    own = _averaged(entry) if entry.get("mean_iou_road_car") is not None else list(overall)
    return "" if own == list(overall) else escape(f" ({'+'.join(own)})")


def _alias_note(columns: Sequence[str], shown: Iterable[str]) -> str:
    """A note naming the classes shown in another class's column (KITTI road's not_road)."""
    moved = sorted({c for c in shown if c not in columns and CLASS_ALIASES.get(c) in columns})
    notes = [f"{c} (KITTI road inputs) is shown as {CLASS_ALIASES[c]}" for c in moved]
    return f'<p class="muted">{escape("; ".join(notes))}.</p>' if notes else ""


def _metric_row(name: str, m: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        escape(name),
        _count(m.get("tp")),
        _count(m.get("fp")),
        _count(m.get("fn")),
        _pct(m.get("iou")),
        _pct(m.get("precision")),
        _pct(m.get("recall")),
        _pct(m.get("f1")),
    )


def _per_input(report: Mapping[str, Any], section: Mapping[str, Any], headers: Sequence[str],
               cells: Callable[[Mapping[str, Any]], Sequence[str]]) -> str:
    """A section's "Per input" table (input, frames, ``headers``), when several inputs
    filled it: the fleet figure alone hides a drive that is much worse than the rest."""
    entries: Sequence[Mapping[str, Any]] = section.get("per_input") or []
    if len(entries) < 2:
        return ""
    kinds = {int(i.get("index", -1)): str(i.get("kind", "")) for i in report.get("inputs") or []}
    rows = [(escape(f"{int(e.get('input', 0))} ({kinds.get(int(e.get('input', 0)), '')})"),
             _count(e.get("frames")), *cells(e)) for e in entries]
    return "<h3>Per input</h3>" + _table(("input", "frames", *headers), rows)


def _scored_rule(det: Mapping[str, Any]) -> str:
    """Which proposals ``n_det`` counts, in words."""
    from drivingseg.detect.gt import MODERATE_MIN_HEIGHT_PX

    thresholds = [float(t) for t in det.get("thresholds") or []]
    at = f" at IoU {min(thresholds):g}" if thresholds else ""
    return (f"counted{at}: unmatched ones on a don't-care box or region or under "
            f"{MODERATE_MIN_HEIGHT_PX:g} px high are dropped")


def _box_only_all_found(frames: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the frames that can rank are all box frames (none with a mean IoU)."""
    return (not any(f.get("mean_iou") is not None for f in frames)
            and any(f.get("n_gt_boxes") is not None for f in frames))
