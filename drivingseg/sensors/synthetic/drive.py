"""``SyntheticDrive``: the built-in default recording, generated on the fly with exact truth.

A seeded procedural drive (see :mod:`.scene`) seen by the camera and lidar of
``calibration/synthetic.yaml``. Frames are rendered when asked for and never touch the
disk; every random draw of frame ``i`` comes from a generator seeded by ``(seed, i)``,
so ``camera(i)`` is byte-identical whatever was asked before and however many frames
the drive has. Camera frames are exactly 10 Hz; each lidar scan is stamped (and taken)
3 ms +- 1 ms before its camera frame, so pairing them is a real synchronisation task.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.rig_yaml import load_rig
from drivingseg.calibration.types import Rig
from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.sensors.base import Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.synthetic.camera import CameraRender, CameraRenderer
from drivingseg.sensors.synthetic.lidar import LidarModel, LidarScanResult
from drivingseg.sensors.synthetic.scene import World, build_world
from drivingseg.sensors.synthetic.shading import NoiseTile
from drivingseg.share import share_dir

__all__ = [
    "CAMERA_PERIOD_NS",
    "LIDAR_HEIGHT_M",
    "START_NS",
    "CarBox",
    "SyntheticDrive",
    "default_rig_path",
]

FloatArray = npt.NDArray[np.float64]

START_NS = 1_714_564_800 * 1_000_000_000
"""Stamp of camera frame 0: 2024-05-01 12:00:00 UTC."""
CAMERA_PERIOD_NS = 100_000_000
LIDAR_OFFSET_NS = -3_000_000
LIDAR_JITTER_NS = 1_000_000
LIDAR_HEIGHT_M = 1.73
"""Height of the lidar origin above the ground; the camera height follows from the rig."""
_MAX_SPEED_MPS = 25.0
_CACHE = 4


def default_rig_path() -> Path:
    """``calibration/synthetic.yaml``: the checkout's, or the installed copy
    (:func:`drivingseg.share.share_dir`)."""
    return share_dir("calibration") / "synthetic.yaml"


@dataclass(frozen=True, eq=False)
class CarBox:
    """Ground-truth box of one car in one sensor frame.

    ``rotation`` has the car's axes (forward, left, up) as columns, expressed in
    ``frame_id``; ``center`` is the box centre; ``size_lwh`` length, width, height.
    """

    car_id: int
    frame_id: str
    center: FloatArray
    rotation: FloatArray
    size_lwh: FloatArray
    moving: bool = field(default=False)

    def corners(self) -> FloatArray:
        """The 8 corners, shape (8, 3)."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        return np.asarray(self.center + (signs * self.size_lwh / 2) @ self.rotation.T)

    def contains(self, points_xyz: npt.ArrayLike, margin_m: float = 0.0) -> npt.NDArray[np.bool_]:
        """Which points (N x 3, this box's frame) lie inside the box grown by ``margin_m``."""
        local = (np.asarray(points_xyz, dtype=np.float64)[:, :3] - self.center) @ self.rotation
        return np.asarray(np.all(np.abs(local) <= self.size_lwh / 2 + margin_m, axis=1))


def _check_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        message = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ConfigError(message)
    return int(value)


def _check_renderable(rig: Rig, path: Path) -> Rig:
    """``rig`` if the renderer draws what it describes: the camera casts one ray per pixel
    through ``P @ R`` (a rectified pinhole), so a rig of distorted or unrectified images
    would come with frames its own projection does not fit (lidar off the cars)."""
    cam = rig.camera
    if not cam.image_rectified or cam.has_distortion or cam.P is None:
        message = (
            f"the synthetic camera renders rectified, undistorted images (projection P @ R); "
            f"rig {rig.name!r} has image_rectified={cam.image_rectified!r}, "
            f"distortion_model={cam.distortion_model!r}, D={cam.D.tolist()!r}"
        )
        raise CalibrationError(message, path=path)
    return rig


