"""Builders of ROS bags for the bag reader tests: typestores, headers, TF messages, and one
writer for ROS 1 bags and ROS 2 sqlite3 / mcap folders (rosbags' own writers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from drivingseg.calibration.types import RigidTransform
from drivingseg.sensors.ros_msgs_write import quaternion_from_matrix

ROS1 = get_typestore(Stores.ROS1_NOETIC)
ROS1.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                 "tf2_msgs/msg/TFMessage"))  # noetic store lacks tf2_msgs
ROS1.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                 "tf/msg/tfMessage"))  # ROS 1 tf (before tf2)
ROS2 = get_typestore(Stores.ROS2_HUMBLE)
TF = "tf2_msgs/msg/TFMessage"
Entry = tuple[str, str, int, object]  # topic, msgtype, log time, message


def header(ts: Typestore, stamp_ns: int, frame: str) -> Any:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)
    if ts is ROS1:
        return ts.types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame)
    return ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)


def tf_msg(ts: Typestore, stamp_ns: int, transforms: list[RigidTransform],
           msgtype: str = TF) -> Any:
    """A TF message of ``T_parent_child`` transforms (parent = ``target_frame``)."""
    stamped = []
    for T in transforms:
        x, y, z, w = quaternion_from_matrix(T.rotation)
        t = T.translation
        stamped.append(ts.types["geometry_msgs/msg/TransformStamped"](
            header=header(ts, stamp_ns, T.target_frame), child_frame_id=T.source_frame,
            transform=ts.types["geometry_msgs/msg/Transform"](
                translation=ts.types["geometry_msgs/msg/Vector3"](x=t[0], y=t[1], z=t[2]),
                rotation=ts.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
            ),
        ))
    return ts.types[msgtype](transforms=stamped)


def write_bag(path: Path, kind: str, entries: list[Entry], *,
              empty: tuple[tuple[str, str], ...] = (), compression: str | None = None,
              mode: str | None = None) -> Path:
    """Write ``entries`` as a ``kind`` bag ('ros1', 'sqlite3' or 'mcap'); return its path.

    ``empty`` topics (name, msgtype) are declared first and get no message, as a recorder
    leaves the topics it discovered but never received. ``compression`` is a ROS 1 chunk
    compression ('bz2', 'lz4'); ``mode`` a ROS 2 zstd compression mode ('file', 'message').
    """
    writer: Any
    if kind == "ros1":
        writer, ts, serialize = Writer1(path), ROS1, ROS1.serialize_ros1
        if compression is not None:
            writer.set_compression(Writer1.CompressionFormat[compression.upper()])
    else:
        plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
        writer = Writer2(path, version=9, storage_plugin=plugin)
        ts, serialize = ROS2, ROS2.serialize_cdr
        if mode is not None:
            writer.set_compression(CompressionMode[mode.upper()], CompressionFormat.ZSTD)
    with writer:
        conns = {t: writer.add_connection(t, m, typestore=ts) for t, m in empty}
        for topic, msgtype, t, msg in sorted(entries, key=lambda e: e[2]):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], t, serialize(msg, msgtype))
    return path


def file_compressed_bag(path: Path) -> Path:
    """A ROS 2 sqlite3 bag of three camera images, zstd-compressed in file mode (the kind
    that is decompressed once into a temporary folder)."""
    entries: list[Entry] = []
    for k in range(3):
        stamp = 1_700_000_000_000_000_000 + k * 100_000_000
        entries.append(("/camera/image_raw", "sensor_msgs/msg/Image", stamp,
                        ROS2.types["sensor_msgs/msg/Image"](
                            header=header(ROS2, stamp, "camera"), height=2, width=3,
                            encoding="rgb8", is_bigendian=0, step=9,
                            data=np.zeros(18, np.uint8))))
    return write_bag(path, "sqlite3", entries, mode="file")
