"""Region proposals: boxes around the car blobs of a segmentation, split and ranged by lidar.

Each 8-connected blob of the car class becomes a box. Lidar points on the ground are left
out (:func:`_ground_points`: within ``ground_clearance_m`` of a plane fitted to the points
on road pixels): where the mask spills onto the road, the road's range runs on from a near
car to the car behind and joined them (KITTI raw frame 0: a car at 6.6 m and the lorry at
13.7 m behind it were one 552-pixel box at 12.9 m; on argoverse_kitti 79 -> 67 proposals,
box AP@0.5 19.9 -> 25.9 %, AP@0.7 6.4 -> 5.0 %: three frames, so noisy). The other points
on a blob are clustered by range: a step of more than ``depth_jump_m`` (and more than 10 %
of the nearer range, ``RELATIVE_JUMP``) separates two objects. ``split="sorted"`` cuts the
blob's sorted ranges at each such gap; that fails on real street scenes, where a queue of
cars makes one blob whose ranges run on without a gap. The default ``split="neighbours"``
cuts only between points whose image cells touch (the Voronoi cells of the labelled
distance transform, within the blob), so the car 9 m ahead and the cars 20 m behind it
part where they meet in the image. Clusters under ``min_points`` are outliers; a part
smaller than ``min_area_px`` gives its pixels to its neighbours. Every blob pixel goes to
the cluster of its nearest lidar point, each part becoming a box. A part that touches no
edge of its blob and lies farther than a part beside it is lidar seen through a nearer
car's windows: its points are left out and its pixels join the car (on the shared KITTI
frames 0, 15 and 29 this removes 7, 3 and 2 of 37, 22 and 24 boxes; on argoverse_kitti 19
of 86). Parts that reach the blob's outline are still split, so dense traffic can
over-split somewhat, and side windows that reach a near car's outline make a far box of
their own (KITTI raw frame 15: one at 45.3 m).

The clustering itself lives in :mod:`drivingseg.detect.clusters`, vectorised: on a 1920 x
1200 camera with a 240k-point lidar the steps here were the graph's largest cost.

Box convention (used by :mod:`drivingseg.detect.evaluate` too): ``box_xyxy_px`` is
``(x1, y1, x2, y2)`` with exclusive right/bottom edges, i.e. a blob covering columns
10..19 and rows 5..9 has the box ``(10, 5, 20, 10)``; width is ``x2 - x1``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.detect.box import Detection, LidarInImage
from drivingseg.detect.clusters import (
    RELATIVE_JUMP,
    BlobCells,
    group_medians,
    keep_clusters,
    neighbour_clusters,
    sorted_clusters,
)
from drivingseg.errors import ConfigError

__all__ = ["RELATIVE_JUMP", "SPLIT_METHODS", "LidarInImage", "ProposalParams", "propose_regions"]

SPLIT_METHODS = ("neighbours", "sorted")
"""``ProposalParams.split``: where a range jump counts (see the module docstring)."""

MIN_ROAD_POINTS = 30
"""Fewest lidar points on road pixels (inliers of the fit, too) for a road plane."""

PLANE_INLIER_M = 0.15
"""A road point farther than this from the plane is left out of its next fit."""

PLANE_FITS = 3
"""Least-squares refits of the road plane (a cambered road converges slowly)."""

MAX_ROAD_SLOPE = 0.2
"""Steepest road plane taken (rise over run in the camera frame, about 11 degrees)."""

PLANE_TRIES = 64
"""Planes through three road points tried as the start of the fit (:func:`_start_plane`)."""


@dataclass(frozen=True)
class ProposalParams:
    """How blobs become boxes (see the module docstring). ``road_class`` None or
    ``ground_clearance_m`` 0 keeps the points on the ground."""

    car_class: int = 2
    min_area_px: int = 40
    depth_jump_m: float = 3.0
    min_points: int = 3
    label: str = "car"
    split: str = "neighbours"
    max_width_px: int = 640
    road_class: int | None = 1
    ground_clearance_m: float = 0.3

    def __post_init__(self) -> None:
        for name, value in (("car_class", self.car_class), ("road_class", self.road_class)):
            if value is None and name == "road_class":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                message = f"{name} must be a class id in 0..255, got {value!r}"
                raise ConfigError(message)
        if not self.ground_clearance_m >= 0:
            message = f"ground_clearance_m must be 0 or more, got {self.ground_clearance_m!r}"
            raise ConfigError(message)
        if self.max_width_px < 16:
            message = f"max_width_px must be at least 16, got {self.max_width_px!r}"
            raise ConfigError(message)
        if self.split not in SPLIT_METHODS:
            message = (f"unknown split method {self.split!r}; valid: "
                       f"{', '.join(SPLIT_METHODS)}")
            raise ConfigError(message)
        if self.min_area_px < 1 or self.min_points < 1:
            message = (
                f"min_area_px and min_points must be at least 1, got {self.min_area_px!r} "
                f"and {self.min_points!r}"
            )
            raise ConfigError(message)
        if not self.depth_jump_m > 0:
            message = f"depth_jump_m must be positive, got {self.depth_jump_m!r}"
            raise ConfigError(message)


def _ground_points(class_ids: npt.NDArray[np.uint8], lidar: LidarInImage,
                   params: ProposalParams) -> npt.NDArray[np.bool_] | None:
    """Points within ``ground_clearance_m`` of the road plane, or None without a plane;
    only the points on car pixels are tested (the others are never a blob's), the rest are
    False.

    The plane ``y = a x + b z + c`` (camera frame, y down) starts as the one most road
    points lie on (:func:`_start_plane`: robust to car pixels the mask calls road, and to
    a camera pitched or rolled on its mount) and is refitted ``PLANE_FITS`` times by least
    squares to the road points within ``PLANE_INLIER_M`` of it. It is used only if it is
    credible: at least ``MIN_ROAD_POINTS`` inliers and half of the road points each
    time, below the camera (``c > 0``) and sloped less than ``MAX_ROAD_SLOPE``. None as
    well when ``road_class`` is None or ``car_class`` (a model whose class 1 is the car).
    """
    if (params.road_class in (None, params.car_class) or params.ground_clearance_m <= 0
            or len(lidar) == 0):
        return None
    point_class = class_ids[lidar.rows, lidar.cols]
    on_road = point_class == params.road_class
    if int(on_road.sum()) < MIN_ROAD_POINTS:
        return None
    road, road_y_m = _plane_design(lidar.xyz_cam_m[on_road])
    coef = _start_plane(road, road_y_m)
    for _ in range(PLANE_FITS):
        fit = np.abs(road @ coef - road_y_m) < PLANE_INLIER_M
        if int(fit.sum()) < max(MIN_ROAD_POINTS, road.shape[0] // 2):
            return None
        coef = np.asarray(np.linalg.lstsq(road[fit], road_y_m[fit], rcond=None)[0], np.float64)
    a, b, c = (float(v) for v in coef)
    if c <= 0 or np.hypot(a, b) > MAX_ROAD_SLOPE:
        return None
    on_car = point_class == params.car_class
    car, car_y_m = _plane_design(lidar.xyz_cam_m[on_car])
    height_m = (car @ coef - car_y_m) / np.sqrt(1.0 + a * a + b * b)
    ground = np.zeros(len(lidar), dtype=bool)
    ground[on_car] = np.abs(height_m) < params.ground_clearance_m
    return ground


def _plane_design(xyz_cam_m: npt.NDArray[np.float32]
                  ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rows ``(x, z, 1)`` and the heights ``y`` (float64) of points for ``y = a x + b z + c``."""
    xyz = xyz_cam_m.astype(np.float64)
    return np.stack([xyz[:, 0], xyz[:, 2], np.ones(xyz.shape[0])], axis=1), xyz[:, 1]


def _start_plane(design: npt.NDArray[np.float64], y_m: npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.float64]:
    """``(a, b, c)`` of the credible plane (below the camera, sloped less than
    ``MAX_ROAD_SLOPE``) with the most road points within ``PLANE_INLIER_M``: the level one
    at their median height, or one through three of them (``PLANE_TRIES``, a fixed seed).
    A level start alone missed the road of a camera pitched by a few degrees (argoverse
    frames 4 degrees down: road points run up the image, few near the median height)."""
    level = np.array([0.0, 0.0, float(np.median(y_m))])
    picks = np.random.default_rng(0).integers(0, len(y_m), size=(PLANE_TRIES, 3))
    triples = design[picks]
    solvable = np.abs(np.linalg.det(triples)) > 1e-9
    tried = np.linalg.solve(triples[solvable], y_m[picks[solvable]][..., None])[..., 0]
    credible = (tried[:, 2] > 0) & (np.hypot(tried[:, 0], tried[:, 1]) <= MAX_ROAD_SLOPE)
    planes = np.vstack([level, tried[credible]])
    off_m = design @ planes.T  # in place below: a frame's road points x 65 planes
    off_m -= y_m[:, None]
    np.abs(off_m, out=off_m)
    support = np.count_nonzero(off_m < PLANE_INLIER_M, axis=0)  # bool .sum(axis=0): 3x slower
    return np.asarray(planes[int(np.argmax(support))], dtype=np.float64)


def _box(ys: npt.NDArray[np.int64], xs: npt.NDArray[np.int64], x0: int, y0: int
         ) -> tuple[float, float, float, float]:
    return (float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + x0 + 1),
            float(ys.max() + y0 + 1))


