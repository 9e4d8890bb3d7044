"""ROS camera-info YAML, the extrinsics YAML and the rig built from both."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from drivingseg.calibration.kitti import load_kitti_raw_rig
from drivingseg.calibration.ros import (
    load_camera_info_yaml,
    load_extrinsics_yaml,
    load_ros_rig,
    quaternion_to_matrix,
)
from drivingseg.errors import CalibrationError

# As written by ROS camera_calibration (the format of its monocular tutorial).
CAMERA_INFO = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [423.299, 0, 324.561, 0, 422.859, 242.432, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.3458, 0.1285, 0.0012, -0.0006, -0.0227]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [347.6, 0, 327.2, 0, 0, 379.1, 243.1, 0, 0, 0, 1, 0]
"""


def where(path: Path) -> str:
    return re.escape(str(path)) + ": .*"


def axis_angle_quaternion(rotvec: np.ndarray) -> np.ndarray:
    """ROS-order quaternion ``x, y, z, w`` of a rotation vector."""
    angle = float(np.linalg.norm(rotvec))
    axis = rotvec / angle if angle > 0 else np.array([1.0, 0.0, 0.0])
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


def write_yaml(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def camera_info(tmp_path: Path) -> Path:
    path = tmp_path / "narrow_stereo.yaml"
    path.write_text(CAMERA_INFO)
    return path


def test_camera_info(camera_info: Path) -> None:
    cam = load_camera_info_yaml(camera_info)
    assert cam.image_size == (640, 480)
    assert cam.frame_id == "narrow_stereo" and not cam.image_rectified
    assert cam.distortion_model == "plumb_bob" and cam.has_distortion
    assert cam.K[0, 0] == 423.299 and cam.K[1, 2] == 242.432
    np.testing.assert_array_equal(cam.D, [-0.3458, 0.1285, 0.0012, -0.0006, -0.0227])
    assert cam.P is not None and cam.P[1, 1] == 379.1
    rect = load_camera_info_yaml(camera_info, image_rectified=True, frame_id="cam")
    assert rect.image_rectified and rect.frame_id == "cam"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # CameraModel's own checks used to name its fields (K, P, width), not the file's keys
        ("image_width: 640", "image_width: 0", r"'image_width': image size must be a positive"),
        ("image_height: 480", "image_height: -480",
         r"'image_height': image size must be a positive"),
        ("data: [423.299", "data: [-423.299", r"field 'camera_matrix': focal lengths must be"),
        ("0, 379.1,", "0, 0.0,", r"field 'projection_matrix': focal lengths must be"),
        ("-0.0227]", "-0.0227, 0.0]", r"field 'distortion_coefficients': OpenCV takes 4, 5"),
        ("image_width: 640", "", r"missing key 'image_width'"),
        ("plumb_bob", "fisheye", r"unknown model 'fisheye'; valid: none, plumb_bob, "
         r"rational_polynomial, equidistant"),
        ("plumb_bob", "equidistant",
         r"'distortion_coefficients': the equidistant \(fisheye\) model takes 4 coefficients"),
        ("0, 0, 1]\ndistortion", "0, 1]\ndistortion", r"'camera_matrix': expected 9 values"),
        ("1, 0, 0, 0, 1, 0, 0, 0, 1]", "1, 0, 0, 0, 1, 0, 0, 0, 3]", r"'rectification_matrix'"),
        ("-0.0227]", ".nan]", r"'distortion_coefficients': contains NaN"),
        ("camera_name: narrow_stereo", "camera_name: ''", r"'camera_name': needed as frame id"),
    ],
)
def test_camera_info_errors(camera_info: Path, old: str, new: str, message: str) -> None:
    text = camera_info.read_text()
    assert old in text
    camera_info.write_text(text.replace(old, new, 1))
    with pytest.raises(CalibrationError, match=where(camera_info) + message):
        load_camera_info_yaml(camera_info)


def test_camera_info_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="camera info file not found"):
        load_camera_info_yaml(tmp_path / "none.yaml")


