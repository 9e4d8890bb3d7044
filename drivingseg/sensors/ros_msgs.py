"""Deserialised ROS messages read as drivingseg types (the other direction, building ROS 2
messages, is :mod:`drivingseg.sensors.ros_msgs_write`).

Reading accepts messages from any rosbags typestore, ROS 1 or ROS 2 (the two differ only
in field spelling, e.g. ``CameraInfo.K`` against ``CameraInfo.k``, which is handled here).

The tf convention used by :func:`transform_from_tf` (and
:func:`~drivingseg.sensors.ros_msgs_write.tf_static_msg`): a
``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child``
maps child-frame points into the parent frame, so ``T_cam_velo`` is published with
parent ``cam`` and child ``velo``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors.decode import BAYER_TO_RGB, YUV422_TO_RGB, decode_compressed, scale_to_8bit

__all__ = [
    "IMAGE_ENCODINGS",
    "camera_model_from_camera_info",
    "image_from_msg",
    "points_from_pointcloud2",
    "stamp_ns_of",
    "transform_from_tf",
]

_CHANNELS_8 = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4,
               "bayer_rggb8": 1, "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1}
# 16-bit twins (machine-vision and HDR cameras): scaled to 8 bits as cv_bridge does
_CHANNELS = {**_CHANNELS_8, **{k[:-1] + "16": v for k, v in _CHANNELS_8.items()},
             **dict.fromkeys(YUV422_TO_RGB, 2)}
IMAGE_ENCODINGS = tuple(_CHANNELS)
"""``sensor_msgs/Image`` encodings :func:`image_from_msg` understands."""

# depth and other single-value images: not camera pictures, so named as such when refused
_NOT_CAMERA = ("16uc1", "32fc1", "8uc1", "16sc1", "32sc1", "64fc1")

# sensor_msgs/PointField datatype constants -> numpy scalar kind.
_POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
_INTENSITY_NAMES = ("intensity", "i", "reflectivity")


def _field(msg: Any, name: str) -> Any:
    """``msg.name`` (ROS 2 spelling) or ``msg.NAME`` (ROS 1 spelling)."""
    if hasattr(msg, name):
        return getattr(msg, name)
    return getattr(msg, name.upper())


def stamp_ns_of(msg: Any) -> int:
    """``msg.header.stamp`` in nanoseconds (ROS 1 and ROS 2 both deserialise to sec/nanosec)."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_from_msg(msg: Any, source: str) -> npt.NDArray[np.uint8]:
    """An ``Image`` or ``CompressedImage`` message as RGB uint8 H x W x 3.

    Raw images honour ``step`` (row padding); grey images are expanded to three
    channels, alpha is dropped, Bayer mosaics are demosaiced (OpenCV, bilinear), 4:2:2 YUV
    converted and 16-bit encodings (either byte order) are scaled to 8 bits as cv_bridge does.
    Compressed images must be JPEG or PNG (an empty ``format`` is decoded by content);
    image_transport's format (``bayer_rggb8; png compressed``) names the camera's encoding:
    a Bayer mosaic is demosaiced, 16 bits scaled to 8, a depth encoding refused.
    """
    if hasattr(msg, "format"):
        fmt = str(msg.format).lower().strip()
        if "compresseddepth" in fmt:
            message = (f"CompressedImage format {msg.format!r} is a depth image "
                       "(image_transport's compressedDepth), not a camera picture")
            raise RecordingError(message, path=source)
        # an empty format (some drivers leave it unset): the bytes say which it is
        if fmt and "jpeg" not in fmt and "jpg" not in fmt and "png" not in fmt:
            message = f"unsupported CompressedImage format {msg.format!r}; supported: jpeg, png"
            raise RecordingError(message, path=source)
        # image_transport's "<camera encoding>; <codec> compressed <encoding of the pixels>"
        camera, _, stored = fmt.partition(";") if ";" in fmt else ("", "", "")
        if camera.strip() in _NOT_CAMERA:
            message = (f"CompressedImage format {msg.format!r} is of a {camera.strip()} image "
                       "(a depth or single-value image), not a camera picture")
            raise RecordingError(message, path=source)
        encoding = stored.rpartition("compressed")[2].strip() or camera.strip()
        return decode_compressed(bytes(msg.data), encoding, source)

    encoding = str(msg.encoding).lower()
    if encoding not in _CHANNELS:
        kind = ("a depth or single-value image, not a camera picture; "
                if encoding in _NOT_CAMERA else "")
        message = (
            f"unsupported image encoding {msg.encoding!r} ({kind}"
            f"supported: {', '.join(IMAGE_ENCODINGS)})"
        )
        raise RecordingError(message, path=source)
    height, width = int(msg.height), int(msg.width)
    step = int(msg.step)
    channels = _CHANNELS[encoding]
    row_bytes = width * channels * (2 if encoding.endswith("16") else 1)
    data = np.asarray(msg.data, dtype=np.uint8).ravel()
    if encoding in YUV422_TO_RGB and width % 2:
        message = f"a {encoding} image (two pixels share a chroma pair) has an odd width {width!r}"
        raise RecordingError(message, path=source)
    if step < row_bytes or data.size < step * height:
        message = (
            f"image of {width}x{height} {encoding} needs step >= {row_bytes} and "
            f"{step * height} bytes, got step {step!r} and {data.size} bytes"
        )
        raise RecordingError(message, path=source)
    rows = np.ascontiguousarray(data[: step * height].reshape(height, step)[:, :row_bytes])
    if encoding.endswith("16"):
        rows = scale_to_8bit(rows.view(">u2" if int(msg.is_bigendian) else "<u2"))
    pixels = rows.reshape(height, width, channels)
    family = encoding[:-2] if encoding.endswith("16") else encoding[:-1]
    if encoding in YUV422_TO_RGB:
        out = cv2.cvtColor(pixels, YUV422_TO_RGB[encoding])
    elif family in BAYER_TO_RGB:
        out = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), BAYER_TO_RGB[family])
    elif family == "mono":
        out = np.repeat(pixels, 3, axis=2)
    elif family in ("rgb", "rgba"):
        out = pixels[:, :, :3]
    else:
        out = pixels[:, :, 2::-1]
    return np.ascontiguousarray(out)


