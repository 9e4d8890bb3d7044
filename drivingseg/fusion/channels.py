"""Lidar image channels at any resolution: depth, height above ground, intensity, validity.

Every channel is an H x W float32 image built from the same z-buffer winners (the
nearest point of each pixel), so the intensity and height of a pixel belong to the point
whose depth it shows. Pixels without a point are 0 and ``valid`` is 0 there. A target
resolution other than the calibrated one scales the intrinsics, never the sparse image.

With ``densify=True`` the depth channel is filled with IP-Basic's fast morphological
completion (Ku, Harakeh, Waslander, "In Defense of Classical Image Processing: Fast
Depth Completion on the CPU", CRV 2018), done with OpenCV: depths are inverted so that
max-filters prefer near points, then dilated with a 5x5 diamond, closed with a 5x5
square, small holes filled by a 7x7 dilation and large ones by a 31x31 one, smoothed by
a 5x5 median and a 5x5 Gaussian blur, and inverted back. ``valid`` still marks the
measured pixels only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.fusion._backend import backend_of
from drivingseg.fusion.ground import GroundPlane, as_ground_plane, fit_ground_plane
from drivingseg.fusion.projection import (
    DEFAULT_MIN_DEPTH_M,
    check_rig,
    scale_rig,
    visible_points,
)
from drivingseg.fusion.zbuffer import zbuffer

__all__ = ["CHANNEL_NAMES", "LidarChannels", "densify_depth", "lidar_channels"]

log = logging.getLogger(__name__)

CHANNEL_NAMES = ("depth_m", "height_m", "intensity", "valid")
"""Order of the channels in :meth:`LidarChannels.stack`."""

Image = npt.NDArray[np.float32]

_DIAMOND_5 = np.array(
    [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ],
    dtype=np.uint8,
)
_FULL_5 = np.ones((5, 5), dtype=np.uint8)
_FULL_7 = np.ones((7, 7), dtype=np.uint8)
_FULL_31 = np.ones((31, 31), dtype=np.uint8)
_EMPTY = 0.1


@dataclass(frozen=True, eq=False)
class LidarChannels:
    """Lidar channels of one scan as H x W float32 images (0 where no point landed)."""

    depth_m: Image
    height_m: Image
    intensity: Image
    valid: Image
    n_points: int
    n_dropped_nonfinite: int
    densified: bool = False

    @property
    def width(self) -> int:
        return int(self.depth_m.shape[1])

    @property
    def height(self) -> int:
        return int(self.depth_m.shape[0])

    def stack(self) -> Image:
        """C x H x W float32 array in :data:`CHANNEL_NAMES` order."""
        return np.stack([getattr(self, name) for name in CHANNEL_NAMES]).astype(np.float32)


def densify_depth(depth_m: npt.ArrayLike, *, max_depth_m: float | None = None) -> Image:
    """IP-Basic fast depth completion of a sparse depth image (0, NaN or inf = empty).

    See the module doc. ``max_depth_m`` is the inversion constant; by default just above the
    farthest point, so no measured depth is lost. The sky above the highest points stays empty.
    """
    depth = np.array(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        message = f"depth image must be 2-D, got shape {depth.shape!r}"
        raise ConfigError(message)
    measured = np.isfinite(depth) & (depth > _EMPTY)
    if not measured.any():
        return np.zeros_like(depth)
    far = float(depth[measured].max())
    top = far + 1.0 if max_depth_m is None else float(max_depth_m)
    if not far < top < math.inf:
        message = f"max_depth_m={max_depth_m!r} must exceed the largest depth {far:.2f}"
        raise ConfigError(message)
    inv = np.where(measured, top - depth, 0.0).astype(np.float32)
    inv = np.asarray(cv2.dilate(inv, _DIAMOND_5), dtype=np.float32)
    inv = np.asarray(cv2.morphologyEx(inv, cv2.MORPH_CLOSE, _FULL_5), dtype=np.float32)
    for kernel in (_FULL_7, _FULL_31):
        empty = inv < _EMPTY
        dilated = cv2.dilate(inv, kernel)
        inv[empty] = dilated[empty]
    inv = np.asarray(cv2.medianBlur(inv, 5), dtype=np.float32)
    filled = inv > _EMPTY
    blurred = cv2.GaussianBlur(inv, (5, 5), 0)
    inv[filled] = blurred[filled]
    filled = inv > _EMPTY
    out = np.zeros_like(depth)
    out[filled] = top - inv[filled]
    return np.asarray(np.clip(out, 0.0, None), dtype=np.float32)


def _plane_or_none(points: Any) -> GroundPlane | None:
    try:
        return fit_ground_plane(points)
    except RecordingError as exc:
        log.warning("height channel left at 0: %s", exc)
        return None


def lidar_channels(
    points: Any,
    rig: Rig,
    *,
    width: int | None = None,
    height: int | None = None,
    plane: GroundPlane | npt.ArrayLike | None = None,
    densify: bool = False,
    min_depth_m: float = DEFAULT_MIN_DEPTH_M,
) -> LidarChannels:
    """Lidar channels of a scan (Nx4 with intensity, or Nx3) in a ``width`` x ``height`` image.

    The size defaults to the calibrated one. ``plane`` is the ground for the height
    channel (signed distance, metres), a :class:`GroundPlane` or its coefficients
    ``(a, b, c, d)``; without one it is fitted with
    :func:`~drivingseg.fusion.ground.fit_ground_plane` (when that finds no ground, the
    height channel stays 0 and a warning is logged).
    """
    check_rig(rig)
    ground = None if plane is None else as_ground_plane(plane)
    target = scale_rig(rig, rig.camera.width if width is None else width,
                       rig.camera.height if height is None else height)
    w, h = target.camera.width, target.camera.height  # 187.5 rows refused, not cut to 187
    index, rows, cols, depth, n_bad = visible_points(points, target, min_depth_m=min_depth_m)
    be = backend_of(depth)
    win = zbuffer(rows, cols, depth, w, h)
    pixel = be.to_numpy(rows[win] * w + cols[win])
    winners = be.to_numpy(index[win])
    pts = be.to_numpy(points) if be.name == "torch" else np.asarray(points)
    images = np.zeros((4, h * w), dtype=np.float32)
    images[0, pixel] = be.to_numpy(depth[win])
    if ground is None and pts.shape[0]:
        ground = _plane_or_none(pts)
    if ground is not None and winners.size:
        images[1, pixel] = ground.height_m(pts[winners, :3])
    if pts.shape[1] == 4 and winners.size:
        intensity = pts[winners, 3].astype(np.float32)
        images[2, pixel] = np.where(np.isfinite(intensity), intensity, 0.0)
    images[3, pixel] = 1.0
    depth_img, height_img, intensity_img, valid_img = images.reshape(4, h, w)
    if densify:
        depth_img = densify_depth(depth_img)
    return LidarChannels(
        depth_m=depth_img,
        height_m=height_img,
        intensity=intensity_img,
        valid=valid_img,
        n_points=int(pts.shape[0]),
        n_dropped_nonfinite=n_bad,
        densified=densify,
    )
