"""Make and write a report folder: report.json, frames.csv, classes.csv and report.html.

Everything is built in memory, the HTML page included, and the four files are written to
temporary files first; only then are they moved into place, as one set
(:func:`drivingseg.fileio.write_texts_together`), so a run that fails half-way leaves an
earlier report in ``OUT`` untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.fileio import mkdir_problem, write_texts_together
from drivingseg.report.aggregate import class_value, scoring_precision
from drivingseg.report.fleet import Progress, cpu_count, describe_executor, run_tasks
from drivingseg.report.worker import (
    RANGE_EDGES_M,
    STAGES,
    ChunkResult,
    ChunkTask,
    run_chunk,
)

if TYPE_CHECKING:
    from drivingseg.model.config import TTAConfig
    from drivingseg.report.html_gallery import GalleryItem

__all__ = ["CHUNK_FRAMES", "REPORT_FILES", "classes_csv", "created_for_the_report", "frames_csv",
           "make_report", "report_folder", "report_json", "write_report"]

CHUNK_FRAMES = 16
"""Frames per work unit (one task for a worker process or a Ray worker)."""
REPORT_FILES = ("report.json", "frames.csv", "classes.csv", "report.html")
_IOU_CLASSES = ("background", "road", "car")


def report_json(report: dict[str, Any]) -> str:
    """The report as indented JSON text (``allow_nan=False``: NaN is a bug, not a value)."""
    return json.dumps(report, indent=2, allow_nan=False) + "\n"


def _cell(value: Any) -> Any:
    return "" if value is None else value


def frames_csv(report: dict[str, Any]) -> str:
    """One row per scored frame (schema: input ... n_gt_boxes, latency_<stage>_ms)."""
    stages = [s for s in STAGES if s in report["latency"]["stages"]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["input", "index", "frame", "image",
                     *(f"iou_{c}" for c in _IOU_CLASSES), "mean_iou", "pixel_accuracy",
                     "n_detections", "n_gt_boxes", *(f"latency_{s}_ms" for s in stages)])
    for row in report["frames"]:
        writer.writerow([row["input"], row["index"], row["frame"], row["image"],
                         *(_cell(class_value(row["iou"], c)) for c in _IOU_CLASSES),
                         _cell(row["mean_iou"]),
                         _cell(row["pixel_accuracy"]), row["n_detections"],
                         _cell(row["n_gt_boxes"]),
                         *(_cell(row["latency_ms"].get(s)) for s in stages)])
    return buf.getvalue()


def classes_csv(report: dict[str, Any]) -> str:
    """Per-class segmentation scores, then one row per box class group with its AP columns."""
    det = report.get("detection")
    thresholds = list(det.get("ap", {})) if det else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class", "tp", "fp", "fn", "iou", "precision", "recall", "f1",
                     *(f"box_ap@{t}" for t in thresholds)])
    blank = [""] * len(thresholds)
    seg = report.get("segmentation")
    if seg:
        for name, s in seg["per_class"].items():
            writer.writerow([name, s["tp"], s["fp"], s["fn"],
                             *(_cell(s[k]) for k in ("iou", "precision", "recall", "f1")), *blank])
    if det:
        writer.writerow(["boxes " + "/".join(det["classes"]), "", "", "", "", "", "", "",
                         *(_cell(det["ap"][t]) for t in thresholds)])
    return buf.getvalue()


def report_folder(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir``, created; RecordingError naming it when it cannot be (a file is there)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"cannot create the report folder: {mkdir_problem(out, exc)}",
                             path=out) from exc
    return out


@contextmanager
def created_for_the_report(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """``out_dir``, created now (a file in the way fails before any frame is scored); the
    folders this created are removed again when the block stops without writing the report
    (an error such as a mistyped ``--weights``, Ctrl-C or SIGTERM), so nothing is left."""
    out = Path(out_dir).absolute()
    created: list[Path] = []
    folder = out
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        created.append(folder)  # deepest first
        folder = folder.parent
    report_folder(out)
    try:
        yield out
    except BaseException:
        for made in created:
            with contextlib.suppress(OSError):  # not empty: something was written there
                made.rmdir()
        raise


def write_report(report: dict[str, Any], gallery: Sequence[GalleryItem],
                 out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the four report files into ``out_dir`` (created), all or none; returns their
    paths."""
    from drivingseg.report.html import build_html

    out = report_folder(out_dir)
    texts = {"report.json": report_json(report), "frames.csv": frames_csv(report),
             "classes.csv": classes_csv(report), "report.html": build_html(report, gallery)}
    write_texts_together({out / name: texts[name] for name in REPORT_FILES},
                         error=RecordingError, what="the report")
    return {name: out / name for name in REPORT_FILES}


