"""Box IoU, greedy matching, KITTI 40-point AP and the order-independent evaluator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from drivingseg.detect.evaluate import BoxEvaluator, ap_40, box_iou, match_frame
from drivingseg.detect.gt import GtBox
from drivingseg.errors import ConfigError
from drivingseg.node.messages import Detection


def det(box: tuple[float, float, float, float], score: float, rng: float | None = None
        ) -> Detection:
    """A detection whose lidar points sit ``rng`` m straight ahead of the camera (and, in
    its own ``range_m``, 1 m further from the lidar: the range error must use the camera's)."""
    if rng is None:
        return Detection("car", score, box)
    return Detection("car", score, box, rng + 1.0, (0.0, 0.0, rng), 5)


def gt(box: tuple[float, float, float, float], rng: float = 10.0, ignore: bool = False) -> GtBox:
    return GtBox(box, "Car", rng, ignore, "label")


def test_box_iou_hand_computed() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 6]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    expected = np.array([[1.0, 50 / 150, 0.0, 0.6], [25 / 175, 50 / 150, 0.0, 5 / 155]])
    np.testing.assert_allclose(iou, expected)
    # Exclusive edges: two boxes that only touch do not overlap.
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[10, 0, 20, 10]]))[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def _hand_case() -> tuple[list[Detection], list[GtBox]]:
    gts = [gt((100, 100, 150, 140), 20.0), gt((0, 0, 10, 10), 30.0)]
    dets = [
        det((100, 100, 150, 140), 0.9, 21.0),  # exact: TP at both thresholds
        det((300, 300, 340, 330), 0.8),  # nowhere: FP
        det((0, 0, 10, 6), 0.7, 28.5),  # IoU 0.6: TP at 0.5, FP at 0.7
    ]
    return dets, gts


def test_match_and_ap_hand_case() -> None:
    dets, gts = _hand_case()
    m = match_frame(dets[::-1], gts)  # input order must not matter: sorted by score
    assert m.scores == {0.5: (0.9, 0.8, 0.7), 0.7: (0.9, 0.8, 0.7)}
    assert m.tp == {0.5: (True, False, True), 0.7: (True, False, False)}
    assert m.n_gt == 2
    assert m.range_pairs == ((21.0, 20.0), (28.5, 30.0))
    ev = BoxEvaluator()
    ev.add((0, 0), m)
    res = ev.result()
    # 0.5: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1 up to recall 1/2,
    # 2/3 above: (20 * 1 + 20 * 2/3) / 40. 0.7: recall stops at 1/2 -> 20 / 40.
    assert res["ap"]["0.5"] == pytest.approx((20 + 20 * 2 / 3) / 40)
    assert res["ap"]["0.7"] == pytest.approx(0.5)
    assert res["n_gt"] == 2 and res["n_det"] == 3
    assert res["pr"]["0.5"]["precision"] == pytest.approx([1.0, 0.5, 2 / 3])
    assert res["pr"]["0.5"]["recall"] == pytest.approx([0.5, 0.5, 1.0])
    assert res["range_errors_m"] == pytest.approx([1.0, -1.5])
    rerr = res["range_error_m"]
    assert rerr["n"] == 2 and rerr["mean"] == pytest.approx(1.25)
    assert rerr["median"] == pytest.approx(1.25) and rerr["mean_signed"] == pytest.approx(-0.25)


def test_one_detection_per_box_duplicates_are_false_positives() -> None:
    m = match_frame([det((0, 0, 10, 10), 0.9), det((0, 0, 10, 10), 0.8)], [gt((0, 0, 10, 10))])
    assert m.tp[0.5] == (True, False)


def test_ignored_boxes_are_neither_tp_nor_fp() -> None:
    gts = [gt((0, 0, 10, 10)), gt((50, 50, 60, 60), ignore=True)]
    dets = [det((50, 50, 60, 60), 0.95), det((0, 0, 10, 10), 0.5), det((80, 80, 90, 90), 0.4)]
    m = match_frame(dets, gts)
    assert m.scores[0.5] == (0.5, 0.4)  # the detection on the don't-care box is gone
    assert m.tp[0.5] == (True, False)
    assert m.n_gt == 1
    # A missed don't-care box is no false negative: recall reaches 1.
    ev = BoxEvaluator()
    ev.add((0, 0), m)
    assert ev.result()["ap"]["0.5"] == pytest.approx(1.0)
    # Only a don't-care box in the frame: nothing to find, AP undefined.
    only = BoxEvaluator()
    only.add((0, 0), match_frame(dets[:1], gts[1:]))
    assert only.result()["ap"]["0.5"] is None and only.result()["n_det"] == 0


def test_each_ignored_box_absorbs_one_detection() -> None:
    """KITTI's devkit assigns one detection to each ignored (hard or similar-class) box;
    more detections on it are false positives, so over-split cars cost precision."""
    care = gt((0, 0, 100, 60), 10.0)
    hard = gt((200, 0, 300, 60), 30.0, ignore=True)
    dets = [det((200, 0, 300, 60), 0.9), det((205, 0, 300, 60), 0.8),
            det((200, 2, 298, 60), 0.7), det((0, 0, 100, 60), 0.6)]
    m = match_frame(dets, [care, hard])
    assert m.scores[0.5] == (0.8, 0.7, 0.6)  # the best-scored one on the hard car is gone
    assert m.tp[0.5] == (False, False, True)
    ev = BoxEvaluator()
    ev.add((0,), m)
    assert ev.result()["ap"]["0.5"] == pytest.approx(1 / 3)
    # A short detection (dropped anyway) does not use up the ignored box.
    short_first = [det((210, 40, 290, 60), 0.95), *dets[1:]]
    m2 = match_frame(short_first, [care, hard], min_det_height_px=25.0)
    assert m2.scores[0.5] == (0.7, 0.6)
    # DontCare regions still absorb every detection they cover.
    region = GtBox((200, 0, 300, 60), "DontCare", 10.0, True, "label")
    assert match_frame(dets, [care, region]).scores[0.5] == (0.6,)


def test_tied_scores_give_the_same_ap_whatever_the_frame_order() -> None:
    """A true and a false positive of equal score pass every threshold together: one
    point at precision 1/2, recall 1, however the frames are numbered."""
    hit = match_frame([det((0, 0, 50, 40), 1.0)], [gt((0, 0, 50, 40))])
    miss = match_frame([det((200, 0, 250, 40), 1.0)], [])
    for hit_key, miss_key in (((0,), (1,)), ((1,), (0,))):
        ev = BoxEvaluator()
        ev.add(hit_key, hit)
        ev.add(miss_key, miss)
        res = ev.result()
        assert res["ap"]["0.5"] == pytest.approx(0.5)
        assert res["pr"]["0.5"] == {"precision": [0.5], "recall": [1.0]}
    ap_a = ap_40(np.array([True, False, True]), 2, [0.9, 0.9, 0.5])
    ap_b = ap_40(np.array([False, True, True]), 2, [0.9, 0.9, 0.5])
    assert ap_a == ap_b  # the envelope takes 2/3 (the lower threshold) down to recall 0
    assert ap_a[0] == pytest.approx(2 / 3)
    assert ap_a[1:] == ([0.5, pytest.approx(2 / 3)], [0.5, 1.0])
    with pytest.raises(ConfigError, match="descending order"):
        ap_40(np.array([True, False]), 1, [0.5, 0.9])
    with pytest.raises(ConfigError, match="one per tp flag"):
        ap_40(np.array([True, False]), 1, [0.9])


def test_dont_care_regions_absorb_detections_by_the_share_they_cover() -> None:
    """KITTI's devkit drops an unmatched detection in a ``DontCare`` region when the region
    covers more than the threshold of the detection's own area (a small car inside a large
    region has a tiny IoU with it), and decides it at each threshold: a detection that
    matches its car at 0.5 but not at 0.7 is no false positive at 0.7 inside a region."""
    region = GtBox((0, 0, 400, 300), "DontCare", 10.0, True, "label")
    car = gt((500, 100, 560, 150))
    inside = det((100, 100, 140, 130), 0.9)
    m = match_frame([inside], [region, car])
    assert m.scores == {0.5: (), 0.7: ()}
    most_in = det((378, 100, 418, 130), 0.9)  # 55 % of its area in the region
    assert match_frame([most_in], [region, car]).scores == {0.5: (), 0.7: (0.9,)}
    half_in = det((380, 100, 420, 130), 0.9)  # exactly half: the devkit wants more
    assert match_frame([half_in], [region, car]).scores == {0.5: (0.9,), 0.7: (0.9,)}
    # Matched its car at 0.5 (IoU 0.6) only; it lies inside a don't-care region.
    near = GtBox((0, 0, 600, 300), "DontCare", 10.0, True, "label")
    loose = det((500, 100, 560, 130), 0.8)
    m2 = match_frame([loose], [near, car])
    assert m2.tp == {0.5: (True,), 0.7: ()}
    ev = BoxEvaluator()
    ev.add((0, 0), m2)
    assert ev.result()["ap"]["0.7"] == 0.0  # missed, but no false positive either
    assert ev.result()["pr"]["0.7"] == {"precision": [], "recall": []}


def test_short_detections_can_be_ignored() -> None:
    m = match_frame([det((0, 0, 10, 5), 0.9)], [], min_det_height_px=25.0)
    assert m.scores == {0.5: (), 0.7: ()}
    assert match_frame([det((0, 0, 10, 5), 0.9)], []).tp[0.5] == (False,)


def test_ap_40_perfect_and_empty() -> None:
    assert ap_40(np.array([True, True]), 2)[0] == pytest.approx(1.0)
    assert ap_40(np.array([], dtype=bool), 3)[0] == 0.0
    assert ap_40(np.array([True]), 0)[0] is None


def test_evaluator_independent_of_add_order_and_pickles() -> None:
    rng = np.random.default_rng(7)
    frames = []
    for f in range(6):
        gts = [gt((float(x), 0.0, x + 20.0, 30.0)) for x in range(0, 100, 40)]
        dets = [det((x + float(rng.integers(-8, 9)), 0.0, x + 20.0, 30.0),
                    float(rng.choice([0.5, 0.6, 0.9])), 15.0 + f) for x in range(0, 120, 30)]
        frames.append(((1, f), pickle.loads(pickle.dumps(match_frame(dets, gts)))))
    a, b = BoxEvaluator(), BoxEvaluator()
    for key, m in frames:
        a.add(key, m)
    half = BoxEvaluator()
    for key, m in frames[::-2]:
        half.add(key, m)
    for key, m in frames[-2::-2]:
        b.add(key, m)
    b.merge(half)
    assert a.result() == b.result()
    assert 0.0 < a.result()["ap"]["0.5"] < 1.0


def test_evaluator_rejects_bad_input() -> None:
    ev = BoxEvaluator((0.5,))
    m = match_frame([], [gt((0, 0, 10, 10))], (0.5,))
    ev.add((0,), m)
    with pytest.raises(ConfigError, match="added twice"):
        ev.add((0,), m)
    with pytest.raises(ConfigError, match="thresholds"):
        ev.add((1,), match_frame([], [], (0.5, 0.7)))
    with pytest.raises(ConfigError, match="distinct values"):
        BoxEvaluator((0.5, 1.5))


def test_box_iou_refuses_boxes_that_are_not_four_numbers() -> None:
    """Four N x 3 rows reshaped to three 4-number boxes scored other boxes silently."""
    assert box_iou([0, 0, 10, 10], [[0, 0, 10, 10], [0, 0, 5, 10]]).tolist() == [[1.0, 0.5]]
    assert box_iou([], [[0, 0, 1, 1]]).shape == (0, 1)
    with pytest.raises(ConfigError, match=r"boxes a must be N x 4 \(x1, y1, x2, y2\), got "
                                          r"shape \(4, 3\)"):
        box_iou(np.zeros((4, 3)), [[0, 0, 1, 1]])
