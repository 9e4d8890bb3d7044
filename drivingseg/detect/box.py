"""The detection type that detectors produce and the node publishes.

It lives here, upstream of ``node/``, so detectors and their evaluation do not depend on
the node runtime; :mod:`drivingseg.node.messages` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Detection"]


@dataclass(frozen=True)
class Detection:
    """One detected object: a box in image pixels and, when lidar saw it, where it is.

    ``box_xyxy_px`` is (left, top, right, bottom) in the camera image; ``score`` in [0, 1]
    (for region proposals: the mean car probability inside the blob). ``range_m`` is the
    median Euclidean distance from the lidar of the points inside the box, and
    ``centroid_cam_m`` their median (x, y, z) in the camera frame (x right, y down,
    z forward; KITTI's rectified camera frame for KITTI rigs); both ``None`` and
    ``n_points`` 0 when no lidar point fell inside.
    """

    label: str
    score: float
    box_xyxy_px: tuple[float, float, float, float]
    range_m: float | None = None
    centroid_cam_m: tuple[float, float, float] | None = None
    n_points: int = 0
