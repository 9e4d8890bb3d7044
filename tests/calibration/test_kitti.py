"""KITTI calibration loaders and writer, on the real files of the shared data."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivingseg.calibration.kitti import (
    load_kitti_object_rig,
    load_kitti_raw_rig,
    parse_kitti_calib_file,
    save_kitti_raw_calib,
)
from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.errors import CalibrationError, ConfigError

OBJECT_SIZE = (616, 514)
RAW_SIZE = (1242, 375)


def file_numbers(path: Path, key: str) -> np.ndarray:
    """The numbers of ``key`` read straight from the text, independently of the parser."""
    for line in path.read_text().splitlines():
        if line.startswith(key + ":"):
            return np.array([float(tok) for tok in line.split()[1:]])
    raise AssertionError(f"{key} not in {path}")


def pad(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def project_inside(
    M: np.ndarray, points: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and depths of the points in front of the camera that land inside the image."""
    hom = np.hstack([points[:, :3].astype(np.float64), np.ones((len(points), 1))])
    uvw = hom @ M.T
    front = uvw[:, 2] > 0.1
    uv = uvw[front, :2] / uvw[front, 2:3]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < size[0]) & (uv[:, 1] >= 0) & (uv[:, 1] < size[1])
    return uv[inside], uvw[front, 2][inside]


def where(path: Path) -> str:
    return re.escape(str(path)) + ": "


# --- parsing -------------------------------------------------------------------------------


def test_parse_raw_cam_to_cam_skips_dates_and_keeps_numbers(kitti_raw_root: Path) -> None:
    path = kitti_raw_root / "calib_cam_to_cam.txt"
    values = parse_kitti_calib_file(path)
    assert "calib_time" not in values
    assert values["corner_dist"].tolist() == [9.95e-02]
    assert values["P_rect_02"].dtype == np.float64 and values["P_rect_02"].shape == (12,)
    assert values["P_rect_02"][3] == 4.485728e01
    for key in ("S_rect_02", "R_rect_00", "P_rect_02", "D_02"):
        np.testing.assert_array_equal(values[key], file_numbers(path, key))


def test_parse_object_calib_all_fields(kitti_object_root: Path) -> None:
    values = parse_kitti_calib_file(kitti_object_root / "calib" / "000000.txt")
    assert set(values) == {"P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"}
    assert values["P2"][0] == 973.508500621594


def test_parse_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(CalibrationError, match=where(missing) + "calibration file not found"):
        parse_kitti_calib_file(missing)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P2: 1 2 3\nthis is not a calib line\n", r"line 2: expected 'key: values'"),
        ("P2: 1 2 3\nP3: 1 x 3\n", r"line 2: field 'P3' mixes numbers and text: \['x'\]"),
        ("P2: 1 2\n\nP2: 3 4\n", r"line 3: field 'P2' given twice \(first on line 1\)"),
        ("bad key: 1 2\n", r"line 1: expected 'key: values'"),
    ],
)
def test_parse_malformed_lines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "calib.txt"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=where(path) + message):
        parse_kitti_calib_file(path)


# --- object benchmark files ----------------------------------------------------------------


def test_object_rig_matches_file(kitti_object_root: Path) -> None:
    path = kitti_object_root / "calib" / "000000.txt"
    image = cv2.imread(str(kitti_object_root / "image_2" / "000000.png"))
    assert image is not None
    size = (image.shape[1], image.shape[0])
    assert size == OBJECT_SIZE
    rig = load_kitti_object_rig(path, image_size=size)
    assert rig.name == "kitti_object_000000"
    assert rig.camera.image_size == size
    assert rig.camera.frame_id == "cam0" and rig.lidar_frame == "velodyne"
    assert rig.camera.distortion_model == "none" and rig.camera.image_rectified
    P2 = file_numbers(path, "P2").reshape(3, 4)
    np.testing.assert_array_equal(rig.camera.P, P2)
    np.testing.assert_array_equal(rig.camera.K, P2[:, :3])
    np.testing.assert_array_equal(rig.camera.R, file_numbers(path, "R0_rect").reshape(3, 3))
    Tr = file_numbers(path, "Tr_velo_to_cam").reshape(3, 4)
    np.testing.assert_array_equal(rig.T_cam_velo.matrix, pad(Tr))
    assert rig.T_velo_imu is None  # all zeros in these files
    rig3 = load_kitti_object_rig(path, camera=3, name="right", image_size=size)
    assert rig3.name == "right"
    np.testing.assert_array_equal(rig3.camera.P, file_numbers(path, "P3").reshape(3, 4))


