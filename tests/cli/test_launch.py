"""``drivingseg launch`` and the options every graph-running command shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.cli import main


@pytest.mark.parametrize("command", ["launch", "replay", "demo"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "-inf"])
def test_timeout_must_be_seconds_above_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    """``--timeout -1`` used to stop the graph at once: the replay overwrote the outputs of
    an earlier run with a few frames and exited 0; ``--timeout nan`` never stopped it.
    Refused before anything is read or written."""
    out = tmp_path / "out"
    argv = {
        "launch": ["launch", "replay_kitti", "input:=synthetic", f"out_dir:={out}"],
        "replay": ["replay", "synthetic", "--out", str(out)],
        "demo": ["demo", "--out", str(out)],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, f"--timeout={value}"])
    assert exit_info.value.code == 2
    assert f"argument --timeout: expected seconds above 0, got {value!r}" in (
        capsys.readouterr().err)
    assert not out.exists()
