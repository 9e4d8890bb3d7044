"""Local fixtures for the calibration tests: a synthetic-rig factory and file helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from drivingseg.calibration.types import CameraModel, Rig, RigidTransform

RigFactory = Callable[..., Rig]


def rotation_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """Rotation of a (not necessarily unit) quaternion ``w, x, y, z`` (Hamilton convention)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )


@pytest.fixture(scope="session")
def make_rig() -> RigFactory:
    """Factory ``make_rig(q_velo, q_rect, t, fx, cx, tx, q_imu=None)`` of KITTI-like rigs.

    Session-scoped so hypothesis tests may use it.
    """

    def factory(
        q_velo: Sequence[float],
        q_rect: Sequence[float],
        t: Sequence[float],
        fx: float = 700.0,
        cx: float = 600.0,
        tx: float = 40.0,
        q_imu: Sequence[float] | None = None,
        size: tuple[int, int] = (1242, 375),
    ) -> Rig:
        P = np.array([[fx, 0.0, cx, tx], [0.0, fx * 1.01, 170.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
        camera = CameraModel(
            width=size[0],
            height=size[1],
            K=P[:, :3],
            D=np.zeros(5),
            R=rotation_from_quaternion(q_rect),
            P=P,
            distortion_model="none",
            image_rectified=True,
            frame_id="cam0",
        )
        T = RigidTransform.from_rt(rotation_from_quaternion(q_velo), t, "velodyne", "cam0")
        T_imu = None
        if q_imu is not None:
            T_imu = RigidTransform.from_rt(
                rotation_from_quaternion(q_imu), [-0.8, 0.3, -0.8], "imu", "velodyne"
            )
        return Rig(name="synthetic", camera=camera, T_cam_velo=T, T_velo_imu=T_imu)

    return factory


@pytest.fixture(scope="session")
def assert_rigs_equal() -> Callable[[Rig, Rig], None]:
    """Assert two rigs hold bit-identical matrices and the same sizes, models and frames."""

    def check(a: Rig, b: Rig) -> None:
        ca, cb = a.camera, b.camera
        assert (ca.width, ca.height) == (cb.width, cb.height)
        assert (ca.distortion_model, ca.image_rectified, ca.frame_id) == (
            cb.distortion_model,
            cb.image_rectified,
            cb.frame_id,
        )
        assert ca.P is not None and cb.P is not None
        for x, y in ((ca.K, cb.K), (ca.D, cb.D), (ca.R, cb.R), (ca.P, cb.P)):
            assert x.shape == y.shape and x.tobytes() == y.tobytes()
        for ta, tb in ((a.T_cam_velo, b.T_cam_velo), (a.T_velo_imu, b.T_velo_imu)):
            assert (ta is None) == (tb is None)
            if ta is not None and tb is not None:
                assert (ta.source_frame, ta.target_frame) == (tb.source_frame, tb.target_frame)
                assert ta.matrix.tobytes() == tb.matrix.tobytes()

    return check


def copy_with(src: Path, dst: Path, replace: dict[str, str | None]) -> Path:
    """Copy a KITTI calib file, replacing (or with ``None`` dropping) the lines of some keys."""
    lines = []
    for line in src.read_text().splitlines():
        key = line.split(":", 1)[0].strip()
        if key in replace:
            new = replace[key]
            if new is not None:
                lines.append(f"{key}: {new}")
        else:
            lines.append(line)
    dst.write_text("\n".join(lines) + "\n")
    return dst


@pytest.fixture(scope="session")
def copy_calib() -> Callable[[Path, Path, dict[str, str | None]], Path]:
    """:func:`copy_with` as a fixture (test modules cannot import conftest by name)."""
    return copy_with