def points_from_pointcloud2(msg: Any, source: str) -> npt.NDArray[np.float32]:
    """A ``PointCloud2`` as N x 4 float32 (x, y, z, intensity), vectorised.

    Fields may come in any order, at any offset, with padding and any numeric type.
    Intensity is read from ``intensity``, ``i`` or ``reflectivity`` (0 when absent, and
    non-finite intensities become 0); points with NaN or inf in x, y or z are dropped.
    """
    fields = {str(f.name): f for f in msg.fields}
    missing = [n for n in ("x", "y", "z") if n not in fields]
    if missing:
        message = (
            f"PointCloud2 has no {'/'.join(missing)} field; fields present: "
            f"{sorted(fields)!r}"
        )
        raise RecordingError(message, path=source)
    intensity_name = next((n for n in _INTENSITY_NAMES if n in fields), None)
    point_step = int(msg.point_step)
    row_step = int(msg.row_step)
    height, width = int(msg.height), int(msg.width)
    order = ">" if msg.is_bigendian else "<"

    wanted = ["x", "y", "z"] + ([intensity_name] if intensity_name else [])
    formats = []
    for name in wanted:
        f = fields[name]
        kind = _POINTFIELD_DTYPES.get(int(f.datatype))
        if kind is None:
            message = f"PointCloud2 field {name!r} has unknown datatype {int(f.datatype)!r}"
            raise RecordingError(message, path=source)
        fmt = np.dtype(order + kind)
        if int(f.offset) + fmt.itemsize > point_step:
            message = (
                f"PointCloud2 field {name!r} at offset {int(f.offset)} does not fit in "
                f"point_step {point_step!r}"
            )
            raise RecordingError(message, path=source)
        formats.append(fmt)
    dtype = np.dtype(
        {
            "names": wanted,
            "formats": formats,
            "offsets": [int(fields[n].offset) for n in wanted],
            "itemsize": point_step,
        }
    )
    data = np.asarray(msg.data, dtype=np.uint8).ravel()
    if row_step < point_step * width or data.size < row_step * height:
        message = (
            f"PointCloud2 of {height}x{width} points with point_step {point_step} needs "
            f"row_step >= {point_step * width} and {row_step * height} bytes, got "
            f"row_step {row_step!r} and {data.size} bytes"
        )
        raise RecordingError(message, path=source)
    rows = np.ascontiguousarray(data[: row_step * height].reshape(height, row_step)
                                [:, : point_step * width])
    offsets = [int(fields[n].offset) for n in wanted]
    out = _float32_columns(rows, point_step, offsets, formats)
    if out is None:
        records = rows.view(dtype).ravel()
        out = np.zeros((records.size, 4), dtype=np.float32)
        for col, name in enumerate(wanted):
            out[:, col] = records[name]
    finite = np.isfinite(out[:, 0]) & np.isfinite(out[:, 1]) & np.isfinite(out[:, 2])
    out = out if finite.all() else out[finite]
    out[~np.isfinite(out[:, 3]), 3] = 0.0
    return out


