"""KITTI raw drives made of links to the shared drive, for cameras and layouts it lacks."""

from __future__ import annotations

from pathlib import Path


def linked_drive(kitti_raw_root: Path, tmp_path: Path, camera: int = 3, *,
                 lidar: bool = True) -> Path:
    """A KITTI raw drive whose ``image_0<camera>/`` is the real drive's camera 2 images
    (and, with ``lidar``, its scans), linked in place, under a date folder linking the real
    calibration files: the drive a camera-3 replay or a calibration check needs."""
    real = kitti_raw_root / "2011_09_26_drive_0000_sync"
    date = tmp_path / kitti_raw_root.name
    drive = date / real.name
    drive.mkdir(parents=True)
    for calib in kitti_raw_root.glob("calib_*.txt"):
        (date / calib.name).symlink_to(calib)
    (drive / f"image_0{camera}").symlink_to(real / "image_02")
    if lidar:
        (drive / "velodyne_points").symlink_to(real / "velodyne_points")
    return drive
