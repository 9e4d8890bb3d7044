"""Pictures of the fusion: points drawn on the camera image, KITTI depth PNGs.

Depth PNGs follow the KITTI depth-completion convention: 16-bit grey, value = metres x
256 rounded, 0 = no measurement, so the largest depth is 255.99 m (farther ones are
clipped). Files are written atomically: encoded in memory, written to a temporary file
in the target folder, then renamed, so a failure never leaves half a file behind.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.fileio import write_bytes_atomic
from drivingseg.fusion._backend import backend_of
from drivingseg.fusion.projection import (
    DEFAULT_MIN_DEPTH_M,
    check_image_size,
    check_rig,
    visible_points,
)
from drivingseg.fusion.zbuffer import zbuffer
from drivingseg.sensors.decode import read_image_unchanged

__all__ = [
    "DEPTH_PNG_MAX_M",
    "DEPTH_PNG_SCALE",
    "OVERLAY_NEAR_M",
    "decode_depth_png",
    "depth_to_png16",
    "draw_overlay",
    "read_depth_png",
    "write_depth_png",
    "write_image_atomic",
]

DEPTH_PNG_SCALE = 256.0
"""PNG value per metre (KITTI depth completion)."""
DEPTH_PNG_MAX_M = 255.99
"""Largest depth a 16-bit KITTI depth PNG holds; farther points are clipped to it."""
OVERLAY_NEAR_M = 3.0
"""Depth drawn in the nearest colour of the overlay's log scale."""


def depth_to_png16(depth_m: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """Depth image (metres, 0 or NaN = none) to KITTI's uint16 encoding."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        message = f"depth image must be 2-D, got shape {depth.shape!r}"
        raise ConfigError(message)
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.rint(np.clip(np.where(valid, depth, 0.0), 0.0, DEPTH_PNG_MAX_M) * DEPTH_PNG_SCALE)
    out = scaled.astype(np.uint16)
    out[valid & (out == 0)] = 1
    return out


def decode_depth_png(png16: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """KITTI uint16 depth back to float32 metres (0 = none)."""
    return (png16.astype(np.float32) / np.float32(DEPTH_PNG_SCALE)).astype(np.float32)


def write_image_atomic(path: str | PathLike[str], image: npt.NDArray[Any]) -> None:
    """Encode ``image`` (BGR or grey, as OpenCV takes it) by its suffix and write atomically."""
    target = Path(path)
    try:
        ok, buf = cv2.imencode(target.suffix or ".png", image)
    except cv2.error:  # no encoder for the suffix: OpenCV raises rather than return False
        ok = False
    if not ok:
        message = f"OpenCV cannot encode a {image.dtype} image as {target.suffix!r}"
        raise ConfigError(message, path=target)
    write_bytes_atomic(target, buf.tobytes(), error=ConfigError, what="image")


def write_depth_png(path: str | PathLike[str], depth_m: npt.ArrayLike) -> None:
    """Write a depth image as a KITTI 16-bit depth PNG (atomically)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        message = (
            f"depth images are 16-bit PNG; the file name must end in .png, got {target.name!r}"
        )
        raise ConfigError(message, path=target)
    write_image_atomic(target, depth_to_png16(depth_m))


def read_depth_png(path: str | PathLike[str]) -> npt.NDArray[np.float32]:
    """Read a KITTI 16-bit depth PNG as float32 metres."""
    img = read_image_unchanged(path)
    if img.dtype != np.uint16 or img.ndim != 2:
        got = f"{img.dtype} shape {img.shape!r}"
        message = f"not a 16-bit single-channel depth PNG (read {got})"
        raise RecordingError(message, path=path)
    return decode_depth_png(np.asarray(img, dtype=np.uint16))


def draw_overlay(
    image_rgb: npt.NDArray[np.uint8],
    points: Any,
    rig: Rig,
    *,
    max_depth_m: float = 80.0,
    radius_px: int = 2,
    min_depth_m: float = DEFAULT_MIN_DEPTH_M,
    colormap: int = cv2.COLORMAP_JET,
) -> npt.NDArray[np.uint8]:
    """The camera image (RGB) with the scan's visible points as small coloured circles.

    Colour encodes log depth (:data:`OVERLAY_NEAR_M` and nearer red, ``max_depth_m`` and
    beyond blue, so near objects are told apart as well as far ones); far points are
    drawn first so near ones stay on top. Only z-buffer winners are drawn. The image
    must have the calibrated size (else :class:`CalibrationError` naming both sizes).
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        message = f"overlay needs an HxWx3 uint8 image, got {image_rgb.shape!r} {image_rgb.dtype}"
        raise ConfigError(message)
    check_rig(rig)
    check_image_size(rig.camera, image_rgb.shape[1], image_rgb.shape[0], what="camera image")
    if not 0.0 < max_depth_m < math.inf:
        message = f"max_depth_m must be a positive finite number of metres, got {max_depth_m!r}"
        raise ConfigError(message)
    _, rows, cols, depth, _ = visible_points(points, rig, min_depth_m=min_depth_m)
    be = backend_of(depth)
    win = zbuffer(rows, cols, depth, rig.camera.width, rig.camera.height)
    r = be.to_numpy(rows[win])
    c = be.to_numpy(cols[win])
    d = be.to_numpy(depth[win])
    if d.size == 0:  # no point in view (OpenCV's colour map refuses an empty array)
        return np.ascontiguousarray(image_rgb.copy())
    near = min(OVERLAY_NEAR_M, 0.5 * max_depth_m)
    t = np.log(np.clip(d, near, max_depth_m) / near) / np.log(max_depth_m / near)
    level = np.clip(255.0 * (1.0 - t), 0, 255).astype(np.uint8)
    colours = cv2.applyColorMap(level.reshape(-1, 1), colormap).reshape(-1, 3)[:, ::-1]
    out = np.ascontiguousarray(image_rgb.copy())
    for k in np.argsort(-d, kind="stable"):
        colour = (int(colours[k, 0]), int(colours[k, 1]), int(colours[k, 2]))
        cv2.circle(out, (int(c[k]), int(r[k])), radius_px, colour, -1, lineType=cv2.LINE_AA)
    return out
