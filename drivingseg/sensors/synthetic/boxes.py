"""Upright oriented boxes as arrays: what every solid object of the synthetic world is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BoxArray", "box_footprints"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class BoxArray:
    """Upright oriented boxes as arrays: centre, half size, yaw, class, material, colour.

    ``obj`` is the car id for car parts and a texture id for the rest (-1 - index).
    """

    center: FloatArray
    half: FloatArray
    yaw: FloatArray
    label: npt.NDArray[np.uint8]
    material: IntArray
    colour: FloatArray
    obj: IntArray

    def __len__(self) -> int:
        return int(self.yaw.shape[0])

    @staticmethod
    def concat(parts: list[BoxArray]) -> BoxArray:
        return BoxArray(*(np.concatenate([getattr(p, f) for p in parts]) for f in _BOX_FIELDS))

    def subset(self, idx: IntArray | npt.NDArray[np.bool_]) -> BoxArray:
        return BoxArray(*(getattr(self, f)[idx] for f in _BOX_FIELDS))


def box_footprints(boxes: BoxArray) -> FloatArray:
    """World xy of the 4 ground corners of every box, shape (N, 4, 2)."""
    sx = np.array([-1.0, 1.0, 1.0, -1.0])
    sy = np.array([-1.0, -1.0, 1.0, 1.0])
    hx, hy = boxes.half[:, 0:1] * sx, boxes.half[:, 1:2] * sy
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    x = boxes.center[:, 0:1] + c * hx - s * hy
    y = boxes.center[:, 1:2] + s * hx + c * hy
    return np.stack([x, y], axis=-1)


_BOX_FIELDS = ("center", "half", "yaw", "label", "material", "colour", "obj")
