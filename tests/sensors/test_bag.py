"""BagRecording on ROS 1 bags, ROS 2 sqlite3 / MCAP bags and single files, built in tmp_path."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from mcap.writer import Writer as McapWriter
from rosbags.rosbag1 import Writer as Writer1
from rosbags.typesys.store import Typestore
from support.bags import ROS1, ROS2, Entry, header, tf_msg, write_bag

from drivingseg.calibration.types import RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.open import detect_format, open_recording

RNG = np.random.default_rng(3)
IMAGES = [RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8) for _ in range(3)]
T0 = 1_600_000_000_000_000_000
CAM_NS = [T0 + k * 100_000_000 for k in range(3)]
LIDAR_NS = [T0 + k * 100_000_000 + 20_000_000 for k in range(3)]
LOG_DELAY = 5_000_000  # log (receive) time is 5 ms after the header stamp
XYZI = np.array([[1.0, 2.0, 3.0, 10.0], [np.nan, 0.0, 0.0, 5.0], [-4.5, 5.25, 6.0, 20.0]])
K9 = [700.0, 0.0, 4.0, 0.0, 700.0, 3.0, 0.0, 0.0, 1.0]
# base_link -> camera and base_link -> velo; expected T_cam_velo = inv(T_base_cam) @ T_base_velo
R_BASE_CAM, _ = cv2.Rodrigues(np.array([0.3, -1.2, 0.4]))
T_BASE_CAM = RigidTransform.from_rt(R_BASE_CAM, [0.2, 0.0, 1.5], "cam_optical", "base_link")
T_BASE_VELO = RigidTransform.from_rt(np.eye(3), [0.0, 0.1, 1.8], "velo", "base_link")
T_CAM_VELO = T_BASE_CAM.inverse().compose(T_BASE_VELO)


def image_msg(ts: Typestore, k: int) -> Any:
    """Frame ``k`` as bgr8 with 5 bytes of row padding."""
    rows = IMAGES[k][:, :, ::-1].reshape(6, -1)
    data = np.concatenate([rows, np.full((6, 5), 7, np.uint8)], axis=1)
    return ts.types["sensor_msgs/msg/Image"](
        header=header(ts, CAM_NS[k], "cam_optical"), height=6, width=8, encoding="bgr8",
        is_bigendian=0, step=29, data=data.reshape(-1),
    )


def compressed_msg(ts: Typestore, k: int, ext: str) -> Any:
    ok, buf = cv2.imencode(ext, IMAGES[k][:, :, ::-1])
    assert ok
    return ts.types["sensor_msgs/msg/CompressedImage"](
        header=header(ts, CAM_NS[k], "cam_optical"), format=ext[1:], data=buf.reshape(-1)
    )


def cloud_msg(ts: Typestore, k: int, fields: tuple[str, ...] = ("x", "y", "z")) -> Any:
    """z, float64 x, padding, y, intensity: an unusual layout with a NaN point."""
    layout = {"z": (0, "<f4", 7), "x": (8, "<f8", 8), "y": (20, "<f4", 7),
              "intensity": (24, "<f4", 7)}
    names = [*fields, "intensity"]
    dtype = np.dtype({"names": names, "formats": [layout[n][1] for n in names],
                      "offsets": [layout[n][0] for n in names], "itemsize": 32})
    rec = np.zeros(3, dtype=dtype)
    for col, name in enumerate(("x", "y", "z", "intensity")):
        if name in names:
            rec[name] = XYZI[:, col] + k
    pf = ts.types["sensor_msgs/msg/PointField"]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, LIDAR_NS[k], "velo"), height=1, width=3,
        fields=[pf(name=n, offset=layout[n][0], datatype=layout[n][2], count=1) for n in names],
        is_bigendian=False, point_step=32, row_step=96, data=rec.view(np.uint8).reshape(-1),
        is_dense=False,
    )


def info_msg(ts: Typestore, k: int) -> Any:
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    mats = {"d": np.zeros(5), "k": np.array(K9), "r": np.eye(3).ravel(), "p": np.zeros(12)}
    if ts is ROS1:
        mats = {n.upper(): v for n, v in mats.items()}
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=header(ts, CAM_NS[k], "cam_optical"), height=6, width=8,
        distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi, **mats,
    )


def standard_entries(ts: Typestore) -> list[Entry]:
    out: list[Entry] = [("/tf_static", "tf2_msgs/msg/TFMessage", T0,
                         tf_msg(ts, T0, [T_BASE_CAM, T_BASE_VELO]))]
    for k in range(3):
        out.append(("/cam/image_rect", "sensor_msgs/msg/Image", CAM_NS[k] + LOG_DELAY,
                    image_msg(ts, k)))
        out.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", CAM_NS[k] + LOG_DELAY,
                    info_msg(ts, k)))
        out.append(("/velo/points", "sensor_msgs/msg/PointCloud2", LIDAR_NS[k] + LOG_DELAY,
                    cloud_msg(ts, k)))
    for k in range(2):
        out.append(("/chatter", "std_msgs/msg/String", T0 + 7 + k,
                    ts.types["std_msgs/msg/String"](data=f"hello {k}")))
    return out


@pytest.fixture(params=["ros1", "sqlite3", "mcap", "db3_file", "mcap_file"])
def standard_bag(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_standard_bag(request.param, tmp_path)


def make_standard_bag(kind: str, tmp_path: Path) -> Path:
    """The standard entries as a ROS 1 bag, a ROS 2 folder or its single storage file."""
    if kind == "ros1":
        return write_bag(tmp_path / "drive.bag", "ros1", standard_entries(ROS1))
    storage = "mcap" if kind.startswith("mcap") else "sqlite3"
    folder = write_bag(tmp_path / "drive", storage, standard_entries(ROS2))
    if kind.endswith("_file"):
        (single,) = folder.glob("*.mcap" if storage == "mcap" else "*.db3")
        return single
    return folder


def expected_points(k: int) -> np.ndarray:
    return (XYZI[[0, 2]] + k).astype(np.float32)


def test_reads_frames_scans_info_and_rig(standard_bag: Path) -> None:
    with BagRecording(standard_bag) as bag:
        assert (bag.image_topic, bag.lidar_topic, bag.camera_info_topic) == (
            "/cam/image_rect", "/velo/points", "/cam/camera_info")
        frames = list(bag.camera_frames())
        assert [f.stamp_ns for f in frames] == CAM_NS
        assert [f.index for f in frames] == [0, 1, 2]
        for f, img in zip(frames, IMAGES, strict=True):
            np.testing.assert_array_equal(f.image, img)
            assert f.frame_id == "cam_optical"
        scans = list(bag.lidar_scans())
        assert [s.stamp_ns for s in scans] == LIDAR_NS
        for k, s in enumerate(scans):
            np.testing.assert_array_equal(s.points, expected_points(k))
            assert s.frame_id == "velo"
        merged = list(bag.messages())
        assert [m.stamp_ns for m in merged] == sorted(CAM_NS + LIDAR_NS)
        assert isinstance(merged[0], CameraFrame) and isinstance(merged[1], LidarScan)

        streams = {s.name: s for s in bag.info().streams}
        assert set(streams) == {"/tf_static", "/cam/image_rect", "/cam/camera_info",
                                "/velo/points", "/chatter"}
        kinds = {n: (s.kind, s.count) for n, s in streams.items()}
        assert kinds == {"/tf_static": ("tf", 1), "/cam/image_rect": ("camera", 3),
                         "/cam/camera_info": ("camera_info", 3), "/velo/points": ("lidar", 3),
                         "/chatter": ("other", 2)}
        cam = streams["/cam/image_rect"]
        assert (cam.first_ns, cam.last_ns) == (CAM_NS[0], CAM_NS[-1])  # header stamps
        assert cam.msgtype == "sensor_msgs/msg/Image"
        assert (streams["/chatter"].first_ns, streams["/chatter"].last_ns) == (T0 + 7, T0 + 8)

        rig = bag.rig()
        assert rig is not None
        assert (rig.camera_frame, rig.lidar_frame) == ("cam_optical", "velo")
        assert rig.camera.image_rectified
        np.testing.assert_array_equal(rig.camera.K.ravel(), K9)
        np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


def test_receive_stamps_are_each_messages_log_time(standard_bag: Path) -> None:
    """A bag whose lidar stamps by its own oscillator (ouster-ros by default) could only be
    read by its header stamps, decades from the camera's: ``stamps="receive"`` stamps every
    message by its record time, the one clock of the recorder."""
    with BagRecording(standard_bag, stamps="receive") as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == [t + LOG_DELAY for t in CAM_NS]
        assert [s.stamp_ns for s in bag.lidar_scans()] == [t + LOG_DELAY for t in LIDAR_NS]
        lidar = next(s for s in bag.info().streams if s.name == "/velo/points")
        assert (lidar.first_ns, lidar.last_ns) == (LIDAR_NS[0] + LOG_DELAY,
                                                   LIDAR_NS[-1] + LOG_DELAY)
        rig = bag.frame_rig(2)  # the CameraInfo in force at a receive-stamped frame
        assert rig is not None and rig.lidar_frame == "velo"
    with BagRecording(standard_bag) as bag:  # chosen after the header stamps were read
        camera = next(s for s in bag.info().streams if s.name == "/cam/image_rect")
        assert camera.first_ns == CAM_NS[0]
        bag.use_stamps("receive")
        camera = next(s for s in bag.info().streams if s.name == "/cam/image_rect")
        assert camera.first_ns == CAM_NS[0] + LOG_DELAY
        assert next(iter(bag.camera_frames())).stamp_ns == CAM_NS[0] + LOG_DELAY


def test_unknown_stamps_are_refused(tmp_path: Path) -> None:
    path = make_standard_bag("mcap_file", tmp_path)
    with pytest.raises(RecordingError, match=rf"{path}: stamps 'log' is not one of header, "
                                             "receive"):
        BagRecording(path, stamps="log")


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_images(tmp_path: Path, ext: str) -> None:
    entries: list[Entry] = [
        ("/cam/compressed", "sensor_msgs/msg/CompressedImage", CAM_NS[k],
         compressed_msg(ROS2, k, ext)) for k in range(3)
    ]
    bag_path = write_bag(tmp_path / "c", "sqlite3", entries)
    with BagRecording(bag_path) as bag:
        frames = list(bag.camera_frames())
        assert bag.rig() is None and list(bag.lidar_scans()) == []
    assert len(frames) == 3
    for k, f in enumerate(frames):
        if ext == ".png":
            np.testing.assert_array_equal(f.image, IMAGES[k])
        else:  # random pixels suffer in JPEG: compare with OpenCV's decoding of the bytes
            data = np.asarray(entries[k][3].data)  # type: ignore[attr-defined]
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
            assert decoded is not None
            want = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(f.image, want)
            assert np.abs(f.image.astype(int) - IMAGES[k].astype(int)).mean() < 60


def test_no_rig_without_tf_chain(tmp_path: Path) -> None:
    entries = [e for e in standard_entries(ROS2) if e[0] != "/tf_static"]
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0, tf_msg(ROS2, T0, [T_BASE_CAM])))
    with BagRecording(write_bag(tmp_path / "b", "sqlite3", entries)) as bag:
        assert bag.rig() is None


def test_tf_frames_match_without_leading_slash(tmp_path: Path) -> None:
    """tf2 strips a leading '/' from frame names; a ROS 1 tree of '/base_link', '/velo'
    and '/cam_optical' links the headers' 'velo' and 'cam_optical'."""
    slashed = [RigidTransform(T.matrix, "/" + T.source_frame, "/" + T.target_frame)
               for T in (T_BASE_CAM, T_BASE_VELO)]
    entries = [e for e in standard_entries(ROS1) if e[0] != "/tf_static"]
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0, tf_msg(ROS1, T0, slashed)))
    with BagRecording(write_bag(tmp_path / "b.bag", "ros1", entries)) as bag:
        rig = bag.rig()
    assert rig is not None
    assert (rig.camera_frame, rig.lidar_frame) == ("cam_optical", "velo")
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_a_namespaced_robots_tf_topics_make_the_rig(tmp_path: Path, kind: str) -> None:
    """A robot run in a namespace records /robot1/tf_static (and /robot1/tf): they were
    not read, so the bag had 'no chain cam_optical <- velo in /tf_static' and no rig. Of
    two robots' trees, the one of the sensors' namespace is used."""
    ts = ROS1 if kind == "ros1" else ROS2
    moved = RigidTransform.from_rt(np.eye(3), [5.0, 0.1, 1.8], "velo", "base_link")
    entries = [(f"/robot1{e[0]}", *e[1:]) for e in standard_entries(ts)]
    entries.append(("/robot2/tf_static", "tf2_msgs/msg/TFMessage", T0,
                    tf_msg(ts, T0, [T_BASE_CAM, moved])))
    path = tmp_path / ("b.bag" if kind == "ros1" else "b")
    with BagRecording(write_bag(path, kind, entries)) as bag:
        assert bag.image_topic == "/robot1/cam/image_rect"
        rig = bag.rig()
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)
    lone = [(e[0].replace("/robot1/tf", "/vehicle/tf") if "tf" in e[0] else e[0][7:], *e[1:])
            for e in entries if e[0] != "/robot2/tf_static"]  # /cam/..., /vehicle/tf_static
    with BagRecording(write_bag(tmp_path / ("c.bag" if kind == "ros1" else "c"), kind,
                                lone)) as bag:
        assert bag.image_topic == "/cam/image_rect"
        rig = bag.rig()
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


