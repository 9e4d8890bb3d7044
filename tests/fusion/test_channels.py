"""Lidar image channels on a real scan, and IP-Basic densification."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError
from drivingseg.fusion.channels import CHANNEL_NAMES, StreamNotes, densify_depth, lidar_channels
from drivingseg.fusion.ground import GroundKeeper, fit_ground_plane
from drivingseg.fusion.zbuffer import depth_image


def test_channels_of_real_scan(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    plane = fit_ground_plane(raw_scan)
    ch = lidar_channels(raw_scan, raw_rig, plane=plane)
    assert (ch.width, ch.height) == (1242, 375)
    valid = ch.valid > 0
    assert np.array_equal(ch.depth_m, depth_image(raw_scan, raw_rig))
    assert np.array_equal(valid, ch.depth_m > 0)
    assert not ch.height_m[~valid].any() and not ch.intensity[~valid].any()
    assert ch.intensity.min() >= 0.0 and ch.intensity.max() <= 1.0
    assert ch.intensity[valid].mean() > 0.05
    # Road in front (bottom rows, centre) is at ground level; the lorry side on the right is not.
    road = ch.height_m[340:375, 560:680][valid[340:375, 560:680]]
    assert np.abs(np.median(road)) < 0.1
    lorry = ch.height_m[120:200, 1100:1240][valid[120:200, 1100:1240]]
    assert np.median(lorry) > 1.0
    stacked = ch.stack()
    assert stacked.shape == (4, 375, 1242) and stacked.dtype == np.float32
    assert np.array_equal(stacked[CHANNEL_NAMES.index("valid")], ch.valid)


def test_channels_take_the_plane_as_coefficients(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    """``plane=`` as four numbers failed with AttributeError "'numpy.ndarray' object has no
    attribute 'height_m'"."""
    plane = fit_ground_plane(raw_scan)
    expected = lidar_channels(raw_scan, raw_rig, plane=plane).height_m
    given = lidar_channels(raw_scan, raw_rig, plane=plane.coefficients * -2.0).height_m
    np.testing.assert_allclose(given, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="must not be vertical"):
        lidar_channels(raw_scan, raw_rig, plane=[1.0, 0.0, 0.0, 1.7])


