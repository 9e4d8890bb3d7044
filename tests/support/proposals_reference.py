"""The region-proposal steps as they were before they were vectorised (session 16), kept to
check that the fast ones give the same detections and to time them against it
(``benchmarks/bench_big_sensor.py``).

:func:`reference_proposals` swaps them into :mod:`drivingseg.detect.proposals`, so that
``propose_regions`` runs the old per-blob clustering (``np.unique`` of the cell edges,
min-label propagation, a mask and a median per cluster, a Voronoi transform per pixel
assignment) and the old road-plane fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.detect import proposals
from drivingseg.detect.box import Detection, LidarInImage
from drivingseg.detect.proposals import (
    MAX_ROAD_SLOPE,
    MIN_ROAD_POINTS,
    PLANE_FITS,
    PLANE_INLIER_M,
    PLANE_TRIES,
    RELATIVE_JUMP,
    ProposalParams,
)


def ground_points(class_ids: npt.NDArray[np.uint8], lidar: LidarInImage,
                  params: ProposalParams) -> npt.NDArray[np.bool_] | None:
    if (params.road_class in (None, params.car_class) or params.ground_clearance_m <= 0
            or len(lidar) == 0):
        return None
    xyz = lidar.xyz_cam_m.astype(np.float64)
    on_road = class_ids[lidar.rows, lidar.cols] == params.road_class
    if int(on_road.sum()) < MIN_ROAD_POINTS:
        return None
    design = np.c_[xyz[:, 0], xyz[:, 2], np.ones(xyz.shape[0])]
    coef = start_plane(design[on_road], xyz[on_road, 1])
    for _ in range(PLANE_FITS):
        fit = on_road & (np.abs(design @ coef - xyz[:, 1]) < PLANE_INLIER_M)
        if int(fit.sum()) < max(MIN_ROAD_POINTS, int(on_road.sum()) // 2):
            return None
        coef = np.linalg.lstsq(design[fit], xyz[fit, 1], rcond=None)[0]
    a, b, c = (float(v) for v in coef)
    if c <= 0 or np.hypot(a, b) > MAX_ROAD_SLOPE:
        return None
    height_m = (design @ coef - xyz[:, 1]) / np.sqrt(1.0 + a * a + b * b)
    return np.asarray(np.abs(height_m) < params.ground_clearance_m)


def start_plane(design: npt.NDArray[np.float64], y_m: npt.NDArray[np.float64]
                ) -> npt.NDArray[np.float64]:
    level = np.array([0.0, 0.0, float(np.median(y_m))])
    picks = np.random.default_rng(0).integers(0, len(y_m), size=(PLANE_TRIES, 3))
    triples = design[picks]
    solvable = np.abs(np.linalg.det(triples)) > 1e-9
    tried = np.linalg.solve(triples[solvable], y_m[picks[solvable]][..., None])[..., 0]
    credible = (tried[:, 2] > 0) & (np.hypot(tried[:, 0], tried[:, 1]) <= MAX_ROAD_SLOPE)
    planes = np.vstack([level, tried[credible]])
    support = (np.abs(design @ planes.T - y_m[:, None]) < PLANE_INLIER_M).sum(axis=0)
    return np.asarray(planes[int(np.argmax(support))], dtype=np.float64)


def jump(r_a: npt.NDArray[np.float64], r_b: npt.NDArray[np.float64], params: ProposalParams
         ) -> npt.NDArray[np.bool_]:
    gap = np.abs(r_b - r_a)
    return (gap > params.depth_jump_m) & (gap > RELATIVE_JUMP * np.minimum(r_a, r_b))


def sorted_clusters(ranges: npt.NDArray[np.float64], params: ProposalParams
                    ) -> npt.NDArray[np.int64]:
    order = np.argsort(ranges, kind="stable")
    r = ranges[order]
    sorted_ids = np.concatenate([[0], np.cumsum(jump(r[:-1], r[1:], params))])
    ids = np.empty(r.shape[0], dtype=np.int64)
    ids[order] = sorted_ids
    return ids


def voronoi_labels(shape: tuple[int, int], rows: npt.NDArray[np.int64],
                   cols: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    src = np.ones(shape, dtype=np.uint8)
    src[rows, cols] = 0
    _, labels = cv2.distanceTransformWithLabels(
        src, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    return np.asarray(labels, dtype=np.int32)


def neighbour_clusters(
    blob: npt.NDArray[np.bool_], rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64],
    ranges: npt.NDArray[np.float64], params: ProposalParams,
) -> npt.NDArray[np.int64]:
    n = ranges.shape[0]
    labels = voronoi_labels(blob.shape, rows, cols)
    owner = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    owner[labels[rows, cols][::-1]] = np.arange(n)[::-1]
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
    edges = np.stack([key // n, key % n], axis=1)
    edges = edges[~jump(ranges[edges[:, 0]], ranges[edges[:, 1]], params)]
    comp = np.arange(n)
    while True:
        low = np.minimum(comp[edges[:, 0]], comp[edges[:, 1]])
        new = comp.copy()
        np.minimum.at(new, edges[:, 0], low)
        np.minimum.at(new, edges[:, 1], low)
        new = new[new]
        if np.array_equal(new, comp):
            return comp
        comp = new


def keep_clusters(raw: npt.NDArray[np.int64], ranges: npt.NDArray[np.float64],
                  params: ProposalParams) -> npt.NDArray[np.int64]:
    ids = np.full(raw.shape[0], -1, dtype=np.int64)
    uniq, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    big = [u for u in range(uniq.shape[0]) if counts[u] >= params.min_points]
    big.sort(key=lambda u: (float(np.median(ranges[inverse == u])), u))
    for new_id, u in enumerate(big):
        ids[inverse == u] = new_id
    return ids


def assign_pixels(blob: npt.NDArray[np.bool_], seed_rows: npt.NDArray[np.int64],
                  seed_cols: npt.NDArray[np.int64], seed_cluster: npt.NDArray[np.int64],
                  ) -> npt.NDArray[np.int64]:
    labels = voronoi_labels(blob.shape, seed_rows, seed_cols)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lut[labels[seed_rows, seed_cols]] = seed_cluster
    out = np.full(blob.shape, -1, dtype=np.int64)
    out[blob] = lut[labels[blob]]
    return out


def lidar_stats(lidar: LidarInImage, sel: npt.NDArray[np.int64]
                ) -> tuple[float | None, tuple[float, float, float] | None, int]:
    if sel.size == 0:
        return None, None, 0
    med = np.median(lidar.xyz_cam_m[sel].astype(np.float64), axis=0)
    centroid = (float(med[0]), float(med[1]), float(med[2]))
    return float(np.median(lidar.range_m[sel].astype(np.float64))), centroid, int(sel.size)


def drop_seen_through(blob: npt.NDArray[np.bool_], part: npt.NDArray[np.int64],
                      cluster: npt.NDArray[np.int64], n_clusters: int) -> bool:
    edge = blob & ~cv2.erode(blob.astype(np.uint8), np.ones((3, 3), np.uint8),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    on_edge = np.zeros(n_clusters, dtype=bool)
    on_edge[part[edge & (part >= 0)]] = True
    dropped = False
    for c in np.flatnonzero(~on_edge):
        inside = (part == c).astype(np.uint8)
        ring = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool) & blob & (part != c)
        if ring.any() and part[ring].min() < c:
            cluster[cluster == c] = -1
            dropped = True
    return dropped


def blob_scores(labels: npt.NDArray[np.int32], mask: npt.NDArray[np.uint8],
                car_prob: npt.NDArray[np.float32] | None, areas: npt.NDArray[np.float64]
                ) -> npt.NDArray[np.float64]:
    if car_prob is None:
        return np.ones(areas.shape[0])
    sums = np.bincount(labels.ravel(), weights=np.asarray(car_prob, np.float64).ravel(),
                       minlength=areas.shape[0])
    return np.asarray(sums / np.maximum(areas, 1.0), dtype=np.float64)


def blob_detections(
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
        raw = neighbour_clusters(blob, rows, cols, ranges, params)
    else:
        raw = sorted_clusters(ranges, params)
    cluster = keep_clusters(raw, ranges, params)
    n_clusters = int(cluster.max()) + 1
    if n_clusters <= 1:
        rng, centroid, n = lidar_stats(lidar, points[cluster == 0])
        return [Detection(params.label, score, box, rng, centroid, n)]
    seeds = cluster >= 0
    part = assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    area = np.bincount(part[blob], minlength=n_clusters)
    small = area < params.min_area_px
    if small.any() and not small.all():
        cluster[small[np.maximum(cluster, 0)] & seeds] = -1
        seeds = cluster >= 0
        part = assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    if drop_seen_through(blob, part, cluster, n_clusters):
        seeds = cluster >= 0
        part = assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds])
    prob = None if car_prob is None else car_prob[y0:y0 + h, x0:x0 + w]
    out = []
    for c in range(n_clusters):
        ys, xs = np.nonzero(part == c)
        if ys.size == 0:
            continue
        part_score = 1.0 if prob is None else float(np.mean(prob[ys, xs], dtype=np.float64))
        rng, centroid, n = lidar_stats(lidar, points[cluster == c])
        box = (float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + x0 + 1),
               float(ys.max() + y0 + 1))
        out.append(Detection(params.label, part_score, box, rng, centroid, n))
    return out


@contextmanager
def reference_proposals() -> Iterator[None]:
    """``propose_regions`` with the steps above in place of the fast ones."""
    swapped = {"_blob_detections": blob_detections, "_ground_points": ground_points,
               "_blob_scores": blob_scores}
    saved = {name: getattr(proposals, name) for name in swapped}
    try:
        for name, step in swapped.items():
            setattr(proposals, name, step)
        yield
    finally:
        for name, step in saved.items():
            setattr(proposals, name, step)
