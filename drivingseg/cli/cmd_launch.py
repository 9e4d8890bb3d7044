"""``drivingseg launch FILE name:=value ...``: run a node graph from a launch file.

FILE is a path or the name of a file in ``launch/`` (the checkout's, or an installed
wheel's ``share/drivingseg/launch``): ``demo``, ``replay_kitti``, ``replay_bag``,
``vehicle``, or ``pipeline`` (the graph without outputs). Arguments use the ROS habit
``name:=value``; ``--show-args`` lists those FILE declares, ``--list-nodes`` every node
type's parameters. SIGINT or SIGTERM stops the graph cleanly: queued frames are finished
and every output is finalised; a second signal aborts. The latency summary is printed at
the end; the exit status is 0, 2 on a bad launch file, 128 + signal when stopped.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from drivingseg.cli._common import help_text
from drivingseg.errors import ConfigError
from drivingseg.node.launch import (
    build_graph,
    describe_arguments,
    load_launch,
    parse_cli_arguments,
)

__all__ = ["add_parser", "add_run_options", "launch", "pair_overflow", "run", "timeout_seconds"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "launch",
        help="run a node graph from a launch file (name:=value arguments)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", help="launch file path or name in launch/")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    add_run_options(parser)
    parser.add_argument("--list-nodes", action="store_true",
                        help="list node types and their parameters, then exit")
    parser.add_argument("--show-args", action="store_true",
                        help="list the arguments FILE declares (default, description), then exit")
    parser.set_defaults(func=run)


def timeout_seconds(text: str) -> float:
    """``--timeout``'s value: a finite number of seconds above 0. A negative one used to
    stop the graph at once and overwrite the outputs with a run of a few frames, exit 0;
    ``nan`` never stopped it."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds above 0, got {text!r}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options every graph-running command takes."""
    parser.add_argument("--timeout", type=timeout_seconds, metavar="S",
                        help="stop cleanly after S seconds (as SIGINT would; S > 0)")


def pair_overflow(arguments: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Set ``overflow`` to go with a ``rate`` given as ``rate:=R`` (``given``) unless
    ``overflow`` is given too: ``block`` as fast as possible (rate 0: nothing lost, as
    ``replay --fast``), else ``drop_oldest``. The commands otherwise pass the overflow of
    their own rate, and ``demo rate:=0`` flooded its keep-last queues: scans, frames and
    recorded masks were dropped."""
    if "rate" not in given or "overflow" in given:
        return
    rate = getattr(given["rate"], "value", given["rate"])
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        arguments["overflow"] = "block" if rate == 0 else "drop_oldest"


def launch(file: str, arguments: Mapping[str, Any], *, timeout_s: float | None = None) -> int:
    """Load, validate, set up and run a launch file; the process exit status."""
    desc = load_launch(file, arguments)
    graph = build_graph(desc)
    graph.setup()
    result = graph.run(timeout_s=timeout_s)
    return result.exit_code


def run(args: argparse.Namespace) -> int:
    if args.list_nodes:
        from drivingseg.node.registry import describe_node_types

        print(describe_node_types())
        return 0
    if not args.file:
        raise ConfigError("give a launch file (a path, or a name in launch/)")
    if args.show_args:
        print(describe_arguments(args.file))
        return 0
    return launch(args.file, parse_cli_arguments(args.arguments), timeout_s=args.timeout)

