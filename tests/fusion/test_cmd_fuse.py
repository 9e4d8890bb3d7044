"""``drivingseg fuse`` on the real KITTI raw drive and object folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.cli import build_parser, cmd_fuse
from drivingseg.errors import CalibrationError, ConfigError, RecordingError


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse through the real ``drivingseg`` parser, so registration is tested too."""
    args = build_parser().parse_args(["fuse", *argv])
    assert args.func is cmd_fuse.run
    return args


def test_fuse_raw_drive(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    depth_png, overlay = tmp_path / "depth.png", tmp_path / "out" / "overlay.jpg"
    args = parse(
        [
            str(kitti_raw_drive),
            "--frame",
            "3",
            "--depth-png",
            str(depth_png),
            "--overlay",
            str(overlay),
        ]
    )
    assert args.func(args) == 0
    depth = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED)
    assert depth is not None
    assert depth.dtype == np.uint16 and depth.shape == (375, 1242)
    assert 14000 < np.count_nonzero(depth) < 18500
    picture = cv2.imread(str(overlay))
    assert picture is not None
    assert picture.shape == (375, 1242, 3)
    assert "frame 3:" in capsys.readouterr().out


def test_fuse_object_folder(kitti_object_root: Path, tmp_path: Path) -> None:
    depth_png = tmp_path / "d.png"
    args = parse([str(kitti_object_root), "--frame", "2", "--depth-png", str(depth_png)])
    assert args.func(args) == 0
    depth = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED)
    assert depth is not None
    assert depth.shape == (514, 616) and 5000 < np.count_nonzero(depth) < 6200
    assert int(depth.max()) / 256 == pytest.approx(216.7, abs=0.5)  # the farthest point


def test_fuse_bad_inputs(kitti_raw_drive: Path, tmp_path: Path) -> None:
    args = parse([str(kitti_raw_drive), "--frame", "999", "--depth-png", str(tmp_path / "d.png")])
    with pytest.raises(ConfigError, match="--frame 999"):
        args.func(args)
    args = parse([str(tmp_path), "--depth-png", str(tmp_path / "d.png")])
    with pytest.raises(RecordingError, match="not a KITTI folder"):
        args.func(args)
    assert not (tmp_path / "d.png").exists()


def test_fuse_raw_drive_without_calibration_says_where_it_looked(
    kitti_raw_drive: Path, tmp_path: Path
) -> None:
    """A drive folder copied without its date folder's calib_*.txt failed with "the
    recording has no calibration for this camera", naming neither the files nor the folder."""
    date = tmp_path / "2011_09_26"
    date.mkdir()
    drive = date / kitti_raw_drive.name
    drive.symlink_to(kitti_raw_drive, target_is_directory=True)
    args = parse([str(drive), "--depth-png", str(tmp_path / "d.png")])
    message = (rf"no KITTI calibration for drive '{kitti_raw_drive.name}': expected "
               r"calib_cam_to_cam\.txt and calib_velo_to_cam\.txt in its date folder "
               r"'.*2011_09_26'")
    with pytest.raises(CalibrationError, match=message):
        args.func(args)
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize(("argv", "match"), [
    (["--frame", "-1"], r"--frame must be 0 or more, got -1"),
    (["--max-depth", "nan"], r"--max-depth must be a positive number of metres, got nan"),
    (["--max-depth", "inf"], r"--max-depth must be a positive number of metres, got inf"),
    (["--min-depth=-10"], r"--min-depth must be a number of metres >= 0, got -10.0"),
    (["--min-depth", "nan"], r"--min-depth must be a number of metres >= 0, got nan"),
    (["--overlay", "{tmp}/o.txt"], r"o\.txt: OpenCV writes no image format of suffix '\.txt'"),
    (["--depth-png", "{tmp}/d.jpg"], r"d\.jpg: a depth image is a 16-bit PNG"),
    (["--overlay", "{tmp}"], r"cannot write the overlay: it is a folder"),
])
def test_fuse_refuses_bad_outputs_before_reading(
    kitti_raw_drive: Path, tmp_path: Path, argv: list[str], match: str
) -> None:
    """Checked first: before, a negative frame read the last one, and an overlay suffix
    OpenCV cannot encode raised cv2.error after the projection was done."""
    args = parse([str(kitti_raw_drive), *(a.format(tmp=tmp_path) for a in argv)])
    with pytest.raises(ConfigError, match=match):
        args.func(args)
    assert list(tmp_path.iterdir()) == []
