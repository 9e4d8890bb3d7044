"""Helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO, TypeVar

from tqdm import tqdm

from drivingseg.errors import ConfigError
from drivingseg.sensors.base import Recording
from drivingseg.sensors.open import FORMATS, detect_format, open_recording

__all__ = ["TTA_CHOICES", "add_recording_args", "add_tta_argument", "check_camera",
           "check_recording_args", "help_text",
           "open_from_args", "progress", "progress_in_steps"]

T = TypeVar("T")

log = logging.getLogger(__name__)

TTA_CHOICES = ("off", "flip", "multiscale")
"""The names of ``drivingseg.model.config.TTA_PRESETS``, here so that building the parser
does not import torch (a test keeps the two equal)."""


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` text: reST literals (double backticks) shown plain."""
    return (doc or "").replace("``", "")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "frame") -> Iterator[T]:
    """Wrap a long job's iterable in a progress bar on stderr (hidden when not a TTY);
    ``unit`` names what one item is (a training epoch counts batches)."""
    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None)


def progress_in_steps(steps: Iterable[int], *, total: int, desc: str = "",
                      unit: str = "frame", file: TextIO | None = None) -> Iterator[int]:
    """A progress bar over work that ends in batches (a report's chunks of frames): each
    item of ``steps`` is the number of units just done, added at once. Ticking them one by
    one made the bar show the first of a batch only, and its rate one unit per batch, so
    the first ETA was a batch's size times too long (hidden when ``file``, stderr by
    default, is not a TTY)."""
    with tqdm(total=total, desc=desc, unit=unit, file=file or sys.stderr, disable=None) as bar:
        for n in steps:
            bar.update(n)
            yield n


def add_recording_args(parser: argparse.ArgumentParser) -> None:
    """Options every command that reads a recording takes (KITTI camera, bag topics)."""
    parser.add_argument(
        "--camera", type=int, default=None, choices=(0, 1, 2, 3),
        help="KITTI camera (default 2); a camera asked for by number must exist"
    )
    parser.add_argument("--image-topic", help="bag: camera topic (default: the only one)")
    parser.add_argument("--lidar-topic", help="bag: PointCloud2 topic (default: the only one)")
    parser.add_argument("--camera-info-topic", help="bag: CameraInfo topic (default: the only one)")


def add_tta_argument(parser: argparse.ArgumentParser) -> None:
    """``--tta``: test-time augmentation of an offline scoring command."""
    parser.add_argument(
        "--tta", choices=TTA_CHOICES, default="off",
        help="average over views of each frame: off (default), flip (the frame and its mirror, "
             "2x the time) or multiscale (input x 0.5 ... 1.75 in steps of 0.25, each mirrored: "
             "12 views, ~16x the time); offline only",
    )


def check_recording_args(path: str | Path, args: argparse.Namespace) -> str:
    """The format of ``path`` (:func:`~drivingseg.sensors.open.detect_format`); options of
    :func:`add_recording_args` that do not apply to it (a bag's topics for a KITTI folder,
    a KITTI camera number for a bag) are refused rather than silently ignored."""
    fmt = detect_format(path)
    topics = [f"--{name.replace('_', '-')}" for name in
              ("image_topic", "lidar_topic", "camera_info_topic") if getattr(args, name, None)]
    if topics and fmt != "rosbag":
        message = (f"{' and '.join(topics)} only apply to bags; {str(path)!r} is not one "
                   f"({FORMATS[fmt]})")
        raise ConfigError(message)
    if getattr(args, "camera", None) is not None and fmt in ("rosbag", "synthetic"):
        hint = "; choose a bag's camera with --image-topic" if fmt == "rosbag" else ""
        message = (f"--camera {args.camera!r} picks a KITTI camera; {str(path)!r} is not a "
                   f"KITTI recording ({FORMATS[fmt]}){hint}")
        raise ConfigError(message)
    return fmt


def open_from_args(path: str | Path, args: argparse.Namespace) -> Recording:
    """Open ``path`` with the options of :func:`add_recording_args` (``--camera`` unset is
    camera 2), refusing those that do not apply to it (:func:`check_recording_args`)."""
    check_recording_args(path, args)
    return open_recording(
        path,
        camera=2 if args.camera is None else args.camera,
        image_topic=args.image_topic,
        lidar_topic=args.lidar_topic,
        camera_info_topic=args.camera_info_topic,
    )


def check_camera(rec: Recording, camera: int | None) -> None:
    """Refuse a recording without the camera asked for, or a KITTI raw drive without the
    default image_02/ when it has other cameras (``info`` listed only its lidar, ``convert``
    wrote point clouds only); a drive without any camera folder is read for its lidar."""
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    if camera is not None:
        rec.require_camera()
        return
    if not isinstance(rec, KittiRawDrive) or rec.camera_files:
        return
    if not rec.other_cameras():
        log.warning("%s has no image_0N/ folder: its lidar only", rec.path)
        return
    rec.require_camera()
