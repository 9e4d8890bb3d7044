"""ROS 1 bags without index (a killed ``rosbag record``'s ``.bag.active``, a bag cut short),
built from the real KITTI frames and cut at many byte offsets, read front to back."""

from __future__ import annotations

import dataclasses
import logging
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import Writer as Writer1
from rosbags.typesys import Stores, get_typestore

from drivingseg.errors import RecordingError
from drivingseg.outputs.rosbag import Ros1BagWriter
from drivingseg.sensors.bag_ros1_scan import open_any_reader
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_raw import KittiRawDrive
from drivingseg.sensors.open import detect_format, open_recording

FRAMES = 4
IMAGE = "/kitti/camera_color_left/image_rect"
POINTS = "/kitti/velo/pointcloud"


class Stored(NamedTuple):
    """One message of the intact bag, with where its bytes end in the file."""

    topic: str
    time_ns: int
    raw: bytes
    chunk_end: int
    """File offset after its chunk's data."""
    record_end: int
    """File offset after its own record (uncompressed chunks only, else -1)."""


def _write_kitti_bag(drive_path: Path, out: Path) -> tuple[list[CameraFrame], list[LidarScan]]:
    """The first frames of the real drive (a band of image rows, every 8th point: a small
    bag of real bytes) through drivingseg's own ROS 1 writer, with camera_info and
    /tf_static."""
    with KittiRawDrive(drive_path, camera=2) as drive:
        rig = drive.require_rig()
        frames = [dataclasses.replace(f, image=np.ascontiguousarray(f.image[150:214]))
                  for _, f in zip(range(FRAMES), drive.camera_frames(), strict=False)]
        scans = [dataclasses.replace(s, points=np.ascontiguousarray(s.points[::8]))
                 for _, s in zip(range(FRAMES), drive.lidar_scans(), strict=False)]
    with Ros1BagWriter(out) as writer:
        writer.write_tf_static(rig.T_cam_velo, frames[0].stamp_ns)
        for frame, scan in zip(frames, scans, strict=True):
            writer.write_image(IMAGE, frame, frame_id=rig.camera_frame)
            writer.write_camera_info(IMAGE.replace("image_rect", "camera_info"), rig.camera,
                                     frame.stamp_ns)
            writer.write_pointcloud(POINTS, scan, frame_id=rig.lidar_frame)
    return frames, scans


def _rechunk(src: Path, dst: Path, compression: str) -> Path:
    """``src`` copied message by message with rosbags' writer: small chunks, compressed."""
    writer = Writer1(dst)
    writer.chunk_threshold = 150_000
    if compression != "none":
        writer.set_compression(getattr(Writer1.CompressionFormat, compression.upper()))
    with Reader1(src) as reader, writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                             md5sum=c.digest, callerid=c.ext.callerid,
                                             latching=c.ext.latching)
                 for c in reader.connections}
        for conn, time_ns, raw in reader.messages():
            writer.write(conns[conn.id], time_ns, raw)
    return dst


def _stored(path: Path) -> list[Stored]:
    """Every message of the intact bag in file order, with where it ends."""
    data = path.read_bytes()
    out = []
    with Reader1(path) as reader:
        topic_of = {c.id: c.topic for c in reader.connections}
        entries = sorted((entry.chunk_pos, entry.offset, conn_id)
                         for conn_id, index in reader.indexes.items() for entry in index)
        raws = {(c.id, t): raw for c, t, raw in reader.messages()}
        for chunk_pos, offset, conn_id in entries:
            chunk = reader.chunks[chunk_pos]
            time_ns = next(e.time for e in reader.indexes[conn_id]
                           if (e.chunk_pos, e.offset) == (chunk_pos, offset))
            record_end = -1
            if data[chunk_pos:chunk.datapos].find(b"compression=none") >= 0:
                at = chunk.datapos + offset
                (head,) = struct.unpack_from("<I", data, at)
                (size,) = struct.unpack_from("<I", data, at + 4 + head)
                record_end = at + 8 + head + size
            out.append(Stored(topic_of[conn_id], time_ns, raws[conn_id, time_ns],
                              chunk.datapos + chunk.datasize, record_end))
    return out


