"""What each ``drivingseg report`` input is, which ground truth it has, and its frames.

An input is one of:

- a labelled folder of any :mod:`drivingseg.model.data` layout (CamVid, KITTI road,
  KITTI semantics, synthetic drive, ``images/`` + ``labels/`` with drivingseg ids):
  per-pixel segmentation ground truth. A synthetic drive also has its velodyne scans and
  KITTI raw calibration, and a KITTI road or semantics folder with ``velodyne/`` and
  ``calib/`` beside ``image_2/`` has them too, so the by-range section works on those;
- a KITTI object folder with ``label_2/``: 2D box ground truth, lidar and a calibration
  per frame, no segmentation ground truth.

Anything else (a KITTI raw drive, a bag, an image folder, a KITTI testing split) has no
ground truth to score against and is refused before any work starts. So are label
images whose size differs from their camera image (checked from the file headers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.model.data import discover
from drivingseg.model.evaluate import frame_names
from drivingseg.sensors.kitti_benchmark import png_size

__all__ = ["FrameRef", "ReportInput", "check_disjoint", "check_label_sizes", "classify_input",
           "classify_inputs"]

log = logging.getLogger(__name__)

KINDS = ("camvid", "kitti_road", "kitti_semantics", "synthetic", "plain", "kitti_object",
         "labelled_folder")
GROUND_TRUTH_LOOKED_FOR = (
    "looked for segmentation labels (CamVid X/ beside Xannot/, KITTI road image_2/ + "
    "gt_image_2/, KITTI semantics image_2/ + semantic/, a synthetic drive's gt/image_02/, "
    "images/ + labels/ with drivingseg ids) "
    "and KITTI object boxes (image_2/ + label_2/)"
)


@dataclass(frozen=True)
class FrameRef:
    """One frame of an input: where its image, ground truth, scan and calibration are.

    ``calib`` is a KITTI object calib file (``calib_kind`` "object") or a KITTI raw date
    folder (``calib_kind`` "raw"); ``boxes`` a KITTI ``label_2`` file.
    """

    index: int
    name: str
    image: str
    label: str | None = None
    layout: str | None = None
    boxes: str | None = None
    lidar: str | None = None
    calib: str | None = None
    calib_kind: str | None = None


@dataclass(frozen=True)
class ReportInput:
    """One classified input and its frames (``limit`` applied)."""

    index: int
    path: str
    kind: str
    frames: tuple[FrameRef, ...]
    segmentation_gt: bool
    box_gt: bool
    lidar: bool

    @property
    def road_only(self) -> bool:
        """KITTI road labels: only road vs not road is labelled."""
        return self.kind == "kitti_road"

    def summary(self) -> dict[str, object]:
        """The report's ``inputs`` entry (``frames_ok`` is filled in by the aggregator)."""
        return {"index": self.index, "path": self.path, "kind": self.kind,
                "frames": len(self.frames), "segmentation_gt": self.segmentation_gt,
                "box_gt": self.box_gt, "lidar": self.lidar}


def _benchmark_root(path: Path) -> Path:
    return path / "training" if (path / "training").is_dir() else path


def _kitti_object(index: int, path: Path, root: Path) -> ReportInput:
    """A KITTI object folder: image_2/ + label_2/ (+ velodyne/, calib/)."""
    images = sorted(p for p in (root / "image_2").glob("*.png") if p.is_file())
    if not images:
        raise RecordingError("no .png images in the image folder", path=root / "image_2")
    velodyne, calib = root / "velodyne", root / "calib"
    has_lidar = velodyne.is_dir() and calib.is_dir()
    frames = []
    for i, img in enumerate(images):
        label = root / "label_2" / f"{img.stem}.txt"
        if not label.is_file():
            message = f"frame {img.stem!r} has an image but no label_2/{label.name}"
            raise RecordingError(message, path=label)
        frames.append(FrameRef(
            index=i, name=img.stem, image=str(img), boxes=str(label),
            lidar=str(velodyne / f"{img.stem}.bin") if has_lidar else None,
            calib=str(calib / f"{img.stem}.txt") if calib.is_dir() else None,
            calib_kind="object" if calib.is_dir() else None,
        ))
    return ReportInput(index, str(path), "kitti_object", tuple(frames), segmentation_gt=False,
                     box_gt=True, lidar=has_lidar)


def _lidar_of(image: Path, layout: str) -> tuple[str | None, str | None, str | None]:
    """(scan, calibration, calibration kind) of a labelled frame, where the layout has them."""
    if layout == "synthetic":  # <drive>/image_02/data/N.png, calib in the date folder
        drive = image.parents[2]
        scan = drive / "velodyne_points" / "data" / f"{image.stem}.bin"
        if scan.is_file() and (drive.parent / "calib_velo_to_cam.txt").is_file():
            return str(scan), str(drive.parent), "raw"
    elif layout in ("kitti_road", "kitti_semantics"):
        root = image.parent.parent
        scan = root / "velodyne" / f"{image.stem}.bin"
        calib = root / "calib" / f"{image.stem}.txt"
        if scan.is_file() and calib.is_file():
            return str(scan), str(calib), "object"
    return None, None, None


