"""Output nodes: mask PNGs and the live window (the overlay video is in
:mod:`drivingseg.node.video_writer`, the MCAP recorder in :mod:`drivingseg.node.recorder`).

The video writer and the live window draw each frame's boxes on its overlay. Detections
come after their mask, so both pair them by stamp
(:class:`~drivingseg.node.detection.StampPairer`, at most ``max_pending`` masks held).
Output nodes listen to ``/detections/cars`` only when some node publishes it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.fusion.overlay import write_image_atomic
from drivingseg.node.detection import (
    DETECTIONS_TOPIC,
    StampPairer,
    draw_detections,
)
from drivingseg.node.messages import Detections, Mask
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node, Subscription

__all__ = [
    "PALETTE_RGB",
    "LiveView",
    "MaskWriter",
    "OverlayOutput",
    "colourise",
]

log = logging.getLogger(__name__)

PALETTE_RGB = np.array([[0, 0, 0], [255, 0, 255], [0, 160, 255]], dtype=np.uint8)
"""Overlay colour per class id: background (not drawn), road magenta, car blue."""

_PALETTE_LUT = PALETTE_RGB[np.minimum(np.arange(256), len(PALETTE_RGB) - 1)][:, None, :]
"""``PALETTE_RGB`` as a 256 x 1 x 3 OpenCV lookup table (ids past the palette: its last)."""


def colourise(image_rgb: npt.NDArray[np.uint8], class_ids: npt.NDArray[np.uint8],
              alpha: float = 0.5) -> npt.NDArray[np.uint8]:
    """The image with road and car pixels blended with their palette colour (RGB).

    OpenCV throughout (a lookup table for the colours, a masked copy for the blend): numpy's
    per-pixel palette gather and boolean-mask assignment took ~55 ms of a 1920 x 1200 frame
    on 2 cores, twice a frame (recorder and video), this ~7 ms, the same pixels
    (``benchmarks/bench_big_sensor.py``)."""
    ids = np.asarray(class_ids)
    if ids.dtype != np.uint8:  # ids past the palette keep their colour, past 255 too
        ids = np.clip(ids, 0, 255).astype(np.uint8)
    ids = np.ascontiguousarray(ids)
    colours = cv2.LUT(cv2.merge([ids, ids, ids]), _PALETTE_LUT)
    blended = cv2.addWeighted(image_rgb, 1.0 - alpha, colours, alpha, 0.0)
    out = np.array(image_rgb, dtype=np.uint8, order="C")
    return np.asarray(cv2.copyTo(blended, ids, out), dtype=np.uint8)


def _drop_if_unpublished(node: Node, sub: Subscription[Any] | None) -> bool:
    """Forget ``sub`` when no node publishes its topic (no warning, no waiting); True if kept."""
    if sub is None:
        return False
    if sub.topic.publishers:
        return True
    sub.topic.subscriptions.remove(sub)
    node.subscriptions.remove(sub)
    log.info("%s: nothing publishes %s; no boxes", node.name, sub.topic.name)
    return False


def _out_path(node: Node, param: str) -> Path:
    value = node.p[param]
    if not value:
        raise node.config_error("no output path given", param)
    return Path(value)


def _utf8(name: str) -> bool:
    """Whether ``name`` encodes as UTF-8 (not so: a Latin-1 byte read as a surrogate)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_MASK_PNG = re.compile(r"(0|[1-9][0-9]*)\.png")
"""The names :class:`MaskWriter` gives its PNGs (``<stamp_ns>.png``, no leading zeros, so
KITTI's ``0000000000.png`` frames never match)."""


class MaskWriter(Node):
    """Writes each mask as a PNG named by its sensor stamp: ``<stamp_ns>.png``.

    By default the PNG holds the class ids (0, 1, 2) as grey values; ``colour`` writes the
    palette colours instead. When the graph starts, the mask PNGs of an earlier run in
    ``dir`` are removed (only names of that form), so the folder holds this run's masks
    only, as the MCAP and the video do: a second drive replayed into the same folder mixed
    its masks with the first one's.
    """

    type_name = "mask_writer"
    description = "per-frame mask PNGs"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("dir", str, "", "folder for the PNGs"),
        Param("colour", bool, False, "palette colours instead of class ids"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, self.on_mask)
        self.written = 0

    def setup(self) -> None:
        path = _out_path(self, "dir")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.config_error(f"cannot create {str(path)!r}: {exc.strerror}", "dir") from exc

    def open_outputs(self) -> None:
        """Remove an earlier run's mask PNGs, only now that every node is ready (a graph
        that fails to start leaves them as they were)."""
        folder = Path(self.p["dir"])
        removed = 0
        try:
            for entry in folder.iterdir():
                if _MASK_PNG.fullmatch(entry.name) and entry.is_file():
                    entry.unlink()
                    removed += 1
        except OSError as exc:
            message = f"cannot remove the earlier masks in {str(folder)!r}: {exc.strerror}"
            raise self.config_error(message, "dir") from exc
        if removed:
            log.info("%s: removed %d mask PNGs of an earlier run from %s", self.name, removed,
                     folder)

    def on_mask(self, msg: Mask) -> None:
        ids = msg.class_ids
        image = (PALETTE_RGB[np.minimum(ids, len(PALETTE_RGB) - 1)][:, :, ::-1]
                 if self.p["colour"] else ids)
        write_image_atomic(Path(self.p["dir"]) / f"{msg.stamp_ns}.png", np.ascontiguousarray(image))
        self.written += 1


