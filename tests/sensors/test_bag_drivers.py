"""Bags as real robots record them, written by rosbags in tmp_path: image_transport's raw and
compressed twins of one camera, ROS 2 bags compressed in file or message mode or split into
several files, ROS 1 bags with bz2 / lz4 chunks, and the clouds of Velodyne and Ouster
drivers; read, described by ``drivingseg info`` and converted by ``drivingseg convert``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
import zstandard
from rosbags.typesys.store import Typestore
from support.bags import ROS1, ROS2, Entry, header, tf_msg, write_bag

from drivingseg.calibration.types import RigidTransform
from drivingseg.cli import main
from drivingseg.errors import RecordingError
from drivingseg.sensors import open_recording
from drivingseg.sensors.bag import BagRecording

T0 = 1_700_000_000_000_000_000
STEP_NS = 100_000_000
N = 4
K9 = [500.0, 0.0, 4.0, 0.0, 500.0, 3.0, 0.0, 0.0, 1.0]
T_CAM_VELO = RigidTransform.from_rt(cv2.Rodrigues(np.array([1.2, -1.2, 1.2]))[0],
                                    [0.0, -0.08, -0.27], "velodyne", "camera_optical")
RNG = np.random.default_rng(5)
IMAGES = [RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8) for _ in range(N)]
# velodyne_pointcloud's PointXYZIRT: x y z intensity float32, ring uint16, time float32
VELODYNE = (22, [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7), ("ring", 16, 4),
                 ("time", 18, 7)])
# ouster-ros: 48-byte points with padding; t uint32, reflectivity/ring/ambient uint16
OUSTER = (48, [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 16, 7), ("t", 20, 6),
               ("reflectivity", 24, 4), ("ring", 26, 4), ("ambient", 28, 4), ("range", 32, 6)])
NUMPY = {2: "u1", 4: "u2", 6: "u4", 7: "f4"}


def cloud(ts: Typestore, k: int, layout: tuple[int, list[tuple[str, int, int]]],
          big_endian: bool = False, frame: str = "velodyne") -> tuple[Any, np.ndarray]:
    """An organized 2 x 3 cloud with a NaN point (no return), and its finite x y z i rows."""
    step, fields = layout
    order = ">" if big_endian else "<"
    dtype = np.dtype({"names": [f[0] for f in fields],
                      "formats": [order + NUMPY[f[2]] for f in fields],
                      "offsets": [f[1] for f in fields], "itemsize": step})
    rec = np.zeros(6, dtype=dtype)
    rec["x"] = np.arange(6) + 1.0 + k
    rec["y"] = -2.0
    rec["z"] = 0.5
    rec["x"][4] = np.nan
    rec["intensity"] = np.arange(6) * 10.0
    rec["ring"] = [0, 0, 0, 1, 1, 1]
    pf = ts.types["sensor_msgs/msg/PointField"]
    msg = ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, T0 + k * STEP_NS + 1_000, frame), height=2, width=3,
        fields=[pf(name=n, offset=o, datatype=d, count=1) for n, o, d in fields],
        is_bigendian=big_endian, point_step=step, row_step=3 * step,
        data=rec.view(np.uint8).reshape(-1), is_dense=False)
    want = np.stack([rec["x"], rec["y"], rec["z"], rec["intensity"]], axis=1).astype(np.float32)
    return msg, want[[0, 1, 2, 3, 5]]


def camera_entries(ts: Typestore, raw: str, *, compressed: bool) -> list[Entry]:
    """A camera driver with image_transport: ``raw`` (bgr8), its CameraInfo and, with
    ``compressed``, its JPEG twin on ``raw + '/compressed'``."""
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    mats = {"d": np.zeros(5), "k": np.array(K9), "r": np.eye(3).ravel(), "p": np.zeros(12)}
    if ts is ROS1:
        mats = {name.upper(): value for name, value in mats.items()}
    info_topic = raw.rsplit("/", 1)[0] + "/camera_info"
    out: list[Entry] = []
    for k in range(N):
        stamp = T0 + k * STEP_NS
        hdr = header(ts, stamp, "camera_optical")
        out.append((raw, "sensor_msgs/msg/Image", stamp + 10, ts.types["sensor_msgs/msg/Image"](
            header=hdr, height=6, width=8, encoding="bgr8", is_bigendian=0, step=24,
            data=IMAGES[k][:, :, ::-1].reshape(-1).copy())))
        out.append((info_topic, "sensor_msgs/msg/CameraInfo", stamp + 10,
                    ts.types["sensor_msgs/msg/CameraInfo"](
                        header=hdr, height=6, width=8, distortion_model="plumb_bob",
                        binning_x=0, binning_y=0, roi=roi, **mats)))
        if compressed:
            ok, buf = cv2.imencode(".jpg", IMAGES[k][:, :, ::-1])
            assert ok
            out.append((raw + "/compressed", "sensor_msgs/msg/CompressedImage", stamp + 20,
                        ts.types["sensor_msgs/msg/CompressedImage"](
                            header=hdr, format="bgr8; jpeg compressed bgr8",
                            data=buf.reshape(-1))))
    return out


def tf_static(ts: Typestore) -> Entry:
    return ("/tf_static", "tf2_msgs/msg/TFMessage", T0, tf_msg(ts, T0, [T_CAM_VELO]))


def drive_entries(ts: Typestore, layout: tuple[int, list[tuple[str, int, int]]] = VELODYNE,
                  *, compressed: bool = False, big_endian: bool = False
                  ) -> tuple[list[Entry], list[np.ndarray]]:
    entries = [*camera_entries(ts, "/camera/image_raw", compressed=compressed), tf_static(ts)]
    points = []
    for k in range(N):
        msg, want = cloud(ts, k, layout, big_endian)
        entries.append(("/velodyne_points", "sensor_msgs/msg/PointCloud2",
                        T0 + k * STEP_NS + 2_000, msg))
        points.append(want)
    return entries, points


def write_split(path: Path, entries: list[Entry]) -> Path:
    """A ROS 2 bag split in two .db3 files (``--max-bag-duration``), one metadata.yaml."""
    entries = sorted(entries, key=lambda e: e[2])
    half = T0 + 2 * STEP_NS
    parts = [write_bag(path.parent / f"part{i}", "sqlite3",
                       [e for e in entries if (e[2] >= half) == i])
             for i in (0, 1)]
    metas = [yaml.safe_load((p / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
             for p in parts]
    path.mkdir()
    for i, part in enumerate(parts):
        (part / f"part{i}.db3").rename(path / f"drive_{i}.db3")
    meta = metas[0]
    meta["relative_file_paths"] = ["drive_0.db3", "drive_1.db3"]
    meta["files"] = [{**m["files"][0], "path": f"drive_{i}.db3"} for i, m in enumerate(metas)]
    meta["message_count"] = sum(m["message_count"] for m in metas)
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    for t in metas[1]["topics_with_message_count"]:
        name = t["topic_metadata"]["name"]
        if name in topics:
            topics[name]["message_count"] += t["message_count"]
        else:
            topics[name] = t
    meta["topics_with_message_count"] = list(topics.values())
    meta["duration"]["nanoseconds"] = (metas[1]["starting_time"]["nanoseconds_since_epoch"]
                                       + metas[1]["duration"]["nanoseconds"]
                                       - meta["starting_time"]["nanoseconds_since_epoch"])
    (path / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": meta}))
    return path


def check_drive(path: Path, points: list[np.ndarray]) -> None:
    with open_recording(path) as bag:
        assert isinstance(bag, BagRecording)
        assert (bag.image_topic, bag.lidar_topic) == ("/camera/image_raw", "/velodyne_points")
        frames = list(bag.camera_frames())
        scans = list(bag.lidar_scans())
        rig = bag.rig()
    assert [f.stamp_ns for f in frames] == [T0 + k * STEP_NS for k in range(N)]
    for frame, image in zip(frames, IMAGES, strict=True):
        np.testing.assert_array_equal(frame.image, image)
    for scan, want in zip(scans, points, strict=True):
        np.testing.assert_array_equal(scan.points, want)
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap"])
def test_raw_and_compressed_twins_of_one_camera_choose_the_raw_one(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A camera recorded with image_transport ('rosbag record -a'): image_raw and
    image_raw/compressed made 'several camera topics', so frames, rig, info's rig line and
    convert all asked for --image-topic although both are one camera."""
    ts = ROS1 if kind == "ros1" else ROS2
    entries, points = drive_entries(ts, compressed=True)
    path = write_bag(tmp_path / ("drive.bag" if kind == "ros1" else "drive"), kind, entries)
    check_drive(path, points)
    assert main(["info", str(path)]) == 0
    assert "rig:       drive: camera camera_optical 8x6" in capsys.readouterr().out
    with BagRecording(path, image_topic="/camera/image_raw/compressed") as bag:
        assert len(list(bag.camera_frames())) == N
        assert bag.camera_info_topic == "/camera/camera_info"


