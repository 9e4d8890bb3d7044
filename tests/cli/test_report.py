"""``drivingseg report``'s arguments: each INPUT once; its progress bar."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivingseg.cli import main
from drivingseg.cli._common import progress_in_steps


def test_an_input_given_twice_is_refused(
    camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report camvid/val camvid/val/`` scored every frame twice: "2 frames from 2
    input(s)" for one frame, each counted twice in the metrics."""
    val = camvid_root / "val"
    out = tmp_path / "report"
    argv = ["report", str(val), f"{val}/", "--out", str(out), "--limit", "1", "--workers", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"drivingseg report: error: {val}/: INPUT '{val}/' is INPUT '{val}' again; "
                   "its frames would be scored and counted twice\n")
    assert not out.exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_counts_whole_chunks_and_gives_an_honest_eta() -> None:
    """Fed one tick per frame after each 16-frame chunk, the bar showed "1/64" when 16 were
    done, at one frame per chunk time: an ETA 16 times too long (hours on a fleet)."""
    def chunks() -> Iterator[int]:
        for _ in range(4):
            time.sleep(0.3)  # a chunk's worth of work, then its 16 frames at once
            yield 16

    screen = _Terminal()
    assert list(progress_in_steps(chunks(), total=64, desc="report", file=screen)) == [16] * 4
    shown = [s for s in screen.getvalue().split("\r") if "/64" in s]
    counts = [int(s.split("/64")[0].split()[-1]) for s in shown]
    assert sorted(set(counts)) == [0, 16, 32, 48, 64]  # 64 again when the bar closes
    first_eta = shown[1].split("<")[1].split(",")[0]  # 16 of 64 after ~0.3 s: ~1 s to go
    assert first_eta in ("00:00", "00:01", "00:02"), shown[1]