def _unindexed(data: bytes, cut: int, path: Path, *, keep_header: bool = False) -> Path:
    """The first ``cut`` bytes of the bag at ``path``; its header's index_pos set to 0 (as
    a killed recorder leaves it) unless ``keep_header`` (an index cut off the end)."""
    at = data.index(b"index_pos=") + len(b"index_pos=")
    head = data if keep_header else data[:at] + bytes(8) + data[at + 8:]
    path.write_bytes(head[:cut])
    return path


def _read_back(path: Path) -> list[tuple[str, int, bytes]]:
    reader = open_any_reader(path, get_typestore(Stores.ROS2_HUMBLE))
    try:
        return [(c.topic, t, raw) for c, t, raw in reader.messages()]
    finally:
        reader.close()


def _chunk_bounds(data: bytes) -> list[tuple[int, int]]:
    """(start of the chunk record, end of its data) of every chunk of an intact bag."""
    bounds = []
    pos = data.index(b"\n") + 1
    while pos < len(data):
        (head,) = struct.unpack_from("<I", data, pos)
        (size,) = struct.unpack_from("<I", data, pos + 4 + head)
        end = pos + 8 + head + size
        if b"op=\x05" in data[pos + 4:pos + 4 + head]:
            bounds.append((pos, end))
        pos = end
    return bounds


@pytest.mark.parametrize("compression", ["none", "bz2", "lz4"])
def test_every_complete_message_before_the_cut_reads_back_identical(
        kitti_raw_drive: Path, tmp_path: Path, compression: str) -> None:
    """A bag without index was refused ('run rosbag reindex', which needs ROS); cut at many
    places (inside a chunk, at a chunk's end before its index records, inside a record
    header, in the index at the end), every complete message before the cut reads back
    byte for byte, in time order."""
    _write_kitti_bag(kitti_raw_drive, tmp_path / "written.bag")
    intact = _rechunk(tmp_path / "written.bag", tmp_path / "intact.bag", compression)
    data = intact.read_bytes()
    stored = _stored(intact)
    bounds = _chunk_bounds(data)
    assert len(bounds) >= 5 and len(stored) == 3 * FRAMES + 1
    index_pos = struct.unpack_from("<Q", data, data.index(b"index_pos=") + 10)[0]
    cuts = {
        "inside the third chunk": (bounds[2][0] + bounds[2][1]) // 2,
        "at the end of the fourth chunk": bounds[3][1],
        "inside a record header": bounds[4][0] + 9,
        "in the index": index_pos + 40,
        "nothing": len(data),
    }
    followed = [s for s in stored if 0 < s.record_end < s.chunk_end]  # more in its chunk
    if compression == "none":
        assert followed
        cuts["just after a message inside a chunk"] = followed[-1].record_end + 3
    for where, cut in cuts.items():
        for keep_header in (False, True):  # index_pos 0, or an index past the end
            path = _unindexed(data, cut, tmp_path / f"cut{cut}{keep_header}.bag.active",
                              keep_header=keep_header)
            _check_prefix(_read_back(path), stored, cut, compression, where)


@pytest.mark.parametrize("compression", ["none", "bz2", "lz4"])
def test_a_killed_recorders_open_chunk_without_its_sizes_is_read(
        kitti_raw_drive: Path, tmp_path: Path, compression: str) -> None:
    """rosbag record writes a chunk's header with sizes 0 and fills them in when it closes
    the chunk: a killed one leaves its last chunk so, its data running to the end of the
    file. Its complete messages are read, not taken for top-level records and lost."""
    _write_kitti_bag(kitti_raw_drive, tmp_path / "written.bag")
    intact = _rechunk(tmp_path / "written.bag", tmp_path / "intact.bag", compression)
    data = bytearray(intact.read_bytes())
    stored = _stored(intact)
    bounds = _chunk_bounds(bytes(data))
    several = [s.chunk_end for s in stored if 0 < s.record_end < s.chunk_end]
    start, end = next(b for b in bounds if b[1] == several[-1]) if several else bounds[-2]
    (head,) = struct.unpack_from("<I", data, start)
    size_at = data.index(b"size=", start, start + 4 + head) + len(b"size=")
    data[size_at:size_at + 4] = bytes(4)
    data[start + 4 + head:start + 8 + head] = bytes(4)
    followed = [s for s in stored if start < s.record_end < s.chunk_end == end]
    cut = followed[-1].record_end + 3 if followed else (start + end) // 2
    path = _unindexed(bytes(data), cut, tmp_path / "drive.bag.active")
    assert followed or compression != "none"  # a whole message in the open chunk
    _check_prefix(_read_back(path), stored, cut, compression, "open chunk")