def _check_inputs(class_ids: npt.NDArray[np.uint8], car_prob: npt.NDArray[np.float32] | None,
                  lidar: LidarInImage | None) -> None:
    if class_ids.ndim != 2 or class_ids.size == 0:
        raise ConfigError(f"class_ids must be H x W, not empty, got shape {class_ids.shape!r}")
    if car_prob is not None and car_prob.shape != class_ids.shape:
        message = (f"car_prob must have the class_ids shape {class_ids.shape!r}, "
                   f"got {car_prob.shape!r}")
        raise ConfigError(message)
    h, w = class_ids.shape
    if lidar is not None and (lidar.width, lidar.height) != (w, h):
        message = (f"lidar was projected for a {lidar.width}x{lidar.height} image but "
                   f"class_ids is {w}x{h} (shape {class_ids.shape!r}); project it at the "
                   f"mask's size (LidarInImage.from_scan(..., image_size=({w}, {h})))")
        raise ConfigError(message)


def propose_regions(
    class_ids: npt.NDArray[np.uint8],
    car_prob: npt.NDArray[np.float32] | None,
    lidar: LidarInImage | None = None,
    params: ProposalParams = ProposalParams(),
) -> list[Detection]:
    """Connected components of the car mask (8-connectivity) -> :class:`Detection` boxes.

    ``score`` is the mean car probability inside the blob (or part; 1.0 when
    ``car_prob`` is None). Blobs whose lidar points form several depth clusters of at
    least ``min_points`` points (``params.split``) are split, each blob pixel joining the
    cluster of its nearest lidar point; points in smaller clusters count as outliers and
    are left out of the range. ``range_m`` / ``centroid_cam_m`` / ``n_points`` come from the median
    of the box's points. Sorted by score descending, then by box. ``lidar`` must be
    projected at the mask's size (:class:`ConfigError` otherwise).
    """
    class_ids = np.asarray(class_ids)
    if car_prob is not None:
        car_prob = np.asarray(car_prob, dtype=np.float32)
    _check_inputs(class_ids, car_prob, lidar)
    width = class_ids.shape[1]
    if width > params.max_width_px:
        return _propose_scaled(class_ids, car_prob, lidar, params)
    mask = (class_ids == params.car_class).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n_labels <= 1:
        return []
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    scores = _blob_scores(labels, mask, car_prob, areas)
    ground = None if lidar is None else _ground_points(class_ids, lidar, params)
    by_blob = _points_by_blob(labels, lidar, ground)
    out: list[Detection] = []
    for k in range(1, n_labels):
        if areas[k] < params.min_area_px:
            continue
        out.extend(_blob_detections(k, labels, stats[k], car_prob, float(scores[k]),
                                    lidar, by_blob.get(k), params))
    out.sort(key=lambda d: (-d.score, d.box_xyxy_px))
    return out


