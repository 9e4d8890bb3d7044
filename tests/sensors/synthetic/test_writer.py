"""A written synthetic drive is a KITTI raw folder the KITTI reader returns unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.cli import main
from drivingseg.errors import RecordingError
from drivingseg.sensors.kitti_raw import KittiRawDrive
from drivingseg.sensors.kitti_timestamps import read_kitti_timestamps
from drivingseg.sensors.synthetic import writer
from drivingseg.sensors.synthetic.drive import SyntheticDrive
from drivingseg.sensors.synthetic.writer import format_kitti_timestamp, write_synthetic_drive


def test_kitti_timestamp_format() -> None:
    assert format_kitti_timestamp(1_714_564_799_997_484_672) == "2024-05-01 11:59:59.997484672"


def test_kitti_reader_returns_the_written_frames(tmp_path: Path) -> None:
    drive_dir = write_synthetic_drive(tmp_path, frames=3, seed=5)
    assert drive_dir.name == "2024_05_01_drive_0001_sync"
    assert (drive_dir.parent / "calib_cam_to_cam.txt").is_file()
    with KittiRawDrive(drive_dir) as kitti, SyntheticDrive(seed=5, frames=3) as synth:
        assert len(kitti) == 3
        kitti_rig = kitti.rig()
        assert kitti_rig is not None
        assert np.allclose(
            kitti_rig.lidar_to_pixel_matrix(), synth.rig().lidar_to_pixel_matrix(), atol=1e-12
        )
        for i in range(3):
            a, b = kitti.camera(i), synth.camera(i)
            assert a.stamp_ns == b.stamp_ns
            assert np.array_equal(a.image, b.image)
            la, lb = kitti.lidar(i), synth.lidar(i)
            assert la.stamp_ns == lb.stamp_ns
            assert np.array_equal(la.points, lb.points)
            gt = cv2.imread(str(drive_dir / "gt" / "image_02" / f"{i:010d}.png"), -1)
            assert gt is not None
            assert np.array_equal(gt, synth.labels(i))
            point_gt = np.fromfile(drive_dir / "gt" / "velodyne" / f"{i:010d}.bin", np.uint8)
            assert np.array_equal(point_gt, synth.point_labels(i))
            boxes = np.loadtxt(drive_dir / "gt" / "boxes" / f"{i:010d}.txt", ndmin=2)
            ref = synth.car_boxes(i, "lidar", max_range_m=120.0)
            assert len(boxes) == len(ref)
            assert np.allclose(boxes[:, 1:4], [b.center for b in ref], atol=1e-4)
    stamps = read_kitti_timestamps(drive_dir / "velodyne_points" / "timestamps.txt")
    assert len(stamps) == 3


def test_two_workers_write_the_same_files_and_shorter_drive_removes_stale(
    tmp_path: Path,
) -> None:
    one = write_synthetic_drive(tmp_path / "one", frames=2, seed=1)
    two = write_synthetic_drive(tmp_path / "two", frames=3, seed=1, workers=2)
    for rel in (
        "image_02/data/0000000001.png",
        "velodyne_points/data/0000000001.bin",
        "gt/velodyne/0000000001.bin",
        "image_02/timestamps.txt",
    ):
        if rel.endswith("timestamps.txt"):
            assert (two / rel).read_text().startswith((one / rel).read_text())
        else:
            assert (one / rel).read_bytes() == (two / rel).read_bytes()
    write_synthetic_drive(tmp_path / "two", frames=2, seed=1)
    assert not (two / "image_02" / "data" / "0000000002.png").exists()
    with KittiRawDrive(two) as kitti:
        assert len(kitti) == 2


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_interrupted_rewrite_leaves_the_earlier_drive_whole(tmp_path: Path) -> None:
    drive_dir = write_synthetic_drive(tmp_path, frames=2, seed=1)
    before = _snapshot(drive_dir.parent)

    def interrupt_after_one(
        items: Iterable[tuple[int, int]], total: int
    ) -> Iterator[tuple[int, int]]:
        for n, item in enumerate(items):
            if n == 1:
                raise KeyboardInterrupt
            yield item

    with pytest.raises(KeyboardInterrupt):
        write_synthetic_drive(tmp_path, frames=2, seed=2, wrap=interrupt_after_one)
    assert _snapshot(drive_dir.parent) == before  # no frame of seed 2, no temporary folder
    assert [p.name for p in drive_dir.parent.iterdir() if p.is_dir()] == [drive_dir.name]
    with KittiRawDrive(drive_dir) as kitti, SyntheticDrive(seed=1, frames=2) as synth:
        assert np.array_equal(kitti.camera(0).image, synth.camera(0).image)


def test_failed_frame_write_keeps_the_earlier_drive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive_dir = write_synthetic_drive(tmp_path, frames=2, seed=1)
    before = _snapshot(drive_dir.parent)
    real_write_png = writer._write_png
    written: list[Path] = []

    def disk_full_on_third(path: Path, image: np.ndarray) -> None:
        if len(written) == 2:
            raise RecordingError("OpenCV could not write the PNG", path=path)
        written.append(path)
        real_write_png(path, image)

    monkeypatch.setattr(writer, "_write_png", disk_full_on_third)
    with pytest.raises(RecordingError, match=r"0000000001\.png: OpenCV could not write the PNG"):
        write_synthetic_drive(tmp_path, frames=2, seed=2)
    assert _snapshot(drive_dir.parent) == before
    assert sorted(p.name for p in drive_dir.parent.iterdir()) == [
        drive_dir.name,
        "calib_cam_to_cam.txt",
        "calib_velo_to_cam.txt",
    ]


def test_cli_writes_the_drive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["synth", str(tmp_path), "--frames", "2", "--seed", "2", "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote 2 frames (seed 2)" in out and "2024_05_01_drive_0001_sync" in out
    assert len(list(tmp_path.glob("*/*/image_02/data/*.png"))) == 2


def test_out_dir_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    """``drivingseg synth`` into a folder with a Latin-1 byte in its name crashed with a
    segmentation fault (``cv2.imwrite`` got the undecodable name); the drive is written
    (run in a subprocess, so a crash fails only this test)."""
    out = os.fsencode(tmp_path) + b"/drive\xff"
    argv = [os.fsencode(sys.executable), b"-m", b"drivingseg", b"synth", out,
            b"--frames", b"1", b"--workers", b"1"]
    done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    with KittiRawDrive(writer.drive_folder(os.fsdecode(out))) as drive:
        assert len(drive) == 1 and drive.camera(0).image.ndim == 3
