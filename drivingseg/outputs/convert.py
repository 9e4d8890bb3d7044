"""Convert a recording (a KITTI raw drive, say) into a ROS 2 MCAP, a ROS 1 bag or a ROS 2
sqlite3 bag, the writer chosen by the output's suffix (:func:`output_kind`): ``.mcap``,
``.bag`` (ROS 1 Noetic), ``.db3`` or a folder without suffix (ROS 2 sqlite3 bag folder; see
:mod:`drivingseg.outputs.rosbag`). All three get the same messages from one loop.

Topics follow the naming of ``kitti2bag`` (the widely used KITTI raw -> rosbag
converter), so tools and launch files written for it find the streams:

- ``/kitti/camera_color_left/image_rect``: ``sensor_msgs/Image`` rgb8, one per frame;
- ``/kitti/camera_color_left/camera_info``: ``sensor_msgs/CameraInfo`` of the rig camera,
  one per image with the image's stamp;
- ``/kitti/velo/pointcloud``: ``sensor_msgs/PointCloud2``, float32 x, y, z, intensity;
- ``/tf_static``: one ``tf2_msgs/TFMessage`` holding ``T_cam_velo``.

(``camera_color_left`` is camera 2; :func:`kitti_topics` names the others.) A ROS bag keeps
its own topic names (:func:`bag_topics`), as ``rosbags-convert`` and ``mcap convert`` do:
launch files and tools written for the bag still find its streams.

Differences from kitti2bag: the image topic is ``image_rect`` (KITTI ``_sync`` images are
rectified; kitti2bag calls them ``image_raw``); frame ids are the rig's (``cam0``-style
camera frame, ``velodyne``) instead of ``camera_color_left`` / ``velo_link``; ``/tf_static``
holds the single camera <- lidar transform (parent = camera frame, child = lidar frame,
transform = ``T_cam_velo``) instead of a ``base_link`` tree; no IMU/GPS topics. Without a
rig only images and point clouds are written, except that a camera-only bag keeps its
``camera_info`` (``BagRecording.frame_camera``: a camera model needs no lidar).

A KITTI object/road folder has one calibration per frame: each image's ``camera_info``
comes from its own ``calib/<id>.txt``. ``/tf_static`` is written at the first message;
should a later frame's ``T_cam_velo`` differ, a new ``/tf_static`` is written at that
frame's stamp (static transforms are replaced by the newest message) and a warning is
logged, as tools that latch only the first ``/tf_static`` keep the old one.

Messages are written in stamp order (``Recording.messages()``), logged at their stamps.
If reading fails half way (a corrupt PNG, say) the output written so far is finalised and
stays valid, then the error propagates. Ctrl-C (SIGINT) and SIGTERM, when Python's
default handlers are in place in the main thread, are deferred until the current message
and its companions are written; the file is then finalised and ``KeyboardInterrupt`` is
raised (so the caller closes its recording). A second signal raises at once; the MCAP writer
then ends the file after its last complete chunk (see :mod:`drivingseg.outputs.mcap`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.fileio import mkdir_problem
from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.outputs.rosbag import Ros1BagWriter, Ros2Sqlite3Writer, sqlite3_bag_folder
from drivingseg.sensors.base import Recording, RecordingInfo
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = [
    "KITTI_CAMERA_NAMES",
    "OUTPUT_KINDS",
    "ConvertStats",
    "McapTopics",
    "bag_topics",
    "convert_recording",
    "convert_to_mcap",
    "expected_messages",
    "kitti_topics",
    "output_kind",
    "output_location",
]

log = logging.getLogger(__name__)

STREAM_KINDS = ("camera", "lidar")
"""The ``StreamInfo.kind`` values whose messages are converted."""

KITTI_CAMERA_NAMES = {
    0: "camera_gray_left",
    1: "camera_gray_right",
    2: "camera_color_left",
    3: "camera_color_right",
}
"""kitti2bag's names of the four KITTI cameras (``image_0N``)."""

OUTPUT_KINDS = {
    ".mcap": "ROS 2 MCAP",
    ".bag": "ROS 1 bag",
    ".db3": "ROS 2 sqlite3 bag",
    "": "ROS 2 sqlite3 bag folder",
}
"""Output suffix -> what :func:`convert_recording` writes there ("" : a folder)."""

Message = CameraFrame | LidarScan
Writer = Ros2McapWriter | Ros1BagWriter | Ros2Sqlite3Writer
ProgressWrapper = Callable[[Iterable[Message]], Iterable[Message]]


@dataclass(frozen=True)
class McapTopics:
    """Topic names written by :func:`convert_to_mcap`."""

    image: str = "/kitti/camera_color_left/image_rect"
    camera_info: str = "/kitti/camera_color_left/camera_info"
    points: str = "/kitti/velo/pointcloud"
    tf_static: str = "/tf_static"


