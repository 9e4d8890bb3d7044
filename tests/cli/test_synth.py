"""``drivingseg synth``'s options are checked, and named, before anything is rendered."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drivingseg.calibration.rig_yaml import load_rig, save_rig
from drivingseg.cli import main
from drivingseg.sensors.synthetic import writer
from drivingseg.sensors.synthetic.drive import default_rig_path


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


def test_a_distorted_rig_is_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rig with lens distortion used to render every frame and only then fail on writing
    the KITTI calibration."""
    rig = load_rig(default_rig_path())
    camera = replace(rig.camera, distortion_model="plumb_bob",
                     D=np.array([-0.3, 0.1, 0.0, 0.0, 0.0]), image_rectified=False)
    rig_path = tmp_path / "distorted.yaml"
    save_rig(replace(rig, camera=camera), rig_path)

    def no_render(*args: object) -> None:
        raise AssertionError("a frame was rendered")

    monkeypatch.setattr(writer, "_write_frame", no_render)
    out = tmp_path / "out"
    argv = ["synth", str(out), "--frames", "3", "--workers", "1", "--rig", str(rig_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"drivingseg synth: error: {rig_path}: the synthetic camera renders")
    assert not any(out.rglob("*.png"))


def _recording_folders(root: Path) -> dict[str, Path]:
    """Folders laid out as the recordings ``synth`` must not write into."""
    date = root / "kitti_raw" / "2011_09_26"
    drive = date / "2011_09_26_drive_0000_sync"
    for sub in ("image_02/data", "velodyne_points/data"):
        (drive / sub).mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text("")
    bench = root / "kitti_object" / "training"
    for sub in ("image_2", "velodyne", "calib"):
        (bench / sub).mkdir(parents=True)
    bag = root / "ros2_bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    return {"a KITTI raw drive": drive, "a KITTI raw date folder": date,
            "a KITTI object or road folder": bench, "a ROS bag": bag}


@pytest.mark.parametrize("kind", ["a KITTI raw drive", "a KITTI raw date folder",
                                  "a KITTI object or road folder", "a ROS bag"])
def test_a_recordings_own_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """OUT_DIR a KITTI drive used to get a synthetic ``2024_05_01/`` drive written inside it."""
    out = _recording_folders(tmp_path)[kind]
    before = sorted(out.rglob("*"))
    assert main(["synth", str(out), "--frames", "1", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"drivingseg synth: error: OUT_DIR {str(out)!r} is {kind}")
    assert err.count("\n") == 1
    assert sorted(out.rglob("*")) == before


def test_a_new_empty_or_earlier_synth_folder_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal leaves the documented targets alone: a new folder, an empty one, and an
    earlier synth OUT_DIR (its drive replaced)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new", empty, tmp_path / "new"):
        assert main(["synth", str(out), "--frames", "1", "--workers", "1"]) == 0
        assert (writer.drive_folder(out) / "image_02" / "data" / "0000000000.png").is_file()
    capsys.readouterr()


def test_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file as OUT_DIR is named as a file (it was 'cannot create output folder: ...')."""
    out = tmp_path / "drive.bag"
    out.write_bytes(b"")
    assert main(["synth", str(out), "--frames", "1", "--workers", "1"]) == 2
    assert capsys.readouterr().err == (f"drivingseg synth: error: OUT_DIR {str(out)!r} is a "
                                       "file, not a folder\n")