def test_object_chain_and_projection_of_real_scan(kitti_object_root: Path) -> None:
    path = kitti_object_root / "calib" / "000000.txt"
    rig = load_kitti_object_rig(path, image_size=OBJECT_SIZE)
    chain = (
        file_numbers(path, "P2").reshape(3, 4)
        @ pad(file_numbers(path, "R0_rect").reshape(3, 3))
        @ pad(file_numbers(path, "Tr_velo_to_cam").reshape(3, 4))
    )
    np.testing.assert_allclose(rig.lidar_to_pixel_matrix(), chain, rtol=0, atol=1e-9)
    scan = np.fromfile(kitti_object_root / "velodyne" / "000000.bin", dtype=np.float32)
    points = scan.reshape(-1, 4)
    uv, depth = project_inside(rig.lidar_to_pixel_matrix(), points, OBJECT_SIZE)
    assert 4000 < len(uv) < 8000  # README: about 5,600 points inside the image
    assert depth.min() > 3.0 and depth.max() < 300.0


def test_object_missing_p2(kitti_object_root: Path, tmp_path: Path, copy_calib: Callable) -> None:
    path = copy_calib(kitti_object_root / "calib" / "000000.txt", tmp_path / "c.txt", {"P2": None})
    with pytest.raises(CalibrationError, match=where(path) + "missing field 'P2'"):
        load_kitti_object_rig(path, image_size=OBJECT_SIZE)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("R0_rect", "1 0 0 0 1 0 0 0 2", r"field 'R0_rect': not a rotation"),
        ("R0_rect", "1 0.1 0 0 1 0 0 0 1", r"field 'R0_rect': not a rotation"),
        ("P2", "700 0 300 0 0 700 250 nan 0 0 1 0", r"field 'P2': contains NaN"),
        ("P2", "700 0 300 0 0 700 250 0 0 0 1", r"field 'P2': expected 12 values"),
        ("Tr_velo_to_cam", "1 0 0 0 0 1 0 0 0 0 1", r"field 'Tr_velo_to_cam': expected 12 values"),
        ("Tr_imu_to_velo", "2 0 0 0 0 1 0 0 0 0 1 0", r"field 'Tr_imu_to_velo': not a rotation"),
        # checked by the camera model, these were reported as field 'K', which the file lacks
        ("P2", "700 0 300 0 0 700 250 0 0 0 0 1", r"field 'P2': focal lengths must be positive"),
        ("P2", "-700 0 300 0 0 700 250 0 0 0 1 0", r"field 'P2': focal lengths must be positive"),
    ],
)
def test_object_corrupt_fields(
    kitti_object_root: Path,
    tmp_path: Path,
    copy_calib: Callable,
    key: str,
    value: str,
    message: str,
) -> None:
    path = copy_calib(kitti_object_root / "calib" / "000001.txt", tmp_path / "c.txt", {key: value})
    with pytest.raises(CalibrationError, match=where(path) + message):
        load_kitti_object_rig(path, image_size=OBJECT_SIZE)


def test_object_uncalibrated_camera_named(kitti_object_root: Path) -> None:
    """The argoverse_kitti files ship P0 and P1 as zeros: camera 0 and 1 are not calibrated."""
    path = kitti_object_root / "calib" / "000000.txt"
    assert not file_numbers(path, "P0").any()
    message = where(path) + r"field 'P0': .*\(camera 0 is not calibrated in this file\)"
    with pytest.raises(CalibrationError, match=message):
        load_kitti_object_rig(path, camera=0, image_size=OBJECT_SIZE)


@pytest.mark.parametrize("size", [(0, 514), (616, -1)])
def test_object_bad_image_size(kitti_object_root: Path, size: tuple[int, int]) -> None:
    with pytest.raises(CalibrationError, match="image size must be a positive integer"):
        load_kitti_object_rig(kitti_object_root / "calib" / "000000.txt", image_size=size)


def test_bad_camera_index(kitti_object_root: Path, kitti_raw_root: Path) -> None:
    with pytest.raises(ConfigError, match="camera index must be 0, 1, 2 or 3, got 4"):
        load_kitti_object_rig(kitti_object_root / "calib" / "000000.txt", 4, image_size=(1, 1))
    with pytest.raises(ConfigError, match="got True"):
        load_kitti_raw_rig(kitti_raw_root, camera=True)


