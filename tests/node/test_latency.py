"""Latency tracker: a bad ``out_dir`` stops the start, an empty window gives valid JSON with
null statistics, files appear atomically, and memory stays bounded over long runs while the
totals and the summary cover every mask."""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from drivingseg.errors import ConfigError
from drivingseg.node.graph import Graph
from drivingseg.node.latency import (
    COLUMNS,
    RECENT_FRAMES,
    LatencyReport,
    LatencyTracker,
    percentiles,
)
from drivingseg.node.messages import CameraImage, Diagnostics, LidarCloud, Mask, MaskTiming, Timing
from drivingseg.node.params import Param
from drivingseg.node.recorder import McapRecorder
from drivingseg.node.runtime import Node
from drivingseg.node.sync_node import SyncNode
from drivingseg.sensors.frames import CameraFrame, LidarScan

IMG = np.zeros((4, 6, 3), np.uint8)


def tracker_in(out_dir: Path | str = "", budget_ms: float = 400.0) -> LatencyTracker:
    graph = Graph()
    return graph.add(LatencyTracker, "latency", {
        "out_dir": str(out_dir), "budget_ms": budget_ms, "status": False, "summary": True})


def full_mask(k: int, *, inference_ns: int, age_ns: int = 0,
              image: np.ndarray = IMG) -> Mask:
    """Mask ``k``, its frame available ``age_ns`` before now, with a known inference time."""
    now = time.perf_counter_ns()
    timing = Timing(1_000 + k, k, now - age_ns, (("read", 1_000), ("inference", inference_ns)))
    return Mask(CameraFrame(1_000 + k, image, index=k), np.zeros(image.shape[:2], np.uint8),
                ("background", "road", "car"), timing, now)


def mask(k: int, *, inference_ns: int, age_ns: int = 0) -> MaskTiming:
    """What the tracker's queue keeps of :func:`full_mask` ``k``."""
    return MaskTiming.of(full_mask(k, inference_ns=inference_ns, age_ns=age_ns))


def strict_json(text: str) -> object:
    """``json.loads`` that refuses NaN and infinities, as other JSON readers do."""
    def reject(token: str) -> object:
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=reject)


# ---------------------------------------------------------------- out_dir checked at start


def bad_out_dir(tmp_path: Path, case: str) -> Path:
    """An ``out_dir`` that cannot hold the files: a file, below a file, or files as folders."""
    (tmp_path / "o3file").touch()
    if case == "file":
        return tmp_path / "o3file"
    if case == "below a file":
        return tmp_path / "o3file" / "sub"
    (tmp_path / "out" / "latency.json").mkdir(parents=True)
    return tmp_path / "out"


@pytest.mark.parametrize(("case", "match"), [
    ("file", r"node 'latency' \(latency_tracker\): parameter 'out_dir': '[^']*o3file' is a "
             r"file, not a folder"),
    ("below a file", r"parameter 'out_dir': cannot create '[^']*o3file/sub': Not a directory"),
    ("json is a folder", r"parameter 'out_dir': '[^']*out/latency\.json' is a folder, not a "
                         r"file"),
])
def test_bad_out_dir_stops_the_start(tmp_path: Path, case: str, match: str) -> None:
    tracker = tracker_in(bad_out_dir(tmp_path, case))
    with pytest.raises(ConfigError, match=match):
        tracker.setup()


