"""Fixtures of the fusion tests: real KITTI scans and rigs (skip without the shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivingseg.calibration.kitti import load_kitti_object_rig, load_kitti_raw_rig
from drivingseg.calibration.types import Rig

ARGOVERSE_SIZE = (616, 514)


def _read_scan(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


@pytest.fixture
def raw_rig(kitti_raw_root: Path) -> Rig:
    return load_kitti_raw_rig(kitti_raw_root)


@pytest.fixture
def raw_scan(kitti_raw_drive: Path) -> np.ndarray:
    return _read_scan(kitti_raw_drive / "velodyne_points" / "data" / "0000000000.bin")


@pytest.fixture
def object_rig(kitti_object_root: Path) -> Rig:
    return load_kitti_object_rig(
        kitti_object_root / "calib" / "000000.txt", camera=2, image_size=ARGOVERSE_SIZE
    )


@pytest.fixture
def object_scan(kitti_object_root: Path) -> np.ndarray:
    return _read_scan(kitti_object_root / "velodyne" / "000000.bin")
