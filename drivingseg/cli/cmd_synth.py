"""``drivingseg synth OUT_DIR``: write the built-in synthetic drive as a KITTI raw folder."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drivingseg.cli._common import progress
from drivingseg.sensors.synthetic.writer import write_synthetic_drive

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "synth",
        help="write the synthetic drive (camera, lidar, exact labels) as a KITTI raw folder",
        description="Render the seeded procedural drive (10 Hz camera and 64-beam lidar from "
        "calibration/synthetic.yaml) into OUT_DIR in the KITTI raw layout, with per-pixel "
        "and per-point labels (0 background, 1 road, 2 car) and car boxes under gt/.",
    )
    p.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
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


def run(args: argparse.Namespace) -> int:
    def wrap(items: Iterable[tuple[int, int]], total: int) -> Iterable[tuple[int, int]]:
        return progress(items, total=total, desc="synth")

    start = time.perf_counter()
    drive_dir = write_synthetic_drive(
        args.out_dir,
        frames=args.frames,
        seed=args.seed,
        rig_path=args.rig,
        workers=args.workers,
        wrap=wrap,
    )
    elapsed = time.perf_counter() - start
    print(f"wrote {args.frames} frames (seed {args.seed}) in {elapsed:.1f} s to {drive_dir}")
    return 0
