"""The runtime alone: keep-last-N queues drop the oldest and count it, ``block`` waits for
room, closing publishers ends subscribers, parameters are validated by declaration."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from drivingseg.errors import ConfigError, RecordingError
from drivingseg.node.graph import Graph
from drivingseg.node.latency import LatencyTracker
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.messages import CameraImage, Diagnostics, FusedInput, LidarCloud, Timing
from drivingseg.node.params import Param
from drivingseg.node.processing import SegmentationNode
from drivingseg.node.runtime import Node
from drivingseg.node.sync_node import SyncNode
from drivingseg.sensors.frames import CameraFrame, LidarScan


class Talker(Node):
    type_name = "talker"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pub = self.create_publisher("/chatter", Diagnostics)

    def run(self) -> None:
        for i in range(int(self.p["qos_depth"])):
            self.pub.publish(msg(i))


class Listener(Node):
    type_name = "listener"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("delay_s", float, 0.0, "sleep per message", "s", min=0.0, max=1.0),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sub = self.create_subscription("/chatter", Diagnostics, self.on_msg)
        self.got: list[int] = []
        self.closed = False

    def on_msg(self, m: Diagnostics) -> None:
        time.sleep(self.p["delay_s"])
        self.got.append(m.level)

    def on_inputs_closed(self) -> None:
        self.closed = True


def msg(i: int) -> Diagnostics:
    return Diagnostics(i, "test", i, "")


def test_keep_last_drops_the_oldest_and_counts_where() -> None:
    graph = Graph()
    talker = graph.add(Talker, "talker")
    listener = graph.add(Listener, "listener", {"qos_depth": 3})
    for i in range(10):
        talker.pub.publish(msg(i))
    assert len(listener.sub) == 3
    assert listener.sub.dropped == 7
    # Diagnostics are not camera frames: lost, not dropped frames.
    assert graph.losses() == {"diagnostics messages": {"/chatter -> listener": 7}}
    assert graph.drops() == {}
    talker.pub.close()
    listener.run()
    assert listener.got == [7, 8, 9]
    assert listener.closed


def test_block_overflow_waits_for_room_and_loses_nothing() -> None:
    graph = Graph(overflow="block")
    talker = graph.add(Talker, "talker", {"qos_depth": 50})
    listener = graph.add(Listener, "listener", {"qos_depth": 2, "delay_s": 0.002})
    result = graph.run(handle_signals=False, timeout_s=30)
    assert result.signal is None
    assert listener.got == list(range(50))
    assert listener.sub.dropped == 0
    assert listener.sub.max_queued <= 2
    assert talker.pub.published == 50


def test_stop_drains_and_abort_leaves() -> None:
    graph = Graph()
    talker = graph.add(Talker, "talker")
    listener = graph.add(Listener, "listener", {"qos_depth": 5, "delay_s": 0.5})
    for i in range(5):
        talker.pub.publish(msg(i))
    talker.pub.close()
    thread = threading.Thread(target=listener.run)
    thread.start()
    deadline = time.monotonic() + 30  # a busy machine may start the thread late
    while len(listener.sub) == 5:  # abort while the node handles the first message
        assert time.monotonic() < deadline, "the listener never took a message"
        time.sleep(0.005)
    graph.abort()
    thread.join(2.0)
    assert not thread.is_alive()
    assert listener.got == [0]
    assert not listener.closed


def test_parameters_are_validated_on_construction() -> None:
    graph = Graph(path="x.yaml")
    with pytest.raises(ConfigError, match=r"x\.yaml: node 'l' \(listener\): parameter "
                       r"'delay_s': 2\.0 is above the maximum 1 s"):
        graph.add(Listener, "l", {"delay_s": 2.0}, path="x.yaml")
    with pytest.raises(ConfigError, match=r"parameter 'qos_depth': expected an integer, got 1\.5"):
        graph.add(Listener, "l", {"qos_depth": 1.5}, path="x.yaml")
    graph.add(Listener, "l")
    with pytest.raises(ConfigError, match=r"node 'l': a node of that name already exists"):
        graph.add(Talker, "l")
    with pytest.raises(ConfigError, match=r"qos overflow 'sometimes' is not one of"):
        Graph(overflow="sometimes")


def test_live_view_without_a_display_does_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from drivingseg.node.outputs import LiveView

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    graph = Graph()
    node = graph.add(LiveView, "live")
    assert not node.enabled and not node.subscriptions
    graph.setup()
    graph.run(handle_signals=False, timeout_s=5)
    assert "live: no display (DISPLAY is not set); the live window is off" in caplog.text


def test_live_view_says_nothing_when_the_graph_fails_to_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A replay that failed on a bad parameter printed the 'no display' warning above its
    one-line error; the warning now comes only once the graph starts."""
    from drivingseg.node.outputs import LiveView

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    graph = Graph()
    graph.add(LiveView, "live")
    graph.add(Opener, "bad", {"fail_in": "ready"})
    with pytest.raises(ConfigError, match="not ready"):
        graph.setup()
    assert "no display" not in caplog.text