def _blob_scores(labels: npt.NDArray[np.int32], mask: npt.NDArray[np.uint8],
                 car_prob: npt.NDArray[np.float32] | None, areas: npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.float64]:
    """Mean car probability of each blob (1.0 without ``car_prob``), summed over the car
    pixels only: the same sums as over the whole frame, in a fraction of the time."""
    if car_prob is None:
        return np.ones(areas.shape[0])
    on_car = mask.view(bool)
    sums = np.bincount(labels[on_car], weights=car_prob[on_car].astype(np.float64),
                       minlength=areas.shape[0])
    return np.asarray(sums / np.maximum(areas, 1.0), dtype=np.float64)


def _propose_scaled(
    class_ids: npt.NDArray[np.uint8], car_prob: npt.NDArray[np.float32] | None,
    lidar: LidarInImage | None, params: ProposalParams,
) -> list[Detection]:
    """Proposals on the frame scaled down to ``max_width_px`` (the mask comes from a model
    input far smaller than a 1242-pixel frame, so nothing is lost), boxes scaled back up."""
    h, w = class_ids.shape
    s = params.max_width_px / w
    size = (params.max_width_px, max(1, round(h * s)))
    small_ids = np.asarray(cv2.resize(class_ids, size, interpolation=cv2.INTER_NEAREST_EXACT),
                           dtype=np.uint8)
    small_prob = None if car_prob is None else np.asarray(
        cv2.resize(np.asarray(car_prob, np.float32), size, interpolation=cv2.INTER_AREA),
        dtype=np.float32)
    small_lidar = None
    if lidar is not None:  # the small pixel holding each point's pixel centre
        rows = np.minimum(((lidar.rows + 0.5) * (size[1] / h)).astype(np.int64), size[1] - 1)
        cols = np.minimum(((lidar.cols + 0.5) * s).astype(np.int64), size[0] - 1)
        small_lidar = LidarInImage(rows, cols, lidar.range_m, lidar.xyz_cam_m, width=size[0],
                                   height=size[1])
    area = max(1, round(params.min_area_px * s * s))
    small = replace(params, min_area_px=area, max_width_px=size[0])
    sx, sy = w / size[0], h / size[1]
    out = []
    for d in propose_regions(small_ids, small_prob, small_lidar, small):
        x1, y1, x2, y2 = d.box_xyxy_px
        box = (float(np.floor(x1 * sx)), float(np.floor(y1 * sy)), float(min(w, np.ceil(x2 * sx))),
               float(min(h, np.ceil(y2 * sy))))
        out.append(replace(d, box_xyxy_px=box))
    return out


