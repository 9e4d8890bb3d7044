"""Writing the report folder: refusals before any frame is scored, the files as one set."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.errors import ConfigError, ModelError, RecordingError
from drivingseg.report.aggregate import build_report
from drivingseg.report.fleet import Progress
from drivingseg.report.inputs import FrameRef, ReportInput
from drivingseg.report.worker import FrameResult
from drivingseg.report.write import REPORT_FILES, make_report, report_folder, write_report

CLASSES = ("background", "road", "car")


def _report(road_tp: int) -> dict[str, object]:
    spec = ReportInput(0, "in0", "camvid", (FrameRef(0, "f0", "f0.png"),), True, False, False)
    cm = np.array([[5, 1, 0], [1, road_tp, 0], [0, 0, 0]], dtype=np.int64)
    frame = FrameResult(0, 0, "f0", "f0.png", {"read": 1.0}, b"", confusion=cm,
                        iou={"road": 0.5}, mean_iou=0.5, pixel_accuracy=0.9)
    return build_report([spec], [frame], [], meta={})


def test_a_file_that_cannot_be_written_leaves_the_old_report_whole(tmp_path: Path) -> None:
    """classes.csv fails: report.json and frames.csv used to be replaced already, leaving a
    folder that mixed the new run with the old one."""
    out = tmp_path / "out"
    write_report(_report(7), [], out)
    old = {name: (out / name).read_text() for name in REPORT_FILES if name != "classes.csv"}
    (out / "classes.csv").unlink()
    (out / "classes.csv").mkdir()
    with pytest.raises(RecordingError, match=r"classes.csv: cannot write"):
        write_report(_report(70), [], out)
    assert {name: (out / name).read_text() for name in old} == old
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)  # no temporaries


def _counting(seen: list[int]) -> Progress:
    def progress(items: Iterable[int], total: int) -> Iterator[int]:
        for item in items:
            seen.append(item)
            yield item
    return progress


def test_out_that_is_a_file_fails_before_any_frame_is_scored(
        tmp_path: Path, camvid_root: Path) -> None:
    """It used to fail only when writing, after every frame of every input was scored."""
    (tmp_path / "taken").write_text("a file")
    seen: list[int] = []
    with pytest.raises(RecordingError, match=r"taken: cannot create the report folder: .*"
                                              r"taken' is a file, not a folder"):
        make_report([camvid_root / "val"], "default", tmp_path / "taken", workers=1, limit=1,
                    progress=_counting(seen))
    assert seen == []


@pytest.mark.parametrize("below", ["", "runs/report"])
def test_out_that_is_a_file_is_named_as_a_file(tmp_path: Path, below: str) -> None:
    """--out FILE (or a folder below a file) said 'cannot create the report folder: File
    exists' (or 'Not a directory'), not which path is a file."""
    taken = tmp_path / "report.html"
    taken.write_text("a file")
    out = taken / below if below else taken
    message = f"cannot create the report folder: {str(taken)!r} is a file, not a folder"
    with pytest.raises(RecordingError, match=re.escape(message)):
        report_folder(out)
    assert taken.read_text() == "a file"


