"""``drivingseg.signals``: SIGTERM deferred to a safe point, and the handler put back."""

from __future__ import annotations

import signal

import pytest

from drivingseg.signals import raise_interrupt, sigterm_deferred, sigterm_interrupts


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
