"""One entry point for every calibration source a user can name on the command line."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from drivingseg.calibration.kitti import (
    CAM_TO_CAM,
    IMU_TO_VELO,
    VELO_TO_CAM,
    load_kitti_object_rig,
    load_kitti_raw_rig,
)
from drivingseg.calibration.rig_yaml import load_rig
from drivingseg.calibration.types import Rig
from drivingseg.errors import CalibrationError, ConfigError
from drivingseg.fileio import read_yaml_mapping

__all__ = ["ACCEPTED_SOURCES", "load_rig_any"]

_CAMERA_INFO_KEYS = frozenset({"image_width", "image_height", "camera_matrix"})
"""Keys that make a YAML file a ROS camera-info file (camera_calibration's ``ost.yaml``)."""

ACCEPTED_SOURCES = (
    "a drivingseg rig file (*.yaml / *.yml, docs/RIG_FORMAT.md)",
    f"a KITTI raw date folder holding {CAM_TO_CAM} (or one of its calib_*.txt files)",
    "a KITTI object/road calib file (*.txt with P0..P3, R0_rect, Tr_velo_to_cam; needs image_size)",
)


def load_rig_any(
    path: str | PathLike[str],
    *,
    camera: int = 2,
    image_size: tuple[int, int] | None = None,
) -> Rig:
    """Load a :class:`Rig` from whichever supported source ``path`` is.

    ``camera`` picks the KITTI camera (ignored for rig YAML); ``image_size`` ``(width,
    height)`` is required for KITTI object calib files, which do not store it.
    """
    p = Path(path)
    if p.is_dir():
        if (p / CAM_TO_CAM).is_file():
            return load_kitti_raw_rig(p, camera=camera)
        message = f"folder holds no {CAM_TO_CAM}; accepted: " + "; ".join(ACCEPTED_SOURCES)
        raise CalibrationError(message, path=p)
    if not p.exists():
        raise CalibrationError("calibration file not found", path=p)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            return load_rig(p)
        except CalibrationError as exc:
            if _is_camera_info(p):
                message = (
                    "a ROS camera-info YAML (camera_calibration's ost.yaml) describes the "
                    "camera only, not the lidar-to-camera transform; build a rig with "
                    "drivingseg.calibration.ros.load_ros_rig(camera_info, extrinsics, name) "
                    "and write it with save_rig (docs/RIG_FORMAT.md)"
                )
                raise CalibrationError(message, path=p) from exc
            raise
    if p.name in (CAM_TO_CAM, VELO_TO_CAM, IMU_TO_VELO):  # one of a date folder's set
        return load_kitti_raw_rig(p.parent, camera=camera)
    if suffix == ".txt":
        if image_size is None:
            message = (
                "KITTI object calib files do not store the image size: "
                "pass image_size=(width, height) (read it from the image)"
            )
            raise ConfigError(message, path=p)
        return load_kitti_object_rig(p, camera=camera, image_size=image_size)
    message = f"unknown calibration source {p.name!r}; accepted: " + "; ".join(ACCEPTED_SOURCES)
    raise CalibrationError(message, path=p)


def _is_camera_info(path: Path) -> bool:
    """Whether ``path`` reads as a ROS camera-info YAML (False when it cannot be read)."""
    try:
        data = read_yaml_mapping(path, error=CalibrationError, what="calibration file")
    except CalibrationError:
        return False
    return set(data) >= _CAMERA_INFO_KEYS
