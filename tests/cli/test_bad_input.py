"""Every bad input of the foundation issue through the real CLI: exit status 2, one line on
stderr that names the file and the problem, no traceback, and nothing written is lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drivingseg.cli import main
from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.sensors.frames import CameraFrame
from drivingseg.sensors.ros_msgs_write import header, ros2_typestore


def copy_drive(kitti_raw_root: Path, dst: Path, frames: int = 3) -> Path:
    """A small real KITTI raw drive: the date folder's calib files and ``frames`` frames."""
    src = kitti_raw_root / "2011_09_26_drive_0000_sync"
    date = dst / "2011_09_26"
    drive = date / src.name
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        date.mkdir(parents=True, exist_ok=True)
        shutil.copy(kitti_raw_root / name, date / name)
    for sensor, ext in (("image_02", ".png"), ("velodyne_points", ".bin")):
        (drive / sensor / "data").mkdir(parents=True)
        stamps = (src / sensor / "timestamps.txt").read_text().splitlines()[:frames]
        (drive / sensor / "timestamps.txt").write_text("\n".join(stamps) + "\n")
        for i in range(frames):
            name = f"{i:010d}{ext}"
            shutil.copy(src / sensor / "data" / name, drive / sensor / "data" / name)
    return drive


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def read_topics(path: Path) -> list[str]:
    """Topics of every message in an MCAP, read with the mcap library alone."""
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [ch.topic for _, ch, _, _ in reader.iter_decoded_messages()]


@pytest.fixture
def drive(kitti_raw_root: Path, tmp_path: Path) -> Path:
    return copy_drive(kitti_raw_root, tmp_path / "in")


def test_bin_not_multiple_of_16_keeps_written_frames(
    drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = drive / "velodyne_points" / "data" / "0000000002.bin"
    bad.write_bytes(bad.read_bytes()[:-5])
    out = tmp_path / "out.mcap"
    line = run_cli(["convert", str(drive), str(out)], capsys)
    assert str(bad) in line and "not a multiple of 16" in line
    topics = read_topics(out)
    assert topics.count("/kitti/camera_color_left/image_rect") >= 2
    assert topics.count("/kitti/velo/pointcloud") >= 1


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_bad_png_keeps_written_frames(
    drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    bad = drive / "image_02" / "data" / "0000000001.png"
    data = bad.read_bytes()
    garbage = data[:16] + b"x" * 500 + data[-12:]  # PNG signature and IEND, nonsense between
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else garbage)
    out = tmp_path / "out.mcap"
    line = run_cli(["convert", str(drive), str(out)], capsys)
    assert str(bad) in line
    assert ("truncated PNG" if damage == "truncated" else "corrupt") in line
    assert read_topics(out).count("/kitti/camera_color_left/image_rect") == 1


def test_missing_calib_file(
    kitti_object_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "training"
    shutil.copytree(kitti_object_root, root)
    (root / "calib" / "000001.txt").unlink()
    line = run_cli(["info", str(root)], capsys)
    assert line.endswith("has an image but no calib/000001.txt")


def test_calib_without_p2(drive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = drive.parent / "calib_cam_to_cam.txt"
    kept = [ln for ln in calib.read_text().splitlines() if not ln.startswith("P_rect_02")]
    calib.write_text("\n".join(kept) + "\n")
    line = run_cli(["info", str(drive)], capsys)
    assert str(calib) in line and "P_rect_02" in line


def test_non_orthonormal_rotation(drive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = drive.parent / "calib_velo_to_cam.txt"
    text = calib.read_text().replace("R: 7.533745e-03", "R: 1.533745e-01")
    calib.write_text(text)
    line = run_cli(["info", str(drive)], capsys)
    assert str(calib) in line and "not a rotation" in line


def test_timestamps_going_backwards(drive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stamps = drive / "velodyne_points" / "timestamps.txt"
    lines = stamps.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    stamps.write_text("\n".join(lines) + "\n")
    line = run_cli(["info", str(drive)], capsys)
    assert str(stamps) in line and "backwards" in line


def write_bag(path: Path, cloud_fields: tuple[str, ...] = ("x", "y", "z")) -> Path:
    ts = ros2_typestore()
    pf = ts.types["sensor_msgs/msg/PointField"]
    points = np.arange(12, dtype=np.float32).reshape(4, 3)
    cloud = ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(10, "velo", ts),
        height=1,
        width=4,
        fields=[pf(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(cloud_fields)],
        is_bigendian=False,
        point_step=12,
        row_step=48,
        data=points.view(np.uint8).reshape(-1),
        is_dense=True,
    )
    image = CameraFrame(10, np.zeros((4, 6, 3), np.uint8), "cam")
    with Ros2McapWriter(path) as writer:
        writer.write_image("/cam/image", image)
        writer.write("/velo/points", cloud, "sensor_msgs/msg/PointCloud2", 10)
    return path


def test_bag_without_requested_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_bag(tmp_path / "in.mcap")
    line = run_cli(["info", str(bag), "--lidar-topic", "/nope"], capsys)
    assert str(bag) in line and "'/nope'" in line and "/velo/points" in line


def test_pointcloud_without_x(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_bag(tmp_path / "in.mcap", cloud_fields=("a", "y", "z"))
    out = tmp_path / "out.mcap"
    line = run_cli(["convert", str(bag), str(out)], capsys)
    assert str(bag) in line and "no x field" in line and "['a', 'y', 'z']" in line
    assert read_topics(out) == []  # finalised and readable, even with nothing in it


def test_a_good_copy_converts(drive: Path, tmp_path: Path) -> None:
    """The fixture itself is sound: the failures above come from the damage alone."""
    out = tmp_path / "ok.mcap"
    assert main(["convert", str(drive), str(out)]) == 0
    assert len(read_topics(out)) == 3 + 3 + 3 + 1
