"""Classifying report inputs: ground truth found, frames listed, no-GT inputs refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.report.inputs import classify_input, classify_inputs


def test_camvid_split_has_segmentation_ground_truth(camvid_root: Path) -> None:
    spec = classify_input(camvid_root / "val", 0, limit=4)
    assert (spec.kind, spec.segmentation_gt, spec.box_gt, spec.lidar) == (
        "camvid", True, False, False)
    assert [f.index for f in spec.frames] == [0, 1, 2, 3]
    assert spec.frames[0].name == "0016E5_07959"
    assert spec.frames[0].label == str(camvid_root / "valannot" / "0016E5_07959.png")


def test_kitti_object_folder_has_boxes_lidar_and_calib(kitti_object_root: Path) -> None:
    spec = classify_input(kitti_object_root.parent, 3)  # the parent of training/ works too
    assert (spec.kind, spec.segmentation_gt, spec.box_gt, spec.lidar) == (
        "kitti_object", False, True, True)
    assert spec.index == 3 and len(spec.frames) == 3
    first = spec.frames[0]
    assert first.boxes is not None and first.boxes.endswith("label_2/000000.txt")
    assert first.lidar is not None and first.lidar.endswith("velodyne/000000.bin")
    assert first.calib_kind == "object" and first.label is None


def test_synthetic_drive_has_labels_lidar_and_raw_calibration(synthetic_drive: Path) -> None:
    spec = classify_input(synthetic_drive)
    assert (spec.kind, spec.segmentation_gt, spec.lidar) == ("synthetic", True, True)
    assert len(spec.frames) == 2
    assert spec.frames[1].lidar == str(synthetic_drive / "velodyne_points" / "data"
                                       / "0000000001.bin")
    assert spec.frames[1].calib == str(synthetic_drive.parent)


def test_kitti_raw_drive_is_refused_naming_what_was_looked_for(kitti_raw_drive: Path) -> None:
    with pytest.raises(RecordingError, match=r"2011_09_26_drive_0000_sync.*no ground truth"
                       r".*label_2") as info:
        classify_inputs([str(kitti_raw_drive)])
    assert info.value.path == str(kitti_raw_drive)


def test_testing_split_plain_folder_and_file_are_refused(tmp_path: Path,
                                                         kitti_object_root: Path) -> None:
    testing = tmp_path / "testing"
    (testing / "image_2").mkdir(parents=True)
    shutil.copy(kitti_object_root / "image_2" / "000000.png", testing / "image_2")
    shutil.copytree(kitti_object_root / "calib", testing / "calib")
    with pytest.raises(RecordingError, match="testing: no ground truth"):
        classify_input(testing)
    with pytest.raises(RecordingError, match="image_2: no ground truth"):
        classify_input(testing / "image_2")
    bag = tmp_path / "drive.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n")
    with pytest.raises(RecordingError, match=r"drive\.mcap: no ground truth"):
        classify_input(bag)
    with pytest.raises(RecordingError, match="no such file or folder"):
        classify_input(tmp_path / "missing")


def test_label_of_another_size_is_refused_naming_the_label(tmp_path: Path,
                                                           camvid_root: Path) -> None:
    (tmp_path / "val").mkdir()
    (tmp_path / "valannot").mkdir()
    for name in ("0016E5_07959.png", "0016E5_07961.png"):
        shutil.copy(camvid_root / "val" / name, tmp_path / "val" / name)
        shutil.copy(camvid_root / "valannot" / name, tmp_path / "valannot" / name)
    bad = tmp_path / "valannot" / "0016E5_07961.png"
    label = np.asarray(cv2.imread(str(bad), cv2.IMREAD_UNCHANGED), dtype=np.uint8)
    cv2.imwrite(str(bad), cv2.resize(label, (240, 180), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(RecordingError, match=r"valannot/0016E5_07961\.png: label image is "
                       r"240x180 but its camera image '0016E5_07961\.png' is 480x360"):
        classify_input(tmp_path / "val")
    assert len(classify_input(tmp_path / "val", limit=1).frames) == 1  # bad frame left out


def test_empty_image_or_label_is_left_to_its_worker_not_the_whole_fleet(
        tmp_path: Path, camvid_root: Path) -> None:
    """A 0-byte file (an interrupted copy) fails its frame in the worker, as a file cut off
    after its header does; classifying must not refuse the input, and so the fleet."""
    (tmp_path / "val").mkdir()
    (tmp_path / "valannot").mkdir()
    names = ("0016E5_07959.png", "0016E5_07961.png", "0016E5_07963.png")
    for name in names:
        shutil.copy(camvid_root / "val" / name, tmp_path / "val" / name)
        shutil.copy(camvid_root / "valannot" / name, tmp_path / "valannot" / name)
    (tmp_path / "val" / names[0]).write_bytes(b"")
    (tmp_path / "valannot" / names[1]).write_bytes(b"")
    spec = classify_input(tmp_path / "val")
    assert [f.name for f in spec.frames] == [n.removesuffix(".png") for n in names]
    from drivingseg.report.worker import ChunkTask, run_chunk

    result = run_chunk(ChunkTask(input=0, kind=spec.kind, frames=spec.frames[:2],
                                 weights="default"))
    assert [f.path for f in result.failures] == [str(tmp_path / "val" / n) for n in names[:2]]
    assert "0016E5_07961.png" in result.failures[1].error


def test_a_folder_of_several_drives_names_every_frame_once(two_drives: Path) -> None:
    """Frame names are unique in an input: a date folder's drives each have a
    0000000000, so the drive is put in front of the file stem."""
    date = two_drives
    spec = classify_input(date)
    assert [f.name for f in spec.frames] == [
        f"{date.name}_drive_000{n}_sync/000000000{i}" for n in (1, 2) for i in (0, 1)]
    assert spec.lidar and spec.frames[2].image.endswith(
        "drive_0002_sync/image_02/data/0000000000.png")
    assert [f.name for f in classify_input(date / f"{date.name}_drive_0002_sync").frames] == [
        "0000000000", "0000000001"]
    from drivingseg.model.evaluate import frame_names

    assert frame_names([Path("x/a.png"), Path("x/a.jpg")]) == ["x/a.png", "x/a.jpg"]
    assert frame_names([Path("x/a.png"), Path("y/z/a.png")]) == ["x/a", "y/z/a"]


def test_a_drive_without_its_image_folder_is_one_error_naming_it(tmp_path: Path,
                                                                 synthetic_drive: Path) -> None:
    """A drive whose ``gt/`` survived but ``image_02/data/`` did not (a partial copy):
    one RecordingError naming the missing folder, not a FileNotFoundError traceback."""
    drive = tmp_path / synthetic_drive.name
    shutil.copytree(synthetic_drive, drive)
    shutil.rmtree(drive / "image_02" / "data")
    with pytest.raises(RecordingError, match=r"image_02/data: cannot list the labelled frames"):
        classify_inputs([str(drive)])


def test_nested_inputs_are_refused_before_their_frames_count_twice(camvid_root: Path,
                                                                    two_drives: Path) -> None:
    """A CamVid root and its own ``val/``, or a date folder and one of its drives, hold
    the same frames: scored in both, they counted twice in every fleet total."""
    val = camvid_root / "val"
    with pytest.raises(ConfigError, match=r"INPUT '.*val' overlaps INPUT .*counted twice") as info:
        classify_inputs([str(camvid_root), str(val)])
    assert info.value.path == str(val / "0016E5_07959.png")
    drive = two_drives / f"{two_drives.name}_drive_0002_sync"
    with pytest.raises(ConfigError, match="overlaps"):
        classify_inputs([str(drive), str(two_drives)])
    specs = classify_inputs([str(val), str(camvid_root / "train")], limit=1)  # disjoint: fine
    assert [s.index for s in specs] == [0, 1]


def test_an_image_linked_into_another_layout_with_its_own_labels_is_kept(
        tmp_path: Path, camvid_root: Path) -> None:
    """Same image file, other ground truth (a KITTI semantics view of a CamVid frame):
    not the same frame, so not refused as an overlap."""
    name = "0016E5_07959.png"
    sem = tmp_path / "sem"
    (sem / "image_2").mkdir(parents=True)
    (sem / "semantic").mkdir()
    (sem / "image_2" / name).symlink_to(camvid_root / "val" / name)
    ids = np.asarray(cv2.imread(str(camvid_root / "valannot" / name), cv2.IMREAD_UNCHANGED))
    cv2.imwrite(str(sem / "semantic" / name), np.where(ids == 3, 7, 21).astype(np.uint8))
    specs = classify_inputs([str(camvid_root / "val"), str(sem)], limit=1)
    assert [s.kind for s in specs] == ["camvid", "kitti_semantics"]


def test_image_size_of_a_jpeg_whose_name_is_not_utf8(tmp_path: Path) -> None:
    """``cv2.imread`` crashed the process on a JPEG frame's name with a Latin-1 byte (a
    PNG's size comes from its header); run in a subprocess, so a crash fails only this."""
    from support.non_utf8 import run_on, write_latin1_named

    ok, buf = cv2.imencode(".jpg", np.full((30, 40, 3), 128, np.uint8))
    assert ok
    path = write_latin1_named(tmp_path, b"frame\xff.jpg", buf.tobytes())
    code = ("import os, sys\nfrom drivingseg.report.inputs import image_size\n"
            "print(image_size(os.fsdecode(sys.argv[1])))\n")
    assert run_on(code, path) == "(40, 30)"


