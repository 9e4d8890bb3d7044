"""A bag's calibration over time: the camera of its CameraInfo and the lidar->camera
transform of its /tf_static, each as in force at a camera frame's stamp.

A converted KITTI object folder (one calibration per frame) writes a CameraInfo with every
image and a new /tf_static where the transform changes; a camera recalibrated mid-drive
does the same. Each frame gets the latest CameraInfo at or before its stamp and the
transform of the /tf_static messages up to its stamp (ROS semantics); frames before the
first get the first. Only the changes are kept, so a long bag costs little memory.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from drivingseg.calibration.types import CameraModel, Rig, RigidTransform
from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors.bag_tf import TfLookup, TfTree
from drivingseg.sensors.ros_msgs import camera_model_from_camera_info

if TYPE_CHECKING:
    from drivingseg.sensors.bag_sources import Topic

__all__ = ["BagCalibration", "Timeline", "camera_from_info", "camera_timeline", "tf_topics",
           "transform_timeline"]

log = logging.getLogger("drivingseg.sensors.bag")  # warnings about the bag being read

V = TypeVar("V")


@dataclass(frozen=True)
class Timeline(Generic[V]):
    """Values that change over a bag: ``values[i]`` holds from ``stamps_ns[i]`` (sorted)."""

    stamps_ns: tuple[int, ...]
    values: tuple[V, ...]

    def index_at(self, stamp_ns: int) -> int:
        """The index of the value in force at ``stamp_ns`` (the first before any)."""
        return max(bisect.bisect_right(self.stamps_ns, stamp_ns) - 1, 0)

    def at(self, stamp_ns: int) -> V:
        """The value in force at ``stamp_ns``: the latest at or before it, else the first."""
        return self.values[self.index_at(stamp_ns)]

    def __len__(self) -> int:
        return len(self.values)


def _field(msg: Any, name: str) -> Any:
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


def _info_key(msg: Any) -> tuple[Any, ...]:
    """What makes two CameraInfo messages the same camera (the stamp aside)."""
    mats = tuple(tuple(np.asarray(_field(msg, n), dtype=np.float64).ravel().tolist())
                 for n in ("k", "d", "r", "p"))
    roi = msg.roi
    return (int(msg.width), int(msg.height), str(msg.distortion_model),
            str(msg.header.frame_id), int(msg.binning_x), int(msg.binning_y),
            int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height), *mats)


def camera_from_info(msg: Any, source: str, image_topic: str | None) -> CameraModel | None:
    """The camera of a CameraInfo, ``None`` for an uncalibrated one (all-zero K). The
    images count as rectified when their topic name contains ``rect`` or the camera has no
    distortion."""
    if not np.any(np.asarray(_field(msg, "k"), dtype=np.float64)):
        return None
    camera = camera_model_from_camera_info(msg, source)
    rectified = "rect" in (image_topic or "") or not camera.has_distortion
    return camera_model_from_camera_info(msg, source, image_rectified=rectified)


def camera_timeline(messages: Iterable[tuple[int, Any]], source: str, image_topic: str | None,
                    first: CameraModel | None) -> Timeline[CameraModel | None]:
    """The cameras of a CameraInfo topic's ``(stamp_ns, message)``, one per change; the
    first message's is ``first`` (already built)."""
    stamps: list[int] = []
    values: list[CameraModel | None] = []
    last: tuple[Any, ...] | None = None
    for stamp_ns, msg in messages:
        key = _info_key(msg)
        if key == last:
            continue
        last = key
        stamps.append(stamp_ns)
        values.append(camera_from_info(msg, source, image_topic) if values else first)
    return Timeline(tuple(stamps), tuple(values))


def transform_timeline(static_messages: Iterable[tuple[int, Any]], source: str,
                       lookup: Callable[[TfTree], RigidTransform | None],
                       dynamic: TfTree | None = None) -> Timeline[RigidTransform]:
    """The transform ``lookup`` finds after each /tf_static ``(stamp_ns, message)``, one
    per change (a message that completes no chain adds none); ``dynamic``'s fixed /tf
    links complete the chains as they did for the rig."""
    tree = TfTree()
    if dynamic is not None:
        tree.dynamic = dynamic.dynamic
    stamps: list[int] = []
    values: list[RigidTransform] = []
    for stamp_ns, msg in static_messages:
        tree.add(msg, source, static=True)
        T = lookup(tree)
        if T is None or (values and np.array_equal(T.matrix, values[-1].matrix)):
            continue
        stamps.append(stamp_ns)
        values.append(T)
    return Timeline(tuple(stamps), tuple(values))