def test_latest_static_transform_of_a_frame_wins(tmp_path: Path) -> None:
    """A frame re-published on /tf_static (a corrected calibration) replaces its earlier
    transform, as in tf2."""
    stale = RigidTransform.from_rt(np.eye(3), [5.0, 5.0, 5.0], "velo", "base_link")
    entries = [e for e in standard_entries(ROS2) if e[0] != "/tf_static"]
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 2,
                    tf_msg(ROS2, T0, [T_BASE_CAM, stale])))
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1,
                    tf_msg(ROS2, T0, [T_BASE_VELO])))
    with BagRecording(write_bag(tmp_path / "b", "sqlite3", entries)) as bag:
        rig = bag.rig()
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


@pytest.mark.parametrize("kind", ["ros1", "sqlite3"])
def test_uncalibrated_camera_info_gives_no_rig(tmp_path: Path, kind: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Drivers without a calibration file publish an all-zero K: the bag has no rig (and
    'info', 'convert' and replay go on without one) instead of refusing the whole bag."""
    ts = ROS1 if kind == "ros1" else ROS2
    entries = standard_entries(ts)
    for topic, _, _, msg in entries:
        if topic == "/cam/camera_info":
            getattr(msg, "K" if kind == "ros1" else "k")[:] = 0
    path = write_bag(tmp_path / ("b.bag" if kind == "ros1" else "b"), kind, entries)
    with BagRecording(path) as bag:
        assert bag.rig() is None
        assert len(list(bag.camera_frames())) == 3
    assert "all-zero K (uncalibrated camera), so no rig" in caplog.text


def test_requested_topic_absent_lists_topics(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "b.bag", "ros1", standard_entries(ROS1))
    match = (r"b\.bag: camera topic '/nope' is not in the bag; topics: .*"
             r"/velo/points \(sensor_msgs/msg/PointCloud2\)")
    with pytest.raises(RecordingError, match=match), BagRecording(path, image_topic="/nope"):
        pass
    with (pytest.raises(RecordingError, match=r"'/chatter' carries 'std_msgs/msg/String'"),
          BagRecording(path, lidar_topic="/chatter")):
        pass


def test_the_one_image_topic_with_a_camera_info_beside_it_is_chosen(tmp_path: Path) -> None:
    """A recorder's masks.mcap holds the camera image and the masks (also images): 'several
    camera topics' made every reader ask for --image-topic, although only the camera has
    a CameraInfo in its namespace (as ROS camera drivers publish it)."""
    entries = standard_entries(ROS2)
    for topic in ("/segmentation/mask", "/segmentation/overlay/compressed"):
        entries.append((topic, "sensor_msgs/msg/Image", CAM_NS[0], image_msg(ROS2, 0)))
    path = write_bag(tmp_path / "b", "mcap", entries)
    with BagRecording(path) as bag:
        assert bag.image_topic == "/cam/image_rect" and bag.ambiguous_topics == {}
        assert bag.camera_info_topic == "/cam/camera_info" and bag.rig() is not None
        assert len(list(bag.camera_frames())) == 3


def test_a_compressed_depth_topic_is_no_camera(tmp_path: Path) -> None:
    """An RGB-D camera's bag: the colour image and image_transport's compressedDepth, both
    CompressedImage topics, made 'several camera topics' (and the depth one, if chosen,
    failed to decode as a picture)."""
    entries = standard_entries(ROS2)
    depth = "/cam/depth/image_raw/compressedDepth"
    entries.append((depth, "sensor_msgs/msg/CompressedImage", CAM_NS[0],
                    ROS2.types["sensor_msgs/msg/CompressedImage"](
                        header=header(ROS2, CAM_NS[0], "cam_optical"),
                        format="16UC1; compressedDepth png", data=np.zeros(16, np.uint8))))
    path = write_bag(tmp_path / "b", "mcap", entries)
    with BagRecording(path) as bag:
        assert bag.image_topic == "/cam/image_rect" and bag.ambiguous_topics == {}
        assert {s.name: s.kind for s in bag.info().streams}[depth] == "depth"
    with (pytest.raises(RecordingError, match=r"carries 'sensor_msgs/msg/CompressedImage', "
                                              r"a depth image \(compressedDepth\)"),
          BagRecording(path, image_topic=depth)):
        pass


def test_several_camera_topics_must_be_chosen(tmp_path: Path) -> None:
    entries = standard_entries(ROS2)
    entries.append(("/cam2/image", "sensor_msgs/msg/Image", CAM_NS[0], image_msg(ROS2, 0)))
    entries.append(("/cam2/camera_info", "sensor_msgs/msg/CameraInfo", CAM_NS[0],
                    info_msg(ROS2, 0)))
    path = write_bag(tmp_path / "b", "mcap", entries)
    match = (r"several camera topics.*choose one with --image-topic "
             r"\(a launch file's image_topic:=\)")
    with BagRecording(path) as bag:
        assert {"/cam/image_rect", "/cam2/image"} <= {s.name for s in bag.info().streams}
        assert set(bag.ambiguous_topics) == {"camera", "camera_info"}
        with pytest.raises(RecordingError, match=match):
            list(bag.camera_frames())
        with pytest.raises(RecordingError, match=match):
            bag.rig()
        with pytest.raises(RecordingError, match=match):
            bag.require_camera()
    with BagRecording(path, image_topic="/cam2/image") as bag:
        bag.require_camera()
        assert len(list(bag.camera_frames())) == 1
        assert bag.camera_info_topic == "/cam2/camera_info"


def test_bag_without_an_image_topic_is_refused_where_a_camera_is_needed(tmp_path: Path
                                                                        ) -> None:
    entries = [e for e in standard_entries(ROS2) if e[1] != "sensor_msgs/msg/Image"]
    path = write_bag(tmp_path / "b", "mcap", entries)
    with BagRecording(path) as bag:
        assert bag.image_topic is None
        assert list(bag.camera_frames()) == []
        match = r"b: no image topic in the bag; topics: .*/velo/points"
        with pytest.raises(RecordingError, match=match):
            bag.require_camera()


def test_pointcloud_without_x_names_bag_and_topic(tmp_path: Path) -> None:
    entries: list[Entry] = [("/velo/points", "sensor_msgs/msg/PointCloud2", LIDAR_NS[0],
                             cloud_msg(ROS2, 0, fields=("y", "z")))]
    path = write_bag(tmp_path / "b", "sqlite3", entries)
    with (BagRecording(path) as bag,
          pytest.raises(RecordingError, match=r"b:/velo/points: PointCloud2 has no x field")):
        list(bag.lidar_scans())


def test_unsupported_encoding_in_bag(tmp_path: Path) -> None:
    msg = image_msg(ROS2, 0)
    msg.encoding = "nv21"
    path = write_bag(tmp_path / "b", "sqlite3", [("/cam", "sensor_msgs/msg/Image", T0, msg)])
    with (BagRecording(path) as bag,
          pytest.raises(RecordingError, match=r"unsupported image encoding 'nv21'")):
        list(bag.camera_frames())


@pytest.mark.parametrize("name", ["bad.bag", "bad.db3", "bad.mcap"])
def test_corrupt_files_name_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a bag at all" * 10)
    with pytest.raises(RecordingError, match=rf"{name}: cannot read bag"), BagRecording(path):
        pass


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="bag not found"), BagRecording(tmp_path / "x.bag"):
        pass
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(RecordingError, match=r"unsupported file type '\.txt'"):
        BagRecording(tmp_path / "x.txt").open()
    with pytest.raises(RecordingError, match=r"no metadata\.yaml"), BagRecording(tmp_path):
        pass
    bag = BagRecording(tmp_path / "x.bag")
    with pytest.raises(RecordingError, match="not open"):
        next(bag.camera_frames())


def test_mcap_without_summary_reads_complete_chunks(tmp_path: Path) -> None:
    """A writer killed mid-file leaves no summary: complete chunks stay readable."""
    out = tmp_path / "live.mcap"
    killed = tmp_path / "killed.mcap"
    sizes = []
    with Ros2McapWriter(out, chunk_size_bytes=1) as w:
        for k in range(3):
            w.write_image("/cam", CameraFrame(CAM_NS[k], IMAGES[k], frame_id="cam"))
            sizes.append(out.stat().st_size)
        shutil.copyfile(out, killed)  # what a SIGKILL now would leave on disk
    with BagRecording(killed) as bag:
        frames = list(bag.camera_frames())
        assert [s.count for s in bag.info().streams] == [3]
    assert [f.stamp_ns for f in frames] == CAM_NS
    np.testing.assert_array_equal(frames[2].image, IMAGES[2])
    # Cut into the last chunk: the first two frames remain.
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(killed.read_bytes()[: (sizes[1] + sizes[2]) // 2])
    with BagRecording(cut) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS[:2]
    # The folder a killed ros2 bag record leaves: its .mcap, no metadata.yaml (written on a
    # clean close only); it opens by folder, as the format detection and replay take it.
    folder = tmp_path / "rosbag2_killed"
    folder.mkdir()
    shutil.copyfile(killed, folder / "rosbag2_killed_0.mcap")
    assert detect_format(folder) == "rosbag"
    with open_recording(folder) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS
    shutil.copyfile(killed, folder / "rosbag2_killed_1.mcap")
    with pytest.raises(RecordingError, match=r"rosbag2_killed: folder has no metadata\.yaml; .* "
                                             r"holds \['rosbag2_killed_0\.mcap', "
                                             r"'rosbag2_killed_1\.mcap'\]"):
        BagRecording(folder).open()


def _read_everything(path: Path) -> None:
    with BagRecording(path) as bag:
        bag.info()
        list(bag.camera_frames())
        list(bag.lidar_scans())
        bag.rig()


@pytest.mark.parametrize("kind", ["ros1", "db3_file", "mcap_file"])
def test_damaged_bytes_anywhere_give_a_recording_error(tmp_path: Path, kind: str) -> None:
    """Eight garbled bytes at 40 places, and the file cut at ten lengths: each read either
    works or fails with a RecordingError naming the file, never a raw exception (rosbags
    lets UnicodeDecodeError, struct.error, OverflowError, MemoryError and apsw's errors
    through)."""
    (tmp_path / "clean").mkdir()
    bag = make_standard_bag(kind, tmp_path / "clean")
    data = bag.read_bytes()
    damaged = tmp_path / f"damaged{bag.suffix}"
    refused = 0
    variants = [data[:at] + b"\xff\x00\x13\x37" * 2 + data[at + 8:]
                for at in np.linspace(0, len(data) - 8, 40).astype(int)]
    variants += [data[:n] for n in np.linspace(len(data) // 10, len(data) - 1, 10).astype(int)]
    for variant in variants:
        damaged.write_bytes(variant)
        try:
            _read_everything(damaged)
        except RecordingError as exc:
            assert str(exc).startswith(str(damaged)), exc
            refused += 1
    # the damage is real: most cuts and a header hit are refused (a cut ROS 1 bag is read
    # up to the cut, as one without index)
    assert refused >= (5 if kind == "ros1" else 10)


def _open_fds_to(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("no /proc/self/fd on this system to count open files")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(str(fd.readlink()))
        except OSError:  # the listing's own descriptor, gone by now
            continue
    return [link for link in links if link.startswith(str(path))]


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap_file"])
def test_closing_the_recording_ends_its_iterators(tmp_path: Path, kind: str) -> None:
    """An iterator started inside ``with`` neither keeps the file open after the block
    nor serves more frames: its next ``next`` says the recording is closed."""
    path = make_standard_bag(kind, tmp_path)
    with BagRecording(path) as bag:
        frames, scans = bag.camera_frames(), bag.lidar_scans()
        next(frames), next(scans)
        assert _open_fds_to(path)
    assert _open_fds_to(path) == []
    for it in (frames, scans):
        with pytest.raises(RecordingError, match=r"not open"):
            next(it)


def test_mcap_cut_before_its_first_message_is_refused(tmp_path: Path) -> None:
    """A file with a header and schemas but no complete message is damage, not an empty
    recording."""
    out = tmp_path / "live.mcap"
    # Uncompressed, so that the first image's pixels can be found in the bytes.
    with Ros2McapWriter(out, chunk_size_bytes=1, compression="none") as w:
        for k in range(3):
            w.write_image("/cam", CameraFrame(CAM_NS[k], IMAGES[k], frame_id="cam"))
    data = out.read_bytes()
    first_pixels = data.find(IMAGES[0].tobytes())  # inside the first message record
    assert first_pixels > 0
    for size in (first_pixels // 2, first_pixels + 1):
        cut = tmp_path / f"cut{size}.mcap"
        cut.write_bytes(data[:size])
        with pytest.raises(RecordingError, match=rf"cut{size}\.mcap: cannot read bag: .*as an "
                           r"MCAP stream, no complete message before the damage at record \d"):
            BagRecording(cut).open()


def test_bag_folder_with_a_cut_mcap_reads_its_complete_chunks(tmp_path: Path) -> None:
    """An interrupted ``ros2 bag record`` leaves a folder whose one .mcap has no summary:
    read the complete chunks as for the file alone."""
    folder = write_bag(tmp_path / "drive", "mcap", standard_entries(ROS2))
    (single,) = folder.glob("*.mcap")
    with BagRecording(single) as bag:
        stamps = [f.stamp_ns for f in bag.camera_frames()]
    data = single.read_bytes()
    single.write_bytes(data[: int(len(data) * 0.9)])
    with BagRecording(single) as bag:
        cut_stamps = [f.stamp_ns for f in bag.camera_frames()]
    assert len(cut_stamps) > 0 and cut_stamps == stamps[: len(cut_stamps)]
    with BagRecording(folder) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == cut_stamps


def _killed_mcap(tmp_path: Path, compression: str) -> tuple[Path, list[int]]:
    """The three IMAGES as a Ros2McapWriter file without summary, one chunk per frame, and
    the file size after each frame (chunk k ends at sizes[k])."""
    out = tmp_path / f"live_{compression}.mcap"
    killed = tmp_path / f"killed_{compression}.mcap"
    sizes = []
    with Ros2McapWriter(out, chunk_size_bytes=1, compression=compression) as w:
        for k in range(3):
            w.write_image("/cam", CameraFrame(CAM_NS[k], IMAGES[k], frame_id="cam"))
            sizes.append(out.stat().st_size)
        shutil.copyfile(out, killed)
    return killed, sizes


@pytest.mark.parametrize(("compression", "decompressor_error"),
                         [("none", None), ("zstd", "ZstdError"), ("lz4", "RuntimeError")])
def test_stream_fallback_stops_at_a_damaged_chunk(
        tmp_path: Path, compression: str, decompressor_error: str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    """Garbled bytes anywhere in the second chunk of an MCAP without summary: its CRC or
    its decompressor rejects it, so reading stops there with a warning and no frame comes
    back with altered pixels (nor a decompressor's own exception)."""
    killed, sizes = _killed_mcap(tmp_path, compression)
    data = killed.read_bytes()
    damaged = tmp_path / "damaged.mcap"
    logs = []
    for at in range(sizes[0], sizes[1] - 8, 4):
        damaged.write_bytes(data[:at] + b"\xff\x00\x13\x37" * 2 + data[at + 8:])
        caplog.clear()
        with BagRecording(damaged) as bag:
            frames = list(bag.camera_frames())
        assert [f.stamp_ns for f in frames] == CAM_NS[: len(frames)]
        for f in frames:
            np.testing.assert_array_equal(f.image, IMAGES[f.index])
        if len(frames) < 3:
            assert "MCAP file ends early or is damaged after" in caplog.text
        logs.append(caplog.text)
    logged = "".join(logs)
    assert "CRCValidationError" in logged
    if decompressor_error is not None:
        assert f"({decompressor_error}(" in logged


def test_damaged_lz4_ros1_bag_gives_a_recording_error(tmp_path: Path) -> None:
    """``rosbag record --lz4``: garbled bytes in a compressed chunk make lz4 raise a bare
    RuntimeError, which must come out as a RecordingError naming the file."""
    clean = tmp_path / "clean.bag"
    writer = Writer1(clean)
    writer.set_compression(Writer1.CompressionFormat.LZ4)
    writer.chunk_threshold = 200  # several chunks
    with writer:
        conns = {}
        for topic, msgtype, t, msg in sorted(standard_entries(ROS1), key=lambda e: e[2]):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ROS1)
            writer.write(conns[topic], t, ROS1.serialize_ros1(msg, msgtype))
    data = clean.read_bytes()
    damaged = tmp_path / "damaged.bag"
    refusals = []
    for at in np.linspace(len(data) * 0.05, len(data) * 0.7, 30).astype(int):
        damaged.write_bytes(data[:at] + b"\xff\x00\x13\x37" * 2 + data[at + 8:])
        try:
            _read_everything(damaged)
        except RecordingError as exc:
            assert str(exc).startswith(str(damaged)), exc
            refusals.append(str(exc))
    assert any("LZ4F" in message for message in refusals)  # lz4's own error was hit


def _write_mcap(path: Path, profile: str,
                channels: list[tuple[str, str, str, bytes, str, list[bytes]]]) -> Path:
    """An MCAP file with summary; ``channels`` are (topic, schema name, schema encoding,
    schema text, message encoding, messages)."""
    with path.open("wb") as f:
        w = McapWriter(f)
        w.start(profile=profile, library="test")
        for topic, name, schema_encoding, text, message_encoding, messages in channels:
            sid = w.register_schema(name=name, encoding=schema_encoding, data=text)
            cid = w.register_channel(topic=topic, message_encoding=message_encoding,
                                     schema_id=sid)
            for k, raw in enumerate(messages):
                w.add_message(channel_id=cid, log_time=CAM_NS[k], publish_time=CAM_NS[k],
                              data=raw)
        w.finish()
    return path


def test_mcap_with_no_ros2_channel_is_refused(tmp_path: Path) -> None:
    """An MCAP of the ROS 1 profile (``mcap convert drive.bag``) or of json channels
    (Foxglove) has nothing the stream fallback can decode: refused, not an empty bag."""
    ros1: list[tuple[str, str, str, bytes, str, list[bytes]]] = []
    for topic, msgtype in (("/cam/image_rect", "sensor_msgs/msg/Image"),
                           ("/velo/points", "sensor_msgs/msg/PointCloud2")):
        text, _ = ROS1.generate_msgdef(msgtype)
        msg = image_msg(ROS1, 0) if "Image" in msgtype else cloud_msg(ROS1, 0)
        ros1.append((topic, msgtype.replace("/msg/", "/"), "ros1msg", text.encode(), "ros1",
                     [bytes(ROS1.serialize_ros1(msg, msgtype))]))
    path = _write_mcap(tmp_path / "ros1.mcap", "ros1", ros1)
    match = (r"ros1\.mcap: cannot read bag: .*as an MCAP stream \(profile 'ros1'\) it has no "
             r"ROS 2 channel \(ros2msg schema, cdr messages\) to read: schema encoding "
             r"'ros1msg', message encoding 'ros1': \['/cam/image_rect', '/velo/points'\]")
    with pytest.raises(RecordingError, match=match):
        BagRecording(path).open()
    foxglove = [("/cam/image", "foxglove.CompressedImage", "jsonschema", b"{}", "json",
                 [json.dumps({"format": "jpeg"}).encode()] * 3)]
    path = _write_mcap(tmp_path / "foxglove.mcap", "", foxglove)
    match = (r"foxglove\.mcap: cannot read bag: .*\(profile ''\) it has no ROS 2 channel .*"
             r"schema encoding 'jsonschema', message encoding 'json': \['/cam/image'\]")
    with pytest.raises(RecordingError, match=match):
        BagRecording(path).open()


def test_mcap_stream_skips_other_channels_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file rosbags refuses (no ROS 2 profile) with ROS 2 images and a json topic: the
    images are read, the json topic is left out and named once in a warning."""
    text, _ = ROS2.generate_msgdef("sensor_msgs/msg/Image")
    images = [bytes(ROS2.serialize_cdr(image_msg(ROS2, k), "sensor_msgs/msg/Image"))
              for k in range(3)]
    path = _write_mcap(tmp_path / "mixed.mcap", "", [
        ("/cam", "sensor_msgs/msg/Image", "ros2msg", text.encode(), "cdr", images),
        ("/gps", "gps.Fix", "jsonschema", b"{}", "json", [b"{}"] * 2),
    ])
    with caplog.at_level(logging.WARNING), BagRecording(path) as bag:
        assert [s.name for s in bag.info().streams] == ["/cam"]
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS
    skipped = [r.getMessage() for r in caplog.records if "skipping topic" in r.getMessage()]
    assert skipped == [f"{path}: skipping topic '/gps': schema encoding 'jsonschema', message "
                       "encoding 'json' (only ros2msg schemas with cdr messages are read)"]


def test_a_schema_the_typestore_refuses_loses_only_its_topic(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two schemas with clashing versions of one nested type in an MCAP without summary:
    the second cannot be registered; its topic is skipped with one warning and the
    images after it are still read."""
    sep = "\n" + "=" * 80 + "\n"
    text, _ = ROS2.generate_msgdef("sensor_msgs/msg/Image")
    path = tmp_path / "killed.mcap"
    with path.open("wb") as f:
        w = McapWriter(f, chunk_size=1)
        w.start(profile="ros2", library="test")
        sid = w.register_schema(name="sensor_msgs/msg/Image", encoding="ros2msg",
                                data=text.encode())
        cam = w.register_channel(topic="/cam", message_encoding="cdr", schema_id=sid)

        def write_image(k: int) -> None:
            raw = bytes(ROS2.serialize_cdr(image_msg(ROS2, k), "sensor_msgs/msg/Image"))
            w.add_message(channel_id=cam, log_time=CAM_NS[k], publish_time=CAM_NS[k],
                          data=raw)

        write_image(0)
        for topic, common in (("/a", "int32 x"), ("/b", "float64 x\nfloat64 y")):
            name = f"my_pkg/msg/{topic[1:].upper()}"
            schema = f"my_pkg/Common c{sep}MSG: my_pkg/Common\n{common}"
            sid = w.register_schema(name=name, encoding="ros2msg", data=schema.encode())
            cid = w.register_channel(topic=topic, message_encoding="cdr", schema_id=sid)
            w.add_message(channel_id=cid, log_time=T0, publish_time=T0,
                          data=b"\x00\x01\x00\x00" + b"\x00" * 16)
        write_image(1)
        write_image(2)
        f.flush()  # no finish(): the writer was killed, no summary
    with caplog.at_level(logging.WARNING), BagRecording(path) as bag:
        assert {s.name: s.count for s in bag.info().streams} == {"/cam": 3, "/a": 1}
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS
    refused = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].startswith(f"{path}: schema 'my_pkg/msg/B' cannot be used (Type "
                                 "'my_pkg/msg/Common' is already present")
    assert refused[0].endswith("skipping its topics ['/b']")


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap"])
def test_image_topics_without_messages_are_no_candidates(tmp_path: Path, kind: str) -> None:
    """A recorder keeps topics it discovered but never received (count 0): such an image
    topic is not chosen, does not make the choice ambiguous, and fails require_camera."""
    ts = ROS1 if kind == "ros1" else ROS2
    suffix = ".bag" if kind == "ros1" else ""
    raw = ("/cam/image_raw", "sensor_msgs/msg/Image")
    compressed = ("/cam/image_rect/compressed", "sensor_msgs/msg/CompressedImage")
    path = write_bag(tmp_path / f"one{suffix}", kind, standard_entries(ts), empty=(compressed,))
    with BagRecording(path) as bag:
        assert bag.ambiguous_topics == {}
        assert bag.image_topic == "/cam/image_rect"
        bag.require_camera()
        assert len(list(bag.camera_frames())) == 3
    no_images = [e for e in standard_entries(ts) if e[1] != "sensor_msgs/msg/Image"]
    path = write_bag(tmp_path / f"two{suffix}", kind, no_images, empty=(raw,))
    with BagRecording(path) as bag:
        assert bag.image_topic is None
        with pytest.raises(RecordingError, match=r"no image topic with messages in the bag "
                           r"\(\['/cam/image_raw'\] have none\); topics: "):
            bag.require_camera()
    with BagRecording(path, image_topic="/cam/image_raw") as bag:
        with pytest.raises(RecordingError,
                           match=r"two(\.bag)?: image topic '/cam/image_raw' has no messages"):
            bag.require_camera()
        assert list(bag.camera_frames()) == []


