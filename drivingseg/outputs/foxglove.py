"""Foxglove image annotations: boxes drawn over a camera image in Foxglove's Image panel
(``foxglove_msgs/msg/ImageAnnotations``), for the MCAP writer to record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rosbags.typesys.store import Typestore

__all__ = ["FOXGLOVE_ANNOTATION_MSGDEFS", "BoxAnnotation", "image_annotations_msg"]

FOXGLOVE_ANNOTATION_MSGDEFS: dict[str, str] = {
    "foxglove_msgs/msg/Color": "float64 r\nfloat64 g\nfloat64 b\nfloat64 a\n",
    "foxglove_msgs/msg/Point2": "float64 x\nfloat64 y\n",
    "foxglove_msgs/msg/CircleAnnotation": (
        "builtin_interfaces/Time timestamp\n"
        "foxglove_msgs/Point2 position\n"
        "float64 diameter\n"
        "float64 thickness\n"
        "foxglove_msgs/Color fill_color\n"
        "foxglove_msgs/Color outline_color\n"
    ),
    "foxglove_msgs/msg/PointsAnnotation": (
        "builtin_interfaces/Time timestamp\n"
        "uint8 UNKNOWN=0\n"
        "uint8 POINTS=1\n"
        "uint8 LINE_LOOP=2\n"
        "uint8 LINE_STRIP=3\n"
        "uint8 LINE_LIST=4\n"
        "uint8 type\n"
        "foxglove_msgs/Point2[] points\n"
        "foxglove_msgs/Color outline_color\n"
        "foxglove_msgs/Color[] outline_colors\n"
        "foxglove_msgs/Color fill_color\n"
        "float64 thickness\n"
    ),
    "foxglove_msgs/msg/TextAnnotation": (
        "builtin_interfaces/Time timestamp\n"
        "foxglove_msgs/Point2 position\n"
        "string text\n"
        "float64 font_size\n"
        "foxglove_msgs/Color text_color\n"
        "foxglove_msgs/Color background_color\n"
    ),
    "foxglove_msgs/msg/ImageAnnotations": (
        "foxglove_msgs/CircleAnnotation[] circles\n"
        "foxglove_msgs/PointsAnnotation[] points\n"
        "foxglove_msgs/TextAnnotation[] texts\n"
    ),
}
"""ROS 2 definitions of Foxglove's image annotation messages (``builtin_interfaces/Time``
is in every ROS 2 typestore already)."""

_LINE_LOOP = 2

RGBA = tuple[float, float, float, float]


@dataclass(frozen=True)
class BoxAnnotation:
    """A box to draw over an image: ``box_xyxy_px`` (left, top, right, bottom) with
    exclusive right/bottom edges, i.e. in Foxglove's convention where the top-left corner
    of the top-left pixel is (0, 0); ``text`` is written above its top-left corner."""

    box_xyxy_px: tuple[float, float, float, float]
    text: str = ""
    colour_rgba: RGBA = (0.0, 0.63, 1.0, 1.0)


def image_annotations_msg(typestore: Typestore, boxes: Sequence[BoxAnnotation], stamp_ns: int,
                          *, thickness_px: float = 2.0, font_size_px: float = 14.0) -> Any:
    """``boxes`` as one ``ImageAnnotations`` of ``typestore`` (which must hold
    :data:`FOXGLOVE_ANNOTATION_MSGDEFS`): per box a closed polygon (``PointsAnnotation``
    LINE_LOOP through its four corners) and, when it has text, a ``TextAnnotation``
    (bottom-left at the top-left corner); all stamped ``stamp_ns``."""
    t = typestore.types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    colour, point = t["foxglove_msgs/msg/Color"], t["foxglove_msgs/msg/Point2"]
    clear = colour(r=0.0, g=0.0, b=0.0, a=0.0)
    polygons, labels = [], []
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box.box_xyxy_px)
        rgba = colour(r=box.colour_rgba[0], g=box.colour_rgba[1], b=box.colour_rgba[2],
                      a=box.colour_rgba[3])
        corners = [point(x=x, y=y) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]
        polygons.append(t["foxglove_msgs/msg/PointsAnnotation"](
            timestamp=stamp, type=_LINE_LOOP, points=corners, outline_color=rgba,
            outline_colors=[], fill_color=clear, thickness=float(thickness_px)))
        if box.text:
            labels.append(t["foxglove_msgs/msg/TextAnnotation"](
                timestamp=stamp, position=point(x=x1, y=max(float(font_size_px), y1 - 2.0)),
                text=box.text,
                font_size=float(font_size_px), text_color=colour(r=1.0, g=1.0, b=1.0, a=1.0),
                background_color=rgba))
    return t["foxglove_msgs/msg/ImageAnnotations"](circles=[], points=polygons, texts=labels)
