"""The reader interface every recording format implements.

A reader is a context manager: metadata (calibration, timestamps, topic lists) loads in
``open()``, frames load lazily while iterating, so a long drive is never held whole in
memory. Using a reader that is not open raises :class:`RecordingError`.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar, cast

from drivingseg.calibration.types import CameraModel, Rig
from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = ["STAMPS", "Recording", "RecordingInfo", "StreamInfo"]

R = TypeVar("R", bound="Recording")

STAMPS = ("header", "receive")
"""What stamps a recording's frames and scans: their ``header`` stamp (the default) or, in a
bag, each message's ``receive`` (record) time, for sensors stamped by clocks of their own."""


@dataclass(frozen=True)
class StreamInfo:
    """What one sensor stream or topic of a recording holds."""

    name: str
    kind: str
    msgtype: str
    count: int
    first_ns: int | None
    last_ns: int | None

    @property
    def duration_s(self) -> float:
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / 1e9

    @property
    def rate_hz(self) -> float | None:
        """Mean message rate; ``None`` with fewer than two messages."""
        if self.count < 2 or self.duration_s <= 0.0:
            return None
        return (self.count - 1) / self.duration_s


@dataclass(frozen=True)
class RecordingInfo:
    """Summary of a recording, as ``drivingseg info`` prints it."""

    path: str
    format: str
    streams: tuple[StreamInfo, ...]

    @property
    def start_ns(self) -> int | None:
        firsts = [s.first_ns for s in self.streams if s.first_ns is not None]
        return min(firsts) if firsts else None

    @property
    def end_ns(self) -> int | None:
        lasts = [s.last_ns for s in self.streams if s.last_ns is not None]
        return max(lasts) if lasts else None

    @property
    def duration_s(self) -> float:
        if self.start_ns is None or self.end_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9


class Recording(ABC):
    """Base class of recording readers (``with Reader(path) as r: ...``)."""

    format: ClassVar[str] = "unknown"

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self._is_open = False

    def open(self) -> None:
        """Load metadata and check the recording; idempotent."""
        if not self._is_open:
            self._open()
            self._is_open = True

    def close(self) -> None:
        if self._is_open:
            self._close()
            self._is_open = False

    def __enter__(self: R) -> R:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._is_open

    def _check_open(self) -> None:
        if not self._is_open:
            raise RecordingError(
                f"{type(self).__name__} is not open; use 'with {type(self).__name__}(path) as r:'",
                path=self.path,
            )

    @abstractmethod
    def _open(self) -> None:
        """Read metadata; raise RecordingError naming the file on bad input."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release handles; default has none."""

    @abstractmethod
    def info(self) -> RecordingInfo:
        """Streams, counts, rates and time span."""

    @abstractmethod
    def camera_frames(self) -> Iterator[CameraFrame]:
        """Camera frames in recorded order, loaded one at a time."""

    @abstractmethod
    def lidar_scans(self) -> Iterator[LidarScan]:
        """Lidar scans in recorded order, loaded one at a time."""

    def camera_frames_from(self, start_ns: int) -> Iterator[CameraFrame]:
        """:meth:`camera_frames` stamped at or after ``start_ns``, in recorded order.

        A replay window late in a long drive starts here: readers that know a frame's stamp
        before decoding it skip the earlier frames unread (this default decodes them)."""
        return (f for f in self.camera_frames() if f.stamp_ns >= start_ns)

    def lidar_scans_from(self, start_ns: int) -> Iterator[LidarScan]:
        """:meth:`lidar_scans` stamped at or after ``start_ns`` (as :meth:`camera_frames_from`)."""
        return (s for s in self.lidar_scans() if s.stamp_ns >= start_ns)

    def use_stamps(self, stamps: str) -> None:
        """Stamp frames and scans by ``stamps`` (one of :data:`STAMPS`). Only a bag records
        a receive time per message: other formats take ``header`` (their own stamps) only."""
        if stamps not in STAMPS:
            message = f"stamps {stamps!r} is not one of {', '.join(STAMPS)}"
            raise RecordingError(message, path=self.path)
        if stamps != "header":
            message = (f"stamps {stamps!r} only applies to bags, which record a receive time "
                       f"per message; this {self.format} recording has its own stamps only")
            raise RecordingError(message, path=self.path)

    def rig(self) -> Rig | None:
        """The calibration that comes with the recording, if any."""
        return None

    def frame_rig(self, index: int) -> Rig | None:
        """The calibration of camera frame ``index``: the recording's one :meth:`rig`, except
        in formats with a calibration per frame (KITTI object/road folders)."""
        return self.rig()

    def frame_camera(self, index: int) -> CameraModel | None:
        """The camera model of camera frame ``index``: its :meth:`frame_rig`'s camera, or the
        intrinsics alone where a recording has no lidar transform (a camera-only bag's
        CameraInfo), so that they are carried on without a rig."""
        rig = self.frame_rig(index)
        return rig.camera if rig is not None else None

    def require_rig(self, index: int | None = None) -> Rig:
        """The calibration (:meth:`rig`, or :meth:`frame_rig` of camera frame ``index``);
        :class:`CalibrationError` naming the recording when it has none, where fusion
        would otherwise fail on ``None``. The typed way to get a rig to project with."""
        self._check_open()
        rig = self.rig() if index is None else self.frame_rig(index)
        if rig is None:
            message = ("the recording has no calibration for its camera; give one with "
                       "drivingseg.calibration.load_rig_any(PATH)")
            raise CalibrationError(message, path=self.path)
        return rig

    def require_camera(self) -> None:
        """Raise :class:`RecordingError` when the recording has no camera frames (a node or
        command that needs images refuses it at start instead of running on nothing)."""
        self._check_open()
        if not any(s.kind == "camera" and s.count for s in self.info().streams):
            raise RecordingError("the recording has no camera frames", path=self.path)

    def messages(self) -> Iterator[CameraFrame | LidarScan]:
        """Camera frames and lidar scans merged in stamp order (for replay and sync); each
        stream stays in recorded order, so a stream whose stamps go backwards is not sorted."""
        self._check_open()
        merged = heapq.merge(
            self.camera_frames(), self.lidar_scans(), key=attrgetter("stamp_ns")
        )
        yield from cast("Iterator[CameraFrame | LidarScan]", merged)
