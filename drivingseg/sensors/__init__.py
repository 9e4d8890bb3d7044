"""Sensor readers: every recording format yields timestamped camera frames and lidar scans."""

from drivingseg.sensors.bag import BagRecording
from drivingseg.sensors.base import Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.decode import decode_image, read_image_rgb, read_velodyne_bin
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_benchmark import KittiBenchmark, KittiObject, read_kitti_labels
from drivingseg.sensors.kitti_raw import KittiRawDrive
from drivingseg.sensors.kitti_timestamps import parse_kitti_timestamp, read_kitti_timestamps
from drivingseg.sensors.open import FORMATS, detect_format, open_recording
from drivingseg.sensors.synthetic import SyntheticDrive, write_synthetic_drive

__all__ = [
    "FORMATS",
    "BagRecording",
    "CameraFrame",
    "KittiBenchmark",
    "KittiObject",
    "KittiRawDrive",
    "LidarScan",
    "Recording",
    "RecordingInfo",
    "StreamInfo",
    "SyntheticDrive",
    "decode_image",
    "detect_format",
    "open_recording",
    "parse_kitti_timestamp",
    "read_image_rgb",
    "read_kitti_labels",
    "read_kitti_timestamps",
    "read_velodyne_bin",
    "write_synthetic_drive",
]
