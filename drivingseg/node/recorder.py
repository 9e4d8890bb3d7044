"""The ROS 2 MCAP recorder node: each mask with its image, CameraInfo, overlay, boxes and
diagnostics, logged at the sensor stamp.

Per mask it writes the input image (``sensor_msgs/Image`` rgb8, or with ``image_format``
``sensor_msgs/CompressedImage`` jpeg/png: at 1920 x 1200 the chunk compression of the
7 MB rgb8 image is the recorder's largest cost), the mask (``sensor_msgs/Image`` mono8
holding class ids 0/1/2), a colourised overlay (``sensor_msgs/CompressedImage`` jpeg, or
png with ``overlay_format``), the tracker's ``/diagnostics``
(``diagnostic_msgs/DiagnosticArray``) and the proposals' boxes
(``foxglove_msgs/ImageAnnotations`` on ``/segmentation/detections``: Foxglove's Image panel
draws them over the image or overlay), so Foxglove shows them in step; the rig's
lidar->camera transform on ``/tf_static`` (at the first frame with a calibration, again
should it change) and, with ``lidar``, each mask's scan (``sensor_msgs/PointCloud2``),
which makes the file a recording ``drivingseg replay`` reads back. The writer is closed in
``shutdown``, which runs after a signal too, so the file always gets its summary.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

import numpy as np

from drivingseg.calibration.types import RigidTransform
from drivingseg.errors import DrivingsegError
from drivingseg.node.detection import BOX_COLOUR_RGB, DETECTIONS_TOPIC, detection_text
from drivingseg.node.messages import Detections, Diagnostics, Mask
from drivingseg.node.outputs import _drop_if_unpublished, _out_path, colourise
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node
from drivingseg.outputs.mcap import BoxAnnotation, Ros2McapWriter
from drivingseg.sensors.frames import CameraFrame
from drivingseg.sensors.ros_msgs_write import header, image_to_msg, pointcloud2_to_msg

__all__ = ["McapRecorder"]

log = logging.getLogger(__name__)

_BOX_RGBA = (BOX_COLOUR_RGB[0] / 255.0, BOX_COLOUR_RGB[1] / 255.0, BOX_COLOUR_RGB[2] / 255.0,
             1.0)



_RECORDED_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                   "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2",
                   "tf2_msgs/msg/TFMessage",
                   "diagnostic_msgs/msg/DiagnosticArray", "foxglove_msgs/msg/ImageAnnotations")
"""What the MCAP recorder writes: their serialisers are made before the first frame."""


class McapRecorder(Node):
    """Records masks, images, CameraInfo, /tf_static, overlays, diagnostics, detections
    and (``lidar``) the scans into one ROS 2 MCAP file."""

    type_name = "mcap_recorder"
    description = ("ROS 2 MCAP of image, mask, overlay, diagnostics and detection boxes "
                   "(Foxglove opens it)")
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("path", str, "", "MCAP file to write"),
        Param("image", bool, True, "record the input image"),
        Param("image_format", str, "raw", "input image as sensor_msgs/Image rgb8 (raw) or as "
              "sensor_msgs/CompressedImage (jpeg at jpeg_quality, or lossless png): far "
              "cheaper to record at 1920 x 1200", choices=("raw", "jpeg", "png")),
        Param("overlay", bool, True, "record the colourised overlay (CompressedImage)"),
        Param("overlay_format", str, "jpeg", "overlay's CompressedImage format (jpeg at "
              "jpeg_quality, or lossless png)", choices=("jpeg", "png")),
        Param("image_topic", str, "/camera/image", "MCAP topic of the input image"),
        Param("mask_topic", str, "/segmentation/mask", "MCAP topic of the mask"),
        Param("overlay_topic", str, "/segmentation/overlay/compressed",
              "MCAP topic of the overlay"),
        Param("diagnostics_topic", str, "/diagnostics", "MCAP topic of the diagnostics"),
        Param("detections", bool, True, "record the boxes of /detections/cars (when published) "
              "as foxglove_msgs/ImageAnnotations"),
        Param("detections_topic", str, "/segmentation/detections",
              "MCAP topic of the detections' image annotations"),
        Param("camera_info_topic", str, "/camera/camera_info", "MCAP topic of the camera's "
              "CameraInfo, one per frame that has a calibration ('' = none)"),
        Param("tf_static_topic", str, "/tf_static", "MCAP topic of the lidar->camera "
              "transform (tf2_msgs/TFMessage, at the first frame with a calibration and "
              "again when it changes; '' = none)"),
        Param("lidar", bool, False, "record each mask's lidar scan (PointCloud2 in the rig's "
              "lidar frame, else the scan's own; with the image, CameraInfo and /tf_static "
              "the file replays)"),
        Param("lidar_topic", str, "/lidar/points", "MCAP topic of the lidar scans"),
        Param("frame_id", str, "", "header frame_id of images and CameraInfo ('' = the rig's "
              "camera frame; 'camera' for frames without a rig)"),
        Param("jpeg_quality", int, 85, "JPEG quality of the overlay and of an image_format "
              "jpeg image (OpenCV's scale)", "level", min=1, max=100),
        Param("compression", str, "zstd", "chunk compression", choices=("zstd", "lz4", "none")),
        Param("chunk_kb", int, 1024, "chunk size: a hard kill loses at most the open chunk",
              "KiB", min=1, max=1 << 20),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, self.on_mask)
        self.create_subscription("/diagnostics", Diagnostics, self.on_diagnostics)
        self.det_sub = (self.create_subscription(DETECTIONS_TOPIC, Detections, self.on_detections)
                        if self.p["detections"] else None)
        self.writer: Ros2McapWriter | None = None
        self._tf_written: RigidTransform | None = None

    def recorded_topics(self) -> list[str]:
        """The topic parameters of the streams this recorder writes (switched on)."""
        switched = {"image_topic": self.p["image"], "overlay_topic": self.p["overlay"],
                    "detections_topic": self.p["detections"],
                    "camera_info_topic": bool(self.p["camera_info_topic"]),
                    "tf_static_topic": bool(self.p["tf_static_topic"]),
                    "lidar_topic": self.p["lidar"]}
        names = ("image_topic", "mask_topic", "overlay_topic", "diagnostics_topic",
                 "detections_topic", "camera_info_topic", "tf_static_topic", "lidar_topic")
        return [name for name in names if switched.get(name, True)]

    def check_topics(self) -> None:
        """Every recorded stream on its own topic, a name starting with '/'."""
        taken: dict[str, str] = {}
        for param in self.recorded_topics():
            topic = self.p[param]
            if not topic.startswith("/"):
                raise self.config_error(f"topic names start with '/', got {topic!r}", param)
            if topic in taken:
                message = (f"{topic!r} is already the topic of {taken[topic]}; give each "
                           "recorded stream its own topic")
                raise self.config_error(message, param)
            taken[topic] = param

    def setup(self) -> None:
        self.check_topics()
        _drop_if_unpublished(self, self.det_sub)
        path = _out_path(self, "path")
        if path.is_dir():
            raise self.config_error(f"{str(path)!r} is a folder, not a file to write", "path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = f"cannot create the folder {str(path.parent)!r}: {exc.strerror}"
            raise self.config_error(message, "path") from exc
        self.writer = Ros2McapWriter(path, chunk_size_bytes=self.p["chunk_kb"] * 1024,
                                     compression=self.p["compression"])

    def open_outputs(self) -> None:
        """Create the file only now that every node is ready: a graph that fails to start
        leaves an earlier recording at ``path`` as it was."""
        assert self.writer is not None
        try:
            self.writer.open()
            self.writer.prepare(_RECORDED_TYPES)
        except DrivingsegError as exc:
            raise self.config_error(str(exc), "path") from exc

    def on_mask(self, msg: Mask) -> None:
        w = self.writer
        assert w is not None
        stamp = msg.stamp_ns
        camera = msg.rig.camera if msg.rig is not None else msg.camera_model
        frame_id = self.p["frame_id"] or (camera.frame_id if camera is not None else "camera")
        frame = msg.frame if msg.frame.stamp_ns == stamp else CameraFrame(
            stamp, msg.frame.image, msg.frame.frame_id, msg.frame.index, msg.frame.source)
        if self.p["image"] and self.p["image_format"] == "raw":
            w.write(self.p["image_topic"], image_to_msg(frame, w.typestore, frame_id=frame_id),
                    "sensor_msgs/msg/Image", stamp)
        elif self.p["image"]:
            w.write_compressed_image(self.p["image_topic"], frame, fmt=self.p["image_format"],
                                     jpeg_quality=self.p["jpeg_quality"], frame_id=frame_id)
        if camera is not None and self.p["camera_info_topic"]:
            if camera.frame_id != frame_id:  # the images' frame, so that viewers pair them
                camera = dataclasses.replace(camera, frame_id=frame_id)
            w.write_camera_info(self.p["camera_info_topic"], camera, stamp)
        if msg.rig is not None and self.p["tf_static_topic"]:
            self._write_tf(msg.rig.T_cam_velo, frame_id, stamp)
        if msg.scan is not None and self.p["lidar"]:
            # the scan's own frame without a rig (a bag's ``os_sensor``), as it was recorded
            lidar_frame = msg.rig.lidar_frame if msg.rig is not None else msg.scan.frame_id
            w.write(self.p["lidar_topic"],
                    pointcloud2_to_msg(msg.scan, w.typestore, frame_id=lidar_frame),
                    "sensor_msgs/msg/PointCloud2", msg.scan.stamp_ns)
        ids = np.ascontiguousarray(msg.class_ids)
        mask = w.typestore.types["sensor_msgs/msg/Image"](
            header=header(stamp, frame_id, w.typestore), height=ids.shape[0],
            width=ids.shape[1], encoding="mono8", is_bigendian=0, step=ids.shape[1],
            data=ids.reshape(-1),
        )
        w.write(self.p["mask_topic"], mask, "sensor_msgs/msg/Image", stamp)
        if self.p["overlay"]:
            over = CameraFrame(stamp, colourise(frame.image, ids), frame.frame_id, frame.index)
            w.write_compressed_image(self.p["overlay_topic"], over, fmt=self.p["overlay_format"],
                                     jpeg_quality=self.p["jpeg_quality"], frame_id=frame_id)

    def _write_tf(self, T_cam_velo: RigidTransform, frame_id: str, stamp_ns: int) -> None:
        """``T_cam_velo`` (parent: the images' frame) unless it is the one last written."""
        if T_cam_velo.target_frame != frame_id:
            T_cam_velo = RigidTransform(T_cam_velo.matrix, T_cam_velo.source_frame, frame_id)
        last = self._tf_written
        if last is not None and last.source_frame == T_cam_velo.source_frame and \
                last.target_frame == frame_id and np.array_equal(last.matrix, T_cam_velo.matrix):
            return
        assert self.writer is not None
        self.writer.write_tf_static(T_cam_velo, stamp_ns, self.p["tf_static_topic"])
        self._tf_written = T_cam_velo

    def on_detections(self, msg: Detections) -> None:
        w = self.writer
        assert w is not None
        boxes = [BoxAnnotation(d.box_xyxy_px, detection_text(d), _BOX_RGBA)
                 for d in msg.detections]
        w.write_image_annotations(self.p["detections_topic"], boxes, msg.stamp_ns)

    def on_diagnostics(self, msg: Diagnostics) -> None:
        w = self.writer
        assert w is not None
        ts = w.typestore
        kv = ts.types["diagnostic_msgs/msg/KeyValue"]
        status = ts.types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=int(msg.level), name=msg.name, message=msg.message, hardware_id="drivingseg",
            values=[kv(key=k, value=v) for k, v in msg.values],
        )
        array = ts.types["diagnostic_msgs/msg/DiagnosticArray"](
            header=header(msg.stamp_ns, "", ts), status=[status])
        w.write(self.p["diagnostics_topic"], array, "diagnostic_msgs/msg/DiagnosticArray",
                msg.stamp_ns)

    def shutdown(self) -> None:
        if self.writer is not None:
            self.writer.close()
            log.info("%s: wrote %s (%s)", self.name, self.writer.path, dict(self.writer.counts))
