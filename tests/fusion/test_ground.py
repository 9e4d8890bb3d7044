"""Ground plane and DBSCAN clusters on real scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.fusion.ground import (
    GroundKeeper,
    GroundPlane,
    fit_ground_plane,
    ground_support,
    segment_scene,
)


def test_raw_ground_plane_is_level_at_lidar_height(raw_scan: np.ndarray) -> None:
    plane = fit_ground_plane(raw_scan)
    assert plane.normal[2] > 0.995
    assert np.linalg.norm(plane.normal) == pytest.approx(1.0)
    assert plane.sensor_height_m == pytest.approx(1.73, abs=0.08)
    again = fit_ground_plane(raw_scan)  # open3d's threads may pick another good plane
    assert np.allclose(plane.coefficients, again.coefficients, atol=0.02)


def test_inliers_are_the_points_on_the_plane(raw_scan: np.ndarray) -> None:
    """n_inliers counted the voxels RANSAC ran on (5297 on this scan), not points: about
    5 % of the scan, where an independent count finds the road to be ~28 % of it."""
    plane = fit_ground_plane(raw_scan)
    xyz = raw_scan[:, :3].astype(np.float64)
    in_range = np.hypot(xyz[:, 0], xyz[:, 1]) <= 40.0
    height = xyz[in_range] @ plane.normal + plane.sensor_height_m
    assert plane.n_inliers == int(np.count_nonzero(np.abs(height) <= 0.15))
    assert 0.2 < plane.n_inliers / raw_scan.shape[0] < 0.4
    tight = fit_ground_plane(raw_scan, distance_threshold_m=0.05)
    assert tight.n_inliers < plane.n_inliers


def test_argoverse_ground_not_confused_with_car_roofs(object_scan: np.ndarray) -> None:
    plane = fit_ground_plane(object_scan)
    assert plane.normal[2] > 0.99
    # The road lies ~0.35 m below this lidar origin; roofs and walls are far higher.
    assert plane.sensor_height_m == pytest.approx(0.35, abs=0.15)


def test_segment_scene_finds_ground_and_cars(raw_scan: np.ndarray) -> None:
    scene = segment_scene(raw_scan)
    ground_frac = scene.ground_mask.mean()
    assert 0.2 < ground_frac < 0.6
    assert (scene.labels[scene.ground_mask] == -1).all()
    assert len(scene.clusters) >= 20
    assert len(scene.car_like) >= 5
    for c in scene.car_like:
        assert c.n_points == int((scene.labels == c.label).sum())
        assert np.all(c.box_min <= c.centroid) and np.all(c.centroid <= c.box_max)
    again = segment_scene(raw_scan, plane=scene.plane)
    assert np.array_equal(scene.labels, again.labels)


def test_nonfinite_points_are_ignored(raw_scan: np.ndarray) -> None:
    bad = raw_scan.copy()
    bad[::50, 2] = np.nan
    scene = segment_scene(bad)
    assert scene.plane.sensor_height_m == pytest.approx(1.73, abs=0.08)
    assert not scene.ground_mask[::50].any() and (scene.labels[::50] == -1).all()


def test_a_scan_object_instead_of_its_points_is_named(raw_scan: np.ndarray) -> None:
    """A LidarScan in place of its ``.points`` was reported as "got shape ()"."""
    from drivingseg.sensors.frames import LidarScan

    scan = LidarScan(stamp_ns=0, points=raw_scan)
    for call in (fit_ground_plane, segment_scene):
        with pytest.raises(ConfigError, match=r"got a LidarScan \(pass its \.points\)"):
            call(scan)


def test_plane_given_as_coefficients(raw_scan: np.ndarray) -> None:
    """A plane as four numbers (saved, or from another fit) failed with AttributeError
    "'numpy.ndarray' object has no attribute 'height_m'"; bad numbers are named."""
    plane = fit_ground_plane(raw_scan)
    scene = segment_scene(raw_scan, plane=plane)
    for given in (-plane.coefficients, plane.coefficients.tolist()):
        again = segment_scene(raw_scan, plane=given)
        np.testing.assert_allclose(again.plane.coefficients, plane.coefficients)
        assert np.array_equal(again.labels, scene.labels)
    with pytest.raises(ConfigError, match=r"4 finite numbers, got \[0\.0, 0\.0, 1\.0\]"):
        segment_scene(raw_scan, plane=[0.0, 0.0, 1.0])


def test_no_ground_raises(tmp_path: Path) -> None:
    wall = np.random.default_rng(0).uniform(-5, 5, size=(2000, 3))
    wall[:, 0] = 3.0  # a vertical plane x = 3 and nothing else
    with pytest.raises(RecordingError, match="no ground plane"):
        fit_ground_plane(wall)
    with pytest.raises(RecordingError, match="only 0 finite points"):
        fit_ground_plane(np.zeros((0, 4), np.float32))


def test_open3d_is_imported_only_when_a_ground_is_fitted() -> None:
    """Training and evaluation import the fusion package; open3d (~0.9 s) waits for use."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, drivingseg.fusion, drivingseg.model.train\n"
            "assert 'open3d' not in sys.modules, 'imported early'\n"
            "from drivingseg.fusion.ground import fit_ground_plane\n"
            "rng = np.random.default_rng(0)\n"
            "pts = np.c_[rng.uniform(-20, 20, (2000, 2)), rng.normal(-1.7, 0.01, 2000)]\n"
            "fit_ground_plane(pts)\n"
            "assert 'open3d' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_collinear_points_give_no_plane_not_nan() -> None:
    """open3d returns zero coefficients for points on one line; the NaN plane they made
    used to pass the tilt check (NaN comparisons are false) and fill heights with NaN."""
    line = np.c_[np.arange(50.0) * 0.5, np.zeros(50), np.full(50, -1.7), np.ones(50)]
    with pytest.raises(RecordingError, match="no ground plane"):
        fit_ground_plane(line.astype(np.float32))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: fit_ground_plane(p, voxel_size_m=0.0), r"voxel_size_m must be .*got 0\.0"),
        (lambda p: fit_ground_plane(p, voxel_size_m=float("nan")), r"voxel_size_m .*got nan"),
        (lambda p: fit_ground_plane(p, distance_threshold_m=-1.0), r"distance_threshold_m .*-1"),
        (lambda p: fit_ground_plane(p, num_iterations=0), r"num_iterations must be .*got 0"),
        (lambda p: segment_scene(p, voxel_size_m=-0.2), r"voxel_size_m must be .*got -0\.2"),
        (lambda p: segment_scene(p, eps_m=0.0), r"eps_m must be .*got 0\.0"),
        # open3d's TypeError tracebacks, a silently empty ground and plane at the lowest
        # points, or "no ground plane" for a setting that cannot be met:
        (lambda p: fit_ground_plane(p, num_iterations=300.0), r"num_iterations must be a whole"),
        (lambda p: fit_ground_plane(p, band_m=0.0), r"band_m must be .*got 0\.0"),
        (lambda p: fit_ground_plane(p, max_tilt_deg=-5.0), r"max_tilt_deg must be in .*-5\.0"),
        (lambda p: fit_ground_plane(p, max_below_fraction=float("nan")),
         r"max_below_fraction must be in \[0, 1\], got nan"),
        (lambda p: segment_scene(p, min_points=2.5), r"min_points must be a whole .*got 2\.5"),
        (lambda p: segment_scene(p, min_points=-3), r"min_points must be a whole .*got -3"),
        (lambda p: segment_scene(p, ground_threshold_m=-1.0), r"ground_threshold_m .*got -1"),
        (lambda p: segment_scene(p, max_height_m=0.1), r"max_height_m must be in \(0\.2, "),
    ],
)
def test_bad_parameters_are_refused(call: Any, match: str) -> None:
    """A zero voxel size raised open3d's RuntimeError; a NaN voxel or a non-positive RANSAC
    threshold or iteration count said "no ground plane", which the height channel swallows."""
    rng = np.random.default_rng(0)
    flat = np.c_[rng.uniform(-20, 20, (2000, 2)), rng.normal(-1.7, 0.01, 2000)]
    with pytest.raises(ConfigError, match=match):
        call(flat)


