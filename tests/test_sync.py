"""Tests for drivingseg.sync: ApproximateTime-style camera-lidar pairing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivingseg.errors import SyncError
from drivingseg.sync import (
    PUSHED_OUT_KEPT,
    ApproximateTimeSync,
    SyncedPair,
    SyncStats,
    synchronize,
)

MS = 1_000_000


@dataclass(frozen=True)
class Msg:
    stamp_ns: int
    name: str = ""


def cams(*ms: float) -> list[Msg]:
    return [Msg(int(t * MS), f"c{t}") for t in ms]


def scans(*ms: float) -> list[Msg]:
    return [Msg(int(t * MS), f"l{t}") for t in ms]


def test_ten_hz_with_small_offset_pairs_every_frame() -> None:
    c = cams(*[100 * i for i in range(20)])
    lid = scans(*[100 * i - 3 for i in range(20)])
    stats = SyncStats()
    pairs = list(synchronize(c, lid, stats=stats))
    assert [p.camera for p in pairs] == c
    assert [p.lidar for p in pairs] == lid
    assert {p.offset_ns for p in pairs} == {-3 * MS}
    assert stats.matched == 20 and stats.unmatched_camera == 0 and stats.unmatched_lidar == 0
    assert stats.max_abs_offset_ns == 3 * MS


def test_missing_scan_leaves_its_frame_unmatched_and_counted() -> None:
    c = cams(0, 100, 200, 300)
    lid = scans(2, 102, 302)
    stats = SyncStats()
    pairs = list(synchronize(c, lid, stats=stats))
    assert [(p.camera.name, p.lidar.name if p.lidar else None) for p in pairs] == [
        ("c0", "l2"),
        ("c100", "l102"),
        ("c300", "l302"),
    ]
    assert stats.unmatched_camera == 1 and stats.matched == 3


def test_keep_unmatched_emits_frame_without_scan() -> None:
    pairs = list(synchronize(cams(0, 100), scans(1), keep_unmatched=True))
    assert [(p.camera.name, p.lidar) for p in pairs][1] == ("c100", None)
    assert pairs[1].offset_ns is None


def test_tolerance_is_inclusive() -> None:
    stats = SyncStats()
    pairs = list(synchronize(cams(0, 1000), scans(50, 1050.000001), stats=stats))
    assert [p.camera.name for p in pairs] == ["c0"]
    assert stats.unmatched_camera == 1 and stats.unmatched_lidar == 1


def test_each_scan_is_used_once() -> None:
    stats = SyncStats()
    pairs = list(synchronize(cams(0, 10), scans(5), stats=stats))
    assert len(pairs) == 1 and pairs[0].camera.name == "c0"
    assert stats.unmatched_camera == 1


def test_out_of_order_messages_are_dropped_and_counted() -> None:
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    sync.add_camera(Msg(100 * MS))
    assert sync.add_camera(Msg(50 * MS)) == []
    assert sync.add_camera(Msg(100 * MS)) == []
    sync.add_lidar(Msg(101 * MS))
    assert sync.add_lidar(Msg(90 * MS)) == []
    assert sync.stats.out_of_order_camera == 2
    assert sync.stats.out_of_order_lidar == 1


def test_a_later_scan_is_paired_once_no_later_frame_can_be_nearer() -> None:
    """Used to be emitted on the scan's arrival alone; but a frame at 102 ms would be
    nearer to that scan, so the pair waits for the next image or a camera period bound."""
    waiting: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    bounded: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(camera_min_period_ns=50 * MS)
    for s in (waiting, bounded):
        assert s.add_camera(Msg(100 * MS)) == []
    assert waiting.add_lidar(Msg(103 * MS)) == []
    for out in (bounded.add_lidar(Msg(103 * MS)), waiting.add_camera(Msg(200 * MS))):
        assert [(p.camera.stamp_ns, p.offset_ns) for p in out] == [(100 * MS, 3 * MS)]
    assert ApproximateTimeSync(camera_min_period_ns=5 * MS,
                               learn_camera_period=True).camera_period_bound_ns == 5 * MS


def test_min_period_decides_without_waiting_for_the_next_scan() -> None:
    waiting: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    eager: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(lidar_min_period_ns=50 * MS)
    for s in (waiting, eager):
        s.add_lidar(Msg(97 * MS))
    assert waiting.add_camera(Msg(100 * MS)) == []
    out = eager.add_camera(Msg(100 * MS))
    assert len(out) == 1 and out[0].offset_ns == -3 * MS


def test_a_learned_lidar_period_decides_frames_on_arrival() -> None:
    """10 Hz scans stamped 3 ms before their frames: without a period bound every frame
    waits for the next scan (one period); learned from the stream, only the first two do."""
    waiting: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    learned: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(learn_lidar_period=True)
    on_arrival = {id(waiting): 0, id(learned): 0}
    pairs: dict[int, list[tuple[int, int | None]]] = {id(waiting): [], id(learned): []}
    for k in range(10):
        jitter_ms = (k * 7) % 3  # scan intervals of 99 and 102 ms
        for s in (waiting, learned):
            done = s.add_lidar(Msg((k * 100 - 3 - jitter_ms) * MS))
            pairs[id(s)] += [(p.camera.stamp_ns, p.offset_ns) for p in done]
            done = s.add_camera(Msg(k * 100 * MS))
            on_arrival[id(s)] += any(p.camera.stamp_ns == k * 100 * MS for p in done)
            pairs[id(s)] += [(p.camera.stamp_ns, p.offset_ns) for p in done]
    assert on_arrival[id(waiting)] == 0 and on_arrival[id(learned)] == 8
    assert learned.period_bound_ns == int(0.45 * 99 * MS)
    assert pairs[id(learned)] == pairs[id(waiting)] + [(p.camera.stamp_ns, p.offset_ns)
                                                       for p in waiting.flush()]
    assert ApproximateTimeSync(lidar_min_period_ns=5 * MS,
                               learn_lidar_period=True).period_bound_ns == 5 * MS


def test_queues_stay_bounded_when_one_stream_stalls() -> None:
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(queue_size=4)
    for i in range(100):
        sync.add_camera(Msg(i * 100 * MS))
    assert len(sync._cameras) == 4
    assert sync.stats.dropped_queue_camera == 96


def test_scans_pushed_out_before_the_camera_starts_are_unmatched_not_lost() -> None:
    """A lidar that starts 1.5 s before the camera (a bag whose camera driver came up
    later) overflowed the lidar queue before the first frame: those scans were counted
    lost ('lidar queue full waiting for camera frames (frames late or stalled)'), though
    no frame was ever within the tolerance of them."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(queue_size=4)
    pairs = []
    for i in range(20):
        pairs += sync.add_lidar(Msg(i * 100 * MS))
        if i >= 15:
            pairs += sync.add_camera(Msg(i * 100 * MS))
    pairs += sync.flush()
    s = sync.stats
    assert [p.camera.stamp_ns for p in pairs] == [i * 100 * MS for i in range(15, 20)]
    assert s.dropped_queue_lidar == 0
    assert s.matched == 5 and s.unmatched_lidar == 15


