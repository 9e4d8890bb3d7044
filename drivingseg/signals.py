"""SIGTERM as Ctrl-C, for the commands that must finish cleanly when they are stopped.

``kill``, ``timeout`` and job schedulers send SIGTERM, whose default action ends Python at
once: no ``finally`` runs, so temporary copies stay and outputs are not finalised. Within
:func:`sigterm_interrupts` it raises ``KeyboardInterrupt`` instead, which the commands
already handle (the CLI exits with status 130).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["raise_interrupt", "restore_sigterm", "sigterm_interrupts"]


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
