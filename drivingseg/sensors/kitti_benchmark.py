"""Reader of a KITTI object or road benchmark split (``training/`` or ``testing/``).

Layout::

    training/
      image_2/000000.png  (object)  or  image_2/um_000000.png  (road)
      velodyne/<id>.bin   calib/<id>.txt   (one calibration per frame)
      label_2/<id>.txt                    (object benchmark, optional)
      gt_image_2/um_road_000000.png       (road benchmark, optional; ``um_lane_*`` ignored)

Frames are keyed by the image file stem (``ids``). They are unrelated snapshots with
no timestamps, so frame ``i`` gets the nominal ``stamp_ns = i * 100_000_000`` (10 Hz
from the epoch) and camera frame ``i`` pairs with lidar scan ``i`` by stamp. Opening
lists the frames and checks that every id has its velodyne and calib file; images,
scans, calibrations and labels are read when asked for.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from drivingseg.calibration.kitti import load_kitti_object_rig
from drivingseg.calibration.types import Rig
from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.fileio import read_text
from drivingseg.sensors.base import Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.decode import read_image_rgb, read_velodyne_bin
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = ["NOMINAL_PERIOD_NS", "KittiBenchmark", "KittiObject", "png_size", "read_kitti_labels"]

log = logging.getLogger(__name__)

NOMINAL_PERIOD_NS = 100_000_000
"""Stamp step between benchmark frames (they have no time; 10 Hz is KITTI's rate)."""

_PNG_HEAD = struct.Struct(">8sI4sII")  # signature, IHDR length, b"IHDR", width, height
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: str | PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of a PNG from its IHDR chunk, without decoding the image."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(_PNG_HEAD.size)
    except OSError as exc:
        raise RecordingError(f"cannot read image: {exc.strerror}", path=p) from exc
    if len(head) < _PNG_HEAD.size:
        raise RecordingError(f"truncated PNG: only {len(head)} bytes", path=p)
    signature, _, chunk, width, height = _PNG_HEAD.unpack(head)
    if signature != _PNG_SIGNATURE or chunk != b"IHDR":
        raise RecordingError(f"not a PNG image (starts with {head[:8]!r})", path=p)
    if width == 0 or height == 0:
        raise RecordingError(f"PNG header gives an empty image {width}x{height}", path=p)
    return int(width), int(height)


@dataclass(frozen=True)
class KittiObject:
    """One line of a KITTI ``label_2`` file.

    ``bbox_xyxy`` is the 2D box in pixels (left, top, right, bottom);
    ``dimensions_hwl_m`` height, width, length; ``location_xyz_m`` the bottom centre of
    the 3D box in the rectified camera frame; ``rotation_y`` the yaw about the camera
    y axis in radians. ``score`` is only present in result files.
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox_xyxy: tuple[float, float, float, float]
    dimensions_hwl_m: tuple[float, float, float]
    location_xyz_m: tuple[float, float, float]
    rotation_y: float
    score: float | None = None


def _parse_label_line(line: str, lineno: int, path: Path) -> KittiObject:
    tokens = line.split()
    if len(tokens) not in (15, 16):
        msg = f"line {lineno}: expected 15 or 16 columns, got {len(tokens)}: {line!r}"
        raise RecordingError(msg, path=path)
    try:
        v = [float(t) for t in tokens[1:]]
    except ValueError as exc:
        msg = f"line {lineno}: non-numeric value in {line!r} ({exc})"
        raise RecordingError(msg, path=path) from exc
    if not v[1].is_integer():
        msg = f"line {lineno}: occluded must be an integer, got {tokens[2]!r} in {line!r}"
        raise RecordingError(msg, path=path)
    return KittiObject(
        type=tokens[0],
        truncated=v[0],
        occluded=int(v[1]),
        alpha=v[2],
        bbox_xyxy=(v[3], v[4], v[5], v[6]),
        dimensions_hwl_m=(v[7], v[8], v[9]),
        location_xyz_m=(v[10], v[11], v[12]),
        rotation_y=v[13],
        score=v[14] if len(v) == 15 else None,
    )


def read_kitti_labels(path: str | PathLike[str]) -> list[KittiObject]:
    """Parse a KITTI label file (blank lines skipped); errors name the file and line."""
    p = Path(path)
    text = read_text(p, error=RecordingError, what="label file")
    return [
        _parse_label_line(line, lineno, p)
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


class KittiBenchmark(Recording):
    """A KITTI object/road benchmark folder: per-frame image, scan, calibration, labels.

    ``calib/`` may be absent (``rig()`` is then ``None``); when present every frame
    needs its file. ``velodyne/`` may be absent (no scans); when present every frame
    needs its scan.
    """

    format = "kitti_benchmark"

    def __init__(self, path: str | PathLike[str], *, camera: int = 2) -> None:
        super().__init__(path)
        if isinstance(camera, bool) or camera not in (0, 1, 2, 3):
            raise ConfigError(f"camera must be 0, 1, 2 or 3 (KITTI image_N), got {camera!r}")
        self.camera_index = camera
        self._ids: list[str] = []
        self._has_lidar = False
        self._has_calib = False
        self.rig_note = ""
        """Why :meth:`rig` is None (``drivingseg info`` shows it); empty with a rig."""
        self._camera_frame_id = f"image_{camera}"
        self._lidar_frame_id = "velodyne"

    @property
    def image_dir(self) -> Path:
        return self.path / f"image_{self.camera_index}"

    @property
    def velodyne_dir(self) -> Path:
        return self.path / "velodyne"

    @property
    def calib_dir(self) -> Path:
        return self.path / "calib"

    @property
    def label_dir(self) -> Path:
        return self.path / f"label_{self.camera_index}"

    @property
    def gt_dir(self) -> Path:
        return self.path / f"gt_image_{self.camera_index}"

    def _open(self) -> None:
        if not self.path.is_dir():
            raise RecordingError("KITTI benchmark folder not found", path=self.path)
        if not self.image_dir.is_dir():
            msg = f"not a KITTI benchmark folder: no {self.image_dir.name}/ folder"
            raise RecordingError(msg, path=self.path)
        ids = sorted(p.stem for p in self.image_dir.glob("*.png") if p.is_file())
        if not ids:
            raise RecordingError("no .png images in the image folder", path=self.image_dir)
        self._has_lidar = self.velodyne_dir.is_dir()
        if self._has_lidar:
            self._check_all_exist(ids, self.velodyne_dir, ".bin", RecordingError)
        self._has_calib = self.calib_dir.is_dir()
        self.rig_note = ""
        if self._has_calib:
            self._check_all_exist(ids, self.calib_dir, ".txt", CalibrationError)
        else:
            self.rig_note = f"no {self.calib_dir.name}/ folder beside {self.image_dir.name}/"
            log.info("%s: %s; rig() is None", self.path, self.rig_note)
        self._ids = ids
        if self._has_calib:
            first = load_kitti_object_rig(
                self.calib_dir / f"{ids[0]}.txt",
                camera=self.camera_index,
                image_size=png_size(self.image_dir / f"{ids[0]}.png"),
            )
            self._camera_frame_id, self._lidar_frame_id = first.camera_frame, first.lidar_frame

    @staticmethod
    def _check_all_exist(
        ids: list[str], folder: Path, suffix: str, error: type[RecordingError | CalibrationError]
    ) -> None:
        present = {p.name for p in folder.iterdir()}
        for frame_id in ids:
            name = frame_id + suffix
            if name not in present:
                msg = f"frame {frame_id!r} has an image but no {folder.name}/{name}"
                raise error(msg, path=folder / name)

    def _close(self) -> None:
        self._ids = []

    # --- metadata -------------------------------------------------------------------

    def __len__(self) -> int:
        self._check_open()
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Frame ids (image file stems), sorted; index ``i`` of every method refers here."""
        self._check_open()
        return list(self._ids)

    @property
    def has_labels(self) -> bool:
        self._check_open()
        return self.label_dir.is_dir()

    def _id(self, i: int) -> str:
        self._check_open()
        n = len(self._ids)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for {n} frames")
        return self._ids[i]

    def stamp_ns(self, i: int) -> int:
        """The nominal stamp of frame ``i``: ``i * NOMINAL_PERIOD_NS``."""
        self._id(i)
        return (i % len(self._ids)) * NOMINAL_PERIOD_NS

    def image_path(self, i: int) -> Path:
        return self.image_dir / f"{self._id(i)}.png"

    def frame_rig(self, index: int) -> Rig | None:
        """Frame ``index``'s own calibration (:meth:`rig` of it)."""
        return self.rig(index)

    def rig(self, i: int = 0) -> Rig | None:
        """Calibration of frame ``i`` (its own ``calib/<id>.txt``); ``None`` without calib/."""
        frame_id = self._id(i)
        if not self._has_calib:
            return None
        return load_kitti_object_rig(
            self.calib_dir / f"{frame_id}.txt",
            camera=self.camera_index,
            image_size=png_size(self.image_path(i)),
        )

    def labels(self, i: int) -> list[KittiObject]:
        """Objects of frame ``i`` from ``label_<camera>/<id>.txt``."""
        frame_id = self._id(i)
        if not self.label_dir.is_dir():
            msg = f"no {self.label_dir.name}/ folder (a testing split has no labels)"
            raise RecordingError(msg, path=self.path)
        return read_kitti_labels(self.label_dir / f"{frame_id}.txt")

    def gt_road_path(self, i: int) -> Path | None:
        """Road ground truth of frame ``i`` (``um_000000`` -> ``um_road_000000.png``), if any."""
        frame_id = self._id(i)
        prefix, sep, number = frame_id.partition("_")
        if not sep:
            return None
        path = self.gt_dir / f"{prefix}_road_{number}.png"
        return path if path.is_file() else None

    def info(self) -> RecordingInfo:
        self._check_open()
        n = len(self._ids)
        last = (n - 1) * NOMINAL_PERIOD_NS
        streams = [StreamInfo(self.image_dir.name, "camera", "png", n, 0, last)]
        if self._has_lidar:
            streams.append(StreamInfo(self.velodyne_dir.name, "lidar", "bin", n, 0, last))
        return RecordingInfo(path=str(self.path), format=self.format, streams=tuple(streams))

    # --- frames ---------------------------------------------------------------------

    def camera(self, i: int) -> CameraFrame:
        """Image of frame ``i`` (RGB uint8), read from disk now."""
        path = self.image_path(i)
        return CameraFrame(
            stamp_ns=self.stamp_ns(i),
            image=read_image_rgb(path),
            frame_id=self._camera_frame_id,
            index=i % len(self._ids),
            source=str(path),
        )

    def lidar(self, i: int) -> LidarScan:
        """Velodyne scan of frame ``i`` (Nx4 float32), read from disk now."""
        frame_id = self._id(i)
        if not self._has_lidar:
            raise RecordingError("benchmark folder has no velodyne/ folder", path=self.path)
        path = self.velodyne_dir / f"{frame_id}.bin"
        return LidarScan(
            stamp_ns=self.stamp_ns(i),
            points=read_velodyne_bin(path),
            frame_id=self._lidar_frame_id,
            index=i % len(self._ids),
            source=str(path),
        )

    def camera_frames(self) -> Iterator[CameraFrame]:
        self._check_open()
        return (self.camera(i) for i in range(len(self._ids)))

    def lidar_scans(self) -> Iterator[LidarScan]:
        self._check_open()
        n = len(self._ids) if self._has_lidar else 0
        return (self.lidar(i) for i in range(n))

    def camera_frames_from(self, start_ns: int) -> Iterator[CameraFrame]:
        """Frames stamped at or after ``start_ns``, the earlier ones not read."""
        self._check_open()
        return (self.camera(i) for i in range(len(self._ids)) if self.stamp_ns(i) >= start_ns)

    def lidar_scans_from(self, start_ns: int) -> Iterator[LidarScan]:
        """Scans stamped at or after ``start_ns``, the earlier ones not read."""
        self._check_open()
        n = len(self._ids) if self._has_lidar else 0
        return (self.lidar(i) for i in range(n) if self.stamp_ns(i) >= start_ns)
