"""Region proposals: boxes around the car blobs of a segmentation, split and ranged by lidar.

Each 8-connected blob of the car class becomes a box. When lidar points fall on a blob
they are clustered by range: a step of more than ``depth_jump_m`` (and more than 15 % of
the nearer range) separates two objects. ``split="sorted"`` cuts the blob's sorted
ranges at each such gap; that fails on real street scenes, where a queue of cars makes
one blob whose ranges run on without a gap (on argoverse_kitti frame 0 it leaves one
image-wide box). The default ``split="neighbours"`` cuts only between points whose
image cells touch (the Voronoi cells of the labelled distance transform, within the
blob), so the car 9 m ahead and the cars 20 m behind it part where they meet in the
image. Clusters under ``min_points`` are outliers; a part smaller than ``min_area_px``
gives its pixels to its neighbours. Every blob pixel goes to the cluster of its nearest
lidar point (OpenCV's labelled distance transform), each part becoming a box. A part
that touches no edge of its blob and lies farther than a part beside it is lidar seen
through a nearer car's windows: its points are left out and its pixels join the car
(on the shared KITTI frames 0, 15 and 29 this removes 11, 3 and 3 of 44, 23 and 30 boxes;
on argoverse_kitti 21 of 100 proposals, AP unchanged). Parts that reach the blob's
outline are still split, so dense traffic can over-split somewhat.

Box convention (used by :mod:`drivingseg.detect.evaluate` too): ``box_xyxy_px`` is
``(x1, y1, x2, y2)`` with exclusive right/bottom edges, i.e. a blob covering columns
10..19 and rows 5..9 has the box ``(10, 5, 20, 10)``; width is ``x2 - x1``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.detect.box import Detection
from drivingseg.errors import ConfigError
from drivingseg.fusion.projection import scale_rig, visible_points

__all__ = ["RELATIVE_JUMP", "SPLIT_METHODS", "LidarInImage", "ProposalParams", "propose_regions"]

SPLIT_METHODS = ("neighbours", "sorted")
"""``ProposalParams.split``: where a range jump counts (see the module docstring)."""

RELATIVE_JUMP = 0.15
"""A range gap must also exceed this fraction of the nearer range to split a blob
(3 m between cars at 60 m and 63 m is within lidar spread on one car's surfaces)."""


@dataclass(frozen=True, eq=False)
class LidarInImage:
    """Lidar points visible in one camera image of ``width`` x ``height`` pixels: pixel
    rows/cols (int64, inside that image), range from the lidar (m), xyz in the camera frame
    (N x 3, m).

    The camera frame is the rectified one (``R @ T_cam_velo @ p``) for rectified images,
    the raw camera frame (``T_cam_velo @ p``) otherwise: x right, y down, z forward.
    :func:`propose_regions` refuses a mask of another size than the image.
    """

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    range_m: npt.NDArray[np.float32]
    xyz_cam_m: npt.NDArray[np.float32]
    width: int
    height: int

    def __post_init__(self) -> None:
        n = int(self.rows.shape[0])
        shapes = (self.cols.shape, self.range_m.shape, self.xyz_cam_m.shape)
        if shapes != ((n,), (n,), (n, 3)):
            message = (
                f"LidarInImage arrays disagree: rows {self.rows.shape!r}, cols "
                f"{self.cols.shape!r}, range_m {self.range_m.shape!r}, xyz_cam_m "
                f"{self.xyz_cam_m.shape!r} (want N, N, N, N x 3)"
            )
            raise ConfigError(message)
        for name, value in (("width", self.width), ("height", self.height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                message = f"LidarInImage {name} must be a positive integer, got {value!r}"
                raise ConfigError(message)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        for name, pixels, size in (("rows", self.rows, self.height), ("cols", self.cols,
                                                                      self.width)):
            if n and (int(pixels.min()) < 0 or int(pixels.max()) >= size):
                message = (f"LidarInImage {name} must lie in 0..{size - 1} for a "
                           f"{self.width}x{self.height} image, got "
                           f"{int(pixels.min())!r}..{int(pixels.max())!r}")
                raise ConfigError(message)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def from_scan(cls, points: npt.NDArray[np.float32], rig: Rig,
                  image_size: tuple[int, int] | None = None) -> LidarInImage:
        """Points (N x >=3, lidar frame) that land in ``rig.camera``'s image, or in that
        image resized to ``image_size`` (width, height; the rig is scaled with
        :func:`~drivingseg.fusion.projection.scale_rig`)."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 3:
            message = f"points must be N x 3 or more (x, y, z, ...), got shape {pts.shape!r}"
            raise ConfigError(message)
        if image_size is not None:
            rig = scale_rig(rig, *image_size)
        idx, rows, cols, _, _ = visible_points(pts[:, :4] if pts.shape[1] > 4 else pts, rig)
        xyz = pts[idx, :3].astype(np.float64)
        T = rig.T_cam_velo.matrix
        R = T[:3, :3]
        if rig.camera.image_rectified:
            R = rig.camera.R @ R
            t = rig.camera.R @ T[:3, 3]
        else:
            t = T[:3, 3]
        cam = xyz @ R.T + t
        return cls(
            rows=np.asarray(rows, dtype=np.int64),
            cols=np.asarray(cols, dtype=np.int64),
            range_m=np.linalg.norm(xyz, axis=1).astype(np.float32),
            xyz_cam_m=cam.astype(np.float32),
            width=rig.camera.width,
            height=rig.camera.height,
        )


@dataclass(frozen=True)
class ProposalParams:
    """How blobs become boxes (see the module docstring)."""

    car_class: int = 2
    min_area_px: int = 40
    depth_jump_m: float = 3.0
    min_points: int = 3
    label: str = "car"
    split: str = "neighbours"
    max_width_px: int = 640

    def __post_init__(self) -> None:
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


def _jump(r_a: npt.NDArray[np.float64], r_b: npt.NDArray[np.float64], params: ProposalParams
          ) -> npt.NDArray[np.bool_]:
    """Whether the range step from ``r_a`` to ``r_b`` separates two objects."""
    gap = np.abs(r_b - r_a)
    return (gap > params.depth_jump_m) & (gap > RELATIVE_JUMP * np.minimum(r_a, r_b))


def _sorted_clusters(ranges: npt.NDArray[np.float64], params: ProposalParams
                     ) -> npt.NDArray[np.int64]:
    """Raw cluster id per point: cut the sorted ranges at every jump."""
    order = np.argsort(ranges, kind="stable")
    r = ranges[order]
    sorted_ids = np.concatenate([[0], np.cumsum(_jump(r[:-1], r[1:], params))])
    ids = np.empty(r.shape[0], dtype=np.int64)
    ids[order] = sorted_ids
    return ids


def _voronoi_labels(shape: tuple[int, int], rows: npt.NDArray[np.int64],
                    cols: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """Label of the nearest seed pixel for every pixel of a crop (OpenCV's labels)."""
    src = np.ones(shape, dtype=np.uint8)
    src[rows, cols] = 0
    _, labels = cv2.distanceTransformWithLabels(
        src, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    return np.asarray(labels, dtype=np.int32)


def _neighbour_clusters(
    blob: npt.NDArray[np.bool_], rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64],
    ranges: npt.NDArray[np.float64], params: ProposalParams,
) -> npt.NDArray[np.int64]:
    """Raw cluster id per point: points whose image cells touch inside the blob (across
    an edge or, as the blob's own pixels, a corner) stay together unless their ranges
    jump (connected components of that graph)."""
    n = ranges.shape[0]
    labels = _voronoi_labels(blob.shape, rows, cols)
    owner = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    owner[labels[rows, cols][::-1]] = np.arange(n)[::-1]  # first point on each pixel
    pairs = [np.stack([np.arange(n), owner[labels[rows, cols]]], axis=1)]
    for a, b, inside in (
        (labels[:, :-1], labels[:, 1:], blob[:, :-1] & blob[:, 1:]),
        (labels[:-1, :], labels[1:, :], blob[:-1, :] & blob[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:], blob[:-1, :-1] & blob[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1], blob[:-1, 1:] & blob[1:, :-1]),
    ):
        touch = inside & (a != b)
        pairs.append(np.stack([owner[a[touch]], owner[b[touch]]], axis=1))
    both = np.concatenate(pairs)
    key = np.unique(np.minimum(both[:, 0], both[:, 1]) * n + np.maximum(both[:, 0], both[:, 1]))
    edges = np.stack([key // n, key % n], axis=1)  # one row per undirected edge (1-D unique: fast)
    edges = edges[~_jump(ranges[edges[:, 0]], ranges[edges[:, 1]], params)]
    comp = np.arange(n)
    while True:  # min-label propagation with pointer jumping
        low = np.minimum(comp[edges[:, 0]], comp[edges[:, 1]])
        new = comp.copy()
        np.minimum.at(new, edges[:, 0], low)
        np.minimum.at(new, edges[:, 1], low)
        new = new[new]
        if np.array_equal(new, comp):
            return comp
        comp = new


def _keep_clusters(raw: npt.NDArray[np.int64], ranges: npt.NDArray[np.float64],
                   params: ProposalParams) -> npt.NDArray[np.int64]:
    """Renumber clusters of at least ``min_points`` 0, 1, ... by median range; others -1."""
    ids = np.full(raw.shape[0], -1, dtype=np.int64)
    uniq, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    big = [u for u in range(uniq.shape[0]) if counts[u] >= params.min_points]
    big.sort(key=lambda u: (float(np.median(ranges[inverse == u])), u))
    for new_id, u in enumerate(big):
        ids[inverse == u] = new_id
    return ids


def _assign_pixels(
    blob: npt.NDArray[np.bool_], seed_rows: npt.NDArray[np.int64],
    seed_cols: npt.NDArray[np.int64], seed_cluster: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Cluster of each pixel of ``blob`` (a crop): that of its nearest seed point."""
    labels = _voronoi_labels(blob.shape, seed_rows, seed_cols)
    # Several points can share a pixel: the last written wins, which is deterministic.
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lut[labels[seed_rows, seed_cols]] = seed_cluster
    out = np.full(blob.shape, -1, dtype=np.int64)
    out[blob] = lut[labels[blob]]
    return out


def _lidar_stats(
    lidar: LidarInImage, sel: npt.NDArray[np.int64]
) -> tuple[float | None, tuple[float, float, float] | None, int]:
    if sel.size == 0:
        return None, None, 0
    med = np.median(lidar.xyz_cam_m[sel].astype(np.float64), axis=0)
    centroid = (float(med[0]), float(med[1]), float(med[2]))
    return float(np.median(lidar.range_m[sel].astype(np.float64))), centroid, int(sel.size)


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
    _check_inputs(class_ids, car_prob, lidar)
    width = class_ids.shape[1]
    if width > params.max_width_px:
        return _propose_scaled(class_ids, car_prob, lidar, params)
    mask = (class_ids == params.car_class).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n_labels <= 1:
        return []
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    if car_prob is None:
        scores = np.ones(n_labels)
    else:
        sums = np.bincount(labels.ravel(), weights=np.asarray(car_prob, np.float64).ravel(),
                           minlength=n_labels)
        scores = sums / np.maximum(areas, 1.0)
    by_blob = _points_by_blob(labels, lidar)
    out: list[Detection] = []
    for k in range(1, n_labels):
        if areas[k] < params.min_area_px:
            continue
        out.extend(_blob_detections(k, labels, stats[k], car_prob, float(scores[k]),
                                    lidar, by_blob.get(k), params))
    out.sort(key=lambda d: (-d.score, d.box_xyxy_px))
    return out


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


def _points_by_blob(labels: npt.NDArray[np.int32], lidar: LidarInImage | None
                    ) -> dict[int, npt.NDArray[np.int64]]:
    """Indices of the lidar points on each blob, keyed by blob label."""
    if lidar is None or len(lidar) == 0:
        return {}
    blob = labels[lidar.rows, lidar.cols]  # points lie inside the mask: checked on input
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
    if params.split == "neighbours":
        raw = _neighbour_clusters(blob, rows, cols, ranges, params)
    else:
        raw = _sorted_clusters(ranges, params)
    cluster = _keep_clusters(raw, ranges, params)
    n_clusters = int(cluster.max()) + 1
    if n_clusters <= 1:  # no cluster of min_points: every point is an outlier, no range
        rng, centroid, n = _lidar_stats(lidar, points[cluster == 0])
        return [Detection(params.label, score, box, rng, centroid, n)]
    seeds = cluster >= 0
    part = _assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    area = np.bincount(part[blob], minlength=n_clusters)
    small = area < params.min_area_px
    if small.any() and not small.all():  # slivers join their neighbours
        cluster[small[np.maximum(cluster, 0)] & seeds] = -1
        seeds = cluster >= 0
        part = _assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    if _drop_seen_through(blob, part, cluster, n_clusters):
        seeds = cluster >= 0
        part = _assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    prob = None if car_prob is None else car_prob[y0:y0 + h, x0:x0 + w]
    out = []
    for c in range(n_clusters):
        ys, xs = np.nonzero(part == c)
        if ys.size == 0:
            continue
        part_score = 1.0 if prob is None else float(np.mean(prob[ys, xs], dtype=np.float64))
        rng, centroid, n = _lidar_stats(lidar, points[cluster == c])
        out.append(Detection(params.label, part_score, _box(ys, xs, x0, y0), rng, centroid, n))
    return out
