"""YAML reading: invalid YAML is refused in one line naming the place, through the API
(not only the CLI), for every file kind that reads YAML. Sets of files replaced whole."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from drivingseg import fileio
from drivingseg.errors import ConfigError, ModelError
from drivingseg.fileio import read_yaml_mapping, write_text_atomic, write_texts_together
from drivingseg.model.train_config import load_train_config
from drivingseg.signals import sigterm_interrupts


def test_invalid_yaml_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    """PyYAML's own message spans lines (the source quoted under a caret) and names
    '<unicode string>' instead of the file."""
    path = tmp_path / "rig.yaml"
    path.write_text("name: x\n  width: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml_mapping(path, error=ConfigError, what="rig file")
    message = str(info.value)
    assert "\n" not in message and "<unicode string>" not in message
    assert message.startswith(f"{path}: rig file is not valid YAML: line 2, column 8: ")


def test_an_invalid_set_value_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("model: {depth: 2}\n")
    with pytest.raises(ModelError, match=r"--set 'train.lr=\[1, 2': value is not valid YAML: "
                                         r"line 1, column \d+: [^\n]*$") as info:
        load_train_config(config, ["train.lr=[1, 2"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_between_renames_leaves_the_new_set_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    """A report's four files are renamed one after the other: Ctrl-C (or SIGTERM, which
    every command turns into Ctrl-C) after the first used to stop there, leaving the new
    report.json beside the old page and CSVs. A thread beside the main one (a progress
    bar's, torch's) is there too, as in a real run."""
    names = ("report.json", "frames.csv", "classes.csv", "report.html")
    targets = [tmp_path / name for name in names]
    write_texts_together({p: "old" for p in targets}, error=ConfigError, what="the report")
    real_replace = os.replace

    def replace_then_interrupt(src: str, dst: str) -> None:
        real_replace(src, dst)
        if dst == targets[0]:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(fileio.os, "replace", replace_then_interrupt)
    done = threading.Event()
    other = threading.Thread(target=done.wait, daemon=True)
    other.start()
    try:
        with sigterm_interrupts(), pytest.raises(KeyboardInterrupt):
            write_texts_together({p: "new" for p in targets}, error=ConfigError,
                                 what="the report")
    finally:
        done.set()
    assert [p.read_text() for p in targets] == ["new"] * len(targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporaries


def test_a_file_name_that_is_not_utf8_quoted_in_a_text_is_written(tmp_path: Path) -> None:
    """``drivingseg report 'cv\\xff/val' --out rep`` scored every frame, then died with a
    UnicodeEncodeError traceback writing the page that quotes the input's name (Python
    decodes the byte as the surrogate ``\\udcff``); the name is written as ``\\udcff``."""
    name = os.fsdecode(b"cv\xff/val")
    write_texts_together({tmp_path / "a.csv": f"input,{name}\n", tmp_path / "b.json": name},
                         error=ConfigError, what="the report")
    write_text_atomic(tmp_path / "c.html", f"<p>{name}</p>", error=ConfigError, what="page")
    assert (tmp_path / "a.csv").read_text(encoding="utf-8") == "input,cv\\udcff/val\n"
    assert (tmp_path / "b.json").read_text(encoding="utf-8") == "cv\\udcff/val"
    assert (tmp_path / "c.html").read_text(encoding="utf-8") == "<p>cv\\udcff/val</p>"


def test_prepare_output_checks_without_creating_folders(tmp_path: Path) -> None:
    """The output's folders are made by the atomic write, not by the check: a command
    stopped between them leaves no empty folder; a file or a folder as an ancestor is
    still refused up front."""
    out = tmp_path / "a" / "b" / "out.json"
    assert fileio.prepare_output(out, error=ConfigError, what="the report") == out
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"the report: .*file' is not a folder"):
        fileio.prepare_output(tmp_path / "file" / "x" / "o.json", error=ConfigError,
                              what="the report")
    with pytest.raises(ConfigError, match="it is a folder"):
        fileio.prepare_output(tmp_path, error=ConfigError, what="the report")
