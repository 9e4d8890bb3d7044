"""Read a ROS 1 bag that has no index, as ``rosbag play`` does after ``rosbag reindex``.

``rosbag record`` killed (SIGKILL, a power cut) leaves ``NAME.bag.active`` with
``index_pos`` 0 in its header and no connection or chunk-info records at its end; a bag cut
short after it was closed (a copy that stopped) has an index past its end. Such a bag is
scanned front to back once: its chunks (uncompressed, bz2 or lz4) and the connection and
message records inside them, parsed with rosbags' own record reader. The index built in
memory is shared by every reader of the same file version (a recording opens one per
stream and pass), so a multi-GB bag is scanned once, with a progress bar. Every complete
message is kept, also those of a last chunk cut short; the cut record is dropped with a
warning that says how many messages were recovered.
"""

from __future__ import annotations

import bz2
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, cast

import lz4.frame
from rosbags.highlevel import AnyReader
from rosbags.highlevel.anyreader import AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1 import ReaderError as Ros1ReaderError
from rosbags.rosbag1.reader import (
    Chunk,
    ChunkInfo,
    Header,
    IndexData,
    RecordType,
    decompressors,
    read_bytes,
    read_uint32,
)
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

__all__ = ["UnindexedReader", "is_ros1_bag", "open_any_reader"]

log = logging.getLogger("drivingseg.sensors.bag")

_UNINDEXED_MESSAGES = ("not indexed", "index looks damaged")
"""What rosbags' ROS 1 reader says of a bag whose index is missing or cut off."""

_MIB = 1 << 20
_CACHED_SCANS = 4


def is_ros1_bag(path: Path) -> bool:
    """Whether ``path`` names a ROS 1 bag file: ``.bag``, or a recorder's ``.bag.active``."""
    return path.suffix.lower() == ".bag" or path.name.lower().endswith(".bag.active")


def _partial(compression: str) -> Callable[[bytes], bytes]:
    """A decompressor of the cut start of a chunk: what its complete blocks hold."""
    if compression == "bz2":
        return lambda data: bz2.BZ2Decompressor().decompress(data)
    if compression == "lz4":
        return lambda data: cast(bytes, lz4.frame.LZ4FrameDecompressor().decompress(data))
    return decompressors[compression]


class _RecordView:
    """What rosbags' ``Reader.read_connection`` reads from: a file at a connection record."""

    def __init__(self, bio: BinaryIO) -> None:
        self.bio = bio


def _read_connection(bio: BinaryIO) -> Connection:
    """The connection record at ``bio``'s position, parsed by rosbags."""
    return Ros1Reader.read_connection(cast(Ros1Reader, _RecordView(bio)))


@dataclass
class _Scan:
    """A bag's index, built by reading it front to back."""

    connections: dict[int, Connection] = field(default_factory=dict)
    chunk_infos: list[ChunkInfo] = field(default_factory=list)
    chunks: dict[int, Chunk] = field(default_factory=dict)
    indexes: dict[int, list[IndexData]] = field(default_factory=lambda: defaultdict(list))
    messages: int = 0
    cut: str = ""
    """What was dropped at the end ('' when the bag ends on a whole record)."""

    def add_chunk(self, pos: int, chunk: Chunk, raw: bytes) -> bool:
        """Index the records of one chunk's data ``raw``; ``False`` if they end cut short."""
        bio = BytesIO(raw)
        counts: dict[int, int] = defaultdict(int)
        times: list[int] = []
        whole = True
        while (offset := bio.tell()) < len(raw):
            try:
                header = Header.read(bio)
                if header.get_uint8("op") == RecordType.CONNECTION:
                    _ = bio.seek(offset)
                    conn = _read_connection(bio)
                    self.connections.setdefault(conn.id, conn)
                    continue
                data_size = read_uint32(bio)
                _ = read_bytes(bio, data_size)
                if header.get_uint8("op") != RecordType.MSGDATA:
                    continue
                conn_id, time_ns = header.get_uint32("conn"), header.get_time("time")
            except Ros1ReaderError:
                whole = False
                break
            if conn_id not in self.connections:
                continue  # its connection record was lost: nothing can decode it
            self.indexes[conn_id].append(IndexData(time_ns, pos, offset))
            counts[conn_id] += 1
            times.append(time_ns)
        if times:
            self.chunks[pos] = chunk
            self.chunk_infos.append(ChunkInfo(pos, min(times), max(times) + 1, dict(counts)))
            self.messages += len(times)
        return whole


