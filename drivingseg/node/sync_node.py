"""The sync node: camera frames and lidar scans paired by nearest stamp.

The pairing rule itself is :class:`drivingseg.sync.ApproximateTimeSync`; this node runs it
on ``/camera/image`` and ``/lidar/points`` and publishes ``/synced``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from drivingseg.node.messages import CameraImage, LidarCloud, SyncedFrames
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node, Subscription
from drivingseg.sync import ApproximateTimeSync

__all__ = ["SyncNode"]

log = logging.getLogger(__name__)


class SyncNode(Node):
    """Pairs ``/camera/image`` with ``/lidar/points`` by nearest stamp; publishes ``/synced``.

    The ``sync`` stage of a frame runs from its arrival here to the publication of its pair,
    so it includes waiting for the lidar scan (or, for a scan stamped after the frame, the
    next image) that decides the match; :mod:`drivingseg.sync` has the rule.
    """

    type_name = "sync"
    description = "approximate-time camera/lidar pairing"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("tolerance_ms", float, 50.0, "largest camera-lidar stamp difference paired", "ms",
              min=0.0, max=10_000.0),
        Param("lidar_min_period_ms", float, 0.0,
              "lidar period lower bound: decide a frame without waiting for the next scan "
              "(0 = learn it, or off with learn_lidar_period false)", "ms", min=0.0,
              max=10_000.0),
        Param("learn_lidar_period", bool, True,
              "without lidar_min_period_ms, bound the period by 0.45 x the shortest scan "
              "interval seen (after 2 intervals)"),
        Param("camera_min_period_ms", float, 0.0,
              "camera period lower bound: give a frame a scan stamped just after it without "
              "waiting for the next image (0 = learn it, or off with learn_camera_period "
              "false)", "ms", min=0.0, max=10_000.0),
        Param("learn_camera_period", bool, True,
              "without camera_min_period_ms, bound the period by 0.45 x the shortest frame "
              "interval seen (after 2 intervals)"),
        Param("queue_size", int, 10, "frames held per stream while waiting for a match",
              "messages", min=1, max=1000),
        Param("keep_unmatched", bool, False, "publish camera frames without a scan too"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.camera_sub = self.create_subscription("/camera/image", CameraImage, self.on_camera)
        self.lidar_sub = self.create_subscription("/lidar/points", LidarCloud, self.on_lidar)
        self.pub = self.create_publisher("/synced", SyncedFrames)
        self.sync: ApproximateTimeSync[CameraImage, LidarCloud] = ApproximateTimeSync(
            int(self.p["tolerance_ms"] * 1e6),
            queue_size=self.p["queue_size"],
            lidar_min_period_ns=int(self.p["lidar_min_period_ms"] * 1e6),
            learn_lidar_period=self.p["learn_lidar_period"],
            camera_min_period_ns=int(self.p["camera_min_period_ms"] * 1e6),
            learn_camera_period=self.p["learn_camera_period"],
            keep_unmatched=self.p["keep_unmatched"],
        )
        self._arrived: dict[int, int] = {}
        self.left_waiting = 0
        """Frames the synchroniser still held when the node ended (see deactivate)."""
        self.camera_only = False  # set in ready() when the lidar source has no scans

    def choose(self) -> Subscription[Any] | None:
        """As fast as possible, merge the two streams by stamp (as recorded), not by arrival."""
        if self.context.overflow != "block":
            return super().choose()
        waiting = [s for s in self.subscriptions if len(s) or not s.topic.closed]
        if not waiting or any(not len(s) for s in waiting):
            return None
        return min(waiting, key=lambda s: s.head().stamp_ns)

    def setup(self) -> None:
        """No lidar publisher: camera only, as a recording without scans (else every frame
        was dropped here)."""
        topic = self.lidar_sub.topic
        if not topic.publishers:
            log.warning("%s: no node publishes %s: camera only, frames go on without a scan",
                        self.name, topic.name)
            self.context.lidar_absent.add(topic.name)

    def ready(self) -> None:
        self.camera_only = self.lidar_sub.topic.name in self.context.lidar_absent

    def on_camera(self, msg: CameraImage) -> None:
        if self.camera_only:  # the lidar source has no scans: nothing to wait for
            self.pub.publish(SyncedFrames(msg, None, msg.timing.with_stage("sync", 0)))
            return
        self._arrived[msg.timing.seq] = time.perf_counter_ns()
        self._emit(self.sync.add_camera(msg))
        # Frames decided without a pair are never emitted (unless keep_unmatched): keep the
        # arrival times of the frames the synchroniser can still hold, the newest ones.
        while len(self._arrived) > self.p["queue_size"] + 1:
            del self._arrived[next(iter(self._arrived))]

    def on_lidar(self, msg: LidarCloud) -> None:
        self._emit(self.sync.add_lidar(msg))

    def on_inputs_closed(self) -> None:
        self._emit(self.sync.flush())

    def _emit(self, pairs: list[Any]) -> None:
        for pair in pairs:
            cam: CameraImage = pair.camera
            now = time.perf_counter_ns()
            arrived = self._arrived.pop(cam.timing.seq, now)
            for seq in [s for s in self._arrived if s < cam.timing.seq]:
                del self._arrived[seq]
            timing = cam.timing.with_stage("sync", now - arrived)
            self.pub.publish(SyncedFrames(cam, pair.lidar, timing))

    def deactivate(self) -> None:
        """Count the frames still waiting for a pairing decision when the node ended
        without flushing (an aborted run, a failure): they will get no mask."""
        self.left_waiting = self.sync.pending_cameras
        super().deactivate()

    def drops(self) -> dict[str, int]:
        s = self.sync.stats
        out = super().drops()
        out[f"{self.name}: waiting for a pairing when the node ended"] = self.left_waiting
        if not self.p["keep_unmatched"]:  # else frames without a scan go on, without one
            out[f"{self.name}: camera frame without a lidar scan in tolerance"] = (
                s.unmatched_camera)
            out[f"{self.name}: camera queue full waiting for lidar (scans late or stalled)"] = (
                s.dropped_queue_camera)
        out[f"{self.name}: camera stamp out of order"] = s.out_of_order_camera
        return out

    def losses(self) -> dict[str, dict[str, int]]:
        """Lidar scans the synchroniser dropped for a stamp out of order or from its full
        lidar queue (the frames they belonged to then go without one), beside those lost
        at the queues (a scan left without a camera frame is not lost: a 10 Hz lidar
        beside a 5 Hz camera leaves every other one)."""
        out = super().losses()
        s = self.sync.stats
        scans = out.setdefault(LidarCloud.lost_as, {})
        scans[f"{self.name}: lidar stamp out of order"] = s.out_of_order_lidar
        scans[f"{self.name}: lidar queue full waiting for camera frames (frames late or "
              "stalled)"] = s.dropped_queue_lidar
        return out