@settings(max_examples=60, deadline=None)
@given(
    rotvec=st.tuples(*[st.floats(-3.0, 3.0, allow_nan=False)] * 3),
    scale=st.floats(0.01, 100.0),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_quaternion_matches_rodrigues(
    rotvec: tuple[float, float, float], scale: float, sign: float
) -> None:
    vec = np.array(rotvec)
    expected, _ = cv2.Rodrigues(vec)
    got = quaternion_to_matrix(sign * scale * axis_angle_quaternion(vec))
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_extrinsics_quaternion_and_matrix_forms(tmp_path: Path) -> None:
    q = axis_angle_quaternion(np.array([0.1, -0.2, 1.5]))
    pose = write_yaml(
        tmp_path / "pose.yaml",
        {
            "source_frame": "velodyne",
            "target_frame": "cam",
            "translation": [0.1, -0.2, 0.3],
            "rotation": (2.0 * q).tolist(),  # not normalised: normalised on load
        },
    )
    T = load_extrinsics_yaml(pose)
    assert (T.source_frame, T.target_frame, T.path) == ("velodyne", "cam", str(pose))
    np.testing.assert_allclose(T.rotation, cv2.Rodrigues(np.array([0.1, -0.2, 1.5]))[0])
    np.testing.assert_array_equal(T.translation, [0.1, -0.2, 0.3])
    matrix = write_yaml(
        tmp_path / "matrix.yaml",
        {"source_frame": "velodyne", "target_frame": "cam", "matrix": T.matrix.ravel().tolist()},
    )
    np.testing.assert_array_equal(load_extrinsics_yaml(matrix).matrix, T.matrix)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"translation": [0, 0, 0], "rotation": [0, 0, 0, 0]}, r"'rotation': quaternion has"),
        ({"translation": [0, 0, 0], "rotation": [0, 0, 1]}, r"'rotation': expected 4 values"),
        ({"translation": [0, 0, 0], "rotation": [0, 0, 0, ".nan"]}, r"'rotation': not numeric"),
        ({"translation": [0, 0], "rotation": [0, 0, 0, 1]}, r"'translation': expected 3 values"),
        ({"rotation": [0, 0, 0, 1]}, r"missing key 'translation'"),
        ({"matrix": np.diag([1.0, 1, 2, 1]).tolist()}, r"'matrix': not a rotation"),
        (  # was named T_cam_velodyne, a key the file does not have
            {"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 1]]},
            r"field 'matrix': last row must be \[0, 0, 0, 1\]",
        ),
        ({"matrix": np.eye(4).tolist(), "rotation": [0, 0, 0, 1]}, r"give either 'matrix'"),
        ({}, r"give either 'matrix'"),
        ({"matrix": np.eye(4).tolist(), "scale": 2}, r"unknown keys \['scale'\]"),
    ],
)
def test_extrinsics_errors(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    path = write_yaml(tmp_path / "ext.yaml", {"source_frame": "velodyne", "target_frame": "cam"})
    write_yaml(path, {"source_frame": "velodyne", "target_frame": "cam", **doc})
    with pytest.raises(CalibrationError, match=where(path) + message):
        load_extrinsics_yaml(path)
    write_yaml(path, {"target_frame": "cam", "matrix": np.eye(4).tolist()})
    with pytest.raises(CalibrationError, match=where(path) + "missing key 'source_frame'"):
        load_extrinsics_yaml(path)


def test_extrinsics_key_given_twice_refused(tmp_path: Path) -> None:
    """A second 'translation' used to replace the first silently (yaml.safe_load)."""
    path = tmp_path / "ext.yaml"
    path.write_text(
        "source_frame: velodyne\ntarget_frame: camera\ntranslation: [0.1, 0.2, 0.3]\n"
        "rotation: [0, 0, 0, 1]\ntranslation: [5.0, 0.0, 0.0]\n"
    )
    message = r"field 'translation' given twice \(lines 3 and 5\)"
    with pytest.raises(CalibrationError, match=where(path) + message):
        load_extrinsics_yaml(path)


def test_camera_info_nested_key_given_twice_refused(camera_info: Path) -> None:
    lines = camera_info.read_text().splitlines(keepends=True)
    block = next(i for i, line in enumerate(lines) if line.startswith("camera_matrix:"))
    data = next(i for i in range(block, len(lines)) if lines[i].lstrip().startswith("data:"))
    camera_info.write_text("".join([*lines[: data + 1], lines[data], *lines[data + 1 :]]))
    message = rf"field 'camera_matrix.data' given twice \(lines {data + 1} and {data + 2}\)"
    with pytest.raises(CalibrationError, match=where(camera_info) + message):
        load_camera_info_yaml(camera_info)


def test_camera_info_merge_key_override_is_not_a_duplicate(camera_info: Path) -> None:
    """Keys merged in with ``<<`` may be overridden: that is YAML, not a key given twice."""
    text = camera_info.read_text().replace("camera_matrix:", "camera_matrix: &matrix3")
    text = text.replace(
        "rectification_matrix:\n  rows: 3\n  cols: 3\n", "rectification_matrix:\n  <<: *matrix3\n"
    )
    assert "<<: *matrix3\n  data: [1, 0, 0" in text
    camera_info.write_text(text)
    np.testing.assert_array_equal(load_camera_info_yaml(camera_info).R, np.eye(3))


def test_ros_rig_from_kitti_numbers(
    kitti_raw_root: Path, kitti_raw_drive: Path, tmp_path: Path
) -> None:
    """KITTI's camera 2 written as ROS files projects a real scan onto the same pixels."""
    kitti = load_kitti_raw_rig(kitti_raw_root)
    cam = kitti.camera
    assert cam.P is not None

    def block(m: np.ndarray) -> dict[str, Any]:
        return {"rows": m.shape[0], "cols": m.shape[1], "data": m.ravel().tolist()}

    info = write_yaml(
        tmp_path / "cam.yaml",
        {
            "image_width": cam.width,
            "image_height": cam.height,
            "camera_name": "cam0",
            "camera_matrix": block(cam.K),
            "distortion_model": "plumb_bob",
            "distortion_coefficients": block(np.zeros((1, 5))),
            "rectification_matrix": block(cam.R),
            "projection_matrix": block(cam.P),
        },
    )
    rotvec, _ = cv2.Rodrigues(kitti.T_cam_velo.rotation)
    ext = write_yaml(
        tmp_path / "ext.yaml",
        {
            "source_frame": "velodyne",
            "target_frame": "cam0",
            "translation": kitti.T_cam_velo.translation.tolist(),
            "rotation": axis_angle_quaternion(rotvec.ravel()).tolist(),
        },
    )
    rig = load_ros_rig(info, ext, "ros_kitti", image_rectified=True)
    assert rig.name == "ros_kitti" and rig.lidar_frame == "velodyne"
    points = np.fromfile(
        kitti_raw_drive / "velodyne_points" / "data" / "0000000005.bin", dtype=np.float32
    ).reshape(-1, 4)
    hom = np.hstack([points[:, :3], np.ones((len(points), 1))])
    a, b = hom @ kitti.lidar_to_pixel_matrix().T, hom @ rig.lidar_to_pixel_matrix().T
    front = a[:, 2] > 3.0
    uv_a, uv_b = a[front, :2] / a[front, 2:], b[front, :2] / b[front, 2:]
    assert front.sum() > 10_000
    np.testing.assert_allclose(uv_b, uv_a, atol=0.05)

    write_yaml(ext, {**yaml.safe_load(ext.read_text()), "target_frame": "camera"})
    with pytest.raises(CalibrationError, match=where(ext) + "extrinsics map into 'camera'"):
        load_ros_rig(info, ext, "ros_kitti")


def test_readme_extrinsics_examples_agree(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[2] / "calibration" / "README.md"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2
    transforms = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        transforms.append(load_extrinsics_yaml(path))
    np.testing.assert_allclose(transforms[0].matrix, transforms[1].matrix, atol=1e-12)
    assert transforms[0].target_frame == transforms[1].target_frame == "narrow_stereo"
