"""The report's unit of work: score one chunk of frames of one input, in any process.

:func:`run_chunk` is a top-level function of picklable arguments, so a process pool or a
Ray worker can run it. It loads the :class:`~drivingseg.model.infer.Segmenter` once per
process (cached by weights path and device), then, per frame: reads the image, labels,
boxes and scan (stage ``read``), projects the scan into the image (``fusion``), segments
with probabilities (``inference``), proposes car boxes from the car probability and the
lidar (``proposals``) and scores (``metrics``): the frame's int64 confusion matrix from
:func:`drivingseg.model.evaluate.score_frame` (the code ``drivingseg eval`` runs), the
KITTI road histograms, car TP/FP/FN by lidar range, the box match, and the prediction
compressed as PNG for the gallery. A frame that raises becomes a :class:`FrameFailure`;
the chunk goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import RecordingError
from drivingseg.model.config import IGNORE_INDEX, TTAConfig
from drivingseg.model.data import LabelledFile, load_pair
from drivingseg.model.evaluate import CAR, ROAD, score_frame, scored_classes
from drivingseg.model.infer import Segmenter
from drivingseg.model.metrics import RoadPR
from drivingseg.model.tta import TTASegmenter, scoring_segmenter
from drivingseg.node.messages import Detection
from drivingseg.report.inputs import FrameRef

__all__ = [
    "RANGE_EDGES_M",
    "STAGES",
    "ChunkResult",
    "ChunkTask",
    "FrameFailure",
    "FrameResult",
    "range_counts",
    "run_chunk",
]

STAGES = ("read", "fusion", "inference", "proposals", "metrics")
RANGE_EDGES_M = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0)
"""Bin edges of the by-range section; points at or beyond the last edge are left out."""

T = TypeVar("T")
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ChunkTask:
    """Frames of one input to score with one checkpoint; ``threads`` torch threads."""

    input: int
    kind: str
    frames: tuple[FrameRef, ...]
    weights: str
    device: str = "cpu"
    threads: int = 1
    road_only: bool = False
    range_edges_m: tuple[float, ...] = RANGE_EDGES_M
    tta: TTAConfig | None = None


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Everything the aggregator and the gallery need of one scored frame.

    ``range_counts`` is bins x 4 (car TP, FP, FN, labelled pixels hit by lidar);
    ``road_hist`` the KITTI road positive and negative histograms (2 x 256).
    """

    input: int
    index: int
    name: str
    image: str
    latency_ms: dict[str, float]
    mask_png: bytes
    confusion: IntArray | None = None
    iou: dict[str, float | None] | None = None
    mean_iou: float | None = None
    pixel_accuracy: float | None = None
    road_hist: IntArray | None = None
    range_counts: IntArray | None = None
    detections: tuple[Detection, ...] = ()
    gt_boxes: tuple[Any, ...] = ()
    match: Any = None
    missed_boxes: int = 0


@dataclass(frozen=True)
class FrameFailure:
    """A frame that could not be scored: ``error`` is one line."""

    input: int
    index: int
    name: str
    path: str
    error: str


@dataclass(frozen=True)
class ChunkResult:
    frames: tuple[FrameResult, ...] = field(default=())
    failures: tuple[FrameFailure, ...] = field(default=())


_SEGMENTERS: dict[tuple[str, str, TTAConfig | None], Segmenter | TTASegmenter] = {}


def segmenter(weights: str, device: str = "cpu", tta: TTAConfig | None = None
              ) -> Segmenter | TTASegmenter:
    """The process's segmenter for ``weights`` on ``device`` with test-time augmentation
    ``tta`` (loaded on first use)."""
    key = (weights, device, tta)
    if key not in _SEGMENTERS:
        _SEGMENTERS[key] = scoring_segmenter(weights, tta, device=device)
    return _SEGMENTERS[key]


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads in this process (workers x threads <= cores)."""
    import torch

    n = max(1, int(threads))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (the first line of the message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class _Clock:
    """Milliseconds spent per stage of one frame."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + 1000.0 * (time.perf_counter() - start)

    def time(self, name: str, fn: Callable[[], T]) -> T:
        with self.stage(name):
            return fn()


def range_counts(
    labels: npt.NDArray[np.uint8], pred: npt.NDArray[np.uint8], rows: IntArray, cols: IntArray,
    range_m: npt.NDArray[np.floating[Any]], edges_m: tuple[float, ...], car: int = CAR,
) -> IntArray:
    """Car TP, FP, FN and labelled pixels per range bin over the pixels hit by lidar.

    A pixel hit by several points counts once, at its nearest point's range; pixels
    labelled ignore are left out. Returns bins x 4 int64.
    """
    width = labels.shape[1]
    n_bins = len(edges_m) - 1
    out = np.zeros((n_bins, 4), dtype=np.int64)
    if rows.size == 0:
        return out
    lin = rows.astype(np.int64) * width + cols.astype(np.int64)
    order = np.lexsort((np.asarray(range_m, dtype=np.float64), lin))
    lin_sorted = lin[order]
    first = np.ones(lin_sorted.shape[0], dtype=bool)
    first[1:] = lin_sorted[1:] != lin_sorted[:-1]
    pick = order[first]
    lab = labels.ravel()[lin[pick]]
    prd = pred.ravel()[lin[pick]]
    b = np.searchsorted(np.asarray(edges_m, dtype=np.float64),
                        np.asarray(range_m, dtype=np.float64)[pick], side="right") - 1
    keep = (lab != IGNORE_INDEX) & (b >= 0) & (b < n_bins)
    lab, prd, b = lab[keep], prd[keep], b[keep]
    is_car, said_car = lab == car, prd == car
    for j, sel in enumerate((is_car & said_car, ~is_car & said_car, is_car & ~said_car,
                             np.ones_like(is_car))):
        out[:, j] = np.bincount(b[sel], minlength=n_bins)[:n_bins]
    return out


