"""The built-in synthetic drive: a seeded procedural road scene with exact ground truth.

``SyntheticDrive`` renders camera frames, lidar scans, per-pixel and per-point labels
(0 background, 1 road, 2 car) and car boxes on the fly; ``write_synthetic_drive`` stores
a drive as a KITTI raw folder that :class:`~drivingseg.sensors.kitti_raw.KittiRawDrive`
reads back unchanged.
"""

from __future__ import annotations

from drivingseg.sensors.synthetic.boxes import BoxArray
from drivingseg.sensors.synthetic.drive import CarBox, SyntheticDrive, default_rig_path
from drivingseg.sensors.synthetic.scene import World
from drivingseg.sensors.synthetic.writer import drive_folder, write_synthetic_drive

__all__ = [
    "BoxArray",
    "CarBox",
    "SyntheticDrive",
    "World",
    "default_rig_path",
    "drive_folder",
    "write_synthetic_drive",
]
