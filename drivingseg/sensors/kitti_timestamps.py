"""KITTI ``timestamps.txt`` files, parsed to exact integer nanoseconds.

KITTI writes one line per frame, ``YYYY-MM-DD HH:MM:SS.nnnnnnnnn``, in UTC. Going
through ``float`` seconds would lose the last digits (a float64 holds about 16
significant digits, an epoch time in ns needs 19), so the date part is converted with
:func:`calendar.timegm` and the fraction is read as an integer.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError
from drivingseg.fileio import read_text

__all__ = [
    "parse_kitti_timestamp", "read_kitti_timestamp_lines", "read_kitti_timestamps",
]

_STAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_NS_PER_S = 1_000_000_000


def parse_kitti_timestamp(text: str) -> int:
    """Parse ``YYYY-MM-DD HH:MM:SS[.fraction]`` (UTC) to ns since the Unix epoch.

    Surrounding whitespace is ignored; the fraction may have 1 to 9 digits. Raises
    ``ValueError`` on anything else (callers add the file and line).
    """
    match = _STAMP_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected 'YYYY-MM-DD HH:MM:SS.nnnnnnnnn'")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    # datetime validates the ranges (month 13, 31 February, hour 24 ...).
    dt = datetime(year, month, day, hour, minute, second)
    fraction = match.group(7) or ""
    return calendar.timegm(dt.timetuple()) * _NS_PER_S + int(fraction.ljust(9, "0"))


def read_kitti_timestamp_lines(path: str | PathLike[str]) -> list[int | None]:
    """Read a KITTI ``timestamps.txt``: one entry per line, the stamp in ns or ``None`` for
    a blank line (KITTI leaves the line of a frame it lost blank, as the velodyne of
    ``2011_09_26_drive_0009_sync`` has).

    Blank lines at the end are ignored; a malformed line or a stamp earlier than the one
    before raises :class:`RecordingError` naming the file and the 1-based line number.
    """
    p = Path(path)
    text = read_text(p, error=RecordingError, what="timestamps file", encoding="ascii")
    stamps: list[int | None] = []
    prev: tuple[int, int] | None = None  # line number and stamp of the last stamp
    for lineno, line in enumerate(text.rstrip().splitlines(), start=1):
        if not line.strip():
            stamps.append(None)
            continue
        try:
            stamp = parse_kitti_timestamp(line)
        except ValueError as exc:
            msg = f"line {lineno}: malformed timestamp {line!r} ({exc})"
            raise RecordingError(msg, path=p) from exc
        if prev is not None and stamp < prev[1]:
            msg = (
                f"line {lineno}: timestamp goes backwards: {line.strip()!r} ({stamp} ns) "
                f"is before line {prev[0]} ({prev[1]} ns)"
            )
            raise RecordingError(msg, path=p)
        prev = (lineno, stamp)
        stamps.append(stamp)
    return stamps


def read_kitti_timestamps(path: str | PathLike[str]) -> npt.NDArray[np.int64]:
    """Read a KITTI ``timestamps.txt`` with a stamp on every line into a read-only int64
    array of ns; errors as :func:`read_kitti_timestamp_lines`, and a blank line between
    stamps raises too."""
    stamps = read_kitti_timestamp_lines(path)
    if None in stamps:
        lineno = stamps.index(None) + 1
        msg = f"line {lineno}: blank line between timestamps; every frame here needs a stamp"
        raise RecordingError(msg, path=Path(path))
    arr = np.array(stamps, dtype=np.int64)
    arr.setflags(write=False)
    return arr
