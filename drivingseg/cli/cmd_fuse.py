"""``drivingseg fuse``: project one lidar scan into its camera image.

Writes a KITTI depth-completion PNG (16-bit, metres x 256, 0 = none) and/or an overlay
of the points on the image coloured by depth, and prints how many points landed.
Reads KITTI raw drive folders (``image_0N/`` + ``velodyne_points/``) and KITTI
benchmark folders (``image_N/`` + ``velodyne/`` + ``calib/``, or their root: its
``training/`` split, else ``testing/``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import cv2

from drivingseg.calibration.types import Rig
from drivingseg.cli._common import help_text
from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.fileio import prepare_output
from drivingseg.fusion.overlay import draw_overlay, write_depth_png, write_image_atomic
from drivingseg.fusion.projection import DEFAULT_MIN_DEPTH_M, check_image_size
from drivingseg.fusion.zbuffer import depth_image
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_benchmark import KittiBenchmark
from drivingseg.sensors.kitti_raw import CALIB_FILES, KittiRawDrive
from drivingseg.sensors.open import benchmark_split

__all__ = ["add_parser", "load_frame", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fuse",
        help="project a lidar scan into its camera image (depth PNG, overlay)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="KITTI raw drive folder or KITTI benchmark folder")
    parser.add_argument("--frame", type=int, default=0, help="frame index (default 0)")
    parser.add_argument("--camera", type=int, default=2, help="KITTI camera number (default 2)")
    parser.add_argument("--depth-png", type=Path, help="write the sparse depth as a 16-bit PNG")
    parser.add_argument("--overlay", type=Path, help="write the image with points drawn on it")
    parser.add_argument(
        "--max-depth", type=float, default=80.0,
        help="depth shown as the far colour (m, default 80)",
    )
    parser.add_argument(
        "--min-depth", type=float, default=DEFAULT_MIN_DEPTH_M,
        help=f"nearest depth kept (m, default {DEFAULT_MIN_DEPTH_M:g})",
    )
    parser.set_defaults(func=run)


def _open(path: Path, camera: int) -> KittiRawDrive | KittiBenchmark:
    """A KITTI raw or benchmark reader for ``path``, chosen by the folder layout; a
    benchmark root is read at its ``training/`` (else ``testing/``) split, as every other
    command reads it."""
    if not path.exists():
        raise RecordingError("no such folder", path=path)
    if not (path / f"image_{camera}").is_dir():
        path = benchmark_split(path)
    if (path / f"image_0{camera}").is_dir() and (path / "velodyne_points").is_dir():
        return KittiRawDrive(path, camera=camera)
    if (path / f"image_{camera}").is_dir() and (path / "velodyne").is_dir():
        return KittiBenchmark(path, camera=camera)
    message = (
        f"not a KITTI folder for camera {camera!r}: expected image_0{camera}/ and "
        f"velodyne_points/ (raw drive) or image_{camera}/ and velodyne/ (benchmark)"
    )
    raise RecordingError(message, path=path)


def load_frame(path: Path, frame: int, camera: int = 2) -> tuple[CameraFrame, LidarScan, Rig]:
    """Image, scan and calibration of frame ``frame`` of a KITTI folder."""
    reader = _open(path, camera)
    with reader:
        try:
            image = reader.camera(frame)
            scan = reader.lidar(frame)
        except IndexError as exc:
            message = f"--frame {frame!r} is out of range: {exc}"
            raise ConfigError(message, path=path) from exc
        rig = reader.frame_rig(frame)
    if rig is None and isinstance(reader, KittiRawDrive):
        files = " and ".join(CALIB_FILES)
        message = (f"no KITTI calibration for drive {path.name!r}: expected {files} in its "
                   f"date folder {str(reader.calib_dir)!r}")
        raise CalibrationError(message, path=path)
    if rig is None:
        raise CalibrationError("the recording has no calibration for this camera", path=path)
    return image, scan, rig


def run(args: argparse.Namespace) -> int:
    if not 0 < args.max_depth < math.inf:
        message = f"--max-depth must be a positive number of metres, got {args.max_depth!r}"
        raise ConfigError(message)
    if not 0 <= args.min_depth < math.inf:
        raise ConfigError(f"--min-depth must be a number of metres >= 0, got {args.min_depth!r}")
    if args.min_depth >= args.max_depth:
        message = (f"--min-depth {args.min_depth!r} must be below --max-depth "
                   f"{args.max_depth!r} (metres)")
        raise ConfigError(message)
    if args.frame < 0:
        raise ConfigError(f"--frame must be 0 or more, got {args.frame!r}")
    if args.depth_png is not None:
        if args.depth_png.suffix.lower() != ".png":
            raise ConfigError("a depth image is a 16-bit PNG: name it .png", path=args.depth_png)
        prepare_output(args.depth_png, error=ConfigError, what="the depth PNG")
    if args.overlay is not None:
        prepare_output(args.overlay, error=ConfigError, what="the overlay")
        # Only the suffix matters, and OpenCV crashes on a file name that is not UTF-8.
        suffix = args.overlay.suffix
        if not suffix.isascii() or not cv2.haveImageWriter(f"overlay{suffix}"):
            message = (f"OpenCV writes no image format of suffix {suffix!r}; "
                       "use .png or .jpg")
            raise ConfigError(message, path=args.overlay)
    image, scan, rig = load_frame(args.input, args.frame, args.camera)
    check_image_size(rig.camera, image.width, image.height, what=f"camera image {image.source}")
    depth = depth_image(scan.points, rig, min_depth_m=args.min_depth)
    if args.depth_png is not None:
        write_depth_png(args.depth_png, depth)
    if args.overlay is not None:
        drawn = draw_overlay(
            image.image, scan.points, rig, max_depth_m=args.max_depth, min_depth_m=args.min_depth
        )
        write_image_atomic(args.overlay, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    n_pix = int((depth > 0).sum())
    d = depth[depth > 0]
    span = f", depth {d.min():.1f}-{d.max():.1f} m" if d.size else ""
    print(
        f"frame {args.frame}: {len(scan)} points, {n_pix} pixels with depth{span} "
        f"({image.width}x{image.height})"
    )
    return 0
