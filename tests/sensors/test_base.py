"""The Recording interface's shared methods on real recordings: ``require_rig``."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors.kitti_benchmark import KittiBenchmark
from drivingseg.sensors.kitti_raw import KittiRawDrive


def test_require_rig_returns_the_calibration(kitti_raw_drive: Path,
                                             kitti_object_root: Path) -> None:
    with KittiRawDrive(kitti_raw_drive) as drive:
        assert drive.require_rig() is drive.rig()
    with KittiBenchmark(kitti_object_root) as bench:
        rig = bench.require_rig(1)
        assert rig.camera.path == str(kitti_object_root / "calib" / "000001.txt")


def test_require_rig_names_a_recording_without_calibration(kitti_raw_drive: Path,
                                                           tmp_path: Path) -> None:
    """A drive linked away from its date folder has no calibration: ``rig()`` is None and
    fusion failed on it with "'NoneType' object has no attribute 'camera'"."""
    linked = tmp_path / kitti_raw_drive.name
    linked.symlink_to(kitti_raw_drive)
    with KittiRawDrive(linked) as drive:
        assert drive.rig() is None
        with pytest.raises(CalibrationError, match=rf"{linked}: the recording has no calib"):
            drive.require_rig()
    with pytest.raises(RecordingError, match="is not open"):
        drive.require_rig()


def test_receive_stamps_are_refused_where_no_receive_time_is_recorded(
    kitti_raw_drive: Path
) -> None:
    """Only a bag records a receive time per message: a KITTI drive has its own stamps."""
    with KittiRawDrive(kitti_raw_drive) as drive:
        drive.use_stamps("header")
        with pytest.raises(RecordingError, match=rf"{kitti_raw_drive}: stamps 'receive' only "
                                                 "applies to bags"):
            drive.use_stamps("receive")
