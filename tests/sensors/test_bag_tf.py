"""The bag rig's camera <- lidar transform from /tf when /tf_static has no chain: only /tf
links that never move over the bag are used (ROS 1 static_transform_publisher republishes
a mount on /tf at a period; odometry moves). Bags written by rosbags in tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.typesys.store import Typestore
from support.bags import ROS1, ROS2, TF, Entry, header, tf_msg, write_bag

from drivingseg.calibration.types import RigidTransform
from drivingseg.cli import main
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.bag_tf import TF_FIXED_TOLERANCE_M, TfTree

T0 = 1_600_000_000_000_000_000
STEP_NS = 100_000_000  # 10 Hz, static_transform_publisher's default period is 100 ms
K9 = [700.0, 0.0, 4.0, 0.0, 700.0, 3.0, 0.0, 0.0, 1.0]
R_BASE_CAM, _ = cv2.Rodrigues(np.array([0.3, -1.2, 0.4]))
T_BASE_CAM = RigidTransform.from_rt(R_BASE_CAM, [0.2, 0.0, 1.5], "cam_optical", "base_link")
T_BASE_VELO = RigidTransform.from_rt(np.eye(3), [0.0, 0.1, 1.8], "velo", "base_link")
T_CAM_VELO = T_BASE_CAM.inverse().compose(T_BASE_VELO)


def odom(k: int) -> RigidTransform:
    """The car driving 1 m per message and turning: a moving /tf link."""
    R, _ = cv2.Rodrigues(np.array([0.0, 0.0, 0.05 * k]))
    return RigidTransform.from_rt(R, [1.0 * k, 0.0, 0.0], "base_link", "odom")


def sensor_entries(ts: Typestore, n: int = 4) -> list[Entry]:
    """A camera with CameraInfo (frame cam_optical) and a lidar (frame velo), 10 Hz."""
    pf = ts.types["sensor_msgs/msg/PointField"]
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    mats = {"d": np.zeros(5), "k": np.array(K9), "r": np.eye(3).ravel(), "p": np.zeros(12)}
    if ts is ROS1:
        mats = {name.upper(): value for name, value in mats.items()}
    points = np.array([[1.0, 2.0, 3.0, 10.0]], dtype="<f4")
    out: list[Entry] = []
    for k in range(n):
        stamp = T0 + k * STEP_NS
        out.append(("/cam/image_rect", "sensor_msgs/msg/Image", stamp, ts.types[
            "sensor_msgs/msg/Image"](header=header(ts, stamp, "cam_optical"), height=6, width=8,
                                     encoding="rgb8", is_bigendian=0, step=24,
                                     data=np.zeros(144, np.uint8))))
        out.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", stamp, ts.types[
            "sensor_msgs/msg/CameraInfo"](header=header(ts, stamp, "cam_optical"), height=6,
                                          width=8, distortion_model="plumb_bob", binning_x=0,
                                          binning_y=0, roi=roi, **mats)))
        out.append(("/velo/points", "sensor_msgs/msg/PointCloud2", stamp + 1, ts.types[
            "sensor_msgs/msg/PointCloud2"](
                header=header(ts, stamp + 1, "velo"), height=1, width=1,
                fields=[pf(name=c, offset=4 * i, datatype=7, count=1)
                        for i, c in enumerate(("x", "y", "z", "intensity"))],
                is_bigendian=False, point_step=16, row_step=16,
                data=points.view(np.uint8).reshape(-1), is_dense=True)))
    return out


def tf_entries(ts: Typestore, links: list[list[RigidTransform]], *, topic: str = "/tf",
               msgtype: str = TF) -> list[Entry]:
    """One /tf message per element of ``links``, 100 ms apart."""
    return [(topic, msgtype, T0 + k * STEP_NS + 3, tf_msg(ts, T0 + k * STEP_NS, transforms,
                                                          msgtype))
            for k, transforms in enumerate(links)]


def bag_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / ("drive.bag" if kind == "ros1" else "drive")


KINDS = ["ros1", "sqlite3", "mcap"]


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_sensor_links_on_tf_make_the_rig(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bag with no /tf_static whose mounts are republished on /tf beside a moving
    odom -> base_link: the rig was None; now the fixed links make it, and the log and
    rig_note name them."""
    ts = ROS1 if kind == "ros1" else ROS2
    links = [[odom(k), T_BASE_CAM, T_BASE_VELO] for k in range(5)]
    path = write_bag(bag_path(tmp_path, kind), kind, sensor_entries(ts) + tf_entries(ts, links))
    with caplog.at_level(logging.INFO, logger="drivingseg"), BagRecording(path) as bag:
        rig = bag.rig()
        note = bag.rig_note
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)
    assert (rig.camera_frame, rig.lidar_frame) == ("cam_optical", "velo")
    assert note == ("links from /tf (fixed over the bag): base_link <- velo, "
                    "base_link <- cam_optical")
    assert "rig transform cam_optical <- velo uses links from /tf" in caplog.text


