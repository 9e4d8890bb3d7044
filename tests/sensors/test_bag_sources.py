"""The bag sources behind BagRecording: unpacking a file-compressed ROS 2 bag."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.bags import ROS2, Entry, header, write_bag

from drivingseg.cli import _common
from drivingseg.sensors.bag import BagRecording

T0 = 1_700_000_000_000_000_000


def test_unpacking_a_file_compressed_bag_shows_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacking a multi-GB file-compressed bag takes minutes and was silent."""
    bars: list[tuple[str, int | None, str, int]] = []

    def recording_progress(items: Iterable[Any], *, total: int | None = None, desc: str = "",
                           unit: str = "frame") -> Iterator[Any]:
        count = 0
        for item in items:
            count += 1
            yield item
        bars.append((desc, total, unit, count))

    monkeypatch.setattr(_common, "progress", recording_progress)
    image = ROS2.types["sensor_msgs/msg/Image"]
    entries: list[Entry] = [
        ("/cam", "sensor_msgs/msg/Image", T0 + k, image(
            header=header(ROS2, T0 + k, "cam"), height=1024, width=1024, encoding="mono8",
            is_bigendian=0, step=1024, data=np.random.default_rng(k).integers(
                0, 256, 1024 * 1024, dtype="uint8")))
        for k in range(3)
    ]
    path = write_bag(tmp_path / "drive", "sqlite3", entries, mode="file")
    (packed,) = path.glob("*.zstd")
    with BagRecording(path) as bag:
        assert [s.count for s in bag.info().streams] == [3]
    mib = -(-packed.stat().st_size // (1 << 20))
    assert mib >= 3
    assert bars == [(f"unpack {packed.name}", mib, "MiB", mib)]
