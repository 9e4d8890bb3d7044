"""Writing the report folder: refusals before any frame is scored, the files as one set."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.report.aggregate import build_report
from drivingseg.report.fleet import Progress
from drivingseg.report.inputs import FrameRef, InputSpec
from drivingseg.report.worker import FrameResult
from drivingseg.report.write import REPORT_FILES, make_report, write_report

CLASSES = ("background", "road", "car")


def _report(road_tp: int) -> dict[str, object]:
    spec = InputSpec(0, "in0", "camvid", (FrameRef(0, "f0", "f0.png"),), True, False, False)
    cm = np.array([[5, 1, 0], [1, road_tp, 0], [0, 0, 0]], dtype=np.int64)
    frame = FrameResult(0, 0, "f0", "f0.png", {"read": 1.0}, b"", confusion=cm,
                        iou={"road": 0.5}, mean_iou=0.5, pixel_accuracy=0.9)
    return build_report([spec], [frame], [], model_classes=CLASSES, meta={})


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
    with pytest.raises(RecordingError, match=r"taken: cannot create the report folder"):
        make_report([camvid_root / "val"], "default", tmp_path / "taken", workers=1, limit=1,
                    progress=_counting(seen))
    assert seen == []


def test_zero_workers_is_refused(tmp_path: Path, camvid_root: Path) -> None:
    """``--workers 0`` used to run silently on every core."""
    with pytest.raises(ConfigError, match=r"--workers must be at least 1, got 0"):
        make_report([camvid_root / "val"], "default", tmp_path / "out", workers=0, limit=1)
    assert not (tmp_path / "out").exists()
