"""Vectorised ray casting against the world's boxes and ground plane.

Camera and lidar share this code, so the image, its ground truth and the scan come from
one geometry. All rays of one call start at one origin (the sensor); a ray is
``origin + t * dir`` and a hit keeps the smallest ``t``. Boxes are upright, so a ray is
brought into a box's frame by one rotation about z and tested with the slab method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivingseg.sensors.synthetic.boxes import BoxArray

__all__ = ["Hits", "box_corners", "cast", "intersect_box", "to_box_frame", "transform"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GROUND_HIT = -2
NO_HIT = -1

_CORNER_SIGNS = np.array(
    [[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)]
)


def transform(points: FloatArray, R: FloatArray, t: FloatArray | None = None) -> FloatArray:
    """``points @ R.T + t`` for (..., 3) arrays without BLAS.

    OpenBLAS threads spin on these thin products and starve parallel renderers; einsum's
    own loop is as fast here and stays on one core.
    """
    out = np.einsum("...j,ij->...i", points, R)
    return out if t is None else out + t


def box_corners(boxes: BoxArray) -> FloatArray:
    """World corners of every box, shape (N, 8, 3)."""
    local = boxes.half[:, None, :] * _CORNER_SIGNS[None, :, :]
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes.center[:, None, :]


def to_box_frame(points: FloatArray, boxes: BoxArray, ids: IntArray) -> FloatArray:
    """World points (M, 3) into the frames of boxes ``ids`` (M,), one box per point."""
    d = points - boxes.center[ids]
    c, s = np.cos(boxes.yaw)[ids], np.sin(boxes.yaw)[ids]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)


def intersect_box(
    origin: FloatArray,
    dirs: FloatArray,
    center: FloatArray,
    half: FloatArray,
    yaw: float,
    t_min: float,
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Entry ``t`` (inf on a miss) and entry face (``2 * axis + (normal > 0)``) of rays.

    ``dirs`` is (M, 3); hits nearer than ``t_min`` are misses (the sensor is never
    inside a box).
    """
    c, s = np.cos(yaw), np.sin(yaw)
    ox, oy, oz = origin - center
    o = (c * ox + s * oy, -s * ox + c * oy, oz)
    d = (c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1], dirs[:, 2])
    lo: list[FloatArray] = []
    hi: list[FloatArray] = []
    for k in range(3):
        inv = 1.0 / np.where(d[k] == 0.0, 1e-12, d[k])
        t1 = (-half[k] - o[k]) * inv
        t2 = (half[k] - o[k]) * inv
        lo.append(np.minimum(t1, t2))
        hi.append(np.maximum(t1, t2))
    t_near = np.maximum(np.maximum(lo[0], lo[1]), lo[2])
    t_far = np.minimum(np.minimum(hi[0], hi[1]), hi[2])
    hit = (t_near <= t_far) & (t_near > t_min)
    axis = np.where(lo[0] == t_near, 0, np.where(lo[1] == t_near, 1, 2))
    d_axis = np.where(axis == 0, d[0], np.where(axis == 1, d[1], d[2]))
    face = (2 * axis + (d_axis < 0.0)).astype(np.int8)
    return np.where(hit, t_near, np.inf), face


@dataclass
class Hits:
    """Per-ray result: ``t`` (inf: none), box index (or GROUND_HIT / NO_HIT) and face."""

    t: FloatArray
    box: IntArray
    face: npt.NDArray[np.int8]


RoiFn = Callable[[int], IntArray | None]
"""Maps a box index to the flat indices of the rays that may hit it (None: none)."""


def cast(
    origin: FloatArray,
    dirs: FloatArray,
    boxes: BoxArray,
    candidates: IntArray,
    roi: RoiFn,
    t_min: float,
    t_max: float,
) -> Hits:
    """Cast rays ``dirs`` (M, 3, world frame) from ``origin`` against boxes and ground z = 0.

    Only boxes in ``candidates`` are tested, each against the rays ``roi(box)`` returns.
    The ground is hit by rays pointing down, at ``t = -origin_z / dir_z``, when nearer
    than every box and than ``t_max``.
    """
    n = dirs.shape[0]
    best_t = np.full(n, np.inf)
    best_box = np.full(n, NO_HIT, dtype=np.int64)
    best_face = np.zeros(n, dtype=np.int8)
    for b in candidates:
        idx = roi(int(b))
        if idx is None or idx.size == 0:
            continue
        t, face = intersect_box(
            origin, dirs[idx], boxes.center[b], boxes.half[b], float(boxes.yaw[b]), t_min
        )
        closer = t < best_t[idx]
        sel = idx[closer]
        best_t[sel] = t[closer]
        best_box[sel] = b
        best_face[sel] = face[closer]
    dz = dirs[:, 2]
    with np.errstate(divide="ignore"):
        t_ground = np.where(dz < 0.0, -origin[2] / np.where(dz < 0.0, dz, -1.0), np.inf)
    ground = (t_ground < best_t) & (t_ground < t_max)
    best_t[ground] = t_ground[ground]
    best_box[ground] = GROUND_HIT
    best_face[ground] = 5
    far = best_t > t_max
    best_t[far] = np.inf
    best_box[far] = NO_HIT
    return Hits(best_t, best_box, best_face)