def test_channels_fit_plane_and_other_resolution(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    ch = lidar_channels(raw_scan, raw_rig, width=320, height=96)
    assert ch.stack().shape == (4, 96, 320)
    road = ch.height_m[86:96, 144:176][ch.valid[86:96, 144:176] > 0]
    assert np.abs(np.median(road)) < 0.1


def test_channels_refuse_a_size_that_is_not_whole_pixels(raw_scan: np.ndarray,
                                                         raw_rig: Rig) -> None:
    """Half a KITTI frame (621 x 187.5) gave 187-row channels, silently one row short of the
    188-row frame cv2.resize makes, where scale_rig refuses it; whole floats are taken."""
    with pytest.raises(ConfigError, match=r"positive integers, got 621\.0x187\.5"):
        lidar_channels(raw_scan, raw_rig, width=1242 / 2, height=375 / 2)
    ch = lidar_channels(raw_scan, raw_rig, width=621.0, height=188.0)  # type: ignore[arg-type]
    assert (ch.width, ch.height) == (621, 188)


def test_densified_depth_fills_and_keeps_measurements(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    sparse = lidar_channels(raw_scan, raw_rig, densify=False)
    dense = lidar_channels(raw_scan, raw_rig, densify=True)
    assert dense.densified and np.array_equal(dense.valid, sparse.valid)
    lower = slice(200, 375)
    assert np.count_nonzero(dense.depth_m[lower]) > 0.95 * dense.depth_m[lower].size
    measured = sparse.valid > 0
    diff = np.abs(dense.depth_m[measured] - sparse.depth_m[measured])
    assert np.median(diff) < 0.2
    assert not dense.depth_m[:20].any()  # sky above the top laser stays empty


def test_densify_edge_cases() -> None:
    assert not densify_depth(np.zeros((10, 10), np.float32)).any()
    with pytest.raises(ConfigError, match="2-D"):
        densify_depth(np.zeros((2, 2, 2)))
    one = np.zeros((40, 40), np.float32)
    one[20, 20] = 12.5
    filled = densify_depth(one)
    assert filled[20, 20] == pytest.approx(12.5, abs=1e-3) and np.count_nonzero(filled) > 1
    with pytest.raises(ConfigError, match="must exceed"):
        densify_depth(one, max_depth_m=10.0)


def test_empty_scan_channels(raw_rig: Rig) -> None:
    ch = lidar_channels(np.zeros((0, 4), np.float32), raw_rig, densify=True)
    assert ch.stack().shape == (4, 375, 1242) and not ch.stack().any()


def test_densify_treats_nan_and_inf_as_empty() -> None:
    """Float depth images often mark "no return" with NaN (depth_to_png16 takes it as none):
    one such pixel made the inversion constant NaN and the whole densified image 0."""
    one = np.zeros((40, 40), np.float32)
    one[20, 20] = 12.5
    expected = densify_depth(one)
    for hole in (np.nan, np.inf, -np.inf):
        holed = one.copy()
        holed[0, 0] = hole
        assert np.array_equal(densify_depth(holed), expected)
    with pytest.raises(ConfigError, match=r"max_depth_m=nan must exceed"):
        densify_depth(one, max_depth_m=float("nan"))


def _wall(n: int = 4000) -> np.ndarray:
    """A vertical wall 10 m ahead and nothing else: no ground plane to fit."""
    rng = np.random.default_rng(0)
    return np.stack([np.full(n, 10.0), rng.uniform(-5, 5, n), rng.uniform(-1.5, 2.0, n),
                     np.full(n, 0.5)], axis=1).astype(np.float32)


def test_a_velodyne_drivers_0_255_intensity_gives_kittis_0_1_channel(
    raw_scan: np.ndarray, raw_rig: Rig, object_scan: np.ndarray, object_rig: Rig,
) -> None:
    """A Velodyne ROS driver publishes intensity 0..255 (float32), KITTI 0..1: the channel
    passed it raw, so a model trained on KITTI or synthetic scans got inputs 255x larger
    from a bag. Each scan's scale is found (1, 255 or 65535) and divided out."""
    kitti = lidar_channels(raw_scan, raw_rig, plane=[0.0, 0.0, 1.0, 1.73])
    driver = raw_scan.copy()
    driver[:, 3] = np.round(driver[:, 3] * 255.0)
    bag = lidar_channels(driver, raw_rig, plane=[0.0, 0.0, 1.0, 1.73])
    valid = kitti.valid > 0
    assert kitti.intensity_scale == 1.0 and bag.intensity_scale == 255.0
    assert bag.intensity.max() <= 1.0
    np.testing.assert_allclose(bag.intensity[valid], kitti.intensity[valid], atol=0.5 / 255)
    sixteen = raw_scan.copy()
    sixteen[:, 3] *= 65535.0
    assert lidar_channels(sixteen, raw_rig, plane=[0.0, 0.0, 1.0, 1.73]).intensity_scale == 65535
    given = lidar_channels(driver, raw_rig, plane=[0.0, 0.0, 1.0, 1.73], intensity_scale=100.0)
    assert given.intensity_scale == 100.0 and given.intensity.max() == 1.0  # clipped
    argoverse = lidar_channels(object_scan, object_rig, plane=[0.0, 0.0, 1.0, 1.73])
    assert argoverse.intensity_scale == 1.0  # its copies are all 1.0: left as they are
    for bad in (0.0, -1.0, float("nan"), "x"):
        with pytest.raises(ConfigError, match=r"intensity_scale must be a positive number"):
            lidar_channels(raw_scan, raw_rig, intensity_scale=bad)  # type: ignore[arg-type]


def test_no_ground_warns_once_per_stream_and_counts(
    raw_rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a ground plane every call logged 'height channel left at 0': a fusion node
    warned at 10 Hz. With a stream's notes it warns once and counts; a lone call warns."""
    notes = StreamNotes("fusion")
    with caplog.at_level(logging.WARNING, logger="drivingseg.fusion.channels"):
        for _ in range(3):
            channels = lidar_channels(_wall(), raw_rig, notes=notes)
    assert channels.no_ground is not None and not channels.height_m.any()
    assert [r.getMessage() for r in caplog.records if "height channel" in r.getMessage()] == [
        f"fusion: height channel left at 0: {channels.no_ground}; warned once, counted"]
    assert notes.scans == notes.scans_without_ground == 3
    assert notes.summary() == ("fusion: 3 of 3 lidar scans had no ground plane; their height "
                               "channel is 0")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drivingseg.fusion.channels"):
        lidar_channels(_wall(), raw_rig)
    assert any("height channel left at 0" in r.getMessage() for r in caplog.records)


def test_channels_take_the_streams_kept_ground_plane(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    """With a stream's ``ground_keeper`` the height channel of a later scan uses the plane
    kept from an earlier one, with no RANSAC fit of its own; without one, each scan is
    fitted as before (training and eval)."""
    keeper = GroundKeeper(refit_every=4)
    first = lidar_channels(raw_scan, raw_rig, ground_keeper=keeper)
    kept = keeper.plane
    assert kept is not None
    moved = raw_scan.copy()
    moved[:, 2] += 0.05  # the next scan: the car rose 5 cm, the ground still fits
    second = lidar_channels(moved, raw_rig, ground_keeper=keeper)
    assert (keeper.fits, keeper.reused) == (1, 1)
    np.testing.assert_array_equal(second.height_m, lidar_channels(moved, raw_rig,
                                                                  plane=kept).height_m)
    rows, cols = slice(340, 375), slice(560, 680)  # the road ahead
    road_m = [float(np.median(ch.height_m[rows, cols][ch.valid[rows, cols] > 0]))
              for ch in (first, second)]
    assert road_m[1] - road_m[0] == pytest.approx(0.05, abs=0.01)
