"""The report page: structure, number formatting, escaping, self-containment, plots."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest

from drivingseg.errors import ConfigError
from drivingseg.report import plots
from drivingseg.report.html import build_html, render_html
from drivingseg.report.html_gallery import GalleryItem

EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _stats(samples: list[float]) -> dict[str, Any]:
    a = np.asarray(samples)
    return {
        "n": len(samples),
        "mean_ms": float(a.mean()),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "samples_ms": samples,
    }


def _metrics(name: str, tp: int, fp: int, fn: int) -> dict[str, Any]:
    p, r = tp / (tp + fp), tp / (tp + fn)
    return {"name": name, "tp": tp, "fp": fp, "fn": fn, "iou": tp / (tp + fp + fn),
            "precision": p, "recall": r, "f1": 2 * p * r / (p + r)}


def sample_report(n_frames: int = 24) -> dict[str, Any]:
    """A report dict with every section present, as the engine writes it."""
    rng = np.random.default_rng(7)
    cm = [[900_000, 30_000, 5_000], [40_000, 400_000, 2_000], [8_000, 3_000, 60_000]]
    per_class = {
        "background": _metrics("background", 900_000, 48_000, 35_000),
        "road": _metrics("road", 400_000, 33_000, 42_000),
        "car": _metrics("car", 60_000, 7_000, 11_000),
    }
    recall = np.linspace(0.0, 1.0, 256)
    stages = {s: list(rng.gamma(4.0, scale, n_frames).round(3))
              for s, scale in (("read", 1.0), ("fusion", 2.0), ("inference", 15.0))}
    total = [sum(v) for v in zip(*stages.values(), strict=True)]
    frames = [
        {"input": i % 2, "index": i // 2, "frame": EVIL if i == 3 else f"0016E5_{7959 + i:05d}",
         "image": f"/data/img_{i}.png",
         "iou": {"background": 0.9, "road": float(rng.uniform(0.5, 0.95)),
                 "car": None if i == 5 else float(rng.uniform(0.1, 0.9))},
         "mean_iou": float(rng.uniform(0.3, 0.9)), "pixel_accuracy": 0.93,
         "n_detections": int(rng.integers(0, 5)), "n_gt_boxes": 2,
         "latency_ms": {s: v[i] for s, v in stages.items()}}
        for i in range(n_frames)
    ]
    return {
        "format": "drivingseg-report/1",
        "created_utc": "2026-11-25T18:30:00Z",
        "command": "drivingseg report in1 in2 --out OUT",
        "weights": "/w/unet_rgb.safetensors",
        "input_size": [320, 240],
        "device": "cpu",
        "executor": "local processes x2",
        "wall_s": 12.34,
        "inputs": [
            {"index": 0, "path": "/data/camvid/val", "kind": "camvid", "frames": 12,
             "frames_ok": 12, "segmentation_gt": True, "box_gt": False, "lidar": False},
            {"index": 1, "path": "/data/kitti/training", "kind": "kitti_object", "frames": 12,
             "frames_ok": 12, "segmentation_gt": True, "box_gt": True, "lidar": True},
        ],
        "segmentation": {
            "classes": ["background", "road", "car"], "frames": n_frames,
            "confusion_matrix": cm, "per_class": per_class, "mean_iou_road_car": 0.6789,
            "per_input": [{"input": 0, "per_class": per_class, "mean_iou_road_car": 0.7},
                          {"input": 1, "per_class": per_class, "mean_iou_road_car": 0.65}],
        },
        "kitti_road": {"max_f": 0.8766, "ap": 0.8123, "threshold": 0.45, "precision": 0.9,
                       "recall": 0.85, "curve": {"precision": list(1 - 0.3 * recall**2),
                                                 "recall": list(recall[::-1])}},
        "by_range": {"bin_edges_m": [0, 10, 20, 30, 40, 60, 80],
                     "note": "car IoU over pixels hit by a lidar point",
                     "car": [{"lo_m": lo, "hi_m": hi, "tp": 10, "fp": 2, "fn": 3,
                              "iou": None if lo == 60 else 10 / 15, "pixels": 1500 - lo * 10}
                             for lo, hi in ((0, 10), (10, 20), (20, 30), (30, 40), (40, 60),
                                            (60, 80))]},
        "detection": {"thresholds": [0.5, 0.7], "classes": ["Car", "Van"], "n_gt": 40,
                      "n_det": 44, "n_proposals": 61, "ap": {"0.5": 0.7123, "0.7": None},
                      "pr": {"0.5": {"precision": [1.0, 0.9, 0.8], "recall": [0.2, 0.5, 0.7]},
                             "0.7": {"precision": [1.0, 0.5], "recall": [0.1, 0.3]}},
                      "range_error_m": {"n": 30, "mean": 0.61, "median": 0.4, "p90": 1.4,
                                        "mean_signed": 0.05},
                      "range_errors_m": list(rng.normal(0.2, 0.8, 30))},
        "latency": {"stages": {s: _stats(v) for s, v in stages.items()}, "total": _stats(total)},
        "frames": frames,
        "failures": [],
        "gallery": [{"input": 0, "frame": "0016E5_07959", "reason": "lowest mean IoU 31.0 %"}],
    }


def sample_gallery() -> list[GalleryItem]:
    """Two gallery items with real-looking panels (a gradient, a label map, an error map)."""
    h, w = 120, 160
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    image[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    labels = np.zeros((h, w, 3), np.uint8)
    labels[h // 2:, :, 2] = 200
    labels[40:70, 50:100] = (220, 20, 60)
    error = np.where(np.arange(w)[None, :, None] % 20 < 10, 255, 0).astype(np.uint8)
    error = np.broadcast_to(error, (h, w, 3)).copy()
    big = np.full((600, 1200, 3), 128, np.uint8)
    return [
        GalleryItem(f"{EVIL} (camvid val): mean IoU 31.0 %",
                    (("image", image), ("ground truth", labels), ("error", error))),
        GalleryItem("big frame", (("wide image", big),)),
    ]


def null_report() -> dict[str, Any]:
    """Every optional section null, no frames timed, and two failures."""
    report = sample_report(4)
    report.update(segmentation=None, kitti_road=None, by_range=None, detection=None,
                  gallery=[], latency={"stages": {}, "total": None})
    for frame in report["frames"]:
        frame.update(iou=None, mean_iou=None, pixel_accuracy=None)
    report["failures"] = [
        {"input": 1, "path": "/data/broken & <bad>", "frames": [f"f{i}" for i in range(14)],
         "error": "RecordingError: cannot read 'x.bin' <truncated>"},
        {"input": 0, "path": "/data/other", "frames": ["a"], "error": "boom"},
    ]
    return report


def _images(page: str, mime: str = "png") -> list[bytes]:
    uris = re.findall(rf'<img src="data:image/{mime};base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(u, validate=True) for u in uris]


def _decode(png: bytes) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None, "not a decodable image"
    return np.asarray(decoded)


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"section {anchor} missing"
    return match.group(1)


def test_full_report_page_structure(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    render_html(sample_report(), sample_gallery(), path)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<body data-report-status="loading">' in page
    for anchor in ("segmentation", "kitti-road", "by-range", "detection", "latency", "frames",
                   "gallery", "failures"):
        assert 'class="absent"' not in _section(page, anchor), anchor
    assert "67.9 %" in page  # mean IoU road+car in the summary and the section
    assert "87.7 %" in page and "81.2 %" in page  # KITTI MaxF, AP
    assert "71.2 %" in page  # box AP@0.5; AP@0.7 is null and shows as a dash
    assert "12.3 s" in page and "320 × 240 px" in page and "local processes x2" in page
    assert "900,000" in _section(page, "segmentation")
    detection = _section(page, "detection")
    assert "<td>0.61 m</td>" in detection and "<td>+0.05 m</td>" in detection
    latency = _section(page, "latency")
    for stage in ("read", "fusion", "inference", "total"):
        assert f"<td class=\"t\">{stage}</td>" in latency or f"<b>{stage}</b>" in latency
    assert page.count('data-type="num"') >= 10  # sortable numeric frame columns
    assert 'id="frames-table"' in page and "localeCompare" in page
    assert 'class="banner"' not in page and "None: every frame was read." in page
    # 8 plots as PNG + 3 + 1 gallery panels as JPEG, each decodable by OpenCV.
    plots, panels = _images(page), _images(page, "jpeg")
    assert len(plots) == 8 and len(panels) == 4
    assert all(png.startswith(PNG_MAGIC) for png in plots)
    assert all(jpeg.startswith(b"\xff\xd8\xff") for jpeg in panels)
    for data in plots + panels:
        decoded = _decode(data)
        assert decoded.shape[0] > 50 and decoded.shape[1] > 50
    widths = sorted(_decode(p).shape[1] for p in panels)
    assert max(widths) <= 900 and 480 in widths  # the 1200 px panel was scaled down
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_escapes_strings_from_data() -> None:
    page = build_html(sample_report(), sample_gallery())
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Only our own three scripts.
    assert page.count("<script>") == 2


def test_page_is_self_contained() -> None:
    page = build_html(sample_report(), sample_gallery())
    assert not re.search(r"https?://", page)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert "url(" not in page and "@import" not in page


def test_null_sections_say_why_and_failures_stand_out(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    render_html(null_report(), [], path)
    page = path.read_text(encoding="utf-8")
    assert "per-pixel ground truth" in _section(page, "segmentation")
    assert "KITTI road" in _section(page, "kitti-road")
    assert "lidar" in _section(page, "by-range")
    assert "label_2" in _section(page, "detection")
    assert "No frame was timed" in _section(page, "latency")
    assert "No gallery" in _section(page, "gallery")
    for anchor in ("segmentation", "kitti-road", "by-range", "detection", "latency", "gallery"):
        assert 'class="absent"' in _section(page, anchor)
    assert 'class="banner"' in page and "2 input(s) had failures" in page
    assert '<section id="failures" class="failures"><h2>Failures (2)</h2>' in page
    failures = _section(page, "failures")
    assert "/data/broken &amp; &lt;bad&gt;" in failures
    assert "14: f0, f1" in failures and "(+4)" in failures
    assert "&lt;truncated&gt;" in failures
    assert _images(page) == []  # nothing to plot: no frame has an IoU, no latency samples
    summary = re.search(r'<div class="summary".*?</div></div>', page, re.S)
    assert summary and "%" not in summary.group(0)


def test_gallery_reasons_without_images() -> None:
    report = sample_report(4)
    report["gallery"] = [{"input": 0, "frame": EVIL, "reason": "lowest mean IoU 3.0 %"}]
    gallery = _section(build_html(report, []), "gallery")
    assert "&lt;script&gt;" in gallery and "lowest mean IoU 3.0 %" in gallery


def test_bad_gallery_panel_is_config_error() -> None:
    item = GalleryItem("x", (("float image", np.zeros((4, 4, 3), np.float32)),))
    with pytest.raises(ConfigError, match=r"gallery panel 'float image' must be an RGB"):
        build_html(sample_report(2), [item])


def test_plots_are_pngs_and_leave_no_figures() -> None:
    before = plt.get_fignums()
    figures = plots.all_plots(sample_report())
    assert set(figures) == {"class_metrics", "confusion_matrix", "kitti_road_pr", "range_iou",
                            "detection_pr", "range_error", "latency", "per_frame_iou"}
    assert all(png.startswith(PNG_MAGIC) for png in figures.values())
    assert plt.get_fignums() == before
    assert plots.all_plots(null_report()) == {}
    assert plots.confusion_matrix_heatmap({"confusion_matrix": [[0, 0], [0, 0]]}) is not None
    assert plots.range_error_histogram({"range_errors_m": [float("nan")]}) is None


def test_banner_counts_inputs_not_failed_frames() -> None:
    """Three failed frames of one input used to read "3 input(s) had failures"."""
    report = null_report()
    report["failures"] = [{"input": 0, "path": "/data/cv", "frames": [f"f{i}"], "error": "x"}
                          for i in range(3)]
    page = build_html(report, [])
    assert "1 input(s) had failures" in page
    assert '<h2>Failures (3)</h2>' in page


def _header_cells(table: str) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", table.split("</thead>")[0])


def _rows(table: str) -> list[list[str]]:
    body = table.split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in body.split("</tr>") if "<td" in r]


def test_detection_says_what_each_count_counts() -> None:
    """The page called n_det (after the don't-care and small-box drops) "detections" while
    the frames table's column counted every proposal."""
    page = build_html(sample_report(4), [])
    detection = _section(page, "detection")
    assert "40 ground-truth boxes; 61 proposals (every detection" in detection
    assert "44 scored detections (counted at IoU 0.5: unmatched ones on a don&#x27;t-care" in (
        detection)
    assert "under 25 px high are dropped" in detection
    frames = _section(page, "frames")
    assert "proposals" in _header_cells(frames) and "detections" not in _header_cells(frames)


def _road_mixed_report() -> dict[str, Any]:
    """The sample report with input 1 a KITTI road folder (scored as not_road/road)."""
    report = sample_report(4)
    report["inputs"][1].update(kind="kitti_road", box_gt=False, lidar=False)
    road = {"not_road": _metrics("not_road", 700, 10, 20), "road": _metrics("road", 300, 5, 6)}
    report["segmentation"]["per_input"][1]["per_class"] = road
    for frame in report["frames"]:
        if frame["input"] == 1:
            frame["iou"] = {"not_road": 0.25 + frame["index"] / 100, "road": 0.5}
    return report


def test_kitti_road_not_road_is_the_background_column() -> None:
    """A KITTI road input's background IoU showed as a dash in the per-input table, and the
    frames table had a separate not_road column, empty on every other frame."""
    report = _road_mixed_report()
    page = build_html(report, [])
    seg = _section(page, "segmentation")
    per_input = seg.split("<h3>Per input</h3>")[1]
    assert _header_cells(per_input)[3:] == ["background IoU", "road IoU", "car IoU"]
    road_row = _rows(per_input)[1]
    assert road_row[0] == "1 (kitti_road)"
    assert road_row[3:] == ["95.9 %", "96.5 %", "–"]
    assert "not_road (KITTI road inputs) is shown as background" in seg
    frames = _section(page, "frames")
    headers = _header_cells(frames)
    assert "not_road IoU" not in headers
    column = headers.index("background IoU")
    for row, frame in zip(_rows(frames), report["frames"], strict=True):
        expected = frame["iou"].get("not_road", frame["iou"].get("background"))
        assert row[column] == f"{expected * 100:.1f} %"


def test_kitti_road_alone_keeps_its_not_road_column() -> None:
    report = _road_mixed_report()
    report["inputs"] = report["inputs"][1:]
    report["frames"] = [f for f in report["frames"] if f["input"] == 1]
    seg = report["segmentation"]
    seg.update(classes=["not_road", "road"], per_input=seg["per_input"][1:],
               per_class=seg["per_input"][1]["per_class"])
    page = build_html(report, [])
    headers = _header_cells(_section(page, "frames"))
    assert "not_road IoU" in headers and "background IoU" not in headers
    assert "is shown as background" not in page


def test_mean_iou_names_the_classes_it_averages() -> None:
    """A KITTI road input has no car class: its mean IoU is road's IoU alone, which the
    page called "mean IoU road+car" (``drivingseg eval`` says "mean IoU (road)")."""
    report = _road_mixed_report()
    seg = report["segmentation"]
    seg["mean_iou_classes"] = ["road", "car"]
    seg["per_input"][0]["mean_iou_classes"] = ["road", "car"]
    seg["per_input"][1].update(mean_iou_road_car=0.5, mean_iou_classes=["road"])
    per_input = _section(build_html(report, []), "segmentation").split("<h3>Per input</h3>")[1]
    assert _header_cells(per_input)[1:3] == ["frames", "mean IoU road+car"]
    assert [row[2] for row in _rows(per_input)] == ["70.0 %", "50.0 % (road)"]
    road_alone = _road_mixed_report()
    road_alone["segmentation"].update(classes=["not_road", "road"], mean_iou_classes=["road"])
    page = build_html(road_alone, [])
    assert "mean IoU road+car" not in page and "over road and car" not in page
    assert "<span>mean IoU road</span>" in _summary_html(page)
    assert "frames with ground truth; mean IoU over road <b>" in _section(page, "segmentation")


def test_every_section_says_over_how_many_frames() -> None:
    """The summary figures and the KITTI road, by-range and detection sections did not say
    over which frames they were taken: 3 box frames, 40 segmentation frames and 5 KITTI road
    frames all read alike."""
    report = sample_report(24)
    report["kitti_road"]["frames"] = 5
    report["by_range"].update(frames=7, frames_with_car=5)
    report["detection"]["frames"] = 3
    page = build_html(report, [])
    chips = re.findall(r'<div class="chip"><b>[^<]*</b><span>([^<]*)</span>'
                       r'<small>over ([0-9,]+) frames</small></div>', _summary_html(page))
    assert chips == [("mean IoU road+car", "24"), ("road IoU", "24"), ("car IoU", "24"),
                     ("KITTI road MaxF", "5"), ("KITTI road AP", "5"), ("box AP@0.5", "3"),
                     ("box AP@0.7", "3"), ("latency p50 per frame", "24"),
                     ("latency p99 per frame", "24")]
    assert "<p>Over 5 frames of the KITTI road input(s)" in _section(page, "kitti-road")
    assert ("over 7 frames with lidar and per-pixel labels (5 of them with car pixels hit "
            "by lidar).") in _section(page, "by-range")
    detection = _section(page, "detection")
    assert "Classes Car, Van over 3 frames: 40 ground-truth boxes" in detection
    assert "<th>matched boxes (IoU ≥ 0.5, with lidar points)</th>" in detection


def test_sections_of_several_inputs_have_a_per_input_table() -> None:
    """Only segmentation had a per-input table; box AP, KITTI road MaxF and car IoU by range
    were shown for the whole fleet alone, although the JSON has each input's."""
    report = sample_report(4)
    report["kitti_road"]["per_input"] = [
        {"input": 0, "frames": 3, "max_f": 0.9, "ap": 0.8},
        {"input": 1, "frames": 1, "max_f": 0.5, "ap": None}]
    bins = report["by_range"]["car"]
    report["by_range"]["per_input"] = [
        {"input": 0, "frames": 2, "car": bins},
        {"input": 1, "frames": 2, "car": [dict(b, iou=0.25) for b in bins]}]
    report["detection"]["per_input"] = [
        {"input": 0, "frames": 3, "n_gt": 30, "n_proposals": 50, "n_det": 40,
         "ap": {"0.5": 0.8, "0.7": 0.4}, "range_error_m": {"median": 0.3}},
        {"input": 1, "frames": 1, "n_gt": 10, "n_proposals": 11, "n_det": 4,
         "ap": {"0.5": 0.1, "0.7": None}, "range_error_m": {"median": None}}]
    page = build_html(report, [])
    road = _section(page, "kitti-road").split("<h3>Per input</h3>")[1]
    assert _header_cells(road) == ["input", "frames", "MaxF", "AP"]
    assert _rows(road) == [["0 (camvid)", "3", "90.0 %", "80.0 %"],
                           ["1 (kitti_object)", "1", "50.0 %", "–"]]
    by_range = _section(page, "by-range").split("<h3>Per input</h3>")[1]
    assert _header_cells(by_range)[:3] == ["input", "frames", "car IoU 0-10 m"]
    assert _rows(by_range)[1][2:] == ["25.0 %"] * 6
    detection = _section(page, "detection").split("<h3>Per input</h3>")[1]
    assert _header_cells(detection) == ["input", "frames", "GT boxes", "proposals", "scored",
                                        "AP@0.5", "AP@0.7", "median |range error|"]
    assert _rows(detection)[1] == ["1 (kitti_object)", "1", "10", "11", "4", "10.0 %", "–",
                                   "–"]
    report["detection"]["per_input"] = report["detection"]["per_input"][:1]
    assert "Per input" not in _section(build_html(report, []), "detection")  # one input


def _summary_html(page: str) -> str:
    match = re.search(r'<div class="summary" id="summary">(.*?)</div>\n', page, re.S)
    assert match, "summary missing"
    return match.group(1)


def _failed_everywhere() -> dict[str, Any]:
    """Inputs with pixel, KITTI road and box ground truth whose every frame failed."""
    report = null_report()
    report["inputs"][0].update(kind="kitti_road")
    report.update(frames=[], gallery_k=12)
    return report


def test_absent_sections_tell_no_input_from_no_scored_frame() -> None:
    """Every frame failing used to read "No input has per-pixel ground truth" beside an
    Inputs table saying seg GT = yes."""
    page = build_html(_failed_everywhere(), [])
    for anchor, inputs in (("segmentation", "an input with per-pixel ground truth"),
                           ("kitti-road", "the KITTI road input(s)"),
                           ("detection", "an input with KITTI label_2 boxes"),
                           ("by-range", "an input with both lidar and segmentation ground "
                                        "truth")):
        assert f"No frame of {inputs} was scored (see Failures)" in _section(page, anchor)
    assert "No gallery: no frame was scored (see Failures)." in _section(page, "gallery")
    assert "No frame was scored (see Failures)." in _section(page, "frames")
    assert "No input has" not in page and "No KITTI road input" not in page
    report = _failed_everywhere()
    for entry in report["inputs"]:
        entry.update(kind="camvid", segmentation_gt=False, box_gt=False)
    page = build_html(report, [])
    assert "No input has per-pixel ground truth, so" in _section(page, "segmentation")
    assert "No input has both lidar and segmentation" in _section(page, "by-range")
    assert "No KITTI road input (kitti_road kind), so" in _section(page, "kitti-road")
    assert "No input has KITTI label_2 boxes, so" in _section(page, "detection")


def test_gallery_turned_off_says_so() -> None:
    """``--gallery 0`` used to read "no frame had ground truth to rank frames by"."""
    report = sample_report(4)
    report.update(gallery=[], gallery_k=0)
    assert "No gallery: it was turned off (--gallery 0)." in _section(build_html(report, []),
                                                                     "gallery")
    report["gallery_k"] = 12
    assert "no frame had ground truth to rank frames by" in _section(build_html(report, []),
                                                                    "gallery")


def test_empty_gallery_of_box_frames_says_no_box_was_missed() -> None:
    """Box-only frames that missed no box left the gallery empty, and the page said "no
    frame had ground truth to rank frames by" beside their label_2 boxes."""
    report = sample_report(4)
    report.update(gallery=[], gallery_k=12)
    for frame in report["frames"]:
        frame.update(iou=None, mean_iou=None, pixel_accuracy=None)
    report["frames"][0]["n_gt_boxes"] = None  # a frame of an input without boxes
    gallery = _section(build_html(report, []), "gallery")
    assert "no frame had ground truth" not in gallery
    assert ("no frame has per-pixel labels to rank by, and no ground-truth box was missed on "
            "the 3 frames with label_2 boxes.") in gallery


def test_frame_table_stage_columns_are_in_pipeline_order() -> None:
    """A fleet whose first input has no lidar timed ``fusion`` only on later frames: its
    column used to come after ``metrics``, unlike frames.csv and the latency table."""
    report = sample_report(4)
    for f in report["frames"]:
        f["latency_ms"] = {"read": 1.0, "inference": 2.0, "metrics": 0.5}
    report["frames"][-1]["latency_ms"] = {"read": 1.0, "fusion": 3.0, "inference": 2.0,
                                          "metrics": 0.5}
    table = build_html(report, []).split('id="frames-table"', 1)[1].split("</thead>", 1)[0]
    heads = re.findall(r"<th[^>]*>([^<]*) ms</th>", table)
    assert heads == ["read", "fusion", "inference", "metrics", "total"]
