"""KITTI calibration files: the object/road benchmark ``calib/*.txt`` and the raw date folder.

Frame conventions. KITTI's rectified projection matrices ``P0..P3`` (object benchmark) and
``P_rect_0X`` (raw data) all project points given in the *rectified frame of camera 0*;
camera X's offset from camera 0 is folded into the fourth column of its ``P``. The
rectifying rotation is always camera 0's (``R0_rect`` / ``R_rect_00``), and ``Tr_velo_to_cam``
maps velodyne points into the (unrectified) camera-0 frame. Hence the documented chain
``P_rect_02 @ R_rect_00 @ Tr_velo_to_cam`` for the left colour camera.

The loaders therefore return a :class:`Rig` whose camera has ``frame_id = "cam0"`` whichever
image it describes, ``R`` = camera 0's rectification, ``P`` = the chosen camera's projection,
``K = P[:, :3]``, no distortion and ``image_rectified=True``; ``T_cam_velo`` has source
``"velodyne"`` and target ``"cam0"``, and ``T_velo_imu`` (when present and non-zero) source
``"imu"`` and target ``"velodyne"``.
"""

from __future__ import annotations

import logging
import re
from os import PathLike
from pathlib import Path

import numpy as np

from drivingseg.calibration.types import (
    CameraModel,
    FloatArray,
    Rig,
    RigidTransform,
    as_matrix,
    check_rotation,
)
from drivingseg.errors import CalibrationError, ConfigError
from drivingseg.fileio import read_text, write_texts_together

__all__ = [
    "CAMERA_FRAME",
    "IMU_FRAME",
    "LIDAR_FRAME",
    "load_kitti_object_rig",
    "load_kitti_raw_rig",
    "parse_kitti_calib_file",
    "save_kitti_raw_calib",
]

logger = logging.getLogger(__name__)

CAMERA_FRAME = "cam0"
"""Frame of every KITTI camera model: the camera-0 reference frame (see module doc)."""
LIDAR_FRAME = "velodyne"
IMU_FRAME = "imu"

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"
IMU_TO_VELO = "calib_imu_to_velo.txt"

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _split_line(line: str) -> tuple[str, str] | None:
    """``(key, values)`` of a ``key: values`` line, or of ``key values`` with numbers only:
    KITTI tracking's calib files write ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo``
    without the colon. None for anything else."""
    key, sep, rest = line.partition(":")
    if sep:
        return key.strip(), rest
    parts = line.split(None, 1)
    if len(parts) == 2 and all(_parse_float(tok) is not None for tok in parts[1].split()):
        return parts[0], parts[1]
    return None


