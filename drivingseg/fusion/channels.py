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

Intensity is brought to 0..1, whatever the sensor's scale: KITTI reflectance is 0..1, a
Velodyne ROS driver publishes 0..255 (often as float32) and 16-bit drivers up to 65535, and
a model trained on one must not see the others 255 times larger. With ``intensity_scale``
None (auto) each scan is divided by 1, 255 or 65535, the smallest of them at or above its
largest finite intensity; a number divides by that number. Values are then clipped to
0..1. The rule depends on the scan alone, so training, ``eval`` and the fusion node make
the same channels of it; a :class:`StreamNotes` says once per stream which scale it found.
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
from drivingseg.fusion.ground import (
    GroundKeeper,
    GroundPlane,
    as_ground_plane,
    fit_ground_plane,
)
from drivingseg.fusion.projection import (
    DEFAULT_MIN_DEPTH_M,
    check_rig,
    scale_rig,
    visible_points,
)
from drivingseg.fusion.zbuffer import zbuffer

__all__ = ["CHANNEL_NAMES", "INTENSITY_SCALES", "LidarChannels", "StreamNotes", "densify_depth",
           "intensity_scale_of", "lidar_channels"]

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

INTENSITY_SCALES = (1.0, 255.0, 65535.0)
"""The intensity ranges told apart by ``intensity_scale=None``: 0..1, 8-bit and 16-bit."""


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
    intensity_scale: float = 1.0
    no_ground: str | None = None
    """Why the height channel is 0 (no ground plane found); None when it was found or given."""

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


def intensity_scale_of(intensity: npt.ArrayLike) -> float:
    """The divisor that brings ``intensity`` to 0..1: the smallest of :data:`INTENSITY_SCALES`
    at or above its largest finite value (1 for none, or for values beyond them all)."""
    values = np.asarray(intensity, dtype=np.float32)
    values = values[np.isfinite(values)]
    top = float(values.max()) if values.size else 0.0
    return next((scale for scale in INTENSITY_SCALES if top <= scale), INTENSITY_SCALES[-1])


class StreamNotes:
    """What the scans of one stream (a node, a drive) met, logged once each and counted:
    scans without a ground plane (their height channel is 0) and the intensity scale found,
    so a stream at 10 Hz does not warn on every scan."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scans = 0
        self.scans_without_ground = 0
        self.intensity_scales: dict[float, int] = {}

    def add(self, channels: LidarChannels) -> None:
        """Count ``channels``; log the first scan without ground and each new scale."""
        self.scans += 1
        if channels.no_ground is not None:
            self.scans_without_ground += 1
            if self.scans_without_ground == 1:
                log.warning("%s: height channel left at 0: %s; warned once, counted",
                            self.name, channels.no_ground)
        scale = channels.intensity_scale
        if scale not in self.intensity_scales:
            level = logging.WARNING if self.intensity_scales else logging.INFO
            log.log(level, "%s: lidar intensity read as 0..%g, divided by %g to 0..1%s",
                    self.name, scale, scale,
                    "; the scale changed, check the driver" if self.intensity_scales else "")
        self.intensity_scales[scale] = self.intensity_scales.get(scale, 0) + 1

    def summary(self) -> str | None:
        """One line on the scans without ground, None when every one had it."""
        if not self.scans_without_ground:
            return None
        return (f"{self.name}: {self.scans_without_ground} of {self.scans} lidar scans had no "
                "ground plane; their height channel is 0")


def _plane_or_none(points: Any, quiet: bool,
                   keeper: GroundKeeper | None) -> tuple[GroundPlane | None, str | None]:
    try:
        return (fit_ground_plane(points) if keeper is None else keeper.plane_for(points)), None
    except RecordingError as exc:
        if not quiet:
            log.warning("height channel left at 0: %s", exc)
        return None, str(exc)


def _intensity_divisor(values: npt.NDArray[np.float32], given: float | None) -> float:
    if given is None:
        return intensity_scale_of(values)
    try:
        value = float(given)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < math.inf:
        raise ConfigError(f"intensity_scale must be a positive number (or None: auto), "
                          f"got {given!r}")
    return value


def lidar_channels(
    points: Any,
    rig: Rig,
    *,
    width: int | None = None,
    height: int | None = None,
    plane: GroundPlane | npt.ArrayLike | None = None,
    densify: bool = False,
    min_depth_m: float = DEFAULT_MIN_DEPTH_M,
    intensity_scale: float | None = None,
    notes: StreamNotes | None = None,
    ground_keeper: GroundKeeper | None = None,
) -> LidarChannels:
    """Lidar channels of a scan (Nx4 with intensity, or Nx3) in a ``width`` x ``height`` image.

    The size defaults to the calibrated one. ``plane`` is the ground for the height
    channel (signed distance, metres), a :class:`GroundPlane` or its coefficients
    ``(a, b, c, d)``; without one it is fitted with
    :func:`~drivingseg.fusion.ground.fit_ground_plane` (when that finds no ground, the
    height channel stays 0 and a warning is logged, or with ``notes``, the stream's
    :class:`StreamNotes`, once per stream and counted). ``ground_keeper``, a stream's
    :class:`~drivingseg.fusion.ground.GroundKeeper`, may give a plane kept from an earlier
    scan instead of a fit on this one. Intensity: see the module doc.
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
    no_ground = None
    if ground is None and pts.shape[0]:
        ground, no_ground = _plane_or_none(pts, notes is not None, ground_keeper)
    if ground is not None and winners.size:
        images[1, pixel] = ground.height_m(pts[winners, :3])
    scale = 1.0
    if pts.shape[1] == 4:
        scale = _intensity_divisor(pts[:, 3].astype(np.float32), intensity_scale)
    if pts.shape[1] == 4 and winners.size:
        intensity = pts[winners, 3].astype(np.float32) / np.float32(scale)
        images[2, pixel] = np.clip(np.where(np.isfinite(intensity), intensity, 0.0), 0.0, 1.0)
    images[3, pixel] = 1.0
    depth_img, height_img, intensity_img, valid_img = images.reshape(4, h, w)
    if densify:
        depth_img = densify_depth(depth_img)
    result = LidarChannels(
        depth_m=depth_img,
        height_m=height_img,
        intensity=intensity_img,
        valid=valid_img,
        n_points=int(pts.shape[0]),
        n_dropped_nonfinite=n_bad,
        densified=densify,
        intensity_scale=scale,
        no_ground=no_ground,
    )
    if notes is not None:
        notes.add(result)
    return result