@pytest.mark.parametrize(
    "coefficients",
    [
        [0.0, 0.0, 1.0, 1.73],
        [0.0, 0.0, -1.0, -1.73],  # open3d's segment_plane may return either sign
        [0.0, 0.0, 2.0, 3.46],  # not normalised
        [0, 0, -4, -6.92],
    ],
)
def test_ground_plane_is_normalised_with_the_normal_up(coefficients: list[float]) -> None:
    """Heights were -1.73 or 3.46 for a point 1.73 m above the road before normalising."""
    plane = GroundPlane(np.array(coefficients), 0)
    np.testing.assert_allclose(plane.coefficients, [0.0, 0.0, 1.0, 1.73])
    road_and_above = np.array([[10.0, 0.0, -1.73], [10.0, 0.0, 0.0]])
    np.testing.assert_allclose(plane.height_m(road_and_above), [0.0, 1.73], atol=1e-12)
    assert plane.sensor_height_m == pytest.approx(1.73)
    assert plane.tilt_deg == pytest.approx(0.0)
    assert plane.coefficients.dtype == np.float64 and not plane.coefficients.flags.writeable


def test_tilted_ground_plane_keeps_its_tilt() -> None:
    plane = GroundPlane(np.array([-0.1, 0.0, -1.0, -1.7]), 5)
    assert plane.normal[2] > 0 and np.linalg.norm(plane.normal) == pytest.approx(1.0)
    assert plane.tilt_deg == pytest.approx(np.degrees(np.arctan(0.1)))
    assert plane.n_inliers == 5


