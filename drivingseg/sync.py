"""Pair camera frames with lidar scans by nearest stamp, in the manner of ROS
message_filters' ApproximateTime policy (specialised to two streams).

The camera drives: it is the frame that gets segmented. Frames are decided in stamp order,
each scan is used at most once, and pairs keep stamp order. The rule for frame ``f``:

1. Take the queued (unused) scan ``s`` nearest to ``f`` (the earlier one on a tie).
2. If ``s`` is stamped after ``f`` and the next camera frame is strictly nearer to ``s``,
   ``s`` is left to that frame (a scan goes to the frame nearest to it; the earlier frame
   wins a tie), and ``f`` takes the latest queued scan stamped before it instead.
3. ``f`` is paired with that scan if it lies within ``tolerance_ns`` (inclusive), else it
   is unmatched. Scans before the paired one are never used (counted unmatched); an
   unmatched frame discards the scans older than ``f - tolerance``.

A decision is taken as soon as no message still to come can change it. On the lidar side,
let ``m`` be the earliest stamp the next scan can have: just after the last scan, or
``last + period bound`` with a lidar period bound, or the replay's watermark (below). The
scan choice is final when ``m > f + tolerance`` (nothing later can match) or
``m - f >= |s - f|`` (nothing later can be nearer). On the camera side (only when ``s`` is
stamped after ``f``) it is final when the next camera frame has arrived, or the earliest
stamp ``n`` the next frame can have (``f + camera period bound``, or the watermark)
satisfies ``n - s >= s - f`` (no later frame can be nearer to ``s``).

The lidar period bound lets a live node decide without waiting a whole lidar period when
the scan arrives before the image (the usual case: a scan stamped a few ms before its frame
would otherwise hold every frame back by one lidar period, 100 ms at 10 Hz; such a scan is
before the frame, so rule 2 never waits there). The camera period bound does the same when
the scan is stamped shortly after its frame (within half the bound: 22 ms at 10 Hz with a
learned bound); otherwise that frame waits for the next image. A bound is ``lidar_min_period_ns`` /
``camera_min_period_ns`` when given; with ``learn_lidar_period`` / ``learn_camera_period``
it is otherwise :data:`LEARNED_PERIOD_FRACTION` of the shortest interval between
consecutive messages of that stream seen so far, once :data:`LEARN_AFTER_INTERVALS`
intervals have been seen (a dropped message only lengthens an interval, so the shortest one
is at least the period; under a half of it stays safe even when each of the first
intervals spans a drop, and covers jitter). The bounds are :mod:`drivingseg.sync_period`'s.

Messages whose stamp does not increase on their stream are dropped and counted as out of
order; the first of each stream is logged as a warning (a clock stepping back drops every
message until it catches up). Queues are bounded (``queue_size`` per stream; ``None``:
unbounded), so memory never grows with a stalled stream. When the camera queue overflows,
its oldest frame is decided at once with the scans already queued (as
:meth:`ApproximateTimeSync.flush` does): paired if one is within tolerance, else counted in
``dropped_queue_camera`` (and still emitted with ``keep_unmatched``). So every frame in is
counted once: ``matched + unmatched_camera + dropped_queue_camera + out_of_order_camera``
equals the frames added. A full lidar queue drops its oldest scan: counted in
``dropped_queue_lidar`` (lost: a frame late or stalled) once a camera frame within the
tolerance of it is queued or comes, in ``unmatched_lidar`` once none can (a lidar that
starts before the camera, a gap in the camera stream: no frame to pair it with). So every
scan in is counted once: ``matched + unmatched_lidar + dropped_queue_lidar +
out_of_order_lidar`` equals the scans added once flushed. Those still open are held as
stamps, at most :data:`PUSHED_OUT_KEPT` of them (past that the oldest counts as unmatched).

:func:`synchronize` replays two recorded streams merged by stamp. Its queues are unbounded,
and it tells the synchroniser (:meth:`ApproximateTimeSync.advance`) that nothing earlier
than the current stamp is still to come, so frames are decided once the replay passes
``frame + tolerance`` and only the frames within that window are held.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

from drivingseg.errors import SyncError
from drivingseg.sync_period import (
    LEARN_AFTER_INTERVALS,
    LEARNED_PERIOD_FRACTION,
    PeriodBound,
    check_ns,
)

__all__ = [
    "DEFAULT_TOLERANCE_NS", "LEARNED_PERIOD_FRACTION", "LEARN_AFTER_INTERVALS", "PUSHED_OUT_KEPT",
    "ApproximateTimeSync", "Stamped", "SyncStats", "SyncedPair", "synchronize",
]

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_NS = 50_000_000
"""50 ms: half the period of 10 Hz sensors."""

PUSHED_OUT_KEPT = 1000
"""Stamps of scans pushed out of a full lidar queue kept until a camera frame tells
whether they were lost (100 s of a 10 Hz lidar; bounded, so a camera that never starts
costs no growing memory)."""


class Stamped(Protocol):
    """What the synchroniser pairs: any message with an integer ``stamp_ns``."""

    @property
    def stamp_ns(self) -> int: ...


C = TypeVar("C", bound=Stamped)
L = TypeVar("L", bound=Stamped)
LO = TypeVar("LO", bound="Stamped | None", covariant=True)


@dataclass(frozen=True)
class SyncedPair(Generic[C, LO]):
    """A camera frame and its lidar scan; ``lidar`` is None only for unmatched frames
    emitted with ``keep_unmatched=True``. Typed so: :func:`synchronize` without
    ``keep_unmatched`` yields ``SyncedPair[C, L]``, with it (and
    :class:`ApproximateTimeSync`) ``SyncedPair[C, L | None]``."""

    camera: C
    lidar: LO

    @property
    def offset_ns(self) -> int | None:
        """Lidar stamp minus camera stamp."""
        return None if self.lidar is None else self.lidar.stamp_ns - self.camera.stamp_ns


@dataclass
class SyncStats:
    """Counters of what the synchroniser did; ``as_dict`` for reports."""

    matched: int = 0
    unmatched_camera: int = 0
    unmatched_lidar: int = 0
    out_of_order_camera: int = 0
    out_of_order_lidar: int = 0
    dropped_queue_camera: int = 0
    dropped_queue_lidar: int = 0
    max_abs_offset_ns: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ApproximateTimeSync(Generic[C, L]):
    """Streaming camera-lidar pairing; feed messages with ``add_camera`` / ``add_lidar``."""

    def __init__(
        self,
        tolerance_ns: int = DEFAULT_TOLERANCE_NS,
        *,
        queue_size: int | None = 10,
        lidar_min_period_ns: int = 0,
        learn_lidar_period: bool = False,
        camera_min_period_ns: int = 0,
        learn_camera_period: bool = False,
        keep_unmatched: bool = False,
    ) -> None:
        check_ns("tolerance_ns", tolerance_ns)
        if queue_size is not None and queue_size < 1:
            raise SyncError(f"queue_size must be >= 1, got {queue_size!r}")
        self.tolerance_ns = int(tolerance_ns)
        self.queue_size = None if queue_size is None else int(queue_size)
        self._lidar_period = PeriodBound("lidar_min_period_ns", lidar_min_period_ns,
                                         learn_lidar_period)
        self._camera_period = PeriodBound("camera_min_period_ns", camera_min_period_ns,
                                          learn_camera_period)
        self.keep_unmatched = keep_unmatched
        self.stats = SyncStats()
        self._cameras: deque[C] = deque()
        self._lidars: deque[L] = deque()
        self._pushed_out: deque[int] = deque()
        """Stamps of scans pushed out of the full lidar queue, not yet known to be lost (a
        frame within tolerance of them comes) or unmatched (none can)."""
        self._last_camera_ns: int | None = None
        self._last_lidar_ns: int | None = None
        self._watermark_ns: int | None = None
        self._warned: set[str] = set()

    @property
    def lidar_min_period_ns(self) -> int:
        return self._lidar_period.given_ns

    @property
    def learn_lidar_period(self) -> bool:
        return self._lidar_period.learn

    @property
    def camera_min_period_ns(self) -> int:
        return self._camera_period.given_ns

    @property
    def learn_camera_period(self) -> bool:
        return self._camera_period.learn

    @property
    def pending_cameras(self) -> int:
        """Camera frames queued, not decided yet (0 after :meth:`flush`)."""
        return len(self._cameras)

    @property
    def period_bound_ns(self) -> int:
        """The lidar period lower bound in use (0: none, wait for the next scan)."""
        return self._lidar_period.bound_ns

    @property
    def camera_period_bound_ns(self) -> int:
        """The camera period lower bound in use (0: none, wait for the next frame)."""
        return self._camera_period.bound_ns

    def add_camera(self, frame: C) -> list[SyncedPair[C, L | None]]:
        """Queue a camera frame; return the pairs that became final."""
        last = self._last_camera_ns
        if last is not None and frame.stamp_ns <= last:
            self.stats.out_of_order_camera += 1
            self._warn_out_of_order("camera", frame.stamp_ns, last)
            return []
        if last is not None:
            self._camera_period.observe(frame.stamp_ns - last)
        self._last_camera_ns = frame.stamp_ns
        self._cameras.append(frame)
        self._settle_pushed_out()
        out = self._drain()
        while self.queue_size is not None and len(self._cameras) > self.queue_size:
            self._decide_head(out, forced=True)
            out += self._drain()
        return out

    def add_lidar(self, scan: L) -> list[SyncedPair[C, L | None]]:
        """Queue a lidar scan; return the pairs that became final."""
        last = self._last_lidar_ns
        if last is not None and scan.stamp_ns <= last:
            self.stats.out_of_order_lidar += 1
            self._warn_out_of_order("lidar", scan.stamp_ns, last)
            return []
        if last is not None:
            self._lidar_period.observe(scan.stamp_ns - last)
        self._last_lidar_ns = scan.stamp_ns
        self._lidars.append(scan)
        out = self._drain()
        if self.queue_size is not None and len(self._lidars) > self.queue_size:
            self._pushed_out.append(self._lidars.popleft().stamp_ns)
            if len(self._pushed_out) > PUSHED_OUT_KEPT:
                self._pushed_out.popleft()
                self.stats.unmatched_lidar += 1
            self._settle_pushed_out()
        return out

    def _settle_pushed_out(self) -> None:
        """Count the scans pushed out of the full lidar queue whose fate is known: lost when
        a queued camera frame lies within the tolerance of one, unmatched when every frame
        still to come (stamped after the last one) is too late for it."""
        tol = self.tolerance_ns
        last = self._last_camera_ns
        still_open: deque[int] = deque()
        for stamp in self._pushed_out:
            if any(abs(cam.stamp_ns - stamp) <= tol for cam in self._cameras):
                self.stats.dropped_queue_lidar += 1
            elif last is not None and stamp + tol <= last:
                self.stats.unmatched_lidar += 1
            else:
                still_open.append(stamp)
        self._pushed_out = still_open

    def _warn_out_of_order(self, stream: str, stamp_ns: int, last_ns: int) -> None:
        """Log the first out-of-order message of ``stream`` (ROS message_filters warns so)."""
        if stream not in self._warned:
            self._warned.add(stream)
            log.warning("%s stamp %r ns is not after the last one, %r ns (%.3f s earlier): "
                        "dropped, as every %s message out of order is (counted in "
                        "out_of_order_%s; warned once)", stream, stamp_ns, last_ns,
                        (last_ns - stamp_ns) / 1e9, stream, stream)

    def advance(self, stamp_ns: int) -> list[SyncedPair[C, L | None]]:
        """Declare that no message stamped before ``stamp_ns`` is still to come on either
        stream (a replay merged by stamp); return the pairs that became final."""
        if self._watermark_ns is None or stamp_ns > self._watermark_ns:
            self._watermark_ns = stamp_ns
        return self._drain()

    def flush(self) -> list[SyncedPair[C, L | None]]:
        """End of streams: decide every queued frame with what has arrived."""
        out: list[SyncedPair[C, L | None]] = []
        while self._cameras:
            self._decide_head(out, forced=False, final=True)
        self.stats.unmatched_lidar += len(self._lidars) + len(self._pushed_out)
        self._lidars.clear()
        self._pushed_out.clear()
        return out

    def _nearest(self, stamp_ns: int) -> int | None:
        """Index of the queued scan nearest ``stamp_ns`` (earlier wins a tie)."""
        best, best_d = None, None
        for i, scan in enumerate(self._lidars):
            d = abs(scan.stamp_ns - stamp_ns)
            if best_d is None or d < best_d:
                best, best_d = i, d
            elif scan.stamp_ns > stamp_ns:
                break
        return best

    def _next_min_ns(self, last: int | None, period: PeriodBound) -> int | None:
        """Earliest stamp the next message of a stream can have (None: unknown)."""
        known = None if last is None else last + max(1, period.bound_ns)
        wm = self._watermark_ns
        if wm is None:
            return known
        return wm if known is None else max(known, wm)

    def _choose(self, cam_ns: int, final: bool) -> tuple[bool, int | None]:
        """Whether the head frame's choice is final, and the index of its scan (None for
        none; it may lie outside the tolerance)."""
        idx = self._nearest(cam_ns)
        if not final:
            m = self._next_min_ns(self._last_lidar_ns, self._lidar_period)
            if m is None:
                return False, None
            far = m - cam_ns > self.tolerance_ns
            nearer_possible = idx is None or m - cam_ns < abs(
                self._lidars[idx].stamp_ns - cam_ns)
            if not far and nearer_possible:
                return False, None
        if idx is None:
            return True, None
        scan_ns = self._lidars[idx].stamp_ns
        gap = scan_ns - cam_ns
        if gap <= 0 or gap > self.tolerance_ns:
            return True, idx
        if len(self._cameras) > 1:
            if abs(self._cameras[1].stamp_ns - scan_ns) < gap:
                return True, idx - 1 if idx > 0 else None
            return True, idx
        if not final:
            n = self._next_min_ns(self._last_camera_ns, self._camera_period)
            if n is None or n - scan_ns < gap:
                return False, None
        return True, idx

    def _decide_head(self, out: list[SyncedPair[C, L | None]], *, forced: bool,
                     final: bool = False) -> bool:
        """Decide the oldest queued frame if its choice is final; ``final`` (end of
        streams) or ``forced`` (full queue; unmatched counts as dropped) decide it with what
        has arrived. Append its pair to ``out``; return whether it was decided."""
        cam = self._cameras[0]
        decided, idx = self._choose(cam.stamp_ns, final)
        early = not decided
        if early:
            if not forced:
                return False
            _, idx = self._choose(cam.stamp_ns, True)
        self._cameras.popleft()
        match = None
        if idx is not None:
            scan = self._lidars[idx]
            offset = scan.stamp_ns - cam.stamp_ns
            if abs(offset) <= self.tolerance_ns:
                match = scan
                for _ in range(idx + 1):
                    self._lidars.popleft()
                self.stats.unmatched_lidar += idx
                self.stats.matched += 1
                self.stats.max_abs_offset_ns = max(self.stats.max_abs_offset_ns, abs(offset))
        if match is None:
            if early:
                self.stats.dropped_queue_camera += 1
            else:
                self.stats.unmatched_camera += 1
            self._drop_lidars_before(cam.stamp_ns - self.tolerance_ns)
            if not self.keep_unmatched:
                return True
        out.append(SyncedPair(cam, match))
        return True

    def _drain(self) -> list[SyncedPair[C, L | None]]:
        out: list[SyncedPair[C, L | None]] = []
        while self._cameras and self._decide_head(out, forced=False):
            pass
        if not self._cameras:
            n = self._next_min_ns(self._last_camera_ns, self._camera_period)
            if n is not None:
                self._drop_lidars_before(n - self.tolerance_ns)
        return out

    def _drop_lidars_before(self, stamp_ns: int) -> None:
        while self._lidars and self._lidars[0].stamp_ns < stamp_ns:
            self._lidars.popleft()
            self.stats.unmatched_lidar += 1


@overload
def synchronize(
    cameras: Iterable[C],
    lidars: Iterable[L],
    tolerance_ns: int = ...,
    *,
    queue_size: int | None = ...,
    keep_unmatched: Literal[False] = ...,
    stats: SyncStats | None = ...,
) -> Iterator[SyncedPair[C, L]]: ...


@overload
def synchronize(
    cameras: Iterable[C],
    lidars: Iterable[L],
    tolerance_ns: int = ...,
    *,
    queue_size: int | None = ...,
    keep_unmatched: bool,
    stats: SyncStats | None = ...,
) -> Iterator[SyncedPair[C, L | None]]: ...


def synchronize(
    cameras: Iterable[C],
    lidars: Iterable[L],
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    *,
    queue_size: int | None = None,
    keep_unmatched: bool = False,
    stats: SyncStats | None = None,
) -> Iterator[SyncedPair[C, Any]]:
    """Pair two recorded streams lazily, merging them by stamp as a live feed would.

    Queues are unbounded by default (``queue_size=None``); the merge's progress decides
    frames, so only those within the tolerance window are held. Pass a ``SyncStats`` to
    read the counters after the iterator is exhausted. Without ``keep_unmatched`` every
    pair has its scan, and the type says so (``pair.lidar`` is not Optional).
    """
    sync: ApproximateTimeSync[C, L] = ApproximateTimeSync(
        tolerance_ns, queue_size=queue_size, keep_unmatched=keep_unmatched
    )
    if stats is not None:
        sync.stats = stats
    tagged_c = ((m.stamp_ns, 0, m) for m in cameras)
    tagged_l = ((m.stamp_ns, 1, m) for m in lidars)
    for stamp, kind, msg in heapq.merge(tagged_c, tagged_l, key=lambda t: (t[0], t[1])):
        yield from sync.advance(stamp)
        if kind == 0:
            yield from sync.add_camera(msg)  # type: ignore[arg-type]
        else:
            yield from sync.add_lidar(msg)  # type: ignore[arg-type]
    yield from sync.flush()
