"""convert_recording to a ROS 1 .bag and a ROS 2 sqlite3 bag, read back on the real KITTI drive."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Ros1Writer

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.outputs import rosbag
from drivingseg.outputs.convert import McapTopics, convert_recording, output_kind
from drivingseg.sensors import kitti_raw
from drivingseg.sensors.kitti_raw import KittiRawDrive
from drivingseg.sensors.open import open_recording

# ROS 1 md5sums of the Noetic messages, as rosbag play and rospy check them
ROS1_MD5 = {
    "sensor_msgs/msg/Image": "060021388200f6f0f447d0fcd9c64743",
    "sensor_msgs/msg/CameraInfo": "c9a58c1b0b154e0e6da7578cb991d214",
    "sensor_msgs/msg/PointCloud2": "1158d486dd51d683ce2f1be655c3c181",
    "tf2_msgs/msg/TFMessage": "94810edda583a504dfda3829e70d7eec",
}


def _read_all(path: Path) -> tuple[list, list, object]:
    with open_recording(path) as rec:
        return list(rec.camera_frames()), list(rec.lidar_scans()), rec.rig()


@pytest.mark.parametrize("name", ["drive.bag", "drive.db3", "drive_folder"])
def test_bag_round_trip_on_the_kitti_drive(kitti_raw_drive: Path, tmp_path: Path,
                                           name: str) -> None:
    """The .bag and the sqlite3 bag read back with the drive's images, points, stamps and
    rig, and rosbags decodes every message (only an MCAP could be written before)."""
    out = tmp_path / name
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive:
        stats = convert_recording(drive, out, max_frames=3)
        want_images = [f for _, f in zip(range(3), drive.camera_frames(), strict=False)]
        want_scans = [s for _, s in zip(range(3), drive.lidar_scans(), strict=False)]
        rig = drive.rig()
    topics = McapTopics()
    assert stats.counts == {topics.tf_static: 1, topics.image: 3, topics.camera_info: 3,
                            topics.points: 3}
    bag = tmp_path / "drive" if name == "drive.db3" else out
    if name != "drive.bag":
        assert (bag / "metadata.yaml").is_file() and (bag / f"{bag.name}.db3").is_file()
    images, scans, back = _read_all(bag)
    assert [f.stamp_ns for f in images] == [f.stamp_ns for f in want_images]
    assert [s.stamp_ns for s in scans] == [s.stamp_ns for s in want_scans]
    for got, want in zip(images, want_images, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
    for got_scan, want_scan in zip(scans, want_scans, strict=True):
        np.testing.assert_array_equal(got_scan.points, want_scan.points)
    assert rig is not None and back is not None
    assert (back.camera_frame, back.lidar_frame) == (rig.camera_frame, rig.lidar_frame)
    np.testing.assert_allclose(back.T_cam_velo.matrix, rig.T_cam_velo.matrix, atol=1e-6)
    np.testing.assert_array_equal(back.camera.projection_matrix(), rig.camera.projection_matrix())
    with AnyReader([bag]) as reader:
        decoded = [(c.topic, reader.deserialize(raw, c.msgtype))
                   for c, _, raw in reader.messages()]
        connections = {c.topic: c for c in reader.connections}
    assert len(decoded) == 10
    info = next(m for t, m in decoded if t == topics.camera_info)
    if name == "drive.bag":  # ROS 1 spelling, md5sums and a latched /tf_static
        np.testing.assert_array_equal(np.reshape(info.P, (3, 4)), rig.camera.P)
        assert info.header.seq == 0
        assert {c.msgtype: c.digest for c in connections.values()} == ROS1_MD5
        assert connections[topics.tf_static].ext.latching == 1
        assert connections[topics.image].ext.latching is None
    else:
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), rig.camera.P)
        meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        assert meta["storage_identifier"] == "sqlite3" and meta["message_count"] == 10
        qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in meta["topics_with_message_count"]}
        assert "durability: 1" in qos[topics.tf_static]  # transient local: latched
        assert "durability: 2" in qos[topics.image]


@pytest.mark.parametrize("name", ["broken.bag", "broken_folder"])
def test_a_failure_half_way_leaves_a_readable_bag(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A read error half way finalises the bag (index; commit and metadata.yaml), as the
    MCAP path does; rosbags' own writers would abort it unreadable."""
    real_read = kitti_raw.read_image_rgb

    def read_image_rgb(path: Path) -> np.ndarray:
        if path.name == "0000000002.png":
            raise RecordingError("truncated PNG (no IEND chunk at the end)", path=path)
        return real_read(path)

    monkeypatch.setattr(kitti_raw, "read_image_rgb", read_image_rgb)
    out = tmp_path / name
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive, \
            pytest.raises(RecordingError, match="truncated PNG"):
        convert_recording(drive, out, max_frames=5)
    images, scans, rig = _read_all(out)
    assert len(images) == 2 and len(scans) >= 1 and rig is not None


