"""Replay sources at a rate: the messages read (and skipped) before a ``start_s`` window,
and again before each ``loop`` pass, delay the replay; they do not make the window's first
frames late."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivingseg.errors import ConfigError
from drivingseg.node.graph import Graph
from drivingseg.node.latency import LatencyTracker
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.messages import CameraImage, FusedInput, LidarCloud, SyncedFrames
from drivingseg.node.processing import FusionNode
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource, LidarSource
from drivingseg.node.sync_node import SyncNode
from drivingseg.sensors.ros_msgs_write import image_to_msg

SKIP_READ_S = 0.03
"""Added read time of each message before the window (a bag is read up to it)."""
TIMEOUT_S = 180
"""Only a guard against a hung graph: on a loaded CI machine reading one KITTI frame can
take over a second, and a graph stopped by its timeout loses frames the tests count."""


class Collector(Node):
    """Keeps every camera image and lidar scan it receives."""

    type_name = "collector"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images: list[CameraImage] = []
        self.scans: list[LidarCloud] = []
        self.create_subscription("/camera/image", CameraImage, self.images.append, depth=1000)
        self.create_subscription("/lidar/points", LidarCloud, self.scans.append, depth=1000)


def test_seeking_to_the_window_delays_the_replay_instead_of_making_frames_late(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_s, end_s = 1.0, 1.25
    read_done: list[int] = []  # when each camera frame in the window was read
    read_start: list[int] = []  # when the source asked for it (resumed the reader)

    def slow(items: Any, record: bool) -> Any:
        def wrapped(self: CameraSource | LidarSource) -> Iterator[Any]:
            first = self.recording.info().start_ns  # type: ignore[union-attr]
            asked = time.perf_counter_ns()
            time.sleep(SKIP_READ_S * round(start_s / 0.1))  # the seek: reading up to the window
            for item in items(self):
                if record and item.stamp_ns <= first + int(end_s * 1e9):
                    read_start.append(asked)
                    read_done.append(time.perf_counter_ns())
                yield item
                asked = time.perf_counter_ns()
        return wrapped

    monkeypatch.setattr(CameraSource, "items", slow(CameraSource.items, True))
    monkeypatch.setattr(LidarSource, "items", slow(LidarSource.items, False))
    params = {"input": str(kitti_raw_drive), "rate": 1.0, "start_s": start_s, "end_s": end_s,
              "loop": True}
    graph = Graph()
    camera = graph.add(CameraSource, "camera", {**params, "max_frames": 6})
    lidar = graph.add(LidarSource, "lidar", params)
    collector = graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    images = collector.images
    assert [m.frame.index for m in images] == [10, 11, 12] * 2
    assert len(read_done) == 6
    # Each frame is released (its latency counts from then) after it was read, also the
    # first of each pass, which comes after 10 slowly skipped frames. Within a pass, the
    # time a busy machine kept the source from starting to read after its last release
    # stays latency (by design), so it is the only slack allowed.
    for k, (msg, done) in enumerate(zip(images, read_done, strict=True)):
        first_of_pass = k % 3 == 0
        slack_ns = 0 if first_of_pass else max(0, read_start[k] - images[k - 1].timing.available_ns)
        assert msg.timing.available_ns >= done - slack_ns, (msg.frame.index, slack_ns)
    # ... and the frames of a pass keep the recorded 10 Hz between them, exactly unless a
    # busy machine made a read slower than that (which moves the clock on, counted).
    behind_ns = camera.behind_ns + lidar.behind_ns
    for pass_start in (0, 3):
        for a, b in itertools.pairwise(images[pass_start:pass_start + 3]):
            gap_ns = b.timing.available_ns - a.timing.available_ns
            if behind_ns == 0:
                assert gap_ns == 100_000_000, b.frame.index
            else:
                assert 100_000_000 <= gap_ns <= 100_000_000 + behind_ns + b.timing.stage_ns(
                    "read"), (b.frame.index, gap_ns, behind_ns)


SLOW_READ_S = 0.03
"""Read time of each camera frame in the slow-reader test: three periods at rate 10."""


def test_a_reader_slower_than_the_rate_delays_the_replay_instead_of_making_frames_late(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """At a rate faster than a source can read (a renderer, a slow decoder, a busy CPU)
    each frame was released further behind its schedule, but its latency still counted
    from the schedule: it grew with every frame (the lag was called queueing), and the
    camera drifted away from the lidar until frames lost their scans (``replay
    synthetic`` dropped 10 of 15 frames as 'without a lidar scan')."""
    read_done: dict[int, int] = {}

    def slow(self: CameraSource) -> Iterator[Any]:
        for item in every_frame(self):
            time.sleep(SLOW_READ_S)
            read_done[item.stamp_ns] = time.perf_counter_ns()
            yield item

    every_frame = CameraSource.items
    monkeypatch.setattr(CameraSource, "items", slow)
    params = {"input": str(kitti_raw_drive), "rate": 10.0}
    graph = Graph()
    graph.add(CameraSource, "camera", {**params, "max_frames": 8})
    graph.add(LidarSource, "lidar", params)
    collector = graph.add(Collector, "collector")
    graph.setup()
    with caplog.at_level(logging.WARNING, logger="drivingseg.node"):
        graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    images = collector.images
    assert [m.frame.index for m in images] == list(range(8))
    # Every frame is released (its latency counts from then) once it has been read ...
    for msg in images:
        assert msg.timing.available_ns >= read_done[msg.stamp_ns], msg.frame.index
    # ... and the lidar keeps in step: the scan of a frame's stamp goes out at most about
    # that frame's read before it, not further ahead with every frame.
    scans = {m.stamp_ns: m.timing.available_ns for m in collector.scans}
    for msg in images:
        gap_ns = msg.timing.available_ns - scans[msg.stamp_ns]
        assert abs(gap_ns) < msg.timing.stage_ns("read") + 30_000_000, (msg.frame.index, gap_ns)
    assert "reading is slower than rate 10" in caplog.text
    assert "the replay ran" in caplog.text


def bag_with_an_early_fast_topic(drive: Path, path: Path) -> Path:
    """Three camera frames and scans of ``drive`` in an MCAP, with a 100 Hz text topic
    logged from 2 s before the first frame to its end."""
    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(drive) as rec, Ros2McapWriter(path) as writer:
        first = rec.camera(0).stamp_ns
        text = writer.typestore.types["std_msgs/msg/String"]
        for k in range(-200, 30):
            stamp = first + k * 10_000_000
            writer.write("/log", text(data=str(k)), "std_msgs/msg/String", stamp)
        for i in range(3):
            writer.write_image("/camera", rec.camera(i))
            writer.write_pointcloud("/points", rec.lidar(i))
    return path


def test_other_topics_of_a_bag_set_neither_the_window_nor_the_loop_period(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bag's other topics used to count: the replay waited 2 s for the text topic's
    start before the first frame, and a loop's next pass came 10 ms (the text topic's
    period) after the last frame instead of the camera's 100 ms."""
    bag = bag_with_an_early_fast_topic(kitti_raw_drive, tmp_path / "drive.mcap")
    first_read_ns: dict[str, int] = {}  # when each source had read its first message

    def timed(items: Any) -> Any:
        def wrapped(self: CameraSource | LidarSource) -> Iterator[Any]:
            for item in items(self):
                first_read_ns.setdefault(self.name, time.perf_counter_ns())
                yield item
        return wrapped

    monkeypatch.setattr(CameraSource, "items", timed(CameraSource.items))
    monkeypatch.setattr(LidarSource, "items", timed(LidarSource.items))
    params = {"input": str(bag), "rate": 1.0, "loop": True}
    graph = Graph()
    graph.add(CameraSource, "camera", {**params, "max_frames": 6})
    graph.add(LidarSource, "lidar", params)
    collector = graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    stamps = [m.stamp_ns for m in collector.images]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [100_000_000] * 5
    # The first frame goes out as soon as both sources hold their first message, not 2 s
    # of the text topic later. Counted from those reads, not from the start of the run: on
    # a busy machine opening the bag and decoding the first image and scan took over 1 s.
    assert set(first_read_ns) == {"camera", "lidar"}
    waited_ns = collector.images[0].timing.available_ns - max(first_read_ns.values())
    assert waited_ns < 1e9, waited_ns


