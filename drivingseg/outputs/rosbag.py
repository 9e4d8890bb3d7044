"""ROS 1 ``.bag`` and ROS 2 sqlite3 bag writers, with :class:`Ros2McapWriter`'s write API.

A ROS 1 (Noetic) user needs a ``.bag``, a ROS 2 Humble user with the default storage a
sqlite3 bag folder (``metadata.yaml`` and one ``.db3``); both are written through rosbags'
writers. Messages are built as ROS 2 messages (:mod:`drivingseg.sensors.ros_msgs_write`); for
ROS 1 they are copied into the Noetic types, where ``Header`` has a ``seq`` and
``CameraInfo`` spells its matrices ``D``, ``K``, ``R``, ``P``, and ``/tf_static`` is
written on a latching connection (``latching=1``), as ``rosbag record`` stores it.

As with the MCAP writer, leaving the ``with`` block, also through an exception, finalises
the bag (index, or database commit and ``metadata.yaml``), so what was written stays
readable; Ctrl-C and SIGTERM wait while a ROS 1 bag's index is written. Only a ROS 1 write
interrupted half way (a second Ctrl-C) leaves the bag unindexed (drivingseg reads it as it
is; ``rosbag reindex`` recovers it for ROS tools), and only a ROS 2 bag whose insert failed in
sqlite (a full disk) is removed: sqlite rolled back every message. An existing output is
replaced: a ``.bag`` file, or a folder that is a ROS 2 bag (``metadata.yaml``, or only
``.db3``/``.mcap``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import sqlite3
from collections import Counter
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag1 import WriterError as Ros1WriterError
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.rosbag2 import WriterError as Ros2WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from drivingseg.errors import RecordingError
from drivingseg.outputs.mcap import SensorMessageWriter, offered_qos
from drivingseg.sensors.ros_msgs_write import (
    ros2_typestore,
)
from drivingseg.signals import signals_held

__all__ = ["Ros1BagWriter", "Ros2Sqlite3Writer", "ros1_typestore", "sqlite3_bag_folder"]

log = logging.getLogger(__name__)

_TF_MESSAGE = "geometry_msgs/TransformStamped[] transforms"


@functools.cache
def ros1_typestore() -> Typestore:
    """The ROS 1 Noetic typestore, with ``tf2_msgs/msg/TFMessage`` (which it lacks)."""
    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg(_TF_MESSAGE, "tf2_msgs/msg/TFMessage"))
    return store


def sqlite3_bag_folder(path: str | PathLike[str]) -> Path:
    """The bag folder of a sqlite3 output: ``drive.db3`` is written as ``drive/drive.db3``
    beside ``drive/metadata.yaml`` (the layout ``ros2 bag`` reads); a folder is itself."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() == ".db3" else p


def _to_ros1(msg: Any, store: Typestore, seq: int) -> Any:
    """The ROS 2 message ``msg`` as its ROS 1 twin: fields matched by name or upper-case
    spelling (``CameraInfo.k`` -> ``K``), ``Header.seq`` set to ``seq``."""
    cls: Any = store.types[msg.__msgtype__]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name == "seq" and not hasattr(msg, "seq"):
            values["seq"] = seq
            continue
        value = getattr(msg, field.name if hasattr(msg, field.name) else field.name.lower())
        if isinstance(value, list):
            value = [_to_ros1(v, store, seq) if hasattr(v, "__msgtype__") else v for v in value]
        elif hasattr(value, "__msgtype__"):
            value = _to_ros1(value, store, seq)
        values[field.name] = value
    return cls(**values)


_WRITE_ERRORS = (OSError, sqlite3.Error, Ros1WriterError, Ros2WriterError)
"""What a bag write can fail with: sqlite reports a full disk as its own
``OperationalError`` ("database or disk is full"), not as an ``OSError``."""


