"""Latency tracking: per-frame records, percentiles, deadline misses, drops, reports.

End-to-end latency of a mask runs from the moment its camera frame was available at the
source (replay at a rate: the frame's scheduled release time; as fast as possible: the end
of reading it) to the moment the tracker received the published mask. Stage durations
are the work of each stage; ``queue`` is the rest (time spent waiting in queues).
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from drivingseg.node.messages import STAGES, Diagnostics, Mask
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node

__all__ = ["FrameLatency", "LatencyReport", "LatencyTracker", "percentiles"]

log = logging.getLogger(__name__)

COLUMNS = ("e2e", *STAGES, "queue")


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of ``values_ms`` (NaN when empty)."""
    if not values_ms:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max", "mean")}
    a = np.asarray(values_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()),
            "mean": float(a.mean())}


@dataclass(frozen=True)
class FrameLatency:
    """One published mask: stamps and milliseconds per column of :data:`COLUMNS`."""

    seq: int
    index: int
    stamp_ns: int
    ms: dict[str, float]

    def missed(self, budget_ms: float) -> bool:
        return self.ms["e2e"] > budget_ms


@dataclass
class LatencyReport:
    """Summary of a run; ``table()`` for people, ``as_dict()`` for JSON."""

    budget_ms: float
    frames_in: int
    masks: int
    wall_s: float
    stats: dict[str, dict[str, float]]
    deadline_misses: int
    drops: dict[str, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.masks / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget_ms": self.budget_ms, "frames_in": self.frames_in, "masks": self.masks,
            "wall_s": self.wall_s, "fps": self.fps, "deadline_misses": self.deadline_misses,
            "dropped": self.dropped, "drops": self.drops, "latency_ms": self.stats,
        }

    def table(self) -> str:
        lines = [
            f"latency of {self.masks} masks from {self.frames_in} camera frames "
            f"({self.fps:.1f} fps over {self.wall_s:.1f} s), budget {self.budget_ms:g} ms",
            f"{'stage':<10}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}  (ms)",
        ]
        for name in COLUMNS:
            s = self.stats[name]
            lines.append(f"{name:<10}" + "".join(f"{s[k]:9.1f}" for k in ("p50", "p95", "p99",
                                                                             "max")))
        lines.append(f"deadline misses: {self.deadline_misses} of {self.masks}")
        if self.drops:
            lines.append(f"dropped frames: {self.dropped}")
            lines.extend(f"  {n:5d}  at {where}" for where, n in sorted(self.drops.items()))
        else:
            lines.append("dropped frames: 0")
        return "\n".join(lines)


