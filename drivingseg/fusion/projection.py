"""Lidar points to image pixels: rectified KITTI chains and distorted pinhole cameras.

One code path serves numpy arrays and torch tensors (CPU or CUDA, chosen by the input's
device), computed in float64. Two camera kinds are handled:

* rectified images (``camera.image_rectified``): ``rig.lidar_to_pixel_matrix()``, i.e.
  ``P @ R @ T_cam_velo``; the depth is the third homogeneous coordinate (the distance
  along the rectified camera's optical axis, KITTI's convention);
* raw, distorted images: ``T_cam_velo`` then OpenCV's pinhole model with ``K`` and
  ``D`` (plumb_bob / rational_polynomial, thin-prism and tilt terms included) or its
  fisheye model (``equidistant``, Kannala-Brandt k1..k4, as ``cv2.fisheye``), written
  out here so it runs in torch too; the depth is the camera-frame ``z``.

Pixel centres sit at integer coordinates (OpenCV's convention): a point at ``(u, v)``
falls in column ``floor(u + 0.5)`` and row ``floor(v + 0.5)``. Scaling to another
resolution scales the intrinsics (:func:`scale_camera`), never a sparse image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from drivingseg.calibration.types import CameraModel, FloatArray, Rig
from drivingseg.errors import CalibrationError, ConfigError
from drivingseg.fusion._backend import Array, Backend, backend_of

__all__ = [
    "DEFAULT_MIN_DEPTH_M",
    "Projection",
    "calibration_offset_px",
    "check_image_size",
    "check_rig",
    "point_array",
    "project_points",
    "scale_camera",
    "scale_rig",
    "visible_points",
]

DEFAULT_MIN_DEPTH_M = 0.5
"""Points nearer than this along the optical axis are not visible (behind or at the lens)."""

CHUNK_POINTS = 16000
"""Points per chunk in :func:`visible_points` on numpy.

