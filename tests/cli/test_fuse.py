"""``drivingseg fuse`` picks the reader as the other commands do (``tests/fusion/test_cmd_fuse.py``
has the projection checks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.cli import build_parser


def test_benchmark_root_is_read_at_its_training_split(
    kitti_object_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``drivingseg info ROOT`` reads ``ROOT/training``; ``fuse ROOT`` must too."""
    root = kitti_object_root.parent
    assert not (root / "image_2").exists() and (root / "training" / "image_2").is_dir()
    depth_png = tmp_path / "d.png"
    args = build_parser().parse_args(
        ["fuse", str(root), "--frame", "1", "--depth-png", str(depth_png)])
    assert args.func(args) == 0
    depth = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED)
    assert depth is not None and depth.shape == (514, 616)
    assert "frame 1: 86080 points" in capsys.readouterr().out


def test_benchmark_root_with_only_the_test_split(
    kitti_object_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    testing = tmp_path / "root" / "testing"
    testing.mkdir(parents=True)
    for name in ("image_2", "velodyne", "calib"):
        (testing / name).symlink_to(kitti_object_root / name)
    args = build_parser().parse_args(["fuse", str(tmp_path / "root"), "--frame", "1"])
    assert args.func(args) == 0
    assert "frame 1: 86080 points" in capsys.readouterr().out


def test_overlay_name_that_is_not_utf8_is_written(kitti_object_root: Path, tmp_path: Path) -> None:
    """An overlay file name with a Latin-1 byte (``o\\xff.png``) crashed the process with a
    segmentation fault (OpenCV's ``haveImageWriter`` got the undecodable name); it is
    written like any other (run in a subprocess, so a crash fails only this test)."""
    overlay = os.fsencode(tmp_path) + b"/o\xff.png"
    argv = [os.fsencode(sys.executable), b"-m", b"drivingseg", b"fuse",
            os.fsencode(kitti_object_root), b"--overlay", overlay]
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    image = cv2.imdecode(np.fromfile(os.fsdecode(overlay), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (514, 616, 3)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--min-depth", "100", "--max-depth", "10"],
         r"--min-depth 100\.0 must be below --max-depth 10\.0 \(metres\)"),
        ([], r"nowhere: no such folder"),
    ],
)
def test_fuse_refuses_a_depth_range_upside_down_and_a_missing_folder(
    kitti_object_root: Path, tmp_path: Path, extra: list[str], match: str
) -> None:
    """``--min-depth 100 --max-depth 10`` drew no point and exited 0; a missing folder was
    called 'not a KITTI folder'."""
    from drivingseg.errors import DrivingsegError

    path = kitti_object_root if extra else tmp_path / "nowhere"
    args = build_parser().parse_args(["fuse", str(path), *extra])
    with pytest.raises(DrivingsegError, match=match):
        args.func(args)