def test_a_report_that_stops_before_writing_leaves_no_folder(
        tmp_path: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped --weights, Ctrl-C or SIGTERM left the empty report folder (and its new
    parents) behind although nothing was written; an existing folder keeps its report."""
    out = tmp_path / "runs" / "report"
    with pytest.raises(ModelError, match=r"no checkpoint here"):
        make_report([camvid_root / "val"], tmp_path / "nope.safetensors", out, workers=1,
                    limit=1)
    assert not (tmp_path / "runs").exists()

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("drivingseg.report.write.run_tasks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_report([camvid_root / "val"], "default", out, workers=1, limit=1)
    assert not (tmp_path / "runs").exists()
    write_report(_report(7), [], out)
    with pytest.raises(KeyboardInterrupt):
        make_report([camvid_root / "val"], "default", out, workers=1, limit=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)


def test_zero_workers_is_refused(tmp_path: Path, camvid_root: Path) -> None:
    """``--workers 0`` used to run silently on every core."""
    with pytest.raises(ConfigError, match=r"--workers must be at least 1, got 0"):
        make_report([camvid_root / "val"], "default", tmp_path / "out", workers=0, limit=1)
    assert not (tmp_path / "out").exists()


def test_negative_gallery_is_refused(tmp_path: Path, camvid_root: Path) -> None:
    """``--gallery -1`` used to be taken as "no gallery"."""
    with pytest.raises(ConfigError, match=r"--gallery must be 0 \(no gallery\) or more "
                                          r"frames, got -1"):
        make_report([camvid_root / "val"], "default", tmp_path / "out", workers=1, limit=1,
                    gallery=-1)
    assert not (tmp_path / "out").exists()


def _kitti_road_folder(root: Path, camvid_root: Path) -> Path:
    """A KITTI road folder of one CamVid val frame, its labels drawn in gt_image_2 colours."""
    (root / "training" / "image_2").mkdir(parents=True)
    (root / "training" / "gt_image_2").mkdir()
    name = "0016E5_07959.png"
    shutil.copy(camvid_root / "val" / name, root / "training" / "image_2" / "um_000000.png")
    ids = np.asarray(cv2.imread(str(camvid_root / "valannot" / name), cv2.IMREAD_UNCHANGED))
    bgr = np.zeros((*ids.shape, 3), dtype=np.uint8)
    bgr[..., 2] = 255
    bgr[ids == 3] = (255, 0, 255)
    bgr[ids == 11] = 0
    cv2.imwrite(str(root / "training" / "gt_image_2" / "um_road_000000.png"), bgr)
    return root


def _table_after(page: str, marker: str) -> tuple[list[str], list[list[str]]]:
    table = page[page.index(marker):]
    table = table[: table.index("</table>")]
    head, body = table.split("</thead>")
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in body.split("</tr>") if "<td" in r]
    return re.findall(r"<th[^>]*>([^<]*)</th>", head), rows


def test_kitti_road_not_road_is_background_everywhere(tmp_path: Path,
                                                      camvid_root: Path) -> None:
    """CamVid + KITTI road: frames.csv and the overall matrix put not_road on background,
    but the page showed a dash for the road input's background IoU and a separate
    not_road column in the frames table. Also: ``--gallery 0`` is recorded and named."""
    road = _kitti_road_folder(tmp_path / "road", camvid_root)
    out = tmp_path / "out"
    report = make_report([camvid_root / "val", road], "default", out, workers=1, limit=1,
                         gallery=0)
    assert [i["kind"] for i in report["inputs"]] == ["camvid", "kitti_road"]
    seg = report["segmentation"]
    assert seg["classes"] == list(CLASSES)
    road_frame = report["frames"][1]
    not_road = road_frame["iou"]["not_road"]
    assert set(road_frame["iou"]) == {"not_road", "road"} and 0.5 < not_road < 1.0
    with (out / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[1]["iou_background"]) == not_road and rows[1]["iou_car"] == ""
    assert json.loads((out / "report.json").read_text())["gallery_k"] == 0
    page = (out / "report.html").read_text()
    road_input = seg["per_input"][1]["per_class"]["not_road"]["iou"]
    headers, per_input = _table_after(page, "<h3>Per input</h3>")
    assert headers[3:] == ["background IoU", "road IoU", "car IoU"]
    assert per_input[1][0] == "1 (kitti_road)"
    assert per_input[1][3] == f"{road_input * 100:.1f} %"  # was a dash
    headers, frames = _table_after(page, 'id="frames-table"')
    assert "not_road IoU" not in headers
    assert frames[1][headers.index("background IoU")] == f"{not_road * 100:.1f} %"
    assert "No gallery: it was turned off (--gallery 0)." in page