class Pairs(Node):
    """Keeps every synced pair and the stamp of every scan."""

    type_name = "pairs"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pairs: list[SyncedFrames] = []
        self.scans: list[int] = []
        self.create_subscription("/synced", SyncedFrames, self.pairs.append, depth=1000)
        self.create_subscription("/lidar/points", LidarCloud,
                                 lambda msg: self.scans.append(msg.stamp_ns), depth=1000)


@pytest.mark.parametrize(("rate", "overflow"), [(1.0, "drop_oldest"), (0.0, "block")])
def test_max_frames_counts_camera_frames_and_every_frame_keeps_its_scan(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    rate: float, overflow: str,
) -> None:
    """With a 5 Hz camera beside the 10 Hz lidar, replay --frames 6 used to cap the scans
    at 6 too: the lidar ran out halfway and 3 of the 6 frames were dropped without a scan."""
    every_frame = CameraSource.items

    def five_hz(self: CameraSource) -> Iterator[Any]:
        return itertools.islice(every_frame(self), 0, None, 2)

    monkeypatch.setattr(CameraSource, "items", five_hz)
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "weights": str(tiny_weights), "max_frames": 6,
        "rate": rate, "overflow": overflow, "out_dir": str(tmp_path), "record": False,
        "video": False, "masks": False, "live": False, "status": False, "proposals": False}))
    collector = graph.add(Pairs, "pairs")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=60)

    assert graph.frames_in() == 6
    assert [p.camera.frame.index for p in collector.pairs] == [0, 2, 4, 6, 8, 10]
    assert all(p.lidar is not None for p in collector.pairs)
    assert graph.drops() == {}
    last_frame = collector.pairs[-1].camera.stamp_ns
    assert collector.scans[-1] >= last_frame
    if rate:  # paced: the lidar stops after the scan that decides the last frame (or, when
        # the camera thread notices its limit late on a busy machine, the one after it)
        assert len([s for s in collector.scans if s > last_frame]) <= 1


