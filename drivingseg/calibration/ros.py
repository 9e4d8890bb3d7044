"""ROS calibration files: ``camera_calibration`` camera-info YAML and a small extrinsics YAML.

The camera-info YAML is what ``camera_calibration`` / ``camera_info_manager`` write
(``image_width``, ``camera_matrix: {rows, cols, data}``, ...). The extrinsics YAML is
drivingseg's, documented in calibration/README.md::

    source_frame: velodyne      # points in this frame ...
    target_frame: camera        # ... are mapped into this one (T_target_source)
    translation: [x, y, z]      # metres
    rotation: [x, y, z, w]      # unit quaternion, ROS tf order (normalised on load)

or, instead of ``translation`` + ``rotation``, ``matrix:`` a 4x4 (nested or flat, row-major).
Converting a ``sensor_msgs/CameraInfo`` message is done by the bag readers, not here.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import (
    CameraModel,
    FloatArray,
    Rig,
    RigidTransform,
    as_matrix,
    check_rigid,
    check_rotation,
)
from drivingseg.errors import CalibrationError
from drivingseg.fileio import read_yaml_mapping

__all__ = [
    "load_camera_info_yaml",
    "load_extrinsics_yaml",
    "load_ros_rig",
    "quaternion_to_matrix",
]

_QUATERNION_MIN_NORM = 1e-9

_CAMERA_INFO_FIELDS = {
    "width": "image_width",
    "height": "image_height",
    "K": "camera_matrix",
    "D": "distortion_coefficients",
    "R": "rectification_matrix",
    "P": "projection_matrix",
}
"""CameraModel's field names and the camera-info YAML keys they are read from."""


def _read_yaml_mapping(path: str | PathLike[str], what: str) -> tuple[Path, dict[str, Any]]:
    file = Path(path)
    return file, read_yaml_mapping(file, error=CalibrationError, what=what)


