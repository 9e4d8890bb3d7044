"""The replay clock: the time base the paced sources share.

A replay at a rate releases each message at ``start_ns + (stamp - window start) / rate``;
this module keeps ``start_ns`` and moves it on wherever waiting is the replay's own work
(seeking into a window, a reader slower than the rate) rather than the graph's latency.
"""

from __future__ import annotations

import threading
import time

__all__ = ["ReplayClock"]

_WAIT_S = 0.05
"""Longest wait before checking the stop event again."""


class ReplayClock:
    """The time base of the paced sources: ``start_ns`` (``perf_counter_ns``) is when the
    start of the replay window is released.

    Reaching a pass's first message means seeking to the window (``start_s``), again on
    each ``loop`` pass (a bag is read, not decoded, up to it), which can take longer than
    the window itself. So the paced sources meet there (:meth:`meet`): once every one of them
    holds its first message of the pass, the clock moves on by as much as the pass is late,
    and seeking delays the replay instead of making the pass's first frames late (released
    in a burst, their latency counting the seek). A source that ends calls :meth:`leave`.
    A source that finishes reading a message after its release time moves the clock on by
    that much (:meth:`fall_behind`), and while it reads, the others hold back what is due
    after that message (:meth:`hold`): the replay then runs as fast as its slowest reader,
    its streams still interleaved as recorded, instead of counting the reading lag as every
    later frame's latency.
    """

    def __init__(self) -> None:
        self.start_ns = 0
        self._cond = threading.Condition()
        self._members = 0
        self._arrived = 0
        self._round = 0
        self._offset_ns = 0
        self._holds: dict[str, int] = {}

    def join(self) -> None:
        """Count a paced source in (before the graph runs)."""
        with self._cond:
            self._members += 1

    def leave(self) -> None:
        """A source has ended: the others no longer wait for it."""
        with self._cond:
            self._members -= 1
            if self._arrived and self._arrived >= self._members:
                self._release()

    def meet(self, offset_ns: int, stop: threading.Event) -> None:
        """Wait (until ``stop``) for every paced source to hold its first message of a pass
        that starts ``offset_ns`` of replay time after the first pass's."""
        with self._cond:
            current = self._round
            self._offset_ns = offset_ns
            self._arrived += 1
            if self._arrived >= self._members:
                self._release()
                return
            while self._round == current and not stop.is_set():
                self._cond.wait(_WAIT_S)

    def fall_behind(self, seen_start_ns: int, late_ns: int) -> None:
        """Move the clock on by ``late_ns`` from ``seen_start_ns`` (the start a source
        scheduled a message by), unless another source moved it that far already: a
        message read only after its release time delays the replay of every paced source
        (as a lagging player's simulated clock does), so the lag is neither latency nor a
        gap between the camera and lidar streams."""
        with self._cond:
            self.start_ns = max(self.start_ns, seen_start_ns + late_ns)
            self._cond.notify_all()

    def hold(self, source: str, offset_ns: int) -> None:
        """``source`` is reading a message due about ``offset_ns`` after the start: until
        :meth:`unhold`, the other sources release nothing due after it (a slow reader is
        not overtaken by the other stream while it reads)."""
        with self._cond:
            self._holds[source] = offset_ns

    def unhold(self, source: str) -> None:
        with self._cond:
            self._holds.pop(source, None)
            self._cond.notify_all()

    def wait_release(self, source: str, offset_ns: int, stop: threading.Event) -> int | None:
        """Wait until ``offset_ns`` after the start (which may move on meanwhile) and no
        other source holds back that time; the release time (``perf_counter_ns``), or
        None when ``stop`` is set first. Held past that time by a reader that was not late
        after all, the clock moves on to now: that wait is the replay's, not latency."""
        held_past = False
        with self._cond:
            while not stop.is_set():
                now_ns = time.perf_counter_ns()
                release_ns = self.start_ns + offset_ns
                held = any(hold_ns < offset_ns for name, hold_ns in self._holds.items()
                           if name != source)
                if release_ns <= now_ns and not held:
                    if held_past:
                        self.start_ns = max(self.start_ns, now_ns - offset_ns)
                        self._cond.notify_all()
                        return self.start_ns + offset_ns
                    return release_ns
                held_past = held_past or (held and release_ns <= now_ns)
                self._cond.wait(_WAIT_S if held else min(_WAIT_S, (release_ns - now_ns) / 1e9))
        return None

    def _release(self) -> None:
        self.start_ns = max(self.start_ns, time.perf_counter_ns() - self._offset_ns)
        self._arrived = 0
        self._round += 1
        self._cond.notify_all()
