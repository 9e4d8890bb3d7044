"""convert_to_mcap and ``drivingseg convert``, checked with mcap + mcap_ros2 only."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from mcap._chunk_builder import ChunkBuilder
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.cli import cmd_convert
from drivingseg.cli.main import main
from drivingseg.errors import RecordingError
from drivingseg.outputs.convert import McapTopics, convert_to_mcap, kitti_topics
from drivingseg.sensors import kitti_raw
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.base import Recording, RecordingInfo
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_benchmark import KittiBenchmark
from drivingseg.sensors.kitti_raw import CALIB_FILES, KittiRawDrive
from drivingseg.sensors.open import open_recording

RNG = np.random.default_rng(5)
T0 = 1_317_042_000_000_000_000


def decoded(path: Path) -> list[tuple[str, str, int, Any]]:
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [
            (channel.topic, schema.name if schema else "", message.log_time, msg)
            for schema, channel, message, msg in reader.iter_decoded_messages(log_time_order=False)
        ]


def quaternion_matrix(q: Any) -> np.ndarray:
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


class FakeRecording(Recording):
    """Three camera frames and three scans 50 ms later; frame ``fail_at`` raises."""

    format = "fake"

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__("fake_drive")
        self.fail_at = fail_at
        self.images = [RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8) for _ in range(3)]
        self.points = [RNG.normal(size=(10 + k, 4)).astype(np.float32) for k in range(3)]
        R, _ = cv2.Rodrigues(np.array([1.2, -1.2, 1.2]))
        K = np.array([[10.0, 0, 2], [0, 10, 2], [0, 0, 1]])
        camera = CameraModel(5, 4, K, frame_id="cam0")
        self._rig = Rig("fake", camera, RigidTransform.from_rt(R, [0.1, -0.2, 0.3], "velo", "cam0"))

    def _open(self) -> None:
        pass

    def info(self) -> RecordingInfo:
        return RecordingInfo(str(self.path), self.format, ())

    def rig(self) -> Rig | None:
        return self._rig

    def camera_frames(self) -> Iterator[CameraFrame]:
        for k, img in enumerate(self.images):
            if k == self.fail_at:
                raise RecordingError("truncated PNG (no IEND chunk at the end)", path=f"{k}.png")
            yield CameraFrame(T0 + k * 100_000_000, img, frame_id="image_02", index=k)

    def lidar_scans(self) -> Iterator[LidarScan]:
        for k, pts in enumerate(self.points):
            yield LidarScan(T0 + k * 100_000_000 + 50_000_000, pts, frame_id="v", index=k)


def test_convert_fake_recording(tmp_path: Path) -> None:
    rec = FakeRecording()
    out = tmp_path / "fake.mcap"
    seen: list[int] = []

    def spy(items: Any) -> Iterator[Any]:
        for item in items:
            seen.append(item.stamp_ns)
            yield item

    with rec:
        stats = convert_to_mcap(rec, out, progress=spy)
    topics = McapTopics()
    assert stats.counts == {topics.tf_static: 1, topics.image: 3, topics.camera_info: 3,
                            topics.points: 3}
    assert (stats.first_ns, stats.last_ns, stats.total) == (T0, T0 + 250_000_000, 10)
    assert len(seen) == 6
    msgs = decoded(out)
    assert [t for _, _, t, _ in msgs] == sorted(t for _, _, t, _ in msgs)  # stamp order
    assert [m[0] for m in msgs[:4]] == [topics.tf_static, topics.image, topics.camera_info,
                                        topics.points]
    images = [m for t, _, _, m in msgs if t == topics.image]
    for img, want in zip(images, rec.images, strict=True):
        assert img.header.frame_id == "cam0"  # the rig's camera frame, as CameraInfo
        got = np.frombuffer(bytes(img.data), np.uint8).reshape(4, 5, 3)
        np.testing.assert_array_equal(got, want)
    clouds = [m for t, _, _, m in msgs if t == topics.points]
    assert [c.header.frame_id for c in clouds] == ["velo"] * 3
    for cloud, want_pts in zip(clouds, rec.points, strict=True):
        pts = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 4)
        np.testing.assert_array_equal(pts, want_pts)


def test_convert_failure_half_way_keeps_a_valid_file(tmp_path: Path) -> None:
    out = tmp_path / "broken.mcap"
    with FakeRecording(fail_at=2) as rec, pytest.raises(RecordingError, match="truncated PNG"):
        convert_to_mcap(rec, out, topics=kitti_topics(3))
    msgs = decoded(out)  # needs the summary: the file was finalised
    counts: dict[str, int] = {}
    for topic, *_ in msgs:
        counts[topic] = counts.get(topic, 0) + 1
    # messages() reads one frame ahead per stream, so the error comes before scan 1.
    assert counts == {"/tf_static": 1, "/kitti/camera_color_right/image_rect": 2,
                      "/kitti/camera_color_right/camera_info": 2, "/kitti/velo/pointcloud": 1}


def test_convert_real_kitti_drive(kitti_raw_drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "kitti.mcap"
    with KittiRawDrive(kitti_raw_drive, camera=2) as drive:
        rig = drive.rig()
        stats = convert_to_mcap(drive, out, max_frames=3, compression="lz4")
    assert rig is not None
    topics = McapTopics()
    assert stats.counts == {topics.tf_static: 1, topics.image: 3, topics.camera_info: 3,
                            topics.points: 3}
    msgs = decoded(out)
    types = {t: s for t, s, _, _ in msgs}
    assert types == {topics.tf_static: "tf2_msgs/msg/TFMessage",
                     topics.image: "sensor_msgs/msg/Image",
                     topics.camera_info: "sensor_msgs/msg/CameraInfo",
                     topics.points: "sensor_msgs/msg/PointCloud2"}
    images = [m for t, _, _, m in msgs if t == topics.image]
    want_first = None
    for k, img in enumerate(images):
        png = kitti_raw_drive / "image_02" / "data" / f"{k:010d}.png"
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        assert bgr is not None
        want = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        got = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
        assert img.encoding == "rgb8" and (img.width, img.height) == (1242, 375)
        np.testing.assert_array_equal(got, want)
        want_first = want if want_first is None else want_first
        assert img.header.stamp.sec == T0 // 10**9 and img.header.stamp.nanosec == k * 10**8
    clouds = [m for t, _, _, m in msgs if t == topics.points]
    for k, cloud in enumerate(clouds):
        binfile = kitti_raw_drive / "velodyne_points" / "data" / f"{k:010d}.bin"
        assert cloud.width == binfile.stat().st_size // 16
        np.testing.assert_array_equal(
            np.frombuffer(bytes(cloud.data), "<f4"), np.fromfile(binfile, "<f4"))
    (tf_msg,) = [m for t, _, _, m in msgs if t == topics.tf_static]
    (tf,) = tf_msg.transforms
    assert (tf.header.frame_id, tf.child_frame_id) == (rig.camera_frame, rig.lidar_frame)
    tr = tf.transform.translation
    np.testing.assert_allclose([tr.x, tr.y, tr.z], rig.T_cam_velo.translation, atol=1e-12)
    np.testing.assert_allclose(
        quaternion_matrix(tf.transform.rotation), rig.T_cam_velo.rotation, atol=1e-6)
    info = next(m for t, _, _, m in msgs if t == topics.camera_info)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), rig.camera.P)
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), rig.camera.R)
    assert info.header.frame_id == rig.camera_frame
    # drivingseg's own bag reader gets the same frames and rig back.
    with BagRecording(out) as bag:
        back = bag.rig()
        first = next(bag.camera_frames())
    assert back is not None and back.camera.image_rectified == rig.camera.image_rectified
    # KITTI rotations are orthonormal to ~1e-7 only; a quaternion makes them exact.
    np.testing.assert_allclose(back.T_cam_velo.matrix, rig.T_cam_velo.matrix, atol=1e-6)
    np.testing.assert_array_equal(back.camera.projection_matrix(), rig.camera.projection_matrix())
    np.testing.assert_array_equal(first.image, want_first)


def test_cli_convert_refuses_to_overwrite(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mcap"
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "1"]) == 0
    assert "wrote 4 messages" in capsys.readouterr().out
    size = out.stat().st_size
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "2"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.stat().st_size == size
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "2", "--force"]) == 0
    assert "wrote 7 messages" in capsys.readouterr().out
    assert main(["convert", str(kitti_raw_drive), str(tmp_path / "x.bagx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(suffix '.bagx'); supported: .mcap (ROS 2 MCAP); .bag" in err


def test_cli_convert_refuses_to_write_over_its_input(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``convert X X --force`` used to truncate X before reading it."""
    mcap = tmp_path / "drive.mcap"
    assert main(["convert", str(kitti_raw_drive), str(mcap), "--max-frames", "1"]) == 0
    data = mcap.read_bytes()
    assert main(["convert", str(mcap), str(mcap), "--force"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert mcap.read_bytes() == data
    inside = kitti_raw_drive / "converted.mcap"
    assert main(["convert", str(kitti_raw_drive), str(inside)]) == 2
    assert "or inside it; write the output elsewhere" in capsys.readouterr().err
    assert not inside.exists()


def test_cli_convert_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "o.mcap")]) == 2
    assert f"{tmp_path / 'missing'}: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "o.mcap").exists()


