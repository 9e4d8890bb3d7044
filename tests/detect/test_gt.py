"""Ground-truth boxes on the real argoverse_kitti label files and on hand-made objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivingseg.detect.evaluate import box_iou, match_frame
from drivingseg.detect.gt import gt_boxes, points_in_box, project_box
from drivingseg.detect.proposals import LidarInImage
from drivingseg.errors import ConfigError
from drivingseg.node.messages import Detection
from drivingseg.sensors.decode import read_velodyne_bin
from drivingseg.sensors.kitti_benchmark import KittiBenchmark, KittiObject


def obj(kind: str, box: tuple[float, float, float, float], occluded: int = 0,
        truncated: float = 0.0, rotation_y: float = 0.0) -> KittiObject:
    """A 1.5 m tall, 1.7 m wide, 4 m long object standing 20 m ahead (bottom-centre
    location); with ``rotation_y`` 0 its length runs along the camera's x axis."""
    return KittiObject(kind, truncated, occluded, 0.0, box, (1.5, 1.7, 4.0), (0.0, 1.5, 20.0),
                       rotation_y)


def test_moderate_rules_on_hand_made_objects() -> None:
    objects = [
        obj("Car", (10, 10, 60, 50)),
        obj("Van", (100, 10, 160, 60)),
        obj("Car", (10, 100, 60, 120)),  # 20 px tall: ignore
        obj("Car", (10, 200, 60, 260), occluded=2),  # too occluded: ignore
        obj("Car", (10, 300, 60, 360), truncated=0.5),  # too truncated: ignore
        obj("DontCare", (200, 200, 260, 240)),
        obj("Truck", (300, 10, 400, 90)),  # similar class: ignore
        obj("Pedestrian", (400, 10, 420, 60)),  # other type: dropped
        obj("Car", (500, 10, 500, 60)),  # degenerate, no rig to fall back on: dropped
    ]
    boxes = gt_boxes(objects, None, (640, 480))
    assert [(b.label, b.ignore) for b in boxes] == [
        ("Car", False), ("Van", False), ("Car", True), ("Car", True), ("Car", True),
        ("DontCare", True), ("Truck", True),
    ]
    assert boxes[0].box_xyxy_px == (10.0, 10.0, 60.0, 50.0) and boxes[0].source == "label"
    # Bottom-centre location (0, 1.5, 20) of a 1.5 m tall box: centre at (0, 0.75, 20).
    assert boxes[0].range_m == pytest.approx((0.75**2 + 20.0**2) ** 0.5)
    with pytest.raises(ConfigError, match=r"unknown box_source 'lidar'.*auto, label, projected"):
        gt_boxes(objects, None, (640, 480), box_source="lidar")
    with pytest.raises(ConfigError, match="needs the rig"):
        gt_boxes(objects, None, (640, 480), box_source="projected")