def _points_by_blob(labels: npt.NDArray[np.int32], lidar: LidarInImage | None,
                    ground: npt.NDArray[np.bool_] | None) -> dict[int, npt.NDArray[np.int64]]:
    """Indices of the lidar points on each blob but those on the ground, keyed by blob
    label."""
    if lidar is None or len(lidar) == 0:
        return {}
    blob = labels[lidar.rows, lidar.cols]  # points lie inside the mask: checked on input
    if ground is not None:
        blob = np.where(ground, 0, blob)
    idx = np.flatnonzero(blob > 0)
    blob = blob[idx]
    order = np.argsort(blob, kind="stable")
    idx, blob = idx[order], blob[order]
    starts = np.searchsorted(blob, np.unique(blob))
    return {int(b): part for b, part in zip(np.unique(blob), np.split(idx, starts[1:]),
                                            strict=True)}


def _drop_seen_through(blob: npt.NDArray[np.bool_], part: npt.NDArray[np.int64],
                       cluster: npt.NDArray[np.int64], n_clusters: int) -> bool:
    """Make outliers (-1 in ``cluster``, in place) of the points of each part that touches
    no edge of the blob and is farther than a part beside it: lidar seen through a nearer
    object's windows, not an object of its own (a car behind shows in the blob's outline).
    Clusters are numbered nearest first. True if any was dropped."""
    edge = blob & ~cv2.erode(blob.astype(np.uint8), np.ones((3, 3), np.uint8),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    on_edge = np.zeros(n_clusters, dtype=bool)
    on_edge[part[edge & (part >= 0)]] = True
    dropped = False
    for c in np.flatnonzero(~on_edge):
        inside = (part == c).astype(np.uint8)
        ring = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool) & blob & (part != c)
        if ring.any() and part[ring].min() < c:  # a nearer part is beside it
            cluster[cluster == c] = -1
            dropped = True
    return dropped


