"""Projection of real KITTI scans against an independent float64 computation, and edge cases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.calibration.kitti import load_kitti_object_rig
from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.errors import CalibrationError, ConfigError
from drivingseg.fusion.projection import (
    calibration_offset_px,
    project_points,
    scale_camera,
    scale_rig,
    visible_points,
)

MIN_DEPTH = 0.5


def parse_calib(path: Path) -> dict[str, np.ndarray]:
    """``key: numbers`` lines of a KITTI calibration file, parsed with plain numpy."""
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        try:
            out[key.strip()] = np.array([float(t) for t in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return out


def hom(R: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    m = np.eye(4)
    if R.size == 12:
        m[:3, :4] = R.reshape(3, 4)
    else:
        m[:3, :3] = R.reshape(3, 3)
    if t is not None:
        m[:3, 3] = t
    return m


def reference(chain: np.ndarray, scan: np.ndarray, w: int, h: int) -> tuple[np.ndarray, ...]:
    """u, v, depth, visible of every point, by the textbook formula in float64."""
    pts = np.hstack([scan[:, :3].astype(np.float64), np.ones((len(scan), 1))])
    hp = pts @ chain.T
    u, v, d = hp[:, 0] / hp[:, 2], hp[:, 1] / hp[:, 2], hp[:, 2]
    vis = (d > MIN_DEPTH) & (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
    return u, v, d, vis


def check_against(proj: object, chain: np.ndarray, scan: np.ndarray, w: int, h: int) -> None:
    u, v, d, vis = reference(chain, scan, w, h)
    assert np.array_equal(proj.visible, vis)  # type: ignore[attr-defined]
    err = np.hypot(proj.u[vis] - u[vis], proj.v[vis] - v[vis])  # type: ignore[attr-defined]
    assert err.max() < 1e-3
    assert np.abs(proj.depth_m[vis] - d[vis]).max() < 1e-6  # type: ignore[attr-defined]
    assert np.array_equal(proj.cols, np.floor(u[vis] + 0.5))  # type: ignore[attr-defined]
    assert np.array_equal(proj.rows, np.floor(v[vis] + 0.5))  # type: ignore[attr-defined]


@pytest.mark.parametrize("frame", ["000000", "000001", "000002"])
def test_argoverse_frames_match_hand_computation(kitti_object_root: Path, frame: str) -> None:
    calib = parse_calib(kitti_object_root / "calib" / f"{frame}.txt")
    chain = calib["P2"].reshape(3, 4) @ hom(calib["R0_rect"]) @ hom(calib["Tr_velo_to_cam"])
    scan = np.fromfile(kitti_object_root / "velodyne" / f"{frame}.bin", np.float32).reshape(-1, 4)
    rig = load_kitti_object_rig(
        kitti_object_root / "calib" / f"{frame}.txt", camera=2, image_size=(616, 514)
    )
    proj = project_points(scan, rig, image_size=(616, 514))
    check_against(proj, chain, scan, 616, 514)
    assert 5000 < proj.n_visible < 6200
    assert proj.n_dropped_nonfinite == 0


@pytest.mark.parametrize("frame", [0, 15, 29])
def test_raw_frames_match_hand_computation(
    kitti_raw_root: Path, kitti_raw_drive: Path, raw_rig: Rig, frame: int
) -> None:
    cam = parse_calib(kitti_raw_root / "calib_cam_to_cam.txt")
    velo = parse_calib(kitti_raw_root / "calib_velo_to_cam.txt")
    chain = cam["P_rect_02"].reshape(3, 4) @ hom(cam["R_rect_00"]) @ hom(velo["R"], velo["T"])
    path = kitti_raw_drive / "velodyne_points" / "data" / f"{frame:010d}.bin"
    scan = np.fromfile(path, np.float32).reshape(-1, 4)
    proj = project_points(scan, raw_rig)
    check_against(proj, chain, scan, 1242, 375)
    assert 14000 < proj.n_visible < 18500


def test_fast_path_equals_full_projection(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    proj = project_points(raw_scan, raw_rig)
    index, rows, cols, depth, n_bad = visible_points(raw_scan, raw_rig)
    assert np.array_equal(index, proj.index)
    assert np.array_equal(rows, proj.rows) and np.array_equal(cols, proj.cols)
    assert np.array_equal(depth, proj.depth_m[proj.index])
    assert n_bad == 0


def test_torch_matches_numpy(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    ref = project_points(raw_scan, raw_rig)
    got = project_points(torch.from_numpy(raw_scan), raw_rig)
    assert isinstance(got.u, torch.Tensor) and got.u.dtype == torch.float64
    assert torch.equal(got.index, torch.from_numpy(ref.index))
    assert torch.equal(got.rows, torch.from_numpy(ref.rows))
    assert np.abs(got.u.numpy() - ref.u).max() < 1e-9
    assert np.abs(got.depth_m.numpy() - ref.depth_m).max() < 1e-9
    fast = visible_points(torch.from_numpy(raw_scan), raw_rig)
    assert torch.equal(fast[0], torch.from_numpy(ref.index))


def test_scaled_intrinsics_equal_scaled_pixels(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    w, h = 621, 188
    scaled = scale_rig(raw_rig, w, h)
    assert scaled.camera.image_size == (w, h)
    sx, sy = w / 1242, h / 375
    full = project_points(raw_scan, raw_rig)
    small = project_points(raw_scan, scaled)
    front = full.depth_m > MIN_DEPTH
    assert np.abs(small.u[front] - (sx * (full.u[front] + 0.5) - 0.5)).max() < 1e-6
    assert np.abs(small.v[front] - (sy * (full.v[front] + 0.5) - 0.5)).max() < 1e-6
    assert np.abs(small.depth_m - full.depth_m).max() < 1e-9
    assert abs(small.n_visible - full.n_visible) < 0.01 * full.n_visible
    assert scale_camera(raw_rig.camera, 1242, 375).image_size == (1242, 375)
    with pytest.raises(ConfigError, match="positive"):
        scale_camera(raw_rig.camera, 0, 10)


def _raw_distorted_rig(kitti_raw_root: Path, D: np.ndarray) -> tuple[Rig, np.ndarray]:
    cam = parse_calib(kitti_raw_root / "calib_cam_to_cam.txt")
    velo = parse_calib(kitti_raw_root / "calib_velo_to_cam.txt")
    K = cam["K_02"].reshape(3, 3)
    camera = CameraModel(
        width=1392,
        height=512,
        K=K,
        D=D,
        distortion_model="rational_polynomial" if D.size > 5 else "plumb_bob",
        image_rectified=False,
        frame_id="cam",
    )
    T = RigidTransform(hom(velo["R"], velo["T"]), "velodyne", "cam")
    return Rig("raw_distorted", camera, T), K


@pytest.mark.parametrize(
    "extra",
    [
        None,
        np.array([0.01, -0.002, 0.001, 0.0005, 0.0002, 0.0001, 0.0]),
        np.array([0.01, -0.002, 0.001, 0.0005, 0.0002, 0.0001, 0.0, 0.01, -0.02]),
    ],
    ids=["plumb_bob", "rational_thin_prism", "with_tilt"],
)
def test_distortion_matches_cv2_project_points(
    kitti_raw_root: Path, raw_scan: np.ndarray, extra: np.ndarray | None
) -> None:
    cam = parse_calib(kitti_raw_root / "calib_cam_to_cam.txt")
    D = cam["D_02"] if extra is None else np.concatenate([cam["D_02"], extra])
    rig, K = _raw_distorted_rig(kitti_raw_root, D)
    proj = project_points(raw_scan, rig)
    assert proj.n_visible > 10000
    xyz_cam = rig.T_cam_velo.apply(raw_scan[:, :3])
    sel = proj.index
    ref, _ = cv2.projectPoints(xyz_cam[sel], np.zeros(3), np.zeros(3), K, D)
    ref = ref.reshape(-1, 2)
    assert np.abs(proj.u[sel] - ref[:, 0]).max() < 1e-6
    assert np.abs(proj.v[sel] - ref[:, 1]).max() < 1e-6
    assert np.abs(proj.depth_m[sel] - xyz_cam[sel, 2]).max() < 1e-9
    tproj = project_points(torch.from_numpy(raw_scan), rig)
    assert torch.equal(tproj.index, torch.from_numpy(proj.index))
    assert np.abs(tproj.u.numpy()[sel] - proj.u[sel]).max() < 1e-9


def test_equidistant_matches_cv2_fisheye(kitti_raw_root: Path, raw_scan: np.ndarray) -> None:
    """ROS's ``equidistant`` model (Kannala-Brandt) on a real scan, numpy and torch alike,
    against ``cv2.fisheye.projectPoints``; where its polynomial folds back nothing shows."""
    D = np.array([-0.05, 0.01, -0.004, 0.0005])
    plain, K = _raw_distorted_rig(kitti_raw_root, np.zeros(5))
    K = K.copy()
    K[0, 1] = 0.4  # a little skew: cv2.fisheye takes it as alpha = K[0, 1] / fx
    camera = replace(plain.camera, K=K, D=D, distortion_model="equidistant")
    rig = replace(plain, camera=camera)
    proj = project_points(raw_scan, rig)
    assert proj.n_visible > 10000
    xyz_cam = rig.T_cam_velo.apply(raw_scan[:, :3])
    sel = proj.index
    ref, _ = cv2.fisheye.projectPoints(xyz_cam[sel][:, None, :], np.zeros(3), np.zeros(3), K, D,
                                       alpha=K[0, 1] / K[0, 0])
    ref = ref.reshape(-1, 2)
    assert np.abs(proj.u[sel] - ref[:, 0]).max() < 1e-6
    assert np.abs(proj.v[sel] - ref[:, 1]).max() < 1e-6
    tproj = project_points(torch.from_numpy(raw_scan), rig)
    assert torch.equal(tproj.index, torch.from_numpy(proj.index))
    assert np.abs(tproj.v.numpy()[sel] - proj.v[sel]).max() < 1e-9
    on_axis = rig.T_cam_velo.inverse().apply(np.array([[0.0, 0.0, 10.0]]))
    centre = project_points(on_axis, rig)
    assert (centre.u[0], centre.v[0]) == pytest.approx((K[0, 2], K[1, 2]))
    folding = replace(camera, D=np.array([-0.6, 0.0, 0.0, 0.0]))
    p_cam = np.array([[np.tan(np.radians(70.0)) * 10.0, 0.0, 10.0]])  # past the fold (43 deg)
    p_velo = rig.T_cam_velo.inverse().apply(p_cam)
    assert project_points(p_velo, replace(rig, camera=folding)).n_visible == 0
    with pytest.raises(CalibrationError, match=r"equidistant \(fisheye\) model takes 4 "
                                               r"coefficients k1\.\.k4, got 5"):
        replace(camera, D=np.zeros(5))
    ideal = replace(camera, D=np.zeros(0))  # theta_d = theta: still a fisheye, not a pinhole
    assert ideal.has_distortion
    proj0 = project_points(raw_scan, replace(rig, camera=ideal))
    ref0, _ = cv2.fisheye.projectPoints(xyz_cam[proj0.index][:, None, :], np.zeros(3),
                                        np.zeros(3), K, np.zeros(4), alpha=K[0, 1] / K[0, 0])
    assert np.abs(proj0.u[proj0.index] - ref0.reshape(-1, 2)[:, 0]).max() < 1e-6


def test_distortion_fold_back_is_not_visible(kitti_raw_root: Path) -> None:
    cam = parse_calib(kitti_raw_root / "calib_cam_to_cam.txt")
    rig, _ = _raw_distorted_rig(kitti_raw_root, cam["D_02"])
    # 80 degrees off axis: the polynomial folds back into the image, the point must not show.
    p_cam = np.array([[np.tan(np.radians(80.0)) * 10.0, 0.0, 10.0]])
    p_velo = rig.T_cam_velo.inverse().apply(p_cam)
    assert project_points(p_velo, rig).n_visible == 0


def test_nonfinite_points_are_dropped_and_counted(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    bad = raw_scan.copy()
    rows = np.arange(0, len(bad), 997)
    bad[rows[::3], 0] = np.nan
    bad[rows[1::3], 1] = np.inf
    bad[rows[2::3], 2] = -np.inf
    clean = project_points(raw_scan, raw_rig)
    proj = project_points(bad, raw_rig)
    assert proj.n_dropped_nonfinite == len(rows)
    assert np.isnan(proj.u[rows]).all() and np.isnan(proj.depth_m[rows]).all()
    assert not proj.visible[rows].any()
    assert np.array_equal(proj.index, np.setdiff1d(clean.index, rows))
    assert visible_points(bad, raw_rig)[4] == len(rows)
    tproj = project_points(torch.from_numpy(bad), raw_rig)
    assert tproj.n_dropped_nonfinite == len(rows)
    assert torch.equal(tproj.index, torch.from_numpy(proj.index))


def test_points_behind_or_too_near_are_invisible(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    mirrored = raw_scan.copy()
    mirrored[:, 0] = -np.abs(mirrored[:, 0]) - 1.0
    assert project_points(mirrored, raw_rig).n_visible == 0
    assert project_points(raw_scan, raw_rig, min_depth_m=1000.0).n_visible == 0


def test_empty_scan(raw_rig: Rig) -> None:
    for empty in (np.zeros((0, 4), np.float32), torch.zeros((0, 3))):
        proj = project_points(empty, raw_rig)
        assert proj.n_points == 0 and proj.n_visible == 0 and proj.n_dropped_nonfinite == 0
        assert visible_points(empty, raw_rig)[0].shape[0] == 0


def test_wrong_image_size_is_refused(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    with pytest.raises(CalibrationError, match=r"640x480 .* calibration is for 1242x375"):
        project_points(raw_scan, raw_rig, image_size=(640, 480))


def test_bad_point_array_shape(raw_rig: Rig) -> None:
    with pytest.raises(ConfigError, match=r"Nx3 or Nx4.*\(10, 5\)"):
        project_points(np.zeros((10, 5)), raw_rig)


def test_a_scan_object_instead_of_its_points_is_named(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    """``lidar_channels(pair.lidar, rig)`` (the LidarScan, not its ``.points``) failed with
    "IndexError: tuple index out of range" from deep inside visible_points."""
    from drivingseg.fusion import depth_image, lidar_channels
    from drivingseg.sensors.frames import LidarScan

    scan = LidarScan(stamp_ns=0, points=raw_scan)
    calls = [
        lambda: visible_points(scan, raw_rig),
        lambda: project_points(scan, raw_rig),
        lambda: depth_image(scan, raw_rig),
        lambda: lidar_channels(scan, raw_rig),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match=r"Nx3 or Nx4 .*a LidarScan \(pass its \.points\)"):
            call()
    with pytest.raises(ConfigError, match=r"Nx3 or Nx4.*got shape \(4,\)"):
        visible_points(np.zeros(4), raw_rig)


def test_rectified_chain_uses_rectification(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    """Dropping R_rect moves points by pixels: the test above would notice a missing R."""
    no_rect = replace(raw_rig, camera=replace(raw_rig.camera, R=np.eye(3)))
    a = project_points(raw_scan, raw_rig)
    b = project_points(raw_scan, no_rect)
    both = a.visible & b.visible
    assert np.hypot(a.u[both] - b.u[both], a.v[both] - b.v[both]).max() > 1.0


@pytest.mark.parametrize("min_depth", [-10.0, float("nan"), float("inf")])
def test_bad_min_depth_is_refused(raw_scan: np.ndarray, raw_rig: Rig, min_depth: float) -> None:
    """A negative minimum let points behind the camera through, mirrored into the image
    (and nearer than real points in the z-buffer); NaN silently made every point invisible."""
    for project in (project_points, visible_points):
        with pytest.raises(ConfigError, match=rf"min_depth_m must be .*got {min_depth!r}"):
            project(raw_scan, raw_rig, min_depth_m=min_depth)
    assert project_points(raw_scan, raw_rig, min_depth_m=0.0).n_visible > 0


def test_missing_rig_is_a_calibration_error(raw_scan: np.ndarray, raw_rig: Rig) -> None:
    """``recording.rig()`` is None without calibration; every fusion entry point failed on
    it with AttributeError "'NoneType' object has no attribute 'camera'"."""
    from drivingseg.fusion import depth_image, draw_overlay, lidar_channels

    image = np.zeros((raw_rig.camera.height, raw_rig.camera.width, 3), np.uint8)
    calls = [
        lambda rig: project_points(raw_scan, rig),
        lambda rig: visible_points(raw_scan, rig),
        lambda rig: scale_rig(rig, 100, 50),
        lambda rig: lidar_channels(raw_scan, rig),
        lambda rig: depth_image(raw_scan, rig),
        lambda rig: draw_overlay(image, raw_scan, rig),
    ]
    for call in calls:
        with pytest.raises(CalibrationError, match="expected a calibration Rig, got NoneType: "
                                                   "the recording has no calibration"):
            call(None)
    with pytest.raises(CalibrationError, match="got CameraModel: pass the rig"):
        project_points(raw_scan, raw_rig.camera)  # type: ignore[arg-type]


def test_visible_points_takes_a_list_as_project_points_does(raw_rig: Rig) -> None:
    """A list of points: project_points took it, visible_points (and so LidarInImage,
    lidar_channels) failed with "'list' object has no attribute 'shape'"."""
    points = [[10.0, 0.0, -1.0], [-10.0, 0.0, 0.0]]
    idx, rows, cols, _, _ = visible_points(points, raw_rig)
    proj = project_points(points, raw_rig)
    np.testing.assert_array_equal(idx, proj.index)
    np.testing.assert_array_equal(rows, proj.rows)
    np.testing.assert_array_equal(cols, proj.cols)
    assert idx.tolist() == [0]


@pytest.mark.parametrize("size", [(621, 187.5), (0, 10), (10, True), (float("nan"), 10)])
def test_scale_to_a_size_that_is_not_whole_pixels_is_refused(raw_rig: Rig,
                                                             size: tuple[float, float]) -> None:
    """Half a KITTI frame, 1242 / 2 x 375 / 2, is 621 x 187.5: the camera got width 621,
    height 187 and intrinsics scaled for 187.5 rows (half a pixel off at the bottom)."""
    with pytest.raises(ConfigError, match="target image size must be positive integers"):
        scale_camera(raw_rig.camera, *size)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="target image size must be positive integers"):
        scale_rig(raw_rig, *size)  # type: ignore[arg-type]
    assert scale_camera(raw_rig.camera, 621.0, 187.0).image_size == (621, 187)  # type: ignore[arg-type]


def test_calibration_offset_tells_another_camera_from_the_same_one(kitti_raw_root: Path) -> None:
    """Camera 2 against camera 3 of one KITTI rig: 0.54 m of baseline, tens of pixels at
    5-20 m; the same rig 0 px; a camera turned round sees none of the points (diagonal)."""
    from drivingseg.calibration.load import load_rig_any

    left = load_rig_any(kitti_raw_root, camera=2)
    right = load_rig_any(kitti_raw_root, camera=3)
    assert calibration_offset_px(left, left) == 0.0
    assert 30.0 < calibration_offset_px(left, right) < 60.0
    turn = np.diag([-1.0, 1.0, -1.0, 1.0]) @ left.T_cam_velo.matrix
    behind = replace(left, T_cam_velo=replace(left.T_cam_velo, matrix=turn))
    diagonal = float(np.hypot(left.camera.width, left.camera.height))
    assert calibration_offset_px(left, behind) == pytest.approx(diagonal)