def test_tracking_spellings_accepted(tmp_path: Path) -> None:
    path = tmp_path / "0000.txt"
    path.write_text(
        "P2: 700 0 300 40 0 700 200 0.2 0 0 1 0.003\n"
        "R_rect: 1 0 0 0 1 0 0 0 1\n"
        "Tr_velo_cam: 0 -1 0 0.1 0 0 -1 -0.1 1 0 0 -0.3\n"
        "Tr_imu_velo: 1 0 0 -0.8 0 1 0 0.3 0 0 1 -0.8\n"
    )
    rig = load_kitti_object_rig(path, image_size=(640, 480))
    assert rig.T_velo_imu is not None and rig.T_velo_imu.source_frame == "imu"
    np.testing.assert_array_equal(rig.T_velo_imu.translation, [-0.8, 0.3, -0.8])
    assert rig.T_cam_velo.matrix[0, 1] == -1.0



def test_tracking_calib_lines_without_a_colon(tmp_path: Path, kitti_raw_root: Path) -> None:
    """KITTI tracking's calib files write ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo``
    without the colon (``R_rect 9.999239000000e-01 ...``); the parser refused them as "expected
    'key: values'". The file is built in that layout from the 2011-09-26 published numbers."""
    def numbers(name: str, *keys: str) -> str:
        values = {k: " ".join(f"{v:.12e}" for v in file_numbers(kitti_raw_root / name, k))
                  for k in keys}
        return " ".join(values[k] for k in keys)

    def rt(name: str) -> np.ndarray:
        R = file_numbers(kitti_raw_root / name, "R").reshape(3, 3)
        return np.hstack([R, file_numbers(kitti_raw_root / name, "T")[:, None]])

    def flat(m: np.ndarray) -> str:
        return " ".join(f"{v:.12e}" for v in m.ravel())

    text = "".join(f"P{i}: {numbers('calib_cam_to_cam.txt', f'P_rect_0{i}')}\n"
                   for i in range(4))
    text += f"R_rect {numbers('calib_cam_to_cam.txt', 'R_rect_00')}\n"
    text += f"Tr_velo_cam {flat(rt('calib_velo_to_cam.txt'))}\n"
    text += f"Tr_imu_velo {flat(rt('calib_imu_to_velo.txt'))}\n"
    path = tmp_path / "0000.txt"
    path.write_text(text)
    assert set(parse_kitti_calib_file(path)) == {"P0", "P1", "P2", "P3", "R_rect",
                                                 "Tr_velo_cam", "Tr_imu_velo"}
    rig = load_kitti_object_rig(path, image_size=RAW_SIZE)
    raw = load_kitti_raw_rig(kitti_raw_root)
    np.testing.assert_allclose(rig.lidar_to_pixel_matrix(), raw.lidar_to_pixel_matrix(),
                               rtol=1e-12, atol=1e-12)
    assert rig.T_velo_imu is not None and raw.T_velo_imu is not None
    np.testing.assert_allclose(rig.T_velo_imu.matrix, raw.T_velo_imu.matrix, atol=1e-12)
    path.write_text(text + "R_rect x 1 2\n")
    with pytest.raises(CalibrationError, match=where(path) + r"line 8: expected 'key: values'"):
        parse_kitti_calib_file(path)

# --- raw date folder -----------------------------------------------------------------------


def test_raw_rig_matches_files(kitti_raw_root: Path) -> None:
    rig = load_kitti_raw_rig(kitti_raw_root)
    cam_file = kitti_raw_root / "calib_cam_to_cam.txt"
    velo_file = kitti_raw_root / "calib_velo_to_cam.txt"
    imu_file = kitti_raw_root / "calib_imu_to_velo.txt"
    assert rig.name == "kitti_2011_09_26"
    assert rig.camera.image_size == RAW_SIZE
    P = file_numbers(cam_file, "P_rect_02").reshape(3, 4)
    np.testing.assert_array_equal(rig.camera.P, P)
    np.testing.assert_array_equal(rig.camera.K, P[:, :3])
    np.testing.assert_array_equal(rig.camera.R, file_numbers(cam_file, "R_rect_00").reshape(3, 3))
    np.testing.assert_array_equal(rig.camera.D, np.zeros(5))
    T = rig.T_cam_velo
    assert (T.source_frame, T.target_frame) == ("velodyne", "cam0")
    np.testing.assert_array_equal(T.rotation, file_numbers(velo_file, "R").reshape(3, 3))
    np.testing.assert_array_equal(T.translation, file_numbers(velo_file, "T"))
    assert rig.T_velo_imu is not None
    assert (rig.T_velo_imu.source_frame, rig.T_velo_imu.target_frame) == ("imu", "velodyne")
    np.testing.assert_array_equal(
        rig.T_velo_imu.rotation, file_numbers(imu_file, "R").reshape(3, 3)
    )
    rig0 = load_kitti_raw_rig(kitti_raw_root, camera=0)
    np.testing.assert_array_equal(rig0.camera.P, file_numbers(cam_file, "P_rect_00").reshape(3, 4))
    np.testing.assert_array_equal(rig0.camera.R, rig.camera.R)  # R_rect_00 for every camera