def test_live_view_never_blocks_the_graph_and_its_skips_are_not_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a display, in a graph whose queues block (--fast), the window's queue still
    drops the oldest: it used to hold the pipeline to the window's pace, and (drop_oldest)
    the masks it skipped were reported as dropped frames."""
    from drivingseg.node import outputs
    from drivingseg.node.messages import Mask

    monkeypatch.setattr(outputs, "display_available", lambda: True)
    graph = Graph(overflow="block")
    node = graph.add(outputs.LiveView, "live", {"boxes": False})
    assert node.enabled
    (sub,) = node.subscriptions
    assert sub.qos.overflow == "drop_oldest" and sub.qos.depth == 1
    frame = CameraFrame(0, np.zeros((4, 4, 3), np.uint8))
    for i in range(5):  # returns at once: nothing takes them off the queue
        sub.push(Mask(frame, np.zeros((4, 4), np.uint8), ("background",),
                      Timing(i, i, 0), 0))
    assert node.skipped == 4
    assert graph.drops() == {}


class Opener(Node):
    """Records its lifecycle calls; fails in the hook named by ``fail_in``."""

    type_name = "opener"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("fail_in", str, "", "lifecycle hook that raises", choices=("", "setup", "ready")),
    )
    calls: ClassVar[list[str]] = []

    def setup(self) -> None:
        self.calls.append(f"{self.name}.setup")
        if self.p["fail_in"] == "setup":
            raise self.config_error("cannot open", "fail_in")

    def ready(self) -> None:
        if self.p["fail_in"] == "ready":
            raise self.config_error("not ready", "fail_in")

    def shutdown(self) -> None:
        self.calls.append(f"{self.name}.shutdown")


@pytest.mark.parametrize("hook", ["setup", "ready"])
def test_a_node_failing_to_start_shuts_down_those_already_set_up(hook: str) -> None:
    """Outputs opened before the failure are finalised, inputs closed; nodes after the
    failing one were never set up and are left alone."""
    Opener.calls.clear()
    graph = Graph()
    for name in ("a", "b"):
        graph.add(Opener, name)
    graph.add(Opener, "bad", {"fail_in": hook})
    graph.add(Opener, "after")
    with pytest.raises(ConfigError, match=r"node 'bad' \(opener\): parameter 'fail_in'"):
        graph.setup()
    if hook == "setup":
        assert Opener.calls == ["a.setup", "b.setup", "bad.setup",
                                "bad.shutdown", "b.shutdown", "a.shutdown"]
    else:
        assert Opener.calls == ["a.setup", "b.setup", "bad.setup", "after.setup",
                                "after.shutdown", "bad.shutdown", "b.shutdown", "a.shutdown"]


class Reporter(Node):
    """Fails in ``run`` or ``after_run`` as ``fail_in`` says; records its reports."""

    type_name = "reporter"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("fail_in", str, "", "hook that raises", choices=("", "run", "after_run")),
    )
    reports: ClassVar[list[str]] = []

    def run(self) -> None:
        if self.p["fail_in"] == "run":
            raise RecordingError("frame 3 is damaged")

    def after_run(self) -> None:
        if self.p["fail_in"] == "after_run":
            raise RecordingError("cannot write the summary")
        self.reports.append(self.name)


def test_every_node_reports_and_the_first_error_is_raised() -> None:
    """A node failing to report (a latency file it cannot write) used to skip the later
    nodes' reports and hide the error that stopped the graph."""
    Reporter.reports.clear()
    graph = Graph()
    graph.add(Reporter, "source", {"fail_in": "run"})
    graph.add(Reporter, "tracker", {"fail_in": "after_run"})
    graph.add(Reporter, "recorder")
    with pytest.raises(RecordingError, match="frame 3 is damaged"):
        graph.run(handle_signals=False, timeout_s=10)
    assert Reporter.reports == ["source", "recorder"]


