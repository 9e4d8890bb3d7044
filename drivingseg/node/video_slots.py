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
    """The camera rate of frames stamped ``stamps_ns`` with frame numbers ``indexes``:
    the smallest stamp step per frame-number step, so that frames dropped on the way (a
    step of several numbers) do not lower it. A step to an unknown (-1) or smaller
    number (a ``loop``'s next pass) counts as one frame. None: no step."""
    pairs = itertools.pairwise(zip(stamps_ns, indexes, strict=True))
    periods = [(s1 - s0) / (i1 - i0 if 0 <= i0 < i1 else 1)
               for (s0, i0), (s1, i1) in pairs if s1 > s0]
    return 1e9 / min(periods) if periods else None


class VideoSlots:
    """Slots of masks in a video at ``fps``: with ``hold``, a mask's time since the first
    one at that rate (never before the next free slot); without, one slot after another."""

    def __init__(self, fps: float, hold: bool, name: str) -> None:
        self.fps, self.hold, self.name = fps, hold, name
        self.last = -1
        """Slot of the last mask placed."""
        self._first_ns: int | None = None
        self._cut = 0

    def place(self, stamp_ns: int) -> int:
        """The slot of the mask stamped ``stamp_ns`` (it becomes :attr:`last`)."""
        if self._first_ns is None:
            self._first_ns = stamp_ns
        slot = self.last + 1
        if self.hold:
            at = round((stamp_ns - self._first_ns) * self.fps / 1e9) - self._cut
            longest = max(1, round(MAX_HOLD_S * self.fps))
            if at - self.last > longest:
                log.info("%s: a %.1f s gap between masks is held for %g s in the video",
                         self.name, (at - self.last) / self.fps, MAX_HOLD_S)
                self._cut += at - self.last - longest
                at = self.last + longest
            slot = max(slot, at)
        self.last = slot
        return slot