def test_raw_chain_and_projection_of_real_scans(
    kitti_raw_root: Path, kitti_raw_drive: Path
) -> None:
    rig = load_kitti_raw_rig(kitti_raw_root)
    cam_file = kitti_raw_root / "calib_cam_to_cam.txt"
    velo_file = kitti_raw_root / "calib_velo_to_cam.txt"
    Tr = np.eye(4)
    Tr[:3, :3] = file_numbers(velo_file, "R").reshape(3, 3)
    Tr[:3, 3] = file_numbers(velo_file, "T")
    chain = (
        file_numbers(cam_file, "P_rect_02").reshape(3, 4)
        @ pad(file_numbers(cam_file, "R_rect_00").reshape(3, 3))
        @ Tr
    )
    np.testing.assert_allclose(rig.lidar_to_pixel_matrix(), chain, rtol=0, atol=1e-9)
    for index in (0, 29):
        scan_path = kitti_raw_drive / "velodyne_points" / "data" / f"{index:010d}.bin"
        points = np.fromfile(scan_path, dtype=np.float32).reshape(-1, 4)
        uv, depth = project_inside(rig.lidar_to_pixel_matrix(), points, RAW_SIZE)
        assert 10_000 < len(uv) < 25_000  # README: about 16,000 a scan
        assert depth.min() > 2.0 and depth.max() < 90.0
        # points ahead of the car (x > 5 m, near the axis) all land inside the image
        ahead = points[(points[:, 0] > 5) & (np.abs(points[:, 1]) < 0.2 * points[:, 0])]
        ahead = ahead[np.abs(ahead[:, 2] + 1.0) < 0.05 * ahead[:, 0]]
        uv_ahead, _ = project_inside(rig.lidar_to_pixel_matrix(), ahead, RAW_SIZE)
        assert len(ahead) > 100 and len(uv_ahead) == len(ahead)


