"""Typed, validated calibration objects.

Transforms are named ``T_<destination>_<source>``: ``T_cam_velo`` maps a point from
the lidar (velodyne) frame into the camera reference frame, ``p_cam = T_cam_velo @ p_velo``
in homogeneous coordinates. The camera reference frame is the frame *before*
rectification; ``CameraModel.R`` rotates it into the rectified frame and
``CameraModel.P`` projects rectified points to pixels (the ROS ``CameraInfo`` and KITTI
convention). A rectified image is therefore reached by ``P @ R @ T_cam_velo``; a raw,
distorted image by ``K`` and ``D`` (OpenCV's model) applied to ``T_cam_velo @ p``.

Every object validates itself on construction. Arrays are copied to float64 and made
read-only so a frozen object really is immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from os import PathLike

import numpy as np
import numpy.typing as npt

from drivingseg.errors import CalibrationError

__all__ = [
    "DISTORTION_MODELS",
    "ROTATION_TOLERANCE",
    "CameraModel",
    "Rig",
    "RigidTransform",
    "as_matrix",
    "check_rigid",
    "check_rotation",
]

ROTATION_TOLERANCE = 1e-4
"""Largest allowed ``max|R^T R - I|`` and ``|det R - 1|`` for a rotation matrix.

Calibration files print about 7 significant digits, which leaves errors near 1e-6;
1e-4 accepts those and rejects anything that is not a rotation."""

DISTORTION_MODELS = ("none", "plumb_bob", "rational_polynomial", "equidistant")
"""Distortion models understood (ROS names; both map onto OpenCV's model)."""

FloatArray = npt.NDArray[np.float64]


def as_matrix(
    value: object,
    shape: tuple[int, ...],
    name: str,
    path: str | PathLike[str] | None = None,
) -> FloatArray:
    """Return ``value`` as a read-only float64 array of ``shape``, or raise naming ``name``.

    A flat sequence with the right number of elements is reshaped (calibration files
    store matrices row-major on one line).
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"field {name!r}: not numeric ({exc})", path=path) from exc
    want = int(np.prod(shape))
    if arr.size != want or (arr.ndim > 1 and arr.shape != shape):
        raise CalibrationError(
            f"field {name!r}: expected {want} values (shape {shape}), got shape {arr.shape}",
            path=path,
        )
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"field {name!r}: contains NaN or inf: {arr.tolist()!r}", path=path)
    arr.setflags(write=False)
    return arr


def check_rotation(R: FloatArray, name: str, path: str | PathLike[str] | None = None) -> None:
    """Raise unless ``R`` is orthonormal with determinant +1 within ``ROTATION_TOLERANCE``."""
    with np.errstate(invalid="ignore"):  # a NaN matrix is refused below, not warned about
        ortho_err = float(np.max(np.abs(R.T @ R - np.eye(3))))
        det = float(np.linalg.det(R))
    if not (ortho_err <= ROTATION_TOLERANCE and abs(det - 1.0) <= ROTATION_TOLERANCE):  # NaN
        raise CalibrationError(
            f"field {name!r}: not a rotation (max|R^T R - I| = {ortho_err:.3g}, det = {det:.6g}; "
            f"tolerance {ROTATION_TOLERANCE:g})",
            path=path,
        )


def check_rigid(m: FloatArray, name: str, path: str | PathLike[str] | None = None) -> None:
    """Raise unless the 4x4 ``m`` is rigid: last row ``[0, 0, 0, 1]``, a rotation block.

    Parsers call it with the field name of their file, so the error names that key rather
    than the ``T_<target>_<source>`` the transform is built as."""
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise CalibrationError(
            f"field {name!r}: last row must be [0, 0, 0, 1], got {m[3].tolist()!r}", path=path
        )
    check_rotation(m[:3, :3], name, path)


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A 4x4 rigid transform ``T_<target>_<source>`` mapping source-frame points to target."""

    matrix: FloatArray
    source_frame: str
    target_frame: str
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        name = f"T_{self.target_frame}_{self.source_frame}"
        m = as_matrix(self.matrix, (4, 4), name, self.path)
        check_rigid(m, name, self.path)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def from_rt(
        cls,
        R: object,
        t: object,
        source_frame: str,
        target_frame: str,
        path: str | PathLike[str] | None = None,
    ) -> RigidTransform:
        """Build from a 3x3 rotation and a 3-vector translation."""
        name = f"T_{target_frame}_{source_frame}"
        m = np.eye(4)
        m[:3, :3] = as_matrix(R, (3, 3), f"{name}.R", path)
        m[:3, 3] = as_matrix(t, (3,), f"{name}.t", path)
        return cls(m, source_frame, target_frame, None if path is None else str(path))

    @property
    def rotation(self) -> FloatArray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> FloatArray:
        return self.matrix[:3, 3]

    def inverse(self) -> RigidTransform:
        """The transform in the other direction (``T_source_target``)."""
        inv = np.eye(4)
        inv[:3, :3] = self.rotation.T
        inv[:3, 3] = -self.rotation.T @ self.translation
        return RigidTransform(inv, self.target_frame, self.source_frame, self.path)

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``self @ other``: ``T_a_b.compose(T_b_c) == T_a_c``; frame names must chain."""
        if other.target_frame != self.source_frame:
            raise CalibrationError(
                f"cannot compose T_{self.target_frame}_{self.source_frame} with "
                f"T_{other.target_frame}_{other.source_frame}: frames do not chain"
            )
        return RigidTransform(
            self.matrix @ other.matrix, other.source_frame, self.target_frame, self.path
        )

    def apply(self, points_xyz: npt.ArrayLike) -> FloatArray:
        """Transform an Nx3 array of points; returns Nx3 float64."""
        pts = np.asarray(points_xyz, dtype=np.float64)
        return pts @ self.rotation.T + self.translation


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A pinhole camera with optional distortion, rectification and projection.

    ``K`` (3x3) and ``D`` describe the raw sensor; ``R`` (3x3) rotates the camera frame
    into the rectified frame and ``P`` (3x4) projects rectified points, both identity /
    ``[K | 0]`` when the source has none. ``image_rectified`` says which the images are:
    rectified images are projected with ``P @ R``, raw ones with ``K`` and ``D``.
    """

    width: int
    height: int
    K: FloatArray
    D: FloatArray = field(default_factory=lambda: np.zeros(5))
    R: FloatArray = field(default_factory=lambda: np.eye(3))
    P: FloatArray | None = None
    distortion_model: str = "plumb_bob"
    image_rectified: bool = True
    frame_id: str = "camera"
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        path = self.path
        for name, value in (("width", self.width), ("height", self.height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise CalibrationError(
                    f"field {name!r}: image size must be a positive integer, got {value!r}",
                    path=path,
                )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if self.distortion_model not in DISTORTION_MODELS:
            raise CalibrationError(
                f"field 'distortion_model': unknown model {self.distortion_model!r}; "
                f"valid: {', '.join(DISTORTION_MODELS)}",
                path=path,
            )
        K = as_matrix(self.K, (3, 3), "K", path)
        if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
            raise CalibrationError(
                f"field 'K': focal lengths must be positive and the last row [0, 0, 1], "
                f"got {K.tolist()!r}",
                path=path,
            )
        if K[1, 0] != 0.0:  # the pinhole model has no such term: it was silently ignored
            raise CalibrationError(
                f"field 'K': must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got K[1][0] = "
                f"{float(K[1, 0])!r} in {K.tolist()!r} (a transposed or corrupt matrix?)",
                path=path,
            )
        D = np.array(self.D, dtype=np.float64).ravel()
        if D.size == 0:
            D = np.zeros(4 if self.distortion_model == "equidistant" else 5)
        if D.size not in (4, 5, 8, 12, 14):
            raise CalibrationError(
                f"field 'D': OpenCV takes 4, 5, 8, 12 or 14 coefficients, got {D.size}",
                path=path,
            )
        if self.distortion_model == "equidistant" and D.size != 4:
            raise CalibrationError(
                f"field 'D': the equidistant (fisheye) model takes 4 coefficients "
                f"k1..k4, got {D.size}: {D.tolist()!r}",
                path=path,
            )
        D = as_matrix(D, (D.size,), "D", path)
        R = as_matrix(self.R, (3, 3), "R", path)
        check_rotation(R, "R", path)
        P_src = self.P if self.P is not None else np.hstack([K, np.zeros((3, 1))])
        P = as_matrix(P_src, (3, 4), "P", path)
        if P[0, 0] <= 0 or P[1, 1] <= 0 or not np.allclose(P[2, :3], [0, 0, 1]):
            raise CalibrationError(
                f"field 'P': focal lengths must be positive and the last row [0, 0, 1, tz], "
                f"got {P.tolist()!r}",
                path=path,
            )
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "P", P)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels, OpenCV order."""
        return (self.width, self.height)

    @property
    def has_distortion(self) -> bool:
        """Whether pixels are not a plain pinhole projection of the camera-frame points. An
        ``equidistant`` (fisheye) lens always is, zero k1..k4 included (its radius is
        ``f * theta``, not ``f * tan(theta)``); the polynomial models are when a
        coefficient is non-zero."""
        if self.distortion_model == "equidistant":
            return True
        return self.distortion_model != "none" and bool(np.any(self.D != 0.0))

    def projection_matrix(self) -> FloatArray:
        """3x4 matrix taking camera-frame points to pixels of a rectified image (``P @ R``)."""
        assert self.P is not None
        R4 = np.eye(4)
        R4[:3, :3] = self.R
        return np.asarray(self.P @ R4)

    def windowed(self, x_offset: int, y_offset: int, width: int, height: int,
                 binning_x: int = 1, binning_y: int = 1) -> CameraModel:
        """This camera read out through a sensor window (``x_offset``, ``y_offset``,
        ``width`` x ``height`` in its full-resolution pixels) and binned, as a ROS
        ``CameraInfo``'s ``roi`` and ``binning`` say: ``K`` and ``P`` move by the offset,
        then scale as :func:`~drivingseg.fusion.projection.scale_camera` does (pixel centres
        at integer coordinates); the distortion is unchanged."""
        if not (x_offset >= 0 and y_offset >= 0 and binning_x >= 1 and binning_y >= 1
                and binning_x <= width and x_offset + width <= self.width
                and binning_y <= height and y_offset + height <= self.height):
            message = (f"window {width}x{height}+{x_offset}+{y_offset} binned "
                       f"{binning_x}x{binning_y} does not fit the calibrated "
                       f"{self.width}x{self.height} image")
            raise CalibrationError(message, path=self.path)
        sx, sy = 1.0 / binning_x, 1.0 / binning_y
        S = np.array([[sx, 0.0, (sx - 1.0) / 2.0 - sx * x_offset],
                      [0.0, sy, (sy - 1.0) / 2.0 - sy * y_offset], [0.0, 0.0, 1.0]])
        assert self.P is not None
        return replace(self, width=width // binning_x, height=height // binning_y,
                       K=S @ self.K, P=S @ self.P)


@dataclass(frozen=True, eq=False)
class Rig:
    """A named sensor rig: one camera, one lidar and the transform between them.

    ``T_cam_velo`` maps lidar points into the camera reference frame (see module doc).
    ``T_velo_imu`` is kept when the source provides a non-zero one.
    """

    name: str
    camera: CameraModel
    T_cam_velo: RigidTransform
    T_velo_imu: RigidTransform | None = None
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise CalibrationError("field 'name': rig name must not be empty", path=self.path)
        if self.T_cam_velo.target_frame != self.camera.frame_id:
            raise CalibrationError(
                f"field 'T_cam_velo': target frame {self.T_cam_velo.target_frame!r} is not "
                f"the camera frame {self.camera.frame_id!r}",
                path=self.path,
            )

    @property
    def camera_frame(self) -> str:
        return self.camera.frame_id

    @property
    def lidar_frame(self) -> str:
        return self.T_cam_velo.source_frame

    def lidar_to_pixel_matrix(self) -> FloatArray:
        """3x4 ``P @ R @ T_cam_velo[:3]``: homogeneous lidar point -> homogeneous pixel.

        Valid for rectified images (``camera.image_rectified``); raw images need ``D``.
        """
        return np.asarray(self.camera.projection_matrix() @ self.T_cam_velo.matrix)