def test_scans_pushed_out_of_a_camera_that_never_starts_stay_bounded() -> None:
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(queue_size=4)
    for i in range(PUSHED_OUT_KEPT + 500):
        sync.add_lidar(Msg(i * 100 * MS))
    assert len(sync._lidars) == 4 and len(sync._pushed_out) == PUSHED_OUT_KEPT
    sync.flush()
    assert sync.stats.unmatched_lidar == PUSHED_OUT_KEPT + 500
    assert sync.stats.dropped_queue_lidar == 0


def test_scans_pushed_out_while_the_camera_stalls_are_lost() -> None:
    """Frames late (the camera's decoder stalled) find the scans of their stamps pushed
    out of the full lidar queue: those are lost, and their frames go without a scan."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(queue_size=4)
    pairs = []
    for i in range(10):
        pairs += sync.add_lidar(Msg(i * 100 * MS))
    for i in range(10):
        pairs += sync.add_camera(Msg(i * 100 * MS))
    pairs += sync.flush()
    s = sync.stats
    assert s.dropped_queue_lidar == 6 and s.matched == 4 and s.unmatched_camera == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance_ns": -1}, "tolerance_ns must be a whole number of nanoseconds >= 0 .*got -1"),
        ({"queue_size": 0}, "queue_size must be >= 1, got 0"),
        ({"lidar_min_period_ns": -5}, "lidar_min_period_ns must be .* >= 0 .*got -5"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SyncError, match=match):
        ApproximateTimeSync(**kwargs)


@pytest.mark.parametrize("name", ["tolerance_ns", "lidar_min_period_ns", "camera_min_period_ns"])
def test_durations_in_seconds_are_refused(name: str) -> None:
    """``synchronize(cams, scans, 0.05)`` (seconds) became a 0 ns tolerance: only frames
    stamped exactly with a scan were paired, the rest silently counted unmatched."""
    with pytest.raises(SyncError, match=rf"{name} must be a whole number of nanoseconds "
                                        r">= 0 \(50 ms is 50_000_000\), got 0.05"):
        ApproximateTimeSync(**{name: 0.05})
    with pytest.raises(SyncError, match=r"got 0\.05"):
        list(synchronize([Msg(0)], [Msg(MS)], 0.05))  # type: ignore[arg-type]
    assert ApproximateTimeSync(**{name: 5e7}).tolerance_ns >= 0  # a whole float is fine


def test_synchronize_types_pairs_by_keep_unmatched() -> None:
    """Without keep_unmatched every pair has a scan (the type says so); with it, an
    unmatched frame's pair has ``lidar`` None."""
    matched = list(synchronize([Msg(0), Msg(500 * MS)], [Msg(MS)]))
    assert [p.lidar.stamp_ns for p in matched] == [MS]
    kept = list(synchronize([Msg(0), Msg(500 * MS)], [Msg(MS)], keep_unmatched=True))
    assert [p.lidar for p in kept][1] is None


