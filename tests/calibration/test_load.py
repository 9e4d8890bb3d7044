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
