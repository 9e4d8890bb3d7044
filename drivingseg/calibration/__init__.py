"""Calibration: typed, validated rig objects and the one place that parses calibration files."""

from drivingseg.calibration.kitti import (
    load_kitti_object_rig,
    load_kitti_raw_rig,
    parse_kitti_calib_file,
    save_kitti_raw_calib,
)
from drivingseg.calibration.load import load_rig_any
from drivingseg.calibration.rig_yaml import RIG_FORMAT, load_rig, save_rig
from drivingseg.calibration.ros import load_camera_info_yaml, load_extrinsics_yaml, load_ros_rig
from drivingseg.calibration.types import (
    ROTATION_TOLERANCE,
    CameraModel,
    Rig,
    RigidTransform,
    as_matrix,
    check_rotation,
)

__all__ = [
    "RIG_FORMAT",
    "ROTATION_TOLERANCE",
    "CameraModel",
    "Rig",
    "RigidTransform",
    "as_matrix",
    "check_rotation",
    "load_camera_info_yaml",
    "load_extrinsics_yaml",
    "load_kitti_object_rig",
    "load_kitti_raw_rig",
    "load_rig",
    "load_rig_any",
    "load_ros_rig",
    "parse_kitti_calib_file",
    "save_kitti_raw_calib",
    "save_rig",
]