def parse_kitti_calib_file(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read a KITTI ``key: v1 v2 ...`` calibration file into 1-D float64 arrays.

    Lines whose values are all non-numeric (``calib_time: 09-Jan-2012 13:57:47``) are
    skipped; blank lines too. ``key v1 v2 ...`` without the colon is read too when every
    value is a number (KITTI tracking's ``R_rect``, ``Tr_velo_cam``, ``Tr_imu_velo``). Any
    other line that is not ``key: values``, a line mixing numbers and text, and a key given
    twice raise :class:`CalibrationError` with the line number.
    """
    file = Path(path)
    text = read_text(file, error=CalibrationError, what="calibration file")

    values: dict[str, np.ndarray] = {}
    first_line: dict[str, int] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        split = _split_line(line)
        if split is None or not _KEY_RE.match(split[0]):
            message = f"line {lineno}: expected 'key: values', got {raw_line!r}"
            raise CalibrationError(message, path=file)
        key, rest = split
        tokens = rest.split()
        numbers = [_parse_float(tok) for tok in tokens]
        if tokens and all(num is None for num in numbers):
            logger.debug("%s: line %d: skipping non-numeric field %r", file, lineno, key)
            continue
        if any(num is None for num in numbers):
            bad = [tok for tok, num in zip(tokens, numbers, strict=True) if num is None]
            message = f"line {lineno}: field {key!r} mixes numbers and text: {bad!r}"
            raise CalibrationError(message, path=file)
        if key in values:
            message = f"line {lineno}: field {key!r} given twice (first on line {first_line[key]})"
            raise CalibrationError(message, path=file)
        values[key] = np.array(numbers, dtype=np.float64)
        first_line[key] = lineno
    return values


def _require(values: dict[str, np.ndarray], keys: tuple[str, ...], path: Path) -> np.ndarray:
    """The first of ``keys`` present (aliases: KITTI tracking spells some keys differently)."""
    for key in keys:
        if key in values:
            return values[key]
    present = ", ".join(values) or "none"
    message = f"missing field {keys[0]!r} (fields present: {present})"
    raise CalibrationError(message, path=path)


def _rotation(value: np.ndarray, name: str, path: Path) -> FloatArray:
    R = as_matrix(value, (3, 3), name, path)
    check_rotation(R, name, path)
    return R


def _transform(
    R: FloatArray, t: FloatArray, source: str, target: str, path: Path
) -> RigidTransform:
    m = np.eye(4)
    m[:3, :3] = R
    m[:3, 3] = t
    return RigidTransform(m, source, target, str(path))


def _transform_3x4(
    value: np.ndarray, name: str, source: str, target: str, path: Path
) -> RigidTransform | None:
    """A KITTI 3x4 ``[R | t]`` as a 4x4 transform; ``None`` when all zeros (absent)."""
    m = as_matrix(value, (3, 4), name, path)
    if not np.any(m):
        return None
    R = m[:, :3]
    check_rotation(R, name, path)
    return _transform(R, m[:, 3], source, target, path)


def _check_camera(camera: int) -> None:
    if isinstance(camera, bool) or not isinstance(camera, int) or not 0 <= camera <= 3:
        raise ConfigError(f"KITTI camera index must be 0, 1, 2 or 3, got {camera!r}")


def _projection(value: np.ndarray, name: str, camera: int, path: Path) -> FloatArray:
    """The 3x4 projection ``name`` of ``camera``, checked here so that an error names the
    file's field rather than the ``K = P[:, :3]`` derived from it."""
    P = as_matrix(value, (3, 4), name, path)
    if P[0, 0] <= 0 or P[1, 1] <= 0 or not np.allclose(P[2, :3], [0, 0, 1]):
        hint = f" (camera {camera} is not calibrated in this file)" if not np.any(P) else ""
        message = (
            f"field {name!r}: focal lengths must be positive and the last row [0, 0, 1, tz], "
            f"got {P.tolist()!r}{hint}"
        )
        raise CalibrationError(message, path=path)
    return P


def _kitti_camera(P: FloatArray, R: FloatArray, width: int, height: int, path: Path) -> CameraModel:
    return CameraModel(
        width=width,
        height=height,
        K=P[:, :3],
        D=np.zeros(5),
        R=R,
        P=P,
        distortion_model="none",
        image_rectified=True,
        frame_id=CAMERA_FRAME,
        path=str(path),
    )


def load_kitti_object_rig(
    calib_txt: str | PathLike[str],
    camera: int = 2,
    name: str | None = None,
    *,
    image_size: tuple[int, int],
) -> Rig:
    """Rig of one KITTI object/road benchmark calib file (``P0..P3``, ``R0_rect``, ...).

    These files do not store the image size, so ``image_size=(width, height)`` is
    required (read it from the image). ``name`` defaults to ``kitti_object_<file stem>``.
    KITTI tracking's spellings ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo`` are accepted.
    """
    _check_camera(camera)
    path = Path(calib_txt)
    if not (isinstance(image_size, tuple | list) and len(image_size) == 2):
        message = f"image_size must be (width, height), got {image_size!r}"
        raise ConfigError(message, path=path)
    values = parse_kitti_calib_file(path)
    P = _projection(_require(values, (f"P{camera}",), path), f"P{camera}", camera, path)
    R = _rotation(_require(values, ("R0_rect", "R_rect"), path), "R0_rect", path)
    velo = _require(values, ("Tr_velo_to_cam", "Tr_velo_cam"), path)
    T_cam_velo = _transform_3x4(velo, "Tr_velo_to_cam", LIDAR_FRAME, CAMERA_FRAME, path)
    if T_cam_velo is None:
        raise CalibrationError("field 'Tr_velo_to_cam': all zeros", path=path)
    imu = values.get("Tr_imu_to_velo", values.get("Tr_imu_velo"))
    T_velo_imu = None
    if imu is not None:
        T_velo_imu = _transform_3x4(imu, "Tr_imu_to_velo", IMU_FRAME, LIDAR_FRAME, path)
    width, height = image_size
    return Rig(
        name=name or f"kitti_object_{path.stem}",
        camera=_kitti_camera(P, R, width, height, path),
        T_cam_velo=T_cam_velo,
        T_velo_imu=T_velo_imu,
        path=str(path),
    )


def _image_size(value: np.ndarray, name: str, path: Path) -> tuple[int, int]:
    size = as_matrix(value, (2,), name, path)
    if np.any(size != np.round(size)) or np.any(size <= 0):
        message = f"field {name!r}: image size must be two positive integers, got {size.tolist()!r}"
        raise CalibrationError(message, path=path)
    return int(size[0]), int(size[1])


def load_kitti_raw_rig(
    calib_dir: str | PathLike[str], camera: int = 2, name: str | None = None
) -> Rig:
    """Rig of a KITTI raw date folder (``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt``).

    Image size from ``S_rect_0X``, projection ``P_rect_0X``, rectification ``R_rect_00``
    (camera 0's, used by every camera), ``T_cam_velo`` from ``R``/``T`` of
    ``calib_velo_to_cam.txt``, and ``T_velo_imu`` from the optional ``calib_imu_to_velo.txt``.
    ``name`` defaults to ``kitti_<folder name>``.
    """
    _check_camera(camera)
    folder = Path(calib_dir)
    if not folder.is_dir():
        raise CalibrationError("KITTI raw calibration folder not found", path=folder)
    cam_file = folder / CAM_TO_CAM
    cam = parse_kitti_calib_file(cam_file)
    width, height = _image_size(
        _require(cam, (f"S_rect_0{camera}",), cam_file), f"S_rect_0{camera}", cam_file
    )
    p_key = f"P_rect_0{camera}"
    P = _projection(_require(cam, (p_key,), cam_file), p_key, camera, cam_file)
    R_rect = _rotation(_require(cam, ("R_rect_00",), cam_file), "R_rect_00", cam_file)

    velo_file = folder / VELO_TO_CAM
    velo = parse_kitti_calib_file(velo_file)
    R = _rotation(_require(velo, ("R",), velo_file), "R", velo_file)
    t = as_matrix(_require(velo, ("T",), velo_file), (3,), "T", velo_file)
    T_cam_velo = _transform(R, t, LIDAR_FRAME, CAMERA_FRAME, velo_file)

    T_velo_imu = None
    imu_file = folder / IMU_TO_VELO
    if imu_file.exists():
        imu = parse_kitti_calib_file(imu_file)
        R_imu = as_matrix(_require(imu, ("R",), imu_file), (3, 3), "R", imu_file)
        t_imu = as_matrix(_require(imu, ("T",), imu_file), (3,), "T", imu_file)
        if np.any(R_imu):
            check_rotation(R_imu, "R", imu_file)
            T_velo_imu = _transform(R_imu, t_imu, IMU_FRAME, LIDAR_FRAME, imu_file)
    return Rig(
        name=name or f"kitti_{folder.resolve().name}",
        camera=_kitti_camera(P, R_rect, width, height, cam_file),
        T_cam_velo=T_cam_velo,
        T_velo_imu=T_velo_imu,
        path=str(folder),
    )


def _fmt(values: np.ndarray) -> str:
    """Numbers separated by spaces, each the shortest text that reads back bit-identical."""
    return " ".join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())


def save_kitti_raw_calib(rig: Rig, calib_dir: str | PathLike[str], camera: int = 2) -> None:
    """Write ``rig`` as a KITTI raw date folder's calibration (read by ``load_kitti_raw_rig``).

    Writes ``calib_cam_to_cam.txt`` (camera X's ``S/K/D/R/T`` and ``S_rect/R_rect/P_rect``,
    plus camera 0's ``S_rect_00/R_rect_00/P_rect_00`` when X != 0), ``calib_velo_to_cam.txt``
    and, when the rig has ``T_velo_imu``, ``calib_imu_to_velo.txt`` (a stale one is removed
    otherwise). Numbers are written repr-exact, so loading gives back the same matrices.
    KITTI's rectified layout has no distortion, so a rig with raw (unrectified or distorted)
    images is refused. ``R_0X = I`` and ``T_0X`` is the baseline implied by ``P``. Frame
    names are not stored: the loader names them ``cam0``/``velodyne``/``imu``. The files
    are replaced together only once all are written, so an error (a
    :class:`CalibrationError` naming the file) leaves the folder's old set as it was.
    """
    _check_camera(camera)
    folder = Path(calib_dir)
    cam = rig.camera
    if not cam.image_rectified or cam.has_distortion:
        message = (
            f"rig {rig.name!r}: KITTI raw calibration describes rectified, undistorted images; "
            f"got image_rectified={cam.image_rectified!r}, "
            f"distortion_model={cam.distortion_model!r}, D={cam.D.tolist()!r}"
        )
        raise CalibrationError(message, path=folder)
    if rig.T_velo_imu is not None and rig.T_velo_imu.target_frame != rig.lidar_frame:
        message = (
            f"rig {rig.name!r}: T_velo_imu targets {rig.T_velo_imu.target_frame!r}, "
            f"not the lidar frame {rig.lidar_frame!r}"
        )
        raise CalibrationError(message, path=folder)
    assert cam.P is not None
    P = cam.P
    K_rect = P[:, :3]
    size = np.array([cam.width, cam.height], dtype=np.float64)
    baseline = np.linalg.solve(K_rect, P[:, 3])
    x = f"0{camera}"
    lines: list[str] = []
    if camera != 0:
        lines += [
            f"S_rect_00: {_fmt(size)}",
            f"R_rect_00: {_fmt(cam.R)}",
            f"P_rect_00: {_fmt(np.hstack([K_rect, np.zeros((3, 1))]))}",
        ]
    lines += [
        f"S_{x}: {_fmt(size)}",
        f"K_{x}: {_fmt(cam.K)}",
        f"D_{x}: {_fmt(np.zeros(5))}",
        f"R_{x}: {_fmt(np.eye(3))}",
        f"T_{x}: {_fmt(baseline)}",
        f"S_rect_{x}: {_fmt(size)}",
        f"R_rect_{x}: {_fmt(cam.R)}",
        f"P_rect_{x}: {_fmt(P)}",
    ]
    T = rig.T_cam_velo
    texts = {
        CAM_TO_CAM: "\n".join(lines) + "\n",
        VELO_TO_CAM: f"R: {_fmt(T.rotation)}\nT: {_fmt(T.translation)}\n",
    }
    if rig.T_velo_imu is not None:
        T_imu = rig.T_velo_imu
        texts[IMU_TO_VELO] = f"R: {_fmt(T_imu.rotation)}\nT: {_fmt(T_imu.translation)}\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create calibration folder: {exc.strerror or exc}"
        raise CalibrationError(message, path=folder) from exc
    stale = [] if rig.T_velo_imu is not None else [folder / IMU_TO_VELO]
    if stale and stale[0].exists():
        logger.info("%s: removing stale %s (rig has no T_velo_imu)", folder, IMU_TO_VELO)
    write_texts_together({folder / name: text for name, text in texts.items()},
                         error=CalibrationError, what="calibration file", remove=stale)
