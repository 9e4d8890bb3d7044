"""Pair camera frames with lidar scans by nearest stamp, in the manner of ROS
message_filters' ApproximateTime policy (specialised to two streams).

Each camera frame is paired with the lidar scan nearest in time, if that scan lies within
``tolerance_ns``; each scan is used at most once. The camera drives: it is the frame that
gets segmented. A decision for a camera frame is taken as soon as it is final:

* a scan with a stamp at or after the frame's has arrived (later scans are farther), or
* the lidar stream has passed ``frame + tolerance`` (nothing later can match), or
* with a lidar period bound, the next scan cannot come early enough to be nearer.

The last rule lets a live node decide without waiting a whole lidar period when the scan
arrives before the image (the usual case: a scan stamped a few ms before its frame would
otherwise hold every frame back by one lidar period, 100 ms at 10 Hz). The bound is
``lidar_min_period_ns`` when given; with ``learn_lidar_period`` it is otherwise
:data:`LEARNED_PERIOD_FRACTION` of the shortest interval between consecutive scans seen so
far, once :data:`LEARN_AFTER_INTERVALS` intervals have been seen (a dropped scan only
lengthens an interval, so the shortest one is the period; the margin covers jitter).

Messages whose stamp does not increase on their stream are dropped and counted as out of
order; queues are bounded (``queue_size`` per stream, oldest dropped and counted), so
memory never grows with a stalled stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Generic, Protocol, TypeVar

from drivingseg.errors import SyncError

__all__ = [
    "DEFAULT_TOLERANCE_NS", "LEARNED_PERIOD_FRACTION", "LEARN_AFTER_INTERVALS",
    "ApproximateTimeSync", "SyncStats", "SyncedPair", "synchronize",
]

DEFAULT_TOLERANCE_NS = 50_000_000
"""50 ms: half the period of 10 Hz sensors."""

LEARN_AFTER_INTERVALS = 2
"""Scan intervals seen before a learned lidar period bound is used."""

LEARNED_PERIOD_FRACTION = 0.9
"""The learned bound: this fraction of the shortest scan interval seen (jitter margin)."""


class Stamped(Protocol):
    @property
    def stamp_ns(self) -> int: ...


C = TypeVar("C", bound=Stamped)
L = TypeVar("L", bound=Stamped)


@dataclass(frozen=True)
class SyncedPair(Generic[C, L]):
    """A camera frame and its lidar scan; ``lidar`` is None only for unmatched frames
    emitted with ``keep_unmatched=True``."""

    camera: C
    lidar: L | None

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
        queue_size: int = 10,
        lidar_min_period_ns: int = 0,
        learn_lidar_period: bool = False,
        keep_unmatched: bool = False,
    ) -> None:
        if tolerance_ns < 0:
            raise SyncError(f"tolerance_ns must be >= 0, got {tolerance_ns!r}")
        if queue_size < 1:
            raise SyncError(f"queue_size must be >= 1, got {queue_size!r}")
        if lidar_min_period_ns < 0:
            raise SyncError(f"lidar_min_period_ns must be >= 0, got {lidar_min_period_ns!r}")
        self.tolerance_ns = int(tolerance_ns)
        self.queue_size = int(queue_size)
        self.lidar_min_period_ns = int(lidar_min_period_ns)
        self.learn_lidar_period = learn_lidar_period
        self.keep_unmatched = keep_unmatched
        self.stats = SyncStats()
        self._shortest_interval_ns: int | None = None
        self._intervals = 0
        self._cameras: deque[C] = deque()
        self._lidars: deque[L] = deque()
        self._last_camera_ns: int | None = None
        self._last_lidar_ns: int | None = None

    def add_camera(self, frame: C) -> list[SyncedPair[C, L]]:
        """Queue a camera frame; return the pairs that became final."""
        if self._last_camera_ns is not None and frame.stamp_ns <= self._last_camera_ns:
            self.stats.out_of_order_camera += 1
            return []
        self._last_camera_ns = frame.stamp_ns
        self._cameras.append(frame)
        out = self._drain(final=False)
        if len(self._cameras) > self.queue_size:
            self._cameras.popleft()
            self.stats.dropped_queue_camera += 1
        return out

    def add_lidar(self, scan: L) -> list[SyncedPair[C, L]]:
        """Queue a lidar scan; return the pairs that became final."""
        if self._last_lidar_ns is not None and scan.stamp_ns <= self._last_lidar_ns:
            self.stats.out_of_order_lidar += 1
            return []
        if self._last_lidar_ns is not None:
            interval = scan.stamp_ns - self._last_lidar_ns
            shortest = self._shortest_interval_ns
            self._shortest_interval_ns = interval if shortest is None else min(shortest, interval)
            self._intervals += 1
        self._last_lidar_ns = scan.stamp_ns
        self._lidars.append(scan)
        out = self._drain(final=False)
        if len(self._lidars) > self.queue_size:
            self._lidars.popleft()
            self.stats.dropped_queue_lidar += 1
        return out

    def flush(self) -> list[SyncedPair[C, L]]:
        """End of streams: decide every queued frame with what has arrived."""
        out = self._drain(final=True)
        self.stats.unmatched_lidar += len(self._lidars)
        self._lidars.clear()
        return out

    @property
    def period_bound_ns(self) -> int:
        """The lidar period lower bound in use (0: none, wait for the next scan)."""
        if self.lidar_min_period_ns > 0:
            return self.lidar_min_period_ns
        if not self.learn_lidar_period or self._intervals < LEARN_AFTER_INTERVALS:
            return 0
        assert self._shortest_interval_ns is not None
        return int(LEARNED_PERIOD_FRACTION * self._shortest_interval_ns)

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

    def _is_final(self, cam_ns: int, nearest: int | None) -> bool:
        last = self._last_lidar_ns
        if last is None:
            return False
        if last >= cam_ns or last > cam_ns + self.tolerance_ns:
            return True
        bound = self.period_bound_ns
        if nearest is not None and bound > 0:
            d = abs(self._lidars[nearest].stamp_ns - cam_ns)
            return last + bound >= cam_ns + d
        return False

    def _drain(self, *, final: bool) -> list[SyncedPair[C, L]]:
        out: list[SyncedPair[C, L]] = []
        while self._cameras:
            cam = self._cameras[0]
            idx = self._nearest(cam.stamp_ns)
            if not final and not self._is_final(cam.stamp_ns, idx):
                break
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
                self.stats.unmatched_camera += 1
                self._drop_lidars_before(cam.stamp_ns - self.tolerance_ns)
                if not self.keep_unmatched:
                    continue
            out.append(SyncedPair(cam, match))
        return out

    def _drop_lidars_before(self, stamp_ns: int) -> None:
        while self._lidars and self._lidars[0].stamp_ns < stamp_ns:
            self._lidars.popleft()
            self.stats.unmatched_lidar += 1


def synchronize(
    cameras: Iterable[C],
    lidars: Iterable[L],
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    *,
    queue_size: int = 10,
    keep_unmatched: bool = False,
    stats: SyncStats | None = None,
) -> Iterator[SyncedPair[C, L]]:
    """Pair two recorded streams lazily, merging them by stamp as a live feed would.

    Pass a ``SyncStats`` to read the counters after the iterator is exhausted.
    """
    import heapq

    sync: ApproximateTimeSync[C, L] = ApproximateTimeSync(
        tolerance_ns, queue_size=queue_size, keep_unmatched=keep_unmatched
    )
    if stats is not None:
        sync.stats = stats
    tagged_c = ((m.stamp_ns, 0, m) for m in cameras)
    tagged_l = ((m.stamp_ns, 1, m) for m in lidars)
    for _, kind, msg in heapq.merge(tagged_c, tagged_l, key=lambda t: (t[0], t[1])):
        if kind == 0:
            yield from sync.add_camera(msg)  # type: ignore[arg-type]
        else:
            yield from sync.add_lidar(msg)  # type: ignore[arg-type]
    yield from sync.flush()