@pytest.mark.parametrize(
    ("coefficients", "match"),
    [
        ([0.0, 0.0, 1.0], r"4 finite numbers, got \[0\.0, 0\.0, 1\.0\]"),
        ([0.0, 0.0, 1.0, float("nan")], r"4 finite numbers, got \[0\.0, 0\.0, 1\.0, nan\]"),
        ([0.0, 0.0, float("inf"), 1.0], r"4 finite numbers"),
        ("abcd", r"4 finite numbers, got 'abcd'"),
        ([0.0, 0.0, 0.0, 1.7], r"normal \(a, b, c\) must be non-zero, got \[0\.0, 0\.0, 0\.0"),
        ([1.0, 0.0, 0.0, 1.7], r"must not be vertical \(c = 0\), got \[1\.0, 0\.0, 0\.0, 1\.7\]"),
    ],
)
def test_bad_ground_plane_refused(coefficients: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GroundPlane(coefficients, 0)


def _scan(drive: Path, index: int) -> np.ndarray:
    path = drive / "velodyne_points" / "data" / f"{index:010d}.bin"
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def _pitched(scan: np.ndarray, deg: float) -> np.ndarray:
    """``scan`` as the lidar sees it pitched by ``deg`` (a crest or a ramp ahead)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    out = scan.copy()
    out[:, :3] = scan[:, :3] @ rot.T
    return out


def test_ground_support_is_the_fits_inlier_share(raw_scan: np.ndarray) -> None:
    """The keeper's cheap check counts what the fit's ``n_inliers`` counts, so a plane's
    share on the scan it was fitted on is its n_inliers over the near points."""
    plane = fit_ground_plane(raw_scan)
    near = np.hypot(raw_scan[:, 0], raw_scan[:, 1]) <= 40.0
    assert ground_support(plane, raw_scan) == pytest.approx(plane.n_inliers / near.sum())
    assert ground_support(plane, _pitched(raw_scan, 3.0)) < 0.2 * plane.n_inliers / near.sum()
    assert ground_support(plane, np.zeros((0, 4), np.float32)) == 0.0


def test_ground_keeper_reuses_the_plane_and_refits_on_schedule(kitti_raw_drive: Path) -> None:
    """The fusion node fitted RANSAC on every scan (25-120 ms on 2 cores); a keeper with
    ``refit_every=3`` fits scans 0 and 3 of six real ones and keeps each plane in between;
    ``refit_every=1`` fits every scan."""
    scans = [_scan(kitti_raw_drive, i) for i in range(6)]
    keeper = GroundKeeper(refit_every=3)
    planes = [keeper.plane_for(scan) for scan in scans]
    assert (keeper.fits, keeper.reused, keeper.forced) == (2, 4, 0)
    assert planes[0] is planes[1] is planes[2] and planes[3] is planes[4] is planes[5]
    assert planes[0] is not planes[3]
    every = GroundKeeper()
    fitted = [every.plane_for(scan) for scan in scans[:3]]
    assert len({id(plane) for plane in fitted}) == 3
    assert (every.fits, every.reused) == (3, 0)


def test_ground_keeper_refits_early_when_the_plane_stops_fitting(raw_scan: np.ndarray) -> None:
    """A kept plane is checked on each scan: pitched 2 degrees (a ramp ahead), its share of
    near points falls from ~0.29 to ~0.10, and the scan is fitted anew, not given the old
    plane; ``min_support_ratio=0`` never refits early."""
    keeper = GroundKeeper(refit_every=10)
    kept = keeper.plane_for(raw_scan)
    assert keeper.plane_for(raw_scan) is kept
    pitched = _pitched(raw_scan, 2.0)
    refitted = keeper.plane_for(pitched)
    assert refitted is not kept and (keeper.fits, keeper.forced) == (2, 1)
    turn_deg = np.degrees(np.arccos(np.clip(refitted.normal @ kept.normal, -1.0, 1.0)))
    assert turn_deg == pytest.approx(2.0, abs=0.5)
    assert ground_support(refitted, pitched) > 0.9 * ground_support(kept, raw_scan)
    lax = GroundKeeper(refit_every=10, min_support_ratio=0.0)
    kept = lax.plane_for(raw_scan)
    assert lax.plane_for(pitched) is kept and lax.forced == 0


def test_ground_keeper_fits_again_after_a_scan_without_ground(raw_scan: np.ndarray) -> None:
    """A scan without ground keeps no plane: the next scan is fitted, not given nothing."""
    rng = np.random.default_rng(0)
    wall = np.c_[np.full(4000, 10.0), rng.uniform(-5, 5, 4000), rng.uniform(-1.5, 2, 4000)]
    keeper = GroundKeeper(refit_every=5)
    with pytest.raises(RecordingError, match="no ground plane"):
        keeper.plane_for(wall)
    assert keeper.plane_for(raw_scan).normal[2] > 0.995
    assert keeper.fits == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"refit_every": 0}, r"refit_every must be a whole number >= 1, got 0"),
        ({"refit_every": 2.5}, r"refit_every must be a whole number >= 1, got 2\.5"),
        ({"min_support_ratio": 1.5}, r"min_support_ratio must be in \[0, 1\], got 1\.5"),
        ({"min_support_ratio": float("nan")}, r"min_support_ratio must be in .*got nan"),
    ],
)
def test_ground_keeper_refuses_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GroundKeeper(**kwargs)
