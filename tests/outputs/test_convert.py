"""convert_to_mcap on bags: the camera's CameraInfo survives the conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.bags import ROS2, header, write_bag

from drivingseg.outputs.convert import bag_topics, convert_to_mcap
from drivingseg.sensors.bag import BagRecording

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
