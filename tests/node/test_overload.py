"""Overload: segmentation slowed to three frame periods at the recorded 10 Hz. Queues stay
bounded (memory does not grow with the number of frames), the oldest frames are dropped and
counted where they were dropped, and the frames that are published stay within a bounded
latency."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any, NamedTuple

from drivingseg.node.latency import LatencyTracker
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.processing import SegmentationNode
from drivingseg.sensors.open import open_recording

SHORT_FRAMES = 10
FRAMES = 30
DELAY_MS = 300.0
DEPTH = 2


class Overloaded(NamedTuple):
    """What one slowed run measured."""

    drops: dict[str, int]
    tracker: LatencyTracker
    peak_bytes: int
    """Peak of the memory Python allocated while the graph ran (numpy arrays included,
    exact: not sampled)."""
    max_queued: dict[str, int]
    """The most each subscription held."""
    arrivals_ns: list[int]
    """When each frame reached the segmentation node's queue (``perf_counter_ns``)."""


def run_overloaded(drive: Path, weights: Path, out: Path, depth: int, frames: int
                   ) -> Overloaded:
    """Run ``frames`` frames through the slowed pipeline."""
    desc = load_launch("pipeline", {
        "input": str(drive), "weights": str(weights), "max_frames": frames,
        "extra_delay_ms": DELAY_MS, "qos_depth": depth, "out_dir": str(out), "status": False,
        # Without proposals and the car probability: their per-frame temporaries are not
        # what this test is about (the segmentation queue).
        "proposals": False, "car_probability": False,
    })
    graph = build_graph(desc)
    (queue,) = next(n for n in graph.nodes if isinstance(n, SegmentationNode)).subscriptions
    arrivals_ns: list[int] = []
    push = queue.push

    def timed_push(msg: Any) -> None:
        arrivals_ns.append(time.perf_counter_ns())
        push(msg)

    queue.push = timed_push  # type: ignore[method-assign]
    graph.setup()
    tracemalloc.start()
    try:
        graph.run(handle_signals=False, timeout_s=60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    tracker = next(n for n in graph.nodes if isinstance(n, LatencyTracker))
    max_queued = {s.where: s.max_queued for n in graph.nodes for s in n.subscriptions}
    return Overloaded(graph.drops(), tracker, peak, max_queued, arrivals_ns)


def frame_bytes(drive: Path) -> int:
    """Bytes of one camera frame and its lidar scan: what a queued message holds."""
    with open_recording(drive) as rec:
        image = next(iter(rec.camera_frames())).image
        points = next(iter(rec.lidar_scans())).points
    return int(image.nbytes + points.nbytes)


def test_slow_segmentation_drops_oldest_with_bounded_memory(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    drops, tracker, peak, max_queued, arrivals_ns = run_overloaded(
        kitti_raw_drive, tiny_weights, tmp_path / "long", DEPTH, FRAMES)

    # Dropped at the segmentation node's input, counted, and nothing is lost unaccounted.
    assert set(drops) == {"/fused -> segmentation"}
    assert len(arrivals_ns) == FRAMES
    published = [f.index for f in tracker.frames]
    assert drops["/fused -> segmentation"] + len(published) == FRAMES
    # One frame in three at most can be segmented at 10 Hz (about 20 dropped), fewer when a
    # busy machine brings them in slower: each inference takes DELAY_MS or more, so while
    # frames arrive the node starts at most one per DELAY_MS, and DEPTH more wait queued
    # when they stop.
    arrived_ms = (arrivals_ns[-1] - arrivals_ns[0]) / 1e6
    most_segmented = int(arrived_ms // min(f.ms["inference"] for f in tracker.frames)) + 1
    assert len(published) <= most_segmented + DEPTH, (published, arrived_ms)
    # Keep-last: the newest frames survive (the last frame is always segmented).
    assert published == sorted(published) and published[-1] == FRAMES - 1
    assert tracker.report is not None
    assert tracker.report.drops == drops

    # Bounded queues: no subscription ever held more than its depth (the tracker's 1000).
    for where, n in max_queued.items():
        assert n <= (1000 if where.endswith("-> latency") else DEPTH), where

    # Latency of published frames is bounded. While frames keep coming, a frame is either
    # pushed out by the DEPTH frames after it or taken, so it waits at most as long as
    # DEPTH frames take to arrive (DEPTH periods, or longer on a busy machine, where the
    # camera reads slower than the rate and the replay runs behind) plus its own
    # inference; the last DEPTH frames, queued when the drive ends, wait for the frame
    # being segmented and the ones ahead of them.
    inference = max(f.ms["inference"] for f in tracker.frames)
    assert inference >= DELAY_MS
    e2e = [f.ms["e2e"] for f in tracker.frames]
    pushed_out_ms = max(100.0 * DEPTH, max(
        (b - a) / 1e6 for a, b in zip(arrivals_ns, arrivals_ns[DEPTH:], strict=False)))
    steady_bound = pushed_out_ms + inference + 250.0
    assert max(e2e[:-DEPTH]) <= steady_bound, (e2e, steady_bound, pushed_out_ms)
    assert max(e2e) <= (DEPTH + 1) * inference + 250.0, e2e

    # Memory does not grow with the number of frames: the peak of a run three times as long
    # is the short run's, give or take a frame or two (what the bounded queues, the sync
    # node and the nodes at work hold is the same in both, however loaded the machine:
    # 1-2 frames apart in our runs). A queue that kept what the slow node cannot take would
    # hold about 2/3 of the 20 further frames, some 13 frames (~45 MB of KITTI image and
    # scan) more; so would a leak of a frame in three.
    short = run_overloaded(kitti_raw_drive, tiny_weights, tmp_path / "short", DEPTH,
                           SHORT_FRAMES)
    short_tracker, short_peak = short.tracker, short.peak_bytes
    assert short_tracker.report is not None and short_tracker.report.frames_in == SHORT_FRAMES
    per_frame = frame_bytes(kitti_raw_drive)
    growth = peak - short_peak
    assert growth < 5 * per_frame, (peak, short_peak, per_frame)