def _float32_columns(rows: npt.NDArray[np.uint8], point_step: int, offsets: list[int],
                     formats: list[np.dtype[Any]]) -> npt.NDArray[np.float32] | None:
    """N x 4 float32 (intensity 0 if absent) in one gather when every field is float32 at a
    4-byte aligned offset, as drivers write them; else None (240k points: 8 -> 1 ms)."""
    if point_step % 4 or any(o % 4 for o in offsets) or len(set(formats)) != 1 \
            or formats[0].kind != "f" or formats[0].itemsize != 4:
        return None
    floats = rows.view(formats[0]).reshape(-1, point_step // 4)
    cols = floats[:, [o // 4 for o in offsets]]
    if cols.shape[1] == 3:
        cols = np.concatenate([cols, np.zeros((cols.shape[0], 1), cols.dtype)], axis=1)
    return np.asarray(cols, dtype=np.float32)


def camera_model_from_camera_info(
    msg: Any, source: str, *, image_rectified: bool = False
) -> CameraModel:
    """A ``CameraInfo`` (ROS 1 ``K, D, R, P`` or ROS 2 ``k, d, r, p``) as a CameraModel.

    All-zero ``R`` means identity and all-zero ``P`` means ``[K | 0]`` (drivers leave
    them empty); an all-zero ``K`` is an uncalibrated camera and is refused. A ``roi``
    (sensor window) or ``binning`` gives the camera of the images the driver sends, as
    image_geometry does (:meth:`CameraModel.windowed`).
    """
    K = np.asarray(_field(msg, "k"), dtype=np.float64).reshape(-1)
    D = np.asarray(_field(msg, "d"), dtype=np.float64).reshape(-1)
    R = np.asarray(_field(msg, "r"), dtype=np.float64).reshape(-1)
    P = np.asarray(_field(msg, "p"), dtype=np.float64).reshape(-1)
    if K.size == 9 and not np.any(K):
        message = f"CameraInfo has an all-zero K (uncalibrated camera): {K.tolist()!r}"
        raise RecordingError(message, path=source)
    model = str(msg.distortion_model) or "none"
    if not D.size:
        model = "none"
    frame_id = str(msg.header.frame_id) or "camera"
    roi, binning = msg.roi, (max(int(msg.binning_x), 1), max(int(msg.binning_y), 1))
    window = ((int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
              if int(roi.width) and int(roi.height) else (0, 0, int(msg.width), int(msg.height)))
    try:
        camera = CameraModel(
            width=int(msg.width),
            height=int(msg.height),
            K=K,
            D=D,
            R=R if np.any(R) else np.eye(3),
            P=P if np.any(P) else None,
            distortion_model=model,
            image_rectified=image_rectified,
            frame_id=frame_id,
            path=source,
        )
        if window == (0, 0, camera.width, camera.height) and binning == (1, 1):
            return camera
        return camera.windowed(*window, *binning)
    except CalibrationError as exc:
        raise RecordingError(f"bad CameraInfo: {exc.message}", path=source) from exc


def _matrix_from_quaternion(x: float, y: float, z: float, w: float) -> npt.NDArray[np.float64]:
    q = np.array([w, x, y, z], dtype=np.float64)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def transform_from_tf(msg: Any, source: str) -> RigidTransform:
    """A ``geometry_msgs/TransformStamped`` as ``T_parent_child``."""
    t = msg.transform.translation
    q = msg.transform.rotation
    norm = float(np.linalg.norm([q.x, q.y, q.z, q.w]))
    parent = str(msg.header.frame_id)
    child = str(msg.child_frame_id)
    if not np.isfinite(norm) or norm < 1e-9:
        message = f"transform {parent!r} <- {child!r} has a zero or invalid quaternion"
        raise RecordingError(message, path=source)
    try:
        return RigidTransform.from_rt(
            _matrix_from_quaternion(q.x, q.y, q.z, q.w), [t.x, t.y, t.z], child, parent
        )
    except CalibrationError as exc:
        raise RecordingError(f"bad transform: {exc.message}", path=source) from exc