stamps = st.lists(st.integers(min_value=0, max_value=2_000), min_size=0, max_size=40, unique=True)


NODE_DEFAULTS = {"learn_lidar_period": True, "learn_camera_period": True}
"""How SyncNode builds its synchroniser by default."""


def live(c: list[Msg], lid: list[Msg], **kwargs: Any) -> list[SyncedPair[Msg, Msg | None]]:
    """Feed both streams merged by stamp, as they arrive live; then flush."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(**kwargs)
    out: list[SyncedPair[Msg, Msg | None]] = []
    for m in sorted(c + lid, key=lambda m: (m.stamp_ns, m.name[0] == "l")):
        out += sync.add_camera(m) if m.name[0] == "c" else sync.add_lidar(m)
    return out + sync.flush()


def names(pairs: Sequence[SyncedPair[Msg, Msg | None]]) -> list[tuple[str, str | None]]:
    return [(p.camera.name, p.lidar.name if p.lidar else None) for p in pairs]


@pytest.mark.parametrize("kwargs", [{}, NODE_DEFAULTS, {"lidar_min_period_ns": 90 * MS}])
def test_a_scan_goes_to_the_frame_stamped_with_it(kwargs: dict[str, Any]) -> None:
    """Slow lidar: c66 must not take l100 from c100 (nor c166 l200 from c200)."""
    c, lid = cams(0, 33, 66, 100, 133, 166, 200), scans(0, 100, 200)
    expected = [("c0", "l0"), ("c100", "l100"), ("c200", "l200")]
    assert names(list(synchronize(c, lid))) == expected
    assert names(live(c, lid, **kwargs)) == expected


@pytest.mark.parametrize("offset_ms", [-3, 0, 3, 12])
@pytest.mark.parametrize("kwargs", [{}, NODE_DEFAULTS])
def test_thirty_hz_camera_ten_hz_lidar_pairs_each_scan_with_its_frame(
    offset_ms: int, kwargs: dict[str, Any]
) -> None:
    c = [Msg(10 * MS + round(k * 100 * MS / 3), f"c{k}") for k in range(30)]
    lid = [Msg((10 + 100 * j + offset_ms) * MS, f"l{j}") for j in range(10)]
    expected = [(f"c{3 * j}", f"l{j}") for j in range(10)]
    stats = SyncStats()
    assert names(list(synchronize(c, lid, stats=stats))) == expected
    assert stats.unmatched_camera == 20 and stats.unmatched_lidar == 0
    assert names(live(c, lid, **kwargs)) == expected


@pytest.mark.parametrize(("lidar", "camera", "expected"), [
    ([0, 200, 400, 500], [455], [(455, 500)]),  # scans 100 and 300 lost: 200 ms intervals
    ([155], [0, 67, 133, 167], [(167, 155)]),  # 30 Hz frames 33 and 100 lost
])
def test_a_period_learned_over_dropped_messages_never_rules_out_a_real_one(
    lidar: list[int], camera: list[int], expected: list[tuple[int, int]],
) -> None:
    """Every interval seen so far may span a lost message (twice the period): a bound of
    0.9 of it ruled out the scan at 500 ms (next scan assumed >= 580) and gave the scan at
    155 ms to frame 133 (next frame assumed >= 253); 0.45 of it stays under the period."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(
        50 * MS, learn_lidar_period=True, learn_camera_period=True)
    events = sorted([(t, 1, Msg(t * MS)) for t in lidar] + [(t, 0, Msg(t * MS)) for t in camera],
                    key=lambda e: (e[0], e[1]))
    pairs = []
    for _, kind, msg in events:
        pairs += sync.add_lidar(msg) if kind else sync.add_camera(msg)
    pairs += sync.flush()
    assert [(p.camera.stamp_ns // MS, p.lidar.stamp_ns // MS) for p in pairs
            if p.lidar is not None] == expected


def test_equal_rates_with_scans_after_frames_decide_on_arrival_once_learned() -> None:
    """10 Hz, each scan stamped 3 ms after its frame and arriving after it: with the learned
    camera period only the first two frames wait for the next image."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(
        learn_lidar_period=True, learn_camera_period=True)
    on_arrival, pairs = 0, []
    for k in range(10):
        pairs += sync.add_camera(Msg(k * 100 * MS))
        done = sync.add_lidar(Msg((k * 100 + 3) * MS))
        on_arrival += any(p.camera.stamp_ns == k * 100 * MS for p in done)
        pairs += done
    pairs += sync.flush()
    assert on_arrival == 8
    assert [(p.camera.stamp_ns, p.offset_ns) for p in pairs] == [
        (k * 100 * MS, 3 * MS) for k in range(10)]


@pytest.mark.parametrize("keep_unmatched", [False, True])
def test_a_full_camera_queue_decides_its_oldest_frame_instead_of_dropping_it(
    keep_unmatched: bool,
) -> None:
    """2 Hz lidar, 30 Hz camera, queue_size=10: 15 frames wait for each next scan."""
    lid = [Msg(j * 500 * MS, f"l{j}") for j in range(6)]
    c = [Msg(20 * MS + round(k * 100 * MS / 3), f"c{k}") for k in range(90)]
    stats = SyncStats()
    offline = list(synchronize(c, lid, stats=stats))
    # Each scan goes to its nearest frame: c0 (20 ms after l0), then 13.3 ms before each.
    expected = [("c0", "l0")] + [(f"c{15 * j - 1}", f"l{j}") for j in range(1, 6)]
    assert names(offline) == expected
    assert stats.matched + stats.unmatched_camera == len(c)
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(
        queue_size=10, keep_unmatched=keep_unmatched)
    out: list[SyncedPair[Msg, Msg | None]] = []
    for m in sorted(c + lid, key=lambda m: m.stamp_ns):
        out += sync.add_camera(m) if m.name[0] == "c" else sync.add_lidar(m)
    out += sync.flush()
    s = sync.stats
    assert [x for x in names(out) if x[1]] == expected
    assert s.matched + s.unmatched_camera + s.dropped_queue_camera == len(c)
    assert s.dropped_queue_camera > 0
    assert len(out) == (len(c) if keep_unmatched else len(expected))


def reference(cam_ms: list[int], lidar_ms: list[int], tol_ms: int) -> list[tuple[int, int]]:
    """The documented rule, offline: (camera, lidar) stamps of the pairs."""
    free, out = sorted(lidar_ms), []
    for i, c in enumerate(cam_ms):
        s = min(free, key=lambda t: (abs(t - c), t), default=None)
        nxt = cam_ms[i + 1] if i + 1 < len(cam_ms) else None
        if s is not None and s > c and nxt is not None and abs(nxt - s) < s - c:
            s = max((t for t in free if t < c), default=None)
        if s is not None and abs(s - c) <= tol_ms:
            out.append((c, s))
            free = [t for t in free if t > s]
        else:
            free = [t for t in free if t >= c - tol_ms]
    return out


def stamps_of(pairs: Sequence[SyncedPair[Msg, Msg | None]]) -> list[tuple[int, int | None]]:
    return [(p.camera.stamp_ns // MS, p.lidar.stamp_ns // MS if p.lidar else None)
            for p in pairs]


@settings(max_examples=200, deadline=None)
@given(stamps, stamps, st.integers(min_value=0, max_value=300))
def test_pairing_invariants(cam_ms: list[int], lidar_ms: list[int], tol_ms: int) -> None:
    c = cams(*sorted(cam_ms))
    lid = scans(*sorted(lidar_ms))
    stats = SyncStats()
    pairs = list(synchronize(c, lid, tol_ms * MS, stats=stats))
    used = [p.lidar for p in pairs]
    assert all(p.offset_ns is not None and abs(p.offset_ns) <= tol_ms * MS for p in pairs)
    assert len(set(used)) == len(used)
    assert [p.camera for p in pairs] == sorted((p.camera for p in pairs), key=lambda m: m.stamp_ns)
    assert [p.lidar for p in pairs] == sorted(used, key=lambda m: m.stamp_ns if m else 0)
    assert stats.matched + stats.unmatched_camera == len(c)
    assert stats.matched + stats.unmatched_lidar == len(lid)
    assert stamps_of(pairs) == reference(sorted(cam_ms), sorted(lidar_ms), tol_ms)
    # A scan after its frame never goes to it while the next frame is strictly nearer.
    nxt = {a.stamp_ns: b.stamp_ns for a, b in pairwise(c)}
    for p in pairs:
        assert p.offset_ns is not None
        if p.offset_ns > 0 and p.camera.stamp_ns in nxt:
            assert abs(nxt[p.camera.stamp_ns] - p.camera.stamp_ns - p.offset_ns) >= p.offset_ns


@settings(max_examples=150, deadline=None)
@given(stamps, stamps, st.integers(min_value=0, max_value=300), st.randoms(use_true_random=False))
def test_live_arrival_order_does_not_change_the_pairs(
    cam_ms: list[int], lidar_ms: list[int], tol_ms: int, rnd: Random
) -> None:
    """Each stream in order, the two interleaved at random (network delays): same pairs."""
    lid = sorted(lidar_ms)
    cam_q = [("c", t) for t in sorted(cam_ms)]
    lid_q = [("l", t) for t in lid]
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(tol_ms * MS, queue_size=None)
    pairs = []
    while cam_q or lid_q:
        take_cam = bool(cam_q) and (not lid_q or rnd.random() < 0.5)
        kind, t = (cam_q if take_cam else lid_q).pop(0)
        msg = Msg(t * MS)
        pairs += sync.add_camera(msg) if kind == "c" else sync.add_lidar(msg)
    pairs += sync.flush()
    assert stamps_of(pairs) == reference(sorted(cam_ms), lid, tol_ms)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=400), max_size=60),
       st.lists(st.integers(min_value=-5, max_value=400), max_size=60),
       st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=100))
def test_every_frame_in_is_accounted_for(
    cam_steps: list[int], lidar_steps: list[int], queue_size: int, tol_ms: int
) -> None:
    """Any queue size, out-of-order stamps included: matched + unmatched + dropped +
    out of order = frames in, and keep_unmatched emits every frame kept."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync(
        tol_ms * MS, queue_size=queue_size, keep_unmatched=True)
    emitted: list[SyncedPair[Msg, Msg | None]] = []
    tc = tl = 0
    for i in range(max(len(cam_steps), len(lidar_steps))):
        if i < len(cam_steps):
            tc += cam_steps[i]
            emitted += sync.add_camera(Msg(tc * MS))
        if i < len(lidar_steps):
            tl += lidar_steps[i]
            emitted += sync.add_lidar(Msg(tl * MS))
    emitted += sync.flush()
    s = sync.stats
    assert s.matched + s.unmatched_camera + s.dropped_queue_camera == len(emitted)
    assert len(emitted) + s.out_of_order_camera == len(cam_steps)
    assert (s.matched + s.unmatched_lidar + s.dropped_queue_lidar + s.out_of_order_lidar
            == len(lidar_steps))
    assert s.matched == sum(p.lidar is not None for p in emitted)
    assert [p.camera.stamp_ns for p in emitted] == sorted({p.camera.stamp_ns for p in emitted})