def test_raw_missing_folder_and_field(
    kitti_raw_root: Path, tmp_path: Path, copy_calib: Callable
) -> None:
    with pytest.raises(CalibrationError, match="KITTI raw calibration folder not found"):
        load_kitti_raw_rig(tmp_path / "missing")
    for name in ("calib_velo_to_cam.txt", "calib_imu_to_velo.txt"):
        (tmp_path / name).write_text((kitti_raw_root / name).read_text())
    cam_file = copy_calib(
        kitti_raw_root / "calib_cam_to_cam.txt",
        tmp_path / "calib_cam_to_cam.txt",
        {"P_rect_02": None},
    )
    with pytest.raises(CalibrationError, match=where(cam_file) + "missing field 'P_rect_02'"):
        load_kitti_raw_rig(tmp_path)
    copy_calib(kitti_raw_root / "calib_cam_to_cam.txt", cam_file, {"P_rect_02": "0 " * 12})
    with pytest.raises(
        CalibrationError,
        match=where(cam_file) + r"field 'P_rect_02': .*\(camera 2 is not calibrated in this file\)",
    ):
        load_kitti_raw_rig(tmp_path)
    copy_calib(kitti_raw_root / "calib_cam_to_cam.txt", cam_file, {"S_rect_02": "1242.5 375"})
    with pytest.raises(CalibrationError, match=where(cam_file) + "field 'S_rect_02': image size"):
        load_kitti_raw_rig(tmp_path)
    copy_calib(kitti_raw_root / "calib_cam_to_cam.txt", cam_file, {})
    velo = copy_calib(
        kitti_raw_root / "calib_velo_to_cam.txt",
        tmp_path / "calib_velo_to_cam.txt",
        {"R": "1 0 0 0 1 0 0 0 -1"},
    )
    with pytest.raises(CalibrationError, match=where(velo) + "field 'R': not a rotation"):
        load_kitti_raw_rig(tmp_path)
    (tmp_path / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(
        CalibrationError,
        match=where(tmp_path / "calib_velo_to_cam.txt") + "calibration file not found",
    ):
        load_kitti_raw_rig(tmp_path)


# --- writer --------------------------------------------------------------------------------


@pytest.mark.parametrize("camera", [0, 2, 3])
def test_save_raw_round_trip_real(
    kitti_raw_root: Path, tmp_path: Path, camera: int, assert_rigs_equal: Callable
) -> None:
    rig = load_kitti_raw_rig(kitti_raw_root, camera=camera)
    save_kitti_raw_calib(rig, tmp_path / "out", camera=camera)
    again = load_kitti_raw_rig(tmp_path / "out", camera=camera)
    assert_rigs_equal(rig, again)
    values = parse_kitti_calib_file(tmp_path / "out" / "calib_cam_to_cam.txt")
    assert values[f"S_0{camera}"].tolist() == [1242.0, 375.0]
    assert f"K_0{camera}" in values and f"D_0{camera}" in values and f"T_0{camera}" in values
    assert "R_rect_00" in values


def test_save_raw_removes_stale_imu_and_refuses_distortion(
    kitti_raw_root: Path, kitti_object_root: Path, tmp_path: Path
) -> None:
    save_kitti_raw_calib(load_kitti_raw_rig(kitti_raw_root), tmp_path)
    assert (tmp_path / "calib_imu_to_velo.txt").exists()
    obj = load_kitti_object_rig(kitti_object_root / "calib" / "000000.txt", image_size=OBJECT_SIZE)
    save_kitti_raw_calib(obj, tmp_path)
    assert not (tmp_path / "calib_imu_to_velo.txt").exists()
    assert load_kitti_raw_rig(tmp_path).T_velo_imu is None
    cam = CameraModel(640, 480, K=np.diag([500.0, 500.0, 1.0]), D=np.array([0.1, 0, 0, 0, 0]))
    distorted = Rig("raw", cam, RigidTransform(obj.T_cam_velo.matrix, "velodyne", "camera"))
    with pytest.raises(CalibrationError, match="rectified, undistorted images"):
        save_kitti_raw_calib(distorted, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_save_raw_stale_imu_that_cannot_be_removed_changes_nothing(
    kitti_raw_root: Path, kitti_object_root: Path, tmp_path: Path
) -> None:
    save_kitti_raw_calib(load_kitti_raw_rig(kitti_raw_root), tmp_path)
    before = _files(tmp_path)
    (tmp_path / "calib_imu_to_velo.txt").unlink()
    (tmp_path / "calib_imu_to_velo.txt").mkdir()  # os.remove refuses a folder
    before.pop("calib_imu_to_velo.txt")
    obj = load_kitti_object_rig(kitti_object_root / "calib" / "000000.txt", image_size=OBJECT_SIZE)
    message = where(tmp_path / "calib_imu_to_velo.txt") + "cannot remove stale calibration file"
    with pytest.raises(CalibrationError, match=message):
        save_kitti_raw_calib(obj, tmp_path)
    assert _files(tmp_path) == before  # the old set, and no temporary file left


@pytest.mark.parametrize("blocked", ["calib_velo_to_cam.txt", "calib_imu_to_velo.txt"])
def test_save_raw_failing_later_file_leaves_the_old_set(
    kitti_raw_root: Path, kitti_object_root: Path, tmp_path: Path, blocked: str
) -> None:
    obj = load_kitti_object_rig(kitti_object_root / "calib" / "000000.txt", image_size=OBJECT_SIZE)
    save_kitti_raw_calib(obj, tmp_path)
    before = _files(tmp_path)
    (tmp_path / blocked).unlink(missing_ok=True)
    (tmp_path / blocked).mkdir()
    before.pop(blocked, None)
    with pytest.raises(CalibrationError, match=where(tmp_path / blocked) + "cannot write"):
        save_kitti_raw_calib(load_kitti_raw_rig(kitti_raw_root), tmp_path)
    assert _files(tmp_path) == before


unit = st.floats(-1.0, 1.0, allow_nan=False)
quaternion = st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1)


@settings(max_examples=40, deadline=None)
@given(
    q_velo=quaternion,
    q_rect=quaternion,
    q_imu=st.none() | quaternion,
    t=st.tuples(*[st.floats(-50, 50, allow_nan=False)] * 3),
    fx=st.floats(100, 3000),
    tx=st.floats(-500, 500),
)
def test_save_raw_round_trip_random(
    tmp_path_factory: pytest.TempPathFactory,
    make_rig: Callable[..., Rig],
    assert_rigs_equal: Callable,
    q_velo: tuple[float, ...],
    q_rect: tuple[float, ...],
    q_imu: tuple[float, ...] | None,
    t: tuple[float, float, float],
    fx: float,
    tx: float,
) -> None:
    rig = make_rig(q_velo, q_rect, t, fx=fx, tx=tx, q_imu=q_imu)
    folder = tmp_path_factory.mktemp("raw")
    save_kitti_raw_calib(rig, folder)
    assert_rigs_equal(rig, load_kitti_raw_rig(folder, name="synthetic"))