def _check_prefix(got: list[tuple[str, int, bytes]], stored: list[Stored], cut: int,
                  compression: str, where: str) -> None:
    """``got`` is in time order, the bag's messages from its start in file order, byte for
    byte; all of those in chunks before the cut, and (uncompressed) all whole records."""
    in_file = [(s.topic, s.time_ns, s.raw) for s in stored]
    assert got == sorted(got, key=lambda m: m[1]), where
    assert sorted(got, key=in_file.index) == in_file[:len(got)], where
    assert len(got) >= sum(s.chunk_end <= cut for s in stored), where
    if compression == "none":
        assert len(got) == sum(s.record_end <= cut for s in stored), where


def test_a_killed_recorders_bag_active_replays_with_a_warning(
        kitti_raw_drive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``rosbag record`` killed leaves NAME.bag.active without index: it was refused with
    'run rosbag reindex'; now info, frames, scans and rig come from it, and the warning says
    how many messages were recovered and what was dropped."""
    frames, scans = _write_kitti_bag(kitti_raw_drive, tmp_path / "written.bag")
    data = (tmp_path / "written.bag").read_bytes()
    stored = _stored(tmp_path / "written.bag")
    last_image = max(i for i, s in enumerate(stored) if s.topic == IMAGE)
    cut = stored[last_image].record_end - 100  # the last image is cut short
    active = _unindexed(data, cut, tmp_path / "drive.bag.active")
    assert detect_format(active) == "rosbag"
    with caplog.at_level(logging.WARNING), open_recording(active) as bag:
        counts = {s.name: s.count for s in bag.info().streams}
        got_frames, got_scans = list(bag.camera_frames()), list(bag.lidar_scans())
        assert bag.rig() is not None
    assert counts[IMAGE] == FRAMES - 1
    assert [f.stamp_ns for f in got_frames] == [f.stamp_ns for f in frames[:-1]]
    for got, want in zip(got_frames, frames, strict=False):
        np.testing.assert_array_equal(got.image, want.image)
    assert len(got_scans) == sum(s.topic == POINTS and s.record_end <= cut for s in stored)
    for got_scan, want_scan in zip(got_scans, scans, strict=False):
        np.testing.assert_array_equal(got_scan.points, want_scan.points)
    recovered = sum(s.record_end <= cut for s in stored)
    warnings = [r.getMessage() for r in caplog.records if "without a readable index" in
                r.getMessage()]
    assert len(warnings) == 1  # the bag is scanned once, however many readers open it
    assert f"recovered {recovered} messages" in warnings[0]
    assert "cut end of the chunk" in warnings[0]


def test_a_bag_cut_before_its_first_message_names_the_file(
        kitti_raw_drive: Path, tmp_path: Path) -> None:
    """Nothing to recover is a RecordingError naming the file, not a traceback."""
    _write_kitti_bag(kitti_raw_drive, tmp_path / "written.bag")
    intact = _rechunk(tmp_path / "written.bag", tmp_path / "intact.bag", "bz2")
    data = intact.read_bytes()
    first = _chunk_bounds(data)[0]
    cut = _unindexed(data, (first[0] + first[1]) // 2, tmp_path / "drive.bag.active")
    with pytest.raises(RecordingError, match=r"drive\.bag\.active: cannot read bag: Bag has no "
                       r"index and no complete message to recover; it ends with the cut end"):
        open_recording(cut)
