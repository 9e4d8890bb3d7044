"""load_rig_any: dispatch on what the user named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from drivingseg.calibration.load import load_rig_any
from drivingseg.errors import CalibrationError, ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "calibration" / "kitti_2011_09_26.yaml"


def test_dispatch_to_each_loader(kitti_raw_root: Path, kitti_object_root: Path) -> None:
    from_folder = load_rig_any(kitti_raw_root)
    from_file = load_rig_any(kitti_raw_root / "calib_cam_to_cam.txt", camera=3)
    from_yaml = load_rig_any(SHIPPED)
    np.testing.assert_array_equal(
        from_folder.lidar_to_pixel_matrix(), from_yaml.lidar_to_pixel_matrix()
    )
    assert from_file.lidar_to_pixel_matrix()[0, 3] < from_folder.lidar_to_pixel_matrix()[0, 3]
    # Any file of the date folder's set names its calibration (these two were read as KITTI
    # object calib files and refused for want of an image size).
    for name in ("calib_velo_to_cam.txt", "calib_imu_to_velo.txt"):
        rig = load_rig_any(kitti_raw_root / name)
        np.testing.assert_array_equal(
            rig.lidar_to_pixel_matrix(), from_folder.lidar_to_pixel_matrix())
    obj = load_rig_any(kitti_object_root / "calib" / "000000.txt", image_size=(616, 514))
    assert obj.camera.image_size == (616, 514)


def test_dispatch_errors(kitti_object_root: Path, tmp_path: Path) -> None:
    calib = kitti_object_root / "calib" / "000000.txt"
    with pytest.raises(ConfigError, match=re.escape(str(calib)) + ": .*pass image_size"):
        load_rig_any(calib)
    with pytest.raises(CalibrationError, match=r"folder holds no calib_cam_to_cam\.txt; accepted"):
        load_rig_any(tmp_path)
    other = tmp_path / "rig.json"
    other.write_text("{}")
    with pytest.raises(CalibrationError, match=r"unknown calibration source 'rig.json'; accepted"):
        load_rig_any(other)
    with pytest.raises(CalibrationError, match="calibration file not found"):
        load_rig_any(tmp_path / "missing.yaml")


def test_ros_camera_info_yaml_is_named_as_such(tmp_path: Path) -> None:
    """A camera_calibration ``ost.yaml`` given where a rig is expected (the fusion node's
    ``calibration``) was refused as a rig file with eight "unknown keys"; the error now says
    what the file is and how to make a rig of it. A broken rig YAML keeps its own error."""
    info = tmp_path / "ost.yaml"
    info.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: narrow_stereo\n"
        "camera_matrix: {rows: 3, cols: 3, data: [423.3, 0, 324.6, 0, 422.9, 242.4, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [-0.35, 0.13, 0.001, 0.0, -0.02]}\n"
    )
    with pytest.raises(CalibrationError, match=re.escape(str(info)) + r": a ROS camera-info "
                       r"YAML .* not the lidar-to-camera transform; .*load_ros_rig"):
        load_rig_any(info)
    typo = tmp_path / "rig.yaml"
    typo.write_text(SHIPPED.read_text().replace("T_velo_imu:", "T_velo_imus:"))
    with pytest.raises(CalibrationError, match=r"unknown keys \['T_velo_imus'\]"):
        load_rig_any(typo)
