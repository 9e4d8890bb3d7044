"""Entry point: build the argparse tree from the subcommand modules, run, map errors.

Each subcommand module has ``add_parser(subparsers)`` which registers its parser and
sets ``func(args) -> int``. A :class:`DrivingsegError` becomes one line on stderr and
exit status 2 (:func:`one_line`); ``--debug`` shows the traceback instead. Output piped
into a reader that stops early (``| head``) ends the command quietly with status 141
(128 + SIGPIPE), as ``cat`` does, not with a ``BrokenPipeError`` traceback. Every
command runs with SIGTERM as Ctrl-C (:func:`~drivingseg.signals.sigterm_interrupts`), so
``kill`` or ``timeout`` ends it with status 130 after its cleanup, not on the spot (a
graph's run handles both signals itself, draining the graph).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence

from drivingseg import __version__
from drivingseg.errors import DrivingsegError
from drivingseg.signals import sigterm_interrupts

__all__ = ["build_parser", "main", "one_line", "parse_args", "run_command"]


def one_line(exc: DrivingsegError) -> str:
    """The error as one line (a message that quotes a library's multi-line text, such as
    a source line under a caret, is joined and the caret line left out)."""
    lines = (line.strip() for line in str(exc).splitlines())
    return " ".join(line for line in lines if line and not line.startswith("^"))


def stdout_closed() -> bool:
    """Whether nobody reads standard output any more (a pipe whose reader exited, as
    ``| head`` does): the kernel reports an error condition on its write end."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file descriptor, no poll
        return False


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
    for command in sub.choices.values():  # also after the command: ``info X --debug``
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks on errors")
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log progress details (INFO level)")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``name:=value`` launch arguments may also come
    after the options of a command that takes them (``replay DRIVE --fast video:=false``;
    argparse alone takes positionals only before the first option)."""
    args, extra = parser.parse_known_args(argv)
    launch_args = [item for item in extra if ":=" in item and not item.startswith("-")]
    if launch_args and isinstance(getattr(args, "arguments", None), list):
        args.arguments += launch_args
        extra = [item for item in extra if item not in launch_args]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments); its exit status.

    As the program itself (``argv`` None), SIGINT and SIGTERM are ignored once the command
    has ended and its outputs are final: the interpreter's teardown after torch takes
    seconds, and a second Ctrl-C there printed a KeyboardInterrupt traceback from torch's
    exit callbacks, or a SIGTERM killed the process, replacing the status (130) by the
    signal's.
    """
    status = run_command(argv)
    if argv is None and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return status


def run_command(argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run its command: errors as one line (status 2), interrupts as
    status 130."""
    args: argparse.Namespace | None = None
    try:
        # The parser is built under the handlers too: it imports every command's modules,
        # torch among them, which takes seconds on a busy machine; a Ctrl-C there printed a
        # traceback from deep inside torch, and a SIGTERM killed the process on the spot.
        with sigterm_interrupts():  # temporary copies removed, outputs finalised
            parser = build_parser()
            args = parse_args(parser, argv)
            logging.basicConfig(
                level=(logging.DEBUG if args.debug else
                       logging.INFO if args.verbose else logging.WARNING),
                format="drivingseg: %(levelname)s: %(message)s",
            )
            return int(args.func(args) or 0)
    except DrivingsegError as exc:
        if args is None or args.debug:
            raise
        print(f"drivingseg {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        name = "drivingseg" if args is None else f"drivingseg {args.command}"
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not stdout_closed():
            raise
        # The reader of our output left (``drivingseg launch --list-nodes | head``): stop
        # quietly as a command killed by SIGPIPE would, and let nothing flush into the pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
