"""Ground-truth boxes from KITTI ``label_2`` objects, with KITTI's "moderate" don't-care rules.

Objects of the wanted ``classes`` taller than ``min_height_px``, little enough
occluded and truncated are the boxes to find; the rest of those classes, ``DontCare``
regions and ``similar`` classes become ``ignore=True`` (a detection on them is neither
right nor wrong); every other type is dropped.

Boxes come from the file's 2D columns (``"label"``) or from the 3D box projected with the
rig (``"projected"``). Finding on the real argoverse_kitti frames (drawn and checked by
eye): the 2D columns there are the projection of the 3D box, clipped to the image; they
sit on the cars, except that objects entirely outside the image get degenerate boxes
(zero width at x = 0 or 615), which ``"auto"`` then drops. Two things differ from KITTI:
the label's ``location`` is the *centre* of the 3D box, not its bottom (with KITTI's
bottom convention every projected box sits half a car height too high, and 60 % more
lidar points fall inside the boxes with the centre convention), and it is in the
rectified camera frame, so the corners are projected with ``P`` alone (``P @ R`` would
rotate them twice). Use ``location_ref="centre"`` for projected boxes of that data, or
``"auto"`` with the frame's lidar points, which the report does.

Coordinates follow :mod:`drivingseg.detect.proposals` (exclusive right/bottom edges);
projected corners at pixel-centre coordinate ``u`` give the edge ``u + 0.5``. Label boxes
are taken as they are (KITTI's continuous coordinates, within a pixel of that).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError
from drivingseg.sensors.kitti_benchmark import KittiObject

__all__ = ["BOX_SOURCES", "LOCATION_REFS", "MIN_RANGE_POINTS", "MODERATE_MIN_HEIGHT_PX", "GtBox",
           "box_corners_m", "gt_boxes", "location_convention", "points_in_box", "project_box"]

log = logging.getLogger(__name__)

BOX_SOURCES = ("auto", "label", "projected")
LOCATION_REFS = ("bottom", "centre", "auto")
MODERATE_MIN_HEIGHT_PX = 25.0
"""KITTI "moderate": boxes no taller than this are don't care (the devkit's ``height <=
MIN_HEIGHT``), and detections lower than this that find no box are dropped (pass it to
``match_frame(min_det_height_px=)`` too)."""
MIN_RANGE_POINTS = 3
"""A box needs this many lidar points inside for its range to come from them (else the
box centre)."""
NEAR_PLANE_M = 0.1
"""The 3D box is clipped to ``z >= NEAR_PLANE_M`` before projection."""

Box = tuple[float, float, float, float]

_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
          (0, 4), (1, 5), (2, 6), (3, 7))


@dataclass(frozen=True)
class GtBox:
    """One ground-truth box (``ignore``: don't care, see the module docstring).

    ``range_m`` is the distance from the camera origin of the median (x, y, z) of the
    ``n_points`` lidar points inside the 3D box, the statistic a detection's
    ``centroid_cam_m`` is, so a perfect detector has no range error; with fewer than
    :data:`MIN_RANGE_POINTS` points (or no scan) ``n_points`` is 0 and ``range_m`` is the
    distance of the box centre. ``source`` says where the box came from: ``"label"`` or
    ``"projected"``.
    """

    box_xyxy_px: Box
    label: str
    range_m: float
    ignore: bool
    source: str
    n_points: int = 0


def box_corners_m(obj: KittiObject, location_ref: str = "bottom") -> npt.NDArray[np.float64]:
    """8 x 3 corners of the object's 3D box in the camera frame (KITTI: y down, yaw about y).

    Corners 0-3 are the bottom face, 4-7 the top face, in the same order.
    """
    h, w, length = obj.dimensions_hwl_m
    x, y, z = obj.location_xyz_m
    bottom_y = y + h / 2.0 if location_ref == "centre" else y
    xs = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * (length / 2.0)
    ys = np.array([0, 0, 0, 0, -1, -1, -1, -1]) * h
    zs = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * (w / 2.0)
    c, s = np.cos(obj.rotation_y), np.sin(obj.rotation_y)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.asarray((rot @ np.vstack([xs, ys, zs])).T + np.array([x, bottom_y, z]))


def points_in_box(obj: KittiObject, points_cam_m: npt.ArrayLike,
                  location_ref: str = "bottom") -> npt.NDArray[np.bool_]:
    """Which of ``points_cam_m`` (N x 3, the label's camera frame) lie inside the object's
    3D box (boundary excluded)."""
    pts = np.asarray(points_cam_m, dtype=np.float64).reshape(-1, 3)
    h, w, length = obj.dimensions_hwl_m
    centre = np.array(obj.location_xyz_m, dtype=np.float64)
    if location_ref == "bottom":
        centre[1] -= h / 2.0
    d = pts - centre
    c, s = np.cos(obj.rotation_y), np.sin(obj.rotation_y)
    along = c * d[:, 0] - s * d[:, 2]  # box x axis (length), see box_corners_m
    across = s * d[:, 0] + c * d[:, 2]  # box z axis (width)
    return np.asarray((np.abs(along) < length / 2.0) & (np.abs(across) < w / 2.0)
                      & (np.abs(d[:, 1]) < h / 2.0))


def location_convention(objects: Sequence[KittiObject],
                        points_cam_m: npt.ArrayLike | None) -> str:
    """``"bottom"`` (KITTI's) or ``"centre"`` (argoverse_kitti's): the convention that puts
    more of the frame's lidar points inside its labelled 3D boxes, which lidar-made labels
    enclose. Without points, or with none inside either way, KITTI's ``"bottom"``."""
    if points_cam_m is None:
        return "bottom"
    points = np.asarray(points_cam_m, dtype=np.float64).reshape(-1, 3)
    boxes = [o for o in objects if o.type.lower() != "dontcare" and min(o.dimensions_hwl_m) > 0]
    inside = {ref: sum(int(points_in_box(o, points, ref).sum()) for o in boxes)
              for ref in ("bottom", "centre")}
    return "centre" if inside["centre"] > inside["bottom"] else "bottom"


def _range(obj: KittiObject, points: npt.NDArray[np.float64] | None, location_ref: str
           ) -> tuple[float, int]:
    """Range of the object from the camera origin and the number of points it came from
    (see :class:`GtBox`)."""
    centre = np.array(obj.location_xyz_m, dtype=np.float64)
    if location_ref == "bottom":
        centre[1] -= obj.dimensions_hwl_m[0] / 2.0
    if points is not None and obj.type.lower() != "dontcare":
        inside = points[points_in_box(obj, points, location_ref)]
        if inside.shape[0] >= MIN_RANGE_POINTS:
            return float(np.linalg.norm(np.median(inside, axis=0))), int(inside.shape[0])
    return float(np.linalg.norm(centre)), 0


def _clip(box: Box, width: int, height: int) -> Box | None:
    w, h = float(width), float(height)
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
    y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def project_box(obj: KittiObject, rig: Rig, image_size: tuple[int, int],
                location_ref: str = "bottom") -> Box | None:
    """Image box of the 3D box (clipped to the near plane and the image); None if unseen.

    ``location`` is taken in the rectified camera frame, so the projection is ``P``.
    """
    corners = box_corners_m(obj, location_ref)
    pts = [corners[corners[:, 2] >= NEAR_PLANE_M]]
    for a, b in _EDGES:  # where an edge crosses the near plane
        za, zb = corners[a, 2], corners[b, 2]
        if (za - NEAR_PLANE_M) * (zb - NEAR_PLANE_M) < 0:
            t = (NEAR_PLANE_M - za) / (zb - za)
            pts.append((corners[a] + t * (corners[b] - corners[a]))[None])
    front = np.concatenate(pts)
    if front.shape[0] == 0:
        return None
    assert rig.camera.P is not None
    hom = np.c_[front, np.ones(front.shape[0])] @ rig.camera.P.T
    uv = hom[:, :2] / hom[:, 2:3] + 0.5
    box = (float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()),
           float(uv[:, 1].max()))
    return _clip(box, *image_size)


def _label_box(obj: KittiObject, image_size: tuple[int, int]) -> Box | None:
    """The file's 2D box, or None when it is degenerate (empty or outside the image)."""
    x1, y1, x2, y2 = obj.bbox_xyxy
    if not np.all(np.isfinite(obj.bbox_xyxy)) or x2 <= x1 or y2 <= y1:
        return None
    return _clip((x1, y1, x2, y2), *image_size)


def gt_boxes(
    objects: Sequence[KittiObject],
    rig: Rig | None,
    image_size: tuple[int, int],
    *,
    classes: tuple[str, ...] = ("Car", "Van"),
    min_height_px: float = MODERATE_MIN_HEIGHT_PX,
    max_occlusion: int = 1,
    max_truncation: float = 0.3,
    box_source: str = "auto",
    similar: tuple[str, ...] = ("Truck", "Tram"),
    location_ref: str = "bottom",
    points_cam_m: npt.ArrayLike | None = None,
) -> list[GtBox]:
    """Boxes to find (and don't-care boxes) of one frame; ``image_size`` is (width, height).

    Types compare case-insensitively. ``similar`` classes (by default those the car
    segmentation also paints) are don't care, as are ``DontCare`` regions. Objects whose
    box is empty after clipping are dropped. ``"projected"`` needs ``rig``; ``"auto"``
    without a rig keeps only usable label boxes. ``points_cam_m`` (N x 3, the frame's
    lidar points in the image, in the label's camera frame, e.g.
    ``LidarInImage.xyz_cam_m``) gives each box its range from the points inside it, as
    detections get theirs; without it ranges are the box centres'. ``location_ref="auto"``
    picks the frame's convention from those points (:func:`location_convention`).
    """
    if box_source not in BOX_SOURCES:
        message = f"unknown box_source {box_source!r}; valid: {', '.join(BOX_SOURCES)}"
        raise ConfigError(message)
    if location_ref not in LOCATION_REFS:
        message = f"unknown location_ref {location_ref!r}; valid: {', '.join(LOCATION_REFS)}"
        raise ConfigError(message)
    if box_source == "projected" and rig is None:
        raise ConfigError("box_source 'projected' needs the rig (calibration) of the frame")
    points = None
    if points_cam_m is not None:
        points = np.asarray(points_cam_m, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            message = f"points_cam_m must be N x 3, got shape {points.shape!r}"
            raise ConfigError(message)
    if location_ref == "auto":
        location_ref = location_convention(objects, points)
    wanted = {c.lower() for c in classes}
    near = {c.lower() for c in similar} | {"dontcare"}
    out = []
    for obj in objects:
        kind = obj.type.lower()
        if kind not in wanted and kind not in near:
            continue
        box, source = _choose_box(obj, rig, image_size, box_source, location_ref)
        if box is None:
            log.debug("dropped %s with no usable box (label %r)", obj.type, obj.bbox_xyxy)
            continue
        range_m, n_points = _range(obj, points, location_ref)
        hard = (box[3] - box[1] <= min_height_px or obj.occluded > max_occlusion
                or obj.truncated > max_truncation)
        out.append(GtBox(box, obj.type, range_m, ignore=kind not in wanted or hard,
                         source=source, n_points=n_points))
    return out


def _choose_box(obj: KittiObject, rig: Rig | None, image_size: tuple[int, int],
                box_source: str, location_ref: str) -> tuple[Box | None, str]:
    if box_source != "projected":
        box = _label_box(obj, image_size)
        if box is not None or box_source == "label" or rig is None:
            return box, "label"
    if obj.type.lower() == "dontcare":
        return None, "projected"
    assert rig is not None
    return project_box(obj, rig, image_size, location_ref), "projected"
