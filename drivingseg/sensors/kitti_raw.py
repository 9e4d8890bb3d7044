"""Reader of one KITTI raw drive (``2011_09_26_drive_0001_sync``).

Layout, as KITTI distributes it::

    2011_09_26/                         date folder: calib_cam_to_cam.txt, calib_velo_to_cam.txt
      2011_09_26_drive_0001_sync/       the drive (``path``)
        image_02/timestamps.txt, image_02/data/0000000000.png ...
        velodyne_points/timestamps.txt, velodyne_points/data/0000000000.bin ...

Opening loads the calibration, the timestamps and the file lists and checks that they
agree (contiguous numbering, one stamp per file, stamps never going backwards); images
and scans are read only when asked for, so a long drive costs little memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.kitti import load_kitti_raw_rig
from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.sensors.base import Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.decode import read_image_rgb, read_velodyne_bin
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_timestamps import read_kitti_timestamps

__all__ = ["KittiRawDrive"]

log = logging.getLogger(__name__)

LIDAR_FOLDER = "velodyne_points"
CALIB_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt")
_EMPTY_STAMPS: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
_EMPTY_STAMPS.setflags(write=False)


@dataclass(frozen=True)
class _Stream:
    """One sensor folder of a drive: its data files and their stamps."""

    name: str
    files: tuple[Path, ...]
    stamps_ns: npt.NDArray[np.int64]


def _list_numbered(data_dir: Path, suffix: str) -> tuple[Path, ...]:
    """The ``*<suffix>`` files of ``data_dir``, checked to be numbered 0..N-1 without gaps."""
    files = sorted(p for p in data_dir.iterdir() if p.suffix == suffix and p.is_file())
    if not files:
        raise RecordingError(f"no {suffix} files in the data folder", path=data_dir)
    width = len(files[0].stem)
    for i, f in enumerate(files):
        if not f.stem.isdigit():
            msg = f"file name {f.name!r} is not a frame number like {'0' * width}{suffix}"
            raise RecordingError(msg, path=f)
        if int(f.stem) != i:
            missing = data_dir / f"{i:0{width}d}{suffix}"
            msg = f"frame {i} is missing (numbering jumps to {f.name!r})"
            raise RecordingError(msg, path=missing)
    return tuple(files)


def _load_stream(folder: Path, suffix: str) -> _Stream | None:
    """Load ``folder/data/*<suffix>`` and ``folder/timestamps.txt``; ``None`` if no folder."""
    if not folder.is_dir():
        return None
    data_dir = folder / "data"
    if not data_dir.is_dir():
        raise RecordingError("sensor folder has no 'data' subfolder", path=folder)
    files = _list_numbered(data_dir, suffix)
    stamps_file = folder / "timestamps.txt"
    stamps = read_kitti_timestamps(stamps_file)
    if len(stamps) != len(files):
        msg = (
            f"{len(stamps)} timestamps for {len(files)} {suffix} files in {data_dir.name}/; "
            "each frame needs exactly one"
        )
        raise RecordingError(msg, path=stamps_file)
    return _Stream(folder.name, files, stamps)


class KittiRawDrive(Recording):
    """A KITTI raw drive: one rectified camera (``image_0<camera>``) and the velodyne.

    ``calib_dir`` is the folder with ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``
    (default: the drive's parent, the date folder). Without those files ``rig()`` is
    ``None``; when given explicitly, or when one of them exists, they must load.
    Either sensor folder may be absent, not both.
    """

    format = "kitti_raw"

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        camera: int = 2,
        calib_dir: str | PathLike[str] | None = None,
    ) -> None:
        super().__init__(path)
        if isinstance(camera, bool) or camera not in (0, 1, 2, 3):
            raise ConfigError(f"camera must be 0, 1, 2 or 3 (KITTI image_0N), got {camera!r}")
        self.camera_index = camera
        self._calib_explicit = calib_dir is not None
        # made absolute first: the parent of "." or ".." is not the date folder; abspath
        # (unlike resolve) keeps a symlinked drive's date folder as the one it is linked in
        default_dir = Path(os.path.abspath(self.path)).parent
        self.calib_dir = Path(calib_dir) if calib_dir is not None else default_dir
        self._camera: _Stream | None = None
        self._lidar: _Stream | None = None
        self._rig: Rig | None = None

    @property
    def camera_folder(self) -> str:
        return f"image_0{self.camera_index}"

    def require_camera(self) -> None:
        """Raise :class:`RecordingError` naming the missing ``image_0N/`` folder and the
        camera folders the drive does have."""
        self._check_open()
        if self._camera is not None:
            return
        others = [f"image_0{n}/" for n in self.other_cameras()]
        has = f"it has {', '.join(others)}" if others else "it has no camera folder"
        message = (f"camera {self.camera_index}: {self.camera_folder}/ does not exist ({has}); "
                   "pick one with --camera N")
        raise RecordingError(message, path=self.path)

    def other_cameras(self) -> tuple[int, ...]:
        """KITTI camera numbers other than this drive's whose ``image_0N/`` folder exists."""
        return tuple(n for n in range(4)
                     if n != self.camera_index and (self.path / f"image_0{n}").is_dir())

    def _open(self) -> None:
        if not self.path.is_dir():
            raise RecordingError("KITTI raw drive folder not found", path=self.path)
        camera = _load_stream(self.path / self.camera_folder, ".png")
        lidar = _load_stream(self.path / LIDAR_FOLDER, ".bin")
        if camera is None and lidar is None:
            msg = f"not a KITTI raw drive: neither {self.camera_folder}/ nor {LIDAR_FOLDER}/ found"
            raise RecordingError(msg, path=self.path)
        self._rig = self._load_rig()
        self._camera, self._lidar = camera, lidar

    def _load_rig(self) -> Rig | None:
        present = [name for name in CALIB_FILES if (self.calib_dir / name).is_file()]
        if not present and not self._calib_explicit:
            log.info("no KITTI calibration in %s; rig() is None", self.calib_dir)
            return None
        return load_kitti_raw_rig(self.calib_dir, camera=self.camera_index)

    def _close(self) -> None:
        self._camera = self._lidar = None
        self._rig = None

    # --- metadata -------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of camera frames, or of lidar scans when the drive has no camera."""
        self._check_open()
        stream = self._camera if self._camera is not None else self._lidar
        return 0 if stream is None else len(stream.files)

    @property
    def camera_stamps_ns(self) -> npt.NDArray[np.int64]:
        """Camera stamps (read-only int64 ns since the epoch); empty without a camera."""
        self._check_open()
        return self._camera.stamps_ns if self._camera is not None else _EMPTY_STAMPS

    @property
    def lidar_stamps_ns(self) -> npt.NDArray[np.int64]:
        """Lidar stamps (read-only int64 ns since the epoch); empty without a velodyne."""
        self._check_open()
        return self._lidar.stamps_ns if self._lidar is not None else _EMPTY_STAMPS

    @property
    def camera_files(self) -> tuple[Path, ...]:
        self._check_open()
        return self._camera.files if self._camera is not None else ()

    @property
    def lidar_files(self) -> tuple[Path, ...]:
        self._check_open()
        return self._lidar.files if self._lidar is not None else ()

    @property
    def camera_frame_id(self) -> str:
        return self._rig.camera_frame if self._rig is not None else self.camera_folder

    @property
    def lidar_frame_id(self) -> str:
        return self._rig.lidar_frame if self._rig is not None else "velodyne"

    def rig(self) -> Rig | None:
        self._check_open()
        return self._rig

    def info(self) -> RecordingInfo:
        self._check_open()
        streams = []
        kinds = ((self._camera, "camera", "png"), (self._lidar, "lidar", "bin"))
        for stream, kind, msgtype in kinds:
            if stream is None:
                continue
            stamps = stream.stamps_ns
            streams.append(
                StreamInfo(
                    name=stream.name,
                    kind=kind,
                    msgtype=msgtype,
                    count=len(stream.files),
                    first_ns=int(stamps[0]),
                    last_ns=int(stamps[-1]),
                )
            )
        return RecordingInfo(path=str(self.path), format=self.format, streams=tuple(streams))

    # --- frames ---------------------------------------------------------------------

    def _pick(self, stream: _Stream | None, folder: str, i: int) -> tuple[_Stream, int]:
        """The stream and the non-negative index ``i`` in it; raise if absent or out of range."""
        self._check_open()
        if stream is None:
            raise RecordingError(f"drive has no {folder}/ folder", path=self.path)
        n = len(stream.files)
        if not -n <= i < n:
            raise IndexError(f"{folder} index {i} out of range for {n} frames")
        return stream, i % n

    def camera(self, i: int) -> CameraFrame:
        """Camera frame ``i`` (RGB uint8), read from disk now."""
        stream, i = self._pick(self._camera, self.camera_folder, i)
        path = stream.files[i]
        return CameraFrame(
            stamp_ns=int(stream.stamps_ns[i]),
            image=read_image_rgb(path),
            frame_id=self.camera_frame_id,
            index=i,
            source=str(path),
        )

    def lidar(self, i: int) -> LidarScan:
        """Lidar scan ``i`` (Nx4 float32), read from disk now."""
        stream, i = self._pick(self._lidar, LIDAR_FOLDER, i)
        path = stream.files[i]
        return LidarScan(
            stamp_ns=int(stream.stamps_ns[i]),
            points=read_velodyne_bin(path),
            frame_id=self.lidar_frame_id,
            index=i,
            source=str(path),
        )

    def camera_frames(self) -> Iterator[CameraFrame]:
        self._check_open()
        n = len(self._camera.files) if self._camera is not None else 0
        return (self.camera(i) for i in range(n))

    def lidar_scans(self) -> Iterator[LidarScan]:
        self._check_open()
        n = len(self._lidar.files) if self._lidar is not None else 0
        return (self.lidar(i) for i in range(n))