def test_a_paced_loop_that_blocks_is_refused_at_start(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    """Paced, looping and blocking, each pass waits for both sources while one of them
    waits on a full queue: the replay stalled for seconds per pass instead of failing."""
    args = {"input": str(kitti_raw_drive), "weights": str(tiny_weights), "loop": True,
            "rate": 1.0, "overflow": "block", "out_dir": str(tmp_path), "record": False,
            "video": False, "masks": False, "live": False, "status": False}
    graph = build_graph(load_launch("replay_kitti", args))
    with pytest.raises(ConfigError, match=r"node 'camera' \(camera_source, in pipeline\.yaml\): "
                                          r"parameter 'loop': "
                                          r"a loop at a paced rate \(1\.0\) with overflow 'block'"):
        graph.setup()


def camera_only_mcap(kitti_raw_drive: Path, path: Path, frames: int) -> Path:
    """An MCAP of the drive's first ``frames`` images with CameraInfo, no lidar."""
    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as rec, Ros2McapWriter(path) as writer:
        rig = rec.rig()
        assert rig is not None
        for i in range(frames):
            frame = rec.camera(i)
            writer.write_image("/camera", frame)
            writer.write_camera_info("/camera_info", rig.camera, frame.stamp_ns)
    return path


def test_a_camera_only_recording_is_segmented_without_lidar(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    run_launch: Callable[..., tuple[Graph, Any, Any]], caplog: pytest.LogCaptureFixture,
) -> None:
    """A bag without lidar (many camera bags, a recorder's masks.mcap) used to replay with
    every frame dropped at the sync for want of a scan: no mask, exit status 0. An RGB
    model needs no scan: the frames go on without one, with a warning."""
    path = camera_only_mcap(kitti_raw_drive, tmp_path / "camera_only.mcap", 4)
    with caplog.at_level(logging.WARNING, logger="drivingseg.node"):
        graph, _, tracker = run_launch(
            "replay_bag", input=str(path), weights=str(tiny_weights), rate=0.0,
            overflow="block", out_dir=str(tmp_path / "out"), record=False, video=False,
            masks=False, status=False, live=False)
    assert "has no lidar scans" in caplog.text and "camera only" in caplog.text
    assert [f.index for f in tracker.frames] == [0, 1, 2, 3]
    assert graph.drops() == {} and graph.losses() == {}


def test_a_lidar_model_on_a_camera_only_recording_is_refused_at_start(
    kitti_raw_drive: Path, tmp_path: Path
) -> None:
    path = camera_only_mcap(kitti_raw_drive, tmp_path / "camera_only.mcap", 1)
    graph = Graph()

    class WantsChannels(Node):
        type_name = "wants_channels"
        wants_lidar_channels = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.create_subscription("/fused", FusedInput, lambda msg: None)

    graph.add(LidarSource, "lidar", {"input": str(path)})
    graph.add(FusionNode, "fusion", {})
    graph.add(WantsChannels, "model", {})
    with pytest.raises(ConfigError, match=r"node 'fusion' \(fusion\): parameter 'channels': "
                                          r"the model takes lidar channels, but the recording "
                                          r"has no lidar scans \(/lidar/points\)"):
        graph.setup()


def five_hz_camera_mcap(drive: Path, path: Path, frames: int) -> Path:
    """An MCAP of ``drive`` with its camera at 5 Hz (every other frame, ``frames`` of them)
    beside its lidar at 10 Hz, each scan stamped 10 ms after its frame (as a Velodyne's
    are, by a few ms to tens)."""
    import dataclasses

    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(drive) as rec, Ros2McapWriter(path) as writer:
        for i in range(2 * frames - 1):
            if i % 2 == 0:
                writer.write_image("/camera", rec.camera(i))
            scan = rec.lidar(i)
            writer.write_pointcloud(
                "/points", dataclasses.replace(scan, stamp_ns=scan.stamp_ns + 10_000_000))
    return path


CAMERA_READ_S = 0.12
"""Added read time of each 5 Hz camera frame: within its own 200 ms period, over the
lidar's 100 ms."""


def test_a_reader_within_its_own_period_does_not_hold_the_other_stream_back(
    kitti_raw_drive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a source reads it holds back what the other source has due after its next
    message, which it guessed a period of the fastest stream after its last one: a 5 Hz
    camera reading a frame in about 130 ms (on time for its 200 ms period) held the 10 Hz
    lidar's scan due in between (110 ms after the frame) for about 20 ms, and the clock
    moved on by that for every frame: the replay ran ever further behind the recorded
    rate, without a warning."""
    bag = five_hz_camera_mcap(kitti_raw_drive, tmp_path / "drive.mcap", 6)

    def slow(self: CameraSource) -> Iterator[Any]:
        for item in every_frame(self):
            time.sleep(CAMERA_READ_S)
            yield item

    every_frame = CameraSource.items
    monkeypatch.setattr(CameraSource, "items", slow)
    params = {"input": str(bag), "rate": 1.0}
    graph = Graph()
    camera = graph.add(CameraSource, "camera", params)
    lidar = graph.add(LidarSource, "lidar", params)
    collector = graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    images = collector.images
    assert len(images) == 6
    # A busy machine can make reads genuinely slower than the period (the test's premise
    # then fails): that lag moves the clock on and is counted (behind_ns), and the other
    # source waits out such reads. Only then may the replay drift beyond 25 ms, by at most
    # that lag and those reads.
    reads_ns = [m.timing.stage_ns("read") for m in images]
    slack_ns = 0
    if max(reads_ns) < CAMERA_READ_S * 1e9 + 40_000_000:
        assert camera.behind_messages == 0
    else:
        slack_ns = camera.behind_ns + lidar.behind_ns + sum(reads_ns)
    first = images[0]
    for msg in images:  # released on the recorded schedule, not ever later
        scheduled_ns = msg.stamp_ns - first.stamp_ns
        drift_ns = msg.timing.available_ns - first.timing.available_ns - scheduled_ns
        assert -25_000_000 < drift_ns < slack_ns + 25_000_000, (msg.frame.index, drift_ns)


def test_a_replay_behind_its_rate_says_so_in_the_latency_report(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reader slower than the rate delays the replay (not latency): that was only logged,
    so latency.json and the summary of a `--rate 5` replay that ran at about 2x read as if
    the graph had kept up with 5x."""
    every_frame = CameraSource.items

    def slow(self: CameraSource) -> Iterator[Any]:
        for item in every_frame(self):
            time.sleep(SLOW_READ_S)
            yield item

    monkeypatch.setattr(CameraSource, "items", slow)
    params = {"input": str(kitti_raw_drive), "rate": 10.0}
    graph = Graph()
    camera = graph.add(CameraSource, "camera", {**params, "max_frames": 6})
    lidar = graph.add(LidarSource, "lidar", params)
    graph.add(Collector, "collector")
    tracker = graph.add(LatencyTracker, "latency", {"out_dir": str(tmp_path), "status": False})
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    assert camera.behind_messages >= 3
    # On a busy machine the lidar's reads can fall behind too: reported beside the camera.
    expected = {src.name: {"messages": src.behind_messages, "ms": src.behind_ns / 1e6}
                for src in (camera, lidar) if src.behind_messages}
    assert tracker.report is not None and tracker.report.behind == expected
    assert json.loads((tmp_path / "latency.json").read_text())["replay_behind"] == expected
    assert (f"replay behind the rate at camera: {expected['camera']['ms']:.0f} ms, "
            f"{camera.behind_messages} messages read after") in capsys.readouterr().out


def test_a_recording_without_calibration_says_what_it_costs(
    kitti_raw_drive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning said 'fusion will need one' while an RGB model's fusion needs none:
    what goes without it is the proposals' range (boxes came without one, unexplained)."""
    drive = tmp_path / "2011_09_26" / kitti_raw_drive.name
    drive.mkdir(parents=True)
    for name in ("image_02", "velodyne_points"):  # no calib_*.txt beside the drive
        (drive / name).symlink_to(kitti_raw_drive / name)
    camera = Graph().add(CameraSource, "camera", {"input": str(drive)})
    with caplog.at_level(logging.WARNING, logger="drivingseg.node"):
        camera.setup()
    camera.shutdown()
    assert camera.rig is None
    assert "has no calibration" in caplog.text and "proposals get no range" in caplog.text


def camera_span_mcap(drive: Path, path: Path, cameras: range) -> Path:
    """An MCAP of the drive's first 10 scans beside only the camera frames in ``cameras``
    (a camera that starts late or stops early), with calibration."""
    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(drive) as rec, Ros2McapWriter(path) as writer:
        rig = rec.rig()
        assert rig is not None
        writer.write_tf_static(rig.T_cam_velo, rec.lidar(0).stamp_ns)
        for i in range(10):
            if i in cameras:
                frame = rec.camera(i)
                writer.write_image("/camera", frame, frame_id=rig.camera_frame)
                writer.write_camera_info("/camera_info", rig.camera, frame.stamp_ns)
            writer.write_pointcloud("/points", rec.lidar(i), frame_id=rig.lidar_frame)
    return path


@pytest.mark.parametrize(("cameras", "window", "match"), [
    (range(5), {"start_s": 0.7}, r"parameter 'start_s': 0\.7 is after the camera's last frame "
                                 r"\(the camera's frames are from 0\.00 to 0\.40 s after"),
    (range(5, 10), {"end_s": 0.3}, r"parameter 'end_s': 0\.3 is before the camera's first "
                                   r"frame \(the camera's frames are from 0\.50 to 0\.90 s"),
])
def test_a_window_without_camera_frames_is_refused_at_start(
    kitti_raw_drive: Path, tmp_path: Path, cameras: range, window: dict[str, float],
    match: str,
) -> None:
    """A window past the camera's frames but within the lidar's ran a graph that never
    saw a frame and ended with status 0, as if the replay had worked."""
    path = camera_span_mcap(kitti_raw_drive, tmp_path / "span.mcap", cameras)
    graph = Graph()
    graph.add(CameraSource, "camera", {"input": str(path), **window})
    graph.add(LidarSource, "lidar", {"input": str(path), **window})
    with pytest.raises(ConfigError, match=r"node 'camera' \(camera_source\): " + match):
        graph.setup()
    graph = Graph()
    camera = graph.add(CameraSource, "camera", {"input": str(path), "rate": 0.0})
    graph.add(LidarSource, "lidar", {"input": str(path), "rate": 0.0})
    graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)
    assert camera.frames_published == len(cameras)


@pytest.mark.parametrize("param", ["image_topic", "lidar_topic", "camera_info_topic"])
def test_bag_topics_for_a_recording_that_is_no_bag_are_refused(
    kitti_raw_drive: Path, param: str
) -> None:
    """``drivingseg replay DRIVE --image-topic T`` is refused; the same topic given to a
    source node in a launch file was ignored without a word."""
    camera = Graph().add(CameraSource, "camera", {"input": str(kitti_raw_drive), param: "/t"})
    with pytest.raises(ConfigError, match=rf"parameter '{param}': '/t' only applies to bags; "
                                          r"input '.*drive_0000_sync' is not one \(KITTI raw"):
        camera.setup()
    camera.shutdown()


def test_receive_stamps_for_a_recording_that_is_no_bag_are_refused(
    kitti_raw_drive: Path
) -> None:
    """Only a bag records a receive time per message."""
    camera = Graph().add(CameraSource, "camera", {"input": str(kitti_raw_drive),
                                                  "stamps": "receive"})
    with pytest.raises(ConfigError, match=r"parameter 'stamps': .*drive_0000_sync: stamps "
                                          r"'receive' only applies to bags"):
        camera.setup()
    camera.shutdown()


@pytest.mark.parametrize(("param", "camera_value", "match"), [
    ("start_s", 1.0, r"'start_s': 1\.0 differs from 0\.0 of source 'lidar'"),
    ("rate", 2.0, r"'rate': 2\.0 differs from 1\.0 of source 'lidar'"),
])
def test_sources_replaying_at_different_rates_or_windows_are_refused(
    kitti_raw_drive: Path, param: str, camera_value: float, match: str
) -> None:
    """A camera window starting 1 s after the lidar's (``start_s`` given to one source of
    a launch file) made every frame of a paced replay wait 1 s for its scan: all late."""
    graph = Graph()
    graph.add(CameraSource, "camera", {"input": str(kitti_raw_drive), param: camera_value})
    graph.add(LidarSource, "lidar", {"input": str(kitti_raw_drive)})
    with pytest.raises(ConfigError, match=r"node 'camera' \(camera_source\): parameter " + match):
        graph.setup()


def test_a_kitti_camera_number_for_a_bag_is_refused(tmp_path: Path, kitti_raw_drive: Path) -> None:
    """``camera: 3`` on a bag replayed its one camera as if it were camera 3."""
    path = camera_span_mcap(kitti_raw_drive, tmp_path / "bag.mcap", range(2))
    camera = Graph().add(CameraSource, "camera", {"input": str(path), "camera": 3})
    with pytest.raises(ConfigError, match=r"parameter 'camera': 3 picks a KITTI camera; input "
                                          r"'.*bag\.mcap' is not a KITTI recording"):
        camera.setup()
    camera.shutdown()


@pytest.mark.parametrize(("camera", "warned"), [(3, True), (2, False)])
def test_a_rig_file_for_another_camera_is_warned_about(
    kitti_raw_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, camera: int,
    warned: bool,
) -> None:
    """A rig YAML names no KITTI camera: ``camera:=3`` with camera 2's rig file projected
    the lidar ~40 px off on camera 3's frames and recorded camera 2's CameraInfo, silently."""
    from support.kitti_links import linked_drive

    drive = linked_drive(kitti_raw_root, tmp_path, camera, lidar=False)
    rig_file = Path(__file__).parents[2] / "calibration" / "kitti_2011_09_26.yaml"
    source = Graph().add(CameraSource, "camera", {
        "input": str(drive), "camera": camera, "calibration": str(rig_file)})
    try:
        with caplog.at_level(logging.WARNING, logger="drivingseg.node"):
            source.setup()
    finally:
        source.shutdown()
    pattern = (r"calibration '.*kitti_2011_09_26\.yaml' puts lidar points a median 4\d px from "
               r"where the recording's own calibration for camera 3 puts them")
    assert bool(re.search(pattern, caplog.text)) is warned, caplog.text


def test_camera_and_lidar_stamps_of_two_clocks_are_refused_at_start(
    kitti_raw_drive: Path, tmp_path: Path
) -> None:
    """ouster-ros stamps by the sensor's internal oscillator by default (seconds since power
    on) while the camera is on the recorder's clock: paced by those stamps, the replay sat
    waiting for the camera's first frame, 41 years after the first scan, with no mask and
    no error. It is refused at start, naming both streams."""
    import dataclasses

    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    path = tmp_path / "osc.mcap"
    with KittiRawDrive(kitti_raw_drive) as rec, Ros2McapWriter(path) as writer:
        rig = rec.rig()
        assert rig is not None
        writer.write_tf_static(rig.T_cam_velo, rec.camera(0).stamp_ns, "/tf_static")
        for i in range(2):
            frame = rec.camera(i)
            writer.write_image("/camera", frame)
            writer.write_camera_info("/camera_info", rig.camera, frame.stamp_ns)
            scan = rec.lidar(i)
            writer.write_pointcloud("/ouster/points", dataclasses.replace(
                scan, stamp_ns=1_234_000_000_000 + i * 100_000_000))
    for source in (CameraSource, LidarSource):
        graph = Graph()
        graph.add(source, "src", {"input": str(path)})
        with pytest.raises(ConfigError, match=r"parameter 'input': the stamps of /ouster/points "
                                              r"\(1234\.0 to 1234\.1 s\) end 1317040765\.9 s "
                                              r"before those of /camera begin .* \(replay the "
                                              r"bag by its receive times with stamps:=receive"):
            graph.setup()


def test_a_bag_of_two_clocks_replays_by_receive_time(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    run_launch: Callable[..., tuple[Graph, Any, Any]],
) -> None:
    """A bag with the lidar on its own oscillator and the camera on ROS time, both received
    by one recorder, was refused and could not be replayed at all: ``stamps:=receive``
    pairs the frames with their scans and stamps the masks by the frames' receive time."""
    import dataclasses

    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive
    from drivingseg.sensors.ros_msgs_write import pointcloud2_to_msg

    path = tmp_path / "osc.mcap"
    received: list[int] = []
    with KittiRawDrive(kitti_raw_drive) as rec, Ros2McapWriter(path) as writer:
        rig = rec.rig()
        assert rig is not None
        writer.write_tf_static(rig.T_cam_velo, rec.camera(0).stamp_ns, "/tf_static")
        for i in range(3):
            frame = rec.camera(i)
            received.append(frame.stamp_ns + 30_000_000)  # the driver's delivery, 30 ms on
            writer.write(
                "/camera", image_to_msg(frame, writer.typestore), "sensor_msgs/msg/Image",
                received[-1])
            writer.write_camera_info("/camera_info", rig.camera, frame.stamp_ns)
            scan = rec.lidar(i)
            oscillator = dataclasses.replace(scan, stamp_ns=1_234_000_000_000 + i * 100_000_000)
            writer.write("/ouster/points", pointcloud2_to_msg(oscillator, writer.typestore),
                         "sensor_msgs/msg/PointCloud2", scan.stamp_ns + 20_000_000)
    graph, _, tracker = run_launch(
        "replay_bag", input=str(path), stamps="receive", weights=str(tiny_weights), rate=0.0,
        overflow="block", out_dir=str(tmp_path / "out"), record=False, video=False,
        masks=False, status=False, live=False)
    sync = next(n for n in graph.nodes if isinstance(n, SyncNode))
    assert sync.sync.stats.matched == 3
    assert [f.stamp_ns for f in tracker.frames] == received
    assert graph.drops() == {} and graph.losses() == {}


def test_a_window_at_the_end_of_a_drive_reads_no_frame_before_it(
    kitti_raw_drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start_s`` near the end of a minutes-long drive decoded every frame and scan before
    the window first (a 2 s window 145 s into a 1500-frame drive took 200 s to start), and
    again on each loop pass: the sources now start each pass at the window."""
    from drivingseg.sensors import kitti_raw

    read: list[str] = []

    def counting(real: Any) -> Any:
        def wrapped(path: Path) -> Any:
            read.append(f"{Path(path).parent.parent.name}/{Path(path).stem[-2:]}")
            return real(path)
        return wrapped

    for name in ("read_image_rgb", "read_velodyne_bin"):
        monkeypatch.setattr(kitti_raw, name, counting(getattr(kitti_raw, name)))
    params = {"input": str(kitti_raw_drive), "rate": 0.0, "start_s": 2.65, "end_s": 2.85,
              "loop": True}
    graph = Graph()
    graph.add(CameraSource, "camera", {**params, "max_frames": 4})
    graph.add(LidarSource, "lidar", params)
    collector = graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=TIMEOUT_S)

    assert [m.frame.index for m in collector.images] == [27, 28] * 2
    assert {name.split("/")[0] for name in read} == {"image_02", "velodyne_points"}
    assert min(int(name[-2:]) for name in read) == 27  # (29 is read to find the window's end)
    assert read.count("image_02/27") == 2  # once a pass
