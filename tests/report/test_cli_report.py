"""``drivingseg report`` end to end: same report whatever the executor, refusals, failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivingseg.errors import RecordingError

Mixed = tuple[dict[str, Any], Path]


def _json_without_run_fields(path: Path, strip: Any) -> str:
    return json.dumps(strip(json.loads(path.read_text())), indent=2)


def test_local_workers_and_ray_give_the_same_report(
        mixed_report: Mixed, mixed_inputs: list[str], tmp_path: Path, run_report: Any,
        strip_run_fields: Any, ray_local: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, one = mixed_report
    base = ["--limit", "2", "--gallery", "3"]
    assert run_report([*mixed_inputs, "--out", str(tmp_path / "two"), "--workers", "2",
                       *base]) == 0
    assert run_report([*mixed_inputs, "--out", str(tmp_path / "ray"), "--ray", "auto",
                       "--workers", "2", *base]) == 0
    expected = _json_without_run_fields(one / "report.json", strip_run_fields)
    for name in ("two", "ray"):
        assert _json_without_run_fields(tmp_path / name / "report.json",
                                        strip_run_fields) == expected, name
    executors = [json.loads((d / "report.json").read_text())["executor"]
                 for d in (one, tmp_path / "two", tmp_path / "ray")]
    assert executors == ["local processes x1", "local processes x2", "ray (auto)"]
    text = capsys.readouterr().out
    assert "mean IoU (road, car)" in text and "car IoU by lidar range" in text
    assert str(tmp_path / "ray" / "report.html") in text


def test_kitti_raw_drive_is_refused_before_any_work(
        kitti_raw_drive: Path, camvid_root: Path, tmp_path: Path, run_report: Any) -> None:
    out = tmp_path / "out"
    with pytest.raises(RecordingError, match=r"2011_09_26_drive_0000_sync: no ground truth"):
        run_report([str(camvid_root / "val"), str(kitti_raw_drive), "--out", str(out)])
    assert not out.exists()


def _camvid_copy(root: Path, camvid_root: Path, n: int) -> Path:
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    for p in sorted((camvid_root / "val").glob("*.png"))[:n]:
        shutil.copy(p, root / "val" / p.name)
        shutil.copy(camvid_root / "valannot" / p.name, root / "valannot" / p.name)
    return root / "val"


def test_wrong_size_label_is_refused_and_an_old_report_kept(
        camvid_root: Path, tmp_path: Path, run_report: Any) -> None:
    data = _camvid_copy(tmp_path / "cv", camvid_root, 2)
    bad = sorted((tmp_path / "cv" / "valannot").iterdir())[1]
    label = np.asarray(cv2.imread(str(bad), cv2.IMREAD_UNCHANGED), dtype=np.uint8)
    cv2.imwrite(str(bad), label[:, :400])
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("old\n")
    with pytest.raises(RecordingError, match=rf"{bad.name}: label image is 400x360"):
        run_report([str(data), "--out", str(out), "--workers", "1"])
    assert (out / "report.json").read_text() == "old\n"


def test_failed_frames_give_exit_2_and_a_partial_report(
        camvid_root: Path, tmp_path: Path, run_report: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = _camvid_copy(tmp_path / "cv", camvid_root, 2)
    broken = sorted(data.iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:3000])  # header intact, pixels cut off
    out = tmp_path / "out"
    (out).mkdir()
    (out / "report.json").write_text("old\n")
    assert run_report([str(data), "--out", str(out), "--workers", "1"]) == 2
    report = json.loads((out / "report.json").read_text())
    assert [f["frame"] for f in report["frames"]] == [sorted(data.iterdir())[1].stem]
    [failure] = report["failures"]
    assert failure["frames"] == [broken.stem] and failure["path"] == str(broken)
    assert failure["error"].startswith("RecordingError")
    assert report["inputs"][0]["frames_ok"] == 1
    text = capsys.readouterr().out
    assert "1 frame(s) failed" in text and broken.stem in text
    assert (out / "report.html").stat().st_size > 1000


def test_tta_is_applied_recorded_and_shown(
        synthetic_drive: Path, tmp_path: Path, run_report: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--tta flip``: another prediction on the same frames, named in the JSON, the
    summary, the page and the command line that reproduces it."""
    plain, flip = tmp_path / "plain", tmp_path / "flip"
    assert run_report([str(synthetic_drive), "--out", str(plain), "--workers", "1"]) == 0
    assert run_report([str(synthetic_drive), "--out", str(flip), "--workers", "1",
                       "--tta", "flip"]) == 0
    assert "test-time augmentation: scales 1, each mirrored too (2 views)" in (
        capsys.readouterr().out)
    one = json.loads((plain / "report.json").read_text())
    two = json.loads((flip / "report.json").read_text())
    assert one["tta"] is None and two["tta"]["views"] == 2
    # The precision is recorded and shown: the node's bfloat16 masks differ in a few pixels.
    assert one["precision"] == "float32" and "cpu, float32" in (plain / "report.html").read_text()
    assert two["command"].endswith("--tta flip") and "--tta" not in one["command"]
    assert "scales 1, each mirrored too (2 views)" in (flip / "report.html").read_text()
    ious = [[f["iou"] for f in r["frames"]] for r in (one, two)]
    assert ious[0] != ious[1]  # the mirror changes pixels
    assert two["segmentation"]["per_class"]["road"]["iou"] > 0.8


def test_summary_names_proposals_and_scored_detections() -> None:
    """The summary called n_det (after the don't-care and small-box drops) "detected"."""
    from drivingseg.cli.cmd_report import format_summary

    det = {"classes": ["Car", "Van"], "thresholds": [0.5, 0.7], "n_gt": 52, "n_det": 27,
           "n_proposals": 100, "ap": {"0.5": 0.25, "0.7": 0.125}}
    report = {"frames": [], "inputs": [{}], "executor": "local processes x1", "wall_s": 1.0,
              "weights": "w.safetensors", "input_size": [384, 288], "tta": None,
              "segmentation": None, "kitti_road": None, "by_range": None, "detection": det,
              "latency": {"stages": {}}}
    assert format_summary(report).splitlines()[-1] == (
        "boxes (Car/Van): 52 ground truth, 100 proposals, 27 scored at IoU 0.5 (unmatched "
        "ones on don't-care or under 25 px dropped); AP@0.5 25.00 %, AP@0.7 12.50 %")


def test_summary_writes_no_unit_after_n_a() -> None:
    """An AP or mean IoU that cannot be computed (no ground truth box, no class present)
    read 'AP@0.5 n/a %'; it is 'n/a' alone."""
    from drivingseg.cli.cmd_report import format_summary

    det = {"classes": ["Car"], "thresholds": [0.5, 0.7], "n_gt": 0, "n_det": 3,
           "n_proposals": 3, "ap": {"0.5": None, "0.7": None}}
    seg = {"per_class": {"road": {"iou": None, "precision": None, "recall": None, "f1": None}},
           "mean_iou_classes": [], "mean_iou_road_car": None}
    report = {"frames": [], "inputs": [{}], "executor": "local processes x1", "wall_s": 1.0,
              "weights": "w.safetensors", "input_size": [384, 288], "tta": None,
              "segmentation": seg, "kitti_road": {"max_f": 0.5, "ap": None}, "by_range": None,
              "detection": det, "latency": {"stages": {}}}
    text = format_summary(report)
    assert "n/a %" not in text
    assert text.splitlines()[-1].endswith("AP@0.5 n/a, AP@0.7 n/a")
    assert "mean IoU (road, car): n/a" in text
    assert "MaxF 50.00 %, AP n/a" in text
