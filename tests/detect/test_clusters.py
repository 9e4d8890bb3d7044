"""The vectorised range clustering gives exactly what the loops it replaced gave: on random
blobs (points sharing pixels, range jumps between them) and on real frames end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from support import proposals_reference as ref

from drivingseg.detect.clusters import (
    BlobCells,
    group_medians,
    keep_clusters,
    neighbour_clusters,
    voronoi_labels,
)
from drivingseg.detect.proposals import LidarInImage, ProposalParams, propose_regions
from drivingseg.sensors import open_recording


@st.composite
def blobs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A crop with a blob and points on its pixels (several on some pixels), at ranges of a
    few objects near and far, so that some neighbours jump and some do not."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    h, w = draw(st.integers(2, 40)), draw(st.integers(2, 40))
    blob = rng.random((h, w)) < draw(st.floats(0.3, 1.0))
    blob[rng.integers(h), rng.integers(w)] = True
    ys, xs = np.nonzero(blob)
    n = draw(st.integers(1, 3 * ys.size))
    pick = rng.integers(0, ys.size, n)
    objects = np.array([4.0, 6.5, 12.0, 30.0, 34.0, 70.0])
    ranges = objects[rng.integers(0, objects.size, n)] + rng.normal(0.0, 0.4, n)
    return blob, ys[pick].astype(np.int64), xs[pick].astype(np.int64), ranges


@settings(max_examples=300, deadline=None)
@given(blobs(), st.sampled_from([1, 2, 3, 5]), st.sampled_from([0.5, 3.0]))
def test_clusters_and_pixels_match_the_loops_they_replaced(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], min_points: int,
    depth_jump_m: float,
) -> None:
    blob, rows, cols, ranges = case
    params = ProposalParams(min_points=min_points, depth_jump_m=depth_jump_m)
    cells = BlobCells(blob, rows, cols)
    raw = neighbour_clusters(blob, rows, cols, ranges, depth_jump_m, cells.labels)
    np.testing.assert_array_equal(raw, ref.neighbour_clusters(blob, rows, cols, ranges, params))
    cluster = keep_clusters(raw, ranges, min_points)
    np.testing.assert_array_equal(cluster, ref.keep_clusters(raw, ranges, params))
    sorted_raw = ref.sorted_clusters(ranges, params)
    np.testing.assert_array_equal(keep_clusters(sorted_raw, ranges, min_points),
                                  ref.keep_clusters(sorted_raw, ranges, params))
    for seeds in (cluster >= 0, cluster == 0, np.arange(ranges.size) % 2 == 0):
        if seeds.any():
            np.testing.assert_array_equal(
                cells.assign(seeds, cluster),
                ref.assign_pixels(blob, rows[seeds], cols[seeds], cluster[seeds]))


def test_group_medians_are_numpy_medians() -> None:
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 6, 500)
    values = rng.normal(20.0, 5.0, (500, 4)).astype(np.float32).astype(np.float64)
    wanted = np.array([0, 2, 3, 5, 7])  # 7: no rows
    got = group_medians(groups, values, wanted)
    for i, g in enumerate(wanted[:-1]):
        np.testing.assert_array_equal(got[i], np.median(values[groups == g], axis=0))
    assert np.isnan(got[-1]).all()


def test_pixels_reuse_the_labels_only_for_the_same_seed_pixels() -> None:
    blob = np.ones((6, 9), bool)
    rows, cols = np.array([1, 1, 4]), np.array([1, 1, 7])
    cells = BlobCells(blob, rows, cols)
    cluster = np.array([0, 1, 1])
    # The second point shares the first one's pixel: the last written wins there.
    assert set(np.unique(cells.assign(np.ones(3, bool), cluster))) == {1}
    left = cells.assign(np.array([True, False, True]), np.array([0, -1, 1]))
    np.testing.assert_array_equal(left, ref.assign_pixels(blob, rows[[0, 2]], cols[[0, 2]],
                                                          np.array([0, 1])))
    only_far = cells.assign(np.array([False, False, True]), np.array([-1, -1, 0]))
    assert (only_far == 0).all()
    np.testing.assert_array_equal(cells.labels, voronoi_labels(blob.shape, rows, cols))


def _frames(drive: Path, object_root: Path
            ) -> list[tuple[str, np.ndarray, np.ndarray, LidarInImage]]:
    from drivingseg.model.infer import Segmenter

    seg = Segmenter("default")
    out = []
    for path, indices in ((drive, (0, 15, 29)), (object_root, (0, 1, 2))):
        with open_recording(path) as rec:
            rig = rec.require_rig()
            for i in indices:
                result = seg(rec.camera(i).image, probabilities=True)
                assert result.probs is not None
                lidar = LidarInImage.from_scan(rec.lidar(i).points, rig)
                out.append((f"{path.name}:{i}", result.class_ids, result.probs[2], lidar))
    return out


def test_real_frames_give_the_same_detections_as_before(kitti_raw_drive: Path,
                                                        kitti_object_root: Path) -> None:
    """KITTI raw frames (1242 wide: proposed at 640) and argoverse frames (616: at their own
    size), both split methods, with and without the road plane and the probabilities."""
    variants = [ProposalParams(), ProposalParams(split="sorted"),
                ProposalParams(ground_clearance_m=0.0), ProposalParams(max_width_px=4000)]
    total = 0
    for name, ids, prob, lidar in _frames(kitti_raw_drive, kitti_object_root):
        for params in variants:
            for car_prob in (prob, None):
                new = propose_regions(ids, car_prob, lidar, params)
                with ref.reference_proposals():
                    old = propose_regions(ids, car_prob, lidar, params)
                assert new == old, (name, params)
                total += len(new)
    assert total > 500
