"""Region proposals on the node graph, and what outputs need to show them.

:class:`ProposalNode` turns each mask into car boxes with
:func:`drivingseg.detect.proposals.propose_regions` (connected car blobs, split where the
lidar range jumps, with the range of the lidar points inside) and publishes them as
:class:`Detections` on ``/detections/cars``. It reuses what the mask carries (car
probability, lidar scan, rig), so it copies nothing; the lidar is projected at the mask's
frame size (the rig scaled to it), whatever size the rig was calibrated for.

Latency: a ``Detections`` message carries its mask's timing plus ``publish`` (the mask's
delivery to this node) and ``proposals`` (this node's work), see
:data:`~drivingseg.node.messages.DETECTION_STAGES`. The latency tracker keeps measuring
masks only: proposals run beside the other mask consumers and do not delay a mask. This
node keeps its own figures, bounded for runs of any length: the last
:data:`~drivingseg.node.latency.RECENT_FRAMES` frames (``frames``), running counts, and
every frame's milliseconds as compact float64 columns (``samples``, 16 bytes a frame), whose
exact percentiles it logs at the end.

:class:`StampPairer` pairs masks with the detections of the same camera stamp for the
overlay outputs; detections come after their mask, so masks wait in a small bounded
buffer. :func:`draw_detections` draws boxes and "car 0.87 12.3 m" labels.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

# A module import: drivingseg.detect.proposals imports drivingseg.node.messages, whose
# package imports this module through the registry, so names are looked up at call time.
from drivingseg.detect import proposals
from drivingseg.errors import DrivingsegError
from drivingseg.node.latency import RECENT_FRAMES, SampleColumns, percentiles
from drivingseg.node.messages import Detection, Detections, Mask
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node

__all__ = [
    "BOX_COLOUR_RGB",
    "DETECTIONS_TOPIC",
    "DetectionLatency",
    "ProposalNode",
    "StampPairer",
    "detection_text",
    "draw_detections",
]

log = logging.getLogger(__name__)

DETECTIONS_TOPIC = "/detections/cars"
"""Where the proposals node publishes and the outputs subscribe."""

BOX_COLOUR_RGB = (255, 220, 0)
"""Box and label colour on overlays (yellow: apart from the road and car palette)."""


@dataclass(frozen=True)
class DetectionLatency:
    """One frame's detections: how many, and milliseconds of proposals and end to end."""

    stamp_ns: int
    count: int
    proposals_ms: float
    e2e_ms: float


