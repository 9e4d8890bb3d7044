"""``open_recording``: the one place that picks a reader for a path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivingseg.errors import RecordingError
from drivingseg.outputs.convert import convert_to_mcap
from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.kitti_benchmark import KittiBenchmark
from drivingseg.sensors.kitti_raw import KittiRawDrive
from drivingseg.sensors.open import detect_format, open_recording
from drivingseg.sensors.synthetic import SyntheticDrive


def test_each_kind_of_path_gets_its_reader(kitti_raw_drive: Path, kitti_object_root: Path,
                                           tmp_path: Path) -> None:
    with open_recording(kitti_raw_drive) as raw:
        assert isinstance(raw, KittiRawDrive) and len(raw) == 30
        mcap = tmp_path / "drive.mcap"
        convert_to_mcap(raw, mcap, max_frames=2)
    with open_recording(kitti_object_root) as obj:
        assert isinstance(obj, KittiBenchmark)
    with open_recording("synthetic:3") as syn:
        assert isinstance(syn, SyntheticDrive) and syn.seed == 3
    # A suffix in capitals (copied from another system) is the same file type.
    upper = shutil.copy(mcap, tmp_path / "DRIVE.MCAP")
    for path in (mcap, upper):
        assert detect_format(path) == "rosbag"
        with open_recording(path) as bag:
            assert isinstance(bag, BagRecording)
            assert len(list(bag.camera_frames())) == 2


@pytest.mark.parametrize(("path", "match"), [
    ("synthetic:x", r"synthetic seed must be a whole number, got 'x'"),
    ("synthetic:\u00b2", r"synthetic seed must be a whole number, got '\u00b2'"),  # isdigit()
    ("synthetic:-1", r"synthetic seed must be a whole number, got '-1'"),
])
def test_bad_synthetic_seeds_are_one_error(path: str, match: str) -> None:
    with pytest.raises(RecordingError, match=match):
        open_recording(path)


def test_paths_that_are_no_recording(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"missing: no such file or folder"):
        open_recording(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RecordingError, match=r"notes\.txt: not a recording drivingseg can read; "
                       r"accepted: KITTI raw"):
        open_recording(tmp_path / "notes.txt")


def test_a_recording_named_synthetic_is_not_taken_for_the_built_in_drive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder called 'synthetic' in the working directory: the bare name is ambiguous
    and refused; './synthetic' is the folder and 'synthetic:0' the built-in drive."""
    monkeypatch.chdir(tmp_path)
    assert detect_format("synthetic") == "synthetic"  # nothing of that name here yet
    (tmp_path / "synthetic" / "velodyne_points").mkdir(parents=True)
    match = (r"synthetic: 'synthetic' is ambiguous: .*use '\./synthetic' for the folder or "
             r"'synthetic:0' for the built-in drive")
    with pytest.raises(RecordingError, match=match):
        detect_format("synthetic")
    with pytest.raises(RecordingError, match=match):
        open_recording("synthetic")
    assert detect_format("./synthetic") == "kitti_raw"
    with open_recording("synthetic:0") as syn:
        assert isinstance(syn, SyntheticDrive) and syn.seed == 0


def test_benchmark_root_with_only_the_test_split(kitti_object_root: Path, tmp_path: Path) -> None:
    """A root holding only ``testing/`` (the test download: no labels) used to be 'not a
    recording drivingseg can read'."""
    testing = tmp_path / "data_object" / "testing"
    testing.mkdir(parents=True)
    for name in ("image_2", "velodyne", "calib"):
        (testing / name).symlink_to(kitti_object_root / name)
    with open_recording(tmp_path / "data_object") as rec:
        assert isinstance(rec, KittiBenchmark)
        assert rec.path == testing and len(rec) == 3 and not rec.has_labels


def test_a_kitti_raw_date_folder_names_its_drives(kitti_raw_root: Path) -> None:
    """pykitti takes the date folder and a drive number; here the drive folder is the input,
    and passing the date folder says so instead of listing every format."""
    match = (r"2011_09_26: a KITTI raw date folder, not a drive: pass one of its 1 drive "
             r"folder\(s\), such as '.*2011_09_26_drive_0000_sync'")
    with pytest.raises(RecordingError, match=match):
        open_recording(kitti_raw_root)


def test_an_unfinished_ros1_bag_is_a_bag(tmp_path: Path) -> None:
    """A killed 'rosbag record' leaves NAME.bag.active: it was refused with 'run rosbag
    reindex'; it is read as a bag without index, and one with nothing in it names the file."""
    active = tmp_path / "drive.bag.active"
    active.write_bytes(b"#ROSBAG V2.0\n")
    assert detect_format(active) == "rosbag"
    with pytest.raises(RecordingError, match=r"drive\.bag\.active: cannot read bag: "):
        open_recording(active)