def summary_and_decoded(path: Path) -> tuple[int, dict[str, int]]:
    """The summary's message count and the messages per topic that actually decode."""
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None
    counts: dict[str, int] = {}
    for topic, *_ in decoded(path):
        counts[topic] = counts.get(topic, 0) + 1
    return summary.statistics.message_count, counts


def ctrl_c_in_add_message(monkeypatch: pytest.MonkeyPatch, at_call: int) -> None:
    """Deliver a real SIGINT from inside mcap's add_message, call ``at_call`` (1-based)."""
    real_add = ChunkBuilder.add_message
    calls = [0]

    def add_message(builder: ChunkBuilder, message: Any) -> None:
        calls[0] += 1
        if calls[0] == at_call:
            signal.raise_signal(signal.SIGINT)
        real_add(builder, message)

    monkeypatch.setattr(ChunkBuilder, "add_message", add_message)


def test_ctrl_c_during_a_write_finalises_a_consistent_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside a write used to leave a summary counting a message never written."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    out = tmp_path / "ctrl_c.mcap"
    ctrl_c_in_add_message(monkeypatch, at_call=2)  # 1: tf_static, 2: image 0
    with FakeRecording() as rec, pytest.raises(KeyboardInterrupt):
        convert_to_mcap(rec, out)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    topics = McapTopics()
    total, counts = summary_and_decoded(out)
    # image 0 and its camera_info are finished, then the conversion stops.
    assert counts == {topics.tf_static: 1, topics.image: 1, topics.camera_info: 1}
    assert total == 3