class LatencyTracker(Node):
    """Measures every mask; live status line, ``/diagnostics``, JSON/CSV and a summary."""

    type_name = "latency_tracker"
    description = "end-to-end and per-stage latency, deadline misses, drops"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("budget_ms", float, 100.0, "deadline per frame, end to end", "ms", min=0.0),
        Param("out_dir", str, "", "folder for latency.json and latency.csv ('' = none)"),
        Param("status", bool, True, "live one-line status on a terminal"),
        Param("diagnostics_period_s", float, 1.0, "how often to publish /diagnostics", "s",
              min=0.01),
        Param("summary", bool, True, "print the summary table at the end"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, self.on_mask, depth=1000)
        self.diag = self.create_publisher("/diagnostics", Diagnostics)
        self.frames: list[FrameLatency] = []
        self.report: LatencyReport | None = None
        self._start_ns = 0
        self._last_diag_ns = 0
        self._last_status_ns = 0
        self._tty = bool(self.p["status"]) and sys.stderr.isatty()

    def ready(self) -> None:
        self._start_ns = time.perf_counter_ns()

    def on_mask(self, msg: Mask) -> None:
        now = time.perf_counter_ns()
        t = msg.timing.with_stage("publish", now - msg.published_ns)
        ms = {"e2e": (now - t.available_ns) / 1e6}
        for stage in STAGES:
            ms[stage] = t.stage_ns(stage) / 1e6
        ms["queue"] = max(0.0, ms["e2e"] - sum(ms[s] for s in STAGES if s != "read"))
        self.frames.append(FrameLatency(t.seq, msg.frame.index, t.stamp_ns, ms))
        if now - self._last_diag_ns >= self.p["diagnostics_period_s"] * 1e9:
            self._last_diag_ns = now
            self.diag.publish(self.diagnostics(msg.stamp_ns))
        if self._tty and now - self._last_status_ns >= 250_000_000:
            self._last_status_ns = now
            sys.stderr.write("\r" + self.status_line() + "\x1b[K")
            sys.stderr.flush()

    def on_inputs_closed(self) -> None:
        if self.frames:
            self.diag.publish(self.diagnostics(self.frames[-1].stamp_ns))
        if self._tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def _e2e(self) -> list[float]:
        return [f.ms["e2e"] for f in self.frames]

    def status_line(self) -> str:
        e2e = percentiles(self._e2e()[-200:])
        wall_s = max(1e-9, (time.perf_counter_ns() - self._start_ns) / 1e9)
        misses = sum(f.missed(self.p["budget_ms"]) for f in self.frames)
        return (
            f"{len(self.frames)} masks | {len(self.frames) / wall_s:.1f} fps | e2e p50 "
            f"{e2e['p50']:.0f} p95 {e2e['p95']:.0f} ms | misses {misses} | "
            f"dropped {sum(self.context.graph.drops().values())}"
        )

    def diagnostics(self, stamp_ns: int) -> Diagnostics:
        budget = self.p["budget_ms"]
        recent = self.frames[-50:]
        e2e = percentiles([f.ms["e2e"] for f in recent])
        misses = sum(f.missed(budget) for f in recent)
        drops = self.context.graph.drops()
        level = 1 if misses or drops else 0
        values = [
            ("masks", str(len(self.frames))),
            ("budget_ms", f"{budget:g}"),
            ("deadline_misses_recent", str(misses)),
            ("dropped", str(sum(drops.values()))),
        ]
        for stage in COLUMNS:
            s = percentiles([f.ms[stage] for f in recent])
            values += [(f"{stage}_{k}_ms", f"{s[k]:.2f}") for k in ("p50", "p95")]
        values += [(f"dropped at {where}", str(n)) for where, n in sorted(drops.items())]
        message = f"e2e p95 {e2e['p95']:.1f} ms, {misses} of last {len(recent)} over budget"
        return Diagnostics(stamp_ns, f"drivingseg: {self.name}", level, message, tuple(values))

    def after_run(self) -> None:
        wall_s = (time.perf_counter_ns() - self._start_ns) / 1e9 if self._start_ns else 0.0
        budget = self.p["budget_ms"]
        self.report = LatencyReport(
            budget_ms=budget,
            frames_in=self.context.graph.frames_in(),
            masks=len(self.frames),
            wall_s=wall_s,
            stats={c: percentiles([f.ms[c] for f in self.frames]) for c in COLUMNS},
            deadline_misses=sum(f.missed(budget) for f in self.frames),
            drops=self.context.graph.drops(),
        )
        if self.p["out_dir"]:
            self.write(Path(self.p["out_dir"]))
        if self.p["summary"]:
            sys.stdout.write(self.report.table() + "\n")
            sys.stdout.flush()

    def write(self, out_dir: Path) -> None:
        """``latency.json`` (summary) and ``latency.csv`` (one row per mask) in ``out_dir``."""
        assert self.report is not None
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "latency.json").write_text(json.dumps(self.report.as_dict(), indent=2) + "\n")
        with (out_dir / "latency.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seq", "index", "stamp_ns", *(f"{c}_ms" for c in COLUMNS),
                        "deadline_miss"])
            for fr in self.frames:
                w.writerow([fr.seq, fr.index, fr.stamp_ns, *(f"{fr.ms[c]:.3f}" for c in COLUMNS),
                            int(fr.missed(self.p["budget_ms"]))])
