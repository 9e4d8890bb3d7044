"""The gallery section of the report page: the worst frames' panels, embedded as JPEG.

Apart from :mod:`drivingseg.report.html` because it alone handles images: each panel is
checked, scaled down to the panel width and encoded (JPEG: photo panels are about five
times smaller than PNG), and a gallery left empty says why. The panels themselves are
drawn by :mod:`drivingseg.report.gallery`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.errors import ConfigError
from drivingseg.report.html_cells import _absent, _box_only_all_found, _img, _section

__all__ = ["GalleryItem", "gallery_section"]

_PANEL_MAX_WIDTH_PX = 480
_PANEL_JPEG_QUALITY = 85


@dataclass(frozen=True)
class GalleryItem:
    """One worst frame: a title and its panels (caption, RGB ``H x W x 3`` uint8 image)."""

    title: str
    panels: tuple[tuple[str, npt.NDArray[np.uint8]], ...]


def _panel_jpeg(caption: str, image: npt.NDArray[np.uint8]) -> bytes:
    """Encode one gallery panel as JPEG, scaled down to at most the panel width."""
    array: npt.NDArray[Any] = np.asarray(image)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    ):
        message = (
            f"gallery panel {caption!r} must be an RGB H x W x 3 uint8 image, got "
            f"shape {array.shape!r} dtype {str(array.dtype)!r}"
        )
        raise ConfigError(message)
    height, width = array.shape[:2]
    if width > _PANEL_MAX_WIDTH_PX:
        size = (_PANEL_MAX_WIDTH_PX, max(1, round(height * _PANEL_MAX_WIDTH_PX / width)))
        array = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    if array.ndim == 3:
        array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, _PANEL_JPEG_QUALITY])
    if not ok:
        raise ConfigError(f"cannot encode gallery panel {caption!r} as JPEG")
    return bytes(buffer.tobytes())


def gallery_section(report: Mapping[str, Any], gallery: Sequence[GalleryItem]) -> str:
    """The "Worst frames" section: ``gallery``'s panels, or why there are none."""
    if not gallery:
        reasons = [
            f"{escape(str(g.get('frame', '')))}: {escape(str(g.get('reason', '')))}"
            for g in report.get("gallery") or []
        ]
        if reasons:
            return _section("gallery", "Worst frames", "<ul><li>" + "</li><li>".join(reasons)
                            + "</li></ul>")
        if report.get("gallery_k") == 0:
            why = "No gallery: it was turned off (--gallery 0)."
        elif not report.get("frames"):
            why = "No gallery: no frame was scored (see Failures)."
        elif _box_only_all_found(report.get("frames") or []):
            n = sum(1 for f in report.get("frames") or [] if f.get("n_gt_boxes") is not None)
            why = (f"No gallery: no frame has per-pixel labels to rank by, and no ground-truth "
                   f"box was missed on the {n:,} frames with label_2 boxes.")
        else:
            why = "No gallery: no frame had ground truth to rank frames by."
        return _section("gallery", "Worst frames", _absent(why))
    items = []
    for item in gallery:
        panels = "".join(
            f"<figure>{_img(_panel_jpeg(caption, image), caption, 'image/jpeg')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>"
            for caption, image in item.panels
        )
        items.append(f'<div class="item"><h3>{escape(item.title)}</h3>'
                     f'<div class="panels">{panels}</div></div>')
    return _section("gallery", "Worst frames", "".join(items))
