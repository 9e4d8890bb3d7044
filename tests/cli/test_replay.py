"""``drivingseg replay``: launch arguments (``name:=value``) before or after the options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivingseg.cli import main


@pytest.mark.parametrize("after_options", [False, True])
def test_launch_arguments_after_the_options(
    kitti_raw_drive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    after_options: bool,
) -> None:
    """``replay DRIVE --frames 1 budget_ms:=-1`` used to stop at argparse ("unrecognized
    arguments: budget_ms:=-1"): name:=value was only taken right after INPUT. The launch
    file now checks it either way (here: refused, before any frame is read)."""
    options = ["--frames", "1", "--out", str(tmp_path / "out")]
    launch_args = ["budget_ms:=-1"]
    argv = ["replay", str(kitti_raw_drive),
            *(options + launch_args if after_options else launch_args + options)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "parameter 'budget_ms': -1.0 is below the minimum 0 ms" in err


def test_other_leftovers_are_still_refused(
    kitti_raw_drive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(kitti_raw_drive), "--frames", "1", "--bogus", "rate:=2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # info takes no launch arguments
        main(["info", str(kitti_raw_drive), "rate:=2"])
    assert "unrecognized arguments: rate:=2" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "overflow"), [
    (["rate:=0"], "block"), (["--fast", "rate:=1"], "drop_oldest"),
    (["rate:=0", "overflow:=drop_oldest"], "drop_oldest"), (["--fast"], "block"),
    ([], "drop_oldest"),
])
def test_rate_given_as_an_argument_brings_its_overflow(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], overflow: str
) -> None:
    """``replay DRIVE rate:=0`` ran as fast as possible with the paced 'drop_oldest'
    queues, so frames were dropped where ``--fast`` (and rate 0) promise none."""
    from drivingseg.cli import cmd_replay

    launched: dict[str, Any] = {}

    def fake_launch(file: str, arguments: dict[str, Any], **kwargs: Any) -> int:
        launched.update(arguments)
        return 0

    monkeypatch.setattr(cmd_replay, "launch", fake_launch)
    assert main(["replay", str(kitti_raw_drive), *given]) == 0
    assert launched["overflow"] == overflow


def test_a_gpu_named_by_index_reaches_the_launch_file(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--device cuda:1`` stopped at argparse's choices (auto, cpu, cuda); the segmentation
    node checks it against the machine's GPUs (``device:=cuda:1`` went through already)."""
    from drivingseg.cli import cmd_replay

    launched: dict[str, Any] = {}

    def fake_launch(file: str, arguments: dict[str, Any], **kwargs: Any) -> int:
        launched.update(arguments)
        return 0

    monkeypatch.setattr(cmd_replay, "launch", fake_launch)
    assert main(["replay", str(kitti_raw_drive), "--device", "cuda:1"]) == 0
    assert launched["device"] == "cuda:1"


def test_receive_stamps_reach_the_bag_launch_file_and_are_refused_elsewhere(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bag of sensors on two clocks was refused with no way to replay it: ``--stamps
    receive`` replays it by its receive times; a KITTI drive has none to use."""
    from drivingseg.cli import cmd_replay

    launched: dict[str, Any] = {}

    def fake_launch(file: str, arguments: dict[str, Any], **kwargs: Any) -> int:
        launched.update(arguments, file=file)
        return 0

    monkeypatch.setattr(cmd_replay, "launch", fake_launch)
    bag = tmp_path / "drive.mcap"
    bag.touch()
    assert main(["replay", str(bag), "--stamps", "receive"]) == 0
    assert (launched["file"], launched["stamps"]) == ("replay_bag.yaml", "receive")
    launched.clear()
    assert main(["replay", str(kitti_raw_drive), "--stamps", "receive"]) == 2
    assert launched == {}
    err = capsys.readouterr().err
    assert "--stamps 'receive' only applies to bags" in err and "(KITTI raw drive" in err
