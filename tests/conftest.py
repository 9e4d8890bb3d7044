"""Shared fixtures: where the real data lives, and skipping (or failing in CI) without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$DRIVINGSEG_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("DRIVINGSEG_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def require_data(*parts: str) -> Path:
    """Path to a folder of the shared data; skip without it, fail when CI requires it."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        reason = f"real data not found at {path} (set DRIVINGSEG_DATA or place ../shared/data)"
        if os.environ.get("DRIVINGSEG_REQUIRE_DATA") == "1":
            pytest.fail(reason + "; DRIVINGSEG_REQUIRE_DATA=1 makes this a failure")
        pytest.skip(reason)
    return path


@pytest.fixture
def kitti_raw_root() -> Path:
    """The KITTI raw date folder (holds calib_*.txt and the drive folder)."""
    return require_data("kitti_raw", "2011_09_26")


@pytest.fixture
def kitti_raw_drive(kitti_raw_root: Path) -> Path:
    return kitti_raw_root / "2011_09_26_drive_0000_sync"


@pytest.fixture
def kitti_object_root() -> Path:
    """A KITTI object-layout folder (``training/`` with image_2, velodyne, calib, label_2)."""
    return require_data("argoverse_kitti", "training")


@pytest.fixture
def camvid_root() -> Path:
    return require_data("camvid")


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The whole shared data folder (skip or fail as ``require_data`` does); session-scoped so
    session fixtures can build on it."""
    return require_data()
