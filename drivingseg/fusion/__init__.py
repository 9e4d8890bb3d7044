"""Fusion: lidar points in image space, z-buffered depth, lidar image channels, ground/clusters."""

from drivingseg.fusion.channels import (
    CHANNEL_NAMES,
    LidarChannels,
    StreamNotes,
    densify_depth,
    lidar_channels,
)
from drivingseg.fusion.ground import (
    Cluster,
    GroundKeeper,
    GroundPlane,
    SceneSegmentation,
    fit_ground_plane,
    ground_support,
    segment_scene,
)
from drivingseg.fusion.overlay import (
    depth_to_png16,
    draw_overlay,
    read_depth_png,
    write_depth_png,
    write_image_atomic,
)
from drivingseg.fusion.projection import (
    DEFAULT_MIN_DEPTH_M,
    Projection,
    calibration_offset_px,
    check_image_size,
    project_points,
    scale_camera,
    scale_rig,
    visible_points,
)
from drivingseg.fusion.zbuffer import depth_image, zbuffer

__all__ = [
    "CHANNEL_NAMES",
    "DEFAULT_MIN_DEPTH_M",
    "Cluster",
    "GroundKeeper",
    "GroundPlane",
    "LidarChannels",
    "Projection",
    "SceneSegmentation",
    "StreamNotes",
    "calibration_offset_px",
    "check_image_size",
    "densify_depth",
    "depth_image",
    "depth_to_png16",
    "draw_overlay",
    "fit_ground_plane",
    "ground_support",
    "lidar_channels",
    "project_points",
    "read_depth_png",
    "scale_camera",
    "scale_rig",
    "segment_scene",
    "visible_points",
    "write_depth_png",
    "write_image_atomic",
    "zbuffer",
]
