"""The project's own rig calibration YAML (``format: drivingseg-rig/1``, docs/RIG_FORMAT.md).

Floats are written with Python's shortest round-trip ``repr`` (PyYAML's float
representer), so ``load_rig(save_rig(rig))`` gives bit-identical float64 matrices. Reading is
strict: a missing key, a key given twice, a key of the wrong type or an unknown key raises
:class:`CalibrationError` naming the file and the dotted field (``camera.K``).
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
from drivingseg.fileio import parse_yaml, read_text, write_text_atomic

__all__ = ["RIG_FORMAT", "load_rig", "rig_from_dict", "rig_to_dict", "save_rig"]

RIG_FORMAT = "drivingseg-rig/1"
"""Value of the ``format`` key this module reads and writes."""

DEFAULT_IMU_FRAME = "imu"

_TOP_KEYS = ("format", "name", "source", "camera", "lidar", "imu", "T_cam_velo", "T_velo_imu")
_CAMERA_KEYS = (
    "frame_id",
    "width",
    "height",
    "image_rectified",
    "distortion_model",
    "K",
    "D",
    "R",
    "P",
)
_HEADER = f"# drivingseg rig calibration ({RIG_FORMAT}); format described in docs/RIG_FORMAT.md\n"

PathArg = str | PathLike[str] | None


def _matrix_list(m: FloatArray) -> list[Any]:
    return [[float(v) for v in row] for row in np.asarray(m, dtype=np.float64)]


def rig_to_dict(rig: Rig, source: str = "") -> dict[str, Any]:
    """The YAML document of ``rig`` as plain Python types (floats, lists, dicts)."""
    cam = rig.camera
    assert cam.P is not None
    if rig.T_velo_imu is not None and rig.T_velo_imu.target_frame != rig.lidar_frame:
        message = (
            f"rig {rig.name!r}: T_velo_imu targets {rig.T_velo_imu.target_frame!r}, "
            f"not the lidar frame {rig.lidar_frame!r}"
        )
        raise CalibrationError(message, path=rig.path)
    data: dict[str, Any] = {
        "format": RIG_FORMAT,
        "name": rig.name,
        "source": source,
        "camera": {
            "frame_id": cam.frame_id,
            "width": cam.width,
            "height": cam.height,
            "image_rectified": cam.image_rectified,
            "distortion_model": cam.distortion_model,
            "K": _matrix_list(cam.K),
            "D": [float(v) for v in cam.D],
            "R": _matrix_list(cam.R),
            "P": _matrix_list(cam.P),
        },
        "lidar": {"frame_id": rig.lidar_frame},
    }
    if rig.T_velo_imu is not None:
        data["imu"] = {"frame_id": rig.T_velo_imu.source_frame}
    data["T_cam_velo"] = _matrix_list(rig.T_cam_velo.matrix)
    data["T_velo_imu"] = None if rig.T_velo_imu is None else _matrix_list(rig.T_velo_imu.matrix)
    return data


def save_rig(rig: Rig, path: str | PathLike[str], source: str = "") -> None:
    """Write ``rig`` to ``path`` atomically (temp file + ``os.replace``)."""
    text = _HEADER + yaml.safe_dump(
        rig_to_dict(rig, source),
        sort_keys=False,
        default_flow_style=None,
        width=10_000,
        allow_unicode=True,
    )
    write_text_atomic(path, text, error=CalibrationError, what="calibration file")


def _get(data: Mapping[str, Any], key: str, where: str, path: PathArg) -> Any:
    if key not in data:
        raise CalibrationError(f"missing key {where + key!r}", path=path)
    return data[key]


def _mapping(value: object, field: str, path: PathArg, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        message = f"field {field!r}: expected a mapping, got {type(value).__name__} {value!r}"
        raise CalibrationError(message, path=path)
    unknown = [k for k in value if k not in allowed]
    if unknown:
        message = f"field {field!r}: unknown keys {unknown!r}; valid: {', '.join(allowed)}"
        raise CalibrationError(message, path=path)
    return value


def _str(value: object, field: str, path: PathArg) -> str:
    if not isinstance(value, str) or not value:
        message = f"field {field!r}: expected a non-empty string, got {value!r}"
        raise CalibrationError(message, path=path)
    return value


def _int(value: object, field: str, path: PathArg) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        message = f"field {field!r}: expected an integer, got {type(value).__name__} {value!r}"
        raise CalibrationError(message, path=path)
    return value


def _bool(value: object, field: str, path: PathArg) -> bool:
    if not isinstance(value, bool):
        message = f"field {field!r}: expected true or false, got {type(value).__name__} {value!r}"
        raise CalibrationError(message, path=path)
    return value


def _check_numbers(value: object, field: str, path: PathArg) -> None:
    """Raise unless ``value`` is a (nested) list of plain ints/floats."""
    if isinstance(value, list):
        for item in value:
            _check_numbers(item, field, path)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ""
        if isinstance(value, str):
            hint = " (YAML 1.1 reads exponents without a dot, like 1e-5, as text: write 1.0e-5)"
        message = f"field {field!r}: expected numbers, got {type(value).__name__} {value!r}{hint}"
        raise CalibrationError(message, path=path)


def _matrix(value: object, shape: tuple[int, ...], field: str, path: PathArg) -> FloatArray:
    if not isinstance(value, list):
        message = f"field {field!r}: expected a list of numbers, got {value!r}"
        raise CalibrationError(message, path=path)
    _check_numbers(value, field, path)
    return as_matrix(value, shape, field, path)


def _transform(
    value: object, field: str, source: str, target: str, path: PathArg
) -> RigidTransform:
    m = _matrix(value, (4, 4), field, path)
    check_rigid(m, field, path)
    return RigidTransform(m, source, target, None if path is None else str(path))


def rig_from_dict(data: object, path: PathArg = None) -> Rig:
    """Validate a parsed rig document and build the :class:`Rig` (``path`` is for messages)."""
    doc = _mapping(data, "<document>", path, _TOP_KEYS)
    fmt = _get(doc, "format", "", path)
    if fmt != RIG_FORMAT:
        message = f"field 'format': unknown format {fmt!r}; this version reads {RIG_FORMAT!r}"
        raise CalibrationError(message, path=path)
    name = _str(_get(doc, "name", "", path), "name", path)
    source = doc.get("source", "")
    if source is not None and not isinstance(source, str):
        raise CalibrationError(f"field 'source': expected text, got {source!r}", path=path)

    cam = _mapping(_get(doc, "camera", "", path), "camera", path, _CAMERA_KEYS)
    D_value = _get(cam, "D", "camera.", path)
    if not isinstance(D_value, list) or any(isinstance(v, list) for v in D_value):
        message = f"field 'camera.D': expected a flat list of numbers, got {D_value!r}"
        raise CalibrationError(message, path=path)
    _check_numbers(D_value, "camera.D", path)
    R = _matrix(_get(cam, "R", "camera.", path), (3, 3), "camera.R", path)
    check_rotation(R, "camera.R", path)
    camera = _camera_model(
        path,
        width=_int(_get(cam, "width", "camera.", path), "camera.width", path),
        height=_int(_get(cam, "height", "camera.", path), "camera.height", path),
        K=_matrix(_get(cam, "K", "camera.", path), (3, 3), "camera.K", path),
        D=np.array(D_value, dtype=np.float64),
        R=R,
        P=_matrix(_get(cam, "P", "camera.", path), (3, 4), "camera.P", path),
        distortion_model=_str(
            _get(cam, "distortion_model", "camera.", path), "camera.distortion_model", path
        ),
        image_rectified=_bool(
            _get(cam, "image_rectified", "camera.", path), "camera.image_rectified", path
        ),
        frame_id=_str(_get(cam, "frame_id", "camera.", path), "camera.frame_id", path),
    )
    lidar = _mapping(_get(doc, "lidar", "", path), "lidar", path, ("frame_id",))
    lidar_frame = _str(_get(lidar, "frame_id", "lidar.", path), "lidar.frame_id", path)
    T_cam_velo = _transform(
        _get(doc, "T_cam_velo", "", path), "T_cam_velo", lidar_frame, camera.frame_id, path
    )
    T_velo_imu = None
    imu_value = doc.get("T_velo_imu")
    if imu_value is not None:
        imu_frame = DEFAULT_IMU_FRAME
        if "imu" in doc:
            imu = _mapping(doc["imu"], "imu", path, ("frame_id",))
            imu_frame = _str(_get(imu, "frame_id", "imu.", path), "imu.frame_id", path)
        T_velo_imu = _transform(imu_value, "T_velo_imu", imu_frame, lidar_frame, path)
    return Rig(
        name=name,
        camera=camera,
        T_cam_velo=T_cam_velo,
        T_velo_imu=T_velo_imu,
        path=None if path is None else str(path),
    )


def _camera_model(path: PathArg, **fields: Any) -> CameraModel:
    """``CameraModel(**fields)``, its own checks' field names dotted as in the file
    (``field 'camera.D'``, not ``field 'D'``)."""
    try:
        return CameraModel(**fields, path=None if path is None else str(path))
    except CalibrationError as exc:
        message = exc.message.replace("field '", "field 'camera.", 1)
        raise CalibrationError(message, path=path) from exc


def load_rig(path: str | PathLike[str]) -> Rig:
    """Read a ``drivingseg-rig/1`` YAML file (see docs/RIG_FORMAT.md)."""
    file = Path(path)
    text = read_text(file, error=CalibrationError, what="rig file")
    return rig_from_dict(parse_yaml(text, file, error=CalibrationError, what="rig file"), file)
