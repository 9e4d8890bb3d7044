"""Warn-once checks on what a reader yields: stamps of a stream, sizes of its images.

Recordings in the field have stamps that repeat or go backwards, header stamps left at
zero by a driver, sensor clocks far from the recorder's, and image topics that change size.
Readers yield such messages as recorded (the synchroniser drops and counts a stamp that
does not increase); these checks log one warning per stream and problem, naming the
stream and the values, so a run that pairs nothing says why.
"""

from __future__ import annotations

import logging

from drivingseg.sensors.frames import CameraFrame

__all__ = [
    "STAMP_LOG_WARN_NS",
    "SizeWatch",
    "StampWatch",
]

log = logging.getLogger(__name__)

STAMP_LOG_WARN_NS = 10_000_000_000
"""A header stamp further than this (10 s) from its bag receive time is warned about."""


class _Once:
    """Problems of one stream already warned about."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._warned: set[str] = set()

    def warn(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: " + message + " (warned once)", self.stream, *args)


class StampWatch(_Once):
    """Stamp checks of one topic, over every pass a reader makes over it."""

    def stamp(self, index: int, header_ns: int, log_ns: int, prev: int | None) -> int:
        """The stamp of message ``index``: its header stamp, or its receive (log) time when
        the header stamp is zero and the log time is not. Warns about a zero stamp, a stamp
        far from its log time, and a stamp not after ``prev`` (the stamp of the message
        before it in this pass)."""
        if header_ns == 0 and log_ns != 0:
            # a zero log time too is a recording whose clock starts at 0 (a KITTI benchmark
            # folder converted to MCAP), not a driver that left the stamp unset
            self.warn("zero", "message %d has a zero header.stamp (its driver left it unset); "
                      "its receive time %r ns is used instead", index, log_ns)
            stamp = log_ns
        else:
            stamp = header_ns
            if abs(header_ns - log_ns) > STAMP_LOG_WARN_NS:
                self.warn("far", "message %d has header stamp %r ns, %.1f s from its receive "
                          "time %r ns: a sensor clock not synchronised with the recorder's; "
                          "pairing uses the header stamps (replay by receive time with "
                          "stamps:=receive)", index, header_ns, (header_ns - log_ns) / 1e9, log_ns)
        if prev is not None and stamp <= prev:
            self.warn("order", "message %d has stamp %r ns, not after the one before (%r ns); "
                      "it is yielded in recorded order, and the synchroniser drops it",
                      index, stamp, prev)
        return stamp


class SizeWatch(_Once):
    """Warns once when a stream's camera frames change size (a calibration, and a model's
    input buffers, are made for one size), and once when a frame is not the size of the
    calibration that comes with it (``expected_size``, from ``expected_from``)."""

    def __init__(self, stream: str, expected_size: tuple[int, int] | None = None,
                 expected_from: str = "the calibration") -> None:
        super().__init__(stream)
        self._size: tuple[int, int] | None = None
        self.expected_size = expected_size
        self.expected_from = expected_from

    def check(self, frame: CameraFrame) -> None:
        self.check_size(frame.index, frame.width, frame.height)

    def check_size(self, index: int, width: int, height: int, source: str = "") -> None:
        """Check frame ``index`` of ``width`` x ``height`` pixels (``source``: its file, for
        a check made from the file header before any frame is read)."""
        size = (width, height)
        expected = self.expected_size
        if expected is not None and size != expected:
            self.warn("calibration", "frame %d%s is %dx%d pixels but %s is for %dx%d images: "
                      "lidar points projected with it miss their pixels ('drivingseg "
                      "fuse' refuses such frames; the streaming graph scales the "
                      "calibration to them, right only if the images were resized, not "
                      "cropped)", index,
                      f" ({source})" if source else "", *size, self.expected_from, *expected)
        if self._size is None:
            self._size = size
        elif size != self._size:
            self.warn("size", "frame %d is %dx%d, the first one read was %dx%d",
                      index, *size, *self._size)