def test_camera_info_of_another_camera_gives_no_rig(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The lone CameraInfo is the left camera's and the right camera's images are read:
    no rig (with a warning naming both), unless that CameraInfo is named explicitly."""
    right = RigidTransform.from_rt(np.eye(3), [0.2, -0.54, 1.5], "right_optical", "base_link")
    entries = [e for e in standard_entries(ROS2) if e[0] != "/tf_static"]
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0,
                    tf_msg(ROS2, T0, [T_BASE_CAM, T_BASE_VELO, right])))
    for k in range(3):
        msg = image_msg(ROS2, k)
        msg.header.frame_id = "right_optical"
        entries.append(("/right/image_rect", "sensor_msgs/msg/Image", CAM_NS[k] + LOG_DELAY,
                        msg))
    path = write_bag(tmp_path / "b", "sqlite3", entries)
    with BagRecording(path, image_topic="/right/image_rect") as bag:
        assert bag.camera_info_topic == "/cam/camera_info"
        assert bag.rig() is None
    assert ("CameraInfo topic '/cam/camera_info' is of frame 'cam_optical' but image topic "
            "'/right/image_rect' is of frame 'right_optical', so no rig") in caplog.text
    with BagRecording(path, image_topic="/right/image_rect",
                      camera_info_topic="/cam/camera_info") as bag:
        rig = bag.rig()
        assert rig is not None and rig.camera_frame == "cam_optical"


def test_camera_info_frame_matches_without_leading_slash(tmp_path: Path) -> None:
    """ROS 1 drivers write '/cam_optical' in one header and 'cam_optical' in another."""
    entries = standard_entries(ROS1)
    for topic, _, _, msg in entries:
        if topic == "/cam/image_rect":
            msg.header.frame_id = "/cam_optical"  # type: ignore[attr-defined]
    with BagRecording(write_bag(tmp_path / "b.bag", "ros1", entries)) as bag:
        rig = bag.rig()
    assert rig is not None and rig.camera_frame == "cam_optical"


# --- stamps and sizes as drivers leave them ---------------------------------------------


def _stream_bag(tmp_path: Path, kind: str, cam_ns: list[int], *,
                sizes: list[tuple[int, int]] | None = None) -> Path:
    """A bag of rgb8 images stamped ``cam_ns`` (logged 5 ms after each other, from T0) and
    one scan per image stamped at its log time."""
    ts = ROS1 if kind == "ros1" else ROS2
    entries: list[Entry] = []
    for k, stamp in enumerate(cam_ns):
        h, w = sizes[k] if sizes else (6, 8)
        log_ns = T0 + k * 100_000_000 + 5
        image = ts.types["sensor_msgs/msg/Image"](
            header=header(ts, stamp, "cam"), height=h, width=w, encoding="rgb8",
            is_bigendian=0, step=3 * w, data=np.zeros(h * w * 3, np.uint8))
        cloud = cloud_msg(ts, 0)
        cloud.header = header(ts, log_ns, "velo")
        entries += [("/cam", "sensor_msgs/msg/Image", log_ns, image),
                    ("/velo", "sensor_msgs/msg/PointCloud2", log_ns, cloud)]
    return write_bag(tmp_path / ("b.bag" if kind == "ros1" else "b"), kind, entries)


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_stamps_going_backwards_are_yielded_as_recorded_and_warned_once(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    step = 100_000_000
    stamps = [T0, T0 + 2 * step, T0 + step, T0 + step, T0 + 3 * step]
    with BagRecording(_stream_bag(tmp_path, kind, stamps)) as bag:
        for _ in range(2):
            assert [f.stamp_ns for f in bag.camera_frames()] == stamps
        assert len(list(bag.messages())) == 10
    assert caplog.text.count("not after the one before") == 1
    assert (f"b{'.bag' if kind == 'ros1' else ''}:/cam: message 2 has stamp {T0 + step} ns, "
            f"not after the one before ({T0 + 2 * step} ns)") in caplog.text


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_zero_header_stamps_use_the_log_time_with_a_warning(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    with BagRecording(_stream_bag(tmp_path, kind, [T0, 0, 0])) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == [
            T0, T0 + 100_000_005, T0 + 200_000_005]
    assert caplog.text.count("zero header.stamp") == 1
    assert (f"/cam: message 1 has a zero header.stamp (its driver left it unset); its receive "
            f"time {T0 + 100_000_005} ns is used instead") in caplog.text


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_header_stamps_far_from_the_log_time_are_warned(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """A camera stamping with its clock since boot: nothing pairs, and the log says why."""
    stamps = [500_000_000 + k * 100_000_000 for k in range(3)]
    with BagRecording(_stream_bag(tmp_path, kind, stamps)) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == stamps
        assert list(bag.lidar_scans())
    assert caplog.text.count("from its receive time") == 1
    assert (f"/cam: message 0 has header stamp 500000000 ns, -1599999999.5 s from its receive "
            f"time {T0 + 5} ns: a sensor clock not synchronised") in caplog.text


def test_an_image_topic_changing_size_is_warned_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sizes = [(6, 8), (10, 12), (6, 8), (10, 12)]
    stamps = [T0 + k * 100_000_000 for k in range(4)]
    with BagRecording(_stream_bag(tmp_path, "mcap", stamps, sizes=sizes)) as bag:
        assert [f.image.shape[:2] for f in bag.camera_frames()] == sizes
    assert caplog.text.count("the first one read was") == 1
    assert "/cam: frame 1 is 12x10, the first one read was 8x6" in caplog.text


def test_images_not_of_their_camera_infos_size_are_warned_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Images cropped by a node that left the CameraInfo full-size (no roi): the graph
    scaled the calibration over the crop and converted bags held both, without a word,
    where a KITTI drive's frames of another size than their calibration are warned about."""
    entries = [e for e in standard_entries(ROS2) if e[0] != "/cam/camera_info"]
    for k in range(3):
        info = info_msg(ROS2, k)
        info.width, info.height = (16, 12) if k else (8, 6)  # the first fits, then not
        entries.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", CAM_NS[k], info))
    with BagRecording(write_bag(tmp_path / "b", "mcap", entries)) as bag:
        assert bag.rig() is not None
        assert len(list(bag.camera_frames())) == 3
        assert len(list(bag.camera_frames())) == 3
    assert caplog.text.count("pixels but the CameraInfo") == 1
    assert ("b:/cam/image_rect: frame 1 is 8x6 pixels but the CameraInfo of "
            "'/cam/camera_info' is for 16x12 images") in caplog.text
    caplog.clear()
    with BagRecording(make_standard_bag("mcap", tmp_path / "fits")) as bag:
        assert bag.rig() is not None and len(list(bag.camera_frames())) == 3
    assert "pixels but" not in caplog.text


@pytest.mark.parametrize("kind", ["ros1", "sqlite3", "mcap"])
def test_info_reads_two_messages_per_topic_not_the_whole_bag(
        tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``info`` on a multi-GB bag decoded every sensor message (minutes): counts come from
    the index, spans from each topic's first and last message, found in short reads."""
    from rosbags.highlevel import AnyReader

    from drivingseg.sensors import bag_sources

    ts = ROS1 if kind == "ros1" else ROS2
    n = 40
    entries: list[Entry] = [("/chatter", "std_msgs/msg/String", T0 + 1 + k,
                             ts.types["std_msgs/msg/String"](data="early")) for k in range(3)]
    for k in range(n):
        cloud = cloud_msg(ts, 0)
        cloud.header = header(ts, T0 + k * 100_000_000 - 7, "velo")  # stamp before log time
        entries += [("/velo/points", "sensor_msgs/msg/PointCloud2", T0 + k * 100_000_000,
                     cloud)]
    entries.append(("/late", "std_msgs/msg/String", T0 + 3_000_000_000,
                    ts.types["std_msgs/msg/String"](data="late")))
    died = [T0 + 3 + k * 10_000_000 for k in range(150)]  # 100 Hz, stops at 1.5 s of 3.9
    entries += [("/died", "std_msgs/msg/String", t, ts.types["std_msgs/msg/String"](data="x"))
                for t in died]
    path = write_bag(tmp_path / ("b.bag" if kind == "ros1" else "b"), kind, entries)
    read: list[str] = []
    real_deserialize = bag_sources.RosbagsSource.deserialize
    real_messages = bag_sources.RosbagsSource.raw_messages
    real_reader_messages = AnyReader.messages
    died_read: list[int] = []

    def reader_messages(self: Any, *args: Any, **kwargs: Any) -> Any:
        for conn, log_ns, raw in real_reader_messages(self, *args, **kwargs):
            died_read.extend([log_ns] if conn.topic == "/died" else [])
            yield conn, log_ns, raw

    def counting(self: Any, raw: bytes, msgtype: str) -> Any:
        read.append(msgtype)
        return real_deserialize(self, raw, msgtype)

    def whole_pass(self: Any, topics: set[str]) -> Any:
        read.extend(sorted(topics))
        return real_messages(self, topics)

    with BagRecording(path) as bag:
        monkeypatch.setattr(bag_sources.RosbagsSource, "deserialize", counting)
        monkeypatch.setattr(bag_sources.RosbagsSource, "raw_messages", whole_pass)
        monkeypatch.setattr(AnyReader, "messages", reader_messages)
        streams = {s.name: (s.count, s.first_ns, s.last_ns) for s in bag.info().streams}
    assert streams == {"/chatter": (3, T0 + 1, T0 + 3),
                       "/velo/points": (n, T0 - 7, T0 + (n - 1) * 100_000_000 - 7),
                       "/late": (1, T0 + 3_000_000_000, T0 + 3_000_000_000),
                       "/died": (150, died[0], died[-1])}
    assert read == ["sensor_msgs/msg/PointCloud2"] * 2
    assert len(died_read) <= 30  # a topic that stops early: not its whole second half


def test_a_killed_sqlite3_recorders_folder_reads_its_db3(tmp_path: Path) -> None:
    """'ros2 bag record' (sqlite3, Humble's default) killed: a folder with its .db3 and no
    metadata.yaml was 'not a recording drivingseg can read', though the .db3 reads."""
    folder = make_standard_bag("sqlite3", tmp_path)
    (folder / "metadata.yaml").unlink()
    assert detect_format(folder) == "rosbag"
    with open_recording(folder) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS
        assert {s.name: s.count for s in bag.info().streams}["/velo/points"] == 3
        assert bag.rig() is not None
    shutil.copy(next(folder.glob("*.db3")), folder / "second.db3")
    with pytest.raises(RecordingError, match=r"holds exactly one \.mcap or \.db3 file; it holds "
                       r"\['drive\.db3', 'second\.db3'\]; 'ros2 bag reindex' writes it"):
        BagRecording(folder).open()


def test_a_ros1_bag_without_index_is_read_front_to_back(tmp_path: Path) -> None:
    """A ROS 1 bag whose recorder was killed has index_pos 0 in its header: it was refused
    ('run rosbag reindex', which needs ROS); its frames, scans, counts and rig now read."""
    path = make_standard_bag("ros1", tmp_path)
    data = path.read_bytes()
    at = data.index(b"index_pos=") + len(b"index_pos=")
    path.write_bytes(data[:at] + bytes(8) + data[at + 8:])
    with open_recording(path) as bag:
        assert [f.stamp_ns for f in bag.camera_frames()] == CAM_NS
        assert [s.stamp_ns for s in bag.lidar_scans()] == LIDAR_NS
        assert {s.name: s.count for s in bag.info().streams}["/velo/points"] == 3
        assert bag.rig() is not None


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_info_warns_of_a_sensor_clock_far_from_the_recorders(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """A camera stamping since boot: ``drivingseg info`` showed a 1970 start and a 50-year
    duration with no word why (the warning came only when frames were read)."""
    stamps = [500_000_000 + k * 100_000_000 for k in range(3)]
    with BagRecording(_stream_bag(tmp_path, kind, stamps)) as bag:
        cam = {s.name: s for s in bag.info().streams}["/cam"]
        assert (cam.first_ns, cam.last_ns) == (stamps[0], stamps[-1])
        assert (f"/cam: message 0 has header stamp 500000000 ns, -1599999999.5 s from its "
                f"receive time {T0 + 5} ns: a sensor clock not synchronised") in caplog.text
        list(bag.camera_frames())
    assert caplog.text.count("from its receive time") == 1  # once, not again on reading


def test_each_frame_gets_the_camera_info_and_tf_static_in_force_at_its_stamp(
        tmp_path: Path) -> None:
    """A KITTI object folder converted to a bag has a calibration per frame: frame 1's
    CameraInfo and its republished /tf_static apply to it (and on), not the first ones."""
    moved = RigidTransform.from_rt(np.eye(3), [0.5, 0.1, 1.8], "velo", "base_link")
    entries = standard_entries(ROS2)
    entries = [e for e in entries if not (e[0] == "/cam/camera_info" and e[2] == CAM_NS[1]
                                          + LOG_DELAY)]
    other = info_msg(ROS2, 1)
    other.k = np.array([900.0, 0.0, 4.0, 0.0, 900.0, 3.0, 0.0, 0.0, 1.0])
    entries.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", CAM_NS[1] + LOG_DELAY,
                    other))
    entries.append(("/tf_static", "tf2_msgs/msg/TFMessage", CAM_NS[2],
                    tf_msg(ROS2, CAM_NS[2], [moved])))
    with BagRecording(write_bag(tmp_path / "b", "mcap", entries)) as bag:
        rig = bag.rig()
        assert rig is not None and rig.camera.K[0, 0] == 700.0
        frames = list(bag.camera_frames())
        rigs = [bag.frame_rig(f.index) for f in frames]
        assert [r.camera.K[0, 0] for r in rigs if r is not None] == [700.0, 900.0, 700.0]
        assert rigs[0] is rig and rigs[2] is not None
        np.testing.assert_allclose(rigs[1].T_cam_velo.matrix if rigs[1] else None,
                                   T_CAM_VELO.matrix, atol=1e-9)
        want = T_BASE_CAM.inverse().compose(moved)
        np.testing.assert_allclose(rigs[2].T_cam_velo.matrix, want.matrix, atol=1e-9)
    with BagRecording(tmp_path / "b") as bag:  # without iterating the frames first
        fresh = bag.frame_rig(1)
        assert fresh is not None and fresh.camera.K[0, 0] == 900.0
        with pytest.raises(RecordingError, match="no camera frame 7"):
            bag.frame_rig(7)


def test_a_camera_info_whose_roi_changes_gives_each_frame_its_window(tmp_path: Path) -> None:
    """A driver's ROI moved mid-drive (dynamic reconfigure) keeps the full-resolution
    calibration and changes only ``roi``: the change was not seen (nor the ROI at all), so
    every frame got the first CameraInfo's camera, 16 x 12 pixels for 8 x 6 images."""
    entries = [e for e in standard_entries(ROS2) if e[0] != "/cam/camera_info"]
    for k in range(3):
        info = info_msg(ROS2, k)
        info.width, info.height = 16, 12
        info.k = np.array([700.0, 0.0, 8.0, 0.0, 700.0, 6.0, 0.0, 0.0, 1.0])
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = (
            0 if k == 0 else 4, 3, 8, 6)
        entries.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo",
                        CAM_NS[k] + LOG_DELAY, info))
    with BagRecording(write_bag(tmp_path / "b", "mcap", entries)) as bag:
        frames = list(bag.camera_frames())
        rigs = [bag.frame_rig(f.index) for f in frames]
    assert [r.camera.image_size if r else None for r in rigs] == [(8, 6)] * 3
    assert [r.camera.K[0, 2] if r else None for r in rigs] == [8.0, 4.0, 4.0]
    assert [r.camera.K[1, 2] if r else None for r in rigs] == [3.0] * 3


