"""Source nodes: the camera frames and lidar scans of a recording, on ``/camera/image`` and
``/lidar/points``.

Pacing, windows, loops and the checks every source makes at start are in their base,
:class:`~drivingseg.node.recording_source.RecordingSource` (its module doc has the rules).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from drivingseg.calibration.load import load_rig_any
from drivingseg.calibration.types import Rig
from drivingseg.errors import DrivingsegError
from drivingseg.fusion.projection import calibration_offset_px
from drivingseg.node.messages import CameraImage, LidarCloud, Timing
from drivingseg.node.params import Param
from drivingseg.node.recording_source import RecordingSource
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = ["CameraSource", "LidarSource", "RecordingSource"]

log = logging.getLogger(__name__)


class CameraSource(RecordingSource):
    """Publishes the recording's camera frames (with the rig) on ``/camera/image``."""

    type_name = "camera_source"
    description = "camera frames of a recording, paced by their stamps"
    parameters = (
        *RecordingSource.parameters,
        Param("calibration", str, "", "rig file overriding the recording's ('' = recording's)"),
    )
    is_frame_source = True
    stream_kind = "camera"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_publisher("/camera/image", CameraImage)
        self.rig: Rig | None = None

    def setup(self) -> None:
        super().setup()
        assert self.recording is not None
        try:
            self.recording.require_camera()
        except DrivingsegError as exc:
            raise self.config_error(f"{exc} (input {self.p['input']!r})", "input") from exc
        if self.p["calibration"]:
            try:
                self.rig = load_rig_any(self.p["calibration"], camera=self.p["camera"])
            except DrivingsegError as exc:
                raise self.config_error(str(exc), "calibration") from exc
            self._compare_with_recorded(self.rig)
        else:
            self.rig = self.recording.rig()
            if self.rig is None:
                note = getattr(self.recording, "rig_note", "")
                log.warning("%s: the recording %r has no calibration%s: its lidar cannot be "
                            "projected, so no lidar channels, and car proposals get no range "
                            "and no depth split (give one with calibration:=PATH)", self.name,
                            self.p["input"], f" ({note})" if note else "")
        size = ((self.rig.camera.height, self.rig.camera.width) if self.rig is not None
                else self._first_frame_size())
        if size is not None:
            self.context.frame_sizes[self.name] = size

    def _compare_with_recorded(self, rig: Rig) -> None:
        """Warn when ``calibration`` is far from the recording's own one for this camera.

        A rig YAML names no KITTI camera, so ``camera:=3`` with camera 2's rig file used to
        put the lidar ~40 px off on camera 3's frames (and record the wrong CameraInfo),
        silently. A refined calibration of the same camera stays within a few pixels.
        """
        assert self.recording is not None
        try:
            own = self.recording.rig()
        except DrivingsegError:
            return
        same_size = own is not None and (own.camera.width, own.camera.height) == (
            rig.camera.width, rig.camera.height)
        if own is None or not same_size:
            return
        offset_px = calibration_offset_px(own, rig)
        if offset_px > self.CALIBRATION_WARN_PX:
            log.warning("%s: calibration %r puts lidar points a median %.0f px from where the "
                        "recording's own calibration for camera %d puts them; check that it is "
                        "this camera's rig", self.name, self.p["calibration"], offset_px,
                        self.p["camera"])

    CALIBRATION_WARN_PX = 10.0
    """Median offset (px) from the recorded calibration above which ``calibration`` warns."""

    def _first_frame_size(self) -> tuple[int, int] | None:
        """(height, width) of the first camera frame, for a recording without calibration."""
        assert self.recording is not None
        try:
            first = next(iter(self.recording.camera_frames()), None)
        except DrivingsegError:
            return None  # the replay reports it on its own
        return None if first is None else (first.height, first.width)

    def items(self) -> Iterator[CameraFrame]:
        assert self.recording is not None
        return iter(self.recording.camera_frames_from(self._window_ns[0]))

    def message(self, item: CameraFrame, timing: Timing) -> CameraImage:
        rec = self.recording
        rig = self.rig if self.p["calibration"] or rec is None else rec.frame_rig(item.index)
        camera = rec.frame_camera(item.index) if rig is None and rec is not None else None
        return CameraImage(item, rig, timing, camera)


class LidarSource(RecordingSource):
    """Publishes the recording's lidar scans on ``/lidar/points``.

    Once the camera sources have stopped it sends the first scan at or after their last
    frame (the one that decides that frame's pairing) and stops, so the launch files give
    ``max_frames`` to the camera only and a camera slower than the lidar keeps a scan for
    every frame.
    """

    type_name = "lidar_source"
    description = "lidar scans of a recording, paced by their stamps"
    stream_kind = "lidar"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_publisher("/lidar/points", LidarCloud)

    def setup(self) -> None:
        """Announce a recording without lidar scans (``GraphContext.lidar_absent``), so that
        the sync node passes its frames on without a scan rather than dropping them all: a
        camera-only recording is segmented by an RGB model, with a warning."""
        super().setup()
        assert self.recording is not None
        streams = self.recording.info().streams
        if not any(s.kind == "lidar" and s.count for s in streams):
            held = ", ".join(f"{s.name} ({s.kind}, {s.count})" for s in streams) or "nothing"
            log.warning("%s: the recording %r has no lidar scans (it holds %s): camera only, "
                        "frames go on without a scan (no lidar channels or proposal ranges)",
                        self.name, self.p["input"], held)
            self.context.lidar_absent.add(self.publishers[0].topic.name)

    def items(self) -> Iterator[LidarScan]:
        assert self.recording is not None
        return iter(self.recording.lidar_scans_from(self._window_ns[0]))

    def message(self, item: LidarScan, timing: Timing) -> LidarCloud:
        return LidarCloud(item, timing)