def tf_topics(names: Iterable[str], sensor_topic: str) -> dict[str, str]:
    """The bag's ``tf_static`` and ``tf`` topics of ``names``: ``/tf_static`` and ``/tf``,
    else a namespace's (``/robot1/tf_static``, as a namespaced robot remaps them): the one
    whose namespace holds ``sensor_topic``, or the only one."""
    out = {}
    for kind in ("tf_static", "tf"):
        found = [n for n in names if n.rsplit("/", 1)[-1] == kind]
        mine = [n for n in found if sensor_topic.startswith(n[: -len(kind)])]
        pick = ([n for n in found if n.lstrip("/") == kind] or (mine if len(mine) == 1 else [])
                or (found if len(found) == 1 else []))
        if pick:
            out[kind] = pick[0]
    return out


class BagCalibration:
    """The calibration half of :class:`~drivingseg.sensors.bag.BagRecording`: its camera,
    rig and the per-frame rigs of a calibration that changes over the bag."""

    path: Path
    image_topic: str | None
    lidar_topic: str | None
    camera_info_topic: str | None
    rig_note: str
    _want: dict[str, str | None]
    _topics: dict[str, Topic]
    _rig: Rig | None
    _camera: CameraModel | None
    _rig_done: bool
    _calib_over_time: tuple[Timeline[CameraModel | None], Timeline[Rig]] | None
    _frame_stamps: dict[int, int]
    _frame_rigs: dict[tuple[int, int], Rig]
    _tf_static: list[tuple[int, Any]]
    _tf_dynamic: TfTree | None
    _tf_source: str
    _tf_over_time: Timeline[RigidTransform] | None

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...
        def _check_chosen(self, *kinds: str) -> None: ...
        def _source_name(self, topic: str) -> str: ...
        def _messages(self, topic: str) -> Iterator[tuple[int, Any]]: ...

    def rig(self) -> Rig | None:
        """Camera from the first CameraInfo and the lidar->camera transform from the tf tree
        in force at its stamp (:meth:`frame_rig` gives each frame its own).

        The transform chains /tf_static links; when they do not link the lidar frame (first
        PointCloud2 header) to the camera frame, /tf links that never move over the bag
        complete the chain (a moving link, odometry say, never does). ``None`` without a
        CameraInfo topic, a lidar topic or such a chain, when the CameraInfo is an
        uncalibrated camera's (all-zero K, as drivers publish without a calibration file),
        and when a CameraInfo not named by ``camera_info_topic`` has another header frame
        than the images (another camera's); :attr:`rig_note` then says why. The images
        count as rectified when the image topic name contains ``rect`` or the camera has
        no distortion.
        """
        self._check_open()
        if not self._rig_done:
            self.rig_note = ""
            self._camera = self._build_camera()
            self._rig = None if self._camera is None else self._build_rig(self._camera)
            self._rig_done = True
        return self._rig

    def camera_model(self) -> CameraModel | None:
        """The camera of the first CameraInfo, with or without a lidar: a camera-only bag
        has no rig but keeps its intrinsics. ``None`` as for :meth:`rig` (``rig_note``)."""
        self.rig()
        return self._camera

    def frame_camera(self, index: int) -> CameraModel | None:
        """The camera of camera frame ``index``: its latest CameraInfo at or before its
        stamp (the first one for frames before it); ``None`` without :meth:`camera_model`."""
        if self.camera_model() is None:
            return None
        return self._over_time()[0].at(self._frame_stamp(index))

    def frame_rig(self, index: int) -> Rig | None:
        """The rig of camera frame ``index``: its :meth:`frame_camera` and the /tf_static
        transform in force at its stamp (a republished one applies from its stamp on)."""
        if self.rig() is None:
            return None
        stamp_ns = self._frame_stamp(index)
        cameras, rigs = self._over_time()
        rig = rigs.at(stamp_ns)
        camera = cameras.at(stamp_ns)
        if camera is None or camera is rig.camera:
            return None if camera is None else rig
        key = (cameras.index_at(stamp_ns), rigs.index_at(stamp_ns))
        found = self._frame_rigs.get(key)  # one object per change: nodes cache by identity
        if found is None:
            found = self._frame_rigs[key] = self._make_rig(camera, rig.T_cam_velo)
        return found

    def _frame_stamp(self, index: int) -> int:
        """The stamp of camera frame ``index``, as :meth:`camera_frames` yields it (the image
        topic is read for it when the frames were not)."""
        if index not in self._frame_stamps and self.image_topic is not None:
            for i, (stamp_ns, _) in enumerate(self._messages(self.image_topic)):
                self._frame_stamps[i] = stamp_ns
        if index not in self._frame_stamps:
            message = (f"no camera frame {index!r} on image topic {self.image_topic!r} "
                       f"({len(self._frame_stamps)} frames)")
            raise RecordingError(message, path=self.path)
        return self._frame_stamps[index]

    def _over_time(self) -> tuple[Timeline[CameraModel | None], Timeline[Rig]]:
        """The cameras of every CameraInfo and the rigs of every /tf_static, one per change
        (read once; a topic of one message is not read again)."""
        if self._calib_over_time is not None:
            return self._calib_over_time
        rig = self.rig()
        assert self.camera_info_topic is not None
        topic = self.camera_info_topic
        first_ns = next(iter(self._first_stamped(topic) or (0,)))
        cameras: Timeline[CameraModel | None] = Timeline((first_ns,), (self._camera,))
        if self._topics[topic].count > 1:
            cameras = camera_timeline(self._messages(topic), self._source_name(topic),
                                      self.image_topic, self._camera)
            if len(cameras) > 1:
                log.info("%s: the camera of %r changes %d times; each frame gets the "
                         "CameraInfo in force at its stamp", self.path, topic, len(cameras) - 1)
        rigs: Timeline[Rig] = Timeline((first_ns,), () if rig is None else (rig,))
        if rig is not None and self._tf_over_time is not None:
            transforms = self._tf_over_time
            rigs = Timeline(transforms.stamps_ns, tuple(
                rig if T is rig.T_cam_velo else self._make_rig(rig.camera, T)
                for T in transforms.values))
        self._calib_over_time = (cameras, rigs)
        return self._calib_over_time

    def _transforms(self, lookup: TfLookup, target: str,
                    source_frame: str) -> Timeline[RigidTransform]:
        """The lidar->camera transform after each /tf_static message that changes it
        (``lookup``'s alone when it never changes)."""
        assert lookup.transform is not None
        with_tf = self._tf_dynamic is not None
        transforms = transform_timeline(
            self._tf_static, self._tf_source,
            lambda tree: tree.lookup(target, source_frame, with_tf=with_tf).transform,
            self._tf_dynamic)
        if len(transforms) <= 1:
            return Timeline((0,), (lookup.transform,))
        log.warning("%s: /tf_static changes the lidar->camera transform %d times over the bag; "
                    "each frame gets the one in force at its stamp", self.path,
                    len(transforms) - 1)
        return transforms

    def _make_rig(self, camera: CameraModel, T_cam_velo: RigidTransform) -> Rig:
        try:
            return Rig(name=self.path.stem, camera=camera, T_cam_velo=T_cam_velo,
                       path=str(self.path))
        except CalibrationError as exc:
            raise RecordingError(f"bad rig from bag: {exc.message}", path=self.path) from exc

    def _first_stamped(self, topic: str) -> tuple[int, Any] | None:
        return next(iter(self._messages(topic)), None)

    def _first(self, topic: str) -> Any:
        first = self._first_stamped(topic)
        return None if first is None else first[1]

    def _no_rig(self, why: str, *, warn: bool = False, hint: str = "") -> None:
        """Log ``why`` there is no rig and keep it as :attr:`rig_note` (``info`` shows it)."""
        (log.warning if warn else log.info)("%s: %s, so no rig%s", self.path, why, hint)
        self.rig_note = why + hint

    def _build_camera(self) -> CameraModel | None:
        self._check_chosen("camera", "lidar", "camera_info")
        if self.camera_info_topic is None:
            lidar = "" if self.lidar_topic is not None else " (and no lidar topic)"
            self._no_rig(f"no CameraInfo topic{lidar}")
            return None
        first = self._first_stamped(self.camera_info_topic)
        if first is None:
            self._no_rig(f"no message on CameraInfo topic {self.camera_info_topic!r}")
            return None
        if self._want["camera_info"] is None and not self._info_matches_images(first[1]):
            return None
        camera = camera_from_info(first[1], self._source_name(self.camera_info_topic),
                                  self.image_topic)
        if camera is None:
            self._no_rig(f"the CameraInfo of {self.camera_info_topic!r} has an all-zero K "
                         "(uncalibrated camera)", warn=True)
        return camera

    def _build_rig(self, camera: CameraModel) -> Rig | None:
        if self.lidar_topic is None:
            self._no_rig(f"no lidar topic (camera only: the camera {camera.frame_id!r} "
                         f"{camera.width}x{camera.height} of CameraInfo topic "
                         f"{self.camera_info_topic!r} is kept)")
            return None
        cloud_msg = self._first(self.lidar_topic)
        if cloud_msg is None:
            self._no_rig(f"no message on lidar topic {self.lidar_topic!r}")
            return None
        lidar_frame = str(cloud_msg.header.frame_id) or "velodyne"
        lookup = self._lookup_tf(camera.frame_id, lidar_frame)
        if lookup.transform is None:
            self._no_rig(lookup.note, warn=bool(lookup.moving))
            return None
        if lookup.note:
            log.info("%s: rig transform %s <- %s uses %s", self.path, camera.frame_id,
                     lidar_frame, lookup.note)
            self.rig_note = lookup.note
        self._tf_over_time = self._transforms(lookup, camera.frame_id, lidar_frame)
        first = self._first_stamped(self.camera_info_topic or "")
        return self._make_rig(camera, self._tf_over_time.at(first[0] if first else 0))

    def _info_matches_images(self, info_msg: Any) -> bool:
        """Whether the chosen CameraInfo is the chosen images' camera, by header frame (a
        leading ``/`` ignored): a lone CameraInfo of another camera of the rig would give
        the images a wrong camera and lidar transform. ``True`` when either frame is empty.
        """
        image_msg = self._first(self.image_topic) if self.image_topic is not None else None
        if image_msg is None:
            return True
        info_frame = str(info_msg.header.frame_id).lstrip("/")
        image_frame = str(image_msg.header.frame_id).lstrip("/")
        if info_frame and image_frame and info_frame != image_frame:
            self._no_rig(
                f"CameraInfo topic {self.camera_info_topic!r} is of frame {info_frame!r} but "
                f"image topic {self.image_topic!r} is of frame {image_frame!r}", warn=True,
                hint="; choose the CameraInfo of these images with camera_info_topic=")
            return False
        return True

    def _lookup_tf(self, target: str, source_frame: str) -> TfLookup:
        """``T_target_source`` through /tf_static (either way; :class:`.TfTree`); when it has
        no chain, also through the /tf links that never move over the bag (read whole, with
        a progress bar: a long bag's /tf has a million messages). Keeps the /tf_static
        messages and those /tf links for :meth:`frame_rig`."""
        tree = TfTree()
        topics = tf_topics([n for n, t in self._topics.items() if t.kind == "tf"],
                           self.image_topic or self.lidar_topic or "")
        self._tf_dynamic = None
        self._tf_static = []
        self._tf_source = self._source_name(topics.get("tf_static", "/tf_static"))
        for stamp_ns, msg in self._messages(topics["tf_static"]) if "tf_static" in topics else ():
            tree.add(msg, self._source_name(topics["tf_static"]), static=True)
            self._tf_static.append((stamp_ns, msg))
        lookup = tree.lookup(target, source_frame, with_tf=False)
        if lookup.transform is not None or "tf" not in topics:
            return lookup
        from drivingseg.cli._common import progress  # a long /tf: sensors must not import cli

        tf = self._topics[topics["tf"]]
        for _, msg in progress(self._messages(tf.name), total=tf.count, desc=f"read {tf.name}",
                               unit="message"):
            tree.add(msg, self._source_name(tf.name), static=False)
        self._tf_dynamic = tree
        return tree.lookup(target, source_frame, with_tf=True)