def test_cli_ctrl_c_exits_130_with_a_consistent_file(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "ctrl_c.mcap"
    ctrl_c_in_add_message(monkeypatch, at_call=5)  # tf, image 0, info 0, scan 0, image 1
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "5"]) == 130
    assert "interrupted" in capsys.readouterr().err
    total, counts = summary_and_decoded(out)
    topics = McapTopics()
    assert counts == {topics.tf_static: 1, topics.image: 2, topics.camera_info: 2,
                      topics.points: 1}
    assert total == 6


def object_copy(kitti_object_root: Path, dest: Path, calib_edit: dict[str, tuple[str, str]]
                ) -> Path:
    """A copy of the KITTI object folder (images, scans linked) with edited calib files:
    ``{"000001": ("P2", "new values")}`` replaces that line of ``calib/000001.txt``."""
    dest.mkdir()
    for name in ("image_2", "velodyne"):
        (dest / name).symlink_to(kitti_object_root / name, target_is_directory=True)
    (dest / "calib").mkdir()
    for src in sorted((kitti_object_root / "calib").glob("*.txt")):
        lines = src.read_text().splitlines()
        if src.stem in calib_edit:
            key, values = calib_edit[src.stem]
            lines = [f"{key}: {values}" if ln.startswith(f"{key}:") else ln for ln in lines]
        (dest / "calib" / src.name).write_text("\n".join(lines) + "\n")
    return dest


def test_convert_kitti_object_uses_each_frames_calibration(
    kitti_object_root: Path, tmp_path: Path
) -> None:
    """camera_info of every frame used to be frame 0's."""
    p2 = "900.0 0.0 240.0 0.0 0.0 910.0 260.0 0.0 0.0 0.0 1.0 0.0"
    folder = object_copy(kitti_object_root, tmp_path / "obj", {"000001": ("P2", p2)})
    out = tmp_path / "obj.mcap"
    with open_recording(folder) as rec:
        assert isinstance(rec, KittiBenchmark)
        rigs = [rec.rig(i) for i in range(len(rec))]
        stats = convert_to_mcap(rec, out)
    topics = McapTopics()
    assert stats.counts[topics.camera_info] == len(rigs) == 3
    assert stats.counts[topics.tf_static] == 1  # the lidar->camera transform is the same
    infos = [m for t, _, _, m in decoded(out) if t == topics.camera_info]
    want_p2 = np.array([float(v) for v in p2.split()]).reshape(3, 4)
    for info, rig in zip(infos, rigs, strict=True):
        assert rig is not None
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), rig.camera.P)
    np.testing.assert_array_equal(np.reshape(infos[1].p, (3, 4)), want_p2)
    assert np.reshape(infos[0].p, (3, 4))[0, 0] != 900.0
    assert np.reshape(infos[2].p, (3, 4))[0, 0] != 900.0


