"""Latency tracking: per-frame records, percentiles, deadline misses, drops, reports.

End-to-end latency of a mask runs from the moment its camera frame was available at the
source (replay at a rate: the frame's scheduled release time; as fast as possible: the end
of reading it) to the moment the tracker received the published mask. Stage durations
are the work of each stage; ``queue`` is the rest (time spent waiting in queues).
``/diagnostics`` goes out every ``diagnostics_period_s``, also while no mask comes (then at
level 2: camera frames come in and no mask comes out); its level counts the drops and
losses since the previous report.

Memory stays bounded per frame for runs of any length (``replay --loop``, a vehicle): the
live status line and ``/diagnostics`` use running counters and the last
:data:`RECENT_FRAMES` frames; ``latency.csv`` is streamed to disk row by row; the summary's
percentiles are exact over every mask, from one float64 per column and mask
(:class:`SampleColumns`: 56 bytes a mask, about 2 MB an hour at 10 Hz). The statistics and
the summary are :mod:`drivingseg.node.latency_stats`'s.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO

from drivingseg.errors import ConfigError, DrivingsegError
from drivingseg.fileio import write_atomic, write_text_atomic
from drivingseg.node.latency_stats import (
    COLUMNS,
    FrameLatency,
    LatencyReport,
    SampleColumns,
    format_ms,
    percentiles,
)
from drivingseg.node.messages import STAGES, Diagnostics, Mask, MaskTiming
from drivingseg.node.params import Param
from drivingseg.node.runtime import FRAMES, Node

__all__ = [
    "COLUMNS",
    "RECENT_FRAMES",
    "FrameLatency",
    "LatencyReport",
    "LatencyTracker",
    "SampleColumns",
    "percentiles",
]

log = logging.getLogger(__name__)

RECENT_FRAMES = 200
"""Frames the tracker keeps as objects (``frames``): the status line's window."""

DIAGNOSTICS_FRAMES = 50
"""The most recent frames whose percentiles ``/diagnostics`` reports."""

JSON_NAME = "latency.json"
CSV_NAME = "latency.csv"
CSV_HEADER = ("seq", "index", "stamp_ns", *(f"{c}_ms" for c in COLUMNS), "deadline_miss")


