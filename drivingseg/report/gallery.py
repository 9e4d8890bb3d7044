"""Gallery panels of the worst frames: image, ground truth, prediction and error map.

Segmentation frames get four panels: the camera image, the ground truth and the
prediction in class colours (ignored pixels black), and an error map: the image dimmed
and tinted green where the prediction is right, red where it is wrong, grey where the
label says ignore. Box-only frames get the image with ground-truth boxes (green, ignored
ones grey) and predicted boxes (orange) labelled with score and range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError
from drivingseg.model.config import IGNORE_INDEX
from drivingseg.model.data import LabelledFile, read_labels
from drivingseg.model.evaluate import ROAD
from drivingseg.report.aggregate import GalleryPick
from drivingseg.report.inputs import ReportInput
from drivingseg.sensors.decode import read_image_rgb

if TYPE_CHECKING:
    from drivingseg.report.html_gallery import GalleryItem

__all__ = ["CLASS_COLOURS", "box_panel", "colourise", "error_map", "gallery_items"]

Image = npt.NDArray[np.uint8]

CLASS_COLOURS = np.zeros((256, 3), dtype=np.uint8)
CLASS_COLOURS[0] = (70, 70, 70)  # background
CLASS_COLOURS[1] = (128, 64, 128)  # road
CLASS_COLOURS[2] = (0, 60, 230)  # car
CLASS_COLOURS[IGNORE_INDEX] = (0, 0, 0)
MAX_WIDTH_PX = 640
_GREEN = np.array((40, 200, 60), dtype=np.float32)
_RED = np.array((230, 30, 30), dtype=np.float32)
_GREY = np.array((128, 128, 128), dtype=np.uint8)


def colourise(ids: npt.NDArray[np.uint8]) -> Image:
    """Class ids (0 background, 1 road, 2 car, 255 ignore) as an RGB image."""
    return np.asarray(CLASS_COLOURS[ids], dtype=np.uint8)


def error_map(image: Image, labels: npt.NDArray[np.uint8], pred: npt.NDArray[np.uint8]) -> Image:
    """Right green-ish, wrong red, ignored grey, over the dimmed image."""
    base = image.astype(np.float32) * 0.35
    right = (labels == pred) & (labels != IGNORE_INDEX)
    wrong = (labels != pred) & (labels != IGNORE_INDEX)
    out = base.copy()
    out[right] = base[right] + 0.5 * _GREEN
    out[wrong] = base[wrong] * 0.3 + 0.8 * _RED
    result = np.clip(out, 0, 255).astype(np.uint8)
    result[labels == IGNORE_INDEX] = _GREY
    return result


def _text(img: Image, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def box_panel(image: Image, gt: Sequence[Any], detections: Sequence[Any]) -> Image:
    """The image with ground-truth boxes and predicted boxes (score, range)."""
    out = np.ascontiguousarray(image.copy())
    for box in gt:
        x1, y1, x2, y2 = (round(v) for v in box.box_xyxy_px)
        colour = (150, 150, 150) if getattr(box, "ignore", False) else (40, 220, 60)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box_xyxy_px)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), (255, 150, 0), 2)
        rng = "" if det.range_m is None else f" {det.range_m:.0f} m"
        _text(out, f"{det.score:.2f}{rng}", (x1, max(12, y1 - 4)), (255, 200, 80))
    return out


def _shrink(img: Image, nearest: bool) -> Image:
    h, w = img.shape[:2]
    if w <= MAX_WIDTH_PX:
        return img
    size = (MAX_WIDTH_PX, max(1, round(h * MAX_WIDTH_PX / w)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)


def _panels(spec: ReportInput, pick: GalleryPick) -> tuple[tuple[str, Image], ...]:
    frame = pick.frame
    ref = spec.frames[frame.index]
    image = read_image_rgb(frame.image)
    decoded = cv2.imdecode(np.frombuffer(frame.mask_png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise RecordingError("cannot decode the stored prediction mask", path=frame.image)
    pred: npt.NDArray[np.uint8] = np.asarray(decoded, dtype=np.uint8)
    panels: list[tuple[str, Image, bool]] = [("image", image, False)]
    if ref.label is not None:
        labels = read_labels(LabelledFile(Path(ref.image), Path(ref.label), ref.layout or ""))
        scored = np.asarray(pred == ROAD, dtype=np.uint8) if spec.road_only else pred
        panels += [("ground truth", colourise(labels), True),
                   ("prediction", colourise(pred), True),
                   ("errors (green right, red wrong, grey ignored)",
                    error_map(image, labels, scored), False)]
    else:
        panels.append(("prediction", colourise(pred), True))
    if frame.match is not None:
        panels.append(("boxes: ground truth green, don't care grey, predicted orange "
                       "(score, range)",
                       box_panel(image, frame.gt_boxes, frame.detections), False))
    return tuple((caption, _shrink(img, nearest)) for caption, img, nearest in panels)


def gallery_items(specs: Sequence[ReportInput], picks: Sequence[GalleryPick]) -> list[GalleryItem]:
    """One :class:`~drivingseg.report.html_gallery.GalleryItem` per pick, in order."""
    from drivingseg.report.html_gallery import GalleryItem

    items = []
    for pick in picks:
        spec = specs[pick.frame.input]
        title = (f"{pick.frame.name} (input {spec.index}, {spec.kind} {Path(spec.path).name}):"
                 f" {pick.reason}")
        items.append(GalleryItem(title=title, panels=_panels(spec, pick)))
    return items