def kitti_topics(camera: int = 2) -> McapTopics:
    """The kitti2bag-style topics for KITTI camera ``camera`` (0-3)."""
    if camera not in KITTI_CAMERA_NAMES:
        raise ConfigError(f"camera must be 0, 1, 2 or 3 (KITTI image_0N), got {camera!r}")
    name = KITTI_CAMERA_NAMES[camera]
    return McapTopics(image=f"/kitti/{name}/image_rect", camera_info=f"/kitti/{name}/camera_info")


def bag_topics(image_topic: str | None, lidar_topic: str | None,
               camera_info_topic: str | None) -> McapTopics:
    """A bag's own topic names for its converted streams. Images are written decoded
    (``sensor_msgs/Image``), so a ``.../compressed`` topic loses that suffix; without a
    CameraInfo topic the ROS place for one (``camera_info`` beside the image) is used."""
    defaults = McapTopics()
    image = (image_topic or defaults.image).removesuffix("/compressed")
    info = camera_info_topic or image.rsplit("/", 1)[0] + "/camera_info"
    return McapTopics(image=image, camera_info=info, points=lidar_topic or defaults.points)


@dataclass(frozen=True)
class ConvertStats:
    """What one conversion wrote: messages per topic and the stamp span."""

    path: str
    counts: dict[str, int] = field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _present_kinds(info: RecordingInfo) -> set[str]:
    """The converted stream kinds that ``info`` lists with at least one message."""
    return {s.kind for s in info.streams if s.kind in STREAM_KINDS and s.count > 0}


def expected_messages(
    info: RecordingInfo, max_frames: int | None = None, streams: Collection[str] | None = None
) -> int:
    """Camera frames plus lidar scans a conversion reads (``max_frames`` of each at most):
    those of ``streams`` (a bag's chosen image and lidar topics; a bag may hold several
    of a kind, the others unread), or of every camera and lidar stream when ``None``."""
    total = 0
    for kind in STREAM_KINDS:
        count = sum(s.count for s in info.streams
                    if s.kind == kind and (streams is None or s.name in streams))
        total += count if max_frames is None else min(count, max_frames)
    return total


def _limited(
    messages: Iterator[Message], max_frames: int | None, kinds: Collection[str]
) -> Iterator[Message]:
    """The first ``max_frames`` camera frames and lidar scans; stops reading as soon as
    every kind in ``kinds`` (the streams the recording has) has that many."""
    if max_frames is None:
        yield from messages
        return
    wanted = set(kinds) or set(STREAM_KINDS)
    seen = dict.fromkeys(STREAM_KINDS, 0)
    for msg in messages:
        kind = "camera" if isinstance(msg, CameraFrame) else "lidar"
        if seen[kind] >= max_frames:
            continue
        seen[kind] += 1
        yield msg
        if all(seen[k] >= max_frames for k in wanted):
            return


class _DeferredInterrupt:
    """While active, a first SIGINT or SIGTERM only sets ``requested``; a second raises
    ``KeyboardInterrupt`` at once.

    Installed only in the main thread and only over Python's default handlers
    (``default_int_handler``, ``SIG_DFL``), so a caller's own handling is left alone.
    SIGTERM (``kill``, ``timeout``, a job scheduler) killed the process on the spot: the
    MCAP was left without its summary and a file-compressed bag's decompressed copy
    stayed in the temporary folder.
    """

    _DEFAULTS = ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL))

    def __init__(self) -> None:
        self.requested = False
        self._installed: list[tuple[int, Any]] = []

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupted (%s): finishing the current message, then closing the output",
                    signal.Signals(signum).name)

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum, default in self._DEFAULTS:
                if signal.getsignal(signum) is default:
                    signal.signal(signum, self._handler)
                    self._installed.append((signum, default))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, default in self._installed:
            signal.signal(signum, default)
        self._installed = []


def output_kind(out_path: str | PathLike[str]) -> str:
    """The :data:`OUTPUT_KINDS` suffix of ``out_path`` (lower-case; "" for a folder);
    any other suffix is a :class:`ConfigError` listing the supported ones."""
    suffix = Path(out_path).suffix.lower()
    if suffix not in OUTPUT_KINDS:
        supported = "; ".join(f"{s or 'a folder (no suffix)'} ({kind})"
                              for s, kind in OUTPUT_KINDS.items())
        raise ConfigError(f"unsupported output {str(out_path)!r} (suffix {suffix!r}); "
                          f"supported: {supported}")
    return suffix


def output_location(out_path: str | PathLike[str]) -> Path:
    """Where the output of ``out_path`` lands: ``drive.db3`` is the folder ``drive``
    (holding ``drive.db3`` and ``metadata.yaml``), anything else is itself."""
    path = Path(out_path)
    return sqlite3_bag_folder(path) if output_kind(path) == ".db3" else path