def test_convert_kitti_object_writes_tf_static_again_when_it_changes(
    kitti_object_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tr = "0 -1 0 0.5 0 0 -1 1.0 1 0 0 -2.0"
    folder = object_copy(kitti_object_root, tmp_path / "obj", {"000002": ("Tr_velo_to_cam", tr)})
    out = tmp_path / "obj.mcap"
    with open_recording(folder) as rec:
        convert_to_mcap(rec, out)
    tfs = [(stamp, m) for t, _, stamp, m in decoded(out) if t == "/tf_static"]
    assert [stamp for stamp, _ in tfs] == [0, 200_000_000]
    moved = tfs[1][1].transforms[0].transform.translation
    assert (moved.x, moved.y, moved.z) == (0.5, 1.0, -2.0)
    assert tfs[0][1].transforms[0].transform.translation.x != 0.5
    assert "frame 2: lidar->camera transform differs" in caplog.text


def camera_only_drive(kitti_raw_drive: Path, tmp_path: Path, *folders: str) -> Path:
    """A copy of the KITTI raw drive holding only ``folders`` (linked) and the calibration."""
    date = tmp_path / "2011_09_26"
    drive = date / "2011_09_26_drive_0000_sync"
    drive.mkdir(parents=True)
    for name in CALIB_FILES:
        (date / name).symlink_to(kitti_raw_drive.parent / name)
    for name in folders:
        (drive / name).symlink_to(kitti_raw_drive / name, target_is_directory=True)
    return drive


def test_cli_max_frames_stops_reading_when_a_stream_is_missing(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a camera-only drive --max-frames 1 used to decode all 30 images."""
    drive = camera_only_drive(kitti_raw_drive, tmp_path, "image_02")
    reads: list[Path] = []
    real_read = kitti_raw.read_image_rgb

    def read_image_rgb(path: Path) -> np.ndarray:
        reads.append(path)
        return real_read(path)

    totals: list[int | None] = []
    units: list[str] = []
    real_progress = cmd_convert.progress

    def progress(items: Any, *, total: int | None = None, desc: str = "",
                 unit: str = "frame") -> Iterator[Any]:
        totals.append(total)
        units.append(unit)
        return real_progress(items, total=total, desc=desc, unit=unit)

    monkeypatch.setattr(kitti_raw, "read_image_rgb", read_image_rgb)
    monkeypatch.setattr(cmd_convert, "progress", progress)
    out = tmp_path / "one.mcap"
    assert main(["convert", str(drive), str(out), "--max-frames", "1"]) == 0
    assert "wrote 3 messages" in capsys.readouterr().out  # tf_static, image, camera_info
    assert [p.name for p in reads] == ["0000000000.png"]
    assert totals == [1]
    assert main(["convert", str(kitti_raw_drive), str(tmp_path / "b.mcap"),
                 "--max-frames", "2"]) == 0
    assert totals == [1, 4]
    assert units == ["message", "message"]  # images and scans: not "frame"


def test_cli_refuses_a_missing_camera(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--camera 3 without image_03/ used to write point clouds only and exit 0."""
    out = tmp_path / "c3.mcap"
    assert main(["convert", str(kitti_raw_drive), str(out), "--camera", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{kitti_raw_drive}: camera 3: image_03/ does not exist (it has image_02/)" in err
    assert not out.exists()
    lidar_only = camera_only_drive(kitti_raw_drive, tmp_path, "velodyne_points")
    assert main(["convert", str(lidar_only), str(out), "--camera", "2"]) == 2
    assert "it has no camera folder" in capsys.readouterr().err
    assert not out.exists()
    # Without --camera a lidar-only drive still converts its point clouds.
    assert main(["convert", str(lidar_only), str(out), "--max-frames", "2"]) == 0
    assert "/kitti/velo/pointcloud: 2 messages" in capsys.readouterr().out


SIGTERM_IN_ADD_MESSAGE = """
import signal, sys, tempfile
from mcap._chunk_builder import ChunkBuilder
from drivingseg.cli.main import main

tempfile.tempdir = sys.argv[3]
real_add, calls = ChunkBuilder.add_message, [0]

def add_message(builder, message):
    calls[0] += 1
    if calls[0] == 2:
        signal.raise_signal(signal.SIGTERM)
    real_add(builder, message)

ChunkBuilder.add_message = add_message
sys.exit(main(["convert", sys.argv[1], sys.argv[2]]))
"""


def test_sigterm_finalises_the_mcap_and_removes_the_decompressed_bag(tmp_path: Path) -> None:
    """SIGTERM (kill, timeout, a job scheduler) killed convert on the spot: the MCAP had no
    summary, and a file-compressed bag's decompressed copy stayed in the temporary folder.
    It now stops as Ctrl-C does: the current message finished, the file finalised."""
    import subprocess
    import sys

    from support.bags import file_compressed_bag

    bag = file_compressed_bag(tmp_path / "drive")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out.mcap"
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_ADD_MESSAGE, str(bag), str(out),
                           str(scratch)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 130, done.stderr
    assert "interrupted (SIGTERM)" in done.stderr
    assert list(scratch.iterdir()) == []
    total, counts = summary_and_decoded(out)
    assert counts == {"/camera/image_raw": 2} and total == 2  # the image being written


@pytest.mark.parametrize("held", ["other topic", "empty image topic"])
def test_a_bag_without_camera_or_lidar_messages_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: str
) -> None:
    """A bag with no image or PointCloud2 message (an IMU-only recording, a camera topic
    that never got a message) converted to an empty MCAP with exit status 0 ("wrote 0
    messages"); it is now one error line naming the streams, and nothing is written."""
    from support.bags import ROS2, write_bag

    if held == "other topic":
        msg = ROS2.types["std_msgs/msg/String"](data="x")
        bag = write_bag(tmp_path / "bag", "sqlite3", [("/chatter", "std_msgs/msg/String", T0, msg)])
        streams = "/chatter (other, 1 messages)"
    else:
        bag = write_bag(tmp_path / "bag", "mcap", [],
                        empty=(("/camera/image_raw", "sensor_msgs/msg/Image"),))
        streams = "/camera/image_raw (camera, 0 messages)"
    out = tmp_path / "out.mcap"
    assert main(["convert", str(bag), str(out)]) == 2
    assert capsys.readouterr().err == (
        f"drivingseg convert: error: {bag}: nothing to convert: no camera image or lidar scan "
        f"with messages (streams: {streams})\n")
    assert not out.exists()


def ctrl_c_in_bag_write(monkeypatch: pytest.MonkeyPatch, writer: Any, at_call: int) -> None:
    """Deliver a real SIGINT from inside rosbags' ``writer.write``, call ``at_call``."""
    real_write = writer.write
    calls = [0]

    def write(self: Any, connection: Any, timestamp: int, data: Any) -> None:
        calls[0] += 1
        if calls[0] == at_call:
            signal.raise_signal(signal.SIGINT)
        real_write(self, connection, timestamp, data)

    monkeypatch.setattr(writer, "write", write)


@pytest.mark.parametrize("name", ["drive.bag", "drive.db3", "drive_dir"])
def test_cli_writes_ros1_and_sqlite3_bags_and_finalises_them_on_ctrl_c(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], name: str,
) -> None:
    """``convert IN OUT.bag`` / ``OUT.db3`` / ``OUT_DIR`` used to be refused (MCAP only);
    a Ctrl-C finishes the current message and closes the bag readable, as for MCAP."""
    from rosbags.rosbag1 import Writer as Ros1Writer
    from rosbags.rosbag2 import Writer as Ros2Writer

    out = tmp_path / name
    written = tmp_path / "drive" if name == "drive.db3" else out
    kind = {"drive.bag": "ROS 1 bag", "drive.db3": "ROS 2 sqlite3 bag",
            "drive_dir": "ROS 2 sqlite3 bag folder"}[name]
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "1"]) == 0
    assert f"wrote 4 messages to {written} ({kind})" in capsys.readouterr().out
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "1"]) == 2
    assert f"output {str(written)!r} exists; pass --force" in capsys.readouterr().err
    writer = Ros1Writer if name == "drive.bag" else Ros2Writer
    ctrl_c_in_bag_write(monkeypatch, writer, at_call=5)  # tf, image 0, info 0, scan 0, image 1
    assert main(["convert", str(kitti_raw_drive), str(out), "--max-frames", "5",
                 "--force"]) == 130
    assert "interrupted" in capsys.readouterr().err
    with open_recording(written) as rec:
        assert len(list(rec.camera_frames())) == 2 and len(list(rec.lidar_scans())) == 1
        assert rec.rig() is not None


def test_cli_refuses_a_bag_folder_output_that_holds_the_input(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--force`` replaces a bag folder whole: one that holds the input is refused."""
    folder = tmp_path / "outer"
    assert main(["convert", str(kitti_raw_drive), str(folder), "--max-frames", "1"]) == 0
    capsys.readouterr()
    inner = folder / "outer.db3"
    assert main(["convert", str(inner), str(folder), "--force"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert inner.is_file() and (folder / "metadata.yaml").is_file()
