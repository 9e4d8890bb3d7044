"""The whole graph on real KITTI frames and on the synthetic drive: one mask per frame,
latency recorded per frame, reports written, ``drivingseg demo`` and ``replay`` work."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mcap.reader import make_reader

from drivingseg.errors import ConfigError
from drivingseg.model.infer import input_size
from drivingseg.node.graph import Graph
from drivingseg.node.latency import LatencyTracker
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.messages import Timing
from drivingseg.node.outputs import MaskWriter
from drivingseg.node.processing import SegmentationNode
from drivingseg.node.recorder import McapRecorder
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource
from drivingseg.node.video_writer import VideoWriter
from drivingseg.sensors.kitti_raw import KittiRawDrive


def test_replay_at_recorded_rate_publishes_one_mask_per_frame(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    graph, result, tracker = run_launch(
        "replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights), max_frames=8,
        out_dir=str(tmp_path), record=False, video=False, status=False)
    assert result.signal is None
    with KittiRawDrive(kitti_raw_drive) as drive:
        stamps = [drive.camera(i).stamp_ns for i in range(8)]
    assert [f.stamp_ns for f in tracker.frames] == stamps
    assert [f.index for f in tracker.frames] == list(range(8))
    assert graph.drops() == {}
    # Paced at 10 Hz: 8 frames take at least 0.7 s of wall time.
    assert result.wall_s >= 0.7
    for f in tracker.frames:
        assert f.ms["e2e"] >= f.ms["inference"] > 0
        assert f.ms["read"] > 0
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert [int(p.stem) for p in pngs] == stamps
    mask = np.asarray(cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED))
    assert mask.shape == (375, 1242) and mask.dtype == np.uint8 and mask.max() <= 2
    summary = json.loads((tmp_path / "latency.json").read_text())
    assert summary["masks"] == summary["frames_in"] == 8
    assert summary["dropped"] == 0
    assert set(summary["latency_ms"]) == {"e2e", "read", "sync", "fusion", "inference",
                                          "publish", "queue"}
    rows = list(csv.DictReader((tmp_path / "latency.csv").open()))
    assert [int(r["stamp_ns"]) for r in rows] == stamps
    assert all(float(r["e2e_ms"]) > 0 for r in rows)


def test_fast_replay_with_start_end_window(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    graph, _, tracker = run_launch(
        "replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights), rate=0.0,
        overflow="block", start_s=1.0, end_s=1.45, out_dir=str(tmp_path), record=False,
        video=False, masks=False, status=False)
    assert [f.index for f in tracker.frames] == [10, 11, 12, 13, 14]
    assert graph.drops() == {}
    assert tracker.report is not None and tracker.report.fps > 0


def test_loop_restamps_so_time_keeps_increasing(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    _, _, tracker = run_launch(
        "replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights), rate=0.0,
        overflow="block", end_s=0.25, loop=True, max_frames=9, out_dir=str(tmp_path),
        record=False, video=False, masks=False, status=False)
    assert [f.index for f in tracker.frames] == [0, 1, 2] * 3
    stamps = [f.stamp_ns for f in tracker.frames]
    assert stamps == sorted(set(stamps))
    assert stamps[3] - stamps[2] == 100_000_000


def test_cli_demo_runs_the_synthetic_drive(
    tiny_weights: Path, tmp_path: Path, cli: Callable[[Sequence[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "demo"
    code = cli(["demo", "--frames", "3", "--out", str(out), "--weights", str(tiny_weights)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "latency of 3 masks from 3 camera frames" in stdout
    assert "deadline misses:" in stdout
    for name in ("masks.mcap", "overlay.mp4", "latency.json", "latency.csv"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "masks").glob("*.png"))) == 3
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    # Rendered first (the renderer is not in the graph), then replayed from the folder.
    drive = next((out / "drive").glob("*/*_sync"))
    assert len(list((drive / "image_02" / "data").glob("*.png"))) == 3
    assert json.loads((out / "latency.json").read_text())["masks"] == 3


def test_cli_replay_fast(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    cli: Callable[[Sequence[str]], int], capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli(["replay", str(kitti_raw_drive), "video:=false", "--fast", "--frames", "4",
                "--out", str(tmp_path), "--weights", str(tiny_weights)])
    assert code == 0
    assert "latency of 4 masks from 4 camera frames" in capsys.readouterr().out
    assert MaskWriter.type_name == "mask_writer"
    assert len(list((tmp_path / "masks").glob("*.png"))) == 4


def test_cli_replay_refuses_a_camera_the_drive_lacks(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    cli: Callable[[Sequence[str]], int], capsys: pytest.CaptureFixture[str],
) -> None:
    """--camera 3 without image_03/ used to replay nothing and exit 0 with empty outputs."""
    out = tmp_path / "out"
    code = cli(["replay", str(kitti_raw_drive), "--camera", "3", "--fast", "--out", str(out),
                "--weights", str(tiny_weights)])
    assert code == 2
    err = capsys.readouterr().err
    assert "node 'camera' (camera_source" in err and "parameter 'input':" in err
    assert f"{kitti_raw_drive}: camera 3: image_03/ does not exist (it has image_02/)" in err
    assert not (out / "masks.mcap").exists()


def test_the_network_warms_up_for_the_size_the_camera_source_announces(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    """The KITTI source tells the graph its frames are 1242 x 375 at setup; the
    segmentation node warms up at that frame's input size (not the checkpoint's 4:3 one),
    so the first real frame pays for no new buffers or trace."""
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "weights": str(tiny_weights), "max_frames": 1,
        "rate": 0.0, "out_dir": str(tmp_path), "record": False, "video": False,
        "masks": False, "status": False}))
    graph.setup()
    assert list(graph.context.frame_sizes.values()) == [(375, 1242)]
    seg = next(n for n in graph.nodes if isinstance(n, SegmentationNode)).segmenter
    warmed = (seg.spec.width, seg.spec.height)
    assert warmed == input_size(seg.nominal_spec, 375, 1242, 2 ** seg.config.depth)
    assert warmed != (seg.nominal_spec.width, seg.nominal_spec.height)
    assert graph.run(handle_signals=False, timeout_s=60).errors == ()


def test_camera_source_sends_each_kitti_object_frame_with_its_own_calibration(
    kitti_object_root: Path, tmp_path: Path
) -> None:
    """A KITTI object folder has one calib file per frame; the replayed frames carried
    frame 0's rig (``Recording.frame_rig``)."""
    folder = tmp_path / "obj"
    folder.mkdir()
    for name in ("image_2", "velodyne"):
        (folder / name).symlink_to(kitti_object_root / name, target_is_directory=True)
    shutil.copytree(kitti_object_root / "calib", folder / "calib")
    calib = folder / "calib" / "000001.txt"
    calib.write_text("\n".join(
        "P2: 900.0 0.0 240.0 0.0 0.0 910.0 260.0 0.0 0.0 0.0 1.0 0.0" if ln.startswith("P2:")
        else ln for ln in calib.read_text().splitlines()) + "\n")
    node = Graph().add(CameraSource, "camera", {"input": str(folder)})
    node.setup()
    try:
        rigs = [node.message(f, Timing(f.stamp_ns, f.index, 0)).rig for f in node.items()]
    finally:
        node.shutdown()
    assert len(rigs) == 3 and all(r is not None for r in rigs)
    fx = [r.camera.P[0, 0] for r in rigs if r is not None]
    assert fx[1] == 900.0 and fx[0] == fx[2] != 900.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_names_the_device_parameter() -> None:
    """The error used to name 'weights' (it came from loading the model there)."""
    graph = Graph()
    node = graph.add(SegmentationNode, "segmentation", {"device": "cuda"})
    with pytest.raises(ConfigError, match=r"parameter 'device': device 'cuda' asked for but "
                       r"CUDA is not available"):
        node.setup()


