"""``drivingseg train`` checks the checkpoints its config names before any training work."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from drivingseg.cli import main

train_module = importlib.import_module("drivingseg.model.train")  # not the function


def write_config(tmp_path: Path, camvid_root: Path, **train: object) -> Path:
    cfg = {
        "out_dir": "run",
        "model": {"depth": 2, "base_channels": 4},
        "input": {"width": 48, "height": 32},
        "data": {"train": [{"path": str(camvid_root / "val")}]},
        "train": {"epochs": 1, "batch_size": 2, **train},
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


class DataLoadedError(Exception):
    """Raised where the training would load its frames: what these tests must not reach."""


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading the training frames (the first slow step) raise :class:`DataLoadedError`."""

    def load_sources(*args: Any, **kwargs: Any) -> Any:
        raise DataLoadedError

    monkeypatch.setattr(train_module, "load_sources", load_sources)


@pytest.mark.parametrize("key", ["init_from", "distill_from"])
@pytest.mark.usefixtures("no_data")
def test_a_missing_checkpoint_fails_before_the_data_is_loaded(
    tmp_path: Path, camvid_root: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """A missing init_from or teacher used to be found only after every training frame was
    loaded (and, with distill_tta, after the teachers' pass over them)."""
    missing = tmp_path / "nope.safetensors"
    value: object = str(missing) if key == "init_from" else [str(missing)]
    config = write_config(tmp_path, camvid_root, **{key: value})
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (f"drivingseg train: error: {missing}: no checkpoint here (neither "
                   "'nope.safetensors' nor 'nope.json' exists)\n")


@pytest.mark.usefixtures("no_data")
def test_resume_does_not_need_init_from(
    tmp_path: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run ignores init_from (its weights come from out_dir/last.*): it goes on to
    load its data although init_from is gone."""
    monkeypatch.setattr(train_module, "read_state_info", lambda path: {})
    monkeypatch.setattr(train_module, "check_resumable", lambda cfg, info: None)
    config = write_config(tmp_path, camvid_root, init_from=str(tmp_path / "gone.safetensors"))
    with pytest.raises(DataLoadedError):
        main(["train", "--config", str(config), "--resume"])


@pytest.mark.parametrize("under", [False, True])
def test_out_dir_that_is_a_file_is_one_line(
    tmp_path: Path, camvid_root: Path, capsys: pytest.CaptureFixture[str], under: bool
) -> None:
    """``--out-dir`` naming a file (or a folder under a file) ended in a FileExistsError
    (NotADirectoryError) traceback from the trainer's mkdir."""
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    out = file / "run" if under else file
    config = write_config(tmp_path, camvid_root)
    assert main(["train", "--config", str(config), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    where = f"is under the file {str(file)!r}" if under else "is a file"
    assert err == f"drivingseg train: error: {out}: out_dir {str(out)!r} {where}, not a folder\n"
    assert file.read_text() == "mine\n"


def test_out_dir_that_cannot_be_created_is_one_line(
    tmp_path: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A folder the user may not create (read-only mount, another user's folder) ended in
    a PermissionError traceback from the trainer's mkdir."""
    out = tmp_path / "readonly" / "run"

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    config = write_config(tmp_path, camvid_root)
    assert main(["train", "--config", str(config), "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err == (f"drivingseg train: error: {out}: cannot create out_dir "
                                       f"{str(out)!r}: Permission denied\n")