def test_a_chain_through_a_moving_tf_link_gives_no_rig_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lidar on a turning mount (base_link -> turret moves; turret -> velo fixed): the
    rig must not be built on the turret's first pose, and 'info' says why there is none."""
    T_BASE_TURRET = [RigidTransform.from_rt(cv2.Rodrigues(np.array([0.0, 0.0, 0.2 * k]))[0],
                                            [0.0, 0.0, 1.5], "turret", "base_link")
                     for k in range(5)]
    T_TURRET_VELO = RigidTransform.from_rt(np.eye(3), [0.0, 0.1, 0.3], "velo", "turret")
    entries = sensor_entries(ROS2) + tf_entries(ROS2, [[T_BASE_CAM]], topic="/tf_static")
    entries += tf_entries(ROS2, [[T_BASE_TURRET[k], T_TURRET_VELO] for k in range(5)])
    path = write_bag(tmp_path / "drive", "mcap", entries)
    with BagRecording(path) as bag:
        assert bag.rig() is None
        note = bag.rig_note
    assert note == ("the only chain cam_optical <- velo needs /tf links that are not fixed "
                    "over the bag: base_link <- turret (moves 0 m, 0.8 rad)")
    assert f"{path}: {note}, so no rig" in caplog.text
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"rig:       none ({note})" in out


def test_tf_static_wins_over_tf(tmp_path: Path) -> None:
    """A chain in /tf_static is used as it is: /tf is not read, and no note is made."""
    stale = RigidTransform.from_rt(np.eye(3), [5.0, 5.0, 5.0], "velo", "base_link")
    entries = sensor_entries(ROS2) + tf_entries(ROS2, [[T_BASE_CAM, T_BASE_VELO]],
                                                topic="/tf_static")
    entries += tf_entries(ROS2, [[T_BASE_CAM, stale]] * 3)
    with BagRecording(write_bag(tmp_path / "drive", "sqlite3", entries)) as bag:
        rig = bag.rig()
        assert bag.rig_note == ""
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


def test_old_ros1_tf_messages_are_read(tmp_path: Path) -> None:
    """ROS 1 bags recorded with tf (not tf2) carry tf/tfMessage on /tf: it was 'other'."""
    links = [[T_BASE_CAM, T_BASE_VELO]] * 3
    entries = sensor_entries(ROS1) + tf_entries(ROS1, links, msgtype="tf/msg/tfMessage")
    with BagRecording(write_bag(tmp_path / "old.bag", "ros1", entries)) as bag:
        assert {s.name: s.kind for s in bag.info().streams}["/tf"] == "tf"
        rig = bag.rig()
    assert rig is not None
    np.testing.assert_allclose(rig.T_cam_velo.matrix, T_CAM_VELO.matrix, atol=1e-9)


