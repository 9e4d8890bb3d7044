"""One exception hierarchy for the whole package.

Every error a user can cause (bad file, bad parameter, bad recording) derives from
:class:`DrivingsegError`, so the CLI catches one type and prints one line. Messages
name the file (or topic, or parameter) and say what is wrong with which value.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CalibrationError",
    "ConfigError",
    "DrivingsegError",
    "ModelError",
    "RecordingError",
    "SyncError",
]


class DrivingsegError(Exception):
    """Base class of every error drivingseg raises on purpose."""

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class CalibrationError(DrivingsegError):
    """A calibration file is missing, malformed or physically inconsistent."""


class RecordingError(DrivingsegError):
    """A recording (KITTI folder, bag, image, scan) cannot be read as asked."""


class SyncError(DrivingsegError):
    """Camera and lidar streams cannot be paired as configured."""


class ConfigError(DrivingsegError):
    """A parameter, launch file or command-line value is invalid."""


class ModelError(ConfigError):
    """A model config, checkpoint or model input is invalid (wrong channels, classes, file)."""
