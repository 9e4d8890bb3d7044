"""``drivingseg synth OUT_DIR``: write the built-in synthetic drive as a KITTI raw folder."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drivingseg.cli._common import progress
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.sensors.open import detect_format
from drivingseg.sensors.synthetic.writer import write_synthetic_drive

__all__ = ["add_parser", "check_out_dir", "run", "write_with_progress"]

_RECORDING_KINDS = {"kitti_raw": "a KITTI raw drive", "kitti_benchmark": "a KITTI object or "
                    "road folder", "rosbag": "a ROS bag", "synthetic": "the synthetic drive"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "synth",
        help="write the synthetic drive (camera, lidar, exact labels) as a KITTI raw folder",
        description="Render the seeded procedural drive (10 Hz camera and 64-beam lidar from "
        "calibration/synthetic.yaml) into OUT_DIR in the KITTI raw layout, with per-pixel "
        "and per-point labels (0 background, 1 road, 2 car) and car boxes under gt/.",
    )
    p.add_argument("out_dir", type=Path,
                   help="folder to write into (created if missing; an earlier synth output's "
                        "drive is replaced; a recording's own folder is refused)")
    p.add_argument("--frames", type=int, default=100, help="camera/lidar pairs (default 100)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument(
        "--rig", type=Path, default=None, help="rig YAML (default: calibration/synthetic.yaml)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes rendering frames in parallel; 1 renders in this process (default 2)",
    )
    p.set_defaults(func=run)


def write_with_progress(
    out_dir: Path, frames: int, seed: int, *, rig_path: Path | None = None, workers: int = 2,
    desc: str = "synth",
) -> Path:
    """:func:`write_synthetic_drive` with a progress bar; returns the drive folder."""

    def wrap(items: Iterable[tuple[int, int]], total: int) -> Iterable[tuple[int, int]]:
        return progress(items, total=total, desc=desc)

    return write_synthetic_drive(out_dir, frames=frames, seed=seed, rig_path=rig_path,
                                 workers=workers, wrap=wrap)


def check_out_dir(out_dir: Path) -> None:
    """Refuse an OUT_DIR that is a recording (a KITTI raw drive or date folder, a KITTI
    benchmark folder, a bag): the drive would be written inside it (a ``2024_05_01/`` in a
    KITTI drive), mixing a synthetic drive into real data."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"OUT_DIR {str(out_dir)!r} is a file, not a folder")
    if not out_dir.is_dir():
        return
    try:
        kind = _RECORDING_KINDS[detect_format(out_dir.absolute())]
    except RecordingError:
        try:
            drives = [d.name for d in out_dir.iterdir() if "_drive_" in d.name and d.is_dir()]
        except OSError:
            return
        if not drives:
            return
        kind = f"a KITTI raw date folder (holding {drives[0]!r})"
    message = (f"OUT_DIR {str(out_dir)!r} is {kind}; write the synthetic drive "
               "to an empty or new folder, or to an earlier synth OUT_DIR")
    raise ConfigError(message)


def run(args: argparse.Namespace) -> int:
    """Check the options, render, print where the drive went."""
    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames!r}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {args.seed!r}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers!r}")
    check_out_dir(args.out_dir)
    start = time.perf_counter()
    drive_dir = write_with_progress(args.out_dir, args.frames, args.seed, rig_path=args.rig,
                                    workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.frames} frames (seed {args.seed}) in {elapsed:.1f} s to {drive_dir}")
    return 0
