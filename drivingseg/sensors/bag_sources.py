"""The two ways a bag is read, behind one small interface (``topics``, ``raw_messages``,
``deserialize``, ``close``): rosbags' ``AnyReader`` for every bag it opens, and a front-to-back
``StreamReader`` of the mcap library for an MCAP file rosbags refuses (no summary, as a
killed writer leaves it). :class:`~drivingseg.sensors.bag.BagRecording` picks one.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import yaml
import zstandard
from mcap.exceptions import McapError
from mcap.records import Channel, Header, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel.anyreader import AnyReaderError
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore

from drivingseg.errors import RecordingError
from drivingseg.sensors.bag_ros1_scan import open_any_reader

__all__ = ["ROSBAGS_ERRORS", "TOPIC_KINDS", "Ends", "McapStreamSource", "RosbagsSource",
           "Source", "Topic", "UnpackedBag", "mark_lidar_images", "unpacked_copy"]

log = logging.getLogger("drivingseg.sensors.bag")  # warnings about the bag being read

TOPIC_KINDS = {
    "sensor_msgs/msg/Image": "camera",
    "sensor_msgs/msg/CompressedImage": "camera",
    "sensor_msgs/msg/PointCloud2": "lidar",
    "sensor_msgs/msg/CameraInfo": "camera_info",
    "tf2_msgs/msg/TFMessage": "tf",
    "tf/msg/tfMessage": "tf",  # ROS 1 bags recorded before tf2 (same fields)
}
"""Message type -> stream kind; every other type is ``other``."""


ROSBAGS_ERRORS: tuple[type[BaseException], ...] = (
    AnyReaderError,
    Rosbag1ReaderError,
    Rosbag2ReaderError,
    SerdeError,
    TypesysError,
    sqlite3.Error,
    OSError,
    # What rosbags lets through from damaged bytes: a garbled string (UnicodeDecodeError),
    # a short header (struct.error), a huge length field (OverflowError, MemoryError), a
    # ROS 1 record that fails its reader's own assertion.
    ValueError,
    AssertionError,
    struct.error,
    OverflowError,
    MemoryError,
)
# What the decompressors raise on a damaged chunk: lz4 a bare RuntimeError (ROS 1 bags
# and MCAP chunks), bz2 an OSError (above), zstandard (which mcap requires) its ZstdError.
_DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, zstandard.ZstdError)
ROSBAGS_ERRORS += _DECOMPRESS_ERRORS
try:  # rosbags 0.11 reads .db3 through apsw, whose errors are not sqlite3's
    import apsw

    ROSBAGS_ERRORS += (apsw.Error,)
except ImportError:  # pragma: no cover - older rosbags use the sqlite3 module
    pass
# What the mcap library's StreamReader raises on a cut or damaged file (a chunk whose CRC
# does not match raises CRCValidationError, a ValueError).
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    McapError, struct.error, ValueError, OverflowError, MemoryError, *_DECOMPRESS_ERRORS,
)
_ROS2_ENCODINGS = ("ros2msg", "cdr")
"""Schema and message encoding of the MCAP channels the stream fallback decodes."""


@dataclass(frozen=True)
class Topic:
    name: str
    msgtype: str
    count: int
    lidar_frame: str = ""
    """An image topic in a PointCloud2 topic's frame: that frame (else '')."""

    @property
    def kind(self) -> str:
        """``TOPIC_KINDS`` of its type; a ``.../compressedDepth`` topic (image_transport's
        depth codec, as RGB-D cameras publish beside their colour image) is ``depth``, an
        image topic in a lidar's frame (:func:`mark_lidar_images`) ``lidar_image``."""
        if self.name.endswith("/compressedDepth"):
            return "depth"
        if self.lidar_frame:
            return "lidar_image"
        return TOPIC_KINDS.get(self.msgtype, "other")


Ends = tuple[tuple[int, bytes], tuple[int, bytes]]
"""A topic's first and last message by log time: ``((log_ns, raw), (log_ns, raw))``."""

