"""The bag sources behind BagRecording: unpacking a file-compressed ROS 2 bag, and
streaming an MCAP without summary."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.bags import ROS2, Entry, header, write_bag
from support.progress import record_progress

from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.bag_sources import McapStreamSource
from drivingseg.sensors.frames import CameraFrame

T0 = 1_700_000_000_000_000_000


def test_unpacking_a_file_compressed_bag_shows_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacking a multi-GB file-compressed bag takes minutes and was silent."""
    bars = record_progress(monkeypatch)
    image = ROS2.types["sensor_msgs/msg/Image"]
    entries: list[Entry] = [
        ("/cam", "sensor_msgs/msg/Image", T0 + k, image(
            header=header(ROS2, T0 + k, "cam"), height=1024, width=1024, encoding="mono8",
            is_bigendian=0, step=1024,
            data=np.random.default_rng(k).integers(0, 256, 1024 * 1024, dtype=np.uint8)))
        for k in range(3)
    ]
    path = write_bag(tmp_path / "drive", "sqlite3", entries, mode="file")
    (packed,) = path.glob("*.zstd")
    with BagRecording(path) as bag:
        assert [s.count for s in bag.info().streams] == [3]
    mib = -(-packed.stat().st_size // (1 << 20))
    assert mib >= 3
    assert bars == [(f"unpack {packed.name}", mib, "MiB", mib)]


def test_an_mcap_without_summary_is_read_once_with_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed recorder's multi-GB MCAP (no summary, no index) is read front to back when
    opened, which was silent, and ``info`` read it all again."""
    bars = record_progress(monkeypatch)
    out, killed = tmp_path / "live.mcap", tmp_path / "killed.mcap"
    stamps = [T0 + k * 100_000_000 for k in range(4)]
    with Ros2McapWriter(out, chunk_size_bytes=1) as writer:
        for stamp in stamps:
            writer.write_image("/cam", CameraFrame(stamp, np.zeros((4, 6, 3), np.uint8)))
        shutil.copyfile(out, killed)  # what a SIGKILL now would leave on disk
    with BagRecording(killed) as bag:
        assert bars == [("scan killed.mcap", None, "message", 4)]
        passes: list[bool] = []
        real = McapStreamSource._records

        def counting(self: McapStreamSource, *, warn: bool) -> Any:
            passes.append(warn)
            return real(self, warn=warn)

        monkeypatch.setattr(McapStreamSource, "_records", counting)
        (cam,) = bag.info().streams
        assert (cam.count, cam.first_ns, cam.last_ns) == (4, stamps[0], stamps[-1])
        assert passes == []