def test_real_argoverse_labels(kitti_object_root: Path) -> None:
    with KittiBenchmark(kitti_object_root) as bench:
        objects, rig = bench.labels(0), bench.rig(0)
    assert rig is not None
    n_car = sum(o.type == "Car" for o in objects)
    assert n_car == 25
    boxes = gt_boxes(objects, rig, rig.camera.image_size)
    # 3 cars lie wholly outside the image (degenerate label boxes at x = 0 or 615) and
    # are dropped; of the 22 left, 5 are under 25 px tall; the rest are all unoccluded.
    assert len(boxes) == 22 and all(b.label == "Car" for b in boxes)
    assert sum(not b.ignore for b in boxes) == 17
    assert all(b.source == "label" for b in boxes)
    projected = gt_boxes(objects, rig, rig.camera.image_size, box_source="projected",
                         location_ref="centre")
    assert [b.ignore for b in projected] == [b.ignore for b in boxes]
    # Nearest car: centre (1.23, 0.78, 8.18) as written in the file.
    assert min(b.range_m for b in projected) == pytest.approx(8.3085, abs=1e-3)
    # The label boxes are the projection of the 3D boxes when the location is taken as
    # the box centre: the clear car 27 m ahead (label 406 273 495 335) matches within 2 px.
    clear = next(o for o in objects if o.bbox_xyxy == (406.0, 273.0, 495.0, 335.0))
    near = project_box(clear, rig, rig.camera.image_size, "centre")
    assert near is not None
    assert max(abs(a - b) for a, b in zip(near, clear.bbox_xyxy, strict=True)) < 2.0
    # With KITTI's bottom-centre reading the box sits half the car height (~30 px) higher.
    high = project_box(clear, rig, rig.camera.image_size, "bottom")
    assert high is not None and 20.0 < near[1] - high[1] < 40.0
    ious = box_iou([b.box_xyxy_px for b in boxes], [b.box_xyxy_px for b in projected])
    diagonal = [ious[i, i] for i in range(len(boxes))]
    assert min(diagonal) > 0.75  # small far boxes: a pixel of rounding costs IoU
    assert sorted(diagonal)[len(diagonal) // 2] > 0.9


def test_range_comes_from_the_lidar_points_inside_the_box() -> None:
    """The ground-truth range is the statistic a detection's range is (norm of the median
    point), taken over the lidar points in the 3D box: the near surface, not the centre."""
    car = obj("Car", (10, 10, 60, 50))
    surface = [(-1.0, 0.75, 19.3), (0.0, 0.75, 19.3), (1.0, 0.75, 19.3)]
    far = [(0.0, 0.75, 25.0), (3.0, 0.75, 19.3)]  # behind the car, beside it
    (box,) = gt_boxes([car], None, (640, 480), points_cam_m=np.array(surface + far))
    assert box.n_points == 3
    assert box.range_m == pytest.approx((0.75**2 + 19.3**2) ** 0.5)
    # Under MIN_RANGE_POINTS points, or no scan: the box centre, as before.
    centre = (0.75**2 + 20.0**2) ** 0.5
    (few,) = gt_boxes([car], None, (640, 480), points_cam_m=np.array(surface[:2] + far))
    assert (few.n_points, few.range_m) == (0, pytest.approx(centre))
    (none,) = gt_boxes([car], None, (640, 480))
    assert (none.n_points, none.range_m) == (0, pytest.approx(centre))
    # Turned a quarter, the 4 m length runs along z: a point 1.5 m behind the centre is in.
    deep = np.array([[0.0, 0.75, 21.5]])
    assert not points_in_box(car, deep)[0]
    assert points_in_box(obj("Car", (10, 10, 60, 50), rotation_y=np.pi / 2), deep)[0]
    with pytest.raises(ConfigError, match=r"points_cam_m must be N x 3, got shape \(4,\)"):
        gt_boxes([car], None, (640, 480), points_cam_m=np.zeros(4))


def test_real_scan_gives_a_perfect_detector_no_range_error(kitti_object_root: Path) -> None:
    """On a real frame, a detection made of exactly the points in a car's box has zero range
    error, where the box centre would put it about a metre off (half the car's depth)."""
    with KittiBenchmark(kitti_object_root) as bench:
        objects, rig = bench.labels(0), bench.rig(0)
    assert rig is not None
    scan = read_velodyne_bin(kitti_object_root / "velodyne" / "000000.bin")
    xyz = LidarInImage.from_scan(scan, rig).xyz_cam_m
    found = []
    for o in objects:
        boxes = gt_boxes([o], rig, rig.camera.image_size, box_source="projected",
                         location_ref="centre", points_cam_m=xyz)
        centres = gt_boxes([o], rig, rig.camera.image_size, box_source="projected",
                           location_ref="centre")
        if boxes and boxes[0].n_points and not boxes[0].ignore:
            found.append((boxes[0], centres[0], o))
    assert len(found) >= 5
    assert np.median([b.range_m - c.range_m for b, c, _ in found]) < -0.5
    dets = []
    for b, _, o in found:
        med = np.median(xyz[points_in_box(o, xyz, "centre")].astype(np.float64), axis=0)
        dets.append(Detection("car", 0.9, b.box_xyxy_px, None,
                              (float(med[0]), float(med[1]), float(med[2])), b.n_points))
    pairs = match_frame(dets, [b for b, _, _ in found]).range_pairs
    assert len(pairs) == len(found)
    assert max(abs(p - g) for p, g in pairs) < 1e-4


def test_auto_location_finds_each_datasets_convention(kitti_object_root: Path) -> None:
    """argoverse_kitti labels put ``location`` at the box centre, KITTI's at its bottom: the
    report's ``"auto"`` picks the one that puts the frame's lidar points inside the boxes,
    on each real frame, and KITTI's without points."""
    from dataclasses import replace

    from drivingseg.detect.gt import location_convention

    with KittiBenchmark(kitti_object_root) as bench:
        for i in range(len(bench)):
            objects, rig = bench.labels(i), bench.rig(i)
            assert rig is not None
            scan = read_velodyne_bin(kitti_object_root / "velodyne" / f"{i:06d}.bin")
            xyz = LidarInImage.from_scan(scan, rig).xyz_cam_m
            assert location_convention(objects, xyz) == "centre"
            auto = gt_boxes(objects, rig, rig.camera.image_size, box_source="projected",
                            location_ref="auto", points_cam_m=xyz)
            assert auto == gt_boxes(objects, rig, rig.camera.image_size, box_source="projected",
                                    location_ref="centre", points_cam_m=xyz)
            # the same boxes written with KITTI's convention (location at the bottom face)
            kitti = [replace(o, location_xyz_m=(o.location_xyz_m[0],
                                                o.location_xyz_m[1] + o.dimensions_hwl_m[0] / 2,
                                                o.location_xyz_m[2])) for o in objects]
            assert location_convention(kitti, xyz) == "bottom"
            assert location_convention(objects, None) == "bottom"


def test_a_box_exactly_25_px_tall_is_dont_care() -> None:
    """The devkit's moderate level ignores boxes with ``height <= 25``."""
    at, above = (KittiObject("Car", 0.0, 0, 0.0, (0, 100, 60, y2), (1.5, 1.7, 4.0),
                             (0.0, 1.5, 20.0), 0.0) for y2 in (125, 125.5))
    assert [b.ignore for b in gt_boxes([at, above], None, (640, 480))] == [True, False]
