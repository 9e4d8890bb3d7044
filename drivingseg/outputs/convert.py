"""Convert a recording (a KITTI raw drive, say) into one ROS 2 MCAP file.

Topics follow the naming of ``kitti2bag`` (the widely used KITTI raw -> rosbag
converter), so tools and launch files written for it find the streams:

- ``/kitti/camera_color_left/image_rect``: ``sensor_msgs/Image`` rgb8, one per frame;
- ``/kitti/camera_color_left/camera_info``: ``sensor_msgs/CameraInfo`` of the rig camera,
  one per image with the image's stamp;
- ``/kitti/velo/pointcloud``: ``sensor_msgs/PointCloud2``, float32 x, y, z, intensity;
- ``/tf_static``: one ``tf2_msgs/TFMessage`` holding ``T_cam_velo``.

(``camera_color_left`` is camera 2; :func:`kitti_topics` names the others.)

Differences from kitti2bag: the image topic is ``image_rect`` (KITTI ``_sync`` images are
rectified; kitti2bag calls them ``image_raw``); frame ids are the rig's (``cam0``-style
camera frame, ``velodyne``) instead of ``camera_color_left`` / ``velo_link``; ``/tf_static``
holds the single camera <- lidar transform (parent = camera frame, child = lidar frame,
transform = ``T_cam_velo``) instead of a ``base_link`` tree; no IMU/GPS topics. Without a
rig only images and point clouds are written.

Messages are written in stamp order (``Recording.messages()``), logged at their stamps.
If reading fails half way (a corrupt PNG, say) the MCAP written so far is finalised and
stays valid, then the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from drivingseg.errors import ConfigError
from drivingseg.outputs.mcap import Ros2McapWriter
from drivingseg.sensors.base import Recording
from drivingseg.sensors.frames import CameraFrame, LidarScan

__all__ = ["KITTI_CAMERA_NAMES", "ConvertStats", "McapTopics", "convert_to_mcap", "kitti_topics"]

KITTI_CAMERA_NAMES = {
    0: "camera_gray_left",
    1: "camera_gray_right",
    2: "camera_color_left",
    3: "camera_color_right",
}
"""kitti2bag's names of the four KITTI cameras (``image_0N``)."""

Message = CameraFrame | LidarScan
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


def _limited(messages: Iterator[Message], max_frames: int | None) -> Iterator[Message]:
    """The first ``max_frames`` camera frames and the first ``max_frames`` lidar scans."""
    if max_frames is None:
        yield from messages
        return
    n_cam = n_lidar = 0
    for msg in messages:
        if n_cam >= max_frames and n_lidar >= max_frames:
            return
        if isinstance(msg, CameraFrame):
            if n_cam < max_frames:
                n_cam += 1
                yield msg
        elif n_lidar < max_frames:
            n_lidar += 1
            yield msg


def convert_to_mcap(
    recording: Recording,
    out_path: str | PathLike[str],
    *,
    topics: McapTopics | None = None,
    max_frames: int | None = None,
    progress: ProgressWrapper | None = None,
    compression: str = "zstd",
) -> ConvertStats:
    """Write ``recording`` (open) to ``out_path`` as a ROS 2 MCAP; an existing file is replaced.

    ``max_frames`` keeps the first N camera frames and the first N lidar scans.
    ``progress`` wraps the message stream (e.g. a progress bar); it sees camera frames
    and lidar scans in stamp order.
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames!r}")
    names = topics or McapTopics()
    rig = recording.rig()
    camera_frame = rig.camera_frame if rig is not None else None
    lidar_frame = rig.lidar_frame if rig is not None else None
    first_ns: int | None = None
    last_ns: int | None = None

    stream: Iterable[Message] = _limited(recording.messages(), max_frames)
    if progress is not None:
        stream = progress(stream)
    with Ros2McapWriter(Path(out_path), compression=compression) as writer:
        for msg in stream:
            if first_ns is None:
                first_ns = msg.stamp_ns
                if rig is not None:
                    writer.write_tf_static(rig.T_cam_velo, msg.stamp_ns, names.tf_static)
            last_ns = msg.stamp_ns
            if isinstance(msg, CameraFrame):
                writer.write_image(names.image, msg, frame_id=camera_frame)
                if rig is not None:
                    writer.write_camera_info(names.camera_info, rig.camera, msg.stamp_ns)
            else:
                writer.write_pointcloud(names.points, msg, frame_id=lidar_frame)
        counts = dict(writer.counts)
    return ConvertStats(path=str(out_path), counts=counts, first_ns=first_ns, last_ns=last_ns)