def csv_line(fields: Sequence[object]) -> str:
    """One CSV record (the csv module's dialect, ``\\r\\n`` line ends), as text."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue()


class LatencyTracker(Node):
    """Measures every mask; live status line, ``/diagnostics``, JSON/CSV and a summary.

    ``frames`` holds the last :data:`RECENT_FRAMES` masks only; ``samples`` every mask's
    milliseconds per column (the summary's exact percentiles: 56 bytes a mask, about 2 MB
    an hour at 10 Hz). Its mask queue is 1000 deep, not ``qos_depth``: a measurement drops
    nothing, so the tracker does not take that parameter. The queue holds each mask's
    :class:`MaskTiming` (taken as it arrives), not the mask, so a lagging tracker holds a
    few hundred kilobytes, not up to 1000 frames with their scans.
    """

    type_name = "latency_tracker"
    idle_ticks = True
    common_parameters: ClassVar[tuple[Param, ...]] = ()
    description = "end-to-end and per-stage latency, deadline misses, drops"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("budget_ms", float, 100.0, "deadline per frame, end to end", "ms", min=0.0),
        Param("out_dir", str, "", "folder for latency.json (summary, null statistics when no "
              "mask came) and latency.csv (one row per mask, streamed to disk as masks come: "
              "complete for a replay, nothing per frame held in memory on a vehicle; both "
              "appear atomically at the end); created and checked at start ('' = none)"),
        Param("status", bool, True, "live one-line status on a terminal"),
        Param("diagnostics_period_s", float, 1.0, "how often to publish /diagnostics (also "
              "while no mask comes: level 2, 'no mask for N s')", "s", min=0.01),
        Param("summary", bool, True, "print the summary table at the end"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sub = self.create_subscription("/segmentation/mask", Mask, self.on_mask, depth=1000,
                                       keep=MaskTiming.of)
        sub.lost_as = FRAMES  # a mask never measured is a frame without a mask
        self.diag = self.create_publisher("/diagnostics", Diagnostics)
        self.frames: deque[FrameLatency] = deque(maxlen=RECENT_FRAMES)
        self.samples = SampleColumns(COLUMNS)
        self.deadline_misses = 0
        self.report: LatencyReport | None = None
        self._out_dir: Path | None = None
        self._csv_file: TextIO | None = None
        self._csv_writer: Any = None  # csv.writer of _csv_file
        self._csv_tmp: Path | None = None
        self._csv_done = False
        self._errors: list[ConfigError] = []
        self._start_ns = 0
        self._end_ns = 0
        self._last_mask_ns = 0
        self._frames_at_last_mask = 0
        self._last_diag_ns = 0
        self._last_diag_stamp_ns = 0
        self._reported = (0, 0)
        """Frames dropped and messages lost in all at the last report published."""
        self._last_status_ns = 0
        self._tty = bool(self.p["status"]) and sys.stderr.isatty()

    def setup(self) -> None:
        if not self.p["out_dir"]:
            return
        out = Path(self.p["out_dir"])
        if out.exists() and not out.is_dir():
            raise self.config_error(f"{str(out)!r} is a file, not a folder", "out_dir")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = f"cannot create {str(out)!r}: {exc.strerror or exc}"
            raise self.config_error(message, "out_dir") from exc
        if not os.access(out, os.W_OK | os.X_OK):
            raise self.config_error(f"cannot write into {str(out)!r} (permission denied)",
                                    "out_dir")
        for name in (JSON_NAME, CSV_NAME):
            if (out / name).is_dir():
                raise self.config_error(f"{str(out / name)!r} is a folder, not a file",
                                        "out_dir")
        self._out_dir = out

    def ready(self) -> None:
        self._start_ns = time.perf_counter_ns()

    def run(self) -> None:
        """The run's wall time (fps) is the mask stream's: from the graph's start (not from
        this node's ready(), before the later nodes' set-up) to the end of the masks (not
        the other nodes' finalising of their outputs)."""
        self._start_ns = time.perf_counter_ns()
        super().run()
        self._end_ns = time.perf_counter_ns()

    def on_mask(self, msg: MaskTiming) -> None:
        now = time.perf_counter_ns()
        t = msg.timing.with_stage("publish", now - msg.published_ns)
        ms = {"e2e": (now - t.available_ns) / 1e6}
        for stage in STAGES:
            ms[stage] = t.stage_ns(stage) / 1e6
        ms["queue"] = max(0.0, ms["e2e"] - sum(ms[s] for s in STAGES if s != "read"))
        frame = FrameLatency(t.seq, msg.frame_index, t.stamp_ns, ms)
        missed = frame.missed(self.p["budget_ms"])
        self.frames.append(frame)
        self.samples.append([ms[c] for c in COLUMNS])
        self.deadline_misses += missed
        self._stream_row(frame, missed)
        self._last_mask_ns = now
        self._frames_at_last_mask = self.context.graph.frames_in()
        self._report(now, msg.stamp_ns)

    def tick(self) -> None:
        """Between masks too: ``/diagnostics`` keeps its period and the status line moves
        on when no mask comes (a stalled node), and both say so; stamped with the newest
        camera frame's stamp (sensor time: none before the first frame)."""
        stamp_ns = self.context.graph.newest_frame_stamp_ns()
        if stamp_ns is None and self.frames:
            stamp_ns = self.frames[-1].stamp_ns
        if stamp_ns is not None:
            self._report(time.perf_counter_ns(), stamp_ns)

    def _report(self, now_ns: int, stamp_ns: int) -> None:
        if now_ns - self._last_diag_ns >= self.p["diagnostics_period_s"] * 1e9:
            self._last_diag_ns = now_ns
            self._publish_diagnostics(stamp_ns)
        if self._tty and now_ns - self._last_status_ns >= 250_000_000:
            self._last_status_ns = now_ns
            sys.stderr.write("\r" + self.status_line() + "\x1b[K")
            sys.stderr.flush()

    def _publish_diagnostics(self, stamp_ns: int) -> None:
        """Publish the report stamped ``stamp_ns``, or the previous report's stamp when that
        is later: a mask's stamp trails the newest camera frame (which a report between
        masks carries) by the frames queued behind it, and a report stamped before its
        predecessor sorted before it in the MCAP (its mask count going backwards)."""
        self._last_diag_stamp_ns = max(stamp_ns, self._last_diag_stamp_ns)
        self.diag.publish(self.diagnostics(self._last_diag_stamp_ns, commit=True))

    def stalled_s(self) -> float | None:
        """Seconds since the last mask (or the start) if camera frames came in since and it
        is a diagnostics period or more; else None."""
        if self.context.graph.frames_in() <= self._frames_at_last_mask or not self._start_ns:
            return None
        idle_s = (time.perf_counter_ns() - (self._last_mask_ns or self._start_ns)) / 1e9
        return idle_s if idle_s >= self.p["diagnostics_period_s"] else None

    def on_inputs_closed(self) -> None:
        if self.frames:
            self._publish_diagnostics(self.frames[-1].stamp_ns)
        if self._tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def status_line(self) -> str:
        """Masks, rate, misses and drops so far; e2e percentiles of the recent frames."""
        e2e = percentiles([f.ms["e2e"] for f in self.frames])
        wall_s = max(1e-9, (time.perf_counter_ns() - self._start_ns) / 1e9)
        masks = len(self.samples)
        stalled_s = self.stalled_s()
        return (
            f"{masks} masks | {masks / wall_s:.1f} fps | e2e p50 "
            f"{format_ms(e2e['p50'], '.0f')} p95 {format_ms(e2e['p95'], '.0f')} ms | "
            f"misses {self.deadline_misses} | "
            f"dropped {sum(self.context.graph.drops().values())}"
            + ("" if stalled_s is None else f" | no mask for {stalled_s:.1f} s")
        )

    def diagnostics(self, stamp_ns: int, *, commit: bool = False) -> Diagnostics:
        """The health report: like its deadline misses (of the recent frames), its level
        counts the frames dropped and messages lost since the last report published
        (``commit``), not since the start, so one early drop is not a warning for good."""
        budget = self.p["budget_ms"]
        recent = list(self.frames)[-DIAGNOSTICS_FRAMES:]
        e2e = percentiles([f.ms["e2e"] for f in recent])
        misses = sum(f.missed(budget) for f in recent)
        drops = self.context.graph.drops()
        losses = self.context.graph.losses()
        totals = (sum(drops.values()), sum(sum(at.values()) for at in losses.values()))
        new_drops, new_losses = (t - r for t, r in zip(totals, self._reported, strict=True))
        if commit:
            self._reported = totals
        stalled_s = self.stalled_s()
        level = 2 if stalled_s is not None else 1 if misses or new_drops or new_losses else 0
        values = [
            ("masks", str(len(self.samples))),
            ("seconds_without_mask", format_ms(stalled_s, ".1f")),
            ("budget_ms", f"{budget:g}"),
            ("deadline_misses_recent", str(misses)),
            ("dropped", str(totals[0])),
            ("dropped_since_last_report", str(new_drops)),
            ("lost_since_last_report", str(new_losses)),
        ]
        for stage in COLUMNS:
            s = percentiles([f.ms[stage] for f in recent])
            values += [(f"{stage}_{k}_ms", format_ms(s[k], ".2f")) for k in ("p50", "p95")]
        values += [(f"dropped at {where}", str(n)) for where, n in sorted(drops.items())]
        for what, at in sorted(losses.items()):
            values.append((f"lost {what}", str(sum(at.values()))))
            values += [(f"lost {what} at {where}", str(n)) for where, n in sorted(at.items())]
        message = (f"e2e p95 {format_ms(e2e['p95'], '.1f')} ms, {misses} of last "
                   f"{len(recent)} over budget, {new_drops} frames dropped since the last "
                   "report")
        if stalled_s is not None:
            waiting = self.context.graph.frames_in() - self._frames_at_last_mask
            message = (f"no mask for {stalled_s:.1f} s ({waiting} camera frames in since); "
                       + message)
        return Diagnostics(stamp_ns, f"drivingseg: {self.name}", level, message, tuple(values))

    # ---------------------------------------------------------------- files

    def _file_error(self, path: Path, exc: OSError | DrivingsegError) -> ConfigError:
        """Remember a failed write (``after_run`` raises the first one) and return it."""
        cause = exc.__cause__ if isinstance(exc, DrivingsegError) else exc
        reason = (cause.strerror if isinstance(cause, OSError) and cause.strerror
                  else str(cause or exc))
        error = self.config_error(f"cannot write {str(path)!r}: {reason}", "out_dir")
        self._errors.append(error)
        return error

    def _stream_row(self, frame: FrameLatency, missed: bool) -> None:
        """Append ``frame``'s row to the CSV being written (opened at the first mask)."""
        if self._out_dir is None or self._csv_done:
            return
        try:
            if self._csv_file is None:
                fd, name = tempfile.mkstemp(prefix=f".{CSV_NAME}.", suffix=".tmp",
                                            dir=self._out_dir)
                self._csv_tmp = Path(name)
                self._csv_file = os.fdopen(fd, "w", newline="", encoding="utf-8")
                self._csv_writer = csv.writer(self._csv_file)
                self._csv_writer.writerow(CSV_HEADER)
            assert self._csv_writer is not None
            self._csv_writer.writerow([frame.seq, frame.index, frame.stamp_ns,
                                       *(f"{frame.ms[c]:.3f}" for c in COLUMNS), int(missed)])
        except OSError as exc:
            error = self._file_error(self._out_dir / CSV_NAME, exc)
            log.warning("%s; no latency.csv this run, measuring goes on", error)
            self._discard_csv()
            self._csv_done = True

    def _discard_csv(self) -> None:
        if self._csv_file is not None:
            with contextlib.suppress(OSError):
                self._csv_file.close()
            self._csv_file = None
        if self._csv_tmp is not None:
            self._csv_tmp.unlink(missing_ok=True)
            self._csv_tmp = None

    def _finish_csv(self) -> None:
        """Move the streamed CSV into place as ``latency.csv`` (atomically)."""
        if self._out_dir is None or self._csv_tmp is None:
            return
        target, streamed = self._out_dir / CSV_NAME, self._csv_tmp
        try:
            if self._csv_file is not None:
                self._csv_file.close()
                self._csv_file = None
            write_atomic(target, lambda tmp: os.replace(streamed, tmp), error=ConfigError,
                         what="the latency CSV")
            self._csv_tmp = None
        except (OSError, DrivingsegError) as exc:
            self._file_error(target, exc)
        finally:
            self._discard_csv()
            self._csv_done = True

    def shutdown(self) -> None:
        """Close the streamed CSV: it goes into place in :meth:`after_run`, beside
        ``latency.json``, not while the other nodes still finalise their outputs (a run
        ended there left the new CSV beside the previous run's JSON)."""
        if self._csv_file is None or self._out_dir is None:
            return
        try:
            self._csv_file.close()
        except OSError as exc:
            self._file_error(self._out_dir / CSV_NAME, exc)
            self._discard_csv()
            self._csv_done = True
        self._csv_file = None

    def after_run(self) -> None:
        end_ns = self._end_ns or time.perf_counter_ns()
        wall_s = (end_ns - self._start_ns) / 1e9 if self._start_ns else 0.0
        masks = len(self.samples)
        self.report = LatencyReport(
            budget_ms=self.p["budget_ms"],
            frames_in=self.context.graph.frames_in(),
            masks=masks,
            wall_s=wall_s,
            stats={c: percentiles(self.samples.column(c)) for c in COLUMNS},
            deadline_misses=self.deadline_misses,
            drops=self.context.graph.drops(),
            losses=self.context.graph.losses(),
            behind=self.context.graph.replay_behind(),
        )
        if not masks:
            log.warning("%s: no mask was measured (%d camera frames in); the latency "
                        "statistics are empty", self.name, self.report.frames_in)
        if self.p["summary"]:
            sys.stdout.write(self.report.table() + "\n")
            sys.stdout.flush()
        if self._out_dir is not None:
            self.write(self._out_dir)
        if self._errors:
            for error in self._errors[1:]:
                log.error("%s", error)
            raise self._errors[0]

    def write(self, out_dir: Path) -> None:
        """``latency.csv`` (the streamed rows, or a header only when no mask streamed any)
        and ``latency.json`` (the report) in ``out_dir``, one right after the other;
        failures are kept for ``after_run`` to raise."""
        assert self.report is not None
        self._finish_csv()
        files = [(out_dir / JSON_NAME, self.report.to_json(), "the latency summary")]
        if not self._csv_done:
            files.append((out_dir / CSV_NAME, csv_line(CSV_HEADER), "the latency CSV"))
            self._csv_done = True
        for path, text, what in files:
            try:
                write_text_atomic(path, text, error=ConfigError, what=what)
            except DrivingsegError as exc:
                self._file_error(path, exc)
