"""Streaming node: topics, nodes, launch files, latency tracking and output nodes."""

from drivingseg.node.graph import Graph, RunResult
from drivingseg.node.latency import LatencyReport, LatencyTracker
from drivingseg.node.launch import (
    LAUNCH_DIR,
    build_graph,
    find_launch_file,
    load_launch,
    parse_cli_arguments,
)
from drivingseg.node.messages import (
    CameraImage,
    Detection,
    Detections,
    Diagnostics,
    FusedInput,
    LidarCloud,
    Mask,
    SyncedFrames,
    Timing,
)
from drivingseg.node.outputs import colourise
from drivingseg.node.params import Param
from drivingseg.node.registry import NODE_TYPES, describe_node_types
from drivingseg.node.runtime import Node, QoS

__all__ = [
    "LAUNCH_DIR",
    "NODE_TYPES",
    "CameraImage",
    "Detection",
    "Detections",
    "Diagnostics",
    "FusedInput",
    "Graph",
    "LatencyReport",
    "LatencyTracker",
    "LidarCloud",
    "Mask",
    "Node",
    "Param",
    "QoS",
    "RunResult",
    "SyncedFrames",
    "Timing",
    "build_graph",
    "colourise",
    "describe_node_types",
    "find_launch_file",
    "load_launch",
    "parse_cli_arguments",
]