def _labelled(index: int, path: Path) -> ReportInput | None:
    try:
        files = discover(path)
    except RecordingError as exc:
        if exc.message.startswith("no labelled frames found"):
            return None
        raise
    layouts = sorted({f.layout for f in files})
    kind = layouts[0] if len(layouts) == 1 else "labelled_folder"
    frames = []
    names = frame_names([f.image for f in files])
    for i, (f, name) in enumerate(zip(files, names, strict=True)):
        scan, calib, calib_kind = _lidar_of(f.image, f.layout)
        frames.append(FrameRef(index=i, name=name, image=str(f.image), label=str(f.label),
                               layout=f.layout, lidar=scan, calib=calib, calib_kind=calib_kind))
    has_lidar = bool(frames) and all(fr.lidar is not None for fr in frames)
    missing = [fr for fr in frames if fr.lidar is None]
    if missing and len(missing) < len(frames):
        log.warning("%s: %d of %d frames have no lidar scan or calibration (first: %r), so the "
                    "input is scored without lidar (no car IoU by range)", path, len(missing),
                    len(frames), missing[0].image)
    if not has_lidar:
        frames = [replace(fr, lidar=None, calib=None, calib_kind=None) for fr in frames]
    return ReportInput(index, str(path), kind, tuple(frames), segmentation_gt=True, box_gt=False,
                     lidar=has_lidar)


def classify_input(path: str | os.PathLike[str], index: int = 0, *,
                   limit: int | None = None) -> ReportInput:
    """Classify ``path`` and list its frames (the first ``limit``); refuse it without GT."""
    p = Path(path)
    if not p.exists():
        raise RecordingError("no such file or folder", path=p)
    spec: ReportInput | None = None
    if p.is_dir():
        root = _benchmark_root(p)
        if (root / "image_2").is_dir() and (root / "label_2").is_dir():
            spec = _kitti_object(index, p, root)
        else:
            spec = _labelled(index, p)
    if spec is None:
        message = f"no ground truth to score against: {GROUND_TRUTH_LOOKED_FOR}"
        raise RecordingError(message, path=p)
    if not spec.frames:
        raise RecordingError("no frames found in this input", path=p)
    if limit:
        spec = replace(spec, frames=spec.frames[:limit])
    check_label_sizes(spec)
    return spec


def classify_inputs(paths: Sequence[str | os.PathLike[str]], *,
                    limit: int | None = None) -> list[ReportInput]:
    """Classify every input (in order) before any work starts; the first bad one raises."""
    if not paths:
        raise RecordingError("no inputs given")
    specs = [classify_input(p, i, limit=limit) for i, p in enumerate(paths)]
    check_disjoint(specs)
    return specs


def check_disjoint(specs: Sequence[ReportInput]) -> None:
    """ConfigError when one frame (the same image file with the same ground-truth file)
    is in two inputs (a CamVid root and its ``val/``, a ``synth`` OUT_DIR and one of its
    drives): it would be counted twice in every fleet total, and the inputs would not add
    up to the fleet. An image linked into another layout with labels of its own is not
    the same frame."""
    owner: dict[tuple[str, ...], tuple[ReportInput, FrameRef]] = {}
    for spec in specs:
        for fr in spec.frames:
            key = tuple(os.path.realpath(f) if f else "" for f in (fr.image, fr.label, fr.boxes))
            if key in owner and owner[key][0].index != spec.index:
                first, first_frame = owner[key]
                message = (f"INPUT {spec.path!r} overlaps INPUT {first.path!r}: frame "
                           f"{fr.name!r} is frame {first_frame.name!r} there, and would be "
                           "scored and counted twice; give each folder once")
                raise ConfigError(message, path=fr.image)
            owner.setdefault(key, (spec, fr))


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (PNG's, else the one Pillow reads: a
    JPEG's frame header), not by decoding it: every frame of every input is checked before
    the first is scored, and decoding each JPEG frame here cost a fleet of them as much
    time again, in one process, before any worker started."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if p.suffix.lower() == ".png":
        return png_size(p)
    try:
        with Image.open(p) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        message = f"cannot read image (missing, truncated or not an image): {exc}"
        raise RecordingError(message, path=p) from exc
    return int(width), int(height)


def check_label_sizes(spec: ReportInput) -> None:
    """RecordingError naming the first label image whose size is not its image's.

    A frame whose image or label header cannot be read (an empty or cut-off file) is left
    to its worker, which lists it as a failed frame, as it does a file cut off after the
    header: one bad file must not stop the report of a whole fleet.
    """
    for fr in spec.frames:
        if fr.label is None:
            continue
        try:
            label_wh, image_wh = image_size(fr.label), image_size(fr.image)
        except RecordingError as exc:
            log.debug("size check skipped, the frame's worker will report it: %s", exc)
            continue
        if label_wh != image_wh:
            message = (
                f"label image is {label_wh[0]}x{label_wh[1]} but its camera image "
                f"{Path(fr.image).name!r} is {image_wh[0]}x{image_wh[1]} (width x height)"
            )
            raise RecordingError(message, path=fr.label)