class SyntheticDrive(Recording):
    """A procedural drive of ``frames`` camera/lidar pairs at 10 Hz from ``seed``.

    Beyond the :class:`Recording` interface: ``camera(i)``, ``lidar(i)``, ``labels(i)``
    (H x W uint8: 0 background, 1 road, 2 car), ``depth(i)``, ``point_labels(i)`` (one id
    per lidar point) and ``car_boxes(i, frame)``.
    """

    format = "synthetic"

    def __init__(
        self, seed: int = 0, frames: int = 100, rig_path: str | PathLike[str] | None = None
    ) -> None:
        self.seed = _check_count(seed, "seed", 0)
        self.frames = _check_count(frames, "frames", 1)
        self._rig_explicit = rig_path is not None
        self.rig_path = Path(rig_path) if rig_path is not None else default_rig_path()
        super().__init__(f"synthetic:{self.seed}")
        self._cam_cache: OrderedDict[int, CameraRender] = OrderedDict()
        self._lidar_cache: OrderedDict[int, LidarScanResult] = OrderedDict()

    def _open(self) -> None:
        if not self.rig_path.is_file():
            message = (
                "synthetic rig calibration not found; pass rig_path= or restore "
                "calibration/synthetic.yaml in the repository"
            )
            if self._rig_explicit:
                message = "rig calibration not found"
            raise CalibrationError(message, path=self.rig_path)
        self._rig = _check_renderable(load_rig(self.rig_path), self.rig_path)
        duration_s = self.frames * CAMERA_PERIOD_NS / 1e9
        self._world: World = build_world(self.seed, _MAX_SPEED_MPS * duration_s + 100.0)
        noise = NoiseTile(self.seed)
        self._camera = CameraRenderer(self._rig.camera, self._world, noise)
        self._lidar = LidarModel(self._world, noise)
        T_ego_velo = np.eye(4)
        T_ego_velo[2, 3] = LIDAR_HEIGHT_M
        self._T_ego_velo = T_ego_velo
        self._T_velo_cam = self._rig.T_cam_velo.inverse().matrix

    def _close(self) -> None:
        """Drop the world, the renderers and the cached frames (set again by ``open()``)."""
        self._cam_cache.clear()
        self._lidar_cache.clear()
        del self._rig, self._world, self._camera, self._lidar, self._T_ego_velo, self._T_velo_cam

    def _check_open(self) -> None:
        """Raise :class:`RecordingError` unless open; the hint shows this drive's arguments."""
        if not self.is_open:
            call = f"SyntheticDrive(seed={self.seed}, frames={self.frames})"
            message = f"SyntheticDrive is not open; use 'with {call} as r:'"
            raise RecordingError(message, path=self.path)

    @property
    def world(self) -> World:
        """The procedural world (roads, cars, ego path) of the open drive."""
        self._check_open()
        return self._world

    def __len__(self) -> int:
        self._check_open()
        return self.frames

    def _index(self, i: int) -> int:
        self._check_open()
        if not -self.frames <= i < self.frames:
            raise IndexError(f"frame index {i} out of range for {self.frames} frames")
        return i % self.frames

    # --- time ------------------------------------------------------------------------

    def camera_stamp_ns(self, i: int) -> int:
        return START_NS + self._index(i) * CAMERA_PERIOD_NS

    def lidar_stamp_ns(self, i: int) -> int:
        i = self._index(i)
        jitter = np.random.default_rng([self.seed, i, 31]).uniform(-1.0, 1.0)
        return START_NS + i * CAMERA_PERIOD_NS + LIDAR_OFFSET_NS + round(jitter * LIDAR_JITTER_NS)

    @staticmethod
    def _time_s(stamp_ns: int) -> float:
        return (stamp_ns - START_NS) / 1e9

    # --- poses -----------------------------------------------------------------------

    def lidar_pose(self, stamp_ns: int) -> FloatArray:
        """``T_world_velo``: the lidar pose in the world at ``stamp_ns``."""
        self._check_open()
        return np.asarray(self._world.ego_pose(self._time_s(stamp_ns)) @ self._T_ego_velo)

    def camera_pose(self, stamp_ns: int) -> FloatArray:
        """``T_world_cam``: the pose of the rig's camera frame in the world at ``stamp_ns``."""
        self._check_open()
        return np.asarray(self.lidar_pose(stamp_ns) @ self._T_velo_cam)

    # --- rendering -------------------------------------------------------------------

    def _render(self, i: int) -> CameraRender:
        i = self._index(i)
        if i in self._cam_cache:
            self._cam_cache.move_to_end(i)
            return self._cam_cache[i]
        stamp = self.camera_stamp_ns(i)
        t_s = self._time_s(stamp)
        out = self._camera.render(
            self._world.boxes_at(t_s),
            t_s,
            self.camera_pose(stamp),
            np.random.default_rng([self.seed, i, 1]),
        )
        self._cam_cache[i] = out
        if len(self._cam_cache) > _CACHE:
            self._cam_cache.popitem(last=False)
        return out

    def _scan(self, i: int) -> LidarScanResult:
        i = self._index(i)
        if i in self._lidar_cache:
            self._lidar_cache.move_to_end(i)
            return self._lidar_cache[i]
        stamp = self.lidar_stamp_ns(i)
        out = self._lidar.scan(
            self._world.boxes_at(self._time_s(stamp)),
            self.lidar_pose(stamp),
            np.random.default_rng([self.seed, i, 2]),
        )
        self._lidar_cache[i] = out
        if len(self._lidar_cache) > _CACHE:
            self._lidar_cache.popitem(last=False)
        return out

    def camera(self, i: int) -> CameraFrame:
        """Camera frame ``i`` (RGB uint8, the rig's image size)."""
        return CameraFrame(
            stamp_ns=self.camera_stamp_ns(i),
            image=self._render(i).image.copy(),
            frame_id=self._rig.camera_frame,
            index=self._index(i),
            source=str(self.path),
        )

    def labels(self, i: int) -> npt.NDArray[np.uint8]:
        """Exact class per pixel of camera frame ``i``: 0 background, 1 road, 2 car."""
        return self._render(i).labels.copy()

    def depth(self, i: int) -> npt.NDArray[np.float32]:
        """Projective depth per pixel of camera frame ``i`` in metres (inf: sky)."""
        return self._render(i).depth_m.copy()

    def lidar(self, i: int) -> LidarScan:
        """Lidar scan ``i``: N x 4 float32 (x, y, z in the lidar frame, intensity 0..1)."""
        return LidarScan(
            stamp_ns=self.lidar_stamp_ns(i),
            points=self._scan(i).points.copy(),
            frame_id=self._rig.lidar_frame,
            index=self._index(i),
            source=str(self.path),
        )

    def point_labels(self, i: int) -> npt.NDArray[np.uint8]:
        """Class of each point of ``lidar(i)`` (same order): 0 background, 1 road, 2 car."""
        return self._scan(i).labels.copy()

    def car_boxes(self, i: int, frame: str = "lidar", max_range_m: float = 300.0) -> list[CarBox]:
        """Cars within ``max_range_m`` of the sensor (the default covers all the camera can
        see), in the ``"lidar"`` frame at the lidar stamp or the ``"camera"`` frame at the
        camera stamp of frame ``i``."""
        if frame == "lidar":
            stamp = self.lidar_stamp_ns(i)
            T_world_sensor, frame_id = self.lidar_pose(stamp), self._rig.lidar_frame
        elif frame == "camera":
            stamp = self.camera_stamp_ns(i)
            T_world_sensor, frame_id = self.camera_pose(stamp), self._rig.camera_frame
        else:
            raise ConfigError(f"frame must be 'lidar' or 'camera', got {frame!r}")
        T = np.linalg.inv(T_world_sensor)
        x, y, yaw = self._world.car_poses(self._time_s(stamp))
        boxes = []
        for car, cx, cy, cyaw in zip(self._world.cars, x, y, yaw, strict=True):
            centre = T[:3, :3] @ np.array([cx, cy, car.size_lwh[2] / 2]) + T[:3, 3]
            if np.linalg.norm(centre) > max_range_m:
                continue
            c, s = np.cos(cyaw), np.sin(cyaw)
            R_world = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            boxes.append(
                CarBox(
                    car.car_id,
                    frame_id,
                    centre,
                    T[:3, :3] @ R_world,
                    car.size_lwh.copy(),
                    moving=car.speed_mps != 0.0,
                )
            )
        return boxes

    # --- Recording interface ---------------------------------------------------------

    def rig(self) -> Rig:
        self._check_open()
        return self._rig

    def camera_frames(self) -> Iterator[CameraFrame]:
        self._check_open()
        return (self.camera(i) for i in range(self.frames))

    def lidar_scans(self) -> Iterator[LidarScan]:
        self._check_open()
        return (self.lidar(i) for i in range(self.frames))

    def camera_frames_from(self, start_ns: int) -> Iterator[CameraFrame]:
        """Frames stamped at or after ``start_ns``, the earlier ones not rendered."""
        self._check_open()
        return (self.camera(i) for i in range(self.frames) if self.camera_stamp_ns(i) >= start_ns)

    def lidar_scans_from(self, start_ns: int) -> Iterator[LidarScan]:
        """Scans stamped at or after ``start_ns``, the earlier ones not rendered."""
        self._check_open()
        return (self.lidar(i) for i in range(self.frames) if self.lidar_stamp_ns(i) >= start_ns)

    def info(self) -> RecordingInfo:
        self._check_open()
        n = self.frames
        streams = (
            StreamInfo(
                "image_02",
                "camera",
                "sensor_msgs/msg/Image",
                n,
                self.camera_stamp_ns(0),
                self.camera_stamp_ns(n - 1),
            ),
            StreamInfo(
                "velodyne_points",
                "lidar",
                "sensor_msgs/msg/PointCloud2",
                n,
                self.lidar_stamp_ns(0),
                self.lidar_stamp_ns(n - 1),
            ),
        )
        return RecordingInfo(path=str(self.path), format=self.format, streams=streams)