def _rig(ref: FrameRef, image_wh: tuple[int, int]) -> Rig | None:
    from drivingseg.calibration.kitti import load_kitti_object_rig, load_kitti_raw_rig

    if ref.calib is None:
        return None
    if ref.calib_kind == "raw":
        return load_kitti_raw_rig(ref.calib, camera=2)
    return load_kitti_object_rig(ref.calib, camera=2, image_size=image_wh)


def _read(ref: FrameRef) -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None, list[Any] | None,
    npt.NDArray[np.float32] | None, Rig | None,
]:
    """Image, labels, KITTI objects, scan and rig of one frame (what it has)."""
    from drivingseg.sensors.decode import read_image_rgb, read_velodyne_bin
    from drivingseg.sensors.kitti_benchmark import read_kitti_labels

    labels = None
    if ref.label is not None:
        image, labels = load_pair(LabelledFile(Path(ref.image), Path(ref.label),
                                               ref.layout or ""))
    else:
        image = read_image_rgb(ref.image)
    objects = read_kitti_labels(ref.boxes) if ref.boxes is not None else None
    height, width = image.shape[:2]
    rig = _rig(ref, (width, height))
    if rig is not None and (rig.camera.width, rig.camera.height) != (width, height):
        message = (f"calibration is for a {rig.camera.width}x{rig.camera.height} image but "
                   f"{Path(ref.image).name!r} is {width}x{height}")
        raise RecordingError(message, path=ref.calib)
    scan = read_velodyne_bin(ref.lidar) if ref.lidar is not None and rig is not None else None
    return image, labels, objects, scan, rig


def score_one(task: ChunkTask, ref: FrameRef) -> FrameResult:
    """Read, fuse, segment, propose and score one frame (raises on a bad frame)."""
    from drivingseg.detect.evaluate import match_frame
    from drivingseg.detect.gt import MODERATE_MIN_HEIGHT_PX, gt_boxes
    from drivingseg.detect.proposals import LidarInImage, propose_regions

    clock = _Clock()
    image, labels, objects, scan, rig = clock.time("read", lambda: _read(ref))
    lidar = None
    if scan is not None and rig is not None:
        lidar = clock.time("fusion", lambda: LidarInImage.from_scan(scan, rig))
    seg = segmenter(task.weights, task.device, task.tta)
    out = clock.time("inference", lambda: seg(image, probabilities=True))
    assert out.probs is not None
    car_prob = out.probs[CAR] if out.probs.shape[0] > CAR else None
    detections = clock.time("proposals",
                            lambda: propose_regions(out.class_ids, car_prob, lidar))
    with clock.stage("metrics"):
        fields: dict[str, Any] = {}
        if labels is not None:
            classes = scored_classes(task.road_only)
            score = score_frame(labels, out.class_ids, classes, road_only=task.road_only)
            fields.update(confusion=score.confusion, iou=score.iou, mean_iou=score.mean_iou,
                          pixel_accuracy=score.pixel_accuracy)
            if task.road_only:
                pr = RoadPR()
                pr.update(labels, out.probs[ROAD])
                fields["road_hist"] = np.stack([pr.pos_hist, pr.neg_hist])
            elif lidar is not None:
                fields["range_counts"] = range_counts(labels, out.class_ids, lidar.rows,
                                                      lidar.cols, lidar.range_m,
                                                      task.range_edges_m)
        if objects is not None:
            gt = gt_boxes(objects, rig, (image.shape[1], image.shape[0]), location_ref="auto",
                          points_cam_m=None if lidar is None else lidar.xyz_cam_m)
            match = match_frame(detections, gt, min_det_height_px=MODERATE_MIN_HEIGHT_PX)
            fields.update(gt_boxes=tuple(gt), match=match, missed_boxes=missed_boxes(match))
        ok, png = cv2.imencode(".png", out.class_ids)
        if not ok:
            raise RecordingError("OpenCV could not encode the prediction as PNG",
                                 path=ref.image)
    return FrameResult(input=task.input, index=ref.index, name=ref.name, image=ref.image,
                       latency_ms=dict(clock.ms), mask_png=png.tobytes(),
                       detections=tuple(detections), **fields)


def missed_boxes(match: Any) -> int:
    """Ground-truth boxes (not ignored) left unmatched at the loosest IoU threshold."""
    return int(match.n_gt) - int(sum(match.tp[min(match.tp)])) if match.tp else int(match.n_gt)


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Score every frame of ``task``; a frame that raises becomes a FrameFailure."""
    set_threads(task.threads)
    frames: list[FrameResult] = []
    failures: list[FrameFailure] = []
    for ref in task.frames:
        try:
            frames.append(score_one(task, ref))
        except Exception as exc:  # one bad frame must not stop the chunk
            failures.append(FrameFailure(task.input, ref.index, ref.name, ref.image,
                                         one_line(exc)))
    return ChunkResult(tuple(frames), tuple(failures))
