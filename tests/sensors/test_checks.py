"""Warn-once checks on stamps and image sizes (drivingseg.sensors.checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivingseg.outputs.convert import convert_to_mcap
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.checks import SizeWatch, StampWatch
from drivingseg.sensors.frames import CameraFrame
from drivingseg.sensors.kitti_benchmark import KittiBenchmark


def test_a_zero_stamp_with_a_zero_log_time_is_not_an_unset_stamp(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = StampWatch("rec:/cam")
    assert watch.stamp(0, 0, 0, None) == 0
    assert watch.stamp(1, 100, 100, 0) == 100
    assert "zero header.stamp" not in caplog.text
    assert watch.stamp(2, 0, 250, 100) == 250
    assert "rec:/cam: message 2 has a zero header.stamp" in caplog.text


def test_a_kitti_benchmark_converted_to_mcap_reads_back_without_warnings(
        kitti_object_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Benchmark frames are stamped 0, 0.1 s, ... from the epoch; frame 0's stamp 0 is
    its real (nominal) stamp, not a driver's unset one."""
    out = tmp_path / "argo.mcap"
    with KittiBenchmark(kitti_object_root) as bench:
        convert_to_mcap(bench, out)
    with BagRecording(out) as bag:
        stamps = [m.stamp_ns for m in bag.messages()]
    assert stamps == [0, 0, 100_000_000, 100_000_000, 200_000_000, 200_000_000]
    assert "WARNING" not in caplog.text


def test_frames_not_of_the_calibrated_size_are_warned_once(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = SizeWatch("drive/image_02", (8, 6), "calib.txt (S_rect_02)")
    watch.check_size(0, 8, 6)
    assert caplog.text == ""
    for i in (1, 2):
        watch.check(CameraFrame(i, np.zeros((3, 4, 3), np.uint8), index=i))
    assert caplog.text.count("calib.txt (S_rect_02) is for 8x6 images") == 1
    assert "drive/image_02: frame 1 is 4x3 pixels but calib.txt" in caplog.text
    assert caplog.text.count("the first one read was 8x6") == 1
