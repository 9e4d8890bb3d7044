"""Ros2McapWriter, checked with the mcap library and mcap_ros2's decoder only."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from mcap._chunk_builder import ChunkBuilder
from mcap.exceptions import EndOfFile
from mcap.reader import make_reader
from mcap.records import Footer, Message, Statistics
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_typestore

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.ros_msgs_write import header

RNG = np.random.default_rng(11)
IMG = RNG.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
PTS = RNG.normal(size=(20, 4)).astype(np.float32)


def decoded(path: Path) -> list[tuple[str, str, int, Any]]:
    """``(topic, schema name, log time, decoded message)`` of every message, file order."""
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header_record = reader.get_header()
        assert header_record.profile == "ros2"
        return [
            (channel.topic, schema.name if schema else "", message.log_time, msg)
            for schema, channel, message, msg in reader.iter_decoded_messages(log_time_order=False)
        ]


def test_conveniences_decode_with_mcap_ros2(tmp_path: Path) -> None:
    out = tmp_path / "a.mcap"
    camera = CameraModel(6, 4, np.array([[50.0, 0, 3], [0, 50, 2], [0, 0, 1]]), frame_id="cam0")
    R, _ = cv2.Rodrigues(np.array([0.1, 0.2, -0.3]))
    T = RigidTransform.from_rt(R, [1.0, 2.0, 3.0], "velodyne", "cam0")
    with Ros2McapWriter(out) as w:
        w.write_tf_static(T, 100)
        w.write_image("/cam/image", CameraFrame(1_000_000_001, IMG, frame_id="cam0"))
        w.write_compressed_image("/cam/png", CameraFrame(1_000_000_001, IMG), fmt="png")
        w.write_camera_info("/cam/camera_info", camera, 1_000_000_001)
        w.write_pointcloud("/velo", LidarScan(2_000_000_000, PTS, frame_id="velodyne"))
    assert dict(w.counts) == {"/tf_static": 1, "/cam/image": 1, "/cam/png": 1,
                              "/cam/camera_info": 1, "/velo": 1}
    msgs = {topic: (schema, t, m) for topic, schema, t, m in decoded(out)}
    assert msgs["/tf_static"][:2] == ("tf2_msgs/msg/TFMessage", 100)
    tf = msgs["/tf_static"][2].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("cam0", "velodyne")
    q = tf.transform.rotation
    qx, qy, qz, qw = q.x, q.y, q.z, q.w
    R_back = np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])
    np.testing.assert_allclose(R_back, R, atol=1e-12)
    assert (tf.transform.translation.x, tf.transform.translation.z) == (1.0, 3.0)

    schema, t, img = msgs["/cam/image"]
    assert (schema, t, img.encoding, img.height, img.width, img.step) == (
        "sensor_msgs/msg/Image", 1_000_000_001, "rgb8", 4, 6, 18)
    assert (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id) == (1, 1, "cam0")
    np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(4, 6, 3), IMG)

    png = msgs["/cam/png"][2]
    assert png.format == "png"
    bgr = cv2.imdecode(np.frombuffer(bytes(png.data), np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    np.testing.assert_array_equal(bgr[:, :, ::-1], IMG)

    info = msgs["/cam/camera_info"][2]
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), camera.K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), camera.projection_matrix())
    assert (info.width, info.height, info.header.frame_id) == (6, 4, "cam0")

    cloud = msgs["/velo"][2]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
    assert [(f.offset, f.datatype) for f in cloud.fields] == [(0, 7), (4, 7), (8, 7), (12, 7)]
    assert (cloud.point_step, cloud.width, cloud.height, cloud.header.frame_id) == (
        16, 20, 1, "velodyne")
    np.testing.assert_array_equal(np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 4), PTS)


def test_channels_offer_qos_and_tf_static_is_latched(tmp_path: Path) -> None:
    """The MCAP ros2 profile requires ``offered_qos_profiles`` on every channel; ``ros2 bag
    play`` offers /tf_static as recorded, and tf2's static listeners (transient local) only
    take it from a transient local publisher. rosbags reads the profiles back."""
    out = tmp_path / "qos.mcap"
    T = RigidTransform.from_rt(np.eye(3), [1.0, 2.0, 3.0], "velodyne", "cam0")
    with Ros2McapWriter(out) as w:
        w.write_tf_static(T, 100)
        w.write_image("/cam/image", CameraFrame(1_000_000_001, IMG, frame_id="cam0"))
    with out.open("rb") as f:
        channels = {c.topic: c for c in make_reader(f).get_summary().channels.values()}
    assert set(channels) == {"/tf_static", "/cam/image"}
    for channel in channels.values():
        (qos,) = parse_qos(channel.metadata["offered_qos_profiles"])
        assert qos.reliability == QosReliability.RELIABLE
    with AnyReader([out]) as reader:
        durability = {c.topic: c.ext.offered_qos_profiles[0].durability  # type: ignore[union-attr]
                      for c in reader.connections}
    assert durability == {"/tf_static": QosDurability.TRANSIENT_LOCAL,
                          "/cam/image": QosDurability.VOLATILE}


def test_generic_write_for_other_types(tmp_path: Path) -> None:
    """The streaming node writes masks and diagnostics through ``write``."""
    out = tmp_path / "diag.mcap"
    with Ros2McapWriter(out) as w:
        ts = w.typestore
        status = ts.types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=b"\x01"[0], name="segmenter", message="slow", hardware_id="",
            values=[ts.types["diagnostic_msgs/msg/KeyValue"](key="latency_ms", value="120")],
        )
        arr = ts.types["diagnostic_msgs/msg/DiagnosticArray"](
            header=header(5, "", ts), status=[status]
        )
        w.write("/diagnostics", arr, "diagnostic_msgs/msg/DiagnosticArray", 5)
        mask = ts.types["sensor_msgs/msg/Image"](
            header=header(6, "cam0", ts), height=2, width=3, encoding="mono8", is_bigendian=0,
            step=3, data=np.array([0, 1, 2, 2, 1, 0], np.uint8),
        )
        w.write("/seg/mask", mask, "sensor_msgs/msg/Image", 6)
        match = r"'/seg/mask' already carries 'sensor_msgs/msg/Image'"
        with pytest.raises(RecordingError, match=match):
            w.write("/seg/mask", arr, "diagnostic_msgs/msg/DiagnosticArray", 7)
        with pytest.raises(RecordingError, match=r"'no_pkg/msg/Nothing' is not in the typestore"):
            w.write("/x", arr, "no_pkg/msg/Nothing", 7)
    (d, m) = decoded(out)
    assert d[1] == "diagnostic_msgs/msg/DiagnosticArray"
    assert d[3].status[0].values[0].value == "120" and d[3].status[0].level == 1
    assert m[3].encoding == "mono8" and bytes(m[3].data) == bytes([0, 1, 2, 2, 1, 0])


def test_exception_in_with_block_leaves_a_valid_file(tmp_path: Path) -> None:
    out = tmp_path / "failed.mcap"
    with pytest.raises(ZeroDivisionError), Ros2McapWriter(out) as w:
        for k in range(3):
            w.write_pointcloud("/velo", LidarScan(k * 100, PTS[k:]))
        _ = 1 / 0
    assert not w.is_open
    msgs = decoded(out)  # a seeking reader: needs the summary and footer
    assert [(t, s) for t, _, s, _ in msgs] == [("/velo", 0), ("/velo", 100), ("/velo", 200)]
    assert [m.width for *_, m in msgs] == [20, 19, 18]
    with out.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None
    assert summary.statistics.message_count == 3


def test_hard_kill_leaves_complete_chunks_readable(tmp_path: Path) -> None:
    out = tmp_path / "live.mcap"
    snapshot = tmp_path / "killed.mcap"
    with Ros2McapWriter(out, chunk_size_bytes=300) as w:
        for k in range(5):
            w.write_pointcloud("/velo", LidarScan(k, PTS))  # 320 bytes: one chunk each
        shutil.copyfile(out, snapshot)  # the bytes on disk if the process died now
    with snapshot.open("rb") as f:
        stamps = []
        with pytest.raises(EndOfFile):  # no summary, no footer: the stream just ends
            for record in StreamReader(f).records:
                if isinstance(record, Message):
                    stamps.append(record.log_time)
    assert stamps == [0, 1, 2, 3, 4]


def test_interrupt_inside_a_write_leaves_no_wrong_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside mcap's add_message (statistics counted, message not yet in the chunk)
    used to give a summary counting a message the file does not hold."""
    out = tmp_path / "interrupted.mcap"
    real_add = ChunkBuilder.add_message
    calls = [0]

    def add_message(builder: ChunkBuilder, message: Message) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        real_add(builder, message)

    monkeypatch.setattr(ChunkBuilder, "add_message", add_message)
    with pytest.raises(KeyboardInterrupt), Ros2McapWriter(out, chunk_size_bytes=300) as w:
        for k in range(5):
            w.write_pointcloud("/velo", LidarScan(k, PTS))  # one chunk each
    records = []
    with out.open("rb") as f, contextlib.suppress(EndOfFile):
        for record in StreamReader(f).records:
            records.append(record)
    stamps = [r.log_time for r in records if isinstance(r, Message)]
    assert stamps == [0, 1]  # the two complete chunks
    stats = [r for r in records if isinstance(r, Statistics)]
    assert all(s.message_count == len(stamps) for s in stats)  # never counts lost messages
    assert not stats and not [r for r in records if isinstance(r, Footer)]  # as a hard kill
    with BagRecording(out) as bag:  # drivingseg reads the summary-less file
        assert [s.stamp_ns for s in bag.lidar_scans()] == [0, 1]
    assert w.torn and not w.is_open


