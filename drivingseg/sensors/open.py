"""Open any supported recording by looking at what the path is.

One place decides which reader handles a path, so the CLI and the launch files accept
every format the same way. Adding a sensor format = a reader class plus a rule here.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from drivingseg.errors import RecordingError
from drivingseg.sensors.base import Recording

__all__ = ["FORMATS", "detect_format", "open_recording"]

FORMATS = {
    "kitti_raw": "KITTI raw drive folder (image_0N/ and/or velodyne_points/ with timestamps.txt)",
    "kitti_benchmark": "KITTI object or road folder (image_2/, velodyne/, calib/)",
    "rosbag": "ROS 1 .bag, ROS 2 bag folder (metadata.yaml), .db3 or .mcap file",
    "synthetic": "the built-in synthetic drive: 'synthetic' or 'synthetic:SEED'",
}


def detect_format(path: str | PathLike[str]) -> str:
    """Name of the reader for ``path`` (a key of ``FORMATS``); error lists the accepted ones."""
    text = str(path)
    if text == "synthetic" and Path(text).exists():
        message = (
            f"{text!r} is ambiguous: it names both this file or folder and the built-in "
            "synthetic drive; use './synthetic' for the folder or 'synthetic:0' for the "
            "built-in drive"
        )
        raise RecordingError(message, path=Path(text).absolute())
    if text == "synthetic" or text.startswith("synthetic:"):
        return "synthetic"
    p = Path(path)
    if not p.exists():
        raise RecordingError("no such file or folder", path=p)
    if p.is_file():
        if p.suffix.lower() in (".bag", ".db3", ".mcap"):
            return "rosbag"
    elif (p / "metadata.yaml").is_file() or len(list(p.glob("*.mcap"))) == 1:
        return "rosbag"  # one .mcap without metadata.yaml: a killed ros2 bag record's folder
    elif any((p / f"image_0{n}").is_dir() for n in range(4)) or (p / "velodyne_points").is_dir():
        return "kitti_raw"
    elif (p / "image_2").is_dir() or (p / "velodyne").is_dir() or (p / "training").is_dir():
        return "kitti_benchmark"
    accepted = "; ".join(FORMATS.values())
    raise RecordingError(f"not a recording drivingseg can read; accepted: {accepted}", path=p)


def open_recording(
    path: str | PathLike[str],
    *,
    camera: int = 2,
    image_topic: str | None = None,
    lidar_topic: str | None = None,
    camera_info_topic: str | None = None,
) -> Recording:
    """Return an opened reader for ``path`` (use it as a context manager to close it)."""
    fmt = detect_format(path)
    rec: Recording
    if fmt == "kitti_raw":
        from drivingseg.sensors.kitti_raw import KittiRawDrive

        rec = KittiRawDrive(path, camera=camera)
    elif fmt == "kitti_benchmark":
        from drivingseg.sensors.kitti_benchmark import KittiBenchmark

        p = Path(path)
        rec = KittiBenchmark(p / "training" if (p / "training").is_dir() else p, camera=camera)
    elif fmt == "rosbag":
        from drivingseg.sensors.bag import BagRecording

        rec = BagRecording(
            path,
            image_topic=image_topic,
            lidar_topic=lidar_topic,
            camera_info_topic=camera_info_topic,
        )
    else:
        from drivingseg.sensors.synthetic import SyntheticDrive

        seed_text = str(path).partition(":")[2] or "0"
        if not (seed_text.isascii() and seed_text.isdigit()):
            raise RecordingError(f"synthetic seed must be a whole number, got {seed_text!r}")
        rec = SyntheticDrive(seed=int(seed_text))
    rec.open()
    return rec
