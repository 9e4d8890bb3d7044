"""``drivingseg synth``'s options are checked, and named, before anything is rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.cli import main


@pytest.mark.parametrize(("options", "message"), [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "-2"], "--workers must be at least 1, got -2"),
    (["--frames", "0"], "--frames must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be 0 or more, got -1"),
])
def test_bad_options_are_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    """--workers 0 (or below) used to render all frames in this process and exit 0; --frames
    and --seed were refused by the renderer without the option's name."""
    out = tmp_path / "out"
    assert main(["synth", str(out), "--frames", "1", *options]) == 2
    assert capsys.readouterr().err == f"drivingseg synth: error: {message}\n"
    assert not out.exists()
