"""Typed messages that travel on the node graph's topics.

Every message is a frozen dataclass that carries a :class:`Timing`: the sensor stamp of the
camera frame it derives from, the monotonic moment that frame became available, and the
time each stage spent on it. Messages share their arrays with the messages they derive
from (no copies); nobody writes into a published array.

A message lost at a queue counts as a dropped camera frame, except those of the types
that say what they are in ``lost_as`` and are reported apart: lidar scans and
diagnostics, which are not camera-derived, and masks and detections, which a frame only
gets once its mask is made (a mask lost at an output queue is a missing PNG or video
frame, not a frame without a mask: the masks and dropped frames add up to the frames in).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import CameraModel, Rig
from drivingseg.detect.box import Detection
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = [
    "DETECTION_STAGES",
    "STAGES",
    "CameraImage",
    "Detection",
    "Detections",
    "Diagnostics",
    "FusedInput",
    "LidarCloud",
    "Mask",
    "MaskTiming",
    "Message",
    "SyncedFrames",
    "Timing",
]

STAGES = ("read", "sync", "fusion", "inference", "publish")
"""Stages whose durations every mask reports, in pipeline order."""

DETECTION_STAGES = (*STAGES, "proposals")
"""Stages of a :class:`Detections` message: its mask's, then the proposals node's work
(``publish`` there is the mask's delivery to the proposals node)."""


@dataclass(frozen=True)
class Timing:
    """Where a frame's time went.

    ``available_ns`` is ``time.perf_counter_ns()`` at the moment the source had the frame
    (for replay at a rate: its scheduled release time; as fast as possible: when reading
    finished). ``stages`` holds ``(stage, duration_ns)`` pairs in the order they ran.
    """

    stamp_ns: int
    seq: int
    available_ns: int
    stages: tuple[tuple[str, int], ...] = ()

    def with_stage(self, stage: str, duration_ns: int) -> Timing:
        """A copy with ``stage`` appended (durations below 0 are clamped to 0)."""
        return replace(self, stages=(*self.stages, (stage, max(0, int(duration_ns)))))

    def stage_ns(self, stage: str) -> int:
        """Total time spent in ``stage`` (0 when it did not run)."""
        return sum(d for name, d in self.stages if name == stage)


@dataclass(frozen=True, eq=False)
class CameraImage:
    """A camera frame with its calibration (as ROS publishes Image with CameraInfo).
    ``camera_model`` is the frame's camera where there is no rig (a camera-only bag's
    CameraInfo), so that the recorder still writes its CameraInfo."""

    frame: CameraFrame
    rig: Rig | None
    timing: Timing
    camera_model: CameraModel | None = None

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True, eq=False)
class LidarCloud:
    """A lidar sweep (one lost at a queue is a lost scan, not a dropped camera frame)."""

    lost_as: ClassVar[str] = "lidar scans"
    scan: LidarScan
    timing: Timing

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True, eq=False)
class SyncedFrames:
    """A camera frame and the lidar scan paired with it (``None`` when unmatched and kept)."""

    camera: CameraImage
    lidar: LidarCloud | None
    timing: Timing

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True, eq=False)
class FusedInput:
    """Model input: the RGB frame and, when computed, lidar channels (4 x H x W float32)."""

    frame: CameraFrame
    scan: LidarScan | None
    channels: npt.NDArray[np.float32] | None
    rig: Rig | None
    timing: Timing
    camera_model: CameraModel | None = None
    """The camera without a rig, as in :class:`CameraImage`."""

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True, eq=False)
class Mask:
    """Per-pixel class ids of one frame (H x W uint8: 0 background, 1 road, 2 car).

    ``published_ns`` is when the segmentation node started publishing it; a subscriber
    measures the ``publish`` stage as its receive time minus that.

    The optional trailing fields let a downstream node (region proposals) work without
    copies: ``car_prob`` is the car class probability (H x W float32, ``None`` when not
    computed), ``scan`` and ``rig`` are the lidar sweep and calibration of the fused input
    (shared references, ``None`` when the frame had none).
    """

    lost_as: ClassVar[str] = "masks"
    frame: CameraFrame
    class_ids: npt.NDArray[np.uint8]
    classes: tuple[str, ...]
    timing: Timing
    published_ns: int
    car_prob: npt.NDArray[np.float32] | None = None
    scan: LidarScan | None = None
    rig: Rig | None = None
    camera_model: CameraModel | None = None
    """The camera without a rig, as in :class:`CameraImage`."""

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True)
class MaskTiming:
    """What a latency measurement needs of a :class:`Mask`: its timing, when it was
    published and its frame's index, without the pixels (a few hundred bytes where a KITTI
    mask with its frame, probabilities and scan holds about 5.6 MB)."""

    timing: Timing
    published_ns: int
    frame_index: int

    @classmethod
    def of(cls, mask: Mask) -> MaskTiming:
        return cls(mask.timing, mask.published_ns, mask.frame.index)

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one frame."""

    lost_as: ClassVar[str] = "detections"
    detections: tuple[Detection, ...]
    timing: Timing

    @property
    def stamp_ns(self) -> int:
        return self.timing.stamp_ns


@dataclass(frozen=True)
class Diagnostics:
    """Health report (diagnostic_msgs/DiagnosticStatus in spirit): level 0 OK, 1 WARN, 2 ERROR."""

    lost_as: ClassVar[str] = "diagnostics messages"
    stamp_ns: int
    name: str
    level: int
    message: str
    values: tuple[tuple[str, str], ...] = field(default=())


Message = CameraImage | LidarCloud | SyncedFrames | FusedInput | Mask | Detections | Diagnostics
