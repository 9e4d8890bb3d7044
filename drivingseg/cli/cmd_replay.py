"""``drivingseg replay INPUT``: replay a recording through the graph.

At the recorded rate by default, ``--rate R`` times faster, or ``--fast`` (as fast as the
graph goes; queues then block instead of dropping, so no frame is lost). ``--start`` and
``--end`` cut a window (seconds from the start), ``--loop`` repeats it until Ctrl-C.
Bags use ``launch/replay_bag.yaml``, everything else ``launch/replay_kitti.yaml``; any of
their arguments can be set as ``name:=value`` (``rate:=0`` blocks like ``--fast``, any
other rate drops the oldest, unless ``overflow:=`` is given too).
``--stamps receive`` stamps a bag's frames and scans by their receive times instead of their
header stamps (sensors on clocks of their own, e.g. an Ouster on its internal oscillator).
Outputs go to ``--out`` (``runs/replay``).
"""

from __future__ import annotations

import argparse
from typing import Any

from drivingseg.cli._common import (
    add_recording_args,
    check_recording_args,
    help_text,
)
from drivingseg.cli.cmd_info import add_stamps_arg
from drivingseg.cli.cmd_launch import add_run_options, launch, pair_overflow
from drivingseg.errors import ConfigError
from drivingseg.node.launch import parse_cli_arguments
from drivingseg.sensors.open import FORMATS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recording through the graph (recorded rate, --rate R or --fast)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="KITTI folder, bag, .mcap, or synthetic[:SEED]")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, default=1.0, help="replay speed (default 1)")
    speed.add_argument("--fast", action="store_true", help="as fast as possible, no drops")
    parser.add_argument("--loop", action="store_true", help="repeat until interrupted")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="start S seconds after the recording start")
    parser.add_argument("--end", type=float, default=0.0, metavar="S",
                        help="end S seconds after the recording start (default: the end)")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0 = all)")
    parser.add_argument("--out", default="runs/replay", help="output folder (default runs/replay)")
    parser.add_argument("--weights", default="default",
                        help="model checkpoint: default, ensemble or a path")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present; default), cpu, cuda or cuda:N")
    add_recording_args(parser)
    add_stamps_arg(parser)
    parser.add_argument("arguments", nargs="*", metavar="name:=value",
                        help="further launch-file arguments")
    add_run_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.fast and args.rate <= 0:
        raise ConfigError(f"--rate must be above 0 (or use --fast), got {args.rate!r}")
    fmt = check_recording_args(args.input, args)
    bag = fmt == "rosbag"
    if not bag and args.stamps != "header":
        message = (f"--stamps {args.stamps!r} only applies to bags, which record a receive "
                   f"time per message; {args.input!r} is not one ({FORMATS[fmt]})")
        raise ConfigError(message)
    arguments: dict[str, Any] = {
        "input": args.input, "loop": args.loop, "start_s": args.start, "end_s": args.end,
        "max_frames": args.frames, "out_dir": args.out, "weights": args.weights,
        "device": args.device,
        "rate": 0.0 if args.fast else args.rate,
        "overflow": "block" if args.fast else "drop_oldest",
    }
    if bag:
        arguments.update(image_topic=args.image_topic or "", lidar_topic=args.lidar_topic or "",
                         camera_info_topic=args.camera_info_topic or "", stamps=args.stamps)
    else:
        arguments["camera"] = 2 if args.camera is None else args.camera
    given = parse_cli_arguments(args.arguments)
    arguments.update(given)
    pair_overflow(arguments, given)
    file = "replay_bag.yaml" if bag else "replay_kitti.yaml"
    return launch(file, arguments, timeout_s=args.timeout)
