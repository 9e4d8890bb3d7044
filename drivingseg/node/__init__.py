"""Streaming node: topics, nodes, launch files, latency tracking and output nodes."""

from drivingseg.node.detection import (
    DETECTIONS_TOPIC,
    ProposalNode,
    StampPairer,
    detection_text,
    draw_detections,
)
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
    DETECTION_STAGES,
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
    "DETECTIONS_TOPIC",
    "DETECTION_STAGES",
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
    "ProposalNode",
    "QoS",
    "RunResult",
    "StampPairer",
    "SyncedFrames",
    "Timing",
    "build_graph",
    "colourise",
    "describe_node_types",
    "detection_text",
    "draw_detections",
    "find_launch_file",
    "load_launch",
    "parse_cli_arguments",
]
