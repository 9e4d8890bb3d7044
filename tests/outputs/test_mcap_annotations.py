"""Foxglove image annotations written by Ros2McapWriter, read back with ``mcap`` and
``mcap_ros2`` only: schema text with its dependencies, one closed polygon per box whose
points are the box corners, a label per box, the image stamp everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drivingseg.errors import RecordingError
from drivingseg.outputs.mcap import BoxAnnotation, Ros2McapWriter

STAMP_NS = 1_317_042_000_123_456_789
BOXES = [
    BoxAnnotation((10.0, 5.0, 20.0, 10.0), "car 0.87 12.3 m", (1.0, 0.5, 0.0, 1.0)),
    BoxAnnotation((0.0, 0.0, 1242.0, 375.0), ""),
]


def read_back(path: Path) -> list[tuple[Any, Any, Any]]:
    """``(schema, message record, decoded message)`` of every message."""
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(schema, message, msg)
                for schema, _, message, msg in reader.iter_decoded_messages()]


def test_boxes_round_trip_as_image_annotations(tmp_path: Path) -> None:
    out = tmp_path / "ann.mcap"
    with Ros2McapWriter(out) as w:
        w.write_image_annotations("/segmentation/detections", BOXES, STAMP_NS)
        w.write_image_annotations("/segmentation/detections", [], STAMP_NS + 100_000_000)
    (schema, record, msg), (_, record2, empty) = read_back(out)

    assert schema.name == "foxglove_msgs/msg/ImageAnnotations"
    assert schema.encoding == "ros2msg"
    text = schema.data.decode()
    for dep in ("foxglove_msgs/PointsAnnotation", "foxglove_msgs/CircleAnnotation",
                "foxglove_msgs/TextAnnotation", "foxglove_msgs/Point2", "foxglove_msgs/Color",
                "builtin_interfaces/Time"):
        assert f"MSG: {dep}\n" in text, dep
    assert "uint8 LINE_LOOP=2" in text
    # Foxglove's field names (ros_foxglove_msgs/ros2/ImageAnnotations.msg): the Image panel
    # reads ``texts``, so labels under any other name are not drawn.
    assert text.startswith("foxglove_msgs/CircleAnnotation[] circles\n"
                           "foxglove_msgs/PointsAnnotation[] points\n"
                           "foxglove_msgs/TextAnnotation[] texts\n")
    assert record.log_time == STAMP_NS and record2.log_time == STAMP_NS + 100_000_000

    assert msg.circles == [] and len(msg.points) == 2
    for box, poly in zip(BOXES, msg.points, strict=True):
        x1, y1, x2, y2 = box.box_xyxy_px
        assert poly.type == 2  # LINE_LOOP: a closed polygon
        assert [(p.x, p.y) for p in poly.points] == [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        assert (poly.timestamp.sec, poly.timestamp.nanosec) == divmod(STAMP_NS, 1_000_000_000)
        c = poly.outline_color
        assert (c.r, c.g, c.b, c.a) == box.colour_rgba
        assert poly.fill_color.a == 0.0 and poly.thickness > 0
    assert [label.text for label in msg.texts] == ["car 0.87 12.3 m"]  # no empty labels
    label = msg.texts[0]
    assert label.position.x == 10.0 and label.font_size > 0
    assert (label.timestamp.sec, label.timestamp.nanosec) == divmod(STAMP_NS, 1_000_000_000)
    assert empty.points == [] and empty.texts == []


def test_register_msgdefs_adds_types_and_rejects_bad_ones(tmp_path: Path) -> None:
    with Ros2McapWriter(tmp_path / "x.mcap") as w:
        w.register_msgdefs({"my_msgs/msg/Pair": "float64 a\nstring b\n"})
        w.write("/pair", w.typestore.types["my_msgs/msg/Pair"](a=1.5, b="x"),
                "my_msgs/msg/Pair", 7)
        w.register_msgdefs({"my_msgs/msg/Pair": "float64 a\nstring b\n"})  # same: fine
        with pytest.raises(RecordingError, match=r"cannot register message types "
                                                 r"\['my_msgs/msg/Pair'\]"):
            w.register_msgdefs({"my_msgs/msg/Pair": "int32 a\n"})
        with pytest.raises(RecordingError, match=r"definition of 'my_msgs/msg/Bad' does not"):
            w.register_msgdefs({"my_msgs/msg/Bad": "float64 = = oops\n"})
    ((schema, _, msg),) = read_back(tmp_path / "x.mcap")
    assert schema.name == "my_msgs/msg/Pair" and (msg.a, msg.b) == (1.5, "x")
