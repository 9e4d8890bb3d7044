"""Open any supported recording by looking at what the path is.

One place decides which reader handles a path, so the CLI and the launch files accept
every format the same way. Adding a sensor format = a reader class plus a rule here.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from drivingseg.errors import RecordingError
from drivingseg.sensors.base import Recording

__all__ = ["FORMATS", "benchmark_split", "detect_format", "open_recording"]

FORMATS = {
    "kitti_raw": "KITTI raw drive folder (image_0N/ and/or velodyne_points/ with timestamps.txt)",
    "kitti_benchmark": "KITTI object or road folder (image_2/, velodyne/, calib/) or its root "
                       "(training/, else testing/)",
    "rosbag": "ROS 1 .bag (or a killed recorder's .bag.active), ROS 2 bag folder "
              "(metadata.yaml), .db3 or .mcap file",
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
        if p.suffix.lower() in (".bag", ".db3", ".mcap") or p.name.lower().endswith(".bag.active"):
            return "rosbag"  # .bag.active: a killed rosbag record's, read without its index
    elif (p / "metadata.yaml").is_file() or len([*p.glob("*.mcap"), *p.glob("*.db3")]) == 1:
        return "rosbag"  # one .mcap or .db3 without metadata.yaml: a killed ros2 bag record's
    elif any((p / f"image_0{n}").is_dir() for n in range(4)) or (p / "velodyne_points").is_dir():
        return "kitti_raw"
    elif any((p / name).is_dir() for name in ("image_2", "velodyne", "training", "testing")):
        return "kitti_benchmark"
    elif drives := _kitti_raw_drives(p):
        message = (f"a KITTI raw date folder, not a drive: pass one of its {len(drives)} drive "
                   f"folder(s), such as {str(p / drives[0])!r}")
        raise RecordingError(message, path=p)
    accepted = "; ".join(FORMATS.values())
    raise RecordingError(f"not a recording drivingseg can read; accepted: {accepted}", path=p)


def _kitti_raw_drives(folder: Path) -> list[str]:
    """Names of the ``*_drive_*`` subfolders of a KITTI raw date folder (sorted)."""
    try:
        return sorted(d.name for d in folder.iterdir() if "_drive_" in d.name and d.is_dir())
    except OSError:
        return []


def benchmark_split(path: Path) -> Path:
    """The split a KITTI benchmark path means: a root's ``training/``, or its ``testing/``
    when only the test split is there; any other path itself."""
    if (path / "training").is_dir():
        return path / "training"
    if (path / "testing").is_dir() and not (path / "image_2").is_dir():
        return path / "testing"
    return path


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

        rec = KittiBenchmark(benchmark_split(Path(path)), camera=camera)
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
