"""Timestamped sensor frames: what every reader yields and every node consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError

__all__ = ["CameraFrame", "LidarScan"]


def _stamp_ns(what: str, stamp_ns: object, source: str) -> int:
    """``stamp_ns`` as an int, or RecordingError: a stamp in float seconds (ROS
    ``header.stamp.to_sec()``) made every 50 ms tolerance a 50-million-second one."""
    if isinstance(stamp_ns, (int, np.integer)) and not isinstance(stamp_ns, bool):
        return int(stamp_ns)
    raise RecordingError(
        f"{what}: stamp_ns must be an integer number of nanoseconds, got {stamp_ns!r} "
        f"({type(stamp_ns).__name__}); seconds t become int(round(t * 1e9))",
        path=source or None)


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """One camera image: ``image`` is RGB uint8, H x W x 3; ``stamp_ns`` is sensor time."""

    stamp_ns: int
    image: npt.NDArray[np.uint8]
    frame_id: str = "camera"
    index: int = -1
    source: str = ""

    def __post_init__(self) -> None:
        stamp = _stamp_ns(f"camera frame {self.index}", self.stamp_ns, self.source)
        object.__setattr__(self, "stamp_ns", stamp)
        img = self.image
        if not isinstance(img, np.ndarray):
            raise RecordingError(
                f"camera frame {self.index}: expected an HxWx3 uint8 RGB numpy array, got "
                f"{type(img).__name__}", path=self.source or None)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise RecordingError(
                f"camera frame {self.index}: expected an HxWx3 uint8 RGB image, "
                f"got shape {img.shape!r} dtype {img.dtype}",
                path=self.source or None,
            )
        if img.shape[0] == 0 or img.shape[1] == 0:  # resizing or inference would fail later
            raise RecordingError(
                f"camera frame {self.index}: empty image of shape {img.shape!r}; a frame "
                "needs at least one row and one column",
                path=self.source or None,
            )

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class LidarScan:
    """One lidar sweep: ``points`` is N x 4 float32 (x, y, z in metres, intensity)."""

    stamp_ns: int
    points: npt.NDArray[np.float32]
    frame_id: str = "velodyne"
    index: int = -1
    source: str = ""

    def __post_init__(self) -> None:
        stamp = _stamp_ns(f"lidar scan {self.index}", self.stamp_ns, self.source)
        object.__setattr__(self, "stamp_ns", stamp)
        pts = self.points
        if not isinstance(pts, np.ndarray):
            raise RecordingError(
                f"lidar scan {self.index}: expected an Nx4 float32 numpy array (x, y, z, "
                f"intensity), got {type(pts).__name__}", path=self.source or None)
        if pts.dtype != np.float32 or pts.ndim != 2 or pts.shape[1] != 4:
            raise RecordingError(
                f"lidar scan {self.index}: expected an Nx4 float32 array (x, y, z, intensity), "
                f"got shape {pts.shape!r} dtype {pts.dtype}",
                path=self.source or None,
            )

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def xyz(self) -> npt.NDArray[np.float32]:
        return self.points[:, :3]

    @property
    def intensity(self) -> npt.NDArray[np.float32]:
        return self.points[:, 3]
