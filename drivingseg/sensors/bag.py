"""Read camera, lidar and calibration from ROS 1 and ROS 2 bags.

Accepted paths: a ROS 1 ``.bag`` file, a ROS 2 bag folder (``metadata.yaml`` with
``.db3`` or ``.mcap`` files), a single ``.db3`` file or a single ``.mcap`` file; all are
read with rosbags' ``AnyReader``. A ``.mcap`` file that rosbags refuses (one without a
summary, left by a killed writer) is read sequentially with the ``mcap`` library and
rosbags' typestore, up to its last complete chunk; so is the one ``.mcap`` of a bag folder
without ``metadata.yaml`` (which ``ros2 bag record`` writes on a clean close only), and the
one ``.db3`` of such a folder is read as a single file. A ROS 1 bag without index (a killed
``rosbag record``'s ``.bag.active``, a bag cut short) is indexed by reading it front to
back once (:mod:`.bag_ros1_scan`), up to its last complete message.

Frames stream lazily: each iterator opens its own reader, so ``messages()`` can merge the
camera and lidar iterators without ever loading the bag whole. Stamps are the messages'
``header.stamp`` in nanoseconds (the log time when a header stamp is zero); a zero stamp, a
stamp more than 10 s from its log time, a stamp not after the one before, an image
topic that changes size and images not of their CameraInfo's size (once the rig is read)
are warned about once per topic (:mod:`.checks`). With ``stamps="receive"`` every message
is stamped by its log (receive) time instead, unchecked: the way to replay sensors stamped
by clocks of their own (an Ouster on its internal oscillator). The rig's
lidar->camera transform chains /tf_static, completed by /tf links that stay fixed over the
bag (:class:`.bag_tf.TfTree`); each camera frame gets the CameraInfo and /tf_static in force
at its stamp (:mod:`.bag_calib`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Generator, Iterator
from contextlib import closing
from os import PathLike
from pathlib import Path
from typing import Any

from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.sensors.bag_calib import BagCalibration, Timeline
from drivingseg.sensors.bag_ros1_scan import is_ros1_bag
from drivingseg.sensors.bag_sources import (
    ROSBAGS_ERRORS,
    TOPIC_KINDS,
    McapStreamSource,
    RosbagsSource,
    Source,
    Topic,
    UnpackedBag,
    mark_lidar_images,
    unpacked_copy,
)
from drivingseg.sensors.bag_tf import TfTree
from drivingseg.sensors.bag_topics import pick_among
from drivingseg.sensors.base import STAMPS, Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.checks import SizeWatch, StampWatch
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.ros_msgs import (
    image_from_msg,
    points_from_pointcloud2,
    stamp_ns_of,
)

__all__ = ["TOPIC_KINDS", "BagRecording"]

log = logging.getLogger(__name__)

_SENSOR_KINDS = ("camera", "lidar", "camera_info", "lidar_image")
_WATCHED_KINDS = ("camera", "lidar", "lidar_image")  # whose stamps are checked (.checks)
_FIRST_NS = -(1 << 63)  # before every stamp: ``*_from(_FIRST_NS)`` reads a whole topic


class BagRecording(BagCalibration, Recording):
    """A ROS bag as a :class:`Recording` (``with BagRecording(path) as bag: ...``).

    Without ``image_topic`` / ``lidar_topic`` the single topic of the matching type is
    used (Image or CompressedImage; PointCloud2); a bag with several must be told which
    before its frames (or scans, or rig) are read: :meth:`info` works on any bag. A bag
    without camera (or lidar) topic yields no camera frames (or scans). An image topic in
    a PointCloud2 topic's frame (an Ouster's range or signal image) is the lidar's image,
    never chosen as the camera unless named.
    """

    format = "rosbag"

    def __init__(self, path: str | PathLike[str], *, image_topic: str | None = None,
                 lidar_topic: str | None = None, camera_info_topic: str | None = None,
                 stamps: str = "header") -> None:
        super().__init__(path)
        self._stamps = "header"
        self._want = {"camera": image_topic, "lidar": lidar_topic,
                      "camera_info": camera_info_topic}
        self.image_topic: str | None = None
        self.lidar_topic: str | None = None
        self.camera_info_topic: str | None = None
        self._ambiguous: dict[str, str] = {}
        self._source: Source | None = None
        self._unpacked: UnpackedBag | None = None  # a file-compressed bag, unpacked
        self._topics: dict[str, Topic] = {}
        self._info: RecordingInfo | None = None
        self._rig: Rig | None = None
        self._camera: CameraModel | None = None
        self._rig_done = False
        self._calib_over_time: tuple[Timeline[CameraModel | None], Timeline[Rig]] | None = None
        self._frame_stamps: dict[int, int] = {}  # camera frame index -> stamp_ns
        self._frame_rigs: dict[tuple[int, int], Rig] = {}
        self._tf_static: list[tuple[int, Any]] = []  # (stamp_ns, TFMessage) of /tf_static
        self._tf_source = ""
        self._tf_dynamic: TfTree | None = None  # the /tf links the rig needed, if any
        self._tf_over_time: Timeline[RigidTransform] | None = None
        self.rig_note = ""
        """Why :meth:`rig` is ``None``, or which /tf links its transform uses ('' if none)."""
        self._live: weakref.WeakSet[Generator[tuple[int, Any], None, None]] = weakref.WeakSet()
        self._watches: dict[str, StampWatch] = {}
        self._sizes: dict[str, SizeWatch] = {}
        self.use_stamps(stamps)

    def use_stamps(self, stamps: str) -> None:
        """Stamp messages by their ``header`` stamp (the default) or their ``receive`` (log)
        time; what was read under the other stamps (span, calibration over time) is dropped."""
        if stamps not in STAMPS:
            message = f"stamps {stamps!r} is not one of {', '.join(STAMPS)}"
            raise RecordingError(message, path=self.path)
        if stamps != self._stamps:
            self._stamps = stamps
            self._forget_stamps()

    def _forget_stamps(self) -> None:
        self._info = None
        self._rig = self._camera = self._calib_over_time = None
        self._rig_done = False
        self._frame_stamps, self._frame_rigs, self._tf_static = {}, {}, []
        self._tf_dynamic = self._tf_over_time = None
        self.rig_note = ""
        self._watches = {}

    # ------------------------------------------------------------------ opening

    def _check_path(self) -> None:
        p = self.path
        if not p.exists():
            raise RecordingError("bag not found", path=p)
        if p.is_dir():
            if not (p / "metadata.yaml").is_file() and self._lone_file(".mcap", ".db3") is None:
                found = sorted(f.name for f in p.iterdir() if f.suffix in (".mcap", ".db3"))
                message = ("folder has no metadata.yaml; a ROS 2 bag folder needs one (without "
                           "it, as a killed ros2 bag record leaves it, the folder is read when it "
                           f"holds exactly one .mcap or .db3 file; it holds {found!r}; "
                           "'ros2 bag reindex' writes it)")
                raise RecordingError(message, path=p)
        elif p.suffix.lower() not in (".bag", ".db3", ".mcap") and not is_ros1_bag(p):
            message = (
                f"unsupported file type {p.suffix!r}; expected a ROS 1 .bag, a ROS 2 bag "
                "folder, a .db3 or a .mcap file"
            )
            raise RecordingError(message, path=p)

    def _new_source(self) -> Source:
        if isinstance(self._source, McapStreamSource):
            return self._source  # holds no open file between iterations: share it
        path = Path(self._unpacked.name) if self._unpacked else self.path
        if path.is_dir() and not (path / "metadata.yaml").is_file():
            path = self._lone_file(".db3", ".mcap") or path  # a killed recorder's folder
        try:
            return RosbagsSource(path)
        except ROSBAGS_ERRORS as exc:
            mcap = self._lone_file(".mcap")
            if mcap is not None:
                log.info("rosbags cannot read %s (%s); reading %s as a stream", self.path, exc,
                         mcap.name)
                return McapStreamSource(mcap, rosbags_error=str(exc))
            raise RecordingError(f"cannot read bag: {exc}", path=self.path) from exc

    def _lone_file(self, *suffixes: str) -> Path | None:
        """The path itself if a file of ``suffixes``, or the one storage file of a bag folder
        with one of them (what an interrupted ``ros2 bag record`` leaves; ``None`` if not)."""
        if self.path.is_file():
            return self.path if self.path.suffix.lower() in suffixes else None
        files = sorted(f for f in self.path.iterdir() if f.suffix in (".mcap", ".db3"))
        return files[0] if len(files) == 1 and files[0].suffix in suffixes else None

    def _open(self) -> None:
        self._check_path()
        self._unpacked = unpacked_copy(self.path) if self.path.is_dir() else None
        try:  # a refused bag leaves no decompressed copy behind
            self._source = self._new_source()
            self._topics = mark_lidar_images(self._source, dict(self._source.topics),
                                             self.path)
            self._ambiguous = {}
            self.image_topic = self._choose("camera")
            self.lidar_topic = self._choose("lidar")
            self.camera_info_topic = self._choose("camera_info")
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        for gen in list(self._live):  # iterators still open: release their files now
            gen.close()
        if self._source is not None:
            self._source.close()
        if self._unpacked is not None:
            self._unpacked.cleanup()
        self._source = self._unpacked = None
        self._forget_stamps()
        self._sizes = {}

    def _topic_list(self) -> str:
        return ", ".join(f"{t.name} ({t.msgtype})" for t in self._topics.values()) or "none"

    def _choose(self, kind: str) -> str | None:
        """The topic of ``kind`` to read: the one asked for, else the only one with messages
        (a topic recorded but never published is no candidate), else the image topic's
        sibling ``camera_info``, else ``None`` (noted in ``ambiguous_topics`` if several)."""
        wanted = self._want[kind]
        candidates = [t.name for t in self._topics.values() if t.kind == kind and t.count > 0]
        if wanted is not None:
            topic = self._topics.get(wanted)
            if topic is None:
                message = (
                    f"{kind} topic {wanted!r} is not in the bag; topics: {self._topic_list()}"
                )
                raise RecordingError(message, path=self.path)
            if topic.kind != kind and (kind, topic.kind) != ("camera", "lidar_image"):
                what = ("a depth image (compressedDepth), not a camera picture"
                        if topic.kind == "depth" else f"not a {kind} type")
                message = f"{kind} topic {wanted!r} carries {topic.msgtype!r}, {what}"
                raise RecordingError(message, path=self.path)
            return wanted
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        infos = {t.name for t in self._topics.values() if t.kind == "camera_info" and t.count > 0}
        chosen = pick_among(kind, candidates, infos, self.image_topic)
        if chosen is not None:
            log.info("%s: %s topic %r chosen of %r", self.path, kind, chosen, sorted(candidates))
            return chosen
        option = {"camera": "image_topic", "lidar": "lidar_topic"}.get(kind, "camera_info_topic")
        self._ambiguous[kind] = (
            f"several {kind} topics {sorted(candidates)!r}; choose one with "
            f"--{option.replace('_', '-')} (a launch file's {option}:=)"
        )
        return None

    @property
    def ambiguous_topics(self) -> dict[str, str]:
        """Kinds (camera, lidar, camera_info) with several topics and none chosen: why."""
        return dict(self._ambiguous)

    def _check_chosen(self, *kinds: str) -> None:
        """Raise the deferred "several topics" error of the first ambiguous ``kinds``."""
        for kind in kinds:
            if kind in self._ambiguous:
                raise RecordingError(self._ambiguous[kind], path=self.path)

    def require_camera(self) -> None:
        """Raise :class:`RecordingError` when no image topic with messages is chosen: several
        and none named, none in the bag (the message lists the bag's topics), or the image
        topic has no message (as the base class refuses a camera stream of count 0)."""
        self._check_open()
        self._check_chosen("camera")
        if self.image_topic is None:
            empty = sorted(t.name for t in self._topics.values() if t.kind == "camera")
            lidar = sorted(t.name for t in self._topics.values() if t.kind == "lidar_image")
            message = (
                f"no image topic with messages in the bag ({empty!r} have none); "
                f"topics: {self._topic_list()}" if empty
                else f"no camera in the bag: its image topics {lidar!r} are in its lidar's "
                "frame, the lidar's own images (name one with --image-topic to read it)"
                if lidar else f"no image topic in the bag; topics: {self._topic_list()}"
            )
            raise RecordingError(message, path=self.path)
        if self._topics[self.image_topic].count == 0:
            message = f"image topic {self.image_topic!r} has no messages"
            raise RecordingError(message, path=self.path)

    # ------------------------------------------------------------------ reading

    def _messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        """``(stamp_ns, message)`` of one topic from a reader of its own, which closing the
        recording closes too (a later ``next`` then raises "not open")."""
        gen = self._read_messages(topic)
        self._live.add(gen)
        return gen

    def _read_messages(self, topic: str) -> Generator[tuple[int, Any], None, None]:
        meta = self._topics[topic]
        receive = self._stamps == "receive"
        watch = self._watch(topic) if meta.kind in _WATCHED_KINDS and not receive else None
        source = self._new_source()
        prev: int | None = None
        with closing(source):
            try:
                for index, (_, log_ns, raw) in enumerate(source.raw_messages({topic})):
                    msg = source.deserialize(raw, meta.msgtype)
                    if receive:
                        yield log_ns, msg
                        continue
                    header_ns = stamp_ns_of(msg) if hasattr(msg, "header") else 0
                    if watch is None:
                        yield (header_ns or log_ns), msg
                        continue
                    prev = watch.stamp(index, header_ns, log_ns, prev)
                    yield prev, msg
            except ROSBAGS_ERRORS as exc:
                raise RecordingError(f"cannot read topic {topic!r}: {exc}", path=self.path) from exc

    def _source_name(self, topic: str) -> str:
        return f"{self.path}:{topic}"

    def _watch(self, topic: str) -> StampWatch:
        """``topic``'s stamp checks, over every pass (:meth:`info` checks its first stamp)."""
        return self._watches.setdefault(topic, StampWatch(self._source_name(topic)))

    def camera_frames(self) -> Iterator[CameraFrame]:
        """Frames of ``image_topic`` in bag order, one decoded at a time."""
        return self.camera_frames_from(_FIRST_NS)

    def camera_frames_from(self, start_ns: int) -> Iterator[CameraFrame]:
        """Frames stamped at or after ``start_ns``; the earlier ones are read for their stamp
        (and frame number) only, not decoded."""
        self._check_open()
        self._check_chosen("camera")
        if self.image_topic is None:
            return
        source = self._source_name(self.image_topic)
        sizes = self._sizes.setdefault(self.image_topic, SizeWatch(
            source, expected_from=f"the CameraInfo of {self.camera_info_topic!r}"))
        cameras = None
        if self._rig_done and self._camera is not None:
            cameras = self._over_time()[0]  # read here, as the frames are (a replay counts it)
        for index, (stamp_ns, msg) in enumerate(self._messages(self.image_topic)):
            self._frame_stamps[index] = stamp_ns
            if stamp_ns < start_ns:
                continue
            frame = CameraFrame(
                stamp_ns=stamp_ns,
                image=image_from_msg(msg, source),
                frame_id=str(msg.header.frame_id) or "camera",
                index=index,
                source=source,
            )
            if cameras is not None:  # the camera in force at the frame: does it fit?
                camera = cameras.at(stamp_ns)
                sizes.expected_size = None if camera is None else camera.image_size
            sizes.check(frame)
            yield frame
        self._check_open()  # the loop also ends when the recording is closed under it

    def lidar_scans(self) -> Iterator[LidarScan]:
        """Scans of ``lidar_topic`` in bag order, one decoded at a time."""
        return self.lidar_scans_from(_FIRST_NS)

    def lidar_scans_from(self, start_ns: int) -> Iterator[LidarScan]:
        """Scans stamped at or after ``start_ns``; the earlier ones are not decoded."""
        self._check_open()
        self._check_chosen("lidar")
        if self.lidar_topic is None:
            return
        source = self._source_name(self.lidar_topic)
        for index, (stamp_ns, msg) in enumerate(self._messages(self.lidar_topic)):
            if stamp_ns < start_ns:
                continue
            yield LidarScan(
                stamp_ns=stamp_ns,
                points=points_from_pointcloud2(msg, source),
                frame_id=str(msg.header.frame_id) or "velodyne",
                index=index,
                source=source,
            )
        self._check_open()

    def info(self) -> RecordingInfo:
        """Every topic with kind, type, count and time span (cached).

        Counts come from the bag's index (ROS 1 connection and chunk records, ROS 2
        ``metadata.yaml``/sqlite counts, the MCAP summary) and each span from a topic's
        first and last message, so a multi-GB bag is not read whole. Sensor streams
        (camera, lidar, camera_info) span the header stamps of those two messages (the log
        time for a zero stamp; one far from its log time is warned about); every other topic
        spans its log (receive) times, and so does every topic with ``stamps="receive"``.
        """
        self._check_open()
        if self._info is None:
            self._info = RecordingInfo(str(self.path), self.format, tuple(self._scan_streams()))
        return self._info

    def _scan_streams(self) -> list[StreamInfo]:
        source = self._new_source()
        spans: dict[str, tuple[int, int]] = {}
        with closing(source):
            try:
                for meta in self._topics.values():
                    ends = source.ends(meta.name)
                    if ends is None:
                        continue
                    stamps = [log_ns for log_ns, _ in ends]
                    if meta.kind in _SENSOR_KINDS and self._stamps == "header":
                        heads = [stamp_ns_of(source.deserialize(raw, meta.msgtype))
                                 for _, raw in ends]
                        stamps = [h or log_ns for h, log_ns in zip(heads, stamps, strict=True)]
                        if meta.kind in _WATCHED_KINDS:
                            self._watch(meta.name).stamp(0, heads[0], ends[0][0], None)
                    spans[meta.name] = (min(stamps), max(stamps))
            except ROSBAGS_ERRORS as exc:
                raise RecordingError(f"cannot scan bag: {exc}", path=self.path) from exc
        return [StreamInfo(t.name, t.kind, t.msgtype, t.count, *spans.get(t.name, (None, None)))
                for t in sorted(self._topics.values(), key=lambda t: t.name)]
