"""The report's unit of work: one chunk of frames scored in this process."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from drivingseg.report.inputs import FrameRef, classify_input
from drivingseg.report.worker import STAGES, ChunkTask, range_counts, run_chunk


def test_range_counts_use_each_pixel_once_at_its_nearest_point() -> None:
    labels = np.array([[2, 2, 0, 255]], dtype=np.uint8)
    pred = np.array([[2, 0, 2, 2]], dtype=np.uint8)
    rows = np.zeros(6, dtype=np.int64)
    cols = np.array([0, 0, 1, 2, 3, 2], dtype=np.int64)
    ranges = np.array([35.0, 5.0, 15.0, 12.0, 3.0, 90.0])
    counts = range_counts(labels, pred, rows, cols, ranges, (0.0, 10.0, 20.0, 80.0))
    # pixel 0 (tp) at its nearest point 5 m; pixel 1 (fn) 15 m; pixel 2 (fp) 12 m;
    # pixel 3 is ignored; the 90 m point is beyond the last edge.
    assert counts.tolist() == [[1, 0, 0, 1], [0, 1, 1, 2], [0, 0, 0, 0]]


def test_a_bad_frame_fails_alone_and_the_chunk_goes_on(tmp_path: Path,
                                                      camvid_root: Path) -> None:
    spec = classify_input(camvid_root / "val", limit=2)
    small = tmp_path / "small_label.png"
    label = np.asarray(cv2.imread(spec.frames[0].label or "", cv2.IMREAD_UNCHANGED), np.uint8)
    cv2.imwrite(str(small), label[:100])
    broken = tmp_path / "broken.png"
    shutil.copy(spec.frames[1].image, broken)
    broken.write_bytes(broken.read_bytes()[:2000])
    frames = (
        spec.frames[0],
        FrameRef(index=1, name="wrong_size", image=spec.frames[0].image, label=str(small),
                 layout="camvid"),
        FrameRef(index=2, name="truncated", image=str(broken), label=spec.frames[1].label,
                 layout="camvid"),
    )
    result = run_chunk(ChunkTask(input=0, kind="camvid", frames=frames, weights="default",
                                 threads=2))
    assert [f.name for f in result.frames] == ["0016E5_07959"]
    assert [f.name for f in result.failures] == ["wrong_size", "truncated"]
    assert "small_label.png: " in result.failures[0].error  # names the label file
    assert "label image is 480x100" in result.failures[0].error
    assert result.failures[1].error.startswith("RecordingError")
    ok = result.frames[0]
    assert ok.confusion is not None and ok.confusion.dtype == np.int64
    assert int(ok.confusion.sum()) == int(np.count_nonzero(label != 11))
    assert set(ok.latency_ms) == {"read", "inference", "proposals", "metrics"}
    mask = np.asarray(cv2.imdecode(np.frombuffer(ok.mask_png, np.uint8), cv2.IMREAD_UNCHANGED))
    assert mask.shape == (360, 480) and set(np.unique(mask)) <= {0, 1, 2}


def test_kitti_object_frame_runs_every_stage(kitti_object_root: Path) -> None:
    spec = classify_input(kitti_object_root, limit=1)
    result = run_chunk(ChunkTask(input=0, kind=spec.kind, frames=spec.frames,
                                 weights="default", threads=2))
    assert not result.failures
    frame = result.frames[0]
    assert set(frame.latency_ms) == set(STAGES)
    assert frame.confusion is None and frame.range_counts is None
    assert frame.match is not None and frame.match.n_gt == sum(
        not b.ignore for b in frame.gt_boxes) > 0
    assert any(d.range_m is not None for d in frame.detections)


def test_synthetic_frame_has_range_counts(synthetic_drive: Path) -> None:
    spec = classify_input(synthetic_drive, limit=1)
    result = run_chunk(ChunkTask(input=0, kind=spec.kind, frames=spec.frames,
                                 weights="default", threads=2))
    frame = result.frames[0]
    assert frame.range_counts is not None and frame.range_counts.shape == (6, 4)
    tp, fp, fn, pixels = frame.range_counts.sum(axis=0)
    assert pixels > 1000 and tp > 0 and tp + fp + fn <= pixels
