"""The image, its labels, the depth image, the scan and the car boxes agree with each other."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from drivingseg.sensors.synthetic.drive import SyntheticDrive

ROAD, CAR = 1, 2


def _project(
    drive: SyntheticDrive, i: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Pixel (u, v), label and whether the camera sees the same surface, per in-image point."""
    rig = drive.rig()
    pts = drive.lidar(i).points[:, :3].astype(np.float64)
    labels = drive.point_labels(i)
    h = np.hstack([pts, np.ones((len(pts), 1))]) @ rig.lidar_to_pixel_matrix().T
    front = h[:, 2] > 1.0
    uv = np.rint(h[front, :2] / h[front, 2:3]).astype(np.int64)
    w = h[front, 2]
    width, height = rig.camera.width, rig.camera.height
    inside = (uv[:, 0] >= 1) & (uv[:, 0] < width - 1) & (uv[:, 1] >= 1) & (uv[:, 1] < height - 1)
    uv, w, lab = uv[inside], w[inside], labels[front][inside]
    depth = drive.depth(i)[uv[:, 1], uv[:, 0]]
    visible = np.abs(depth - w) < 0.03 * w + 0.15
    return uv, lab, visible


def _any_in_3x3(label_img: npt.NDArray[np.uint8], uv: npt.NDArray[np.int64], value: int):
    hit = np.zeros(len(uv), dtype=bool)
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            hit |= label_img[uv[:, 1] + dv, uv[:, 0] + du] == value
    return hit


@pytest.mark.parametrize("i", [0, 7])
@pytest.mark.parametrize("cls", [ROAD, CAR])
def test_visible_lidar_points_land_on_pixels_of_their_class(
    drive: SyntheticDrive, i: int, cls: int
) -> None:
    uv, lab, visible = _project(drive, i)
    sel = (lab == cls) & visible
    assert sel.sum() > (2000 if cls == ROAD else 300)
    agree = _any_in_3x3(drive.labels(i), uv[sel], cls)
    assert agree.mean() >= 0.98, f"only {agree.mean():.3%} of class {cls} points agree"


def test_most_in_image_points_are_visible_to_the_camera(drive: SyntheticDrive) -> None:
    _, lab, visible = _project(drive, 3)
    assert len(lab) > 10_000
    assert visible.mean() > 0.85


def test_car_points_lie_in_the_car_boxes(drive: SyntheticDrive) -> None:
    for i in (0, 11):
        pts = drive.lidar(i).points[:, :3]
        cars = pts[drive.point_labels(i) == CAR]
        boxes = drive.car_boxes(i, "lidar")
        inside = np.zeros(len(cars), dtype=bool)
        for box in boxes:
            assert box.frame_id == drive.rig().lidar_frame
            inside |= box.contains(cars, margin_m=0.12)
        assert len(cars) > 500
        assert inside.all(), f"{(~inside).sum()} car points outside every box"
        others = pts[drive.point_labels(i) != CAR]
        in_any = np.zeros(len(others), dtype=bool)
        for box in boxes:
            in_any |= box.contains(others, margin_m=-0.1)
        assert not in_any.any()


def test_car_pixels_back_project_into_camera_boxes(drive: SyntheticDrive) -> None:
    i = 4
    cam = drive.rig().camera
    PR = cam.projection_matrix()
    v, u = np.nonzero(drive.labels(i) == CAR)
    w = drive.depth(i)[v, u].astype(np.float64)
    rhs = w[:, None] * np.stack([u, v, np.ones_like(u)], axis=1) - PR[:, 3]
    xyz = np.linalg.solve(PR[:, :3], rhs.T).T
    inside = np.zeros(len(xyz), dtype=bool)
    for box in drive.car_boxes(i, "camera"):
        assert box.frame_id == cam.frame_id
        inside |= box.contains(xyz, margin_m=0.02)
    assert len(xyz) > 1000
    assert inside.all()


def test_road_pixels_lie_on_the_ground(drive: SyntheticDrive) -> None:
    """Back-projected road pixels, taken into the lidar frame, are 1.73 m below the lidar."""
    i = 2
    rig = drive.rig()
    PR = rig.camera.projection_matrix()
    v, u = np.nonzero(drive.labels(i) == ROAD)
    w = drive.depth(i)[v, u].astype(np.float64)
    rhs = w[:, None] * np.stack([u, v, np.ones_like(u)], axis=1) - PR[:, 3]
    xyz_cam = np.linalg.solve(PR[:, :3], rhs.T).T
    xyz_velo = rig.T_cam_velo.inverse().apply(xyz_cam)
    assert np.allclose(xyz_velo[:, 2], -1.73, atol=0.02)
