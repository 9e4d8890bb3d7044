"""CameraFrame and LidarScan: the checks every reader's frames pass."""

from __future__ import annotations

import re

import numpy as np
import pytest

from drivingseg.errors import RecordingError
from drivingseg.sensors.frames import CameraFrame


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 8, 3), (6, 0, 3)])
def test_empty_camera_image_is_refused_naming_its_source(shape: tuple[int, int, int]) -> None:
    """A 0-pixel image (some drivers publish one before the first exposure) would only
    fail later, in a resize, without a file name."""
    image = np.zeros(shape, np.uint8)
    match = r"drive\.bag:/cam: camera frame 4: empty image of shape " + re.escape(repr(shape))
    with pytest.raises(RecordingError, match=match):
        CameraFrame(0, image, index=4, source="drive.bag:/cam")


def test_smallest_camera_image_is_accepted() -> None:
    frame = CameraFrame(0, np.zeros((1, 1, 3), np.uint8))
    assert (frame.height, frame.width) == (1, 1)


def test_frames_refuse_what_is_not_an_array() -> None:
    """A list (or a torch tensor) failed with "'list' object has no attribute 'dtype'"."""
    from drivingseg.sensors.frames import LidarScan

    with pytest.raises(RecordingError, match=r"x\.bag: camera frame 2: .*numpy array, got list"):
        CameraFrame(0, [[[0, 0, 0]]], index=2, source="x.bag")  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match=r"lidar scan -1: .*numpy array .* got tuple"):
        LidarScan(0, ((0.0, 0.0, 0.0, 0.0),))  # type: ignore[arg-type]


def test_stamps_in_float_seconds_are_refused() -> None:
    """header.stamp.to_sec() seconds as stamp_ns: a 50 ms tolerance became 50 million
    seconds, so the last camera frame of a stream was paired with a scan 1.1 s after it."""
    from drivingseg.sensors.frames import LidarScan
    from drivingseg.sync import synchronize

    image, points = np.zeros((2, 2, 3), np.uint8), np.zeros((1, 4), np.float32)
    with pytest.raises(RecordingError, match=r"cam\.bag: camera frame 9: stamp_ns must be an "
                       r"integer number of nanoseconds, got 1317042000\.9 \(float\)"):
        CameraFrame(1317042000.9, image, index=9, source="cam.bag")  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match=r"lidar scan 20: stamp_ns .* got True \(bool\)"):
        LidarScan(True, points, index=20)
    stamps_ns = [1_317_042_000_000_000_000 + k * 100_000_000 for k in (8, 9, 20)]
    cams = [CameraFrame(s, image, index=k) for s, k in zip(stamps_ns[:2], (8, 9), strict=True)]
    scans = [LidarScan(np.int64(s), points, index=k)
             for s, k in zip(stamps_ns[::2], (8, 20), strict=True)]
    assert type(scans[0].stamp_ns) is int
    assert [(p.camera.index, p.lidar.index) for p in synchronize(cams, scans)] == [(8, 8)]
