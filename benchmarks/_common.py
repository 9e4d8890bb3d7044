"""What the benchmark scripts share: the repository, the shared data and a median timer.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import ``from _common import ...``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$DRIVINGSEG_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("DRIVINGSEG_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def median_s(call: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median seconds of ``runs`` calls of ``call`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_ms(call: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``runs`` calls of ``call`` after one warm-up call."""
    return 1e3 * median_s(call, runs)
