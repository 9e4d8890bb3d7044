"""The replay clock alone: what moves the paced sources' shared time base on."""

from __future__ import annotations

import threading
import time

from drivingseg.node.clock import ReplayClock


def test_a_source_held_back_past_its_time_moves_the_replay_clock_on() -> None:
    """While one paced source reads, the other holds back what is due after that read's
    message; held past its own time by a read that turned out not late (a gap in the
    other stream), its message must count from when it went out, not from its past
    schedule, which would have made the replay's own wait look like latency."""
    clock = ReplayClock()
    stop = threading.Event()
    clock.start_ns = time.perf_counter_ns()
    clock.hold("lidar", 10_000_000)  # the lidar reads a scan due about 10 ms in
    released: list[int] = []
    waiter = threading.Thread(
        target=lambda: released.append(clock.wait_release("camera", 20_000_000, stop) or 0))
    waiter.start()
    time.sleep(0.2)
    assert not released  # held: the camera frame is due after the scan being read
    unheld_ns = time.perf_counter_ns()
    clock.unhold("lidar")  # ... which was not late (its scan came after a gap)
    waiter.join(5)
    assert released and released[0] >= unheld_ns
    assert clock.start_ns + 20_000_000 == released[0]
