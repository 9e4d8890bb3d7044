"""Output nodes alone: mask PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from drivingseg.node.graph import Graph
from drivingseg.node.messages import Mask, Timing
from drivingseg.node.outputs import PALETTE_RGB, MaskWriter
from drivingseg.sensors.frames import CameraFrame


def mask(stamp_ns: int, class_ids: np.ndarray) -> Mask:
    h, w = class_ids.shape
    frame = CameraFrame(stamp_ns, np.zeros((h, w, 3), np.uint8))
    classes = tuple(f"class{i}" for i in range(int(class_ids.max()) + 1))
    return Mask(frame, class_ids, classes, Timing(stamp_ns, 0, 0), 0)


def test_colour_mask_pngs_of_a_model_with_more_classes_than_the_palette(tmp_path: Path) -> None:
    """Class ids past the palette used to raise IndexError and stop the graph; they take
    the palette's last colour, as on the overlays (``colourise``)."""
    writer = Graph().add(MaskWriter, "masks", {"dir": str(tmp_path), "colour": True})
    writer.setup()
    ids = np.array([[0, 1, 2, 3, 4]], np.uint8)
    writer.on_mask(mask(42, ids))
    png = cv2.imread(str(tmp_path / "42.png"), cv2.IMREAD_UNCHANGED)
    rgb = np.asarray(png)[:, :, ::-1]
    assert rgb.tolist() == [[*PALETTE_RGB.tolist(), PALETTE_RGB[-1].tolist(),
                             PALETTE_RGB[-1].tolist()]]


def test_class_id_mask_pngs_hold_the_ids(tmp_path: Path) -> None:
    writer = Graph().add(MaskWriter, "masks", {"dir": str(tmp_path)})
    writer.setup()
    ids = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    writer.on_mask(mask(7, ids))
    png = cv2.imread(str(tmp_path / "7.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and np.array_equal(png, ids)
