"""``drivingseg eval``: score a checkpoint on a labelled folder, frame by frame.

Predictions are made by :class:`~drivingseg.model.infer.Segmenter` (the node's code path)
at the labels' own size. The report holds the confusion matrix, per-class IoU, precision,
recall and F1, the mean IoU over road and car, one row per frame, and on KITTI road data
the benchmark's MaxF and AP from the road probability (perspective space). On KITTI road
only road is labelled, so car predictions count as "not road" there and car is not scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, ModelError, RecordingError
from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import CLASS_NAMES, IGNORE_INDEX, TTAConfig, tta_record
from drivingseg.model.data import (
    LabelledFile,
    camvid_sequence,
    check_pair,
    discover,
    load_pair,
)
from drivingseg.model.metrics import (
    ConfusionMatrix,
    RoadPR,
    confusion_matrix,
    mean_iou_of,
    scores_of,
)
from drivingseg.model.tta import scoring_segmenter

if TYPE_CHECKING:
    from drivingseg.fusion.channels import StreamNotes

__all__ = ["FrameScore", "evaluate", "format_report", "frame_names",
           "score_frame", "scored_classes"]

ROAD, CAR = 1, 2
ROAD_ONLY_CLASSES = ("not_road", "road")


@dataclass(frozen=True, eq=False)
class FrameScore:
    """Scores of one frame: its int64 confusion matrix (rows label, columns prediction),
    per-class IoU (``None`` where the class is absent), mean IoU over road and car and
    the pixel accuracy over labelled pixels; ``pred`` is the prediction that was scored."""

    confusion: npt.NDArray[np.int64]
    iou: dict[str, float | None]
    mean_iou: float | None
    pixel_accuracy: float | None
    pred: npt.NDArray[np.uint8]


def scored_classes(road_only: bool) -> tuple[str, ...]:
    """The classes a frame is scored on: those of its labels (``not_road``/``road`` on KITTI
    road), whatever the model predicts, so a road-only model still meets the labels' cars
    (as recall 0) instead of failing on them."""
    return ROAD_ONLY_CLASSES if road_only else CLASS_NAMES


def score_frame(
    labels: npt.NDArray[np.uint8],
    class_ids: npt.NDArray[np.uint8],
    classes: tuple[str, ...],
    *,
    road_only: bool = False,
) -> FrameScore:
    """Score one frame's predicted ``class_ids`` against its ``labels`` (exact integers).

    ``road_only`` (KITTI road labels) counts a car prediction as "not road". Both
    ``drivingseg eval`` and ``drivingseg report`` score frames here.
    """
    pred = (class_ids == ROAD).astype(np.uint8) if road_only else class_ids
    frame_cm = confusion_matrix(labels, pred, len(classes))
    valid = labels != IGNORE_INDEX
    return FrameScore(
        confusion=frame_cm,
        iou={s.name: s.iou for s in scores_of(frame_cm, classes)},
        mean_iou=mean_iou_of(frame_cm, classes),
        pixel_accuracy=float((pred[valid] == labels[valid]).mean()) if valid.any() else None,
        pred=pred,
    )


def frame_names(images: Sequence[Path]) -> list[str]:
    """Each frame's name: its file stem, unique within an input. Where stems repeat (a date
    folder of several drives, each starting at ``0000000000``), the folders that tell the
    frames apart are put in front (``2024_05_01_drive_0002_sync/0000000000``), so a
    frame in the table, the gallery and the failures names one image."""
    stems = [p.stem for p in images]
    if len(set(stems)) == len(stems):
        return stems
    root = Path(os.path.commonpath([str(p.parent) for p in images]))
    rel = [p.parent.relative_to(root).parts for p in images]
    if len({len(r) for r in rel}) == 1:  # same depth: drop the folders every frame shares
        keep = [j for j in range(len(rel[0])) if len({r[j] for r in rel}) > 1]
        rel = [tuple(r[j] for j in keep) for r in rel]
    names = ["/".join((*r, p.stem)) for r, p in zip(rel, images, strict=True)]
    if len(set(names)) == len(names):
        return names
    return [p.relative_to(root.parent).as_posix() for p in images]  # a.png beside a.jpg


def evaluate(
    data: str | os.PathLike[str],
    weights: str | os.PathLike[str] = "default",
    *,
    device: str = "cpu",
    limit: int | None = None,
    sequences: tuple[str, ...] = (),
    wrap: Callable[[Iterable[LabelledFile], int], Iterable[LabelledFile]] | None = None,
    fp16: bool | None = None,
    tta: TTAConfig | None = None,
    resize: str = "keep_aspect",
) -> dict[str, Any]:
    """Evaluate ``weights`` on the labelled frames under ``data``.

    ``sequences`` keeps only frames whose CamVid sequence (file-name prefix) is listed;
    ``limit`` keeps the first N frames after that. ``fp16``: half precision as in
    :class:`~drivingseg.model.infer.Segmenter` (None: on CUDA only), to score the
    precision a deployment runs in. ``tta``: average over rescaled and mirrored views
    (:mod:`drivingseg.model.tta`; offline only, each view costs a forward pass).
    ``resize``: how frames become the network input
    (:func:`~drivingseg.model.infer.input_size`). A model that takes lidar channels is
    scored on synthetic drives only (their scans lie beside the images), without TTA.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 frame, got {limit!r}")
    files = discover(data)
    if not files:  # e.g. empty val/ beside valannot/: a report of 0 frames would say nothing
        raise RecordingError("no labelled frames in this folder (its image folder is empty)",
                             path=data)
    names = dict(zip((f.image for f in files), frame_names([f.image for f in files]),
                     strict=True))  # of the whole folder, as the report names them
    if sequences:
        found, layout = _sequences(files), files[0].layout
        files = [f for f in files if camvid_sequence(f.image) in sequences]
        if not files:
            hint = (f"its sequences are {found[:12]!r}" if found else
                    f"the file names of this {layout} folder have no sequence prefix "
                    "(CamVid's 0006R0_01234.png)")
            message = f"no frames of sequences {list(sequences)!r} in this folder; {hint}"
            raise RecordingError(message, path=data)
    files = files if limit is None else files[:limit]
    for f in files:  # a bad label found at frame 900 would cost all the scoring before it
        check_pair(f)
    layouts = sorted({f.layout for f in files})
    ckpt = load_checkpoint(weights, device=device)
    if ckpt.config.uses_lidar:
        _check_lidar_scoring(ckpt, layouts, tta, data)
    seg = scoring_segmenter(ckpt, tta, device=device, fp16=fp16, resize=resize)
    rigs: dict[Path, tuple[Rig, StreamNotes]] = {}
    road_only = layouts == ["kitti_road"]
    classes = scored_classes(road_only)
    cm = ConfusionMatrix(classes)
    road_pr = RoadPR() if road_only else None
    rows = []
    iterable = wrap(files, len(files)) if wrap is not None else files
    for f in iterable:
        image, labels = load_pair(f)
        planes = _synthetic_lidar(f, image.shape, rigs) if ckpt.config.uses_lidar else None
        out = seg(image, planes, probabilities=road_pr is not None)
        score = score_frame(labels, out.class_ids, classes, road_only=road_only)
        cm.merge(score.confusion)
        if road_pr is not None and out.probs is not None:
            road_pr.update(labels, out.probs[ROAD])
        rows.append({
            "frame": names[f.image],
            "image": str(f.image),
            "iou": score.iou,
            "mean_iou": score.mean_iou,
            "pixel_accuracy": score.pixel_accuracy,
        })
    report: dict[str, Any] = {
        "data": str(data),
        "weights": str(ckpt.path),
        "layouts": layouts,
        "frames": len(files),
        "sequences": _sequences(files),
        "classes": list(classes),
        "input_size": [ckpt.spec.width, ckpt.spec.height],
        "resize": resize,
        "precision": str(seg.dtype).removeprefix("torch."),
        "tta": tta_record(tta),
        "confusion_matrix": cm.matrix.tolist(),
        "per_class": {s.name: asdict(s) for s in cm.scores()},
        "mean_iou_road_car": cm.mean_iou(),
        "mean_iou_classes": [s.name for s in cm.scores()
                             if s.name in ("road", "car") and s.iou is not None],
        "per_frame": rows,
    }
    if road_pr is not None:
        report["kitti_road"] = road_pr.result()
    return report