def test_sync_node_forgets_frames_it_will_never_publish() -> None:
    """With the lidar stalled, frames are decided unmatched and never published; their
    arrival times used to pile up in the node, one per frame, without end."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"queue_size": 10})
    image = np.zeros((2, 2, 3), np.uint8)
    for k in range(500):
        stamp = k * 100_000_000
        node.on_camera(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    assert node.sync.stats.dropped_queue_camera + node.sync.stats.unmatched_camera == 490
    assert len(node._arrived) <= 11
    # The drops say the lidar is what is missing, not only that a queue was full.
    assert node.drops()["sync: camera queue full waiting for lidar (scans late or stalled)"] > 0


def test_lost_lidar_scans_are_not_dropped_frames() -> None:
    """Scans lost at the sync node's queue used to be counted as dropped frames, so masks
    plus dropped frames came to more than the camera frames in."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"qos_depth": 2})
    image = np.zeros((2, 2, 3), np.uint8)
    for k in range(5):  # a burst of scans and frames while the node is busy
        stamp = k * 100_000_000
        node.lidar_sub.push(LidarCloud(LidarScan(stamp, np.zeros((1, 4), np.float32)),
                                       Timing(stamp, k, 0)))
        node.camera_sub.push(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    assert graph.drops() == {"/camera/image -> sync": 3}
    assert graph.losses() == {"lidar scans": {"/lidar/points -> sync": 3}}


def test_lidar_scans_dropped_for_a_stamp_out_of_order_are_reported_lost() -> None:
    """The synchroniser drops a scan whose stamp goes back; the sync node reported the
    cameras' out-of-order drops but not the lidar's, so those scans vanished silently."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"queue_size": 10})
    image = np.zeros((2, 2, 3), np.uint8)
    for k, lidar_k in enumerate([0, 1, 2, 1, 0, 3, 4]):  # two scans step back
        node.on_lidar(LidarCloud(LidarScan(lidar_k * 100_000_000,
                                           np.zeros((1, 4), np.float32)),
                                 Timing(lidar_k * 100_000_000, k, 0)))
    for k in range(5):
        stamp = k * 100_000_000
        node.on_camera(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    node.on_inputs_closed()
    assert node.sync.stats.out_of_order_lidar == 2
    assert graph.losses() == {"lidar scans": {"sync: lidar stamp out of order": 2}}
    assert graph.drops() == {}


def test_lidar_scans_dropped_from_the_full_sync_queue_are_reported_lost() -> None:
    """With the camera behind, the synchroniser's lidar queue overflowed and dropped the
    oldest scans; the frames that came later were then reported dropped 'without a lidar
    scan in tolerance', while the scans thrown away for them appeared nowhere."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"queue_size": 4})
    image = np.zeros((2, 2, 3), np.uint8)
    for k in range(10):  # the camera stalls while the lidar goes on
        stamp = k * 100_000_000
        node.on_lidar(LidarCloud(LidarScan(stamp, np.zeros((1, 4), np.float32)),
                                 Timing(stamp, k, 0)))
    for k in range(10):
        stamp = k * 100_000_000
        node.on_camera(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    node.on_inputs_closed()
    stats = node.sync.stats
    assert stats.dropped_queue_lidar == 6
    assert graph.losses() == {"lidar scans": {
        "sync: lidar queue full waiting for camera frames (frames late or stalled)": 6}}
    assert node.pub.published + sum(graph.drops().values()) == 10


def test_frames_the_sync_node_holds_when_it_ends_unflushed_are_dropped() -> None:
    """Frames waiting in the synchroniser for their scan when the node ended without
    flushing (an aborted run, a failure) got no mask and were counted nowhere."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"queue_size": 10})
    image = np.zeros((2, 2, 3), np.uint8)
    for k in range(3):
        stamp = k * 100_000_000
        node.on_camera(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    assert graph.drops() == {}  # still waiting: not dropped while the node runs
    node.deactivate()
    assert graph.drops() == {"sync: waiting for a pairing when the node ended": 3}


@pytest.mark.parametrize("keep_unmatched", [False, True])
def test_sync_node_drops_count_only_frames_it_did_not_publish(keep_unmatched: bool) -> None:
    """With keep_unmatched the frames without a scan are published (and segmented), yet
    they used to be reported as dropped: masks + dropped came to more than the frames in."""
    graph = Graph()
    node = graph.add(SyncNode, "sync", {"queue_size": 10, "keep_unmatched": keep_unmatched})
    image = np.zeros((2, 2, 3), np.uint8)
    for k in range(30):
        stamp = k * 100_000_000
        node.on_camera(CameraImage(CameraFrame(stamp, image), None, Timing(stamp, k, 0)))
    node.on_inputs_closed()
    stats = node.sync.stats
    assert stats.dropped_queue_camera > 0 and stats.unmatched_camera > 0
    dropped = sum(node.drops().values())
    assert node.pub.published + dropped == 30
    assert dropped == (0 if keep_unmatched else 30)


@pytest.mark.parametrize(("rate", "overflow"), [(0.0, "block"), (4.0, "drop_oldest")])
def test_an_aborted_run_accounts_for_every_frame(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, rate: float, overflow: str
) -> None:
    """Aborted with frames queued, 'masks + dropped' came to fewer than the frames in
    (63 in, 54 masks, 1 dropped after a double SIGTERM of ``replay --fast``): whatever the
    queues held was cleared without a count, and with ``--fast`` a frame pushed out at
    the abort was reported as a queue drop, which ``--fast`` promises never happen."""
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "weights": str(tiny_weights), "rate": rate,
        "overflow": overflow, "extra_delay_ms": 60.0, "out_dir": str(tmp_path),
        "record": False, "video": False, "masks": False, "live": False, "status": False}))
    tracker = next(n for n in graph.nodes if isinstance(n, LatencyTracker))
    graph.setup()

    def abort_after_some_masks() -> None:
        if len(tracker.samples) >= 4:
            graph.abort()

    graph.run(handle_signals=False, timeout_s=60, on_tick=abort_after_some_masks)

    report = tracker.report
    assert report is not None
    assert 4 <= report.masks < report.frames_in < 30, "aborted mid-run with frames queued"
    assert report.masks + report.dropped == report.frames_in, report.drops
    if overflow == "block":  # the queue policy drops nothing: frames were only left behind
        assert all("when the node ended" in where for where in report.drops), report.drops


@pytest.mark.parametrize(("rate", "overflow"), [(0.0, "block"), (1.0, "drop_oldest")])
def test_a_run_stopped_by_a_failing_node_accounts_for_every_frame(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    rate: float, overflow: str,
) -> None:
    """The frame a node was handling when it failed (the segmentation's fourth: CUDA out
    of memory, a frame size the model refuses) was counted nowhere: the summary and
    latency.json said 3 masks and 0 dropped of 4 frames in."""
    handled = itertools.count(1)
    segment = SegmentationNode.on_fused

    def fail_on_the_fourth(self: SegmentationNode, msg: FusedInput) -> None:
        if next(handled) == 4:
            raise RuntimeError("CUDA out of memory")
        segment(self, msg)

    monkeypatch.setattr(SegmentationNode, "on_fused", fail_on_the_fourth)
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "weights": str(tiny_weights), "rate": rate,
        "overflow": overflow, "max_frames": 8, "out_dir": str(tmp_path), "record": False,
        "video": False, "masks": False, "live": False, "status": False}))
    tracker = next(n for n in graph.nodes if isinstance(n, LatencyTracker))
    graph.setup()
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        graph.run(handle_signals=False, timeout_s=60)

    report = tracker.report
    assert report is not None and report.masks == 3
    assert report.masks + report.dropped == report.frames_in, report.drops
    assert report.drops["/fused -> segmentation (the node failed on it)"] == 1
