"""The validated calibration types: as_matrix, check_rotation, RigidTransform, CameraModel, Rig."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.calibration.kitti import load_kitti_raw_rig
from drivingseg.calibration.types import (
    CameraModel,
    Rig,
    RigidTransform,
    as_matrix,
    check_rotation,
)
from drivingseg.errors import CalibrationError, DrivingsegError

K = np.array([[700.0, 0.0, 320.0], [0.0, 710.0, 240.0], [0.0, 0.0, 1.0]])


def rotation(rotvec: list[float]) -> np.ndarray:
    R, _ = cv2.Rodrigues(np.array(rotvec, dtype=np.float64))
    return np.asarray(R)


def test_as_matrix_reshapes_copies_and_freezes() -> None:
    flat = [1, 2, 3, 4, 5, 6]
    m = as_matrix(flat, (2, 3), "M")
    assert m.dtype == np.float64 and m.shape == (2, 3) and m[1, 0] == 4.0
    assert not m.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        m[0, 0] = 9.0
    src = np.ones((2, 2))
    out = as_matrix(src, (2, 2), "M")
    src[0, 0] = 5.0
    assert out[0, 0] == 1.0


@pytest.mark.parametrize(
    ("value", "shape", "message"),
    [
        ([1, 2, 3], (2, 2), r"field 'M': expected 4 values \(shape \(2, 2\)\), got shape \(3,\)"),
        (np.ones((4, 1)), (2, 2), r"field 'M': expected 4 values"),
        ([1.0, float("nan")], (2,), r"field 'M': contains NaN or inf: \[1.0, nan\]"),
        ([1.0, float("inf")], (2,), r"field 'M': contains NaN or inf"),
        (["a", "b"], (2,), r"field 'M': not numeric"),
    ],
)
def test_as_matrix_errors(value: object, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(CalibrationError, match=r"^/x/calib\.txt: " + message):
        as_matrix(value, shape, "M", "/x/calib.txt")


def test_check_rotation() -> None:
    check_rotation(rotation([0.3, -1.0, 2.0]), "R")
    check_rotation(np.round(rotation([0.3, -1.0, 2.0]), 6), "R")  # 6-7 digit files pass
    with pytest.raises(CalibrationError, match=r"field 'R': not a rotation .*det = -1"):
        check_rotation(np.diag([1.0, 1.0, -1.0]), "R")
    with pytest.raises(CalibrationError, match=r"field 'R': not a rotation"):
        check_rotation(np.eye(3) * 1.01, "R")


def test_errors_are_drivingseg_errors_with_path() -> None:
    err = CalibrationError("bad", path=Path("/a/b.txt"))
    assert isinstance(err, DrivingsegError)
    assert err.path == "/a/b.txt" and str(err) == "/a/b.txt: bad"
    assert str(CalibrationError("bad")) == "bad"


def test_rigid_transform_inverse_compose_apply() -> None:
    T_b_a = RigidTransform.from_rt(rotation([0.1, 0.2, 0.3]), [1.0, 2.0, 3.0], "a", "b")
    T_c_b = RigidTransform.from_rt(rotation([-0.5, 0.0, 1.0]), [0.0, -1.0, 0.5], "b", "c")
    pts = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 10.0]])
    np.testing.assert_allclose(T_b_a.inverse().apply(T_b_a.apply(pts)), pts, atol=1e-12)
    T_c_a = T_c_b.compose(T_b_a)
    assert (T_c_a.source_frame, T_c_a.target_frame) == ("a", "c")
    np.testing.assert_allclose(T_c_a.apply(pts), T_c_b.apply(T_b_a.apply(pts)), atol=1e-12)
    inv = T_b_a.inverse()
    assert (inv.source_frame, inv.target_frame) == ("b", "a")
    np.testing.assert_allclose(inv.matrix @ T_b_a.matrix, np.eye(4), atol=1e-12)
    with pytest.raises(CalibrationError, match="frames do not chain"):
        T_b_a.compose(T_c_b)


def test_rigid_transform_validation() -> None:
    bad_row = np.eye(4)
    bad_row[3, 0] = 0.5
    with pytest.raises(CalibrationError, match=r"'T_b_a': last row must be \[0, 0, 0, 1\]"):
        RigidTransform(bad_row, "a", "b")
    with pytest.raises(CalibrationError, match=r"'T_b_a': not a rotation"):
        RigidTransform(np.diag([2.0, 1.0, 1.0, 1.0]), "a", "b")
    with pytest.raises(CalibrationError, match=r"'T_b_a.t': expected 3 values"):
        RigidTransform.from_rt(np.eye(3), [1.0, 2.0], "a", "b")
    T = RigidTransform(np.eye(4), "a", "b")
    assert not T.matrix.flags.writeable


def test_camera_model_defaults_and_projection() -> None:
    cam = CameraModel(640, 480, K)
    assert cam.image_size == (640, 480)
    assert cam.P is not None
    np.testing.assert_array_equal(cam.P, np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(cam.D, np.zeros(5))
    assert not cam.has_distortion
    R = rotation([0.01, -0.02, 0.0])
    cam_r = CameraModel(640, 480, K, R=R, D=np.array([0.1, 0.0, 0.0, 0.0]))
    assert cam_r.has_distortion
    np.testing.assert_allclose(cam_r.projection_matrix()[:, :3], K @ R)
    assert not CameraModel(
        640, 480, K, D=np.array([0.1, 0, 0, 0]), distortion_model="none"
    ).has_distortion


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, r"'width': image size must be a positive integer, got 0"),
        ({"height": -5}, r"'height': image size must be a positive integer, got -5"),
        ({"width": 640.0}, r"'width': image size must be a positive integer, got 640.0"),
        ({"width": True}, r"'width': .*got True"),
        (
            {"distortion_model": "fisheye"},
            r"'distortion_model': unknown model 'fisheye'; valid: none, plumb_bob",
        ),
        ({"K": np.diag([-700.0, 700.0, 1.0])}, r"'K': focal lengths must be positive"),
        ({"K": np.diag([700.0, 700.0, 2.0])}, r"'K': focal lengths .* last row \[0, 0, 1\]"),
        (  # projection has no K[1][0] term: a raw camera's pixels silently ignored it
            {"K": np.array([[700.0, 0.0, 320.0], [5.0, 700.0, 240.0], [0.0, 0.0, 1.0]])},
            r"'K': must be \[\[fx, s, cx\], \[0, fy, cy\], \[0, 0, 1\]\], got K\[1\]\[0\] = 5.0",
        ),
        ({"D": np.zeros(6)}, r"'D': OpenCV takes 4, 5, 8, 12 or 14 coefficients, got 6"),
        ({"R": np.diag([1.0, 1.0, -1.0])}, r"'R': not a rotation"),
        ({"P": np.zeros((3, 4))}, r"'P': focal lengths must be positive"),
        ({"P": np.zeros((3, 3))}, r"'P': expected 12 values"),
    ],
)
def test_camera_model_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"width": 640, "height": 480, "K": K, **kwargs}
    with pytest.raises(CalibrationError, match=r"^/c\.yaml: field " + message):
        CameraModel(path="/c.yaml", **args)  # type: ignore[arg-type]


def test_rig_validation(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig((1, 0, 0, 0), (1, 0, 0, 0), (0.1, 0.2, 0.3))
    assert rig.camera_frame == "cam0" and rig.lidar_frame == "velodyne"
    with pytest.raises(CalibrationError, match="rig name must not be empty"):
        Rig("", rig.camera, rig.T_cam_velo)
    wrong = RigidTransform(np.eye(4), "velodyne", "camera")
    with pytest.raises(
        CalibrationError, match="target frame 'camera' is not the camera frame 'cam0'"
    ):
        Rig("r", rig.camera, wrong)


def test_lidar_to_pixel_matrix_on_kitti(kitti_raw_root: Path) -> None:
    """The composed 3x4 matrix projects like applying T, R and P one after another."""
    rig = load_kitti_raw_rig(kitti_raw_root)
    pts = np.array([[10.0, 1.0, -1.0], [25.0, -3.0, 0.5], [40.0, 5.0, -1.5]])
    cam_pts = rig.T_cam_velo.apply(pts) @ rig.camera.R.T
    assert rig.camera.P is not None
    uvw = np.hstack([cam_pts, np.ones((3, 1))]) @ rig.camera.P.T
    hom = np.hstack([pts, np.ones((3, 1))]) @ rig.lidar_to_pixel_matrix().T
    np.testing.assert_allclose(hom, uvw, atol=1e-9)
    uv = hom[:, :2] / hom[:, 2:]
    assert np.all((uv[:, 0] > 0) & (uv[:, 0] < 1242) & (uv[:, 1] > 0) & (uv[:, 1] < 375))


def test_check_rotation_refuses_nan() -> None:
    """NaN compares false with the tolerance, so a NaN matrix used to pass as a rotation."""
    for bad in (np.full((3, 3), np.nan), np.where(np.eye(3) > 0, np.nan, 0.0)):
        with pytest.raises(CalibrationError, match=r"^/r\.txt: field 'R': not a rotation"):
            check_rotation(bad, "R", "/r.txt")


@pytest.mark.parametrize(
    "last_row", [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 0.0]]
)
def test_camera_model_refuses_degenerate_projection_row(last_row: list[float]) -> None:
    """P's last row gives the depth (w = z + tz); a degenerate one made every point vanish
    (w = 0) or land at wrong pixels and depths, with no error."""
    P = np.vstack([np.hstack([K[:2], np.zeros((2, 1))]), last_row])
    with pytest.raises(
        CalibrationError, match=r"^/c\.yaml: field 'P': .*last row \[0, 0, 1, tz\]"
    ):
        CameraModel(640, 480, K, P=P, path="/c.yaml")
    kitti_like = np.vstack([P[:2], [0.0, 0.0, 1.0, 0.0027]])
    assert CameraModel(640, 480, K, P=kitti_like).P is not None


def test_camera_model_windowed_moves_and_bins_the_pixels() -> None:
    """A sensor window (ROI) and binning: each full-resolution pixel centre lands on its
    window pixel, binned pixel centres at integer coordinates, as scale_camera keeps them."""
    K = np.array([[700.0, 0.0, 620.0], [0.0, 705.0, 187.0], [0.0, 0.0, 1.0]])
    P = np.hstack([K, [[45.0], [0.0], [0.0]]])
    full = CameraModel(1242, 375, K, D=np.array([-0.3, 0.1, 0.0, 0.0, 0.0]), P=P)
    cam = full.windowed(300, 100, 600, 200, 2, 2)
    assert cam.image_size == (300, 100)
    np.testing.assert_array_equal(cam.D, full.D)
    rng = np.random.default_rng(4)
    pts = np.column_stack([rng.uniform(-3, 3, 20), rng.uniform(-1, 1, 20), rng.uniform(5, 30, 20),
                           np.ones(20)])
    raw_full, raw_cam = (np.hstack([c.K, np.zeros((3, 1))]) for c in (full, cam))
    for M_full, M_cam in ((raw_full, raw_cam),
                          (full.projection_matrix(), cam.projection_matrix())):
        uvw_full, uvw_cam = pts @ M_full.T, pts @ M_cam.T
        want = (uvw_full[:, :2] / uvw_full[:, 2:] - [300, 100] + 0.5) / 2 - 0.5
        np.testing.assert_allclose(uvw_cam[:, :2] / uvw_cam[:, 2:], want, atol=1e-9)
    assert full.windowed(0, 0, 1242, 375).image_size == (1242, 375)
    with pytest.raises(CalibrationError, match=r"window 600x200\+700\+0 binned 1x1 does not fit "
                                               r"the calibrated 1242x375 image"):
        full.windowed(700, 0, 600, 200)
