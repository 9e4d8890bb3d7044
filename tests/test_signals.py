"""``drivingseg.signals``: SIGTERM deferred to a safe point, and the handler put back."""

from __future__ import annotations

import signal

import pytest

from drivingseg.signals import (
    raise_interrupt,
    signals_held,
    sigterm_deferred,
    sigterm_interrupts,
)


def test_deferred_sigterm_is_noted_then_a_second_one_raises() -> None:
    """The first SIGTERM only asks to stop (convert finishes the message it writes); a
    second one does not wait."""
    with sigterm_interrupts():
        with sigterm_deferred("closing the file") as stop:
            assert not stop.requested
            signal.raise_signal(signal.SIGTERM)
            assert stop.requested
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is raise_interrupt


def test_held_signals_act_once_the_block_is_done() -> None:
    """Ctrl-C (twice) and SIGTERM within the block wait for its end (a bag's index is
    written whole), then act through the handlers that were in place before."""
    done: list[str] = []
    with sigterm_interrupts(), sigterm_deferred("closing the file") as stop:
        with pytest.raises(KeyboardInterrupt), signals_held("the index"):
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
            done.append("index")
        assert done == ["index"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with signals_held("the index"):
            signal.raise_signal(signal.SIGTERM)
            assert not stop.requested
        assert stop.requested  # the deferring handler got it afterwards
