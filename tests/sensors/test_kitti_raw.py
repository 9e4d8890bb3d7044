"""KittiRawDrive and the KITTI timestamp parser, on the real drive and on small fake drives."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.sensors import kitti_raw
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_raw import CALIB_FILES, KittiRawDrive
from drivingseg.sensors.kitti_timestamps import (
    parse_kitti_timestamp,
    read_kitti_timestamp_lines,
    read_kitti_timestamps,
)
from drivingseg.sync import SyncStats, synchronize

START_NS = int(datetime(2011, 9, 26, 13, 0, 0, tzinfo=timezone.utc).timestamp()) * 10**9
STEP_NS = 100_000_000


def _imread_rgb(path: Path) -> np.ndarray:
    """The reference decoding: OpenCV's own reader, BGR turned to RGB."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return bgr[:, :, ::-1]


def _stamp_line(ns: int) -> str:
    sec, frac = divmod(ns, 10**9)
    day = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{day}.{frac:09d}"


def make_drive(
    root: Path,
    *,
    n_cam: int | None = 2,
    n_lidar: int | None = 2,
    cam_stamps: list[str] | None = None,
) -> Path:
    """A tiny drive ``root/2011_09_26/x_drive_sync`` with 8x6 PNGs and 5-point scans."""
    drive = root / "2011_09_26" / "x_drive_sync"
    drive.mkdir(parents=True)
    if n_cam is not None:
        data = drive / "image_02" / "data"
        data.mkdir(parents=True)
        for i in range(n_cam):
            img = np.full((6, 8, 3), (10 * i, 20, 30), dtype=np.uint8)
            assert cv2.imwrite(str(data / f"{i:010d}.png"), img)
        lines = cam_stamps or [_stamp_line(START_NS + i * STEP_NS) for i in range(n_cam)]
        (drive / "image_02" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    if n_lidar is not None:
        data = drive / "velodyne_points" / "data"
        data.mkdir(parents=True)
        for i in range(n_lidar):
            np.full((5, 4), i, dtype=np.float32).tofile(data / f"{i:010d}.bin")
        lines = [_stamp_line(START_NS + 50_000_000 + i * STEP_NS) for i in range(n_lidar)]
        (drive / "velodyne_points" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    return drive


# --- timestamps -------------------------------------------------------------------------


def test_timestamp_parse_is_exact_to_the_nanosecond() -> None:
    assert parse_kitti_timestamp("2011-09-26 13:00:00.000000000") == START_NS
    # 19 significant digits: a float64 would round the last ones away.
    assert parse_kitti_timestamp("2011-09-26 13:00:00.123456789") == START_NS + 123_456_789
    assert parse_kitti_timestamp("  2011-09-26 13:00:01.5\t") == START_NS + 1_500_000_000
    assert parse_kitti_timestamp("1970-01-01 00:00:00") == 0


@pytest.mark.parametrize(
    "text", ["2011-09-26", "2011-13-26 13:00:00.0", "2011-09-26 13:00:00.1234567890", "x"]
)
def test_timestamp_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_kitti_timestamp(text)


def test_read_timestamps_tolerates_trailing_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "timestamps.txt"
    f.write_text(f"  {_stamp_line(START_NS)}  \n{_stamp_line(START_NS + 7)}\n\n  \n")
    stamps = read_kitti_timestamps(f)
    assert stamps.dtype == np.int64
    assert stamps.tolist() == [START_NS, START_NS + 7]
    assert not stamps.flags.writeable


def test_read_timestamps_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"nope\.txt: timestamps file not found"):
        read_kitti_timestamps(tmp_path / "nope.txt")


# --- the real drive ---------------------------------------------------------------------


def test_real_drive_counts_stamps_and_info(kitti_raw_drive: Path) -> None:
    with KittiRawDrive(kitti_raw_drive) as drive:
        assert len(drive) == 30
        for stamps in (drive.camera_stamps_ns, drive.lidar_stamps_ns):
            assert stamps.dtype == np.int64
            assert len(stamps) == 30
            assert int(stamps[0]) == START_NS == 1_317_042_000_000_000_000
            assert np.all(np.diff(stamps) == STEP_NS)
        info = drive.info()
    assert info.format == "kitti_raw"
    assert [(s.name, s.kind, s.msgtype, s.count) for s in info.streams] == [
        ("image_02", "camera", "png", 30),
        ("velodyne_points", "lidar", "bin", 30),
    ]
    assert info.streams[0].first_ns == START_NS
    assert info.streams[1].last_ns == START_NS + 29 * STEP_NS
    assert info.streams[0].rate_hz == pytest.approx(10.0)


def test_real_drive_frames_match_the_files(kitti_raw_drive: Path) -> None:
    with KittiRawDrive(kitti_raw_drive) as drive:
        rig = drive.rig()
        assert rig is not None
        assert rig.camera.image_size == (1242, 375)
        frame = drive.camera(5)
        scan = drive.lidar(5)
    png = kitti_raw_drive / "image_02" / "data" / "0000000005.png"
    assert frame.image.shape == (375, 1242, 3)
    assert frame.image.dtype == np.uint8
    np.testing.assert_array_equal(frame.image, _imread_rgb(png))
    assert (frame.index, frame.stamp_ns, frame.source) == (5, START_NS + 5 * STEP_NS, str(png))
    assert frame.frame_id == rig.camera_frame
    binf = kitti_raw_drive / "velodyne_points" / "data" / "0000000005.bin"
    expected = np.fromfile(binf, dtype=np.float32).reshape(-1, 4)
    assert scan.points.dtype == np.float32
    assert 100_000 < len(scan) < 130_000
    np.testing.assert_array_equal(scan.points, expected)
    assert scan.frame_id == rig.lidar_frame == "velodyne"


def test_real_drive_messages_are_time_ordered_and_interleaved(kitti_raw_drive: Path) -> None:
    with KittiRawDrive(kitti_raw_drive) as drive:
        msgs = list(drive.messages())
    assert len(msgs) == 60
    stamps = [m.stamp_ns for m in msgs]
    assert stamps == sorted(stamps)
    kinds = [type(m) for m in msgs]
    assert kinds == [CameraFrame, LidarScan] * 30
    assert [m.index for m in msgs[::2]] == list(range(30))


def test_iteration_is_lazy(kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = kitti_raw.read_image_rgb

    def counting(path: Path) -> np.ndarray:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(kitti_raw, "read_image_rgb", counting)
    with KittiRawDrive(kitti_raw_drive) as drive:
        frames = drive.camera_frames()
        assert calls == []
        next(frames)
        next(frames)
        assert [p.name for p in calls] == ["0000000000.png", "0000000001.png"]


def test_explicit_calib_dir_and_camera_argument(kitti_raw_root: Path, tmp_path: Path) -> None:
    drive = make_drive(tmp_path)
    with KittiRawDrive(drive) as plain:
        assert plain.rig() is None
        assert plain.camera(0).frame_id == "image_02"
        assert plain.lidar(0).frame_id == "velodyne"
    with KittiRawDrive(drive, calib_dir=kitti_raw_root) as calibrated:
        rig = calibrated.rig()
        assert rig is not None
        assert calibrated.camera(1).frame_id == rig.camera_frame
    with pytest.raises(CalibrationError, match="calib"):
        KittiRawDrive(drive, calib_dir=tmp_path / "nowhere").open()
    with pytest.raises(ConfigError, match="camera must be"):
        KittiRawDrive(drive, camera=7)


def test_relative_drive_path_finds_the_date_folder_calibration(
    kitti_raw_root: Path, kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KittiRawDrive(kitti_raw_drive) as absolute:
        expected = absolute.rig()
    assert expected is not None
    monkeypatch.chdir(kitti_raw_drive)
    with KittiRawDrive(".") as drive:
        rig = drive.rig()
        assert len(drive) == 30
    assert drive.calib_dir.resolve() == kitti_raw_root.resolve()  # ../shared may be a link
    assert rig is not None
    np.testing.assert_array_equal(rig.lidar_to_pixel_matrix(), expected.lidar_to_pixel_matrix())
    monkeypatch.chdir(kitti_raw_drive / "image_02")
    with KittiRawDrive("..") as parent:
        assert parent.rig() is not None


def test_not_open_raises(kitti_raw_drive: Path) -> None:
    drive = KittiRawDrive(kitti_raw_drive)
    for use in (
        lambda: len(drive),
        lambda: drive.camera(0),
        lambda: drive.camera_frames(),
        lambda: drive.lidar_scans(),
        lambda: list(drive.messages()),
        lambda: drive.info(),
        lambda: drive.rig(),
        lambda: drive.camera_stamps_ns,
    ):
        with pytest.raises(RecordingError, match="KittiRawDrive is not open"):
            use()
    with drive:
        assert len(drive) == 30
    with pytest.raises(RecordingError, match="not open"):
        drive.lidar(0)


# --- fake drives ------------------------------------------------------------------------


def test_camera_only_and_lidar_only(tmp_path: Path) -> None:
    cam_only = make_drive(tmp_path / "a", n_cam=3, n_lidar=None)
    with KittiRawDrive(cam_only) as drive:
        drive.require_camera()
        assert len(drive) == 3
        assert [s.name for s in drive.info().streams] == ["image_02"]
        assert list(drive.lidar_scans()) == []
        assert len(drive.lidar_stamps_ns) == 0
        assert len(list(drive.messages())) == 3
        with pytest.raises(RecordingError, match="no velodyne_points/ folder"):
            drive.lidar(0)
    lidar_only = make_drive(tmp_path / "b", n_cam=None, n_lidar=4)
    with KittiRawDrive(lidar_only) as drive:
        assert len(drive) == 4
        assert [s.kind for s in drive.info().streams] == ["lidar"]
        assert [len(s) for s in drive.lidar_scans()] == [5, 5, 5, 5]
        match = r"x_drive_sync: camera 2: image_02/ does not exist \(it has no camera folder\)"
        with pytest.raises(RecordingError, match=match):
            drive.require_camera()
    with KittiRawDrive(make_drive(tmp_path / "d"), camera=3) as drive:
        assert drive.other_cameras() == (2,)
        match = r"camera 3: image_03/ does not exist \(it has image_02/\); pick one with --camera N"
        with pytest.raises(RecordingError, match=match):
            drive.require_camera()
    empty = tmp_path / "c" / "drive"
    empty.mkdir(parents=True)
    with pytest.raises(RecordingError, match="neither image_02/ nor velodyne_points/"):
        KittiRawDrive(empty).open()
    with pytest.raises(RecordingError, match="drive folder not found"):
        KittiRawDrive(tmp_path / "missing").open()


def test_bin_size_not_multiple_of_16_fails_only_that_scan(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, n_lidar=3)
    (drive / "velodyne_points" / "data" / "0000000001.bin").write_bytes(b"\x00" * 20)
    with KittiRawDrive(drive) as reader:
        scans = reader.lidar_scans()
        assert len(next(scans)) == 5
        with pytest.raises(
            RecordingError, match=r"0000000001\.bin: size 20 bytes .*multiple of 16"
        ):
            next(scans)


def test_truncated_real_png(kitti_raw_drive: Path, tmp_path: Path) -> None:
    drive = make_drive(tmp_path)
    real = (kitti_raw_drive / "image_02" / "data" / "0000000000.png").read_bytes()
    (drive / "image_02" / "data" / "0000000001.png").write_bytes(real[: len(real) // 2])
    with KittiRawDrive(drive) as reader:
        assert reader.camera(0).image.shape == (6, 8, 3)
        with pytest.raises(RecordingError, match=r"0000000001\.png: truncated PNG"):
            reader.camera(1)


def test_corrupt_png(tmp_path: Path) -> None:
    drive = make_drive(tmp_path)
    garbage = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"IEND\xaeB`\x82"
    (drive / "image_02" / "data" / "0000000000.png").write_bytes(garbage)
    with (
        KittiRawDrive(drive) as reader,
        pytest.raises(RecordingError, match=r"0000000000\.png: corrupt image"),
    ):
        list(reader.camera_frames())


def test_timestamps_going_backwards(tmp_path: Path) -> None:
    lines = [_stamp_line(START_NS + STEP_NS), _stamp_line(START_NS)]
    drive = make_drive(tmp_path, cam_stamps=lines)
    pattern = (
        rf"image_02/timestamps\.txt: line 2: timestamp goes backwards: "
        rf"'{re.escape(lines[1])}' \({START_NS} ns\) is before line 1 \({START_NS + STEP_NS} ns\)"
    )
    with pytest.raises(RecordingError, match=pattern):
        KittiRawDrive(drive).open()


def test_malformed_timestamp_line(tmp_path: Path) -> None:
    lines = [_stamp_line(START_NS), "2011-09-26 13:00:xx.100000000"]
    drive = make_drive(tmp_path, cam_stamps=lines)
    pattern = r"timestamps\.txt: line 2: malformed timestamp '2011-09-26 13:00:xx\.100000000'"
    with pytest.raises(RecordingError, match=pattern):
        KittiRawDrive(drive).open()


def test_timestamp_count_mismatch(tmp_path: Path) -> None:
    lines = [_stamp_line(START_NS + i * STEP_NS) for i in range(3)]
    drive = make_drive(tmp_path, n_cam=2, cam_stamps=lines)
    with pytest.raises(RecordingError, match=r"timestamps\.txt: 3 timestamps for 2 \.png files"):
        KittiRawDrive(drive).open()


def test_gap_in_numbering_names_the_missing_file(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, n_cam=3)
    (drive / "image_02" / "data" / "0000000001.png").unlink()
    with pytest.raises(RecordingError, match=r"0000000001\.png: frame 1 is missing"):
        KittiRawDrive(drive).open()


def test_missing_timestamps_file(tmp_path: Path) -> None:
    drive = make_drive(tmp_path)
    (drive / "velodyne_points" / "timestamps.txt").unlink()
    with pytest.raises(RecordingError, match=r"velodyne_points/timestamps\.txt: .*not found"):
        KittiRawDrive(drive).open()


def test_broken_calibration_raises(kitti_raw_root: Path, tmp_path: Path) -> None:
    drive = make_drive(tmp_path)
    date = drive.parent
    shutil.copy(kitti_raw_root / "calib_cam_to_cam.txt", date)
    with pytest.raises(CalibrationError, match=r"calib_velo_to_cam\.txt"):
        KittiRawDrive(drive).open()
    shutil.copy(kitti_raw_root / "calib_velo_to_cam.txt", date)
    with KittiRawDrive(drive) as ok:
        assert ok.rig() is not None
    (date / "calib_velo_to_cam.txt").write_text("R: 1 0 0\nT: 0 0 0\n")
    with pytest.raises(CalibrationError, match=r"calib_velo_to_cam\.txt: field 'R'"):
        KittiRawDrive(drive).open()


# --- dropped scans, repeated stamps, sizes, indices --------------------------------------


def _drop_scans(drive: Path, frames: list[int]) -> None:
    """Drop velodyne ``frames`` as KITTI's recorder does: no .bin, a blank timestamps line."""
    folder = drive / "velodyne_points"
    lines = (folder / "timestamps.txt").read_text().splitlines()
    for i in frames:
        (folder / "data" / f"{i:010d}.bin").unlink()
        lines[i] = ""
    (folder / "timestamps.txt").write_text("\n".join(lines) + "\n")


def test_dropped_velodyne_scans_keep_the_frame_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As 2011_09_26_drive_0009_sync: scans 177-180 have no .bin and a blank stamp line."""
    drive = make_drive(tmp_path, n_cam=6, n_lidar=6)
    _drop_scans(drive, [2, 3])
    with KittiRawDrive(drive) as reader:
        assert len(reader) == 6
        assert reader.lidar_frame_numbers.tolist() == [0, 1, 4, 5]
        expected = [START_NS + 50_000_000 + i * STEP_NS for i in (0, 1, 4, 5)]
        assert reader.lidar_stamps_ns.tolist() == expected
        assert [f.name for f in reader.lidar_files] == [f"{i:010d}.bin" for i in (0, 1, 4, 5)]
        assert [(s.index, s.stamp_ns) for s in reader.lidar_scans()] == list(
            zip([0, 1, 4, 5], expected, strict=True))
        assert (reader.lidar(4).index, reader.lidar(-1).index) == (4, 5)
        assert reader.info().streams[1].count == 4
        with pytest.raises(RecordingError, match=r"0000000003\.bin: velodyne_points frame 3 "
                           r"was dropped by the recorder \(line 4 of timestamps\.txt is blank"):
            reader.lidar(3)
        stats = SyncStats()
        pairs = list(synchronize(reader.camera_frames(), reader.lidar_scans(), stats=stats))
    assert [(p.camera.index, p.lidar.index if p.lidar else None) for p in pairs] == [
        (0, 0), (1, 1), (4, 4), (5, 5)]
    assert (stats.matched, stats.unmatched_camera) == (4, 2)
    assert "2 of 6 frames were dropped by the recorder (frames 2-3" in caplog.text


def test_real_drive_with_dropped_scans_pairs_the_others(
    kitti_raw_root: Path, kitti_raw_drive: Path, tmp_path: Path
) -> None:
    """The real drive, linked file by file into tmp_path, with scans 10-12 dropped."""
    date = tmp_path / kitti_raw_root.name
    drive = date / kitti_raw_drive.name
    date.mkdir()
    for name in CALIB_FILES:
        (date / name).symlink_to(kitti_raw_root / name)
    for folder in ("image_02", "velodyne_points"):
        (drive / folder / "data").mkdir(parents=True)
        shutil.copy(kitti_raw_drive / folder / "timestamps.txt", drive / folder)
        for f in (kitti_raw_drive / folder / "data").iterdir():
            (drive / folder / "data" / f.name).symlink_to(f)
    _drop_scans(drive, [10, 11, 12])
    with KittiRawDrive(drive) as reader:
        assert len(reader) == 30 and len(reader.lidar_files) == 27
        assert len(reader.lidar(13)) > 100_000
        stats = SyncStats()
        pairs = list(synchronize(reader.camera_frames(), reader.lidar_scans(), stats=stats))
    assert [p.camera.index for p in pairs] == [i for i in range(30) if i not in (10, 11, 12)]
    assert all(p.lidar is not None and p.lidar.index == p.camera.index for p in pairs)
    assert (stats.matched, stats.unmatched_camera) == (27, 3)


def test_missing_scan_with_a_stamp_is_refused(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, n_lidar=4)
    (drive / "velodyne_points" / "data" / "0000000002.bin").unlink()
    pattern = (r"0000000002\.bin: frame 2 is missing \(numbering jumps to '0000000003\.bin'\), "
               r"yet line 3 of timestamps\.txt has its stamp")
    with pytest.raises(RecordingError, match=pattern):
        KittiRawDrive(drive).open()


def test_blank_stamp_line_of_an_existing_file_is_refused(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, n_lidar=3)
    f = drive / "velodyne_points" / "timestamps.txt"
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], "", lines[2]]) + "\n")
    pattern = (r"velodyne_points/timestamps\.txt: line 2 is blank, but frame 1 has a file, "
               r"'0000000001\.bin'")
    with pytest.raises(RecordingError, match=pattern):
        KittiRawDrive(drive).open()


def test_blank_camera_stamp_line_is_refused(tmp_path: Path) -> None:
    lines = [_stamp_line(START_NS), "", _stamp_line(START_NS + STEP_NS)]
    drive = make_drive(tmp_path, n_cam=2, cam_stamps=lines)
    (drive / "image_02" / "data" / "0000000001.png").rename(
        drive / "image_02" / "data" / "0000000002.png")
    with pytest.raises(RecordingError, match=r"image_02/timestamps\.txt: line 2 is blank; every "
                       r"image_02/ frame needs a stamp"):
        KittiRawDrive(drive).open()


def test_timestamp_lines_keep_blank_lines_as_none(tmp_path: Path) -> None:
    f = tmp_path / "timestamps.txt"
    f.write_text(f"{_stamp_line(START_NS)}\n\n  \n{_stamp_line(START_NS + 9)}\n\n")
    assert read_kitti_timestamp_lines(f) == [START_NS, None, None, START_NS + 9]
    with pytest.raises(RecordingError, match=r"timestamps\.txt: line 2: blank line between"):
        read_kitti_timestamps(f)


def test_repeated_stamps_are_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    lines = [_stamp_line(START_NS + i * STEP_NS) for i in (0, 1, 1, 2, 2)]
    drive = make_drive(tmp_path, n_cam=5, cam_stamps=lines)
    with KittiRawDrive(drive):
        pass
    assert caplog.text.count("repeated stamps") == 1
    assert f"2 repeated stamps (the first at line 3, {START_NS + STEP_NS} ns)" in caplog.text


def test_a_frame_of_another_size_is_warned_once(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    drive = make_drive(tmp_path, n_cam=4)
    for i in (2, 3):
        cv2.imwrite(str(drive / "image_02" / "data" / f"{i:010d}.png"),
                    np.zeros((10, 12, 3), np.uint8))
    with KittiRawDrive(drive) as reader:
        shapes = [f.image.shape for f in reader.camera_frames()]
    assert shapes == [(6, 8, 3), (6, 8, 3), (10, 12, 3), (10, 12, 3)]
    assert caplog.text.count("the first one read was") == 1
    assert "image_02: frame 2 is 12x10, the first one read was 8x6" in caplog.text


def test_frame_indices(tmp_path: Path) -> None:
    with KittiRawDrive(make_drive(tmp_path, n_cam=3, n_lidar=3)) as reader:
        assert reader.camera(-1).index == 2
        index = reader.lidar(np.int64(1)).index
        assert type(index) is int and index == 1
        for bad in (3, -4):
            with pytest.raises(IndexError, match=rf"image_02 index {bad} out of range for 3"):
                reader.camera(bad)
        with pytest.raises(TypeError, match="'float' object cannot be interpreted"):
            reader.camera(1.0)  # type: ignore[arg-type]


def test_two_files_of_one_frame_number_are_refused(tmp_path: Path) -> None:
    drive = make_drive(tmp_path, n_cam=2)
    shutil.copy(drive / "image_02" / "data" / "0000000001.png",
                drive / "image_02" / "data" / "00000000001.png")
    with pytest.raises(RecordingError, match=r"/0000000001\.png: file name '0000000001\.png' "
                       r"repeats frame 1 of '00000000001\.png'"):
        KittiRawDrive(drive).open()


def test_extract_layout_is_refused_saying_so(tmp_path: Path) -> None:
    """KITTI's unsynced '_extract' drives (text scans, unrectified images) are refused by
    name: not 'no .bin files', nor read with the rectified calibration."""
    drive = make_drive(tmp_path / "a", n_lidar=None)
    velo = drive / "velodyne_points"
    (velo / "data").mkdir(parents=True)
    np.savetxt(velo / "data" / "0000000000.txt", np.ones((5, 4), dtype=np.float32))
    (velo / "timestamps.txt").write_text(_stamp_line(START_NS) + "\n")
    with pytest.raises(RecordingError, match=r"velodyne_points/data: holds \.txt scans.*'extract'"):
        KittiRawDrive(drive).open()
    extract = make_drive(tmp_path / "b", n_lidar=None).rename(
        tmp_path / "b" / "2011_09_26" / "2011_09_26_drive_0001_extract")
    with pytest.raises(RecordingError, match=r"drive_0001_extract: .*unsynced 'extract' layout"):
        KittiRawDrive(extract).open()


def test_images_not_the_calibrated_size_are_warned_at_open(
    kitti_raw_root: Path, kitti_raw_drive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real frames halved (621x188) beside the real 1242x375 calibration: the lidar would
    land on the wrong pixels, so opening says which file, both sizes and the calibration."""
    date = tmp_path / kitti_raw_root.name
    drive = date / kitti_raw_drive.name
    (drive / "image_02" / "data").mkdir(parents=True)
    for name in CALIB_FILES:
        (date / name).symlink_to(kitti_raw_root / name)
    for i in range(3):
        name = f"{i:010d}.png"
        small = cv2.resize(cv2.imread(str(kitti_raw_drive / "image_02" / "data" / name)),
                           (621, 188), interpolation=cv2.INTER_AREA)
        assert cv2.imwrite(str(drive / "image_02" / "data" / name), small)
    lines = (kitti_raw_drive / "image_02" / "timestamps.txt").read_text().splitlines()[:3]
    (drive / "image_02" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    with KittiRawDrive(drive) as reader:
        assert caplog.text.count("S_rect_02") == 1
        assert [f.image.shape for f in reader.camera_frames()] == [(188, 621, 3)] * 3
    assert caplog.text.count("S_rect_02") == 1
    assert (f"image_02: frame 0 (0000000000.png) is 621x188 pixels but "
            f"{date / 'calib_cam_to_cam.txt'} (S_rect_02) is for 1242x375 images") in caplog.text
    caplog.clear()
    with KittiRawDrive(kitti_raw_drive) as reader:
        next(reader.camera_frames())
    assert "S_rect_02" not in caplog.text


def test_camera_and_velodyne_of_different_lengths_are_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with KittiRawDrive(make_drive(tmp_path / "a", n_cam=5, n_lidar=3)) as reader:
        assert len(reader) == 5
        with pytest.raises(IndexError, match="velodyne_points index 4 out of range for 3"):
            reader.lidar(4)
    assert ("x_drive_sync: image_02/ has 5 frames but velodyne_points/ has 3: image_02 "
            "frames 3-4 have no velodyne_points frame") in caplog.text
    caplog.clear()
    with KittiRawDrive(make_drive(tmp_path / "b", n_cam=2, n_lidar=3)):
        pass
    assert ("image_02/ has 2 frames but velodyne_points/ has 3: velodyne_points frame 2 "
            "has no image_02 frame") in caplog.text
    caplog.clear()
    with KittiRawDrive(make_drive(tmp_path / "c", n_cam=3, n_lidar=3)):
        pass
    assert "frames but" not in caplog.text


def test_frames_from_a_stamp_read_no_file_before_it(kitti_raw_drive: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay window at the end of a minutes-long drive read (decoded) every PNG and scan
    before it; the stamps come from timestamps.txt, so those files are now left unread."""
    read: list[str] = []

    def counting(real: Any) -> Any:
        def wrapped(path: Path) -> Any:
            read.append(Path(path).stem)
            return real(path)
        return wrapped

    for name in ("read_image_rgb", "read_velodyne_bin"):
        monkeypatch.setattr(kitti_raw, name, counting(getattr(kitti_raw, name)))
    with KittiRawDrive(kitti_raw_drive) as drive:
        start_ns = int(drive.camera_stamps_ns[27])
        frames = list(drive.camera_frames_from(start_ns))
        scans = list(drive.lidar_scans_from(int(drive.lidar_stamps_ns[28])))
        assert [f.index for f in frames] == [27, 28, 29]
        assert [f.stamp_ns for f in frames] == [int(s) for s in drive.camera_stamps_ns[27:]]
        assert [s.index for s in scans] == [28, 29]
        np.testing.assert_array_equal(frames[0].image, drive.camera(27).image)
    assert read == [f"{n:010d}" for n in (27, 28, 29, 28, 29, 27)]