_MIB = 1 << 20


def _unzstd(src_path: Path, dst_path: Path) -> None:
    """Decompress a zstd file with a progress bar in MiB read (a multi-GB bag takes
    minutes); a cut one (a killed recorder's) raises ``EOFError``."""
    from drivingseg.cli._common import progress  # the CLI's bar; sensors must not import cli

    fresh = zstandard.ZstdDecompressor().decompressobj
    unpack = fresh()
    total_mib = -(-src_path.stat().st_size // _MIB)
    with src_path.open("rb") as src, dst_path.open("wb") as dst:
        chunks = iter(lambda: src.read(_MIB), b"")
        for chunk in progress(chunks, total=total_mib, desc=f"unpack {src_path.name}",
                              unit="MiB"):
            while chunk:  # a file of several zstd frames: one decompressor each
                if unpack.eof:
                    unpack = fresh()
                dst.write(unpack.decompress(chunk))
                chunk = unpack.unused_data if unpack.eof else b""
    if not unpack.eof:
        raise EOFError("the zstd stream ends early (file cut short)")


class UnpackedBag:
    """One recording's hold on a shared decompressed copy of a file-compressed bag: its
    folder (:attr:`name`) stays until every holder has called :meth:`cleanup`."""

    def __init__(self, key: tuple[Any, ...], folder: TemporaryDirectory[str]) -> None:
        self.name = folder.name
        self._key = key
        self._folder = folder
        self._released = False

    def cleanup(self) -> None:
        """Release this hold (once); the last one removes the folder."""
        with _UNPACKED_LOCK:
            if self._released:
                return
            self._released = True
            entry = _UNPACKED.get(self._key)
            if entry is not None and entry[0] is self._folder:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _UNPACKED[self._key]
        self._folder.cleanup()


_UNPACKED: dict[tuple[Any, ...], list[Any]] = {}
"""(bag folder, its files' sizes and times) -> [the decompressed copy, recordings holding it]."""
_UNPACKED_LOCK = threading.Lock()


def _unpack_key(path: Path, names: list[str]) -> tuple[Any, ...]:
    """What identifies one version of a bag folder: its path and its files' sizes and times
    (a bag recorded again in place is unpacked again)."""
    stats = []
    for file in ["metadata.yaml", *names]:
        try:
            st = (path / file).stat()
        except OSError:
            stats.append((file, -1, -1))
        else:
            stats.append((file, st.st_size, st.st_mtime_ns))
    return (str(path.resolve()), *stats)


def unpacked_copy(path: Path) -> UnpackedBag | None:
    """A ROS 2 bag folder compressed in file mode (``compression_mode: file``: each storage
    file zstd-compressed whole, as ``ros2 bag record --compression-mode file`` writes it)
    decompressed once into a temporary folder as an uncompressed bag; ``None`` for any
    other bag. rosbags decompresses such a bag whole on every open, and a BagRecording
    opens a reader per stream and pass (info, rig, camera, lidar: eight for a conversion).
    Recordings of the same bag open at once (a replay's camera and lidar sources) share
    one copy, so it costs the bag's uncompressed size on disk once, not once each.
    """
    meta_path = path / "metadata.yaml"
    if not meta_path.is_file():
        return None
    try:
        meta = yaml.safe_load(meta_path.read_text())["rosbag2_bagfile_information"]
        if str(meta.get("compression_mode") or "").lower() != "file":
            return None
        names = [Path(str(name)).name for name in meta["relative_file_paths"]]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None  # rosbags' reader then says what is wrong with the metadata
    key = _unpack_key(path, names)
    with _UNPACKED_LOCK:
        entry = _UNPACKED.get(key)
        if entry is None:
            entry = [_unpack(path, meta, names), 0]
            _UNPACKED[key] = entry
        entry[1] += 1
        return UnpackedBag(key, entry[0])


def _unpack(path: Path, meta: dict[str, Any], names: list[str]) -> TemporaryDirectory[str]:
    """The decompressed copy of the file-compressed bag ``path`` (see :func:`unpacked_copy`)."""
    tmp = TemporaryDirectory(prefix="drivingseg-bag-")
    for name in names:
        try:
            _unzstd(path / name, Path(tmp.name) / name.removesuffix(".zstd"))
        except (OSError, zstandard.ZstdError, EOFError) as exc:
            tmp.cleanup()
            raise RecordingError(f"cannot decompress {name!r}: {exc}", path=path) from exc
    meta.update(compression_mode="", compression_format="",
                relative_file_paths=[name.removesuffix(".zstd") for name in names])
    for entry in meta.get("files") or []:
        entry["path"] = str(entry.get("path", "")).removesuffix(".zstd")
    text = yaml.safe_dump({"rosbag2_bagfile_information": meta}, sort_keys=False)
    (Path(tmp.name) / "metadata.yaml").write_text(text)
    log.info("%s: decompressed its file-compressed bag once into %s", path, tmp.name)
    return tmp


class RosbagsSource:
    """rosbags' AnyReader behind the small interface BagRecording needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = open_any_reader(path, get_typestore(Stores.ROS2_HUMBLE))
        self.topics = {
            name: Topic(name, info.msgtype or "", info.msgcount)
            for name, info in self._reader.topics.items()
        }

    def raw_messages(self, topics: set[str]) -> Generator[tuple[str, int, bytes], None, None]:
        conns = [c for c in self._reader.connections if c.topic in topics]
        if not conns:
            return
        for conn, log_ns, raw in self._reader.messages(connections=conns):
            yield conn.topic, log_ns, raw

    def _first_at(self, conns: list[Any], start_ns: int | None = None) -> tuple[int, bytes] | None:
        """The first message of ``conns`` logged at or after ``start_ns``, read alone."""
        with closing(self._reader.messages(connections=conns, start=start_ns)) as messages:
            return next(((log_ns, raw) for _, log_ns, raw in messages), None)

    def ends(self, topic: str) -> Ends | None:
        """The first and last message of ``topic`` (``None`` without one), found through the
        bag's index in a few short reads instead of a pass over the bag: back from the bag's
        end by windows of four mean periods of the topic, doubled until one holds a message,
        then (a topic that stopped early) halving what is left until eight periods remain."""
        conns = [c for c in self._reader.connections if c.topic == topic]
        count = sum(c.msgcount for c in conns)
        first = self._first_at(conns) if count else None
        if first is None:
            return None
        stop_ns = self._reader.end_time  # no message of the topic at or after it
        period_ns = max((stop_ns - first[0]) // count, 1)
        window_ns = 4 * period_ns
        while (last := self._first_at(conns, max(stop_ns - window_ns, first[0]))) is None:
            stop_ns, window_ns = stop_ns - window_ns, 2 * window_ns
        while stop_ns - last[0] > 8 * period_ns:
            mid_ns = (last[0] + stop_ns) // 2
            found = self._first_at(conns, mid_ns)
            last, stop_ns = (last, mid_ns) if found is None else (found, stop_ns)
        for _, log_ns, raw in self._reader.messages(connections=conns, start=last[0]):
            last = (log_ns, raw)
        return first, last

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._reader.deserialize(raw, msgtype)

    def close(self) -> None:
        self._reader.close()


class McapStreamSource:
    """A ``.mcap`` file read front to back with the mcap library's ``StreamReader``.

    For files rosbags refuses, typically one whose writer was killed before writing the
    summary: every complete record up to the damaged tail (or the first chunk that fails
    its CRC) is read, then a warning is logged; opening reads it once (a progress bar) for
    its topics, counts and first and last messages. Only channels with ``ros2msg`` schemas
    and ``cdr`` messages are decoded, with a rosbags typestore built from the schema text
    in the file; the others (ROS 1 profile, json, protobuf, a schema the typestore
    refuses) are skipped with a warning, and a file with no channel left is refused.
    """

    def __init__(self, path: Path, *, rosbags_error: str) -> None:
        self.path = path
        self._typestore = get_typestore(Stores.EMPTY)
        self._rosbags_error = rosbags_error
        self._bad_schemas: dict[int, str] = {}  # schema id -> why the typestore refuses it
        self._profile = ""
        self._channels: dict[str, str] = {}  # topic -> msgtype of its decodable channel
        self._skipped: dict[str, str] = {}  # topic -> why its channel is not read
        from drivingseg.cli._common import progress  # a multi-GB file: minutes

        counts: Counter[str] = Counter()
        self._ends: dict[str, Ends] = {}
        records = self._records(warn=True)
        for topic, _, log_ns, raw in progress(records, desc=f"scan {path.name}", unit="message"):
            counts[topic] += 1
            first, last = self._ends.get(topic, ((log_ns, raw), (log_ns, raw)))
            self._ends[topic] = (first if first[0] <= log_ns else (log_ns, raw),
                                 last if last[0] > log_ns else (log_ns, raw))
        if self._skipped and not self._channels:
            raise RecordingError(self._nothing_readable(), path=self.path)
        self._warn_skipped()
        self.topics = {t: Topic(t, m, counts[t]) for t, m in self._channels.items()}

    def _warn_skipped(self) -> None:
        """One warning per schema the typestore refused (with its topics) and one per topic
        skipped for its encodings."""
        skipped = {t: why for t, why in self._skipped.items() if t not in self._channels}
        for why in dict.fromkeys(self._bad_schemas.values()):
            topics = sorted(t for t, topic_why in skipped.items() if topic_why == why)
            log.warning("%s: %s; skipping its topics %r", self.path, why, topics)
        for topic, why in skipped.items():
            if why not in self._bad_schemas.values():
                log.warning("%s: skipping topic %r: %s (only %s schemas with %s messages "
                            "are read)", self.path, topic, why, *_ROS2_ENCODINGS)

    def _nothing_readable(self) -> str:
        """Why no channel of the file can be read: its profile and each channel's problem."""
        by_reason: dict[str, list[str]] = {}
        for topic, why in sorted(self._skipped.items()):
            by_reason.setdefault(why, []).append(topic)
        reasons = "; ".join(f"{why}: {topics!r}" for why, topics in by_reason.items())
        return (
            f"cannot read bag: {self._rosbags_error}; as an MCAP stream (profile "
            f"{self._profile!r}) it has no ROS 2 channel ({_ROS2_ENCODINGS[0]} schema, "
            f"{_ROS2_ENCODINGS[1]} messages) to read: {reasons}"
        )

    def _register(self, schema: Schema) -> None:
        """Add a ``ros2msg`` schema's types to the typestore. One it refuses (a definition
        that clashes with an earlier schema's, bad text) is noted as unusable, so that only
        its channels are lost, not every later message of the file."""
        if schema.id in self._bad_schemas or schema.name in self._typestore.fielddefs:
            return
        try:
            self._typestore.register(get_types_from_msg(schema.data.decode(), schema.name))
        except (TypesysError, UnicodeDecodeError) as exc:
            self._bad_schemas[schema.id] = f"schema {schema.name!r} cannot be used ({exc})"

    def _channel_problem(self, channel: Channel, schemas: dict[int, Schema]) -> str | None:
        """Why ``channel`` cannot be decoded, or ``None`` when it can."""
        if channel.schema_id in self._bad_schemas:
            return self._bad_schemas[channel.schema_id]
        schema = schemas.get(channel.schema_id)
        schema_encoding = schema.encoding if schema is not None else ""
        if (schema_encoding, channel.message_encoding) != _ROS2_ENCODINGS:
            return (f"schema encoding {schema_encoding or 'none'!r}, message encoding "
                    f"{channel.message_encoding!r}")
        return None

    def _records(self, *, warn: bool) -> Iterator[tuple[str, str, int, bytes]]:
        """``(topic, msgtype, log_ns, raw)`` of every decodable message in file order.

        With ``warn`` (the first pass, from ``__init__``) it also notes the profile, the
        decodable channels and the skipped ones, and warns about damage.
        """
        schemas: dict[int, Schema] = {}
        channels: dict[int, tuple[str, str]] = {}
        n_records = n_messages = 0
        with self.path.open("rb") as f:
            try:
                reader = StreamReader(f, record_size_limit=2**32, validate_crcs=True)
                for record in reader.records:
                    n_records += 1
                    if isinstance(record, Header):
                        self._profile = record.profile
                    elif isinstance(record, Schema):
                        schemas[record.id] = record
                        if record.encoding == _ROS2_ENCODINGS[0]:
                            self._register(record)
                    elif isinstance(record, Channel):
                        problem = self._channel_problem(record, schemas)
                        if problem is None:
                            msgtype = schemas[record.schema_id].name
                            channels[record.id] = (record.topic, msgtype)
                            if warn:
                                self._channels.setdefault(record.topic, msgtype)
                        elif warn:
                            self._skipped.setdefault(record.topic, problem)
                    elif isinstance(record, Message) and record.channel_id in channels:
                        topic, msgtype = channels[record.channel_id]
                        n_messages += 1
                        yield topic, msgtype, record.log_time, record.data
            except _STREAM_ERRORS as exc:
                if n_messages == 0 and self._skipped and not self._channels:
                    raise RecordingError(self._nothing_readable(), path=self.path) from exc
                if n_messages == 0:
                    message = (
                        f"cannot read bag: {self._rosbags_error}; as an MCAP stream, no "
                        f"complete message before the damage at record {n_records + 1}: {exc}"
                    )
                    raise RecordingError(message, path=self.path) from exc
                if warn:
                    log.warning("%s: MCAP file ends early or is damaged after %d records "
                                "(%r); reading what comes before", self.path, n_records, exc)

    def raw_messages(self, topics: set[str]) -> Generator[tuple[str, int, bytes], None, None]:
        for topic, _, log_ns, raw in self._records(warn=False):
            if topic in topics:
                yield topic, log_ns, raw

    def ends(self, topic: str) -> Ends | None:
        """The first and last message of ``topic`` by log time, noted by the opening pass."""
        return self._ends.get(topic)

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        """Nothing stays open between iterations."""


Source = RosbagsSource | McapStreamSource


def _first_frame(source: Source, topic: Topic) -> str:
    """The header frame of ``topic``'s first message, without a leading ``/`` ('' if none)."""
    with closing(source.raw_messages({topic.name})) as raws:
        for _, _, raw in raws:
            return str(source.deserialize(raw, topic.msgtype).header.frame_id).lstrip("/")
    return ""


def mark_lidar_images(source: Source, topics: dict[str, Topic], path: Path) -> dict[str, Topic]:
    """``topics`` with every image topic whose header frame is a PointCloud2 topic's marked
    as a lidar image (:attr:`Topic.lidar_frame`): ouster-ros publishes its range, signal,
    reflectivity and near-IR images in the lidar's frame, and they are no camera to choose.
    Reads the first message of each image and cloud topic, only when the bag has both."""
    images = [t for t in topics.values() if t.kind == "camera" and t.count > 0]
    clouds = [t for t in topics.values() if t.kind == "lidar" and t.count > 0]
    if not images or not clouds:
        return topics
    marked = dict(topics)
    try:
        lidar_frames = {_first_frame(source, t) for t in clouds} - {""}
        for image in images:
            frame = _first_frame(source, image)
            if frame in lidar_frames:
                marked[image.name] = replace(image, lidar_frame=frame)
    except ROSBAGS_ERRORS as exc:
        raise RecordingError(f"cannot read the frames of its topics: {exc}", path=path) from exc
    return marked
