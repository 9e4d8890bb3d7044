"""``drivingseg convert INPUT OUTPUT``: a recording (KITTI raw drive first) to a ROS 2 MCAP
(``.mcap``), a ROS 1 bag (``.bag``) or a ROS 2 sqlite3 bag (``.db3`` or a folder)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from drivingseg.cli._common import add_recording_args, check_camera, open_from_args, progress
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.outputs.convert import (
    OUTPUT_KINDS,
    Message,
    bag_topics,
    convert_recording,
    expected_messages,
    kitti_topics,
    output_kind,
    output_location,
)
from drivingseg.signals import StopRequest, sigterm_deferred

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register ``convert`` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "convert",
        help=("convert a recording (KITTI raw drive, synthetic drive, bag) to a ROS 2 MCAP, "
              "a ROS 1 bag or a ROS 2 sqlite3 bag"),
        description=(
            "Write the camera images, camera info, velodyne point clouds and the static "
            "lidar->camera transform of a recording (a KITTI raw drive, say) to a ROS 2 "
            "MCAP file (OUT.mcap; Foxglove, 'ros2 bag play'), a ROS 1 bag (OUT.bag; "
            "'rosbag play') or a ROS 2 sqlite3 bag folder (OUT_DIR, or OUT.db3 for the "
            "folder OUT holding OUT.db3 and metadata.yaml); kitti2bag-style topic names, "
            "a bag keeps its own."
        ),
    )
    parser.add_argument(
        "input",
        type=Path,
        help="KITTI raw drive folder (..._drive_NNNN_sync) or any recording 'info' reads",
    )
    parser.add_argument(
        "output", type=Path,
        help="output: OUT.mcap (ROS 2 MCAP), OUT.bag (ROS 1), OUT.db3 or OUT_DIR (ROS 2 "
             "sqlite3); missing folders above it are created")
    add_recording_args(parser)
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        metavar="N",
        help="write only the first N camera frames and lidar scans",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUTPUT")
    parser.set_defaults(func=run)


def _until_stopped(messages: Iterable[Message], stop: StopRequest) -> Iterator[Message]:
    """``messages`` until a SIGTERM is requested: the message being written is finished and
    the output finalised (the CLI runs every command with SIGTERM as Ctrl-C,
    which would end a write half-done)."""
    if stop.requested:
        return
    for message in messages:
        yield message
        if stop.requested:
            return


def run(args: argparse.Namespace) -> int:
    """Convert; refuse to replace an existing output unless ``--force``."""
    out: Path = args.output
    kind = output_kind(out)
    written = output_location(out)
    source = Path(args.input).resolve()
    if written.resolve() == source or written.resolve().is_relative_to(source):
        message = (f"output {str(out)!r} is the input {str(args.input)!r} or inside it; "
                   "write the output elsewhere")
        raise ConfigError(message)
    if kind in ("", ".db3") and source.is_relative_to(written.resolve()):
        message = (f"output folder {str(written)!r} holds the input {str(args.input)!r}; "
                   "write the output elsewhere")
        raise ConfigError(message)
    if written.exists() and not args.force:
        raise ConfigError(f"output {str(written)!r} exists; pass --force to overwrite it")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be at least 1, got {args.max_frames!r}")
    camera: int | None = args.camera
    with open_from_args(args.input, args) as drive:
        check_camera(drive, camera)
        chosen = None  # a bag converts its chosen image and lidar topics only
        names = kitti_topics(2 if camera is None else camera)
        if drive.format == "rosbag":
            image, lidar = getattr(drive, "image_topic", None), getattr(drive, "lidar_topic", None)
            chosen = {t for t in (image, lidar) if t is not None}
            names = bag_topics(image, lidar, getattr(drive, "camera_info_topic", None))
        info = drive.info()
        total = expected_messages(info, args.max_frames, chosen)
        if total == 0:
            streams = ", ".join(f"{s.name} ({s.kind}, {s.count} messages)"
                                for s in info.streams) or "none"
            message = ("nothing to convert: no camera image or lidar scan with messages "
                       f"(streams: {streams})")
            raise RecordingError(message, path=args.input)
        if drive.rig() is None:
            # a camera-only bag keeps its CameraInfo (BagRecording.camera_model)
            camera_only = getattr(drive, "camera_model", lambda: None)() is not None
            log.warning("%s has no calibration: writing no %s/tf_static", args.input,
                        "" if camera_only else "camera_info and no ")
        with sigterm_deferred("finishing the current message, then closing the output") as stop:
            stats = convert_recording(
                drive,
                out,
                topics=names,
                max_frames=args.max_frames,
                progress=lambda messages: _until_stopped(
                    progress(messages, total=total, desc="convert", unit="message"), stop),
            )
        if stop.requested:
            raise KeyboardInterrupt("SIGTERM")
    for topic, count in sorted(stats.counts.items()):
        sys.stdout.write(f"{topic}: {count} messages\n")
    sys.stdout.write(f"wrote {stats.total} messages to {written} ({OUTPUT_KINDS[kind]})\n")
    return 0