def _check_lidar_scoring(ckpt: Checkpoint, layouts: list[str], tta: TTAConfig | None,
                         data: str | os.PathLike[str]) -> None:
    """Refuse to score a lidar model where it cannot be, saying why: only a synthetic
    drive has scans beside its labelled frames, and it is scored without TTA."""
    name = ckpt.path.name if ckpt.path is not None else str(ckpt.config)
    if layouts != ["synthetic"]:
        message = (f"the model {name!r} takes lidar channels (in_channels "
                   f"{ckpt.config.in_channels}), but frames of layout {', '.join(layouts)!r} "
                   "have no lidar scans; score it on a drivingseg synth drive, or use RGB "
                   "weights (in_channels 3)")
        raise ModelError(message, path=data)
    if tta is not None and not tta.identity:
        message = (f"test-time augmentation (--tta: {tta.summary()}) is not run for a model "
                   f"that takes lidar channels ({name!r}, in_channels "
                   f"{ckpt.config.in_channels}); score it without --tta")
        raise ModelError(message, path=data)


def _synthetic_lidar(f: LabelledFile, shape: tuple[int, ...],
                     rigs: dict[Path, tuple[Rig, StreamNotes]]) -> npt.NDArray[np.float32]:
    """The lidar channels of a synthetic drive's frame (``drivingseg synth`` writes its
    scans and calibration beside the images), made as the fusion node makes them, so a
    lidar model trained on synthetic drives is scored on one."""
    from drivingseg.fusion.channels import StreamNotes, lidar_channels
    from drivingseg.sensors.decode import read_velodyne_bin
    from drivingseg.sensors.open import open_recording

    drive = f.image.parents[2]
    if drive not in rigs:
        with open_recording(drive) as rec:
            rigs[drive] = (rec.require_rig(), StreamNotes(str(drive)))
    rig, notes = rigs[drive]
    points = read_velodyne_bin(drive / "velodyne_points" / "data" / f"{f.image.stem}.bin")
    return lidar_channels(points, rig, width=shape[1], height=shape[0], notes=notes).stack()