def test_a_camera_only_bag_keeps_its_camera_info(tmp_path: Path) -> None:
    """Without a lidar there is no rig, but the CameraInfo's camera is kept (per frame)
    and rig_note says precisely what is missing."""
    entries = [e for e in standard_entries(ROS2) if e[0] not in ("/velo/points", "/tf_static")]
    with BagRecording(write_bag(tmp_path / "b", "mcap", entries)) as bag:
        assert bag.rig() is None and bag.frame_rig(0) is None
        assert "no lidar topic" in bag.rig_note and "/cam/camera_info" in bag.rig_note
        camera = bag.camera_model()
        assert camera is not None and camera.frame_id == "cam_optical"
        np.testing.assert_array_equal(camera.K.ravel(), K9)
        assert bag.frame_camera(2) is camera
    no_info = [e for e in entries if e[0] != "/cam/camera_info"]
    with BagRecording(write_bag(tmp_path / "c", "mcap", no_info)) as bag:
        assert bag.camera_model() is None
        assert bag.rig_note == "no CameraInfo topic (and no lidar topic)"


def test_frames_from_a_stamp_decode_none_before_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay window late in a multi-GB bag: the frames and scans before it were decoded
    (a JPEG or a dense cloud each) only to be skipped; now they keep only their numbers."""
    import drivingseg.sensors.bag as bag_module

    decoded: list[str] = []

    def counting(real: Any) -> Any:
        def wrapped(msg: Any, source: str) -> Any:
            decoded.append(source.rsplit(":", 1)[1])
            return real(msg, source)
        return wrapped

    monkeypatch.setattr(bag_module, "image_from_msg", counting(bag_module.image_from_msg))
    monkeypatch.setattr(bag_module, "points_from_pointcloud2",
                        counting(bag_module.points_from_pointcloud2))
    with BagRecording(make_standard_bag("mcap_file", tmp_path)) as bag:
        frames = list(bag.camera_frames_from(CAM_NS[2]))
        scans = list(bag.lidar_scans_from(LIDAR_NS[1]))
        assert [(f.index, f.stamp_ns) for f in frames] == [(2, CAM_NS[2])]
        np.testing.assert_array_equal(frames[0].image, IMAGES[2])
        assert [(s.index, s.stamp_ns) for s in scans] == [(1, LIDAR_NS[1]), (2, LIDAR_NS[2])]
        assert decoded == ["/cam/image_rect", "/velo/points", "/velo/points"]
        assert bag.frame_rig(2) is not None  # frame numbers and their calibration as before