class _NotReady(Node):
    """Fails when it gets ready, as a bad cross-node parameter does (car_class)."""

    type_name = "not_ready"

    def ready(self) -> None:
        raise self.config_error("not ready")


def test_a_graph_failing_to_start_leaves_earlier_outputs_whatever_the_node_order(
        tmp_path: Path) -> None:
    """Output nodes declared before a node that fails its ready() check (a launch file that
    includes outputs.yaml before pipeline.yaml) truncated the earlier masks.mcap to an
    empty file, and removed the earlier masks and video, before the error."""
    mcap, video, png = tmp_path / "masks.mcap", tmp_path / "overlay.mp4", tmp_path / "5.png"
    for path in (mcap, video, png):
        path.write_bytes(b"an earlier run's output")
    graph = Graph()
    graph.add(McapRecorder, "recorder", {"path": str(mcap)})
    graph.add(MaskWriter, "masks", {"dir": str(tmp_path)})
    graph.add(VideoWriter, "video", {"path": str(video)})
    graph.add(_NotReady, "bad")
    with pytest.raises(ConfigError, match=r"node 'bad' \(not_ready\): not ready"):
        graph.setup()
    for path in (mcap, video, png):
        assert path.read_bytes() == b"an earlier run's output", path


def test_a_signal_while_the_nodes_report_lets_the_reports_finish(
        tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the nodes wrote their reports (a second one, given while a stopped
    graph finished) came after the graph had put the earlier handlers back: it raised
    KeyboardInterrupt in the middle of the latency tracker's files, leaving no latency.json
    and a hidden ``.latency.csv.*.tmp``. The graph's handler now stays until the reports
    are done, and the signal only shows in the exit status."""
    real_finish = LatencyTracker._finish_csv

    def finish_interrupted(self: LatencyTracker) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real_finish(self)

    monkeypatch.setattr(LatencyTracker, "_finish_csv", finish_interrupted)
    out = tmp_path / "out"
    graph = build_graph(load_launch("pipeline", {
        "input": "synthetic:0", "weights": str(tiny_weights), "max_frames": 2, "rate": 0.0,
        "out_dir": str(out), "status": False, "proposals": False}))
    graph.setup()
    try:
        result = graph.run(timeout_s=120)
    except KeyboardInterrupt:
        pytest.fail("the signal interrupted the reports")
    assert result.signal == "SIGINT" and result.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["latency.csv", "latency.json"]
    assert json.loads((out / "latency.json").read_text())["masks"] == 2
    assert len((out / "latency.csv").read_text().splitlines()) == 3


class _SignalledWhileOpening(Node):
    """Gets a Ctrl-C while the outputs are created (after the recorder made its file)."""

    type_name = "signalled_while_opening"

    def open_outputs(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_while_the_outputs_are_created_stops_a_graph_that_reports(
        tmp_path: Path) -> None:
    """A Ctrl-C while the graph created its outputs (the recorder's file and serialisers
    take a few hundred ms on a busy machine) raised KeyboardInterrupt there: masks.mcap
    was left empty beside the earlier run's latency.json. The graph now runs stopped from
    the start: no frame, and every output, latency.json too, is this run's."""
    (tmp_path / "latency.json").write_text("an earlier run's report")
    graph = Graph()
    graph.add(McapRecorder, "recorder", {"path": str(tmp_path / "masks.mcap")})
    graph.add(_SignalledWhileOpening, "late")
    graph.add(LatencyTracker, "latency", {"out_dir": str(tmp_path), "status": False,
                                          "summary": False})
    try:
        graph.setup()
    except KeyboardInterrupt:
        pytest.fail("the signal interrupted the start")
    result = graph.run(timeout_s=60)
    assert result.signal == "SIGINT" and result.exit_code == 130
    report = json.loads((tmp_path / "latency.json").read_text())
    assert report["masks"] == report["frames_in"] == 0
    with (tmp_path / "masks.mcap").open("rb") as f:
        assert make_reader(f).get_summary() is not None