@pytest.mark.parametrize("name", ["drive.db3", "drive_folder"])
def test_a_full_disk_is_one_error_and_leaves_no_bag_that_counts_lost_messages(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """sqlite reports a full disk as ``sqlite3.OperationalError``, which escaped as a
    traceback, and rolled back every message (rosbags commits at close) while the
    metadata.yaml then written counted them: ``info`` showed a bag of messages it lacked.
    Now a RecordingError naming the bag, and the folder is removed."""
    real_write = rosbag.Ros2Writer.write
    calls: list[int] = []

    def write(self: object, connection: object, timestamp: int, data: bytes) -> None:
        calls.append(timestamp)
        if len(calls) == 4:
            raise sqlite3.OperationalError("database or disk is full")
        real_write(self, connection, timestamp, data)

    monkeypatch.setattr(rosbag.Ros2Writer, "write", write)
    out = tmp_path / name
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive, \
            pytest.raises(RecordingError, match=r"drive(_folder)?: cannot write .*"
                                                r"database or disk is full"):
        convert_recording(drive, out, max_frames=5)
    assert list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_while_the_index_is_written_leaves_it_whole(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C, then Ctrl-C again while the .bag's last chunk and index are written: the
    second one cut the index half way, leaving a bag without index; it now waits for the
    index, then interrupts."""
    real_read, real_close, real_write_chunk = (kitti_raw.read_image_rgb, Ros1Writer.close,
                                               Ros1Writer.write_chunk)
    closing: list[bool] = []

    def read_image_rgb(path: Path) -> np.ndarray:
        if path.name == "0000000002.png":
            signal.raise_signal(signal.SIGINT)  # the first Ctrl-C
        return real_read(path)

    def close(self: Ros1Writer) -> None:
        closing.append(True)
        real_close(self)

    def write_chunk(self: Ros1Writer, chunk: Any) -> None:
        if closing == [True]:
            closing.append(True)
            signal.raise_signal(signal.SIGINT)  # the second, while the index is written
        real_write_chunk(self, chunk)

    monkeypatch.setattr(kitti_raw, "read_image_rgb", read_image_rgb)
    monkeypatch.setattr(Ros1Writer, "close", close)
    monkeypatch.setattr(Ros1Writer, "write_chunk", write_chunk)
    out = tmp_path / "drive.bag"
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive, pytest.raises(KeyboardInterrupt):
        convert_recording(drive, out, max_frames=5)
    assert len(closing) == 2
    with AnyReader([out]) as reader:  # indexed: rosbags reads it without a scan
        counts = {name: topic.msgcount for name, topic in reader.topics.items()}
    topics = McapTopics()
    assert counts[topics.image] == counts[topics.camera_info] >= 2


def test_an_existing_output_is_replaced_but_not_a_foreign_folder(
    kitti_raw_drive: Path, tmp_path: Path
) -> None:
    bag = tmp_path / "again.bag"
    folder = tmp_path / "again"
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive:
        convert_recording(drive, bag, max_frames=2)
        convert_recording(drive, folder, max_frames=2)
        convert_recording(drive, bag, max_frames=1)
        stats = convert_recording(drive, folder, max_frames=1)
        assert stats.total == 4
        other = tmp_path / "photos"
        other.mkdir()
        (other / "holiday.jpg").write_bytes(b"x")
        with pytest.raises(RecordingError, match="not a ROS 2 bag folder"):
            convert_recording(drive, other, max_frames=1)
    assert (other / "holiday.jpg").read_bytes() == b"x"
    assert len(_read_all(bag)[0]) == 1 and len(_read_all(folder)[0]) == 1


def test_an_unknown_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        output_kind(tmp_path / "drive.rosbag")
    assert str(err.value) == (
        f"unsupported output {str(tmp_path / 'drive.rosbag')!r} (suffix '.rosbag'); supported: "
        ".mcap (ROS 2 MCAP); .bag (ROS 1 bag); .db3 (ROS 2 sqlite3 bag); "
        "a folder (no suffix) (ROS 2 sqlite3 bag folder)")
