"""The types of detection: the lidar a detector reads and the detections it produces.

They live here, upstream of ``node/``, so detectors and their evaluation do not depend on
the node runtime; :mod:`drivingseg.node.messages` re-exports :class:`Detection`, and
:mod:`drivingseg.detect.proposals` :class:`LidarInImage`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError
from drivingseg.fusion.projection import scale_rig, visible_points

__all__ = ["Detection", "LidarInImage"]


@dataclass(frozen=True)
class Detection:
    """One detected object: a box in image pixels and, when lidar saw it, where it is.

    ``box_xyxy_px`` is (left, top, right, bottom) in the camera image; ``score`` in [0, 1]
    (for region proposals: the mean car probability inside the blob). ``range_m`` is the
    median Euclidean distance from the lidar of the object's points inside the box (for
    region proposals: its depth cluster, without outliers and points on the ground), and
    ``centroid_cam_m`` their median (x, y, z) in the camera frame (x right, y down,
    z forward; KITTI's rectified camera frame for KITTI rigs); both ``None`` and
    ``n_points`` 0 when no such point fell inside.
    """

    label: str
    score: float
    box_xyxy_px: tuple[float, float, float, float]
    range_m: float | None = None
    centroid_cam_m: tuple[float, float, float] | None = None
    n_points: int = 0

    def __post_init__(self) -> None:
        """ConfigError for a box that is not (left, top, right, bottom): an (x, y, w, h)
        box narrower than its left edge scored as nothing, silently, in box AP."""
        box = self.box_xyxy_px
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError) as exc:
            message = (f"Detection box_xyxy_px must be 4 numbers (left, top, right, "
                       f"bottom), got {box!r}")
            raise ConfigError(message) from exc
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
            message = (f"Detection box_xyxy_px must be finite (left, top, right, bottom) "
                       f"with right >= left and bottom >= top, got {box!r} (an x, y, "
                       "width, height box? convert it: (x, y, x + w, y + h))")
            raise ConfigError(message)
        if not math.isfinite(self.score):
            raise ConfigError(f"Detection score must be a finite number, got {self.score!r}")
        object.__setattr__(self, "box_xyxy_px", (x1, y1, x2, y2))


@dataclass(frozen=True, eq=False)
class LidarInImage:
    """Lidar points visible in one camera image of ``width`` x ``height`` pixels: pixel
    rows/cols (int64, inside that image), range from the lidar (m), xyz in the camera frame
    (N x 3, m).

    The camera frame is the rectified one (``R @ T_cam_velo @ p``) for rectified images,
    the raw camera frame (``T_cam_velo @ p``) otherwise: x right, y down, z forward.
    :func:`~drivingseg.detect.proposals.propose_regions` refuses a mask of another size
    than the image.
    """

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    range_m: npt.NDArray[np.float32]
    xyz_cam_m: npt.NDArray[np.float32]
    width: int
    height: int

    def __post_init__(self) -> None:
        n = int(self.rows.shape[0])
        for name, pixels in (("rows", self.rows), ("cols", self.cols)):
            if pixels.dtype.kind not in "iu":
                message = (f"LidarInImage {name} must be integer pixel indices, got dtype "
                           f"{pixels.dtype} (round the projection: floor(v + 0.5))")
                raise ConfigError(message)
        shapes = (self.cols.shape, self.range_m.shape, self.xyz_cam_m.shape)
        if shapes != ((n,), (n,), (n, 3)):
            message = (
                f"LidarInImage arrays disagree: rows {self.rows.shape!r}, cols "
                f"{self.cols.shape!r}, range_m {self.range_m.shape!r}, xyz_cam_m "
                f"{self.xyz_cam_m.shape!r} (want N, N, N, N x 3)"
            )
            raise ConfigError(message)
        for name, value in (("width", self.width), ("height", self.height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                message = f"LidarInImage {name} must be a positive integer, got {value!r}"
                raise ConfigError(message)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        for name, pixels, size in (("rows", self.rows, self.height), ("cols", self.cols,
                                                                      self.width)):
            if n and (int(pixels.min()) < 0 or int(pixels.max()) >= size):
                message = (f"LidarInImage {name} must lie in 0..{size - 1} for a "
                           f"{self.width}x{self.height} image, got "
                           f"{int(pixels.min())!r}..{int(pixels.max())!r}")
                raise ConfigError(message)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def from_scan(cls, points: npt.ArrayLike, rig: Rig,
                  image_size: tuple[int, int] | None = None) -> LidarInImage:
        """Points (N x >=3, lidar frame) that land in ``rig.camera``'s image, or in that
        image resized to ``image_size`` (width, height; the rig is scaled with
        :func:`~drivingseg.fusion.projection.scale_rig`)."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 3:
            message = f"points must be N x 3 or more (x, y, z, ...), got shape {pts.shape!r}"
            raise ConfigError(message)
        if image_size is not None:
            rig = scale_rig(rig, *image_size)
        idx, rows, cols, _, _ = visible_points(pts[:, :4] if pts.shape[1] > 4 else pts, rig)
        xyz = pts[idx, :3].astype(np.float64)
        T = rig.T_cam_velo.matrix
        R = T[:3, :3]
        if rig.camera.image_rectified:
            R = rig.camera.R @ R
            t = rig.camera.R @ T[:3, 3]
        else:
            t = T[:3, 3]
        cam = xyz @ R.T + t
        return cls(
            rows=np.asarray(rows, dtype=np.int64),
            cols=np.asarray(cols, dtype=np.int64),
            range_m=np.linalg.norm(xyz, axis=1).astype(np.float32),
            xyz_cam_m=cam.astype(np.float32),
            width=rig.camera.width,
            height=rig.camera.height,
        )
