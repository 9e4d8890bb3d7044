"""Conversions between deserialised ROS messages and drivingseg types, both directions.

Reading accepts messages from any rosbags typestore, ROS 1 or ROS 2 (the two differ only
in field spelling, e.g. ``CameraInfo.K`` against ``CameraInfo.k``, which is handled here).
Writing builds ROS 2 messages from a ROS 2 typestore (Humble by default), ready for
``typestore.serialize_cdr``.

The tf convention used by :func:`tf_static_msg` and :func:`transform_from_tf`: a
``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child``
maps child-frame points into the parent frame, so ``T_cam_velo`` is published with
parent ``cam`` and child ``velo``.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors.decode import BAYER_TO_RGB, YUV422_TO_RGB, decode_compressed, scale_to_8bit
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = [
    "IMAGE_ENCODINGS",
    "camera_info_to_msg",
    "camera_model_from_camera_info",
    "compressed_image_to_msg",
    "header",
    "image_from_msg",
    "image_to_msg",
    "pointcloud2_to_msg",
    "points_from_pointcloud2",
    "quaternion_from_matrix",
    "ros2_typestore",
    "stamp_ns_of",
    "tf_static_msg",
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
_FLOAT32 = 7


@functools.cache
def ros2_typestore() -> Typestore:
    """The ROS 2 Humble typestore used for writing (created once)."""
    return get_typestore(Stores.ROS2_HUMBLE)


def _field(msg: Any, name: str) -> Any:
    """``msg.name`` (ROS 2 spelling) or ``msg.NAME`` (ROS 1 spelling)."""
    if hasattr(msg, name):
        return getattr(msg, name)
    return getattr(msg, name.upper())


def stamp_ns_of(msg: Any) -> int:
    """``msg.header.stamp`` in nanoseconds (ROS 1 and ROS 2 both deserialise to sec/nanosec)."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --------------------------------------------------------------------------- reading


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


# --------------------------------------------------------------------------- writing


def header(stamp_ns: int, frame_id: str, typestore: Typestore | None = None) -> Any:
    """A ``std_msgs/Header`` for ``stamp_ns`` (ROS 2: no ``seq``)."""
    ts = typestore or ros2_typestore()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_to_msg(
    frame: CameraFrame, typestore: Typestore | None = None, *, frame_id: str | None = None
) -> Any:
    """A ``sensor_msgs/Image`` (rgb8, no row padding) holding the frame's pixels."""
    ts = typestore or ros2_typestore()
    img = np.ascontiguousarray(frame.image)
    return ts.types["sensor_msgs/msg/Image"](
        header=header(frame.stamp_ns, frame_id or frame.frame_id, ts),
        height=frame.height,
        width=frame.width,
        encoding="rgb8",
        is_bigendian=0,
        step=frame.width * 3,
        data=img.reshape(-1),
    )


def compressed_image_to_msg(
    frame: CameraFrame,
    typestore: Typestore | None = None,
    *,
    fmt: str = "jpeg",
    jpeg_quality: int = 90,
    frame_id: str | None = None,
) -> Any:
    """A ``sensor_msgs/CompressedImage`` (``fmt`` ``"jpeg"`` or ``"png"``) of the frame."""
    if fmt not in ("jpeg", "png"):
        raise RecordingError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    ts = typestore or ros2_typestore()
    bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise RecordingError(f"OpenCV could not encode frame {frame.index} as {fmt}")
    return ts.types["sensor_msgs/msg/CompressedImage"](
        header=header(frame.stamp_ns, frame_id or frame.frame_id, ts),
        format=fmt,
        data=np.asarray(buf, dtype=np.uint8).reshape(-1),
    )


def pointcloud2_to_msg(
    scan: LidarScan, typestore: Typestore | None = None, *, frame_id: str | None = None
) -> Any:
    """A dense ``sensor_msgs/PointCloud2``: float32 x, y, z, intensity, point_step 16."""
    ts = typestore or ros2_typestore()
    field_cls = ts.types["sensor_msgs/msg/PointField"]
    fields = [
        field_cls(name=name, offset=4 * i, datatype=_FLOAT32, count=1)
        for i, name in enumerate(("x", "y", "z", "intensity"))
    ]
    points = np.ascontiguousarray(scan.points, dtype="<f4")
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(scan.stamp_ns, frame_id or scan.frame_id, ts),
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(points),
        data=points.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def camera_info_to_msg(
    camera: CameraModel, stamp_ns: int, typestore: Typestore | None = None
) -> Any:
    """A ROS 2 ``sensor_msgs/CameraInfo`` for ``camera``.

    ``distortion_model: none`` is written as ``plumb_bob`` with zero coefficients, the
    form ROS tools expect for an undistorted camera.
    """
    ts = typestore or ros2_typestore()
    assert camera.P is not None
    model = "plumb_bob" if camera.distortion_model == "none" else camera.distortion_model
    D = np.zeros(5) if camera.distortion_model == "none" else camera.D
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, camera.frame_id, ts),
        height=camera.height,
        width=camera.width,
        distortion_model=model,
        d=np.array(D, dtype=np.float64),
        k=np.array(camera.K, dtype=np.float64).reshape(-1),
        r=np.array(camera.R, dtype=np.float64).reshape(-1),
        p=np.array(camera.P, dtype=np.float64).reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def quaternion_from_matrix(R: npt.ArrayLike) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` with ``w >= 0`` of a 3x3 rotation matrix."""
    m = np.asarray(R, dtype=np.float64)
    # Shepperd's method: pivot on the largest of the four squared components.
    diag = np.array(
        [
            1.0 + m[0, 0] + m[1, 1] + m[2, 2],
            1.0 + m[0, 0] - m[1, 1] - m[2, 2],
            1.0 - m[0, 0] + m[1, 1] - m[2, 2],
            1.0 - m[0, 0] - m[1, 1] + m[2, 2],
        ]
    )
    k = int(np.argmax(diag))
    s = 2.0 * np.sqrt(max(diag[k], 1e-300))
    if k == 0:
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif k == 1:
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif k == 2:
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    arr = np.array(q) / np.linalg.norm(q)
    if arr[3] < 0:
        arr = -arr
    return (float(arr[0]), float(arr[1]), float(arr[2]), float(arr[3]))


def tf_static_msg(
    transform: RigidTransform, stamp_ns: int, typestore: Typestore | None = None
) -> Any:
    """A ``tf2_msgs/TFMessage`` with one transform: parent = target, child = source frame."""
    ts = typestore or ros2_typestore()
    x, y, z, w = quaternion_from_matrix(transform.rotation)
    tx, ty, tz = (float(v) for v in transform.translation)
    stamped = ts.types["geometry_msgs/msg/TransformStamped"](
        header=header(stamp_ns, transform.target_frame, ts),
        child_frame_id=transform.source_frame,
        transform=ts.types["geometry_msgs/msg/Transform"](
            translation=ts.types["geometry_msgs/msg/Vector3"](x=tx, y=ty, z=tz),
            rotation=ts.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
        ),
    )
    return ts.types["tf2_msgs/msg/TFMessage"](transforms=[stamped])
