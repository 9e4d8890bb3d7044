"""A single-file ROS 2 MCAP writer (profile ``ros2``, ``ros2msg`` schemas, CDR messages).

Schemas come from rosbags' typestore (``generate_msgdef(..., ros_version=2)``) and
messages are serialised with ``typestore.serialize_cdr``, so the file opens in Foxglove,
``ros2 bag play`` (rosbag2 reads single ``.mcap`` files) and ``rosbags``.

Robustness:

- ``close()`` (and leaving the ``with`` block, also through an exception) always writes
  the summary and footer, so everything written before the failure stays readable.
- Data goes straight to ``path`` in chunks of about ``chunk_size_bytes``; each finished
  chunk is flushed to the operating system at once. A hard kill (SIGKILL, power loss
  aside) therefore leaves a file without a summary that is readable up to the last
  complete chunk with ``mcap.stream_reader.StreamReader`` (and with
  :class:`drivingseg.sensors.bag.BagRecording`, which falls back to it).
"""

from __future__ import annotations

import logging
from collections import Counter
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from mcap.writer import CompressionType, Writer
from rosbags.typesys import TypesysError
from rosbags.typesys.store import Typestore

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.ros_msgs import (
    camera_info_to_msg,
    compressed_image_to_msg,
    image_to_msg,
    pointcloud2_to_msg,
    ros2_typestore,
    tf_static_msg,
)

__all__ = ["Ros2McapWriter"]

log = logging.getLogger(__name__)

_COMPRESSION = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}


class Ros2McapWriter:
    """Write ROS 2 messages to one MCAP file: ``with Ros2McapWriter(path) as w: ...``.

    ``write`` takes any message type the typestore knows; channels and schemas are
    registered on first use. ``counts`` holds messages written per topic.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        typestore: Typestore | None = None,
        chunk_size_bytes: int = 4 * 1024 * 1024,
        compression: str = "zstd",
    ) -> None:
        if compression not in _COMPRESSION:
            message = f"unknown compression {compression!r}; valid: {', '.join(_COMPRESSION)}"
            raise RecordingError(message, path=path)
        self.path = Path(path)
        self.typestore = typestore or ros2_typestore()
        self.counts: Counter[str] = Counter()
        self._chunk_size = int(chunk_size_bytes)
        self._compression = _COMPRESSION[compression]
        self._stream: BinaryIO | None = None
        self._writer: Writer | None = None
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}
        self._pending_bytes = 0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the file and write the MCAP header."""
        if self._writer is not None:
            return
        try:
            self._stream = self.path.open("wb")
        except OSError as exc:
            message = f"cannot create MCAP file: {exc.strerror}"
            raise RecordingError(message, path=self.path) from exc
        # Our own chunking (see write): mcap's threshold is set out of reach so that every
        # chunk is closed by ``Writer.flush``, which also flushes it to the OS.
        self._writer = Writer(
            self._stream, chunk_size=2**62, compression=self._compression
        )
        self._writer.start(profile="ros2", library="drivingseg")

    def close(self) -> None:
        """Write summary and footer and close the file; idempotent."""
        writer, stream = self._writer, self._stream
        self._writer, self._stream = None, None
        if writer is None or stream is None:
            return
        try:
            writer.finish()
        finally:
            stream.close()

    def __enter__(self) -> Ros2McapWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            log.info(
                "closing %s early after %s; the file holds %d messages",
                self.path,
                type(exc).__name__,
                sum(self.counts.values()),
            )
        self.close()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # ------------------------------------------------------------------ generic write

    def _channel(self, topic: str, msgtype: str) -> int:
        known = self._channels.get(topic)
        if known is not None:
            if known[1] != msgtype:
                message = f"topic {topic!r} already carries {known[1]!r}, not {msgtype!r}"
                raise RecordingError(message, path=self.path)
            return known[0]
        assert self._writer is not None
        schema_id = self._schemas.get(msgtype)
        if schema_id is None:
            try:
                msgdef, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
            except TypesysError as exc:
                message = f"message type {msgtype!r} is not in the typestore"
                raise RecordingError(message, path=self.path) from exc
            schema_id = self._writer.register_schema(
                name=msgtype, encoding="ros2msg", data=msgdef.encode()
            )
            self._schemas[msgtype] = schema_id
        channel_id = self._writer.register_channel(
            topic=topic, message_encoding="cdr", schema_id=schema_id
        )
        self._channels[topic] = (channel_id, msgtype)
        return channel_id

    def write(self, topic: str, msg: Any, msgtype: str, stamp_ns: int) -> None:
        """Serialise ``msg`` (of ROS 2 type ``msgtype``) on ``topic`` at log time ``stamp_ns``."""
        if self._writer is None:
            message = "Ros2McapWriter is not open; use 'with Ros2McapWriter(path) as w:'"
            raise RecordingError(message, path=self.path)
        channel_id = self._channel(topic, msgtype)
        data = bytes(self.typestore.serialize_cdr(msg, msgtype))
        stamp = int(stamp_ns)
        self._writer.add_message(
            channel_id=channel_id,
            log_time=stamp,
            publish_time=stamp,
            data=data,
            sequence=self.counts[topic],
        )
        self.counts[topic] += 1
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._chunk_size:
            self._writer.flush()
            self._pending_bytes = 0

    # ------------------------------------------------------------------ conveniences

    def write_image(self, topic: str, frame: CameraFrame, *, frame_id: str | None = None) -> None:
        """``frame`` as ``sensor_msgs/Image`` rgb8, logged at its stamp."""
        msg = image_to_msg(frame, self.typestore, frame_id=frame_id)
        self.write(topic, msg, "sensor_msgs/msg/Image", frame.stamp_ns)

    def write_compressed_image(
        self,
        topic: str,
        frame: CameraFrame,
        *,
        fmt: str = "jpeg",
        jpeg_quality: int = 90,
        frame_id: str | None = None,
    ) -> None:
        """``frame`` as ``sensor_msgs/CompressedImage`` (jpeg or png)."""
        msg = compressed_image_to_msg(
            frame, self.typestore, fmt=fmt, jpeg_quality=jpeg_quality, frame_id=frame_id
        )
        self.write(topic, msg, "sensor_msgs/msg/CompressedImage", frame.stamp_ns)

    def write_pointcloud(self, topic: str, scan: LidarScan, *, frame_id: str | None = None) -> None:
        """``scan`` as ``sensor_msgs/PointCloud2`` (float32 x, y, z, intensity)."""
        msg = pointcloud2_to_msg(scan, self.typestore, frame_id=frame_id)
        self.write(topic, msg, "sensor_msgs/msg/PointCloud2", scan.stamp_ns)

    def write_camera_info(self, topic: str, camera: CameraModel, stamp_ns: int) -> None:
        """``camera`` as ``sensor_msgs/CameraInfo`` stamped ``stamp_ns``."""
        msg = camera_info_to_msg(camera, stamp_ns, self.typestore)
        self.write(topic, msg, "sensor_msgs/msg/CameraInfo", stamp_ns)

    def write_tf_static(
        self, transform: RigidTransform, stamp_ns: int, topic: str = "/tf_static"
    ) -> None:
        """``transform`` (``T_parent_child``) as a one-transform ``tf2_msgs/TFMessage``."""
        msg = tf_static_msg(transform, stamp_ns, self.typestore)
        self.write(topic, msg, "tf2_msgs/msg/TFMessage", stamp_ns)
