"""Record the progress bars code under test opens, in place of the CLI's ``progress``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from drivingseg.cli import _common

Bar = tuple[str, int | None, str, int]
"""desc, total, unit and the items that went through the bar."""


def record_progress(monkeypatch: pytest.MonkeyPatch) -> list[Bar]:
    """Patch :func:`drivingseg.cli._common.progress` (which the package imports lazily) to
    pass items through and note each bar when it ends, even when its reader stops early."""
    bars: list[Bar] = []

    def recording_progress(items: Iterable[Any], *, total: int | None = None, desc: str = "",
                           unit: str = "frame") -> Iterator[Any]:
        count = 0
        try:
            for item in items:
                count += 1
                yield item
        finally:
            bars.append((desc, total, unit, count))

    monkeypatch.setattr(_common, "progress", recording_progress)
    return bars