def test_real_kitti_raw_drive_pairs_every_frame(kitti_raw_drive: Path) -> None:
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as drive:
        c = [Msg(int(t)) for t in drive.camera_stamps_ns]
        lid = [Msg(int(t)) for t in drive.lidar_stamps_ns]
    stats = SyncStats()
    pairs = list(synchronize(c, lid, stats=stats))
    assert len(pairs) == 30 and stats.matched == 30
    assert all(p.offset_ns == 0 for p in pairs)


def test_the_first_out_of_order_message_of_each_stream_is_warned(
        caplog: pytest.LogCaptureFixture) -> None:
    """A clock stepping back drops every later message until it catches up: the log says so
    once per stream, with the stamps, instead of only counting."""
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    sync.add_camera(Msg(100 * MS))
    sync.add_lidar(Msg(101 * MS))
    for t in (40, 50, 60):
        sync.add_camera(Msg(t * MS))
        sync.add_lidar(Msg(t * MS))
    assert (sync.stats.out_of_order_camera, sync.stats.out_of_order_lidar) == (3, 3)
    assert caplog.text.count("is not after the last one") == 2
    assert (f"camera stamp {40 * MS} ns is not after the last one, {100 * MS} ns (0.060 s "
            "earlier): dropped") in caplog.text
    assert f"lidar stamp {40 * MS} ns is not after the last one, {101 * MS} ns" in caplog.text
