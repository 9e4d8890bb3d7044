"""convert_to_mcap on bags: the camera's CameraInfo survives the conversion."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from support.bags import ROS2, header, write_bag

from drivingseg.errors import RecordingError
from drivingseg.outputs.convert import (
    bag_topics,
    convert_recording,
    convert_to_mcap,
    output_location,
)
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.open import open_recording

T0 = 1_600_000_000_000_000_000
K9 = [700.0, 0.0, 4.0, 0.0, 700.0, 3.0, 0.0, 0.0, 1.0]


def _camera_only_entries() -> list[tuple[str, str, int, object]]:
    types = ROS2.types
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    out: list[tuple[str, str, int, object]] = []
    for k in range(3):
        stamp = T0 + k * 100_000_000
        out.append(("/cam/image_rect", "sensor_msgs/msg/Image", stamp, types[
            "sensor_msgs/msg/Image"](header=header(ROS2, stamp, "cam_optical"), height=6,
                                     width=8, encoding="rgb8", is_bigendian=0, step=24,
                                     data=np.full(144, k, np.uint8))))
        out.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", stamp, types[
            "sensor_msgs/msg/CameraInfo"](header=header(ROS2, stamp, "cam_optical"), height=6,
                                          width=8, distortion_model="plumb_bob", d=np.zeros(5),
                                          k=np.array(K9), r=np.eye(3).ravel(), p=np.zeros(12),
                                          binning_x=0, binning_y=0, roi=roi)))
    return out


def test_a_camera_only_bag_keeps_its_camera_info(tmp_path: Path) -> None:
    """A bag with images and CameraInfo but no lidar: each image keeps its CameraInfo (it
    was dropped: no rig, so no calibration was written at all)."""
    bag_path = write_bag(tmp_path / "cam", "mcap", _camera_only_entries())
    out = tmp_path / "out.mcap"
    with BagRecording(bag_path) as bag:
        names = bag_topics(bag.image_topic, bag.lidar_topic, bag.camera_info_topic)
        stats = convert_to_mcap(bag, out, topics=names)
    assert stats.counts == {"/cam/image_rect": 3, "/cam/camera_info": 3}
    with BagRecording(out) as again:
        camera = again.camera_model()
        assert camera is not None and camera.frame_id == "cam_optical"
        np.testing.assert_array_equal(camera.K.ravel(), K9)


@pytest.mark.parametrize("name", ["drive.mcap", "drive.bag", "drive.db3", "drive"])
def test_missing_folders_above_the_output_are_created(
    kitti_raw_drive: Path, tmp_path: Path, name: str
) -> None:
    """An OUT.mcap or OUT.bag in a missing folder failed with 'No such file or directory'
    while fuse, eval, report and export create their output's folders."""
    out = tmp_path / "runs" / "bags" / name
    with open_recording(kitti_raw_drive) as drive:
        stats = convert_recording(drive, out, max_frames=1)
    assert stats.total == 4
    with open_recording(output_location(out)) as back:
        assert back.info().duration_s == 0.0 and next(back.camera_frames()).index == 0


@pytest.mark.parametrize("below", ["", "sub/"])
def test_a_file_in_the_way_of_the_outputs_folder_is_named(
    kitti_raw_drive: Path, tmp_path: Path, below: str
) -> None:
    taken = tmp_path / "runs"
    taken.write_text("a file")
    message = f"cannot create the output's folder: {str(taken)!r} is a file, not a folder"
    with open_recording(kitti_raw_drive) as drive, pytest.raises(
            RecordingError, match=re.escape(message)):
        convert_recording(drive, taken / f"{below}drive.mcap", max_frames=1)
    assert taken.read_text() == "a file"
