"""The detection types: boxes and lidar-in-image arrays are checked when built."""

from __future__ import annotations

import numpy as np
import pytest

from drivingseg.detect import Detection, GtBox, LidarInImage, match_frame, propose_regions
from drivingseg.errors import ConfigError


def test_detection_refuses_an_xywh_box() -> None:
    """A detector's (x, y, width, height) box taken for (left, top, right, bottom): the
    car at x 600 of width 70 scored as a false positive and a miss, silently."""
    with pytest.raises(ConfigError, match=r"right >= left .* got \(600, 180, 70, 40\) "
                                          r"\(an x, y, width, height box\?"):
        Detection("car", 0.9, (600, 180, 70, 40))
    gt = [GtBox((600.0, 180.0, 670.0, 220.0), "Car", 20.0, False, "label")]
    match = match_frame([Detection("car", 0.9, (600, 180, 670, 220))], gt)
    assert match.tp[0.5] == (True,)


@pytest.mark.parametrize("box", [(1.0, 2.0, 3.0), (0.0, 0.0, float("nan"), 5.0), "abcd"])
def test_detection_refuses_malformed_boxes(box: object) -> None:
    """Three numbers failed in match_frame with "cannot reshape array of size 3"."""
    with pytest.raises(ConfigError, match="Detection box_xyxy_px must be"):
        Detection("car", 0.5, box)  # type: ignore[arg-type]


def test_detection_box_is_a_tuple_of_floats() -> None:
    """A numpy box (a detector's output row) is stored as the frozen tuple the type says,
    not as a mutable array shared with the caller."""
    row = np.array([10, 20, 30, 40], dtype=np.int32)
    det = Detection("car", 0.5, row)  # type: ignore[arg-type]
    row[0] = 99
    assert det.box_xyxy_px == (10.0, 20.0, 30.0, 40.0)
    assert all(type(v) is float for v in det.box_xyxy_px)
    with pytest.raises(ConfigError, match="score must be a finite number, got nan"):
        Detection("car", float("nan"), (0, 0, 1, 1))


def test_lidar_in_image_refuses_float_pixels() -> None:
    """Float rows/cols (a projection's u, v not rounded) failed later in propose_regions
    with numpy's "arrays used as indices must be of integer type"."""
    rows = np.array([1.0, 2.0])
    with pytest.raises(ConfigError, match=r"rows must be integer pixel indices, got dtype "
                                          r"float64"):
        LidarInImage(rows, rows.astype(np.int64), np.ones(2, np.float32),
                     np.ones((2, 3), np.float32), 10, 10)  # type: ignore[arg-type]
    good = LidarInImage(rows.astype(np.int64), rows.astype(np.int64), np.ones(2, np.float32),
                        np.ones((2, 3), np.float32), 10, 10)
    ids = np.zeros((10, 10), np.uint8)
    ids[0:8, 0:8] = 2
    assert len(propose_regions(ids, None, good)) == 1
