"""Masks and a node publishing masks with boxes, for the output node tests (mask PNGs, live
view, video writer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from drivingseg.node.detection import DETECTIONS_TOPIC
from drivingseg.node.messages import Detection, Detections, Mask, Timing
from drivingseg.node.runtime import Node
from drivingseg.sensors.frames import CameraFrame


def mask(stamp_ns: int, class_ids: np.ndarray) -> Mask:
    h, w = class_ids.shape
    frame = CameraFrame(stamp_ns, np.zeros((h, w, 3), np.uint8))
    classes = tuple(f"class{i}" for i in range(int(class_ids.max()) + 1))
    return Mask(frame, class_ids, classes, Timing(stamp_ns, 0, 0), 0)


class MaskAndBoxes(Node):
    """Publishes three empty masks and, after each, one box of its frame."""

    type_name = "mask_and_boxes"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks = self.create_publisher("/segmentation/mask", Mask)
        self.boxes = self.create_publisher(DETECTIONS_TOPIC, Detections)

    def run(self) -> None:
        for k in range(3):
            self.masks.publish(mask(k, np.zeros((40, 60), np.uint8)))
            box = Detection("car", 0.9, (10.0, 10.0, 30.0, 30.0))
            self.boxes.publish(Detections((box,), Timing(k, 0, 0)))