def _get(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        present = ", ".join(map(str, data)) or "none"
        raise CalibrationError(f"missing key {key!r} (keys present: {present})", path=path)
    return data[key]


def _ros_matrix(data: dict[str, Any], key: str, shape: tuple[int, int], path: Path) -> FloatArray:
    """A ``{rows, cols, data}`` block as a float64 array of ``shape``."""
    block = _get(data, key, path)
    if not isinstance(block, dict) or "data" not in block:
        message = f"field {key!r}: expected a mapping with 'rows', 'cols', 'data', got {block!r}"
        raise CalibrationError(message, path=path)
    rows, cols = block.get("rows", shape[0]), block.get("cols", shape[1])
    if (rows, cols) != shape:
        message = (
            f"field {key!r}: expected rows={shape[0]}, cols={shape[1]}, got {rows!r}, {cols!r}"
        )
        raise CalibrationError(message, path=path)
    return as_matrix(block["data"], shape, key, path)


def _int_field(data: dict[str, Any], key: str, path: Path) -> int:
    value = _get(data, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        message = f"field {key!r}: expected an integer, got {type(value).__name__} {value!r}"
        raise CalibrationError(message, path=path)
    return value


def load_camera_info_yaml(
    path: str | PathLike[str],
    *,
    image_rectified: bool = False,
    frame_id: str | None = None,
) -> CameraModel:
    """Read a ROS ``camera_calibration`` YAML into a :class:`CameraModel`.

    ``image_rectified`` says whether the images this model will be used with are the
    rectified ones (``image_rect``: project with ``P @ R``) or raw (``image_raw``: ``K``, ``D``).
    ``frame_id`` defaults to the file's ``camera_name``. Distortion blocks with no data
    (monocular calibrations of undistorted cameras) mean no distortion.
    """
    file, data = _read_yaml_mapping(path, "camera info file")
    width = _int_field(data, "image_width", file)
    height = _int_field(data, "image_height", file)
    K = _ros_matrix(data, "camera_matrix", (3, 3), file)
    model = _get(data, "distortion_model", file)
    if not isinstance(model, str):
        message = f"field 'distortion_model': expected a string, got {model!r}"
        raise CalibrationError(message, path=file)
    dist = _get(data, "distortion_coefficients", file)
    raw_d = dist.get("data") if isinstance(dist, dict) else None
    if not isinstance(raw_d, list):
        message = (
            f"field 'distortion_coefficients': expected a mapping with a 'data' list, got {dist!r}"
        )
        raise CalibrationError(message, path=file)
    D = as_matrix(raw_d, (len(raw_d),), "distortion_coefficients", file)
    R = np.eye(3)
    if "rectification_matrix" in data:
        R = _ros_matrix(data, "rectification_matrix", (3, 3), file)
        check_rotation(R, "rectification_matrix", file)
    P = None
    if "projection_matrix" in data:
        P = _ros_matrix(data, "projection_matrix", (3, 4), file)
    if frame_id is None:
        name = data.get("camera_name")
        if not isinstance(name, str) or not name:
            message = f"field 'camera_name': needed as frame id (or pass frame_id=), got {name!r}"
            raise CalibrationError(message, path=file)
        frame_id = name
    try:
        return CameraModel(
            width=width,
            height=height,
            K=K,
            D=D,
            R=R,
            P=P,
            distortion_model=model,
            image_rectified=image_rectified,
            frame_id=frame_id,
            path=str(file),
        )
    except CalibrationError as exc:  # name the file's key, not CameraModel's field
        message = exc.message
        for field, key in _CAMERA_INFO_FIELDS.items():
            message = message.replace(f"field {field!r}:", f"field {key!r}:", 1)
        raise CalibrationError(message, path=file) from exc


def quaternion_to_matrix(
    q_xyzw: npt.ArrayLike, name: str = "rotation", path: str | PathLike[str] | None = None
) -> FloatArray:
    """3x3 rotation of a quaternion in ROS order ``[x, y, z, w]``; normalised, zero refused."""
    q = as_matrix(q_xyzw, (4,), name, path)
    norm = float(np.linalg.norm(q))
    if norm < _QUATERNION_MIN_NORM:
        message = f"field {name!r}: quaternion has (near) zero norm {norm:.3g}: {q.tolist()!r}"
        raise CalibrationError(message, path=path)
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _frame(data: dict[str, Any], key: str, path: Path) -> str:
    value = _get(data, key, path)
    if not isinstance(value, str) or not value:
        message = f"field {key!r}: expected a non-empty frame name, got {value!r}"
        raise CalibrationError(message, path=path)
    return value


def load_extrinsics_yaml(path: str | PathLike[str]) -> RigidTransform:
    """Read an extrinsics YAML (format in the module doc) as ``T_<target>_<source>``."""
    file, data = _read_yaml_mapping(path, "extrinsics file")
    allowed = ("source_frame", "target_frame", "matrix", "translation", "rotation")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        message = f"unknown keys {unknown!r}; valid: {', '.join(allowed)}"
        raise CalibrationError(message, path=file)
    source = _frame(data, "source_frame", file)
    target = _frame(data, "target_frame", file)
    has_matrix = "matrix" in data
    has_pose = "translation" in data or "rotation" in data
    if has_matrix == has_pose:
        message = "give either 'matrix' (4x4) or 'translation' + 'rotation' (quaternion x, y, z, w)"
        raise CalibrationError(message, path=file)
    if has_matrix:
        m = as_matrix(data["matrix"], (4, 4), "matrix", file)
        check_rigid(m, "matrix", file)
        return RigidTransform(m, source, target, str(file))
    t = as_matrix(_get(data, "translation", file), (3,), "translation", file)
    R = quaternion_to_matrix(_get(data, "rotation", file), "rotation", file)
    return RigidTransform.from_rt(R, t, source, target, file)


def load_ros_rig(
    camera_info_yaml: str | PathLike[str],
    extrinsics_yaml: str | PathLike[str],
    name: str,
    *,
    image_rectified: bool = False,
) -> Rig:
    """A :class:`Rig` from a camera-info YAML and a lidar-to-camera extrinsics YAML.

    The extrinsics' ``target_frame`` must be the camera's frame (its ``camera_name``).
    """
    camera = load_camera_info_yaml(camera_info_yaml, image_rectified=image_rectified)
    T = load_extrinsics_yaml(extrinsics_yaml)
    if T.target_frame != camera.frame_id:
        message = (
            f"field 'target_frame': extrinsics map into {T.target_frame!r} but the camera "
            f"frame (camera_name in {camera_info_yaml}) is {camera.frame_id!r}"
        )
        raise CalibrationError(message, path=extrinsics_yaml)
    return Rig(name=name, camera=camera, T_cam_velo=T, path=str(camera_info_yaml))
