"""``drivingseg report``'s arguments: each INPUT once."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.cli import main


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
