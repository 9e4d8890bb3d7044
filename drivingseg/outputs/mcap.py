"""A single-file ROS 2 MCAP writer (profile ``ros2``, ``ros2msg`` schemas, CDR messages).

Schemas come from rosbags' typestore (``generate_msgdef(..., ros_version=2)``) and
messages are serialised with ``typestore.serialize_cdr``, so the file opens in Foxglove,
``ros2 bag play`` (rosbag2 reads single ``.mcap`` files) and ``rosbags``.

Robustness:

Message types the typestore lacks (Foxglove's ``foxglove_msgs``) are added with
:meth:`Ros2McapWriter.register_msgdefs`; :meth:`Ros2McapWriter.write_image_annotations`
registers ``foxglove_msgs/msg/ImageAnnotations`` and its dependencies itself (field lists
as in foxglove/schemas' ``ros_foxglove_msgs/ros2``), so boxes drawn over a camera image
open in Foxglove's Image panel.

- ``close()`` (and leaving the ``with`` block, also through an exception) writes the
  summary and footer, so everything written before the failure stays readable.
- An exception that lands inside a write (a Ctrl-C in mcap's ``add_message`` or chunk
  flush, a full disk) leaves mcap's writer half-updated; a summary would then count
  messages that are not in the file. ``close()`` therefore ends such a file after the
  last complete chunk, without summary, as a hard kill would (below); the messages of the
  unfinished chunk are lost. Callers that want a summary after Ctrl-C defer SIGINT
  between writes (as :func:`drivingseg.outputs.convert.convert_to_mcap` does).
- Data goes straight to ``path`` in chunks of about ``chunk_size_bytes``; each finished
  chunk is flushed to the operating system at once. A hard kill (SIGKILL, power loss
  aside) therefore leaves a file without a summary that is readable up to the last
  complete chunk with ``mcap.stream_reader.StreamReader`` (and with
  :class:`drivingseg.sensors.bag.BagRecording`, which falls back to it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from mcap.writer import CompressionType, Writer
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2.metadata import dump_qos_v8
from rosbags.typesys import TypesysError, get_types_from_msg
from rosbags.typesys.store import Typestore

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.outputs.foxglove import (
    FOXGLOVE_ANNOTATION_MSGDEFS,
    BoxAnnotation,
    image_annotations_msg,
)
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.ros_msgs_write import (
    camera_info_to_msg,
    compressed_image_to_msg,
    image_to_msg,
    pointcloud2_to_msg,
    ros2_typestore,
    tf_static_msg,
)

__all__ = ["FOXGLOVE_ANNOTATION_MSGDEFS", "BoxAnnotation", "Ros2McapWriter", "SensorMessageWriter",
           "offered_qos"]

log = logging.getLogger(__name__)

_COMPRESSION = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}


_QOS_INFINITE = QosTime(sec=9_223_372_036, nsec=854_775_807)


def offered_qos(topic: str) -> Qos:
    """The QoS rosbag2 (Humble) records for ``topic``: reliable, and transient local
    (latched) for ``/tf_static``, which tf2's static listeners (RViz, robot nodes) subscribe
    to. Without it ``ros2 bag play`` offers every topic volatile and those listeners never
    get a transform."""
    latched = topic.lstrip("/") == "tf_static"
    return Qos(
        history=QosHistory.UNKNOWN,
        depth=0,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=_QOS_INFINITE,
        lifespan=_QOS_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_QOS_INFINITE,
        avoid_ros_namespace_conventions=False,
    )


def _offered_qos_profiles(topic: str) -> str:
    """The ``offered_qos_profiles`` channel metadata the MCAP ``ros2`` profile requires, in
    the YAML rosbag2 (Humble) records (:func:`offered_qos`)."""
    return dump_qos_v8([offered_qos(topic)])


class SensorMessageWriter:
    """The sensor-message calls every bag writer offers (image, point cloud, CameraInfo,
    /tf_static), built over the subclass's ``typestore`` (ROS 2 types) and ``write``."""

    typestore: Typestore

    def write(self, topic: str, msg: Any, msgtype: str, stamp_ns: int) -> None:
        """Serialise ``msg`` (ROS 2 type ``msgtype``) on ``topic`` at log time ``stamp_ns``."""
        raise NotImplementedError

    def write_image(self, topic: str, frame: CameraFrame, *, frame_id: str | None = None) -> None:
        """``frame`` as ``sensor_msgs/Image`` rgb8, logged at its stamp."""
        msg = image_to_msg(frame, self.typestore, frame_id=frame_id)
        self.write(topic, msg, "sensor_msgs/msg/Image", frame.stamp_ns)

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


