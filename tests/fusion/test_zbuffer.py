"""Z-buffer: nearest point wins, ties go to the lowest index; depth images of real scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError
from drivingseg.fusion.projection import scale_rig, visible_points
from drivingseg.fusion.zbuffer import depth_image, zbuffer


def test_nearest_wins_and_ties_go_to_lowest_index() -> None:
    rows = np.array([0, 0, 0, 1, 1, 2, 0, 1], dtype=np.int64)
    cols = np.array([0, 0, 0, 1, 1, 2, 0, 1], dtype=np.int64)
    depth = np.array([5.0, 3.0, 4.0, 7.0, 7.0, 9.0, 3.0, 8.0])
    win = zbuffer(rows, cols, depth, width=4, height=3)
    # pixel (0,0): depths 5, 3, 4, 3 -> index 1 (tie with 6); (1,1): 7, 7, 8 -> 3; (2,2): 5
    assert win.tolist() == [1, 3, 5]
    twin = zbuffer(torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(depth), 4, 3)
    assert twin.tolist() == [1, 3, 5]


def test_result_does_not_depend_on_input_order(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    _, rows, cols, depth, _ = visible_points(raw_scan, raw_rig)
    win = zbuffer(rows, cols, depth, 1242, 375)
    perm = np.random.default_rng(0).permutation(len(depth))
    win_p = zbuffer(rows[perm], cols[perm], depth[perm], 1242, 375)
    a = sorted(zip(rows[win] * 1242 + cols[win], depth[win], strict=True))
    b = sorted(zip(rows[perm][win_p] * 1242 + cols[perm][win_p], depth[perm][win_p], strict=True))
    assert a == b
    assert len(win) == len(np.unique(rows * 1242 + cols))


def test_depth_image_equals_brute_force(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    img = depth_image(raw_scan, raw_rig)
    assert img.shape == (375, 1242) and img.dtype == np.float32
    _, rows, cols, depth, _ = visible_points(raw_scan, raw_rig)
    nearest: dict[tuple[int, int], float] = {}
    for r, c, d in zip(rows.tolist(), cols.tolist(), depth.tolist(), strict=True):
        if d < nearest.get((r, c), np.inf):
            nearest[(r, c)] = d
    ref = np.zeros((375, 1242), np.float32)
    for (r, c), d in nearest.items():
        ref[r, c] = d
    assert np.array_equal(img, ref)
    assert 15000 < np.count_nonzero(img) < 18000
    assert img[img > 0].min() > 2.0 and img.max() < 90.0


def test_depth_image_torch_and_other_resolution(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    img = depth_image(raw_scan, raw_rig)
    assert np.array_equal(depth_image(torch.from_numpy(raw_scan), raw_rig), img)
    small = depth_image(raw_scan, raw_rig, width=621, height=188)
    assert small.shape == (188, 621)
    assert np.array_equal(small, depth_image(raw_scan, scale_rig(raw_rig, 621, 188)))
    # Fewer pixels, but the nearest depths survive: the closest point is the same.
    assert np.count_nonzero(small) < np.count_nonzero(img)
    assert small[small > 0].min() == pytest.approx(img[img > 0].min())


def test_half_a_kitti_frame_is_refused_not_cut_to_whole_rows(raw_scan: np.ndarray,
                                                             raw_rig: Rig) -> None:
    """1242 / 2 x 375 / 2 = 621 x 187.5 was cut to a 187-row image by int(), one row short
    of the 188 rows cv2.resize(fx=0.5, fy=0.5) makes of the frame, where scale_rig refuses
    that size."""
    with pytest.raises(ConfigError, match=r"positive integers, got 621\.0x187\.5"):
        depth_image(raw_scan, raw_rig, width=1242 / 2, height=375 / 2)
    whole = depth_image(raw_scan, raw_rig, width=621.0, height=188.0)
    assert np.array_equal(whole, depth_image(raw_scan, raw_rig, width=621, height=188))


def test_empty_scan_gives_empty_image(raw_rig: Rig) -> None:
    img = depth_image(np.zeros((0, 4), np.float32), raw_rig)
    assert img.shape == (375, 1242) and not img.any()
    assert zbuffer(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 4, 3).size == 0


def test_length_mismatch_is_refused() -> None:
    with pytest.raises(ConfigError, match="equal length"):
        zbuffer(np.zeros(2, np.int64), np.zeros(3, np.int64), np.zeros(3), 4, 3)