class ProposalNode(Node):
    """Car region proposals from each mask; publishes ``/detections/cars``.

    Parameters mirror :class:`~drivingseg.detect.proposals.ProposalParams` and are checked
    at start-up (``car_class`` and ``road_class`` against the classes the segmenting node
    announces, or at the first mask when no node in the graph announces them); ``lidar: false``
    ignores the mask's lidar scan (boxes then have no range and blobs are not split).
    """

    type_name = "proposals"
    description = "car region proposals (mask blobs split at lidar depth jumps, with range)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("car_class", int, 2, "class id of cars in the mask", "class id", min=0,
              max=255),
        Param("min_area_px", int, 40, "smallest car blob kept", "px", min=1, max=100_000_000),
        Param("depth_jump_m", float, 3.0, "split a blob where the ranges of lidar points whose "
              "image cells touch jump by more than this (and 10 % of the range)", "m",
              min=0.01, max=1000.0),
        Param("road_class", int, 1, "class id of road in the mask: lidar points near the road "
              "plane fitted to its points are left out of the clusters (-1: keep them)",
              "class id", min=-1, max=255),
        Param("ground_clearance_m", float, 0.3, "lidar points within this height of the road "
              "plane are ground, not car (0: keep them)", "m", min=0.0, max=5.0),
        Param("min_points", int, 3, "lidar points a depth cluster needs (smaller ones are "
              "outliers, left out of the range)", "points", min=1, max=1_000_000),
        Param("label", str, "car", "label of the detections"),
        Param("lidar", bool, True, "use the mask's lidar scan (ranges, depth splits)"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sub = self.create_subscription("/segmentation/mask", Mask, self.on_mask)
        self.pub = self.create_publisher(DETECTIONS_TOPIC, Detections)
        self.params = proposals.ProposalParams()
        self.frames: deque[DetectionLatency] = deque(maxlen=RECENT_FRAMES)
        self.samples = SampleColumns(("proposals", "e2e"))
        self.detections = 0
        self._checked_classes: tuple[str, ...] | None = None

    def setup(self) -> None:
        label = self.p["label"]
        if not label.strip():
            raise self.config_error(f"must not be empty, got {label!r}", "label")
        try:
            self.params = proposals.ProposalParams(
                car_class=self.p["car_class"], min_area_px=self.p["min_area_px"],
                depth_jump_m=self.p["depth_jump_m"], min_points=self.p["min_points"],
                label=label,
                road_class=None if self.p["road_class"] < 0 else self.p["road_class"],
                ground_clearance_m=self.p["ground_clearance_m"])
        except (DrivingsegError, ValueError) as exc:
            raise self.config_error(str(exc)) from exc

    def ready(self) -> None:
        """Check ``car_class`` against the masks' classes once every node is set up."""
        classes = self.context.mask_classes.get(self.sub.topic.name)
        if classes is not None:
            self._check_classes(classes)

    def _check_classes(self, classes: tuple[str, ...]) -> None:
        if classes == self._checked_classes:
            return
        known = ", ".join(f"{i} {c}" for i, c in enumerate(classes))
        for param in ("car_class", "road_class"):  # road_class -1 keeps the ground points
            value = self.p[param]
            if value >= len(classes):
                message = f"{value!r} is not a class of the model's masks ({known})"
                raise self.config_error(message, param)
        self._checked_classes = classes

    def on_mask(self, msg: Mask) -> None:
        received = time.perf_counter_ns()
        self._check_classes(msg.classes)
        # The mask's car probability is the 'car' class's; use it only for that class.
        car_prob = msg.car_prob if msg.classes[self.p["car_class"]] == "car" else None
        lidar = None
        if self.p["lidar"] and msg.scan is not None and msg.rig is not None:
            # Frames need not come at the calibrated size: project at the mask's frame size.
            size = (msg.frame.width, msg.frame.height)
            lidar = proposals.LidarInImage.from_scan(msg.scan.points, msg.rig, size)
        found = proposals.propose_regions(msg.class_ids, car_prob, lidar, self.params)
        now = time.perf_counter_ns()
        timing = msg.timing.with_stage("publish", received - msg.published_ns)
        timing = timing.with_stage("proposals", now - received)
        self.pub.publish(Detections(tuple(found), timing))
        frame = DetectionLatency(
            msg.stamp_ns, len(found), (now - received) / 1e6, (now - timing.available_ns) / 1e6)
        self.frames.append(frame)
        self.samples.append((frame.proposals_ms, frame.e2e_ms))
        self.detections += frame.count

    def latency_ms(self) -> dict[str, dict[str, float | None]]:
        """Percentiles over every frame of the proposals stage and of detections end to end
        (ms; ``None`` before the first frame)."""
        return {name: percentiles(self.samples.column(name)) for name in self.samples.names}

    def after_run(self) -> None:
        if len(self.samples):
            stats = self.latency_ms()
            log.info("%s: %d detections in %d frames; proposals p50 %.1f p95 %.1f ms, "
                     "detections end to end p50 %.1f p95 %.1f ms", self.name,
                     self.detections, len(self.samples),
                     stats["proposals"]["p50"], stats["proposals"]["p95"],
                     stats["e2e"]["p50"], stats["e2e"]["p95"])


class StampPairer:
    """Pairs each mask with the detections of its camera stamp, in mask order.

    Detections arrive after their mask, so a mask waits until they come; at most
    ``max_pending`` masks wait (the oldest then goes out without boxes), detections of a
    mask that already went out are discarded, and at most ``max_pending`` early detections
    are held. With ``wait=False`` (nobody publishes detections) masks go out at once.
    """

    def __init__(self, max_pending: int, *, wait: bool = True) -> None:
        self.max_pending = max(1, int(max_pending))
        self.wait = wait
        self.unpaired = 0
        """Masks that went out without their detections."""
        self._masks: OrderedDict[int, Mask] = OrderedDict()
        self._detections: OrderedDict[int, Detections] = OrderedDict()
        self._last_out_ns: int | None = None

    def __len__(self) -> int:
        """Messages held (masks and detections)."""
        return len(self._masks) + len(self._detections)

    @property
    def pending_masks(self) -> int:
        """Masks held waiting for their detections (0 after :meth:`flush`)."""
        return len(self._masks)

    def _emit_until(self, stamp_ns: int, out: list[tuple[Mask, Detections | None]]) -> None:
        """Send every held mask up to ``stamp_ns`` (with its detections when held)."""
        while self._masks and next(iter(self._masks)) <= stamp_ns:
            stamp, mask = self._masks.popitem(last=False)
            dets = self._detections.pop(stamp, None)
            self.unpaired += dets is None
            out.append((mask, dets))
            self._last_out_ns = stamp
        last = self._last_out_ns
        if last is not None:
            for stamp in [s for s in self._detections if s <= last]:
                del self._detections[stamp]

    def add_mask(self, mask: Mask) -> list[tuple[Mask, Detections | None]]:
        """Hold ``mask``; return the pairs that are complete (or pushed out) now."""
        if not self.wait:
            return [(mask, None)]
        out: list[tuple[Mask, Detections | None]] = []
        stamp = mask.stamp_ns
        self._masks[stamp] = mask
        if stamp in self._detections:
            self._emit_until(stamp, out)
        while len(self._masks) > self.max_pending:
            self._emit_until(next(iter(self._masks)), out)
        return out

    def add_detections(self, dets: Detections) -> list[tuple[Mask, Detections | None]]:
        """Hold ``dets``; return the pairs that are complete now.

        Detections come in stamp order, so masks older than ``dets`` that still wait lost
        theirs upstream (dropped under load) and go out without boxes.
        """
        out: list[tuple[Mask, Detections | None]] = []
        stamp = dets.stamp_ns
        if self._last_out_ns is not None and stamp <= self._last_out_ns:
            return out
        self._detections[stamp] = dets
        while len(self._detections) > self.max_pending:
            self._detections.popitem(last=False)
        self._emit_until(stamp, out)
        return out

    def flush(self) -> list[tuple[Mask, Detections | None]]:
        """Everything still held (end of the inputs)."""
        out: list[tuple[Mask, Detections | None]] = []
        if self._masks:
            self._emit_until(next(reversed(self._masks)), out)
        self._detections.clear()
        return out


def detection_text(det: Detection) -> str:
    """``"car 0.87 12.3 m"``, or ``"car 0.87"`` without a range."""
    text = f"{det.label} {det.score:.2f}"
    return text if det.range_m is None else f"{text} {det.range_m:.1f} m"


def draw_detections(image_rgb: npt.NDArray[np.uint8], detections: Detections | None,
                    colour_rgb: tuple[int, int, int] = BOX_COLOUR_RGB) -> npt.NDArray[np.uint8]:
    """Draw each box (its pixels inclusive: right/bottom edges are exclusive in the message)
    and its label into ``image_rgb`` (in place, which must be the caller's own copy)."""
    if detections is None:
        return image_rgb
    h, w = image_rgb.shape[:2]
    scale = max(0.4, h / 800.0)
    for det in detections.detections:
        x1, y1, x2, y2 = (round(v) for v in det.box_xyxy_px)
        x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
        x2, y2 = min(max(x2 - 1, x1), w - 1), min(max(y2 - 1, y1), h - 1)
        cv2.rectangle(image_rgb, (x1, y1), (x2, y2), colour_rgb, 2)
        text = detection_text(det)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 3 if y1 - th - base - 3 >= 0 else min(h - 1, y2 + th + 3)
        cv2.rectangle(image_rgb, (x1, ty - th - 2), (min(w - 1, x1 + tw + 2), ty + base - 1),
                      colour_rgb, -1)
        cv2.putText(image_rgb, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return image_rgb