def _sequences(files: Sequence[LabelledFile]) -> list[str]:
    """The sequences (file-name prefixes, as ``--sequences`` picks them) of ``files``; a
    name without one (a synthetic drive's ``0000000000.png``) has none, rather than being
    listed as a sequence of its own."""
    return sorted({camvid_sequence(f.image) for f in files if "_" in f.image.stem})


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def pct_text(value: float | None) -> str:
    """A fraction as ``"12.34 %"`` in running text, or ``"n/a"`` (no unit after it)."""
    return "n/a" if value is None else f"{100 * value:.2f} %"


def tta_text(tta: dict[str, Any] | None) -> str:
    """The header's note on a report's recorded ``tta`` (empty without augmentation)."""
    return f"; test-time augmentation: {tta['summary']}" if tta else ""


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable table of a report from :func:`evaluate`."""
    lines = [
        f"{report['frames']} frames ({', '.join(report['layouts'])}) from {report['data']}",
        f"weights {report['weights']}, checkpoint input {report['input_size'][0]}x"
        f"{report['input_size'][1]}, resize {report.get('resize', 'stretch')}, "
        f"{report['precision']}" + tta_text(report.get("tta")),
        f"{'class':<12}{'IoU %':>8}{'prec %':>8}{'recall %':>10}{'F1 %':>8}",
    ]
    for name, s in report["per_class"].items():
        lines.append(f"{name:<12}{_pct(s['iou']):>8}{_pct(s['precision']):>8}"
                     f"{_pct(s['recall']):>10}{_pct(s['f1']):>8}")
    averaged = report.get("mean_iou_classes", ["road", "car"])  # KITTI road: road alone
    lines.append(f"mean IoU ({', '.join(averaged) or 'road, car'}): "
                 f"{pct_text(report['mean_iou_road_car'])}")
    if "kitti_road" in report:
        k = report["kitti_road"]
        lines.append(f"KITTI road (perspective): MaxF {pct_text(k['max_f'])}, "
                     f"AP {pct_text(k['ap'])}")
    lines.append("confusion matrix (rows: label, columns: prediction; "
                 + ", ".join(report["classes"]) + ")")
    lines += ["  " + " ".join(f"{v:>10d}" for v in row) for row in report["confusion_matrix"]]
    return "\n".join(lines)


