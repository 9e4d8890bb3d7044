"""Entry point: build the argparse tree from the subcommand modules, run, map errors.

Each subcommand module has ``add_parser(subparsers)`` which registers its parser and
sets ``func(args) -> int``. A :class:`DrivingsegError` becomes one line on stderr and
exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from drivingseg import __version__
from drivingseg.errors import DrivingsegError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from drivingseg.cli import (
        cmd_convert,
        cmd_demo,
        cmd_ensemble,
        cmd_eval,
        cmd_export,
        cmd_fuse,
        cmd_info,
        cmd_launch,
        cmd_replay,
        cmd_report,
        cmd_synth,
        cmd_train,
    )

    parser = argparse.ArgumentParser(
        prog="drivingseg",
        description="Camera/lidar perception: read drives, fuse, segment road and cars.",
    )
    parser.add_argument("--version", action="version", version=f"drivingseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details (INFO level)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        cmd_demo,
        cmd_replay,
        cmd_launch,
        cmd_info,
        cmd_convert,
        cmd_fuse,
        cmd_synth,
        cmd_train,
        cmd_eval,
        cmd_report,
        cmd_export,
        cmd_ensemble,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="drivingseg: %(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except DrivingsegError as exc:
        if args.debug:
            raise
        print(f"drivingseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"drivingseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
