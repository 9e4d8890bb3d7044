"""``drivingseg fuse`` on the real KITTI raw drive and object folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.cli import build_parser, cmd_fuse
from drivingseg.errors import ConfigError, RecordingError


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
