"""Z-buffer: where several points land on one pixel, the nearest wins.

Ties (equal depth on one pixel) go to the lowest point index, so results never depend
on thread scheduling or sort stability. Two scatter-min passes do the work
(``np.minimum.at`` / ``torch.scatter_reduce_('amin')``): the first finds each pixel's
nearest depth, the second the lowest index among the points at that depth. Scratch
memory is touched only at the pixels that receive points, so the cost grows with the
number of points, not with the image size; the scratch buffers are kept per thread and
reused, because a fresh multi-megabyte buffer costs more in page faults than the work.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError
from drivingseg.fusion._backend import Array, backend_of
from drivingseg.fusion.projection import (
    DEFAULT_MIN_DEPTH_M,
    check_rig,
    scale_rig,
    visible_points,
)

__all__ = ["depth_image", "zbuffer"]


def zbuffer(rows: Array, cols: Array, depth_m: Array, width: int, height: int) -> Array:
    """Indices (ascending) of the points that win their pixel: nearest, then lowest index.

    ``rows``/``cols`` are int64 pixel indices inside a ``width`` x ``height`` image,
    ``depth_m`` the depths; all three numpy or all three torch, of equal length.
    """
    n = int(depth_m.shape[0])
    if int(rows.shape[0]) != n or int(cols.shape[0]) != n:
        message = (
            f"rows, cols and depth_m must have equal length, got {int(rows.shape[0])}, "
            f"{int(cols.shape[0])} and {n}"
        )
        raise ConfigError(message)
    be = backend_of(depth_m)
    if n == 0:
        return be.nonzero(be.full(0, 0.0, "bool"))
    pixel = rows * width + cols
    depth = be.asarray(depth_m, "float64")
    nearest = be.scratch(width * height, "float64", 0)
    nearest[pixel] = math.inf
    be.minimum_at(nearest, pixel, depth)
    cand = be.nonzero(depth == nearest[pixel])
    cand_pixel = pixel[cand]
    first = be.scratch(width * height, "int64", 1)
    first[cand_pixel] = n
    be.minimum_at(first, cand_pixel, cand)
    return cand[first[cand_pixel] == cand]


def depth_image(
    points: Any,
    rig: Rig,
    *,
    width: int | None = None,
    height: int | None = None,
    min_depth_m: float = DEFAULT_MIN_DEPTH_M,
) -> npt.NDArray[np.float32]:
    """Sparse float32 depth image (metres, 0 = no point) of a scan at any resolution.

    Without ``width``/``height`` the calibrated size is used; otherwise the intrinsics
    are scaled (:func:`~drivingseg.fusion.projection.scale_rig`). Torch input is
    computed on its device; the image is returned as numpy either way.
    """
    check_rig(rig)
    target = scale_rig(rig, rig.camera.width if width is None else width,
                       rig.camera.height if height is None else height)
    w, h = target.camera.width, target.camera.height  # 187.5 rows refused, not cut to 187
    _, rows, cols, depth, _ = visible_points(points, target, min_depth_m=min_depth_m)
    be = backend_of(depth)
    win = zbuffer(rows, cols, depth, w, h)
    out = np.zeros(w * h, dtype=np.float32)
    pixel = be.to_numpy(rows[win] * w + cols[win])
    out[pixel] = be.to_numpy(depth[win])
    return out.reshape(h, w)
