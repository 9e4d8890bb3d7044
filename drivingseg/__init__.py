"""drivingseg: camera/lidar readers, fusion, U-Net road and car segmentation, streaming node."""

from drivingseg.errors import (
    CalibrationError,
    ConfigError,
    DrivingsegError,
    ModelError,
    RecordingError,
    SyncError,
)

__version__ = "0.1.0"

__all__ = [
    "CalibrationError",
    "ConfigError",
    "DrivingsegError",
    "ModelError",
    "RecordingError",
    "SyncError",
    "__version__",
]
