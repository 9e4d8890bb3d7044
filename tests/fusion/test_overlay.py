"""Depth PNG encoding (KITTI convention), atomic writes and point overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.calibration.types import Rig
from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.fusion.overlay import (
    depth_to_png16,
    draw_overlay,
    read_depth_png,
    write_depth_png,
    write_image_atomic,
)
from drivingseg.fusion.zbuffer import depth_image


def test_depth_png_round_trip(tmp_path: Path, raw_scan: np.ndarray, raw_rig: Rig) -> None:
    depth = depth_image(raw_scan, raw_rig)
    path = tmp_path / "depth.png"
    write_depth_png(path, depth)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw is not None
    assert raw.dtype == np.uint16 and raw.shape == depth.shape
    back = np.asarray(raw, dtype=np.float64) / 256.0
    assert np.array_equal(raw > 0, depth > 0)
    assert np.abs(back - depth).max() <= 1 / 256
    assert np.array_equal(read_depth_png(path), (back).astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.png"]


def test_depth_png_clips_far_and_keeps_tiny() -> None:
    enc = depth_to_png16(np.array([[0.0, 300.0, 0.001, np.nan, 10.0]]))
    assert enc.tolist() == [[0, 65533, 1, 0, 2560]]


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write image"):
        write_image_atomic(blocker / "sub" / "o.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match=r"must end in \.png"):
        write_depth_png(tmp_path / "d.jpg", np.zeros((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_read_depth_png_refuses_8bit(tmp_path: Path) -> None:
    path = tmp_path / "eight.png"
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint8))
    with pytest.raises(RecordingError, match="16-bit"):
        read_depth_png(path)


def test_overlay_draws_points(kitti_raw_drive: Path, raw_scan: np.ndarray, raw_rig: Rig) -> None:
    bgr = cv2.imread(str(kitti_raw_drive / "image_02" / "data" / "0000000000.png"))
    assert bgr is not None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8)
    out = draw_overlay(rgb, raw_scan, raw_rig)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    changed = np.any(out != rgb, axis=2)
    assert changed[200:].mean() > 0.5  # the lower image is covered in points
    assert changed[:40].mean() < 0.01  # the sky is not
    with pytest.raises(CalibrationError, match=r"621x188 .* calibration is for 1242x375"):
        draw_overlay(rgb[::2, ::2].copy(), raw_scan, raw_rig)


def test_overlay_with_no_point_in_view_is_the_image(raw_rig: Rig) -> None:
    """No scan, or only a point behind the camera: the picture unchanged (OpenCV's colour
    map returned None for the empty array, and the overlay raised AttributeError)."""
    image = np.random.default_rng(0).integers(0, 255, (375, 1242, 3), dtype=np.uint8)
    for points in (np.zeros((0, 4), np.float32), np.array([[-10.0, 0, 0, 0.5]], np.float32)):
        np.testing.assert_array_equal(draw_overlay(image, points, raw_rig), image)


@pytest.mark.parametrize("max_depth", [0.0, -5.0, float("nan"), float("inf")])
def test_overlay_refuses_bad_max_depth(
    raw_scan: np.ndarray, raw_rig: Rig, max_depth: float
) -> None:
    """NaN or inf gave every point one colour (NaN levels cast to 0), 0 divided by zero."""
    image = np.zeros((375, 1242, 3), np.uint8)
    with pytest.raises(ConfigError, match=rf"max_depth_m must be .*got {max_depth!r}"):
        draw_overlay(image, raw_scan, raw_rig, max_depth_m=max_depth)


def test_read_depth_png_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """``cv2.imread`` crashed the process on a file name with a Latin-1 byte; the bytes
    are now read by Python (run in a subprocess, so a crash fails only this test)."""
    from support.non_utf8 import run_on, write_latin1_named

    ok, buf = cv2.imencode(".png", depth_to_png16(np.array([[0.0, 1.5], [80.0, 12.25]])))
    assert ok
    path = write_latin1_named(tmp_path, b"depth\xff.png", buf.tobytes())
    code = ("import os, sys\nfrom drivingseg.fusion.overlay import read_depth_png\n"
            "print(read_depth_png(os.fsdecode(sys.argv[1])).tolist())\n")
    assert run_on(code, path) == "[[0.0, 1.5], [80.0, 12.25]]"
