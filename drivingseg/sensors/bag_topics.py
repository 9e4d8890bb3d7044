"""How a bag's topic of each kind is chosen when several could be it, as ROS lays them out.

image_transport puts a camera's CameraInfo beside its images (``/cam/camera_info`` for
``/cam/image_raw``) and its JPEG twin below them (``/cam/image_raw/compressed``).
"""

from __future__ import annotations

from collections.abc import Sequence, Set

__all__ = ["camera_info_of", "pick_among"]


def camera_info_of(image_topic: str) -> str:
    """Where ROS puts an image topic's CameraInfo: ``camera_info`` in its namespace
    (``/cam/image_raw`` and ``/cam/image_raw/compressed`` -> ``/cam/camera_info``)."""
    return image_topic.removesuffix("/compressed").rsplit("/", 1)[0] + "/camera_info"


def pick_among(kind: str, candidates: Sequence[str], camera_infos: Set[str],
               image_topic: str | None) -> str | None:
    """The one of several ``kind`` topics (with messages) that ROS's layout singles out, or
    None when it is ambiguous: the CameraInfo beside ``image_topic``; the one camera with a
    CameraInfo (of ``camera_infos``) beside it (a mask topic has none); the raw topic of one
    image recorded raw and as its ``.../compressed`` twin."""
    if kind == "camera_info" and image_topic is not None:
        sibling = camera_info_of(image_topic)
        return sibling if sibling in candidates else None
    if kind != "camera":
        return None
    cameras = [name for name in candidates if camera_info_of(name) in camera_infos]
    if len(cameras) == 1:
        return cameras[0]
    raw = {name.removesuffix("/compressed") for name in cameras or candidates}
    if len(raw) == 1 and raw <= set(candidates):
        return raw.pop()
    return None