def test_out_dir_is_created_at_start_and_left_empty_when_nothing_ran(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    tracker = tracker_in(out)
    tracker.setup()
    assert out.is_dir()
    tracker.shutdown()  # another node failed to start: no files, no leftovers
    assert list(out.iterdir()) == []


def test_cli_replay_into_a_file_fails_before_any_frame(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    cli: Callable[[Sequence[str]], int], capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "o3file"
    out.touch()
    code = cli(["replay", str(kitti_raw_drive), "num_threads:=1", "live:=false",
                "status:=false", "record:=false", "masks:=false", "video:=false",
                "--frames", "2", "--out", str(out), "--weights", str(tiny_weights)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines()[-1].endswith(
        f"parameter 'out_dir': {str(out)!r} is a file, not a folder")
    assert "Traceback" not in captured.err and "latency of" not in captured.out


# ---------------------------------------------------------------- empty window


def test_empty_window_writes_null_statistics_and_warns(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    run_launch: Callable[..., tuple], caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="drivingseg.node.latency"):
        _, _, tracker = run_launch(
            "replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights), rate=0.0,
            start_s=1.01, end_s=1.05, out_dir=str(tmp_path), record=False, video=False,
            masks=False, status=False)
    summary = strict_json((tmp_path / "latency.json").read_text())
    assert isinstance(summary, dict) and summary["masks"] == 0
    assert summary["latency_ms"] == {c: {"p50": None, "p95": None, "p99": None, "max": None,
                                         "mean": None} for c in COLUMNS}
    assert (tmp_path / "latency.csv").read_text().startswith("seq,index,stamp_ns,e2e_ms,")
    assert len((tmp_path / "latency.csv").read_text().splitlines()) == 1
    assert "latency: no mask was measured" in caplog.text
    assert tracker.report is not None and "e2e" in tracker.report.table()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.csv", "latency.json"]


def test_report_json_refuses_nan() -> None:
    assert percentiles([]) == dict.fromkeys(("p50", "p95", "p99", "max", "mean"))
    stats = {c: percentiles([]) for c in COLUMNS}
    empty = LatencyReport(100.0, 0, 0, 1.0, stats, 0)
    written = strict_json(empty.to_json())
    assert isinstance(written, dict) and written["latency_ms"]["e2e"]["p95"] is None
    assert "       -" in empty.table()
    stats["e2e"] = {**stats["e2e"], "p50": float("nan")}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        LatencyReport(100.0, 0, 0, 1.0, stats, 0).to_json()


def test_lost_scans_and_diagnostics_are_reported_apart_from_dropped_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lidar scans and /diagnostics messages lost at a queue used to be summed into
    "dropped frames" (summary, JSON, /diagnostics): masks + dropped != frames in."""
    graph = Graph()
    tracker = graph.add(LatencyTracker, "latency", {"out_dir": str(tmp_path), "status": False})
    sync = graph.add(SyncNode, "sync", {"qos_depth": 2})
    recorder = graph.add(McapRecorder, "recorder", {"path": str(tmp_path / "m.mcap")})
    for k in range(5):
        stamp = k * 100_000_000
        sync.lidar_sub.push(LidarCloud(LidarScan(stamp, np.zeros((1, 4), np.float32)),
                                       Timing(stamp, k, 0)))
    diagnostics = next(s for s in recorder.subscriptions if s.topic.name == "/diagnostics")
    for k in range(3):
        diagnostics.push(tracker.diagnostics(k))
    values = dict(tracker.diagnostics(0).values)
    assert values["dropped"] == "0" and not any(k.startswith("dropped at") for k in values)
    assert values["lost lidar scans"] == values["lost lidar scans at /lidar/points -> sync"] == "3"
    assert values["lost diagnostics messages at /diagnostics -> recorder"] == "1"
    assert tracker.diagnostics(0).level == 1
    tracker.setup()
    tracker.ready()
    tracker.after_run()
    table = capsys.readouterr().out
    assert "dropped frames: 0\nlost diagnostics messages: 1\n" in table
    assert "lost lidar scans: 3\n      3  at /lidar/points -> sync" in table
    summary = strict_json((tmp_path / "latency.json").read_text())
    assert isinstance(summary, dict) and summary["dropped"] == 0 and summary["drops"] == {}
    assert summary["lost"] == {"lidar scans": {"/lidar/points -> sync": 3},
                               "diagnostics messages": {"/diagnostics -> recorder": 1}}


# ---------------------------------------------------------------- long runs, atomic files


def test_a_lagging_tracker_queues_timings_not_frames(tmp_path: Path) -> None:
    """The tracker's queue is 1000 deep; it used to hold whole masks (frame, class ids,
    probabilities, scan: about 5.6 MB each on KITTI), so a lagging tracker could keep
    gigabytes alive. It now keeps each mask's timing, and measures it the same."""
    graph = Graph()
    tracker = graph.add(LatencyTracker, "latency", {"out_dir": str(tmp_path), "status": False})
    pub = graph.add(McapRecorder, "rec", {"path": str(tmp_path / "m.mcap")})
    publisher = pub.create_publisher("/segmentation/mask", Mask)
    image = np.zeros((375, 1242, 3), np.uint8)
    for k in range(50):
        publisher.publish(full_mask(k, inference_ns=3_000_000, image=image))
    (sub,) = tracker.subscriptions
    assert len(sub) == 50 and sub.dropped == 0
    with tracker.cond:
        queued = [sub.pop() for _ in range(50)]
    assert all(type(item) is MaskTiming for item in queued)
    assert [item.frame_index for item in queued] == list(range(50))
    tracker.setup()
    tracker.ready()
    for item in queued:
        tracker.on_mask(item)
    assert [f.index for f in tracker.frames] == list(range(50))
    assert tracker.frames[0].ms["inference"] == pytest.approx(3.0)


def test_long_run_keeps_a_bounded_window_and_exact_totals(tmp_path: Path) -> None:
    previous = '{"from": "the previous run"}\n'
    (tmp_path / "latency.json").write_text(previous)
    (tmp_path / "latency.csv").write_text("previous\n")
    tracker = tracker_in(tmp_path, budget_ms=400.0)
    tracker.setup()
    tracker.ready()
    n = 3 * RECENT_FRAMES + 7
    inference_ns = [(k * 7919) % 50_000_000 + 1_000 for k in range(n)]
    late = {k for k in range(n) if k % 9 == 0}  # available 10 s before: over budget
    for k in range(n):
        tracker.on_mask(mask(k, inference_ns=inference_ns[k],
                             age_ns=10_000_000_000 if k in late else 0))

    # Bounded: only the recent frames are kept as objects; one float per column and mask.
    assert tracker.frames.maxlen == RECENT_FRAMES and len(tracker.frames) == RECENT_FRAMES
    assert [f.index for f in tracker.frames] == list(range(n - RECENT_FRAMES, n))
    assert tracker.samples.nbytes <= 2 * 8 * len(COLUMNS) * n
    # The status line counts every mask and every miss, not just the window's.
    line = tracker.status_line()
    assert line.startswith(f"{n} masks | ") and f"| misses {len(late)} |" in line
    values = dict(tracker.diagnostics(0).values)
    assert values["masks"] == str(n)

    # Rows are streamed to a hidden file; the previous run's files stay until the end.
    assert (tmp_path / "latency.csv").read_text() == "previous\n"
    assert (tmp_path / "latency.json").read_text() == previous
    streamed = list(tmp_path.glob(".latency.csv.*.tmp"))
    assert len(streamed) == 1 and streamed[0].stat().st_size > 0

    tracker.shutdown()
    tracker.after_run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.csv", "latency.json"]
    rows = list(csv.DictReader((tmp_path / "latency.csv").open(newline="")))
    assert [int(r["index"]) for r in rows] == list(range(n))
    assert [float(r["inference_ms"]) for r in rows] == pytest.approx(
        [ns / 1e6 for ns in inference_ns], abs=5e-4)
    assert {int(r["index"]) for r in rows if r["deadline_miss"] == "1"} == late

    # The summary covers every mask, including those long gone from the window.
    report = tracker.report
    assert report is not None and report.masks == n and report.deadline_misses == len(late)
    expected = np.percentile(np.array(inference_ns) / 1e6, [50, 95, 99])
    got = report.stats["inference"]
    assert [got["p50"], got["p95"], got["p99"]] == pytest.approx(expected.tolist())
    e2e_max = report.stats["e2e"]["max"]
    assert e2e_max is not None and e2e_max >= 10_000.0
    summary = strict_json((tmp_path / "latency.json").read_text())
    assert isinstance(summary, dict) and summary["masks"] == n
    assert summary["deadline_misses"] == len(late)


def test_write_failure_at_the_end_still_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = tracker_in(tmp_path)
    tracker.setup()
    tracker.ready()
    tracker.on_mask(mask(0, inference_ns=2_000_000))
    tracker.shutdown()
    (tmp_path / "latency.json").mkdir()  # appeared during the run
    match = r"parameter 'out_dir': cannot write '[^']*latency\.json': Is a directory"
    with pytest.raises(ConfigError, match=match):
        tracker.after_run()
    assert "latency of 1 masks from 0 camera frames" in capsys.readouterr().out
    assert len((tmp_path / "latency.csv").read_text().splitlines()) == 2
    assert not list(tmp_path.glob(".*.tmp"))



def test_csv_that_cannot_be_streamed_is_given_up_while_measuring_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    tracker = tracker_in(out)
    tracker.setup()
    tracker.ready()
    out.rmdir()  # removed during the run
    with caplog.at_level(logging.WARNING, logger="drivingseg.node.latency"):
        for k in range(3):
            tracker.on_mask(mask(k, inference_ns=1_000_000))
    assert caplog.text.count("no latency.csv this run, measuring goes on") == 1
    tracker.shutdown()
    match = r"parameter 'out_dir': cannot write '[^']*out/latency\.csv': No such file"
    with pytest.raises(ConfigError, match=match):
        tracker.after_run()
    assert "latency of 3 masks" in capsys.readouterr().out
    assert tracker.report is not None and tracker.report.masks == 3
    assert sorted(p.name for p in out.iterdir()) == ["latency.json"]


# ---------------------------------------------------------------- a stalled graph


class FrameSource(Node):
    """Camera frames every 20 ms (stamped from 5 s, sensor time) to nobody, for 0.5 s."""

    type_name = "frame_source"
    is_frame_source = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pub = self.create_publisher("/camera/image", CameraImage)
        self.last_stamp_ns: int | None = None

    def run(self) -> None:
        for k in range(25):
            stamp = 5_000_000_000 + k * 20_000_000
            frame = CameraFrame(stamp, IMG, index=k)
            self.pub.publish(CameraImage(frame, None, Timing(stamp, k, time.perf_counter_ns())))
            self.last_stamp_ns = stamp
            self.frames_published += 1
            time.sleep(0.02)


class StalledSegmentation(Node):
    """Publishes ``/segmentation/mask`` but never a mask (hung in its network)."""

    type_name = "stalled"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_publisher("/segmentation/mask", Mask)

    def run(self) -> None:
        self.context.stop.wait()


class DiagnosticsListener(Node):
    type_name = "diagnostics_listener"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.got: list[Diagnostics] = []
        self.create_subscription("/diagnostics", Diagnostics, self.got.append, depth=100)


def test_diagnostics_keep_their_period_and_report_a_graph_that_makes_no_mask() -> None:
    """/diagnostics went out only when a mask came: a hung or very slow segmentation left
    the health topic silent (the last status OK) while camera frames kept coming in."""
    graph = Graph()
    tracker = graph.add(LatencyTracker, "latency", {"status": False, "summary": False,
                                                    "diagnostics_period_s": 0.1})
    graph.add(FrameSource, "camera")
    graph.add(StalledSegmentation, "segmentation")
    listener = graph.add(DiagnosticsListener, "listener")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=0.8)

    assert len(listener.got) >= 3, listener.got
    assert not tracker.samples
    stalled = [d for d in listener.got if d.level == 2]
    assert stalled and all(d.message.startswith("no mask for ") for d in stalled)
    assert "camera frames in since" in stalled[-1].message
    values = dict(stalled[-1].values)
    assert float(values["seconds_without_mask"]) >= 0.1 and values["masks"] == "0"
    # Stamped in sensor time: a camera frame's stamp, never 0.
    assert all(5_000_000_000 <= d.stamp_ns <= 5_480_000_000 for d in listener.got)
    assert "| no mask for " in tracker.status_line()


def test_diagnostics_stamps_never_go_back_when_the_camera_is_ahead_of_the_masks() -> None:
    """A report between masks carries the newest camera frame's stamp, a report on a mask
    that mask's stamp, which trails it by the frames queued behind: a --fast KITTI replay
    wrote /diagnostics at 1.4 s saying 6 masks, then at 1.1 s saying 12, so the MCAP
    (sorted by stamp) showed the mask count going backwards."""
    graph = Graph()
    tracker = graph.add(LatencyTracker, "latency", {"status": False, "summary": False,
                                                    "diagnostics_period_s": 0.01})
    camera = graph.add(FrameSource, "camera")
    got: list[Diagnostics] = []
    tracker.diag.publish = got.append  # type: ignore[method-assign]
    tracker.ready()
    camera.last_stamp_ns = 5_000_000_000  # frames read ahead, queued before segmentation
    tracker.tick()
    for k in range(2):
        time.sleep(0.02)
        tracker.on_mask(mask(k, inference_ns=1_000_000))  # stamped 1000 + k ns
    tracker.on_inputs_closed()

    assert [dict(d.values)["masks"] for d in got] == ["0", "1", "2", "2"]
    stamps = [d.stamp_ns for d in got]
    assert stamps == sorted(stamps) and stamps[0] == 5_000_000_000, stamps


class MaskSource(Node):
    """Publishes five masks, 10 ms apart, and ends."""

    type_name = "mask_source"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pub = self.create_publisher("/segmentation/mask", Mask)

    def run(self) -> None:
        for k in range(5):
            self.pub.publish(full_mask(k, inference_ns=1_000_000))
            time.sleep(0.01)


class SlowOutput(Node):
    """An output that takes 0.3 s to get ready and 0.3 s to finalise its file."""

    type_name = "slow_output"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, lambda _: None)

    def ready(self) -> None:
        time.sleep(0.3)

    def shutdown(self) -> None:
        time.sleep(0.3)


def test_fps_is_over_the_mask_stream_not_the_other_nodes_start_and_finish() -> None:
    """The tracker timed the run from its own ready(), so a node after it in the launch file
    that took long to get ready (the MCAP recorder builds its serialisers there, ~0.1 s)
    and the outputs' finalising at the end counted as run time: fps too low."""
    graph = Graph()
    graph.add(MaskSource, "segmentation")
    tracker = graph.add(LatencyTracker, "latency", {"status": False, "summary": False})
    graph.add(SlowOutput, "output")
    graph.setup()
    result = graph.run(handle_signals=False, timeout_s=10)
    report = tracker.report
    assert report is not None and report.masks == 5
    assert 0.04 <= report.wall_s < result.wall_s - 0.15, (report.wall_s, result.wall_s)
    assert report.fps == pytest.approx(5 / report.wall_s)


def test_a_drop_warns_in_the_next_report_not_in_every_report_after() -> None:
    """/diagnostics was WARN from the first dropped frame to the end of the run (drops were
    counted since the start while misses were the recent frames'): one drop while warming
    up left a vehicle's health topic warning for the whole drive."""
    graph = Graph()
    tracker = graph.add(LatencyTracker, "latency", {"status": False,
                                                    "diagnostics_period_s": 0.01})
    sync = graph.add(SyncNode, "sync", {"qos_depth": 2})
    listener = graph.add(DiagnosticsListener, "listener")
    for k in range(3):  # one more than the queue holds: the oldest is dropped
        frame = CameraFrame(k, IMG, index=k)
        sync.camera_sub.push(CameraImage(frame, None, Timing(k, k, 0)))
    tracker.setup()
    tracker.ready()
    for k in range(3):
        tracker.on_mask(mask(k, inference_ns=1_000_000))
        time.sleep(0.02)
    (sub,) = listener.subscriptions
    with listener.cond:
        reports: list[Diagnostics] = [sub.pop() for _ in range(len(sub))]
    assert [d.level for d in reports] == [1, 0, 0]
    assert "1 frames dropped since the last report" in reports[0].message
    totals = [dict(d.values) for d in reports]
    assert [v["dropped"] for v in totals] == ["1", "1", "1"]
    assert [v["dropped_since_last_report"] for v in totals] == ["1", "0", "0"]


class FinalisingOutput(Node):
    """An output that takes 0.4 s to finalise and looks at ``out_dir`` meanwhile."""

    type_name = "finalising_output"
    parameters: ClassVar[tuple[Param, ...]] = (Param("out_dir", str, "", "where to look"),)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, lambda _: None)
        self.seen: dict[str, str] = {}

    def shutdown(self) -> None:
        time.sleep(0.3)  # the tracker has long ended: its inputs closed with ours
        out = Path(self.p["out_dir"])
        self.seen = {name: (out / name).read_text() for name in ("latency.csv", "latency.json")}
        time.sleep(0.1)


def test_csv_and_json_appear_together_after_the_outputs_are_finalised(tmp_path: Path) -> None:
    """The CSV went into place when the tracker ended and the JSON only once every node had
    finalised its outputs (seconds for a long video): a run ended in between (killed) left
    this run's latency.csv beside the previous run's latency.json."""
    previous = '{"from": "the previous run"}\n'
    (tmp_path / "latency.json").write_text(previous)
    (tmp_path / "latency.csv").write_text("previous\n")
    graph = Graph()
    graph.add(MaskSource, "segmentation")
    graph.add(LatencyTracker, "latency", {"out_dir": str(tmp_path), "status": False,
                                          "summary": False})
    output = graph.add(FinalisingOutput, "output", {"out_dir": str(tmp_path)})
    graph.setup()
    graph.run(handle_signals=False, timeout_s=10)
    assert output.seen == {"latency.csv": "previous\n", "latency.json": previous}
    rows = list(csv.DictReader((tmp_path / "latency.csv").open(newline="")))
    summary = strict_json((tmp_path / "latency.json").read_text())
    assert isinstance(summary, dict) and summary["masks"] == len(rows) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.csv", "latency.json"]