def _clear(path: Path) -> None:
    """Remove an earlier output at ``path``: a file, or a folder that is a ROS 2 bag."""
    if path.is_dir():
        names = {f.name for f in path.iterdir()}
        is_bag = "metadata.yaml" in names or all(n.endswith((".db3", ".mcap")) for n in names)
        if not is_bag:
            message = f"exists and is not a ROS 2 bag folder; not replacing it: {sorted(names)!r}"
            raise RecordingError(message, path=path)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class _BagWriter(SensorMessageWriter):
    """What the ROS 1 and ROS 2 bag writers share: topics, counts and the write_* API."""

    kind = "bag"

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self.typestore = ros2_typestore()
        self.counts: Counter[str] = Counter()
        self._connections: dict[str, tuple[Connection, str]] = {}
        self._in_write = False
        self._open = False

    def _start(self) -> None:
        raise NotImplementedError

    def _connect(self, topic: str, msgtype: str) -> Connection:
        raise NotImplementedError

    def _put(self, connection: Connection, msg: Any, msgtype: str, stamp_ns: int) -> None:
        raise NotImplementedError

    def _finish(self, torn: bool) -> None:
        raise NotImplementedError

    def open(self) -> None:
        """Create the bag (replacing an earlier one)."""
        if self._open:
            return
        try:
            _clear(self.path)
            self._start()
        except _WRITE_ERRORS as exc:
            message = f"cannot create {self.kind}: {getattr(exc, 'strerror', None) or exc}"
            raise RecordingError(message, path=self.path) from exc
        self._open = True

    def close(self) -> None:
        """Write the index (ROS 1) or commit and write ``metadata.yaml`` (ROS 2); idempotent."""
        if not self._open:
            return
        self._open = False
        try:
            self._finish(self._in_write)
        except _WRITE_ERRORS as exc:
            message = f"cannot finish {self.kind}: {getattr(exc, 'strerror', None) or exc}"
            raise RecordingError(message, path=self.path) from exc

    def __enter__(self) -> _BagWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            log.info("closing %s early after %s; it holds %d messages", self.path,
                     type(exc).__name__, sum(self.counts.values()))
        self.close()

    def write(self, topic: str, msg: Any, msgtype: str, stamp_ns: int) -> None:
        """Write the ROS 2 message ``msg`` (of type ``msgtype``) on ``topic`` at ``stamp_ns``."""
        if not self._open:
            raise RecordingError(f"{type(self).__name__} is not open", path=self.path)
        if self._in_write:
            message = "an earlier write was interrupted half way; the writer cannot go on"
            raise RecordingError(message, path=self.path)
        known = self._connections.get(topic)
        if known is not None and known[1] != msgtype:
            message = f"topic {topic!r} already carries {known[1]!r}, not {msgtype!r}"
            raise RecordingError(message, path=self.path)
        self._in_write = True
        try:
            if known is None:
                known = (self._connect(topic, msgtype), msgtype)
                self._connections[topic] = known
            self._put(known[0], msg, msgtype, int(stamp_ns))
        except _WRITE_ERRORS as exc:
            self._in_write = False
            message = f"cannot write {topic!r}: {getattr(exc, 'strerror', None) or exc}"
            raise RecordingError(message, path=self.path) from exc
        self._in_write = False
        self.counts[topic] += 1






class Ros1BagWriter(_BagWriter):
    """A ROS 1 (Noetic) ``.bag``: ``with Ros1BagWriter(path) as w: w.write_image(...)``."""

    kind = "ROS 1 bag"

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path)
        self.ros1 = ros1_typestore()
        self._writer: Ros1Writer | None = None

    def _start(self) -> None:
        self._writer = Ros1Writer(self.path)
        self._writer.open()

    def _connect(self, topic: str, msgtype: str) -> Connection:
        assert self._writer is not None
        latching = 1 if topic.lstrip("/") == "tf_static" else None
        return self._writer.add_connection(topic, msgtype, typestore=self.ros1,
                                           callerid="/drivingseg", latching=latching)

    def _put(self, connection: Connection, msg: Any, msgtype: str, stamp_ns: int) -> None:
        assert self._writer is not None
        data = self.ros1.serialize_ros1(_to_ros1(msg, self.ros1, self.counts[connection.topic]),
                                        msgtype)
        self._writer.write(connection, stamp_ns, data)

    def _finish(self, torn: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if torn:
            log.warning("%s: a write was interrupted half way; the bag is left without its "
                        "index (drivingseg reads it; 'rosbag reindex' recovers it)", self.path)
            writer.abort()
            return
        with signals_held(f"the index of {self.path}"):  # a second Ctrl-C leaves it whole
            writer.close()


class Ros2Sqlite3Writer(_BagWriter):
    """A ROS 2 sqlite3 bag folder (``metadata.yaml``, ``<name>.db3``, CDR messages);
    ``path`` is the folder, or ``drive.db3`` for the folder ``drive``
    (:func:`sqlite3_bag_folder`)."""

    kind = "ROS 2 sqlite3 bag"

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(sqlite3_bag_folder(path))
        self._writer: Ros2Writer | None = None
        self._lost = False

    def _start(self) -> None:
        self._writer = Ros2Writer(self.path, version=8, storage_plugin=StoragePlugin.SQLITE3)
        self._writer.open()

    def _connect(self, topic: str, msgtype: str) -> Connection:
        assert self._writer is not None
        return self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                           offered_qos_profiles=[offered_qos(topic)])

    def _put(self, connection: Connection, msg: Any, msgtype: str, stamp_ns: int) -> None:
        assert self._writer is not None
        try:
            self._writer.write(connection, stamp_ns, self.typestore.serialize_cdr(msg, msgtype))
        except sqlite3.Error:
            # rosbags commits once, at close: a failed insert (a full disk) rolled back
            # every message so far, so metadata.yaml would count messages the bag lacks
            self._lost = True
            raise

    def _finish(self, torn: bool) -> None:
        # an sqlite insert is whole or absent: even after a torn write the bag is committed
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if not self._lost:
            writer.close()
            return
        with contextlib.suppress(*_WRITE_ERRORS):
            writer.close()
        shutil.rmtree(self.path, ignore_errors=True)
        log.warning("%s: removed: the database lost its messages when a write failed",
                    self.path)
