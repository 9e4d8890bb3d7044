"""What the benchmark scripts share: the repository, the shared data, a median timer and
the checks that a fast path gives the baseline's result.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import ``from _common import ...`` before ``drivingseg``. Importing this module puts the
repository root first on ``sys.path``: the scripts then time this checkout's package, not
whichever one the virtualenv's editable install points at.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from drivingseg.errors import DrivingsegError  # noqa: E402  (this checkout's, see above)

# Fraction of pixels whose class a fast path must share with the float32 eager baseline:
# bfloat16 moves ~0.2-0.3 % of a KITTI frame's pixels across a class boundary; a broken
# export, layout or normalisation moves far more.
MIN_AGREEMENT = 0.99


class BenchmarkError(DrivingsegError):
    """A fast path's result differs from its baseline's, so timing it would mean nothing."""


def data_root() -> Path:
    """``$DRIVINGSEG_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("DRIVINGSEG_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def positive_int(text: str) -> int:
    """argparse type of ``--runs``/``--steps``: a median needs at least one timed call."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value!r}")
    return value


def label_agreement(labels: npt.NDArray[np.integer], baseline: npt.NDArray[np.integer]
                    ) -> float:
    """Fraction of pixels where ``labels`` has the class of ``baseline`` (same shape)."""
    a, b = np.asarray(labels), np.asarray(baseline)
    if a.shape != b.shape or a.size == 0:
        raise BenchmarkError(f"label images differ in shape: {a.shape!r} against {b.shape!r}")
    return float(np.count_nonzero(a == b)) / a.size


def check_agreement(what: str, labels: npt.NDArray[np.integer],
                    baseline: npt.NDArray[np.integer], minimum: float = MIN_AGREEMENT) -> float:
    """``label_agreement``, raising :class:`BenchmarkError` below ``minimum``."""
    agreement = label_agreement(labels, baseline)
    if agreement < minimum:
        raise BenchmarkError(f"{what}: {agreement:.2%} of pixels have the baseline's class, "
                             f"below the {minimum!r} a faster way of the same network must reach")
    return agreement


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