class Ros2McapWriter(SensorMessageWriter):
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
        self._in_write = False
        self._safe_offset = 0

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
        self._in_write = True
        self._writer.start(profile="ros2", library="drivingseg")
        self._mark_safe()

    def _mark_safe(self) -> None:
        """Record that the file ends on a record boundary matching mcap's writer state."""
        assert self._stream is not None
        self._safe_offset = self._stream.tell()
        self._in_write = False

    @property
    def torn(self) -> bool:
        """Whether a write was interrupted half way (``close`` then writes no summary)."""
        return self._in_write

    def close(self) -> None:
        """Write summary and footer and close the file; idempotent.

        After an interrupted write (``torn``), or if writing the summary itself fails, the
        file is cut back to its last complete chunk instead and has no summary.
        """
        writer, stream = self._writer, self._stream
        self._writer, self._stream = None, None
        if writer is None or stream is None:
            return
        try:
            if self._in_write:
                self._truncate_to_safe(stream)
                return
            self._in_write = True
            try:
                writer.finish()
            except OSError as exc:
                self._truncate_to_safe(stream)
                message = f"cannot write the summary: {exc.strerror or exc}"
                raise RecordingError(message, path=self.path) from exc
            except BaseException:
                self._truncate_to_safe(stream)
                raise
            self._in_write = False
        finally:
            self._close_stream(stream)

    def _close_stream(self, stream: BinaryIO) -> None:
        """Close the file; its last buffered bytes may fail to land (a full disk)."""
        try:
            stream.close()
        except OSError as exc:
            if self._in_write:  # already torn: the error that tore it is on its way
                log.warning("%s: closing the cut file failed too: %s", self.path, exc.strerror)
                return
            raise RecordingError(f"cannot write: {exc.strerror or exc}", path=self.path) from exc

    def _truncate_to_safe(self, stream: BinaryIO) -> None:
        """End ``stream`` after the last complete chunk (no summary: a stream-only MCAP)."""
        log.warning(
            "%s: a write was interrupted half way; ending the file after its last complete "
            "chunk (byte %d), without summary",
            self.path,
            self._safe_offset,
        )
        try:
            stream.truncate(self._safe_offset)
        except OSError as exc:
            log.warning("%s: cannot cut the file back: %s", self.path, exc.strerror)

    def __enter__(self) -> Ros2McapWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self._in_write:
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
        """The channel of ``topic``, registered (and its schema) on first use; callers
        set ``_in_write`` first, as registering changes mcap's writer."""
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
            topic=topic, message_encoding="cdr", schema_id=schema_id,
            metadata={"offered_qos_profiles": _offered_qos_profiles(topic)},
        )
        self._channels[topic] = (channel_id, msgtype)
        return channel_id

    def write(self, topic: str, msg: Any, msgtype: str, stamp_ns: int) -> None:
        """Serialise ``msg`` (of ROS 2 type ``msgtype``) on ``topic`` at log time ``stamp_ns``."""
        if self._writer is None:
            message = "Ros2McapWriter is not open; use 'with Ros2McapWriter(path) as w:'"
            raise RecordingError(message, path=self.path)
        if self._in_write:
            message = "an earlier write was interrupted half way; the writer cannot go on"
            raise RecordingError(message, path=self.path)
        # While _in_write is set, mcap's writer may be half-updated (see close).
        self._in_write = True
        try:
            channel_id = self._channel(topic, msgtype)
        except RecordingError:
            self._in_write = False
            raise
        self._in_write = False
        # rosbags' own fresh buffer, handed on without a copy (7 MB, ~3.5 ms a 1920 x 1200 image)
        data = self.typestore.serialize_cdr(msg, msgtype)
        stamp = int(stamp_ns)
        self._in_write = True
        try:
            self._writer.add_message(
                channel_id=channel_id,
                log_time=stamp,
                publish_time=stamp,
                data=data,  # type: ignore[arg-type]  # mcap writes any buffer
                sequence=self.counts[topic],
            )
            self.counts[topic] += 1
            self._pending_bytes += data.nbytes
            if self._pending_bytes >= self._chunk_size:
                self._writer.flush()
                self._pending_bytes = 0
                self._mark_safe()
            else:
                self._in_write = False
        except OSError as exc:  # a full disk, a file size limit: torn, close cuts it back
            raise RecordingError(f"cannot write: {exc.strerror or exc}", path=self.path) from exc

    def prepare(self, msgtypes: Sequence[str]) -> None:
        """Generate the serialisers of ``msgtypes`` now (rosbags builds them on first use,
        some ms each, which a live recorder would otherwise spend on its first frames)."""
        if "foxglove_msgs/msg/ImageAnnotations" in msgtypes and \
                "foxglove_msgs/msg/ImageAnnotations" not in self.typestore.types:
            self.register_msgdefs(FOXGLOVE_ANNOTATION_MSGDEFS)
        for msgtype in msgtypes:
            try:
                self.typestore.get_msgdef(msgtype)
            except KeyError as exc:
                raise RecordingError(f"unknown message type {msgtype!r}",
                                     path=self.path) from exc

    def register_msgdefs(self, msgdefs: Mapping[str, str]) -> None:
        """Add message types (``{"pkg/msg/Name": ".msg text"}``) to this writer's typestore.

        Each definition's dependencies must be in the typestore or in ``msgdefs``; a type
        already known with the same fields is accepted again.
        """
        types: dict[str, Any] = {}
        for name, text in msgdefs.items():
            try:
                types.update(get_types_from_msg(text, name))
            except (TypesysError, ValueError) as exc:
                message = f"message definition of {name!r} does not parse: {exc}"
                raise RecordingError(message, path=self.path) from exc
        try:
            self.typestore.register(types)
        except TypesysError as exc:
            message = f"cannot register message types {sorted(msgdefs)!r}: {exc}"
            raise RecordingError(message, path=self.path) from exc

    # ------------------------------------------------------------------ conveniences

    def write_image_annotations(
        self,
        topic: str,
        boxes: Sequence[BoxAnnotation],
        stamp_ns: int,
        *,
        thickness_px: float = 2.0,
        font_size_px: float = 14.0,
    ) -> None:
        """``boxes`` as one ``foxglove_msgs/ImageAnnotations``: per box a closed polygon
        (``PointsAnnotation`` LINE_LOOP through its four corners) and, when it has text, a
        ``TextAnnotation`` (bottom-left at the top-left corner); all stamped ``stamp_ns``
        (the annotated image's stamp)."""
        msgtype = "foxglove_msgs/msg/ImageAnnotations"
        if msgtype not in self.typestore.types:
            self.register_msgdefs(FOXGLOVE_ANNOTATION_MSGDEFS)
        msg = image_annotations_msg(self.typestore, boxes, stamp_ns, thickness_px=thickness_px,
                                    font_size_px=font_size_px)
        self.write(topic, msg, msgtype, stamp_ns)

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