_PAIRING_PARAMS = (
    Param("boxes", bool, True, "draw the boxes of /detections/cars (when published)"),
    Param("max_pending", int, 4, "masks held while waiting for their detections", "messages",
          min=1, max=100),
)


class OverlayOutput(Node):
    """Base of the overlay outputs: masks paired with their frame's detections by stamp."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pairer = StampPairer(self.p["max_pending"])
        self.det_sub: Subscription[Detections] | None = None
        self.left_waiting = 0
        """Masks held for their detections when the node ended (see deactivate)."""

    def subscribe(self, mask_depth: int | None = None, detections_depth: int | None = None,
                  overflow: str | None = None) -> None:
        """Subscribe to the masks and (``boxes``) the detections; subclasses call it
        (a depth of ``None`` is the node's ``qos_depth``)."""
        self.create_subscription("/segmentation/mask", Mask, self.on_mask, depth=mask_depth,
                                 overflow=overflow)
        self.det_sub = (self.create_subscription(DETECTIONS_TOPIC, Detections,
                                                 self.on_detections, depth=detections_depth,
                                                 overflow=overflow)
                        if self.p["boxes"] else None)

    def setup(self) -> None:
        self.pairer.wait = _drop_if_unpublished(self, self.det_sub)

    def on_mask(self, msg: Mask) -> None:
        for mask, dets in self.pairer.add_mask(msg):
            self.show(mask, dets)

    def on_detections(self, msg: Detections) -> None:
        for mask, dets in self.pairer.add_detections(msg):
            self.show(mask, dets)

    def on_inputs_closed(self) -> None:
        for mask, dets in self.pairer.flush():
            self.show(mask, dets)

    def deactivate(self) -> None:
        """Count the masks still waiting for their detections when the node ended without
        flushing (an aborted run, a failure): they never reach the output."""
        self.left_waiting = self.pairer.pending_masks
        super().deactivate()

    def losses(self) -> dict[str, dict[str, int]]:
        out = super().losses()
        where = f"{self.name}: waiting for its detections when the node ended"
        out.setdefault(Mask.lost_as, {})[where] = self.left_waiting
        return out

    def overlay_bgr(self, mask: Mask, dets: Detections | None) -> npt.NDArray[np.uint8]:
        """The colourised mask with the boxes drawn on it, BGR for OpenCV."""
        rgb = draw_detections(colourise(mask.frame.image, mask.class_ids), dets)
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)

    def show(self, mask: Mask, dets: Detections | None) -> None:
        """Output one frame."""
        raise NotImplementedError


def display_available() -> bool:
    """Whether a window can open: a DISPLAY/WAYLAND_DISPLAY on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class LiveView(OverlayOutput):
    """Shows the overlay, with boxes, in an OpenCV window when a display exists; otherwise
    does nothing. It shows only the newest mask (queue depth 1, no ``qos_depth``, always
    ``drop_oldest``): the masks it skips are not lost frames, and it never holds the
    pipeline back, not even when the graph's queues block (``--fast``). Its detections
    queue keeps ``max_pending`` messages (as many as masks wait for), also ``drop_oldest``."""

    type_name = "live_view"
    common_parameters: ClassVar[tuple[Param, ...]] = ()
    description = "live window (cv2.imshow) of the overlay (with detection boxes)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("window", str, "drivingseg", "window title"),
        Param("scale", float, 1.0, "window size relative to the image", "x", min=0.1,
              max=8.0),
        *_PAIRING_PARAMS,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enabled = display_available()
        if self.enabled:
            self.subscribe(mask_depth=1, detections_depth=self.p["max_pending"],
                           overflow="drop_oldest")

    def open_outputs(self) -> None:
        """Say that the window is off only once the graph starts: a graph that fails to
        start printed this warning above its one-line error."""
        if not self.enabled:
            log.warning("%s: no display (DISPLAY is not set); the live window is off", self.name)

    def show(self, mask: Mask, dets: Detections | None) -> None:
        bgr: npt.NDArray[Any] = self.overlay_bgr(mask, dets)
        if self.p["scale"] != 1.0:
            bgr = cv2.resize(bgr, None, fx=self.p["scale"], fy=self.p["scale"])
        cv2.imshow(self.p["window"], bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.context.graph.stop()

    @property
    def skipped(self) -> int:
        """Messages the window skipped to show the newest (not lost frames)."""
        return sum(sub.dropped for sub in self.subscriptions)

    def drops(self) -> dict[str, int]:
        """None: a window shows the newest mask; those it skips are :attr:`skipped`."""
        return {}

    def losses(self) -> dict[str, dict[str, int]]:
        """None either: the masks and detections it skips are :attr:`skipped`."""
        return {}

    def after_run(self) -> None:
        if self.enabled:
            log.info("%s: showed the newest mask; skipped %d messages", self.name, self.skipped)

    def shutdown(self) -> None:
        if self.enabled:
            cv2.destroyAllWindows()
