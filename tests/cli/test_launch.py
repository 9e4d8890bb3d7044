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


def test_show_args_lists_what_a_launch_file_declares(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As ``ros2 launch --show-args``: the declared arguments, their defaults as written
    and their descriptions, which were shown nowhere (a user had to read the YAML)."""
    assert main(["launch", "replay_kitti", "--show-args"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("arguments of ") and out[0].endswith(
        "replay_kitti.yaml (pass them as name:=value):")
    assert "  input (required): KITTI raw drive folder, KITTI object/road folder, or " \
           "synthetic[:SEED]" in out
    assert "  rate (default 1.0): replay speed; 0 = as fast as possible" in out
    assert "  overflow (default 'drop_oldest'): queue overflow: drop_oldest or block" in out
    assert "  loop (default false): replay again and again" in out
    own = tmp_path / "mine.yaml"
    own.write_text("arguments:\n  seed: 3\n  input: {default: 'synthetic:$(arg seed)'}\n")
    assert main(["launch", str(own), "--show-args"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  seed (default 3)", "  input (default 'synthetic:$(arg seed)')"]
    assert main(["launch", str(tmp_path / "none.yaml"), "--show-args"]) == 2
    assert "launch file not found" in capsys.readouterr().err
