"""The CLI's error contract for messages that span several lines: one line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.cli import main
from drivingseg.cli.main import one_line
from drivingseg.errors import ConfigError

BROKEN_YAML = "description: x\nnodes:\n  - type: sync\n    name: s\n   parameters: {a\n"


def error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_invalid_launch_yaml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyYAML's message (source lines quoted under a caret) used to be printed as it is."""
    path = tmp_path / "graph.yaml"
    path.write_text(BROKEN_YAML)
    line = error_line(["launch", str(path)], capsys)
    assert line == (f"drivingseg launch: error: {path}: launch file is not valid YAML: line 5, "
                    "column 4: expected <block end>, but found '<block mapping start>'")


@pytest.mark.parametrize("command", ["train", "synth"])
def test_invalid_training_config_or_rig_yaml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\n  width: [1, 2\n")
    argv = (["train", "--config", str(path)] if command == "train"
            else ["synth", str(tmp_path / "out"), "--rig", str(path), "--frames", "1"])
    line = error_line(argv, capsys)
    what = "training config" if command == "train" else "rig file"
    assert line.startswith(f"drivingseg {command}: error: {path}: {what} is not valid YAML: "
                           "line 2, column 8: ")
    assert not (tmp_path / "out").exists()


def test_one_line_joins_any_other_message() -> None:
    exc = ConfigError("cannot read it: while parsing\n  in 'x', line 2:\n    ^ (line: 2)\n",
                      path="a.yaml")
    assert one_line(exc) == "a.yaml: cannot read it: while parsing in 'x', line 2:"
    assert one_line(ConfigError("plain")) == "plain"


def test_output_into_a_closed_pipe_ends_quietly_with_sigpipe_status() -> None:
    """``drivingseg launch --list-nodes | head -1``: the reader leaves after one line and
    the next write failed with a BrokenPipeError traceback; now the command stops quietly
    with 141 (128 + SIGPIPE), as cat does."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "drivingseg", "launch", "--list-nodes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_debug_and_verbose_after_the_command(tmp_path: Path) -> None:
    """README: ``--debug`` shows the traceback; given after the command (``drivingseg info
    PATH --debug``, where options usually go) it was refused as an unrecognized argument."""
    from drivingseg.cli.main import build_parser, parse_args
    from drivingseg.errors import RecordingError

    with pytest.raises(RecordingError, match="no such file or folder"):
        main(["info", str(tmp_path / "nope"), "--debug"])
    parser = build_parser()
    late = parse_args(parser, ["replay", "synthetic", "-v", "video:=false"])
    assert (late.verbose, late.debug, late.arguments) == (True, False, ["video:=false"])
    early = parse_args(parser, ["--debug", "info", "synthetic"])
    assert (early.verbose, early.debug) == (False, True)
