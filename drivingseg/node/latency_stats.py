"""Latency statistics: exact percentiles, compact per-mask columns, per-frame records and
the run's summary (a table for people, JSON for machines), apart from the tracker node
(:mod:`drivingseg.node.latency`) that fills them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from drivingseg.node.messages import STAGES

__all__ = [
    "COLUMNS",
    "STAT_KEYS",
    "FrameLatency",
    "LatencyReport",
    "SampleColumns",
    "format_ms",
    "percentiles",
]

COLUMNS = ("e2e", *STAGES, "queue")
STAT_KEYS = ("p50", "p95", "p99", "max", "mean")


def percentiles(values_ms: Sequence[float] | npt.NDArray[np.float64]
                ) -> dict[str, float | None]:
    """p50, p95, p99, max and mean of ``values_ms`` (all ``None`` when empty)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {k: None for k in STAT_KEYS}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()),
            "mean": float(a.mean())}


def format_ms(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``-`` when there is none."""
    return "-" if value is None else format(value, spec)

class SampleColumns:
    """Named float64 columns that grow by doubling: one compact array per column.

    Keeps exact statistics over a whole run at 8 bytes a value, without per-frame objects.
    """

    def __init__(self, names: Sequence[str], capacity: int = 256) -> None:
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._data = np.empty((len(self.names), max(1, capacity)), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held (at most twice the values' size)."""
        return int(self._data.nbytes)

    def append(self, values: Sequence[float]) -> None:
        """Add one value per column, in the order of ``names`` (amortised O(1))."""
        if self._n == self._data.shape[1]:
            grown = np.empty((len(self.names), 2 * self._n), dtype=np.float64)
            grown[:, : self._n] = self._data
            self._data = grown
        self._data[:, self._n] = values
        self._n += 1

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """Every value of column ``name`` so far (a view)."""
        return self._data[self._index[name], : self._n]


@dataclass(frozen=True)
class FrameLatency:
    """One published mask: stamps and milliseconds per column of :data:`COLUMNS`."""

    seq: int
    index: int
    stamp_ns: int
    ms: dict[str, float]

    def missed(self, budget_ms: float) -> bool:
        return self.ms["e2e"] > budget_ms


@dataclass
class LatencyReport:
    """Summary of a run; ``table()`` for people, ``as_dict()`` for JSON.

    Statistics of a column are ``None`` when no mask was measured.
    """

    budget_ms: float
    frames_in: int
    masks: int
    wall_s: float
    stats: dict[str, dict[str, float | None]]
    deadline_misses: int
    drops: dict[str, int] = field(default_factory=dict)
    losses: dict[str, dict[str, int]] = field(default_factory=dict)
    """Messages lost that are not camera frames (lidar scans, diagnostics), by what, where."""
    behind: dict[str, dict[str, float]] = field(default_factory=dict)
    """Paced sources that read slower than the rate, by name: ``messages`` read after their
    release time and the ``ms`` the replay fell behind the recorded rate for them (not
    latency: the graph then ran at a lower rate than asked for)."""

    @property
    def fps(self) -> float:
        return self.masks / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget_ms": self.budget_ms, "frames_in": self.frames_in, "masks": self.masks,
            "wall_s": self.wall_s, "fps": self.fps, "deadline_misses": self.deadline_misses,
            "dropped": self.dropped, "drops": self.drops, "lost": self.losses,
            "replay_behind": self.behind, "latency_ms": self.stats,
        }

    def to_json(self) -> str:
        """``as_dict()`` as JSON; refuses NaN and infinities (not valid JSON)."""
        return json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"

    def table(self) -> str:
        lines = [
            f"latency of {self.masks} masks from {self.frames_in} camera frames "
            f"({self.fps:.1f} fps over {self.wall_s:.1f} s), budget {self.budget_ms:g} ms",
            f"{'stage':<10}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}  (ms)",
        ]
        for name in COLUMNS:
            s = self.stats[name]
            lines.append(f"{name:<10}" + "".join(f"{format_ms(s[k], '.1f'):>9}"
                                                 for k in ("p50", "p95", "p99", "max")))
        lines.append(f"deadline misses: {self.deadline_misses} of {self.masks}")
        if self.drops:
            lines.append(f"dropped frames: {self.dropped}")
            lines.extend(f"  {n:5d}  at {where}" for where, n in sorted(self.drops.items()))
        else:
            lines.append("dropped frames: 0")
        for what, at in sorted(self.losses.items()):
            lines.append(f"lost {what}: {sum(at.values())}")
            lines.extend(f"  {n:5d}  at {where}" for where, n in sorted(at.items()))
        for name, lag in sorted(self.behind.items()):
            lines.append(f"replay behind the rate at {name}: {lag['ms']:.0f} ms, "
                         f"{lag['messages']:.0f} messages read after their release time "
                         "(reading slower than the rate; not counted as latency)")
        return "\n".join(lines)
