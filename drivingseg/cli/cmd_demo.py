"""``drivingseg demo``: the whole graph on the built-in synthetic drive (``launch/demo.yaml``).

Runs camera and lidar sources, sync, fusion, the shipped U-Net and the latency tracker on
a generated drive, prints the latency summary, and writes ``masks.mcap`` (open it in
Foxglove), ``masks/<stamp_ns>.png``, ``overlay.mp4``, ``latency.json`` and
``latency.csv`` into ``--out`` (default ``runs/demo``). Any argument of demo.yaml can be
set as ``name:=value``.
"""

from __future__ import annotations

import argparse
from typing import Any

from drivingseg.cli.cmd_launch import add_run_options, launch
from drivingseg.node.launch import parse_cli_arguments

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole graph on the synthetic drive and print the latency summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=30, help="frames to run (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic drive seed (default 0)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--weights", default="default", help="model checkpoint")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("arguments", nargs="*", metavar="name:=value",
                        help="further demo.yaml arguments")
    add_run_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    arguments: dict[str, Any] = {
        "frames": args.frames, "seed": args.seed, "out_dir": args.out,
        "weights": args.weights, "device": args.device,
    }
    arguments.update(parse_cli_arguments(args.arguments))
    return launch("demo.yaml", arguments, timeout_s=args.timeout)