def _make_parent(out_path: Path) -> None:
    """Create the folder the output goes in, as every other command's outputs do (the MCAP
    and ROS 1 writers failed with 'No such file or directory')."""
    parent = output_location(out_path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create the output's folder: {mkdir_problem(parent, exc)}"
        raise RecordingError(message, path=out_path) from exc


def _writer(out_path: Path, compression: str) -> Writer:
    """The writer for ``out_path``'s suffix, its folder created."""
    kind = output_kind(out_path)
    _make_parent(out_path)
    if kind == ".mcap":
        return Ros2McapWriter(out_path, compression=compression)
    if kind == ".bag":
        return Ros1BagWriter(out_path)
    return Ros2Sqlite3Writer(out_path)


def convert_to_mcap(
    recording: Recording,
    out_path: str | PathLike[str],
    *,
    topics: McapTopics | None = None,
    max_frames: int | None = None,
    progress: ProgressWrapper | None = None,
    compression: str = "zstd",
) -> ConvertStats:
    """Write ``recording`` to ``out_path`` as a ROS 2 MCAP, whatever its suffix
    (see :func:`convert_recording`)."""
    _make_parent(Path(out_path))
    writer = Ros2McapWriter(Path(out_path), compression=compression)
    return _convert(recording, writer, topics, max_frames, progress)


def convert_recording(
    recording: Recording,
    out_path: str | PathLike[str],
    *,
    topics: McapTopics | None = None,
    max_frames: int | None = None,
    progress: ProgressWrapper | None = None,
    compression: str = "zstd",
) -> ConvertStats:
    """Write ``recording`` (open) to ``out_path``, as the suffix says (:data:`OUTPUT_KINDS`):
    a ROS 2 MCAP, a ROS 1 bag or a ROS 2 sqlite3 bag; an existing output is replaced and
    missing folders above it are created.

    ``max_frames`` keeps the first N camera frames and the first N lidar scans, and stops
    reading once every stream of ``recording.info()`` has N.
    ``progress`` wraps the message stream (e.g. a progress bar); it sees camera frames
    and lidar scans in stamp order. On Ctrl-C or SIGTERM the output is finalised, then
    ``KeyboardInterrupt`` is raised. ``compression`` applies to MCAP only.
    """
    writer = _writer(Path(out_path), compression)
    return _convert(recording, writer, topics, max_frames, progress)


def _convert(
    recording: Recording,
    writer: Writer,
    topics: McapTopics | None,
    max_frames: int | None,
    progress: ProgressWrapper | None,
) -> ConvertStats:
    """The one message loop of every output kind: ``recording`` through ``writer``."""
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames!r}")
    names = topics or McapTopics()
    rig = recording.rig()
    camera_frame = rig.camera_frame if rig is not None else None
    lidar_frame = rig.lidar_frame if rig is not None else None
    first_ns: int | None = None
    last_ns: int | None = None
    tf_written: Rig | None = None

    kinds = _present_kinds(recording.info()) if max_frames is not None else set(STREAM_KINDS)
    stream: Iterable[Message] = _limited(recording.messages(), max_frames, kinds)
    if progress is not None:
        stream = progress(stream)
    with _DeferredInterrupt() as interrupt, writer:
        for msg in stream:
            if first_ns is None:
                first_ns = msg.stamp_ns
            last_ns = msg.stamp_ns
            frame_rig = tf_written or rig
            if isinstance(msg, CameraFrame) and rig is not None:
                frame_rig = recording.frame_rig(msg.index)
            if frame_rig is not None and (
                tf_written is None
                or not np.array_equal(frame_rig.T_cam_velo.matrix, tf_written.T_cam_velo.matrix)
            ):
                if tf_written is not None:
                    log.warning(
                        "%s frame %d: lidar->camera transform differs from the previous "
                        "frames'; writing /tf_static again at stamp %d",
                        recording.path, msg.index, msg.stamp_ns,
                    )
                writer.write_tf_static(frame_rig.T_cam_velo, msg.stamp_ns, names.tf_static)
                tf_written = frame_rig
            if isinstance(msg, CameraFrame):
                # a bag without a lidar still has its camera (CameraInfo), frame by frame
                camera = (frame_rig.camera if frame_rig is not None
                          else recording.frame_camera(msg.index))
                writer.write_image(names.image, msg, frame_id=camera_frame)
                if camera is not None:
                    writer.write_camera_info(names.camera_info, camera, msg.stamp_ns)
            else:
                writer.write_pointcloud(names.points, msg, frame_id=lidar_frame)
            if interrupt.requested:
                break
        counts = dict(writer.counts)
    if interrupt.requested:
        raise KeyboardInterrupt
    return ConvertStats(path=str(writer.path), counts=counts, first_ns=first_ns, last_ns=last_ns)
