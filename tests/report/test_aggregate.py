"""The merged report: agrees with ``drivingseg eval`` exactly, has every section it can."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drivingseg.detect.box import Detection
from drivingseg.detect.evaluate import FrameMatch
from drivingseg.model.evaluate import evaluate
from drivingseg.report.aggregate import (
    build_report,
    class_columns,
    class_value,
    collect,
    pick_gallery,
)
from drivingseg.report.fleet import FleetResult, TaskFailure
from drivingseg.report.inputs import FrameRef, ReportInput
from drivingseg.report.worker import STAGES, ChunkResult, ChunkTask, FrameResult
from drivingseg.report.write import frames_csv, make_report

Mixed = tuple[dict[str, Any], Path]
CLASSES = ("background", "road", "car")


def test_segmentation_agrees_with_eval_to_the_last_digit(mixed_report: Mixed,
                                                         camvid_root: Path) -> None:
    report, _ = mixed_report
    ev = evaluate(camvid_root / "val", "default", limit=2)
    camvid = report["segmentation"]["per_input"][0]
    assert camvid["input"] == 0
    assert report["resize"] == ev["resize"] == "keep_aspect"  # the same frames in, the same way
    assert camvid["per_class"] == ev["per_class"]
    assert camvid["mean_iou_road_car"] == ev["mean_iou_road_car"]
    frames = [f for f in report["frames"] if f["input"] == 0]
    assert [f["iou"] for f in frames] == [r["iou"] for r in ev["per_frame"]]
    assert [f["pixel_accuracy"] for f in frames] == [r["pixel_accuracy"] for r in ev["per_frame"]]
    # the overall matrix is CamVid's plus the synthetic drive's, exactly
    synthetic = report["segmentation"]["per_input"][1]
    assert synthetic["input"] == 2
    total = np.array(report["segmentation"]["confusion_matrix"])
    syn_tp = [synthetic["per_class"][c]["tp"] for c in ("background", "road", "car")]
    assert (np.diag(total) - np.diag(np.array(ev["confusion_matrix"]))).tolist() == syn_tp
    assert report["segmentation"]["frames"] == 4


def test_argoverse_gives_detection_and_every_latency_stage(mixed_report: Mixed) -> None:
    report, _ = mixed_report
    det = report["detection"]
    assert det["n_gt"] > 0 and det["n_det"] > 0 and det["classes"] == ["Car", "Van"]
    assert set(det["ap"]) == {"0.5", "0.7"} and det["range_error_m"]["n"] > 0
    assert det["range_error_m"]["n"] == len(det["range_errors_m"])
    stages = report["latency"]["stages"]
    assert set(stages) == set(STAGES)
    assert stages["fusion"]["n"] == 4  # argoverse and synthetic frames have lidar
    assert stages["inference"]["n"] == len(report["frames"]) == 6
    total = report["latency"]["total"]
    assert total["p50_ms"] <= total["p90_ms"] <= total["max_ms"]
    argo = report["inputs"][1]
    assert (argo["kind"], argo["box_gt"], argo["lidar"], argo["frames_ok"]) == (
        "kitti_object", True, True, 2)
    assert sum(f["n_gt_boxes"] or 0 for f in report["frames"]) == det["n_gt"]
    assert [f["n_gt_boxes"] is None for f in report["frames"]] == [
        f["input"] != 1 for f in report["frames"]]  # only Argoverse has boxes to find
    argo_proposals = sum(f["n_detections"] for f in report["frames"] if f["input"] == 1)
    assert argo_proposals == det["n_proposals"] >= det["n_det"]


def test_synthetic_drive_gives_by_range(mixed_report: Mixed) -> None:
    report, _ = mixed_report
    br = report["by_range"]
    assert br["bin_edges_m"] == [0, 10, 20, 30, 40, 60, 80]
    assert (br["car"][0]["lo_m"], br["car"][0]["hi_m"]) == (0, 10)
    assert sum(b["pixels"] for b in br["car"]) > 1000
    assert br["frames"] == 2  # the synthetic drive's: CamVid has no lidar, Argoverse no labels
    assert report["detection"]["frames"] == 2  # Argoverse's
    assert any(b["iou"] is not None and b["iou"] > 0 for b in br["car"])
    assert report["kitti_road"] is None


def test_csv_files_match_the_json(mixed_report: Mixed) -> None:
    report, out = mixed_report
    with (out / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["frame"] for r in rows] == [f["frame"] for f in report["frames"]]
    assert float(rows[0]["iou_road"]) == report["frames"][0]["iou"]["road"]
    assert rows[2]["iou_road"] == "" and rows[2]["frame"] == "000000"
    assert "latency_fusion_ms" in rows[0]
    with (out / "classes.csv").open() as fh:
        classes = list(csv.DictReader(fh))
    assert [c["class"] for c in classes][:3] == ["background", "road", "car"]
    assert int(classes[2]["tp"]) == report["segmentation"]["per_class"]["car"]["tp"]
    assert classes[3]["class"] == "boxes Car/Van" and classes[2]["box_ap@0.5"] == ""
    assert float(classes[3]["box_ap@0.5"]) == report["detection"]["ap"]["0.5"]
    assert len(report["gallery"]) == 3
    assert report["gallery"][0]["reason"].startswith("lowest mean IoU")


def _frame(inp: int, index: int, mean_iou: float | None) -> FrameResult:
    return FrameResult(input=inp, index=index, name=f"f{inp}_{index}", image="x.png",
                       latency_ms={"read": 1.0}, mask_png=b"", mean_iou=mean_iou,
                       confusion=np.eye(3, dtype=np.int64) if mean_iou is not None else None)


def test_collect_orders_frames_and_lists_lost_chunks() -> None:
    specs = [ReportInput(i, f"in{i}", "camvid", tuple(FrameRef(j, f"f{i}_{j}", "x.png")
                                                    for j in range(4)), True, False, False)
             for i in range(2)]
    tasks = [ChunkTask(i, "camvid", specs[i].frames[j:j + 2], "w") for i in range(2)
             for j in (0, 2)]
    chunks: list[ChunkResult | None] = [
        ChunkResult(tuple(_frame(t.input, f.index, 0.1 * f.index) for f in t.frames))
        for t in tasks]
    chunks[1] = None
    fleet = FleetResult(chunks, [TaskFailure(1, "worker died")])
    frames, failures = collect(tasks, specs, fleet)
    assert [(f.input, f.index) for f in frames] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2),
                                                     (1, 3)]
    assert failures == [{"input": 0, "path": "in0", "frames": ["f0_2", "f0_3"],
                         "error": "worker died"}]
    picks = pick_gallery(frames, 2)
    assert [(p.frame.input, p.frame.index) for p in picks] == [(0, 0), (1, 0)]


def test_kitti_road_section_agrees_with_eval(tmp_path: Path, camvid_root: Path) -> None:
    root = tmp_path / "road" / "training"
    (root / "image_2").mkdir(parents=True)
    (root / "gt_image_2").mkdir()
    name = "0016E5_07959.png"
    shutil.copy(camvid_root / "val" / name, root / "image_2" / "um_000000.png")
    ids = np.asarray(cv2.imread(str(camvid_root / "valannot" / name), cv2.IMREAD_UNCHANGED))
    bgr = np.zeros((*ids.shape, 3), dtype=np.uint8)
    bgr[..., 2] = 255
    bgr[ids == 3] = (255, 0, 255)
    bgr[ids == 11] = 0
    cv2.imwrite(str(root / "gt_image_2" / "um_road_000000.png"), bgr)
    report = make_report([root.parent], "default", tmp_path / "out", workers=1, gallery=1)
    ev = evaluate(root.parent, "default")
    assert report["inputs"][0]["kind"] == "kitti_road"
    assert report["segmentation"]["classes"] == ev["classes"] == ["not_road", "road"]
    assert report["segmentation"]["confusion_matrix"] == ev["confusion_matrix"]
    k = dict(report["kitti_road"])
    curve = k.pop("curve")
    assert k.pop("frames") == 1 and k.pop("per_input") == [
        {"input": 0, "frames": 1, "max_f": k["max_f"], "ap": k["ap"]}]
    assert k == ev["kitti_road"] and len(curve["precision"]) == 256
    assert report["by_range"] is None and report["detection"] is None


def _box_frame(index: int, proposals: int, scored: int) -> FrameResult:
    """A KITTI object frame (input 1): ``proposals`` detections, ``scored`` of them kept."""
    match = FrameMatch(scores={t: (0.9,) * scored for t in (0.5, 0.7)},
                       tp={t: (True,) * scored for t in (0.5, 0.7)}, n_gt=2, range_pairs=())
    dets = tuple(Detection("car", 0.9, (0.0, 0.0, 40.0, 30.0)) for _ in range(proposals))
    return FrameResult(1, index, f"b{index}", "b.png", {"read": 1.0}, b"", detections=dets,
                       match=match)


def test_detection_counts_proposals_beside_scored_detections() -> None:
    """``n_det`` (kept after the don't-care and small-box drops) was the only count, so the
    frames' ``n_detections`` (every proposal) summed to a number shown nowhere."""
    specs = [ReportInput(0, "cv", "camvid", (FrameRef(0, "c0", "c.png"),), True, False, False),
             ReportInput(1, "ko", "kitti_object", tuple(FrameRef(j, f"b{j}", "b.png")
                                                      for j in range(2)), False, True, True)]
    camvid = FrameResult(0, 0, "c0", "c.png", {"read": 1.0}, b"",
                         detections=(Detection("car", 0.5, (0.0, 0.0, 9.0, 9.0)),))
    frames = [camvid, _box_frame(0, 5, 1), _box_frame(1, 2, 2)]
    report = build_report(specs, frames, [], meta={})
    det = report["detection"]
    assert (det["n_det"], det["n_proposals"], det["frames"]) == (3, 7, 2)
    assert sum(f["n_detections"] for f in report["frames"] if f["input"] == 1) == 7
    assert list(det).index("n_proposals") == list(det).index("n_det") + 1


def test_every_section_is_also_given_per_input() -> None:
    """The docs promise the report "covers all of them together and per input", but only
    segmentation was split by input: a fleet's box AP, KITTI road MaxF and car IoU by range
    hid a drive much worse than the others. Each input's figures add up to the fleet's."""
    edges = (0.0, 10.0, 20.0)
    box = ReportInput(0, "ko", "kitti_object", tuple(FrameRef(j, f"b{j}", "b.png")
                                                    for j in range(2)), False, True, True)
    box2 = replace(box, index=1, path="ko2")
    road = ReportInput(2, "kr", "kitti_road", (FrameRef(0, "um_0", "u.png"),), True, False,
                       False)
    road2 = replace(road, index=3, path="kr2")
    syn = ReportInput(4, "sy", "synthetic", (FrameRef(0, "s0", "s.png"),), True, False, True)
    syn2 = replace(syn, index=5, path="sy2")
    hist = np.zeros((2, 256), dtype=np.int64)
    hist[0, 200], hist[1, 10], hist[1, 220] = 90, 80, 5
    frames = [replace(_box_frame(0, 5, 1), input=0), replace(_box_frame(1, 2, 2), input=0),
              _box_frame(0, 3, 0)]
    for spec, h in ((road, hist), (road2, hist[:, ::-1].copy())):
        frames.append(FrameResult(spec.index, 0, "um_0", "u.png", {"read": 1.0}, b"",
                                  confusion=np.eye(2, dtype=np.int64), road_hist=h))
    for spec, tp in ((syn, 9), (syn2, 1)):
        counts = np.array([[tp, 1, 0, 20], [0, 0, 0, 5]], dtype=np.int64)
        frames.append(FrameResult(spec.index, 0, "s0", "s.png", {"read": 1.0}, b"",
                                  confusion=np.eye(3, dtype=np.int64), range_counts=counts))
    report = build_report([box, box2, road, road2, syn, syn2], frames, [], meta={},
                          range_edges_m=edges)
    det = report["detection"]
    assert [e["input"] for e in det["per_input"]] == [0, 1]
    assert [e["frames"] for e in det["per_input"]] == [2, 1]
    for key in ("n_gt", "n_proposals", "n_det", "frames"):
        assert sum(e[key] for e in det["per_input"]) == det[key], key
    assert [e["ap"]["0.5"] for e in det["per_input"]] == [0.75, 0.0]  # 3 of 4, 0 of 2 found
    road_rows = report["kitti_road"]["per_input"]
    assert [(e["input"], e["frames"]) for e in road_rows] == [(2, 1), (3, 1)]
    assert road_rows[0]["max_f"] > 0.9 > road_rows[1]["max_f"]
    rng = report["by_range"]
    assert [(e["input"], e["frames"]) for e in rng["per_input"]] == [(4, 1), (5, 1)]
    assert [e["car"][0]["iou"] for e in rng["per_input"]] == [0.9, 0.5]
    assert rng["car"][0]["tp"] == sum(e["car"][0]["tp"] for e in rng["per_input"]) == 10
    assert rng["frames_with_car"] == 2
    assert [e["frames_with_car"] for e in rng["per_input"]] == [1, 1]
    seg = report["segmentation"]["per_input"]
    assert [(e["input"], e["frames"]) for e in seg] == [(2, 1), (3, 1), (4, 1), (5, 1)]


def test_frames_without_box_ground_truth_have_no_gt_box_count() -> None:
    """A CamVid frame has no label_2 boxes: its ground-truth box count is unknown, not 0
    (frames.csv, the JSON and the page had said "0 GT boxes" beside its proposals)."""
    specs = [ReportInput(0, "cv", "camvid", (FrameRef(0, "c0", "c.png"),), True, False, False),
             ReportInput(1, "ko", "kitti_object", (FrameRef(0, "b0", "b.png"),), False, True,
                         True)]
    camvid = FrameResult(0, 0, "c0", "c.png", {"read": 1.0}, b"",
                         detections=(Detection("car", 0.5, (0.0, 0.0, 9.0, 9.0)),))
    report = build_report(specs, [camvid, _box_frame(0, 1, 1)], [], meta={})
    assert [f["n_gt_boxes"] for f in report["frames"]] == [None, 0]
    rows = list(csv.DictReader(io.StringIO(frames_csv(report))))
    assert [r["n_gt_boxes"] for r in rows] == ["", "0"]
    assert [r["n_detections"] for r in rows] == ["1", "1"]


def test_mean_iou_records_the_classes_it_averages() -> None:
    """KITTI road labels have no car: the mean IoU is road's alone, and the report says so
    (``mean_iou_classes``, as ``drivingseg eval`` does) instead of "road, car"."""
    from drivingseg.cli.cmd_report import format_summary

    road = ReportInput(0, "kr", "kitti_road", (FrameRef(0, "um_0", "u.png"),), True, False,
                       False)
    frame = FrameResult(0, 0, "um_0", "u.png", {"read": 1.0}, b"",
                        confusion=np.array([[70, 10], [20, 100]], dtype=np.int64))
    report = build_report([road], [frame], [], meta={"input_size": [384, 288], "wall_s": 1.0,
                                                     "executor": "local processes x1"})
    seg = report["segmentation"]
    assert seg["mean_iou_classes"] == seg["per_input"][0]["mean_iou_classes"] == ["road"]
    assert seg["mean_iou_road_car"] == seg["per_class"]["road"]["iou"] == 100 / 130
    assert "mean IoU (road): 76.92 %" in format_summary(report).splitlines()
    camvid = ReportInput(1, "cv", "camvid", (FrameRef(0, "c0", "c.png"),), True, False, False)
    both = replace(frame, input=1, confusion=np.diag([5, 4, 3]).astype(np.int64))
    seg = build_report([road, camvid], [frame, both], [], meta={})["segmentation"]
    assert seg["mean_iou_classes"] == ["road", "car"]
    assert [p["mean_iou_classes"] for p in seg["per_input"]] == [["road"], ["road", "car"]]


def test_not_road_is_shown_in_the_background_column() -> None:
    road = {"not_road": 0.9, "road": 0.8}
    assert (class_value(road, "background"), class_value(road, "road")) == (0.9, 0.8)
    assert class_value(road, "car") is None and class_value(None, "road") is None
    assert class_value({"background": 0.1, "not_road": 0.9}, "background") == 0.1
    assert class_columns(["background", "road", "car", "not_road", "road"]) == list(CLASSES)
    assert class_columns(["not_road", "road"]) == ["not_road", "road"]  # KITTI road alone


def test_gallery_entries_name_one_frame_of_a_folder_of_drives(tmp_path: Path,
                                                              two_drives: Path) -> None:
    """Each drive of a date folder has a frame 0000000000: the gallery entry names the
    drive and carries the frame's index and image, as the frames table does; eval names
    the frames alike."""
    report = make_report([two_drives], "default", tmp_path / "out", workers=1, gallery=4)
    rows = {(f["input"], f["index"]): f for f in report["frames"]}
    assert len({f["frame"] for f in report["frames"]}) == 4
    assert len(report["gallery"]) == 4
    for entry in report["gallery"]:
        row = rows[(entry["input"], entry["index"])]
        assert (entry["frame"], entry["image"]) == (row["frame"], row["image"])
        assert entry["frame"].split("/")[0] in entry["image"]
    evaluated = evaluate(two_drives, "default")
    assert [r["frame"] for r in evaluated["per_frame"]] == [f["frame"] for f in report["frames"]]


def test_by_range_counts_the_frames_with_car_pixels_apart() -> None:
    """The section said 'over N frames with lidar and car labels' where N counted every
    labelled frame with lidar, those without a single car pixel too (they add false
    positives only): the frames with labelled car pixels under lidar are counted apart."""
    edges = (0.0, 10.0, 20.0)
    syn = ReportInput(0, "sy", "synthetic", tuple(FrameRef(j, f"s{j}", "s.png")
                                                  for j in range(3)), True, False, True)
    frames = []
    for i, counts in enumerate(([[5, 1, 2, 40], [0, 0, 0, 9]],   # cars near
                                [[0, 3, 0, 30], [0, 0, 0, 8]],   # no car: one false positive
                                [[0, 0, 0, 30], [0, 0, 4, 8]])):  # a car missed far away
        frames.append(FrameResult(0, i, f"s{i}", "s.png", {"read": 1.0}, b"",
                                  confusion=np.eye(3, dtype=np.int64),
                                  range_counts=np.array(counts, dtype=np.int64)))
    rng = build_report([syn], frames, [], meta={}, range_edges_m=edges)["by_range"]
    assert rng["frames"] == 3 and rng["frames_with_car"] == 2
    assert rng["car"][0]["fp"] == 4