def _scan_records(bio: BinaryIO, size: int, scan: _Scan) -> Iterator[int]:
    """Index the bag open in ``bio`` into ``scan``, yielding the file position after each
    top-level record (for the progress bar); a cut or damaged record ends it, noted in
    ``scan.cut``."""
    if bio.read(13) != b"#ROSBAG V2.0\n":
        raise Ros1ReaderError("File magic is invalid.")
    _ = Header.read(bio, RecordType.BAGHEADER)
    _ = bio.seek(read_uint32(bio), 1)
    while (pos := bio.tell()) < size:
        try:
            header = Header.read(bio)
            op = header.get_uint8("op")
            if op == RecordType.CONNECTION:
                _ = bio.seek(pos)
                conn = _read_connection(bio)
                scan.connections.setdefault(conn.id, conn)
                yield bio.tell()
                continue
            data_size = read_uint32(bio)
        except Ros1ReaderError as exc:
            scan.cut = f"a record cut short at byte {pos} ({exc.args[0]})"
            return
        data_pos = bio.tell()
        if op == RecordType.CHUNK:
            compression = header.get_string("compression")
            if compression not in decompressors:
                raise Ros1ReaderError(f"Compression {compression!r} is not supported.")
            unsized = data_size == 0 and header.get("size") == bytes(4)
            if unsized:  # rosbag record fills in a chunk's sizes when it closes it: a killed
                data_size = size - data_pos  # one's open chunk runs to the end of the file
            data = bio.read(data_size)
            whole = len(data) == data_size and not unsized
            decompress = decompressors[compression] if whole else _partial(compression)
            try:
                raw = decompress(data)
            except (OSError, RuntimeError, ValueError) as exc:
                scan.cut = f"a damaged chunk at byte {pos} ({exc}) and everything after it"
                return
            complete = scan.add_chunk(pos, Chunk(len(data), data_pos, decompress), raw)
            if not whole:
                held = (f"{len(data)} bytes, its size never written" if unsized
                        else f"{len(data)} of its {data_size} bytes")
                scan.cut = (f"the cut end of the chunk at byte {pos} ({held}; its complete "
                            "messages are kept)")
                return
            if not complete:
                scan.cut = (f"the chunk at byte {pos} from a damaged record on (its messages "
                            "before it are kept) and everything after it")
                return
        _ = bio.seek(data_pos + data_size)
        yield min(bio.tell(), size)


def _scan(path: Path) -> _Scan:
    """Read the whole bag at ``path`` into an index, with a progress bar in MiB."""
    from drivingseg.cli._common import progress  # the CLI's bar; sensors must not import cli

    scan = _Scan()
    size = path.stat().st_size

    def ticks() -> Iterator[None]:
        done = 0
        with path.open("rb") as bio:
            for end in _scan_records(bio, size, scan):
                while done < end // _MIB:
                    done += 1
                    yield None

    for _ in progress(ticks(), total=size // _MIB, desc=f"index {path.name}", unit="MiB"):
        pass
    for conn_id, index in scan.indexes.items():
        index.sort()
        scan.connections[conn_id] = scan.connections[conn_id]._replace(msgcount=len(index))
    if scan.messages == 0:
        why = f"; it ends with {scan.cut}" if scan.cut else ""
        raise Ros1ReaderError(f"Bag has no index and no complete message to recover{why}.")
    log.warning("%s: ROS 1 bag without a readable index (its recorder was stopped before "
                "closing it, or the file was cut short): read it front to back and recovered "
                "%d messages in %d chunks%s", path,
                scan.messages, len(scan.chunk_infos),
                f"; dropped {scan.cut}" if scan.cut else "")
    return scan


_SCANS: OrderedDict[tuple[str, int, int], _Scan] = OrderedDict()
_SCANS_LOCK = threading.Lock()


def _cached_scan(path: Path) -> _Scan:
    """The index of this version of ``path`` (its size and time): scanned once, shared."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _SCANS_LOCK:
        scan = _SCANS.get(key)
        if scan is None:
            scan = _SCANS[key] = _scan(path)
            while len(_SCANS) > _CACHED_SCANS:
                _SCANS.popitem(last=False)
        _SCANS.move_to_end(key)
        return scan


class UnindexedReader(Ros1Reader):
    """rosbags' ROS 1 reader over a bag indexed in memory by a front-to-back scan."""

    def open(self) -> None:
        """Open the file with its own index where it has a readable one (a ``.bag.active``
        renamed by hand), else take the (shared) index of its scan."""
        try:
            super().open()
        except Ros1ReaderError as exc:
            if not any(m in str(exc) for m in _UNINDEXED_MESSAGES):
                raise
        else:
            return
        scan = _cached_scan(Path(str(self.path)))
        self.bio = self.path.open("rb")
        self.connections = [c._replace(owner=self) for c in scan.connections.values()
                            if c.id in scan.indexes]
        self.chunk_infos = list(scan.chunk_infos)
        self.chunks = dict(scan.chunks)
        self.indexes = {c.id: scan.indexes[c.id] for c in self.connections}


class _UnindexedAnyReader(AnyReader):
    """AnyReader over one :class:`UnindexedReader` (AnyReader itself takes a file of any
    suffix but ``.bag``, such as ``.bag.active``, for ROS 2 storage)."""

    def __init__(self, path: Path, *, default_typestore: Typestore) -> None:
        self.paths = [path]
        self.is2 = False
        self.stack = None
        self.connections = []
        self.default_typestore = default_typestore
        self.typestore = get_typestore(Stores.EMPTY)
        self.readers = [UnindexedReader(path)]


def open_any_reader(path: Path, default_typestore: Typestore) -> AnyReader:
    """rosbags' AnyReader of the bag ``path``, opened; a ROS 1 bag without a readable index
    (a ``.bag.active``, or rosbags says so) is read through :class:`UnindexedReader`."""
    if path.suffix.lower() != ".bag" and is_ros1_bag(path):
        reader: AnyReader = _UnindexedAnyReader(path, default_typestore=default_typestore)
    else:
        reader = AnyReader([path], default_typestore=default_typestore)
    try:
        reader.open()
    except (AnyReaderError, Ros1ReaderError) as exc:
        if isinstance(reader, _UnindexedAnyReader) or not (
                is_ros1_bag(path) and any(m in str(exc) for m in _UNINDEXED_MESSAGES)):
            raise
        reader = _UnindexedAnyReader(path, default_typestore=default_typestore)
        reader.open()
    return reader
