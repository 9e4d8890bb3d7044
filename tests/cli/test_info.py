"""``drivingseg info`` on real recordings, and the CLI's error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivingseg.cli import main
from drivingseg.errors import RecordingError


def test_info_on_kitti_raw_drive(kitti_raw_drive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(kitti_raw_drive)]) == 0
    out = capsys.readouterr().out
    assert "format:    kitti_raw" in out
    assert "start:     2011-09-26T13:00:00.000000000Z" in out
    assert "duration:  2.900 s" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[7:] if line}
    assert rows["image_02"][1:5] == ["camera", "png", "30", "10.00"]
    assert rows["velodyne_points"][1:5] == ["lidar", "bin", "30", "10.00"]
    assert "1242x375" in out


def test_info_refuses_a_camera_the_drive_lacks(
    kitti_raw_drive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--camera 3 without image_03/ used to describe the lidar alone and exit 0."""
    assert main(["info", str(kitti_raw_drive), "--camera", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{kitti_raw_drive}: camera 3: image_03/ does not exist (it has image_02/)" in err
    assert main(["info", str(kitti_raw_drive), "--camera", "2"]) == 0


def test_info_of_a_drive_with_only_camera_3_says_which_to_pick(
    kitti_raw_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A drive with image_03/ only was described as its lidar alone (the default camera 2
    missing), with no hint that ``--camera 3`` reads its frames."""
    from support.kitti_links import linked_drive

    drive = linked_drive(kitti_raw_root, tmp_path, 3)
    assert main(["info", str(drive)]) == 2
    err = capsys.readouterr().err
    assert f"{drive}: camera 2: image_02/ does not exist (it has image_03/); pick one" in err
    assert main(["info", str(drive), "--camera", "3"]) == 0
    assert "image_03" in capsys.readouterr().out


def test_options_of_another_recording_kind_are_refused(
    kitti_raw_drive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bag's topic options on a KITTI drive, or a KITTI camera on the synthetic drive, were
    silently ignored by info, convert and replay."""
    assert main(["info", str(kitti_raw_drive), "--image-topic", "/cam"]) == 2
    err = capsys.readouterr().err
    assert "--image-topic only apply to bags;" in err and "is not one (KITTI raw drive" in err
    assert main(["replay", str(kitti_raw_drive), "--lidar-topic", "/velo", "--frames", "1"]) == 2
    assert "--lidar-topic only apply to bags" in capsys.readouterr().err
    assert main(["info", "synthetic", "--camera", "3"]) == 2
    assert "--camera 3 picks a KITTI camera; 'synthetic' is not a KITTI recording" in (
        capsys.readouterr().err)


def test_info_json_on_kitti_object_folder(
    kitti_object_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--json", str(kitti_object_root)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "kitti_benchmark"
    counts = {s["kind"]: s["count"] for s in info["streams"]}
    assert counts["camera"] == 3 and counts["lidar"] == 3


def test_missing_path_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"drivingseg info: error: {missing}: no such file or folder" in err
    assert "Traceback" not in err


def test_unknown_folder_lists_accepted_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path)]) == 2
    assert "accepted: KITTI raw drive folder" in capsys.readouterr().err


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file or folder"):
        main(["--debug", "info", str(tmp_path / "nope")])


SIGTERM_IN_INFO = """
import signal, sys, tempfile
from drivingseg.cli.main import main
from drivingseg.sensors.bag import BagRecording

tempfile.tempdir = sys.argv[2]
real_info = BagRecording.info

def info(self):
    signal.raise_signal(signal.SIGTERM)
    return real_info(self)

BagRecording.info = info
sys.exit(main(["info", sys.argv[1]]))
"""


def test_sigterm_during_info_removes_the_decompressed_bag(tmp_path: Path) -> None:
    """SIGTERM killed ``info`` on the spot, leaving a file-compressed bag's decompressed
    copy in the temporary folder; it now stops as Ctrl-C does (status 130) and closes the
    recording."""
    import subprocess
    import sys

    import numpy as np
    from support.bags import ROS2, header, write_bag

    stamp = 1_700_000_000_000_000_000
    image = ROS2.types["sensor_msgs/msg/Image"](
        header=header(ROS2, stamp, "camera"), height=2, width=3, encoding="rgb8",
        is_bigendian=0, step=9, data=np.zeros(18, np.uint8))
    bag = write_bag(tmp_path / "drive", "sqlite3",
                    [("/camera/image_raw", "sensor_msgs/msg/Image", stamp, image)], mode="file")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_INFO, str(bag), str(scratch)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 130, done.stderr
    assert list(scratch.iterdir()) == []


def test_info_says_where_the_calibration_of_a_kitti_drive_was_looked_for(
        kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real drive downloaded without its date's calibration (KITTI ships it apart):
    info printed 'rig: none' and nothing else, where a bag's says why."""
    date = tmp_path / "2011_09_26"
    drive = date / kitti_raw_drive.name
    drive.mkdir(parents=True)
    for name in ("image_02", "velodyne_points"):
        (drive / name).symlink_to(kitti_raw_drive / name, target_is_directory=True)
    assert main(["info", str(drive)]) == 0
    rig_line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("rig:"))
    assert rig_line == ("rig:       none (no calib_cam_to_cam.txt or calib_velo_to_cam.txt in "
                        f"the date folder {str(date)!r} (KITTI's 2011_09_26_calib.zip))")


def test_info_says_a_kitti_object_folder_has_no_calib_folder(
        kitti_object_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "training"
    folder.mkdir()
    for name in ("image_2", "velodyne"):
        (folder / name).symlink_to(kitti_object_root / name, target_is_directory=True)
    assert main(["info", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rig"] == "none (no calib/ folder beside image_2/)"


def test_info_by_receive_time_shows_a_lidar_on_its_own_clock_beside_the_camera(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lidar stamping by its oscillator (ouster-ros by default) spans 41 years before the
    camera by header stamps; ``--stamps receive`` shows the spans a replay with
    ``stamps:=receive`` uses. A KITTI drive, with no receive times, refuses it."""
    import dataclasses

    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive
    from drivingseg.sensors.ros_msgs_write import pointcloud2_to_msg

    bag = tmp_path / "osc.mcap"
    with KittiRawDrive(kitti_raw_drive) as rec, Ros2McapWriter(bag) as writer:
        for i in range(2):
            writer.write_image("/camera", rec.camera(i))
            scan = rec.lidar(i)
            oscillator = dataclasses.replace(scan, stamp_ns=1_234_000_000_000 + i * 100_000_000)
            writer.write("/ouster/points", pointcloud2_to_msg(oscillator, writer.typestore),
                         "sensor_msgs/msg/PointCloud2", scan.stamp_ns + 20_000_000)
        lidar_ns = [rec.lidar(i).stamp_ns + 20_000_000 for i in range(2)]
    for stamps, span in (("header", [1_234_000_000_000, 1_234_100_000_000]),
                         ("receive", lidar_ns)):
        assert main(["info", str(bag), "--stamps", stamps, "--json"]) == 0
        streams = {s["name"]: s for s in json.loads(capsys.readouterr().out)["streams"]}
        assert [streams["/ouster/points"][k] for k in ("first_ns", "last_ns")] == span
    assert main(["info", str(kitti_raw_drive), "--stamps", "receive"]) == 2
    assert f"{kitti_raw_drive}: stamps 'receive' only applies to bags" in capsys.readouterr().err
