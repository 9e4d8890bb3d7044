"""``drivingseg demo``: the whole graph on the built-in synthetic drive (``launch/demo.yaml``).

Renders the seeded synthetic drive into ``--out``/drive (KITTI raw layout), then replays it
at the recorded 10 Hz through camera and lidar sources, sync, fusion, the shipped U-Net and
the latency tracker (rendering takes longer than a frame period on a small CPU, so it is
done first, not inside the graph where it would compete with inference for the CPU).
Prints the latency summary, and writes ``masks.mcap`` (open it in
Foxglove), ``masks/<stamp_ns>.png``, ``overlay.mp4``, ``latency.json`` and
``latency.csv`` into ``--out`` (default ``runs/demo``). Any argument of demo.yaml can be
set as ``name:=value`` (``rate:=0``, as fast as possible, blocks instead of dropping,
unless ``overflow:=`` is given too).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivingseg.cli._common import help_text
from drivingseg.cli.cmd_launch import add_run_options, launch, pair_overflow
from drivingseg.errors import ConfigError
from drivingseg.node.launch import build_graph, load_launch, parse_cli_arguments

__all__ = ["add_parser", "check_launch", "render_drive", "run"]

SYNTHETIC_FRAMES = 100
"""Frames of the built-in synthetic drive (``--frames 0``)."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole graph on the synthetic drive and print the latency summary",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=30,
                        help=f"frames to run (default 30; 0: all {SYNTHETIC_FRAMES})")
    parser.add_argument("--seed", type=int, default=0, help="synthetic drive seed (default 0)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--weights", default="default",
                        help="model checkpoint: default, ensemble or a path")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present; default), cpu, cuda or cuda:N")
    parser.add_argument("arguments", nargs="*", metavar="name:=value",
                        help="further demo.yaml arguments")
    add_run_options(parser)
    parser.set_defaults(func=run)


DEMO_MARKER = ".rendered-by-drivingseg-demo"
"""File the demo leaves in the ``drive`` folder it renders: only such a folder is replaced."""


def render_drive(out_dir: Path, seed: int, frames: int) -> Path:
    """Write the synthetic drive of ``seed`` (``frames`` frames, 0 = all) into a fresh
    ``out_dir``/drive; returns the drive folder. A ``drive`` folder there that an earlier
    demo did not render is someone's data: refused, never deleted.

    The marker is written before rendering and kept while an earlier drive is cleared, so
    a demo interrupted at any point leaves a folder the next demo recognises and replaces.
    """
    import shutil

    from drivingseg.cli.cmd_synth import write_with_progress

    root = out_dir / "drive"
    marker = root / DEMO_MARKER
    if root.exists():
        if not marker.is_file():
            message = (f"{str(root)!r} exists and was not rendered by the demo; "
                       "choose another --out or move it away")
            raise ConfigError(message)
        for child in root.iterdir():
            if child.name == DEMO_MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    try:
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"synthetic drive, seed {seed}\n")
    except OSError as exc:
        message = f"cannot create {str(root)!r} for the demo drive: {exc.strerror or exc}"
        raise ConfigError(message) from exc
    return write_with_progress(root, frames or SYNTHETIC_FRAMES, seed,
                               desc="rendering the synthetic drive")


def check_launch(arguments: Mapping[str, Any]) -> None:
    """Load ``demo.yaml`` with ``arguments``, create its nodes (nothing is set up or
    started) and load the checkpoint on the device asked for, so that a bad parameter,
    ``weights`` or ``device`` fails before the drive is rendered. The live window's
    warning that there is no display is left to the real run."""
    from drivingseg.model.checkpoint import load_checkpoint

    logging.disable(logging.WARNING)
    try:
        build_graph(load_launch("demo.yaml", arguments))
    finally:
        logging.disable(logging.NOTSET)
    load_checkpoint(str(arguments["weights"]), device=str(arguments["device"]))


def run(args: argparse.Namespace) -> int:
    """Check the options and the launch file, render the drive, run ``demo.yaml`` on it."""
    if args.frames < 0:
        raise ConfigError(f"--frames must be 0 (all) or more, got {args.frames!r}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {args.seed!r}")
    extra = parse_cli_arguments(args.arguments)
    arguments: dict[str, Any] = {
        "frames": args.frames, "seed": args.seed, "out_dir": args.out,
        "weights": args.weights, "device": args.device, "input": f"synthetic:{args.seed}",
        "rate": 1.0, "overflow": "drop_oldest",
    }
    # Checked on the drive it is about to render: a bad --weights or name:=value fails
    # before the earlier demo's drive is replaced.
    checked = {**arguments, **extra}
    pair_overflow(checked, extra)
    check_launch(checked)
    drive = render_drive(Path(args.out), args.seed, args.frames)
    arguments["input"] = str(drive)
    arguments.update(extra)
    pair_overflow(arguments, extra)
    return launch("demo.yaml", arguments, timeout_s=args.timeout)
