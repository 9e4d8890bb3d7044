"""Outputs: ROS 2 MCAP recording and conversion of recordings to MCAP."""

from drivingseg.outputs.convert import ConvertStats, McapTopics, convert_to_mcap, kitti_topics
from drivingseg.outputs.mcap import BoxAnnotation, Ros2McapWriter

__all__ = [
    "BoxAnnotation",
    "ConvertStats",
    "McapTopics",
    "Ros2McapWriter",
    "convert_to_mcap",
    "kitti_topics",
]
