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


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``runs`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3
