"""Helpers shared by the subcommand modules."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap a long job's iterable in a progress bar on stderr (hidden when not a TTY)."""
    yield from tqdm(items, total=total, desc=desc, unit="frame", file=sys.stderr, disable=None)
