"""Tests for drivingseg.sync: ApproximateTime-style camera-lidar pairing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivingseg.errors import SyncError
from drivingseg.sync import ApproximateTimeSync, SyncStats, synchronize

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


def test_pair_is_emitted_as_soon_as_a_later_scan_arrives() -> None:
    sync: ApproximateTimeSync[Msg, Msg] = ApproximateTimeSync()
    assert sync.add_camera(Msg(100 * MS)) == []
    out = sync.add_lidar(Msg(103 * MS))
    assert [(p.camera.stamp_ns, p.lidar.stamp_ns if p.lidar else None) for p in out] == [
        (100 * MS, 103 * MS)
    ]


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
    assert learned.period_bound_ns == int(0.9 * 99 * MS)
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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance_ns": -1}, "tolerance_ns must be >= 0, got -1"),
        ({"queue_size": 0}, "queue_size must be >= 1, got 0"),
        ({"lidar_min_period_ns": -5}, "lidar_min_period_ns must be >= 0, got -5"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(SyncError, match=match):
        ApproximateTimeSync(**kwargs)


stamps = st.lists(st.integers(min_value=0, max_value=2_000), min_size=0, max_size=40, unique=True)


@settings(max_examples=200, deadline=None)
@given(stamps, stamps, st.integers(min_value=0, max_value=300))
def test_pairing_invariants(cam_ms: list[int], lidar_ms: list[int], tol_ms: int) -> None:
    c = cams(*sorted(cam_ms))
    lid = scans(*sorted(lidar_ms))
    stats = SyncStats()
    pairs = list(synchronize(c, lid, tol_ms * MS, queue_size=1000, stats=stats))
    used = [p.lidar for p in pairs]
    assert all(p.offset_ns is not None and abs(p.offset_ns) <= tol_ms * MS for p in pairs)
    assert len(set(used)) == len(used)
    assert [p.camera for p in pairs] == sorted((p.camera for p in pairs), key=lambda m: m.stamp_ns)
    assert [p.lidar for p in pairs] == sorted(used, key=lambda m: m.stamp_ns if m else 0)
    assert stats.matched + stats.unmatched_camera == len(c)
    assert stats.matched + stats.unmatched_lidar == len(lid)
    # Greedy optimality: no scan still free at a frame's turn was strictly nearer.
    free = list(lid)
    for p in pairs:
        assert p.lidar is not None
        d = abs(p.lidar.stamp_ns - p.camera.stamp_ns)
        assert all(abs(s.stamp_ns - p.camera.stamp_ns) >= d for s in free)
        free = [s for s in free if s.stamp_ns > p.lidar.stamp_ns]


def test_real_kitti_raw_drive_pairs_every_frame(kitti_raw_drive: Path) -> None:
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as drive:
        c = [Msg(int(t)) for t in drive.camera_stamps_ns]
        lid = [Msg(int(t)) for t in drive.lidar_stamps_ns]
    stats = SyncStats()
    pairs = list(synchronize(c, lid, stats=stats))
    assert len(pairs) == 30 and stats.matched == 30
    assert all(p.offset_ns == 0 for p in pairs)