def test_a_drive_missing_one_scan_says_why_it_has_no_lidar(
    tmp_path: Path, synthetic_drive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One scan missing made the whole input lidar-less (no car IoU by range) with no word
    but 'lidar: no' in the page's inputs table."""
    import logging

    drive = tmp_path / synthetic_drive.parent.name / synthetic_drive.name
    shutil.copytree(synthetic_drive.parent, drive.parent)
    scans = sorted((drive / "velodyne_points" / "data").glob("*.bin"))
    scans[-1].unlink()
    with caplog.at_level(logging.WARNING, logger="drivingseg.report.inputs"):
        spec = classify_input(drive)
    assert not spec.lidar
    n = len(spec.frames)
    assert f"1 of {n} frames have no lidar scan or calibration" in caplog.text


def test_jpeg_frames_are_size_checked_from_their_headers_without_decoding(
        tmp_path: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Classifying decoded every JPEG frame of every input (cv2.imread) just for its size,
    in one process before any worker started: for a fleet of JPEG frames, a second full
    decode of each. The header says the size; a bad label size is still refused, and an
    empty JPEG is still left to its worker."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    names = ("0016E5_07959", "0016E5_07961", "0016E5_07963")
    for name in names:
        image = cv2.imread(str(camvid_root / "val" / f"{name}.png"))
        cv2.imwrite(str(tmp_path / "images" / f"{name}.jpg"), image)
        label = np.asarray(cv2.imread(str(camvid_root / "valannot" / f"{name}.png"),
                                      cv2.IMREAD_UNCHANGED), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "labels" / f"{name}.png"), np.minimum(label, 2))
    (tmp_path / "images" / f"{names[2]}.jpg").write_bytes(b"")

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was decoded to classify the input")

    monkeypatch.setattr(cv2, "imread", no_decode)
    monkeypatch.setattr(cv2, "imdecode", no_decode)
    spec = classify_input(tmp_path)
    assert spec.kind == "plain" and [f.name for f in spec.frames] == list(names)
    small = np.zeros((180, 240), dtype=np.uint8)
    monkeypatch.undo()
    cv2.imwrite(str(tmp_path / "labels" / f"{names[1]}.png"), small)
    monkeypatch.setattr(cv2, "imread", no_decode)
    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(RecordingError, match=rf"labels/{names[1]}\.png: label image is 240x180 "
                       rf"but its camera image '{names[1]}\.jpg' is 480x360"):
        classify_input(tmp_path)
