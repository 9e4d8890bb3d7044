"""Node types by the name launch files use for them (``type: segmentation``)."""

from __future__ import annotations

from drivingseg.node.detection import ProposalNode
from drivingseg.node.latency import LatencyTracker
from drivingseg.node.outputs import LiveView, MaskWriter
from drivingseg.node.processing import FusionNode, SegmentationNode
from drivingseg.node.recorder import McapRecorder
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource, LidarSource
from drivingseg.node.sync_node import SyncNode
from drivingseg.node.video_writer import VideoWriter

__all__ = ["NODE_TYPES", "describe_node_types"]

NODE_TYPES: dict[str, type[Node]] = {
    cls.type_name: cls
    for cls in (
        CameraSource,
        LidarSource,
        SyncNode,
        FusionNode,
        SegmentationNode,
        ProposalNode,
        LatencyTracker,
        McapRecorder,
        MaskWriter,
        VideoWriter,
        LiveView,
    )
}


def describe_node_types() -> str:
    """Every node type with its parameters (for ``drivingseg launch --list-nodes``)."""
    from drivingseg.node.params import describe_parameters

    blocks = []
    for name, cls in NODE_TYPES.items():
        params = describe_parameters((*cls.parameters, *cls.common_parameters))
        blocks.append(f"{name}: {cls.description}\n{params}")
    return "\n\n".join(blocks)