def make_report(
    inputs: Sequence[str | os.PathLike[str]],
    weights: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    ray: str | None = None,
    gallery: int = 12,
    limit: int | None = None,
    device: str = "cpu",
    chunk_frames: int = CHUNK_FRAMES,
    command: str = "",
    progress: Progress | None = None,
    task_fn: Callable[[ChunkTask], ChunkResult] = run_chunk,
    tta: TTAConfig | None = None,
) -> dict[str, Any]:
    """Classify the inputs, score every frame with ``workers`` processes (or Ray), merge,
    and write the report folder; returns the report dict (failures listed in it).

    ``task_fn`` scores one chunk (a picklable top-level function; tests wrap
    :func:`~drivingseg.report.worker.run_chunk` to crash a worker). ``tta``: average each
    frame's class probabilities over these views (:mod:`drivingseg.model.tta`)."""
    from drivingseg.model.checkpoint import load_checkpoint
    from drivingseg.model.config import RGB_CHANNELS, tta_record
    from drivingseg.model.infer import RESIZE_MODES
    from drivingseg.report.aggregate import build_report, collect, pick_gallery
    from drivingseg.report.gallery import gallery_items
    from drivingseg.report.inputs import classify_inputs

    start = time.perf_counter()
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 frame, got {limit!r}")
    if workers is not None and workers < 1:  # 0 used to mean "every core"
        raise ConfigError(f"--workers must be at least 1, got {workers!r}")
    if gallery < 0:
        raise ConfigError(f"--gallery must be 0 (no gallery) or more frames, got {gallery!r}")
    specs = classify_inputs(inputs, limit=limit)
    with created_for_the_report(out_dir):  # a file in the way fails now, not after scoring
        ckpt = load_checkpoint(weights, in_channels=RGB_CHANNELS, device=device)
        n_workers = workers or cpu_count()
        step = max(1, chunk_frames)
        chunks = [(spec, i) for spec in specs for i in range(0, len(spec.frames), step)]
        threads = max(1, cpu_count() // min(n_workers, len(chunks)))  # workers x threads <= cores
        tasks = [
            ChunkTask(input=spec.index, kind=spec.kind, frames=spec.frames[i:i + step],
                      weights=str(ckpt.path), device=device, threads=threads,
                      road_only=spec.road_only, tta=tta)
            for spec, i in chunks
        ]
        fleet = run_tasks(task_fn, tasks, workers=n_workers, ray=ray,
                          sizes=[len(t.frames) for t in tasks], progress=progress)
        frames, failures = collect(tasks, specs, fleet)
        picks = pick_gallery(frames, gallery)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta: dict[str, Any] = {
            "created_utc": created, "command": command, "weights": str(ckpt.path),
            "input_size": [ckpt.spec.width, ckpt.spec.height], "resize": RESIZE_MODES[0],
            "device": device,
            "precision": scoring_precision(device),
            "tta": tta_record(tta),
            "executor": describe_executor(n_workers, ray)}
        items = gallery_items(specs, picks)
        meta["wall_s"] = float(f"{time.perf_counter() - start:.3f}")
        report = build_report(specs, frames, failures, meta=meta,
                              gallery=picks, gallery_k=gallery, range_edges_m=RANGE_EDGES_M)
        write_report(report, items, out_dir)
    return report
