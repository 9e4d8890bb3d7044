"""ROS 2 messages built from drivingseg types, for the MCAP and bag writers and the recorder.

Messages come from a ROS 2 typestore (Humble by default), ready for
``typestore.serialize_cdr``. Apart from the reading side (:mod:`drivingseg.sensors.ros_msgs`),
which accepts ROS 1 and ROS 2 spellings; here only ROS 2 is written.

The tf convention of :func:`tf_static_msg` is the one
:func:`~drivingseg.sensors.ros_msgs.transform_from_tf` reads: a ``TransformStamped`` with
``header.frame_id = parent`` and ``child_frame_id = child`` maps child-frame points into
the parent frame, so ``T_cam_velo`` is published with parent ``cam`` and child ``velo``.
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
from drivingseg.errors import RecordingError
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = [
    "camera_info_to_msg",
    "compressed_image_to_msg",
    "header",
    "image_to_msg",
    "pointcloud2_to_msg",
    "quaternion_from_matrix",
    "ros2_typestore",
    "tf_static_msg",
]

_FLOAT32 = 7
"""``sensor_msgs/PointField`` datatype of float32."""


@functools.cache
def ros2_typestore() -> Typestore:
    """The ROS 2 Humble typestore used for writing (created once)."""
    return get_typestore(Stores.ROS2_HUMBLE)


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
