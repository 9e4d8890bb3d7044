"""Help texts agree with the documentation and with what the commands do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivingseg.cli import main

REPO = Path(__file__).resolve().parents[2]


def help_text(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone


@pytest.mark.parametrize("command", ["eval", "report"])
def test_tta_cost_matches_the_report_docs(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The help said ~17x for multiscale, docs/REPORT.md ~16x (measured: 15.5x)."""
    doc = " ".join((REPO / "docs" / "REPORT.md").read_text().split())
    factor = re.search(r"\(`multiscale`, 12 views, (~\d+x) the inference time\)", doc)
    assert factor is not None
    assert f"12 views, {factor.group(1)} the time" in help_text(command, capsys)


@pytest.mark.parametrize("command", ["eval", "report"])
def test_labelled_layouts_include_images_and_labels(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both read images/ + labels/ folders (README); their help did not say so."""
    assert "images/ + labels/" in help_text(command, capsys)


def test_ensemble_of_one_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One checkpoint makes a manifest too (README: CHECKPOINT [CHECKPOINT ...]); the
    message said '1 networks'."""
    out = tmp_path / "one.json"
    assert main(["ensemble", str(out), "default"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: 1 network, input 384x288")


@pytest.mark.parametrize("command", ["demo", "fuse", "launch", "replay"])
def test_help_from_docstrings_shows_no_rest_markup(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """These commands' help is their module docstring, which showed ``literals``."""
    text = help_text(command, capsys)
    assert "``" not in text and f"drivingseg {command}" in text


def test_info_help_names_every_input_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """README: info reads ROS 2 bag folders and ``synthetic[:SEED]`` too; its help named a
    'bag or MCAP' only."""
    text = help_text("info", capsys)
    assert "ROS 2 bag folder" in text and "synthetic[:SEED]" in text


def test_demo_help_says_what_frames_0_does(capsys: pytest.CaptureFixture[str]) -> None:
    """``demo --frames 0`` runs the whole drive (its error says "0 (all)"); the help did
    not say so."""
    from drivingseg.cli.cmd_demo import SYNTHETIC_FRAMES

    assert f"frames to run (default 30; 0: all {SYNTHETIC_FRAMES})" in help_text("demo", capsys)


def test_launch_help_names_every_launch_file_that_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """launch/README runs ``drivingseg launch pipeline input:=...`` (the graph without
    outputs); the help listed demo, replay_kitti, replay_bag and vehicle only, and called the
    folder the repository's, where an installed wheel reads ``share/drivingseg/launch``."""
    text = help_text("launch", capsys)
    runnable = sorted(p.stem for p in (REPO / "launch").glob("*.yaml") if p.stem != "outputs")
    assert runnable == ["demo", "pipeline", "replay_bag", "replay_kitti", "vehicle"]
    missing = [name for name in runnable if name not in text]
    assert not missing, f"launch --help does not name {missing}"
    assert "share/drivingseg/launch" in text


@pytest.mark.parametrize(("option", "default"), [("--max-depth", "80"), ("--min-depth", "0.5")])
def test_fuse_help_states_depth_defaults(
    option: str, default: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every other numeric option of the CLI says its default; fuse's depth limits did not
    (the overlay's far colour is 80 m, points nearer than 0.5 m are dropped)."""
    options = help_text("fuse", capsys).split("options:", 1)[1]
    described = options.split(f"{option} {option[2:].upper().replace('-', '_')}", 1)[1]
    assert f"default {default})" in described.split(" --", 1)[0]


def test_ensemble_says_it_replaces_a_manifest_and_refuses_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ensemble replaced an earlier manifest without a word in its help, while convert
    refuses without --force; it now says what it does, as eval --json and export do it."""
    text = help_text("ensemble", capsys)
    assert ("an earlier manifest there is replaced, as eval --json and export replace their "
            "file, any other existing file is refused") in text
    out = tmp_path / "pair.json"
    assert main(["ensemble", str(out), "default"]) == 0
    assert main(["ensemble", str(out), "default", "--note", "run=2"]) == 0
    assert '"run": "2"' in out.read_text()
    other = tmp_path / "other.json"
    other.write_text('{"model": {}}\n')
    assert main(["ensemble", str(other), "default"]) == 2
    assert "exists and is not an ensemble manifest" in capsys.readouterr().err
    assert other.read_text() == '{"model": {}}\n'
