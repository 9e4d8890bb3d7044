"""Region proposals from the segmentation and their evaluation against labelled boxes.

``proposals``: car blobs -> boxes split by lidar depth, with range and 3D centroid;
``gt``: KITTI ``label_2`` objects -> boxes to find and boxes to ignore (KITTI moderate);
``evaluate``: greedy matching and KITTI's 40-point AP, mergeable across workers.
"""

from drivingseg.detect.box import Detection
from drivingseg.detect.evaluate import (
    BoxEvaluator,
    FrameMatch,
    ap_40,
    box_iou,
    match_frame,
)
from drivingseg.detect.gt import BOX_SOURCES, GtBox, gt_boxes, project_box
from drivingseg.detect.proposals import (
    SPLIT_METHODS,
    LidarInImage,
    ProposalParams,
    propose_regions,
)

__all__ = [
    "BOX_SOURCES",
    "SPLIT_METHODS",
    "BoxEvaluator",
    "Detection",
    "FrameMatch",
    "GtBox",
    "LidarInImage",
    "ProposalParams",
    "ap_40",
    "box_iou",
    "gt_boxes",
    "match_frame",
    "project_box",
    "propose_regions",
]
