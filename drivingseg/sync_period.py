"""Period lower bounds of the streams :mod:`drivingseg.sync` pairs, given or learned.

A bound lets the synchroniser decide a frame without waiting for the next message of a
stream: nothing can be stamped earlier than the last one plus the bound. It is the given
minimum period, or :data:`LEARNED_PERIOD_FRACTION` of the shortest interval between
consecutive messages seen so far, once :data:`LEARN_AFTER_INTERVALS` intervals have been
seen. Kept apart from the pairing rule: this is only bookkeeping of stamps.
"""

from __future__ import annotations

import numbers

from drivingseg.errors import SyncError

__all__ = ["LEARNED_PERIOD_FRACTION", "LEARN_AFTER_INTERVALS", "PeriodBound", "check_ns"]

LEARN_AFTER_INTERVALS = 2
"""Intervals of a stream seen before its learned period bound is used."""

LEARNED_PERIOD_FRACTION = 0.45
"""A learned bound: this fraction of the shortest interval seen. Under a half: when every
interval seen so far spans one dropped message (twice the period), the bound still stays
below the real period; the rest is the jitter margin."""


def check_ns(name: str, value_ns: object) -> None:
    """SyncError unless ``value_ns`` is a whole number of nanoseconds >= 0 (a tolerance
    given in seconds, 0.05, became 0 ns and paired nothing)."""
    if not (isinstance(value_ns, numbers.Real) and not isinstance(value_ns, bool)
            and float(value_ns) >= 0 and float(value_ns).is_integer()):
        message = (f"{name} must be a whole number of nanoseconds >= 0 (50 ms is "
                   f"50_000_000), got {value_ns!r}")
        raise SyncError(message)


class PeriodBound:
    """Lower bound of one stream's period: given, or learned from its intervals."""

    def __init__(self, name: str, given_ns: int, learn: bool) -> None:
        check_ns(name, given_ns)
        self.given_ns = int(given_ns)
        self.learn = learn
        self.shortest_ns: int | None = None
        self.intervals = 0

    def observe(self, interval_ns: int) -> None:
        """Record the interval between two consecutive messages of the stream."""
        shortest = self.shortest_ns
        self.shortest_ns = interval_ns if shortest is None else min(shortest, interval_ns)
        self.intervals += 1

    @property
    def bound_ns(self) -> int:
        """The bound in use (0: none yet, wait for the next message)."""
        if self.given_ns > 0:
            return self.given_ns
        if not self.learn or self.intervals < LEARN_AFTER_INTERVALS:
            return 0
        assert self.shortest_ns is not None
        return int(LEARNED_PERIOD_FRACTION * self.shortest_ns)
