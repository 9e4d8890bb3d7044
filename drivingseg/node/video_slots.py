"""Where each overlay goes in a video that plays as fast as the drive: the camera rate
from the masks' stamps and frame numbers, and the slot (frame number in the file) of
each mask, the previous frame held over the slots between (frames dropped on the way).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

__all__ = ["MAX_HOLD_S", "VideoSlots", "camera_rate_hz"]

log = logging.getLogger(__name__)

MAX_HOLD_S = 10.0
"""Longest gap between masks that the video fills by holding a frame (s); a longer one
(a bag paused for minutes) is shortened to it, so the file stays small."""


def camera_rate_hz(stamps_ns: Sequence[int], indexes: Sequence[int]) -> float | None:
    """The camera rate of frames stamped ``stamps_ns`` with frame numbers ``indexes``.

    A step of several frame numbers counts as that many frames, so that frames dropped on
    the way do not lower the rate; a step to an unknown (-1) or smaller number (a
    ``loop``'s next pass) counts as one. The shortest step per frame sets the scale, and
    the steps within 1.5 times it (the one-frame steps, give or take the jitter of real
    camera stamps) are averaged: the shortest alone made a 10 Hz KITTI drive whose stamps
    jitter by a few ms a 10.7 fps video. A longer step (a frame missing from a bag, its
    numbers going on by one) is left out. None: no step."""
    pairs = itertools.pairwise(zip(stamps_ns, indexes, strict=True))
    steps = [(s1 - s0, i1 - i0 if 0 <= i0 < i1 else 1) for (s0, i0), (s1, i1) in pairs
             if s1 > s0]
    if not steps:
        return None
    shortest = min(dt / frames for dt, frames in steps)
    kept = [(dt, frames) for dt, frames in steps if dt / frames < 1.5 * shortest]
    return 1e9 * sum(frames for _, frames in kept) / sum(dt for dt, _ in kept)


class VideoSlots:
    """Slots of masks in a video at ``fps``: with ``hold``, a mask's time since the first
    one at that rate (never before the next free slot), or, when its frame number and
    stamp agree on how many frames came since the previous mask, as many slots on (the
    numbers count frames exactly where stamps jitter); without ``hold``, one slot after
    another."""

    def __init__(self, fps: float, hold: bool, name: str) -> None:
        self.fps, self.hold, self.name = fps, hold, name
        self.last = -1
        """Slot of the last mask placed."""
        self._first_ns: int | None = None
        self._cut = 0
        self._previous = (0, -1)
        """Stamp and frame number of the last mask placed."""

    def place(self, stamp_ns: int, index: int = -1) -> int:
        """The slot of the mask stamped ``stamp_ns`` with frame number ``index`` (-1:
        unknown); it becomes :attr:`last`."""
        if self._first_ns is None:
            self._first_ns = stamp_ns
        slot = self.last + 1
        if self.hold:
            at = round((stamp_ns - self._first_ns) * self.fps / 1e9) - self._cut
            last_ns, last_index = self._previous
            frames = index - last_index
            if 0 <= last_index < index and \
                    abs((stamp_ns - last_ns) * self.fps / 1e9 - frames) < 0.5:
                at = self.last + frames
            longest = max(1, round(MAX_HOLD_S * self.fps))
            if at - self.last > longest:
                log.info("%s: a %.1f s gap between masks is held for %g s in the video",
                         self.name, (at - self.last) / self.fps, MAX_HOLD_S)
                self._cut += at - self.last - longest
                at = self.last + longest
            slot = max(slot, at)
        self.last = slot
        self._previous = (stamp_ns, index)
        return slot