def test_prepare_builds_the_serialisers_before_the_first_message(tmp_path: Path) -> None:
    """rosbags generates a type's serialiser on first use (some ms, on a live recorder's
    first frames); ``prepare`` does it up front, the Foxglove types included."""
    wanted = {"sensor_msgs/msg/Image", "foxglove_msgs/msg/ImageAnnotations"}
    typestore = get_typestore(Stores.ROS2_HUMBLE)  # a fresh one: nothing generated yet
    with Ros2McapWriter(tmp_path / "p.mcap", typestore=typestore) as w:
        assert not wanted & set(typestore.cache)
        w.prepare(tuple(wanted))
        assert wanted <= set(typestore.cache)
        with pytest.raises(RecordingError, match=r"unknown message type 'no_msgs/msg/Such'"):
            w.prepare(("no_msgs/msg/Such",))


def test_a_full_disk_is_one_recording_error() -> None:
    """No space left (Linux's /dev/full refuses every write): a RecordingError naming the
    file, not a raw OSError traceback from inside the mcap library."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system to stand in for a full disk")
    with pytest.raises(RecordingError, match=r"/dev/full: cannot write.*No space left"), \
            Ros2McapWriter("/dev/full", chunk_size_bytes=300) as w:
        for k in range(5):
            w.write_pointcloud("/velo", LidarScan(k, PTS))


def test_not_open_and_bad_options(tmp_path: Path) -> None:
    w = Ros2McapWriter(tmp_path / "x.mcap")
    with pytest.raises(RecordingError, match="not open"):
        w.write_pointcloud("/velo", LidarScan(0, PTS))
    with pytest.raises(RecordingError, match=r"unknown compression 'brotli'"):
        Ros2McapWriter(tmp_path / "y.mcap", compression="brotli")
    with pytest.raises(RecordingError, match="cannot create MCAP file"):
        Ros2McapWriter(tmp_path / "no" / "such" / "dir.mcap").open()
