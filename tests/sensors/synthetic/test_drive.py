"""SyntheticDrive as a recording: determinism, stamps, contents, errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivingseg.calibration.rig_yaml import load_rig, save_rig
from drivingseg.errors import CalibrationError, ConfigError, RecordingError
from drivingseg.sensors.synthetic.drive import START_NS, SyntheticDrive, default_rig_path


def test_same_seed_gives_byte_identical_frames_in_any_order(drive: SyntheticDrive) -> None:
    with SyntheticDrive(seed=3, frames=5) as other:
        # Other drive: different length, frames asked in another order.
        scan_b = other.lidar(2)
        img_b = other.camera(2).image
        other.camera(0)
        labels_b = other.labels(2)
        point_labels_b = other.point_labels(2)
    assert np.array_equal(drive.camera(2).image, img_b)
    assert np.array_equal(drive.labels(2), labels_b)
    assert np.array_equal(drive.lidar(2).points, scan_b.points)
    assert np.array_equal(drive.point_labels(2), point_labels_b)
    assert drive.lidar(2).stamp_ns == scan_b.stamp_ns


def test_other_seed_gives_another_drive(drive: SyntheticDrive) -> None:
    with SyntheticDrive(seed=4, frames=2) as other:
        assert not np.array_equal(drive.camera(1).image, other.camera(1).image)
        assert len(drive.lidar(1)) != len(other.lidar(1))


def test_frames_move_forward(drive: SyntheticDrive) -> None:
    a, b = drive.camera(0).image, drive.camera(1).image
    assert np.mean(np.abs(a.astype(np.int16) - b)) > 2.0


def test_lidar_is_stamped_a_few_ms_before_the_camera(drive: SyntheticDrive) -> None:
    cam = np.array([drive.camera_stamp_ns(i) for i in range(len(drive))])
    lidar = np.array([drive.lidar_stamp_ns(i) for i in range(len(drive))])
    assert np.all(np.diff(cam) == 100_000_000)
    offset_ms = (lidar - cam) / 1e6
    assert np.all((offset_ms >= -4.0) & (offset_ms <= -2.0))
    assert offset_ms.std() > 0.1  # jitter, not a constant
    assert drive.lidar(5).stamp_ns == lidar[5]
    info = drive.info()
    assert [s.kind for s in info.streams] == ["camera", "lidar"]
    assert all(s.count == 20 for s in info.streams)
    assert info.streams[0].rate_hz == pytest.approx(10.0)


def test_frame_contents(drive: SyntheticDrive) -> None:
    rig = drive.rig()
    frame = drive.camera(6)
    assert frame.image.shape == (rig.camera.height, rig.camera.width, 3)
    assert frame.frame_id == rig.camera_frame
    labels = drive.labels(6)
    assert labels.dtype == np.uint8 and labels.shape == frame.image.shape[:2]
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert fractions[1] > 0.15 and fractions[2] > 0.01 and fractions[0] > 0.3
    # Sky at the top, road at the bottom centre.
    assert np.isinf(drive.depth(6)[0]).mean() > 0.2
    assert labels[-1, rig.camera.width // 2] == 1

    scan = drive.lidar(6)
    point_labels = drive.point_labels(6)
    assert scan.frame_id == rig.lidar_frame
    assert len(scan) == len(point_labels) > 90_000
    assert set(np.unique(point_labels)) == {0, 1, 2}
    rng = np.linalg.norm(scan.xyz, axis=1)
    assert rng.max() <= 121.0 and rng.min() > 0.8
    intensity = scan.intensity
    assert intensity.min() >= 0.0 and intensity.max() <= 1.0
    road = intensity[point_labels == 1]
    # Lane paint is much brighter than asphalt.
    assert np.median(road) < 0.15 and np.percentile(road, 99) > 0.5


def test_azimuth_coverage_is_full_circle(drive: SyntheticDrive) -> None:
    xyz = drive.lidar(0).xyz
    azimuth = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    counts, _ = np.histogram(azimuth, bins=36, range=(-180, 180))
    assert counts.min() > 500


def test_bad_arguments_and_missing_rig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="frames must be an integer >= 1, got 0"):
        SyntheticDrive(frames=0)
    with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
        SyntheticDrive(seed=-1)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CalibrationError, match="rig calibration not found") as exc_info:
        SyntheticDrive(rig_path=missing).open()
    assert exc_info.value.path == str(missing)
    closed = SyntheticDrive(frames=2)
    with pytest.raises(RecordingError, match="not open"):
        closed.camera(0)


def test_unopened_and_closed_drive_refuse_every_use() -> None:
    drive = SyntheticDrive(seed=3, frames=2)
    uses = {
        "len": lambda: len(drive),
        "lidar_pose": lambda: drive.lidar_pose(START_NS),
        "camera_pose": lambda: drive.camera_pose(START_NS),
        "world": lambda: drive.world,
        "rig": lambda: drive.rig(),
        "info": lambda: drive.info(),
        "car_boxes": lambda: drive.car_boxes(0),
        "lidar": lambda: drive.lidar(0),
    }
    hint = (
        r"synthetic:3: SyntheticDrive is not open; "
        r"use 'with SyntheticDrive\(seed=3, frames=2\) as r:'"
    )
    for state in ("never opened", "closed"):
        for name, use in uses.items():
            with pytest.raises(RecordingError, match=hint):
                use()
                pytest.fail(f"{name} worked on a {state} drive")
        with drive:
            assert len(drive) == 2
            pose = drive.lidar_pose(START_NS)
            assert pose.shape == (4, 4)
            assert drive.camera_pose(START_NS).shape == (4, 4)
            assert drive.world.cars
    with drive:
        np.testing.assert_array_equal(drive.lidar_pose(START_NS), pose)


def test_index_out_of_range(drive: SyntheticDrive) -> None:
    with pytest.raises(IndexError, match="out of range"):
        drive.camera(20)
    assert drive.camera(-1).index == 19
    with pytest.raises(ConfigError, match="'lidar' or 'camera'"):
        drive.car_boxes(0, "world")


def test_default_rig_is_the_repository_file() -> None:
    path = default_rig_path()
    assert path.name == "synthetic.yaml" and path.parent.name == "calibration"
    assert path.is_file()


def test_junction_has_a_cross_street_with_road_and_cars() -> None:
    with SyntheticDrive(seed=3, frames=100) as drive:
        s_j = drive.world.junction_s[0]
        i = round(s_j / drive.world.ego_speed_mps * 10)  # the frame at the junction
        pts = drive.lidar(i).xyz
        labels = drive.point_labels(i)
        boxes = drive.car_boxes(i, "lidar", max_range_m=40.0)
        cross_cars = {c.car_id for c in drive.world.cars if c.road != 0}
    sideways_road = (labels == 1) & (np.abs(pts[:, 1]) > 15.0) & (np.abs(pts[:, 0]) < 5.0)
    assert sideways_road.sum() > 100
    assert len(cross_cars) >= 3
    assert {b.car_id for b in boxes} & cross_cars


@pytest.mark.parametrize(("model", "coefficients", "rectified"), [
    ("plumb_bob", [-0.3, 0.1, 0.0, 0.0, 0.0], True),
    ("equidistant", [0.0, 0.0, 0.0, 0.0], True),
    ("none", [0.0] * 5, False),
])
def test_a_rig_the_renderer_cannot_draw_is_refused(
    tmp_path: Path, model: str, coefficients: list[float], rectified: bool
) -> None:
    """The renderer casts rays through P @ R only: a distorted or unrectified rig used to give
    undistorted frames with a rig() whose projection puts lidar points off the cars."""
    rig = load_rig(default_rig_path())
    camera = replace(rig.camera, distortion_model=model, D=np.array(coefficients),
                     image_rectified=rectified)
    path = tmp_path / "odd.yaml"
    save_rig(replace(rig, camera=camera), path)
    with pytest.raises(CalibrationError, match=r"odd\.yaml: the synthetic camera renders "
                       rf"rectified, undistorted images .*distortion_model='{model}'"):
        SyntheticDrive(frames=2, rig_path=path).open()


def test_missing_explicit_rig_does_not_point_at_the_repository_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match=r"nope\.yaml: rig calibration not found$"):
        SyntheticDrive(rig_path=tmp_path / "nope.yaml").open()


def test_car_ids_do_not_depend_on_the_drive_length() -> None:
    """gt/boxes of frame i must not change with --frames: the cross streets' cars came after
    every main-road car in the list, so a longer drive shifted their ids."""
    def boxes(frames: int) -> list[tuple[int, tuple[float, ...]]]:
        with SyntheticDrive(seed=1, frames=frames) as d:
            return [(b.car_id, tuple(np.round(b.center, 6))) for b in d.car_boxes(4)]

    short, long = boxes(5), boxes(60)
    assert short == long
    assert any(car_id >= 100_000 for car_id, _ in short)  # a cross street's car is in view


def test_frames_from_a_stamp_render_none_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay window late in ``synthetic`` rendered every earlier frame (~0.3 s each)."""
    rendered: list[tuple[str, int]] = []

    def counting(name: str, real: Callable[[int], Any]) -> Callable[[int], Any]:
        def wrapped(i: int) -> Any:
            rendered.append((name, i))
            return real(i)
        return wrapped

    with SyntheticDrive(seed=3, frames=20) as d:
        for name in ("_render", "_scan"):
            monkeypatch.setattr(d, name, counting(name, getattr(d, name)))
        frames = list(d.camera_frames_from(d.camera_stamp_ns(18)))
        scans = list(d.lidar_scans_from(d.lidar_stamp_ns(19)))
        assert [f.index for f in frames] == [18, 19]
        assert [s.index for s in scans] == [19]
    assert rendered == [("_render", 18), ("_render", 19), ("_scan", 19)]