def test_fixedness_tolerance() -> None:
    """Republishing noise within TF_FIXED_TOLERANCE_M keeps a link fixed; more motion, a
    link published once, or a second parent make it unusable."""
    def tree(velo_samples: list[RigidTransform]) -> TfTree:
        out = TfTree()
        out.add_static(T_BASE_CAM)
        for T in velo_samples:
            out.add_dynamic(T, T.source_frame, T.target_frame)
        return out

    def shifted(dx_m: float) -> RigidTransform:
        return RigidTransform.from_rt(np.eye(3), [dx_m, 0.1, 1.8], "velo", "base_link")

    noisy = tree([shifted(0.0), shifted(TF_FIXED_TOLERANCE_M / 2)])
    found = noisy.lookup("cam_optical", "velo", with_tf=True)
    assert found.transform is not None and found.from_tf == ("base_link <- velo",)
    assert noisy.lookup("cam_optical", "velo", with_tf=False).transform is None
    moving = tree([shifted(0.0), shifted(TF_FIXED_TOLERANCE_M * 3)]).lookup(
        "cam_optical", "velo", with_tf=True)
    assert moving.transform is None and moving.moving == (
        "base_link <- velo (moves 0.0003 m, 0 rad)",)
    once = tree([shifted(0.0)]).lookup("cam_optical", "velo", with_tf=True)
    assert once.transform is None
    assert "published once, so not known to be fixed" in once.note
    reparented = tree([shifted(0.0), shifted(0.0)])
    reparented.add_dynamic(RigidTransform(np.eye(4), "velo", "map"), "velo", "map")
    assert reparented.lookup("cam_optical", "velo", with_tf=True).transform is None
    absent = TfTree().lookup("cam_optical", "velo", with_tf=True)
    assert absent.transform is None and absent.note == (
        "no chain cam_optical <- velo in /tf_static or /tf")


def test_tf_samples_are_measured_without_a_transform_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A long bag's 100 Hz /tf: building and validating a transform per sample took 10 s
    per 20k messages before the rig could be built. Only a link's first sample is one;
    the others' motion is measured from the message's numbers, the same as before."""
    from drivingseg.sensors import bag_tf

    built: list[str] = []
    real = bag_tf.transform_from_tf

    def counting(stamped: object, source: str) -> RigidTransform:
        built.append(source)
        return real(stamped, source)

    monkeypatch.setattr(bag_tf, "transform_from_tf", counting)
    tree = TfTree()
    turns_rad = [0.0, 0.2, -0.5, 0.1]
    for k, turn in enumerate(turns_rad):
        R, _ = cv2.Rodrigues(np.array([0.0, turn, 0.0]))
        velo = RigidTransform.from_rt(R, [0.3 * (k == 2), 0.1, 1.8], "velo", "/base_link")
        tree.add(tf_msg(ROS2, T0 + k, [velo]), "b:/tf", static=False)
    bad = tf_msg(ROS2, T0, [T_BASE_VELO])
    bad.transforms[0].transform.rotation.w = 0.0  # a zero quaternion
    tree.add(tf_msg(ROS2, T0, [T_BASE_CAM]), "b:/tf", static=False)
    tree.add(bad, "b:/tf", static=False)
    assert len(built) == 2  # the first sample of each link
    link = tree.dynamic["velo"]
    assert link.count == 5 and link.invalid
    assert link.shift_m == pytest.approx(0.3)
    assert link.turn_rad == pytest.approx(0.5)
    assert tree.dynamic["cam_optical"].count == 1


def test_reading_tf_for_the_rig_shows_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rig reads a bag's whole /tf (minutes for an hour at 100 Hz), which was silent."""
    from support.progress import record_progress

    bars = record_progress(monkeypatch)
    links = [[odom(k), T_BASE_CAM, T_BASE_VELO] for k in range(6)]
    path = write_bag(tmp_path / "drive", "mcap", sensor_entries(ROS2) + tf_entries(ROS2, links))
    with BagRecording(path) as bag:
        assert bag.rig() is not None
    assert bars == [("read /tf", 6, "message", 6)]
