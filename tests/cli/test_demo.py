"""``drivingseg demo``'s drive folder: replaced when the demo rendered it, else left alone."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivingseg.cli import main
from drivingseg.cli.cmd_demo import render_drive
from drivingseg.errors import ConfigError


def test_demo_replaces_its_own_drive_but_not_someone_elses(tmp_path: Path) -> None:
    first = render_drive(tmp_path, seed=0, frames=1)
    second = render_drive(tmp_path, seed=1, frames=2)
    assert second == first
    assert len(list((second / "image_02" / "data").glob("*.png"))) == 2
    other = tmp_path / "elsewhere"
    (other / "drive").mkdir(parents=True)
    (other / "drive" / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match=r"drive' exists and was not rendered by the demo; "
                       r"choose another --out"):
        render_drive(other, seed=0, frames=1)
    assert (other / "drive" / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize(("options", "match"), [
    (["--frames", "-2"], r"--frames must be 0 \(all\) or more, got -2"),
    (["--seed", "-1"], r"--seed must be 0 or more, got -1"),
    (["rate:=2", "nonsense"], r"nonsense"),
    (["budget_ms:=-1"], r"parameter 'budget_ms': -1.0 is below the minimum 0 ms"),
    (["--weights", "nope"], r"nope: no checkpoint here"),
])
def test_bad_options_leave_the_last_demo_drive(
    tmp_path: Path, options: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options are checked before the earlier drive is replaced (--frames -2 used to
    delete it first, then fail in the renderer; a launch parameter out of range or a
    missing --weights failed only after the 30 frames were rendered)."""
    drive = render_drive(tmp_path, seed=0, frames=1)
    frames = sorted(drive.rglob("*.png"))
    assert main(["demo", "--out", str(tmp_path), *options]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert sorted(drive.rglob("*.png")) == frames


def test_an_interrupted_render_is_replaced_by_the_next_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the demo renders used to leave a ``drive`` folder without the marker
    (written only once rendering finished), which every later demo refused as someone's."""
    from drivingseg.cli import cmd_synth

    render_drive(tmp_path, seed=0, frames=1)
    real = cmd_synth.progress

    def interrupted(items: Iterable[Any], **kwargs: Any) -> Iterator[Any]:
        for i, item in enumerate(real(items, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield item

    for out in (tmp_path, tmp_path / "fresh"):  # replacing a drive, and the first one
        monkeypatch.setattr(cmd_synth, "progress", interrupted)
        with pytest.raises(KeyboardInterrupt):
            render_drive(out, seed=0, frames=3)
        monkeypatch.setattr(cmd_synth, "progress", real)
        drive = render_drive(out, seed=1, frames=2)
        assert len(list((drive / "image_02" / "data").glob("*.png"))) == 2


@pytest.mark.parametrize(("given", "overflow"), [
    (["rate:=0"], "block"), (["rate:=2"], "drop_oldest"),
    (["rate:=0", "overflow:=drop_oldest"], "drop_oldest"), ([], "drop_oldest"),
])
def test_rate_given_as_an_argument_brings_its_overflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], overflow: str
) -> None:
    """``demo rate:=0`` (as fast as possible) kept the demo's paced 'drop_oldest': the
    sources flooded the keep-last queues and scans, frames and recorded masks were
    dropped, where demo.yaml itself pairs rate 0 with 'block'."""
    from drivingseg.cli import cmd_demo

    launched: dict[str, Any] = {}

    def fake_launch(file: str, arguments: dict[str, Any], **kwargs: Any) -> int:
        launched.update(arguments)
        return 0

    monkeypatch.setattr(cmd_demo, "launch", fake_launch)
    monkeypatch.setattr(cmd_demo, "render_drive", lambda out, seed, frames: tmp_path)
    assert main(["demo", "--out", str(tmp_path), *given]) == 0
    assert launched["overflow"] == overflow
