"""The project's rig YAML: exact round trips, the shipped KITTI file, strict error messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from drivingseg.calibration.kitti import load_kitti_object_rig, load_kitti_raw_rig
from drivingseg.calibration.rig_yaml import RIG_FORMAT, load_rig, rig_to_dict, save_rig
from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.errors import CalibrationError

SHIPPED = Path(__file__).resolve().parents[2] / "calibration" / "kitti_2011_09_26.yaml"


def where(path: Path) -> str:
    return re.escape(str(path)) + ": "


def test_shipped_kitti_file_equals_shared_calibration(
    kitti_raw_root: Path, assert_rigs_equal: Callable
) -> None:
    shipped = load_rig(SHIPPED)
    assert shipped.name == "kitti_2011_09_26"
    assert_rigs_equal(shipped, load_kitti_raw_rig(kitti_raw_root, camera=2))
    doc = yaml.safe_load(SHIPPED.read_text())
    assert doc["format"] == RIG_FORMAT
    assert "KITTI raw 2011_09_26" in doc["source"] and "camera 2" in doc["source"]


def test_round_trip_real_rigs_bit_identical(
    kitti_raw_root: Path, kitti_object_root: Path, tmp_path: Path, assert_rigs_equal: Callable
) -> None:
    raw = load_kitti_raw_rig(kitti_raw_root)
    obj = load_kitti_object_rig(kitti_object_root / "calib" / "000002.txt", image_size=(616, 514))
    for rig in (raw, obj):
        path = tmp_path / f"{rig.name}.yaml"
        save_rig(rig, path, source="test")
        again = load_rig(path)
        assert again.name == rig.name and again.path == str(path)
        assert_rigs_equal(rig, again)
    assert yaml.safe_load((tmp_path / f"{obj.name}.yaml").read_text())["T_velo_imu"] is None


def test_round_trip_raw_camera_with_distortion(tmp_path: Path, assert_rigs_equal: Callable) -> None:
    cam = CameraModel(
        width=640,
        height=480,
        K=np.array([[500.1, 0.0, 320.3], [0.0, 499.7, 240.9], [0.0, 0.0, 1.0]]),
        D=np.array([-0.3, 0.1, 1e-5, -2.5e-17, 0.0, 0.01, 1e300, -0.0]),
        distortion_model="rational_polynomial",
        image_rectified=False,
        frame_id="front_cam",
    )
    T = RigidTransform.from_rt(np.eye(3), [1e-20, -3.0, 1 / 3], "lidar_top", "front_cam")
    T_imu = RigidTransform.from_rt(np.eye(3), [0.1, 0.2, 0.3], "gnss", "lidar_top")
    rig = Rig("car", cam, T, T_imu)
    save_rig(rig, tmp_path / "r.yaml")
    again = load_rig(tmp_path / "r.yaml")
    assert_rigs_equal(rig, again)
    assert again.T_velo_imu is not None and again.T_velo_imu.source_frame == "gnss"
    assert np.signbit(again.camera.D[7])


unit = st.floats(-1.0, 1.0, allow_nan=False)
quaternion = st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1)


@settings(max_examples=50, deadline=None)
@given(
    q_velo=quaternion,
    q_rect=quaternion,
    q_imu=st.none() | quaternion,
    t=st.tuples(*[st.floats(-1e3, 1e3, allow_nan=False)] * 3),
    fx=st.floats(1.0, 1e4),
    cx=st.floats(-1e3, 1e4),
    tx=st.floats(-1e3, 1e3),
)
def test_round_trip_random_rigs(
    tmp_path_factory: pytest.TempPathFactory,
    make_rig: Callable[..., Rig],
    assert_rigs_equal: Callable,
    q_velo: tuple[float, ...],
    q_rect: tuple[float, ...],
    q_imu: tuple[float, ...] | None,
    t: tuple[float, float, float],
    fx: float,
    cx: float,
    tx: float,
) -> None:
    rig = make_rig(q_velo, q_rect, t, fx=fx, cx=cx, tx=tx, q_imu=q_imu)
    path = tmp_path_factory.mktemp("rig") / "rig.yaml"
    save_rig(rig, path)
    assert_rigs_equal(rig, load_rig(path))


def _write(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def good_doc(make_rig: Callable[..., Rig]) -> dict[str, Any]:
    return rig_to_dict(make_rig((1, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0)), source="s")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("format"), r"missing key 'format'"),
        (lambda d: d.update(format="drivingseg-rig/2"), r"unknown format 'drivingseg-rig/2'"),
        (lambda d: d["camera"].pop("K"), r"missing key 'camera.K'"),
        (lambda d: d["lidar"].pop("frame_id"), r"missing key 'lidar.frame_id'"),
        (lambda d: d.pop("T_cam_velo"), r"missing key 'T_cam_velo'"),
        (lambda d: d["camera"].update(width="1242"), r"'camera.width': expected an integer"),
        (lambda d: d["camera"].update(height=0),
         r"'camera.height': image size must be a positive"),
        (lambda d: d["camera"].update(D=[0.1, 0.0, 0.0]),  # was field 'D', not as in the file
         r"field 'camera.D': OpenCV takes 4, 5, 8, 12 or 14 coefficients, got 3"),
        (lambda d: d["camera"].update(image_rectified="yes"), r"'camera.image_rectified'"),
        (lambda d: d["camera"].update(distortion_model="fisheye"), r"unknown model 'fisheye'"),
        (lambda d: d["camera"]["K"][0].__setitem__(0, "1e-5"), r"'camera.K'.*write 1.0e-5"),
        (lambda d: d["camera"]["P"].pop(), r"'camera.P': expected 12 values"),
        (  # a ragged list used to escape as numpy's ValueError, naming neither file nor field
            lambda d: d["camera"].update(D=[[0.0, 0.0], [0.0, 0.0, 0.0]]),
            r"'camera.D': expected a flat list of numbers",
        ),
        (lambda d: d["camera"]["R"][0].__setitem__(0, 2.0), r"'camera.R': not a rotation"),
        (  # was named T_cam0_velodyne, a key the file does not have
            lambda d: d["T_cam_velo"][3].__setitem__(0, 1.0),
            r"field 'T_cam_velo': last row must be \[0, 0, 0, 1\]",
        ),
        (lambda d: d["T_cam_velo"][0].__setitem__(1, 0.5), r"'T_cam_velo': not a rotation"),
        (lambda d: d["camera"].update(focal=3), r"'camera': unknown keys \['focal'\]"),
        (lambda d: d.update(T_velo_imus=None), r"unknown keys \['T_velo_imus'\]"),
        (lambda d: d.update(name=""), r"'name': expected a non-empty string"),
        (lambda d: d.update(camera=[1, 2]), r"'camera': expected a mapping"),
    ],
)
def test_load_errors_name_file_and_field(
    tmp_path: Path, good_doc: dict[str, Any], edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    assert isinstance(load_rig(_write(tmp_path / "ok.yaml", good_doc)), Rig)
    edit(good_doc)
    path = _write(tmp_path / "bad.yaml", good_doc)
    with pytest.raises(CalibrationError, match=where(path) + ".*" + message):
        load_rig(path)


def test_load_refuses_a_key_given_twice(tmp_path: Path) -> None:
    """yaml.safe_load keeps the last of two equal keys: an old T_cam_velo left above the
    real one, or a second K in the camera block, loaded silently."""
    path = tmp_path / "rig.yaml"
    save_rig(load_rig(SHIPPED), path)
    lines = path.read_text().splitlines(keepends=True)
    top = next(i for i, line in enumerate(lines) if line.startswith("T_cam_velo:"))
    stale = "T_cam_velo: [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], "
    path.write_text("".join([*lines[:top], stale + "[0.0, 0.0, 0.0, 1.0]]\n", *lines[top:]]))
    message = rf"field 'T_cam_velo' given twice \(lines {top + 1} and {top + 2}\)"
    with pytest.raises(CalibrationError, match=where(path) + message):
        load_rig(path)
    cam_k = next(i for i, line in enumerate(lines) if line.startswith("  K:"))
    path.write_text("".join([*lines[: cam_k + 1], lines[cam_k], *lines[cam_k + 1 :]]))
    message = rf"field 'camera.K' given twice \(lines {cam_k + 1} and {cam_k + 2}\)"
    with pytest.raises(CalibrationError, match=where(path) + message):
        load_rig(path)


def test_load_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=where(tmp_path / "no.yaml") + "rig file not found"):
        load_rig(tmp_path / "no.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: [unclosed\n")
    with pytest.raises(CalibrationError, match=where(bad) + "rig file is not valid YAML"):
        load_rig(bad)
    bad.write_text("")
    with pytest.raises(
        CalibrationError, match=where(bad) + "field '<document>': expected a mapping"
    ):
        load_rig(bad)


def test_save_is_atomic(tmp_path: Path, make_rig: Callable[..., Rig]) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text("old contents\n")
    good = make_rig((1, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0), q_imu=(1, 0, 0, 0))
    assert good.T_velo_imu is not None
    broken = Rig(
        "broken",
        good.camera,
        good.T_cam_velo,
        RigidTransform(good.T_velo_imu.matrix, "imu", "elsewhere"),
    )
    with pytest.raises(CalibrationError, match="T_velo_imu targets 'elsewhere'"):
        save_rig(broken, path)
    assert path.read_text() == "old contents\n"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CalibrationError, match="cannot write calibration file"):
        save_rig(good, blocker / "rig.yaml")
    save_rig(good, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "rig.yaml"]
    assert load_rig(path).name == "synthetic"