125 KiB float64 temporaries stay below glibc's mmap threshold, so they are reused from
the heap instead of being mapped and faulted in afresh for every scan."""


@dataclass(frozen=True, eq=False)
class Projection:
    """Where each point of a scan lands in an image of ``width`` x ``height`` pixels.

    ``u``, ``v``, ``depth_m`` and ``visible`` have one entry per input point (NaN for
    points with a non-finite coordinate, which are never visible). ``index``, ``rows``
    and ``cols`` (int64) list the visible points and their pixels, in scan order.
    Arrays are numpy or torch, the same kind (and device) as the input.
    """

    u: Array
    v: Array
    depth_m: Array
    visible: Array
    index: Array
    rows: Array
    cols: Array
    width: int
    height: int
    n_dropped_nonfinite: int

    @property
    def n_points(self) -> int:
        return int(self.u.shape[0])

    @property
    def n_visible(self) -> int:
        return int(self.index.shape[0])


def check_rig(rig: object) -> None:
    """CalibrationError unless ``rig`` is a :class:`Rig`: a recording without calibration
    gives ``rig() is None``, which failed as ``'NoneType' object has no attribute 'camera'``
    deep inside the projection."""
    if not isinstance(rig, Rig):
        hint = ("the recording has no calibration (Recording.require_rig() says which one)"
                if rig is None else "pass the rig (camera and T_cam_velo), not one part of it")
        raise CalibrationError(f"expected a calibration Rig, got {type(rig).__name__}: {hint}")


def check_image_size(camera: CameraModel, width: int, height: int, *, what: str = "image") -> None:
    """Refuse to project onto an image whose size is not the calibrated one."""
    if (int(width), int(height)) != camera.image_size:
        message = (
            f"{what} is {int(width)}x{int(height)} pixels but the calibration is for "
            f"{camera.width}x{camera.height}; use the calibration of this camera or "
            f"scale_camera() to change resolution on purpose"
        )
        raise CalibrationError(message, path=camera.path)


def scale_camera(camera: CameraModel, width: int, height: int) -> CameraModel:
    """The same camera seen at ``width`` x ``height`` pixels (an image resize).

    Pixel centres stay at integer coordinates, so a pixel ``u`` maps to
    ``sx * (u + 0.5) - 0.5``; ``K`` and ``P`` are multiplied by that affine map. The
    distortion acts on normalised coordinates and is unchanged.
    """
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               and float(v).is_integer() and v > 0 for v in (width, height)):
        # 1242 / 2 x 375 / 2 = 621 x 187.5: intrinsics for 187.5 rows, an image of 187
        message = f"target image size must be positive integers, got {width!r}x{height!r}"
        raise ConfigError(message)
    width, height = int(width), int(height)
    sx = width / camera.width
    sy = height / camera.height
    S = np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0], [0.0, 0.0, 1.0]])
    assert camera.P is not None
    return replace(camera, width=int(width), height=int(height), K=S @ camera.K, P=S @ camera.P)


def scale_rig(rig: Rig, width: int, height: int) -> Rig:
    """``rig`` with its camera scaled to ``width`` x ``height`` (see :func:`scale_camera`)."""
    check_rig(rig)
    if (width, height) == rig.camera.image_size:
        return rig
    return replace(rig, camera=scale_camera(rig.camera, width, height))


@lru_cache(maxsize=64)
def _max_valid_radius2(coeffs: tuple[float, ...]) -> float:
    """Largest squared normalised radius where the radial distortion stays monotonic.

    Beyond it the polynomial folds back and far-off points would land inside the image
    (the classic artefact of projecting with OpenCV's model); they are marked invisible.
    """
    k = np.zeros(14)
    k[: len(coeffs)] = coeffs
    r = np.linspace(0.0, 10.0, 20001)
    r2 = r * r
    radial = (1 + k[0] * r2 + k[1] * r2**2 + k[4] * r2**3) / (
        1 + k[5] * r2 + k[6] * r2**2 + k[7] * r2**3
    )
    rd = r * radial
    bad = (np.diff(rd) <= 0) | (radial[1:] <= 0)
    if not bad.any():
        return math.inf
    return float(r2[int(np.argmax(bad))])


@lru_cache(maxsize=64)
def _max_valid_theta(coeffs: tuple[float, ...]) -> float:
    """Largest angle off the optical axis (rad, below 90 degrees) up to which the fisheye
    polynomial ``theta_d(theta)`` keeps rising; beyond it points are marked invisible."""
    k1, k2, k3, k4 = coeffs
    theta = np.linspace(0.0, math.pi / 2, 20001)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    bad = np.diff(theta_d) <= 0
    if not bad.any():
        return math.pi / 2
    return float(theta[int(np.argmax(bad))])


def _fisheye(
    xn: Array, yn: Array, D: FloatArray, be: Backend
) -> tuple[Array, Array, Array]:
    """``cv2.fisheye`` distortion of normalised coordinates: ``(xd, yd, ok)``."""
    k1, k2, k3, k4 = (float(c) for c in D)
    r = (xn * xn + yn * yn) ** 0.5
    theta = be.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    scale = be.where(r > 1e-12, theta_d / be.where(r > 1e-12, r, 1.0), 1.0)
    return xn * scale, yn * scale, theta <= _max_valid_theta((k1, k2, k3, k4))


def _tilt_matrix(tau_x: float, tau_y: float) -> FloatArray:
    """OpenCV's ``computeTiltProjectionMatrix`` for a tilted sensor (Scheimpflug)."""
    cx, sx = math.cos(tau_x), math.sin(tau_x)
    cy, sy = math.cos(tau_y), math.sin(tau_y)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    rot_y = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rot_xy = rot_y @ rot_x
    proj_z = np.array(
        [[rot_xy[2, 2], 0.0, -rot_xy[0, 2]], [0.0, rot_xy[2, 2], -rot_xy[1, 2]], [0, 0, 1.0]]
    )
    return np.asarray(proj_z @ rot_xy)


def _row(M: FloatArray, i: int, x: Array, y: Array, z: Array) -> Array:
    """Row ``i`` of ``M @ [x, y, z, 1]`` for column vectors ``x``, ``y``, ``z``."""
    m = M[i]
    return x * float(m[0]) + y * float(m[1]) + z * float(m[2]) + float(m[3])


def _depth(rig: Rig, x: Array, y: Array, z: Array) -> Array:
    """Depth along the optical axis of each point (see module doc)."""
    M = rig.lidar_to_pixel_matrix() if rig.camera.image_rectified else rig.T_cam_velo.matrix
    return _row(M, 2, x, y, z)


def _pixels(
    rig: Rig, x: Array, y: Array, z: Array, be: Backend
) -> tuple[Array, Array, Array, Array | None]:
    """``(u, v, depth, ok)``; ``ok`` flags points inside the distortion's valid radius."""
    cam = rig.camera
    if cam.image_rectified:
        M = rig.lidar_to_pixel_matrix()
        w = _row(M, 2, x, y, z)
        return _row(M, 0, x, y, z) / w, _row(M, 1, x, y, z) / w, w, None
    T = rig.T_cam_velo.matrix
    zc = _row(T, 2, x, y, z)
    xn = _row(T, 0, x, y, z) / zc
    yn = _row(T, 1, x, y, z) / zc
    ok = None
    if cam.has_distortion and cam.distortion_model == "equidistant":
        xn, yn, ok = _fisheye(xn, yn, cam.D, be)
    elif cam.has_distortion:
        k = [0.0] * 14
        k[: cam.D.size] = (float(c) for c in cam.D)
        r2 = xn * xn + yn * yn
        r4 = r2 * r2
        radial = (1.0 + k[0] * r2 + k[1] * r4 + k[4] * r4 * r2) / (
            1.0 + k[5] * r2 + k[6] * r4 + k[7] * r4 * r2
        )
        a1 = 2.0 * xn * yn
        xd = xn * radial + k[2] * a1 + k[3] * (r2 + 2.0 * xn * xn) + k[8] * r2 + k[9] * r4
        yd = yn * radial + k[2] * (r2 + 2.0 * yn * yn) + k[3] * a1 + k[10] * r2 + k[11] * r4
        if k[12] != 0.0 or k[13] != 0.0:
            Tm = _tilt_matrix(k[12], k[13])
            tz = float(Tm[2, 0]) * xd + float(Tm[2, 1]) * yd + float(Tm[2, 2])
            xd, yd = (
                (float(Tm[0, 0]) * xd + float(Tm[0, 1]) * yd + float(Tm[0, 2])) / tz,
                (float(Tm[1, 0]) * xd + float(Tm[1, 1]) * yd + float(Tm[1, 2])) / tz,
            )
        xn, yn = xd, yd
        ok = r2 <= _max_valid_radius2(tuple(k))
    K = cam.K
    u = float(K[0, 0]) * xn + float(K[0, 1]) * yn + float(K[0, 2])
    v = float(K[1, 1]) * yn + float(K[1, 2])
    return u, v, zc, ok


def point_array(points: Any) -> tuple[Array, Backend]:
    """``points`` as an Nx3 / Nx4 numpy array or torch tensor, and its backend.

    A :class:`~drivingseg.sensors.frames.LidarScan` (or anything else that is not an
    array) is refused by name: it became a 0-d object array and failed with IndexError.
    """
    be = backend_of(points)
    array = np.asarray(points) if be.name == "numpy" else points
    shape = tuple(array.shape)
    if len(shape) != 2 or shape[1] not in (3, 4):
        got = f"shape {shape!r}"
        if array.dtype == object and len(shape) == 0:
            hint = " (pass its .points)" if hasattr(points, "points") else ""
            got = f"a {type(points).__name__}{hint}"
        message = f"points must be an Nx3 or Nx4 array (x, y, z[, intensity]), got {got}"
        raise ConfigError(message)
    return array, be


def _columns(points: Any) -> tuple[Array, Array, Array, Backend]:
    """Split an Nx3 / Nx4 array or tensor into float64 x, y, z columns."""
    points, be = point_array(points)
    cols = [be.asarray(points[:, i], "float64") for i in range(3)]
    return cols[0], cols[1], cols[2], be


def _check_min_depth(min_depth_m: float) -> None:
    """Refuse a minimum depth that lets points behind the camera in (or, NaN, none at all)."""
    if not 0.0 <= min_depth_m < math.inf:
        message = f"min_depth_m must be a finite number of metres >= 0, got {min_depth_m!r}"
        raise ConfigError(message)


def _inside(
    u: Array, v: Array, depth: Array, ok: Array | None, rig: Rig, min_depth_m: float
) -> Array:
    """Mask of points in front beyond ``min_depth_m`` whose pixel is inside the image."""
    w, h = rig.camera.width, rig.camera.height
    mask = (depth > min_depth_m) & (depth < math.inf) & (u >= -0.5) & (u < w - 0.5)
    mask = mask & (v >= -0.5) & (v < h - 0.5)
    return mask if ok is None else mask & ok


def project_points(
    points: Any,
    rig: Rig,
    *,
    min_depth_m: float = DEFAULT_MIN_DEPTH_M,
    image_size: tuple[int, int] | None = None,
) -> Projection:
    """Project a lidar scan (Nx3 or Nx4, numpy or torch) into ``rig.camera``'s image.

    ``image_size`` (width, height), when given, must match the calibration: projecting
    onto an image of another size raises :class:`CalibrationError` naming both.
    """
    check_rig(rig)
    if image_size is not None:
        check_image_size(rig.camera, image_size[0], image_size[1])
    _check_min_depth(min_depth_m)
    x, y, z, be = _columns(points)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        u, v, depth, ok = _pixels(rig, x, y, z, be)
        finite = be.isfinite(depth)
        n_bad = int(depth.shape[0]) - be.count(finite)
        if n_bad:
            u = be.where(finite, u, math.nan)
            v = be.where(finite, v, math.nan)
            depth = be.where(finite, depth, math.nan)
        mask = _inside(u, v, depth, ok, rig, min_depth_m)
    index = be.nonzero(mask)
    return Projection(
        u=u,
        v=v,
        depth_m=depth,
        visible=mask,
        index=index,
        rows=be.floor_int(v[index] + 0.5),
        cols=be.floor_int(u[index] + 0.5),
        width=rig.camera.width,
        height=rig.camera.height,
        n_dropped_nonfinite=n_bad,
    )


def _visible_chunk(
    x: Array, y: Array, z: Array, rig: Rig, min_depth_m: float, be: Backend
) -> tuple[Array, Array, Array, Array, int]:
    depth = _depth(rig, x, y, z)
    n_bad = int(depth.shape[0]) - be.count(be.isfinite(depth))
    front = be.nonzero(depth > min_depth_m)
    u, v, d, ok = _pixels(rig, x[front], y[front], z[front], be)
    keep = be.nonzero(_inside(u, v, d, ok, rig, min_depth_m))
    rows = be.floor_int(v[keep] + 0.5)
    cols = be.floor_int(u[keep] + 0.5)
    return front[keep], rows, cols, d[keep], n_bad


def visible_points(
    points: Any, rig: Rig, *, min_depth_m: float = DEFAULT_MIN_DEPTH_M
) -> tuple[Array, Array, Array, Array, int]:
    """Fast path: ``(index, rows, cols, depth_m, n_dropped_nonfinite)`` of visible points.

    Same numbers as :func:`project_points`, but points behind ``min_depth_m`` are culled
    after computing one row, so the full projection runs on the points in front only.
    numpy input is processed in chunks of :data:`CHUNK_POINTS` so every temporary stays
    small and cache-resident (large temporaries cost more in page faults than in work).
    """
    _check_min_depth(min_depth_m)
    check_rig(rig)
    points, be = point_array(points)  # a list too, as project_points takes
    if be.name == "torch" or int(points.shape[0]) <= CHUNK_POINTS:
        x, y, z, be = _columns(points)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return _visible_chunk(x, y, z, rig, min_depth_m, be)
    parts = []
    n_bad = 0
    for start in range(0, int(points.shape[0]), CHUNK_POINTS):
        x, y, z, be = _columns(points[start : start + CHUNK_POINTS])
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            idx, rows, cols, d, bad = _visible_chunk(x, y, z, rig, min_depth_m, be)
        parts.append((idx + start, rows, cols, d))
        n_bad += bad
    idx, rows, cols, d = (np.concatenate(p) for p in zip(*parts, strict=True))
    return idx, rows, cols, d, n_bad


def calibration_offset_px(rig: Rig, other: Rig) -> float:
    """Median pixel distance between where ``rig`` and ``other`` put the same lidar points.

    The points are a shell of directions at 5, 10 and 20 m around the lidar; those that
    ``rig`` sees count, and one that ``other`` does not see counts as the image diagonal.
    It tells a calibration for another camera of the same rig (KITTI camera 3's 0.54 m
    baseline: ~40 px) from a refined one of the same camera (a few px). ``nan`` when
    ``rig`` sees none of the points.
    """
    n = 2000
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(1.0 - z * z)
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    unit = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    points = np.concatenate([unit * d for d in (5.0, 10.0, 20.0)])
    a = project_points(points, rig)
    if not a.index.size:
        return math.nan
    b = project_points(points, other)
    diagonal = math.hypot(rig.camera.width, rig.camera.height)
    seen = a.index
    offset = np.hypot(a.u[seen] - b.u[seen], a.v[seen] - b.v[seen])
    offset = np.where(b.visible[seen], offset, diagonal)
    return float(np.median(offset))