def test_compressed_twins_of_two_cameras_stay_ambiguous(tmp_path: Path) -> None:
    entries, _ = drive_entries(ROS2, compressed=True)
    entries += camera_entries(ROS2, "/right/image_raw", compressed=True)
    with BagRecording(write_bag(tmp_path / "drive", "sqlite3", entries)) as bag:
        assert bag.image_topic is None and "camera" in bag.ambiguous_topics


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_file_compressed_ros2_bag_is_decompressed_once(
    tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'ros2 bag record --compression-mode file': rosbags decompresses the whole bag on
    every open, and the recording opened a reader per pass (info, rig, each stream): eight
    full decompressions, two at once, for one conversion."""
    import rosbags.rosbag2.reader as rosbag2_reader

    opened: list[object] = []
    original = rosbag2_reader.TemporaryDirectory

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(rosbag2_reader, "TemporaryDirectory", counting)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    entries, points = drive_entries(ROS2)
    path = write_bag(tmp_path / "drive", storage, entries, mode="file")
    assert [p.suffix for p in path.glob(f"*.{'db3' if storage == 'sqlite3' else 'mcap'}*")] == [
        ".zstd"]
    check_drive(path, points)
    out = tmp_path / "out.mcap"
    assert main(["convert", str(path), str(out)]) == 0
    assert opened == []
    assert list(scratch.iterdir()) == []  # the decompressed copy goes with the recording
    with open_recording(out) as converted:
        assert [s.count for s in converted.info().streams if s.kind != "tf"] == [N, N, N]


def test_a_damaged_file_compressed_bag_names_the_file(tmp_path: Path) -> None:
    entries, _ = drive_entries(ROS2)
    path = write_bag(tmp_path / "drive", "sqlite3", entries, mode="file")
    (packed,) = path.glob("*.zstd")
    packed.write_bytes(packed.read_bytes()[:40])
    with pytest.raises(RecordingError, match=rf"drive: cannot decompress '{packed.name}': "):
        open_recording(path)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_message_compressed_ros2_bags(tmp_path: Path, storage: str) -> None:
    entries, points = drive_entries(ROS2)
    check_drive(write_bag(tmp_path / "drive", storage, entries, mode="message"), points)


@pytest.mark.parametrize("compression", ["bz2", "lz4"])
def test_ros1_bags_with_compressed_chunks(tmp_path: Path, compression: str) -> None:
    entries, points = drive_entries(ROS1)
    check_drive(write_bag(tmp_path / "drive.bag", "ros1", entries, compression=compression), points)


def test_a_split_ros2_bag_reads_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, points = drive_entries(ROS2)
    path = write_split(tmp_path / "drive", entries)
    check_drive(path, points)
    assert main(["info", "--json", str(path)]) == 0
    counts = {s["name"]: s["count"] for s in json.loads(capsys.readouterr().out)["streams"]}
    assert counts["/camera/image_raw"] == N and counts["/velodyne_points"] == N


@pytest.mark.parametrize(("layout", "big_endian"), [(VELODYNE, False), (VELODYNE, True),
                                                      (OUSTER, False)])
def test_driver_point_layouts(tmp_path: Path, layout: tuple[int, list[tuple[str, int, int]]],
                              big_endian: bool) -> None:
    """Velodyne (22-byte XYZIRT, either byte order) and Ouster (48 bytes with padding)
    organized clouds with a no-return NaN point."""
    entries, points = drive_entries(ROS2, layout, compressed=False, big_endian=big_endian)
    check_drive(write_bag(tmp_path / "drive", "mcap", entries), points)


def test_convert_progress_counts_the_topics_it_converts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress total counted every camera topic of the bag (here an Ouster's range
    image beside the camera, which has the CameraInfo), so a finished conversion's bar
    stopped at 2/3."""
    import drivingseg.cli.cmd_convert as cmd_convert

    totals: list[int | None] = []

    def fake_progress(items: Iterable[Any], *, total: int | None = None,
                      **kwargs: Any) -> Iterable[Any]:
        totals.append(total)
        return items

    monkeypatch.setattr(cmd_convert, "progress", fake_progress)
    entries, _ = drive_entries(ROS2)
    for k in range(N):
        entries.append(("/ouster/range_image", "sensor_msgs/msg/Image", T0 + k * STEP_NS,
                        ROS2.types["sensor_msgs/msg/Image"](
                            header=header(ROS2, T0 + k * STEP_NS, "os_sensor"), height=2,
                            width=3, encoding="mono16", is_bigendian=0, step=6,
                            data=np.zeros(12, np.uint8))))
    path = write_bag(tmp_path / "drive", "sqlite3", entries)
    assert main(["convert", str(path), str(tmp_path / "out.mcap")]) == 0
    assert totals == [2 * N]


@pytest.mark.parametrize("compressed", [False, True])
def test_convert_keeps_the_bags_topic_names(tmp_path: Path, compressed: bool) -> None:
    """A converted bag's streams keep the bag's names (they were renamed /kitti/..., so
    launch files and tools written for the bag lost them); decoded images drop the
    ``/compressed`` suffix of the topic they came from."""
    entries, _ = drive_entries(ROS1, compressed=compressed)
    if compressed:  # the JPEG twin alone
        entries = [e for e in entries if e[0] != "/camera/image_raw"]
    path = write_bag(tmp_path / "drive.bag", "ros1", entries)
    out = tmp_path / "out.mcap"
    assert main(["convert", str(path), str(out)]) == 0
    with open_recording(out) as converted:
        counts = {s.name: s.count for s in converted.info().streams}
        assert counts == {"/camera/image_raw": N, "/camera/camera_info": N,
                          "/velodyne_points": N, "/tf_static": 1}
        assert converted.rig() is not None


def test_recordings_of_one_file_compressed_bag_share_its_decompressed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay opens the bag once per source (camera, lidar): each decompressed the whole
    bag into a folder of its own, twice the bag's uncompressed size on disk. The copy is
    shared and goes with the last recording holding it."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    entries, points = drive_entries(ROS2)
    path = write_bag(tmp_path / "drive", "sqlite3", entries, mode="file")
    with BagRecording(path) as camera, BagRecording(path) as lidar:
        assert len(list(scratch.iterdir())) == 1
        camera.close()
        assert len(list(scratch.iterdir())) == 1
        assert [s.points.shape[0] for s in lidar.lidar_scans()] == [len(p) for p in points]
        camera.open()
        camera.close()
        camera.close()  # a second close releases nothing more
        assert len(list(scratch.iterdir())) == 1
    assert list(scratch.iterdir()) == []
    (packed,) = path.glob("*.zstd")  # the bag recorded again in place: unpacked again
    packed.write_bytes(zstandard.ZstdCompressor().compress(b"not a database" * 100))
    with pytest.raises(RecordingError, match=r"drive: cannot read bag: "):
        open_recording(path)
    assert list(scratch.iterdir()) == []  # a refused bag leaves no copy behind


OUSTER_IMAGES = ("/ouster/nearir_image", "/ouster/range_image", "/ouster/reflec_image",
                 "/ouster/signal_image")


def ouster_entries(ts: Typestore, image_frame: str) -> list[Entry]:
    """ouster-ros: /ouster/points (frame os_sensor) and its four mono16 images, 2 x 3 like
    the cloud, in ``image_frame`` (os_sensor; ROS 1 drivers may write '/os_sensor')."""
    entries: list[Entry] = []
    for k in range(N):
        stamp = T0 + k * STEP_NS + 1_000
        entries.append(("/ouster/points", "sensor_msgs/msg/PointCloud2", stamp + 100,
                        cloud(ts, k, OUSTER, frame="os_sensor")[0]))
        for topic in OUSTER_IMAGES:
            pixels = RNG.integers(0, 65536, size=6, dtype=np.uint16)
            entries.append((topic, "sensor_msgs/msg/Image", stamp + 200,
                            ts.types["sensor_msgs/msg/Image"](
                                header=header(ts, stamp, image_frame), height=2, width=3,
                                encoding="mono16", is_bigendian=0, step=6,
                                data=pixels.view(np.uint8).copy())))
    return entries


@pytest.mark.parametrize(("kind", "image_frame"), [("ros1", "/os_sensor"),
                                                   ("sqlite3", "os_sensor"),
                                                   ("mcap", "os_sensor")])
def test_an_ouster_only_bag_reads_as_lidar_only(
    tmp_path: Path, kind: str, image_frame: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """ouster-ros's range, signal, reflectivity and near-IR images are in the lidar's frame:
    they made 'several camera topics', so info, convert and the rig refused an Ouster-only
    bag. They are the lidar's images: listed by info as such, never chosen as the camera."""
    ts = ROS1 if kind == "ros1" else ROS2
    path = write_bag(tmp_path / ("os.bag" if kind == "ros1" else "os"), kind,
                     ouster_entries(ts, image_frame))
    with open_recording(path) as bag:
        assert isinstance(bag, BagRecording)
        assert (bag.image_topic, bag.lidar_topic) == (None, "/ouster/points")
        assert bag.ambiguous_topics == {}
        assert bag.rig() is None
        assert len(list(bag.lidar_scans())) == N and list(bag.camera_frames()) == []
        with pytest.raises(RecordingError, match=r"no camera in the bag: its image topics "
                                                 r"\['/ouster/nearir_image', .*lidar's own"):
            bag.require_camera()
    assert main(["info", "--json", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rig"] == "none (no CameraInfo topic)"
    kinds = {s["name"]: (s["kind"], s["count"]) for s in shown["streams"]}
    assert kinds == {"/ouster/points": ("lidar", N),
                     **{topic: ("lidar_image", N) for topic in OUSTER_IMAGES}}
    out = tmp_path / "out.mcap"
    assert main(["convert", str(path), str(out)]) == 0
    with open_recording(out) as converted:
        assert {s.name: s.count for s in converted.info().streams} == {"/ouster/points": N}
    with BagRecording(path, image_topic="/ouster/signal_image") as bag:  # named: read
        assert [f.image.shape for f in bag.camera_frames()] == [(2, 3, 3)] * N


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap"])
def test_a_camera_without_camera_info_beside_ouster_images_is_chosen(
    tmp_path: Path, kind: str
) -> None:
    """One camera recorded without its CameraInfo beside an Ouster: five image topics and
    no CameraInfo to tell the camera, so none was chosen."""
    ts = ROS1 if kind == "ros1" else ROS2
    camera = [e for e in camera_entries(ts, "/camera/image_raw", compressed=False)
              if e[0] == "/camera/image_raw"]
    path = write_bag(tmp_path / ("drive.bag" if kind == "ros1" else "drive"), kind,
                     camera + ouster_entries(ts, "os_sensor"))
    with open_recording(path) as bag:
        assert (bag.image_topic, bag.lidar_topic) == ("/camera/image_raw", "/ouster/points")
        assert bag.ambiguous_topics == {}
        bag.require_camera()
        for frame, image in zip(bag.camera_frames(), IMAGES, strict=True):
            np.testing.assert_array_equal(frame.image, image)
        kinds = {s.name: s.kind for s in bag.info().streams}
    assert kinds["/camera/image_raw"] == "camera" and kinds["/ouster/range_image"] == "lidar_image"
    out = tmp_path / "out.mcap"
    assert main(["convert", str(path), str(out)]) == 0
    with open_recording(out) as converted:
        assert {s.name: s.count for s in converted.info().streams} == {
            "/camera/image_raw": N, "/ouster/points": N}
