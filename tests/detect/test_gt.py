"""Ground-truth boxes on the real argoverse_kitti label files and on hand-made objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.detect.evaluate import box_iou
from drivingseg.detect.gt import gt_boxes, project_box
from drivingseg.errors import ConfigError
from drivingseg.sensors.kitti_benchmark import KittiBenchmark, KittiObject


def obj(kind: str, box: tuple[float, float, float, float], occluded: int = 0,
        truncated: float = 0.0) -> KittiObject:
    return KittiObject(kind, truncated, occluded, 0.0, box, (1.5, 1.7, 4.0), (0.0, 1.5, 20.0),
                       0.0)


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