def _blob_detections(
    k: int, labels: npt.NDArray[np.int32], stat: npt.NDArray[np.int32],
    car_prob: npt.NDArray[np.float32] | None, score: float, lidar: LidarInImage | None,
    points: npt.NDArray[np.int64] | None, params: ProposalParams,
) -> list[Detection]:
    x0, y0 = int(stat[cv2.CC_STAT_LEFT]), int(stat[cv2.CC_STAT_TOP])
    w, h = int(stat[cv2.CC_STAT_WIDTH]), int(stat[cv2.CC_STAT_HEIGHT])
    box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
    if lidar is None or points is None:
        return [Detection(params.label, score, box)]
    ranges = lidar.range_m[points].astype(np.float64)
    blob = labels[y0:y0 + h, x0:x0 + w] == k
    rows, cols = lidar.rows[points] - y0, lidar.cols[points] - x0
    cells = BlobCells(blob, rows, cols)
    if params.split == "neighbours":
        raw = neighbour_clusters(blob, rows, cols, ranges, params.depth_jump_m, cells.labels)
    else:
        raw = sorted_clusters(ranges, params.depth_jump_m)
    cluster = keep_clusters(raw, ranges, params.min_points)
    n_clusters = int(cluster.max()) + 1
    if n_clusters <= 1:  # no cluster of min_points: every point is an outlier, no range
        stats = _lidar_stats(lidar, points, cluster, 1)
        return [Detection(params.label, score, box, *stats[0])]
    seeds = cluster >= 0
    part = cells.assign(seeds, cluster)
    area = np.bincount(part[blob], minlength=n_clusters)
    small = area < params.min_area_px
    if small.any() and not small.all():  # slivers join their neighbours
        cluster[small[np.maximum(cluster, 0)] & seeds] = -1
        seeds = cluster >= 0
        part = cells.assign(seeds, cluster)
    if _drop_seen_through(blob, part, cluster, n_clusters):
        part = cells.assign(cluster >= 0, cluster)
    return _part_detections(part, car_prob, lidar, points, cluster, n_clusters, (x0, y0),
                            params.label)


def _lidar_stats(lidar: LidarInImage, points: npt.NDArray[np.int64],
                 cluster: npt.NDArray[np.int64], n_clusters: int
                 ) -> list[tuple[float | None, tuple[float, float, float] | None, int]]:
    """Median range, median camera-frame xyz and count of the points of each cluster."""
    mine = cluster >= 0
    sel, ids = points[mine], cluster[mine]
    values = np.c_[lidar.range_m[sel], lidar.xyz_cam_m[sel]].astype(np.float64)
    med = group_medians(ids, values, np.arange(n_clusters))
    counts = np.bincount(ids, minlength=n_clusters)
    return [(None, None, 0) if counts[c] == 0 else
            (float(med[c, 0]), (float(med[c, 1]), float(med[c, 2]), float(med[c, 3])),
             int(counts[c])) for c in range(n_clusters)]


def _part_detections(
    part: npt.NDArray[np.int64], car_prob: npt.NDArray[np.float32] | None,
    lidar: LidarInImage, points: npt.NDArray[np.int64], cluster: npt.NDArray[np.int64],
    n_clusters: int, origin: tuple[int, int], label: str,
) -> list[Detection]:
    """One detection per part of a split blob that kept pixels (``part``: its crop)."""
    x0, y0 = origin
    ys, xs = np.nonzero(part >= 0)
    owner = part[ys, xs]
    order = np.argsort(owner, kind="stable")  # each part's pixels in raster order
    counts = np.bincount(owner, minlength=n_clusters)
    starts = np.cumsum(counts) - counts
    stats = _lidar_stats(lidar, points, cluster, n_clusters)
    out = []
    for c in range(n_clusters):
        if counts[c] == 0:
            continue
        mine = order[starts[c]:starts[c] + counts[c]]
        py, px = ys[mine], xs[mine]
        score = 1.0 if car_prob is None else float(
            np.mean(car_prob[py + y0, px + x0], dtype=np.float64))
        out.append(Detection(label, score, _box(py, px, x0, y0), *stats[c]))
    return out
