"""SIGTERM as Ctrl-C, for every command, so that a stopped command finishes cleanly.

``kill``, ``timeout`` and job schedulers send SIGTERM, whose default action ends Python at
once: no ``finally`` runs, so temporary copies (a file-compressed bag's decompressed copy, a
half-rendered drive) stay and outputs are not finalised. Within :func:`sigterm_interrupts`
(the CLI runs every command in it) it raises ``KeyboardInterrupt`` instead, which the
commands already handle (the CLI exits with status 130). Code that must not be interrupted
in the middle of a write defers it with :func:`sigterm_deferred`; a node graph installs its
own handler while it runs (the first signal drains the graph). A short write that must not
be cut at all (a ROS 1 bag's index) holds Ctrl-C and SIGTERM with :func:`signals_held`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["StopRequest", "raise_interrupt", "restore_sigterm", "signals_held",
           "sigterm_deferred", "sigterm_interrupts"]

log = logging.getLogger(__name__)


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that raises ``KeyboardInterrupt``, as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


def restore_sigterm(handler: Any) -> None:
    """Put ``handler`` back as the SIGTERM handler: in the main thread (the only one that
    may), when it is one Python can set (not None: a handler installed from C)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does; the handler
    before it is back afterwards. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        restore_sigterm(previous)


class StopRequest:
    """Whether a deferred SIGTERM came (:func:`sigterm_deferred`); a second one raises
    ``KeyboardInterrupt`` at once."""

    def __init__(self, what: str) -> None:
        self.requested = False
        self.what = what

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The SIGTERM handler: note the request, or raise on a repeated one."""
        if self.requested:
            raise KeyboardInterrupt(f"signal {signum} again")
        self.requested = True
        log.warning("interrupted (%s): %s", signal.Signals(signum).name, self.what)


@contextlib.contextmanager
def sigterm_deferred(what: str) -> Iterator[StopRequest]:
    """Within the block, a first SIGTERM only sets the request's ``requested`` (the caller
    stops at its next safe point, ``what`` says which, for the log line); a second raises
    ``KeyboardInterrupt``. Outside the main thread nothing is installed."""
    request = StopRequest(what)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.signal(signal.SIGTERM, request.handle)
    try:
        yield request
    finally:
        restore_sigterm(previous)


@contextlib.contextmanager
def signals_held(what: str) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM (any number of them) are only noted, with a
    warning naming ``what`` is being finished; afterwards the handlers before it are back
    and each signal that came is raised again, so it acts as if it came just after the
    block (Ctrl-C raises ``KeyboardInterrupt``). For short writes that a second Ctrl-C must
    not cut in half; outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if signum not in came:
            came.append(signum)
        log.warning("interrupted (%s): finishing %s first", signal.Signals(signum).name, what)

    previous: dict[int, Any] = {}
    for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: a handler installed from C, left alone
            previous[signum] = signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in came:
            signal.raise_signal(signum)
