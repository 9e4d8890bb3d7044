"""The processing nodes on real recordings: fusion checks at start what it needs to make
lidar channels, and gives a frame without a scan (the sync's ``keep_unmatched``) empty
channels instead of stopping the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drivingseg.errors import ConfigError
from drivingseg.model.checkpoint import save_checkpoint
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.unet import UNet
from drivingseg.node.graph import Graph
from drivingseg.node.messages import Mask
from drivingseg.node.processing import FusionNode, SegmentationNode
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource, LidarSource
from drivingseg.node.sync_node import SyncNode


@pytest.fixture(scope="module")
def lidar_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-level U-Net taking RGB + the 4 lidar channels (64x48 input)."""
    torch.manual_seed(0)
    config = ModelConfig(depth=2, base_channels=4, in_channels=7)
    path = tmp_path_factory.mktemp("weights") / "tiny_lidar"
    return save_checkpoint(path, UNet(config).eval(), config, InputSpec(64, 48))


def uncalibrated_drive(kitti_raw_drive: Path, root: Path) -> Path:
    """The real drive's images and scans (linked in place) in a date folder without the
    calib_*.txt files: a recording without calibration."""
    drive = root / "2011_09_26" / kitti_raw_drive.name
    drive.mkdir(parents=True)
    for name in ("image_02", "velodyne_points"):
        (drive / name).symlink_to(kitti_raw_drive / name)
    return drive


class Masks(Node):
    """Keeps every mask it receives."""

    type_name = "masks"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks: list[Mask] = []
        self.create_subscription("/segmentation/mask", Mask, self.masks.append, depth=1000)


def perception_graph(camera: dict[str, Any], lidar: dict[str, Any], weights: Path, *,
                     fusion: dict[str, Any] | None = None,
                     sync: dict[str, Any] | None = None) -> tuple[Graph, Masks]:
    graph = Graph(overflow="block")
    graph.add(CameraSource, "camera", {"rate": 0.0, **camera})
    graph.add(LidarSource, "lidar", {"rate": 0.0, **lidar})
    graph.add(SyncNode, "sync", sync or {})
    graph.add(FusionNode, "fusion", fusion or {})
    graph.add(SegmentationNode, "segmentation",
              {"weights": str(weights), "trace": False, "fp16": "off"})
    return graph, graph.add(Masks, "masks")


@pytest.mark.parametrize("channels", ["on", "auto"])
def test_lidar_channels_without_calibration_are_refused_at_start(
    kitti_raw_drive: Path, tmp_path: Path, tiny_weights: Path, lidar_weights: Path,
    channels: str,
) -> None:
    """``lidar_channels:=on`` (or a model that takes them) on a recording without
    calibration failed only at the first frame, after the graph had started and opened
    its outputs; now at start, naming the camera source and what to set."""
    drive = uncalibrated_drive(kitti_raw_drive, tmp_path)
    weights = tiny_weights if channels == "on" else lidar_weights
    graph, _ = perception_graph({"input": str(drive), "max_frames": 2}, {"input": str(drive)},
                                weights, fusion={"channels": channels})
    with pytest.raises(ConfigError, match=r"node 'fusion' \(fusion\): parameter 'calibration': "
                                          r"lidar channels are on .* camera source 'camera' "
                                          r"\(input '.*drive_0000_sync'\) has no calibration"):
        graph.setup()


def test_lidar_channels_with_a_calibration_given_start(
    kitti_raw_root: Path, kitti_raw_drive: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    """The check at start leaves a calibration given to the camera source alone."""
    drive = uncalibrated_drive(kitti_raw_drive, tmp_path)
    graph, masks = perception_graph(
        {"input": str(drive), "max_frames": 2, "calibration": str(kitti_raw_root)},
        {"input": str(drive)}, tiny_weights, fusion={"channels": "on"})
    graph.setup()
    graph.run(handle_signals=False, timeout_s=120)
    assert [m.frame.index for m in masks.masks] == [0, 1]


def test_a_lidar_model_with_channels_off_is_refused_at_start(
    kitti_raw_drive: Path, lidar_weights: Path
) -> None:
    graph, _ = perception_graph({"input": str(kitti_raw_drive), "max_frames": 1},
                                {"input": str(kitti_raw_drive)}, lidar_weights,
                                fusion={"channels": "off"})
    with pytest.raises(ConfigError, match=r"node 'fusion' \(fusion\): parameter 'channels': "
                                          r"'off' leaves the model, which takes lidar "
                                          r"channels, without them"):
        graph.setup()


def drive_with_a_lidar_gap(kitti_raw_drive: Path, path: Path, frames: int,
                           gap: tuple[int, ...]) -> Path:
    """An MCAP of the drive's first ``frames`` frames with calibration, without the scans
    of the frames in ``gap`` (a lidar dropout)."""
    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as rec, Ros2McapWriter(path) as writer:
        rig = rec.rig()
        assert rig is not None
        writer.write_tf_static(rig.T_cam_velo, rec.camera(0).stamp_ns)
        for i in range(frames):
            frame = rec.camera(i)
            writer.write_image("/camera", frame, frame_id=rig.camera_frame)
            writer.write_camera_info("/camera_info", rig.camera, frame.stamp_ns)
            if i not in gap:
                writer.write_pointcloud("/points", rec.lidar(i), frame_id=rig.lidar_frame)
    return path


def test_kept_frames_without_a_scan_get_empty_channels(
    kitti_raw_drive: Path, tmp_path: Path, lidar_weights: Path
) -> None:
    """With the sync's ``keep_unmatched`` and a lidar-channel model, a frame without a scan
    stopped the graph with 'set the fusion node's channels to on' (they were on). It is
    segmented with empty channels (no point, valid 0), the others with their scans."""
    path = drive_with_a_lidar_gap(kitti_raw_drive, tmp_path / "gap.mcap", 5, gap=(2,))
    graph, masks = perception_graph({"input": str(path)}, {"input": str(path)}, lidar_weights,
                                    sync={"keep_unmatched": True})
    fused: list[Any] = []
    fusion = next(n for n in graph.nodes if isinstance(n, FusionNode))
    publish = fusion.pub.publish
    fusion.pub.publish = lambda msg: (fused.append(msg), publish(msg))[1]  # type: ignore[method-assign]
    graph.setup()
    graph.run(handle_signals=False, timeout_s=120)
    assert [m.frame.index for m in masks.masks] == [0, 1, 2, 3, 4]
    assert [f.scan is None for f in fused] == [False, False, True, False, False]
    empty = fused[2].channels
    assert empty is not None and empty.shape == (4, 375, 1242) and not empty.any()
    assert fused[1].channels is not None and fused[1].channels[3].sum() > 10_000
    assert fusion.frames_without_scan == 1 and graph.drops() == {}


def test_fusion_of_a_frame_without_a_scan_needs_no_calibration() -> None:
    """Empty channels need no rig: a kept frame without a scan of an uncalibrated camera."""
    from drivingseg.node.messages import CameraImage, SyncedFrames, Timing
    from drivingseg.sensors.frames import CameraFrame

    graph = Graph()
    fusion = graph.add(FusionNode, "fusion", {"channels": "on"})
    sent: list[Any] = []
    fusion.pub.publish = sent.append  # type: ignore[method-assign]
    frame = CameraFrame(7, np.zeros((48, 64, 3), np.uint8), "cam")
    timing = Timing(7, 0, 0)
    fusion.on_synced(SyncedFrames(CameraImage(frame, None, timing), None, timing))
    (msg,) = sent
    assert msg.channels is not None and msg.channels.shape == (4, 48, 64)
    assert not msg.channels.any()


@pytest.mark.parametrize("weights", ["", " "])
def test_empty_weights_are_a_clear_error_at_start(weights: str) -> None:
    """``weights:=`` (an empty launch argument) raised ValueError from pathlib."""
    graph = Graph()
    node = graph.add(SegmentationNode, "segmentation", {"weights": weights})
    with pytest.raises(ConfigError, match=r"node 'segmentation' \(segmentation\): parameter "
                                          r"'weights': names no checkpoint \('\s?'\)"):
        node.setup()


def test_a_graph_without_a_lidar_source_is_camera_only(kitti_raw_drive: Path) -> None:
    """Without any node on /lidar/points every frame was dropped at the sync ('camera
    frame without a lidar scan'), no mask at all; now the frames go on without a scan, as
    a recording without scans does, and a lidar-channel model is refused at start."""
    from drivingseg.node.messages import SyncedFrames

    graph = Graph(overflow="block")
    graph.add(CameraSource, "camera", {"input": str(kitti_raw_drive), "rate": 0.0,
                                       "max_frames": 3})
    graph.add(SyncNode, "sync", {})
    synced: list[SyncedFrames] = []

    class Synced(Node):
        type_name = "synced"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.create_subscription("/synced", SyncedFrames, synced.append, depth=100)

    graph.add(Synced, "synced")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=60)
    assert [(m.camera.frame.index, m.lidar) for m in synced] == [(0, None), (1, None), (2, None)]
    assert graph.drops() == {}


def test_a_lidar_model_without_a_lidar_source_is_refused_at_start(
    kitti_raw_drive: Path, lidar_weights: Path
) -> None:
    graph = Graph(overflow="block")
    graph.add(CameraSource, "camera", {"input": str(kitti_raw_drive), "rate": 0.0})
    graph.add(SyncNode, "sync", {})
    graph.add(FusionNode, "fusion", {})
    graph.add(SegmentationNode, "segmentation", {"weights": str(lidar_weights)})
    with pytest.raises(ConfigError, match=r"node 'fusion' \(fusion\): parameter 'channels': "
                                          r"the model takes lidar channels, but .* no lidar "
                                          r"scans \(/lidar/points\)"):
        graph.setup()


def test_the_fusion_calibration_is_loaded_for_the_camera_in_use(
    kitti_raw_root: Path, tmp_path: Path
) -> None:
    """The fusion node's own ``calibration`` (a KITTI date folder) was loaded for camera 2
    whatever camera the source replays: camera 3's frames were projected with camera 2's
    matrix (0.54 m of stereo baseline off), silently."""
    from support.kitti_links import linked_drive

    from drivingseg.calibration.load import load_rig_any

    drive = linked_drive(kitti_raw_root, tmp_path, 3)
    graph = Graph()
    graph.add(CameraSource, "camera", {"input": str(drive), "camera": 3})
    graph.add(SyncNode, "sync", {})
    fusion = graph.add(FusionNode, "fusion", {"calibration": str(kitti_raw_root)})
    try:
        graph.setup()
        assert fusion.rig is not None
        expected = load_rig_any(kitti_raw_root, camera=3)
        np.testing.assert_allclose(fusion.rig.camera.P, expected.camera.P)
    finally:
        for node in graph.nodes:
            node.shutdown()


def test_lidar_channels_import_open3d_at_start_not_in_the_first_frame(
    kitti_raw_drive: Path, tiny_weights: Path
) -> None:
    """The height channel's ground fit imported open3d inside the first frame's fusion:
    2.3 s on the 2-core machine (fusion max 4.7 s, 27 of 30 KITTI frames dropped with
    ``lidar_channels:=on``). A graph with channels on imports it at start; off, never."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from drivingseg.node.graph import Graph\n"
        "from drivingseg.node.processing import FusionNode, SegmentationNode\n"
        "from drivingseg.node.sync_node import SyncNode\n"
        "from drivingseg.node.sources import CameraSource, LidarSource\n"
        "def graph(channels):\n"
        "    g = Graph(overflow='block')\n"
        f"    g.add(CameraSource, 'camera', {{'rate': 0.0, 'input': {str(kitti_raw_drive)!r}}})\n"
        f"    g.add(LidarSource, 'lidar', {{'rate': 0.0, 'input': {str(kitti_raw_drive)!r}}})\n"
        "    g.add(SyncNode, 'sync', {})\n"
        "    g.add(FusionNode, 'fusion', {'channels': channels})\n"
        f"    g.add(SegmentationNode, 'segmentation', {{'weights': {str(tiny_weights)!r}, "
        "'trace': False, 'fp16': 'off'})\n"
        "    g.setup()\n"
        "    for node in g.nodes:\n"
        "        node.shutdown()\n"
        "graph('off')\n"
        "assert 'open3d' not in sys.modules, 'imported with channels off'\n"
        "graph('on')\n"
        "assert 'open3d' in sys.modules, 'not imported at start with channels on'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_fusion_warns_once_without_ground_and_normalises_driver_intensity(
    kitti_raw_drive: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Scans without a ground plane logged 'height channel left at 0' on every frame (10 Hz
    of warnings); now once, and counted at the end. A Velodyne driver's 0..255 intensity
    reached the model raw; it is 0..1 as in KITTI, or divided by ``intensity_scale``."""
    import logging

    from drivingseg.node.messages import CameraImage, LidarCloud, SyncedFrames, Timing
    from drivingseg.sensors.frames import CameraFrame, LidarScan
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as rec:
        rig, image = rec.require_rig(), rec.camera(0).image
    rng = np.random.default_rng(0)
    wall = np.stack([np.full(4000, 10.0), rng.uniform(-5, 5, 4000), rng.uniform(-1.5, 2, 4000),
                     rng.integers(0, 256, 4000)], axis=1).astype(np.float32)
    for scale, top in ((0.0, 1.0), (1000.0, 0.255)):
        graph = Graph()
        fusion = graph.add(FusionNode, "fusion", {"channels": "on", "intensity_scale": scale})
        sent: list[Any] = []
        fusion.pub.publish = sent.append  # type: ignore[method-assign]
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for i in range(3):
                timing = Timing(i, i, 0)
                fusion.on_synced(SyncedFrames(
                    CameraImage(CameraFrame(i, image, "cam", index=i), rig, timing),
                    LidarCloud(LidarScan(i, wall, index=i), timing), timing))
            fusion.after_run()
        warned = [r.getMessage() for r in caplog.records if "ground" in r.getMessage()]
        assert len(warned) == 2, warned  # the first scan, and the count at the end
        assert warned[1] == ("fusion: 3 of 3 lidar scans had no ground plane; their height "
                             "channel is 0")
        intensity = sent[0].channels[2][sent[0].channels[3] > 0]
        assert 0.9 * top < intensity.max() <= top


def test_the_node_runs_on_the_gpu_named_by_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """``device: cuda:1`` (the second GPU of a vehicle) was refused by the parameter's
    choices (auto, cpu, cuda) although every other command takes ``cuda:N``; it now goes to
    the one device parser: taken where the GPU exists, a clear error where it does not."""
    import drivingseg.model.backends as backends

    made: dict[str, Any] = {}

    def fake_make_segmenter(weights: Path, **kwargs: Any) -> Any:
        made.update(kwargs)
        raise backends.ModelError("stop here")

    monkeypatch.setattr(backends, "make_segmenter", fake_make_segmenter)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    node = Graph().add(SegmentationNode, "segmentation", {"device": "cuda:1"})
    with pytest.raises(ConfigError, match=r"stop here"):
        node.setup()
    assert made["device"] == "cuda:1" and made["fp16"] is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"parameter 'device': device 'cuda:1': this machine "
                                          r"has 1 CUDA device\(s\), cuda:0 to cuda:0"):
        Graph().add(SegmentationNode, "segmentation", {"device": "cuda:1"}).setup()
    for backend in ("torch", "onnxruntime"):  # a typo is refused whichever backend runs
        bad = Graph().add(SegmentationNode, "segmentation", {"device": "gpu",
                                                              "backend": backend})
        with pytest.raises(ConfigError, match=r"parameter 'device': device 'gpu' is not one "
                                              r"of auto, cpu, cuda, cuda:N"):
            bad.setup()


@pytest.mark.parametrize(("exported_fp16", "asked"), [(False, "on"), (True, "off")])
def test_an_onnx_files_precision_that_differs_from_fp16_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, exported_fp16: bool,
        asked: str) -> None:
    """An .onnx file runs in the precision it was exported in: ``fp16: on`` with a float32
    file (or off with a float16 one) was ignored without a word, so the vehicle ran another
    precision than its launch file said."""
    pytest.importorskip("onnxruntime")
    from drivingseg.model.export import export_onnx

    torch.manual_seed(0)
    config = ModelConfig(depth=2, base_channels=4)
    weights = save_checkpoint(tmp_path / "tiny", UNet(config).eval(), config, InputSpec(64, 48))
    onnx_path = export_onnx(weights, tmp_path / "tiny.onnx", fp16=exported_fp16)
    node = Graph().add(SegmentationNode, "segmentation", {
        "weights": str(onnx_path), "backend": "onnxruntime", "fp16": asked})
    with caplog.at_level("WARNING", logger="drivingseg.node.processing"):
        node.setup()
    precision = "float16" if exported_fp16 else "float32"
    assert (f"segmentation: fp16 '{asked}' does not apply to tiny.onnx, exported in "
            f"{precision}") in caplog.text
    caplog.clear()
    same = Graph().add(SegmentationNode, "segmentation", {
        "weights": str(onnx_path), "backend": "onnxruntime",
        "fp16": "on" if exported_fp16 else "off"})
    with caplog.at_level("WARNING", logger="drivingseg.node.processing"):
        same.setup()
    assert "does not apply" not in caplog.text


_OOM = ("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 1 has a total capacity of 79.19 "
        "GiB of which 5.06 MiB is free. Process 4242 has 79.17 GiB memory in use. Of the "
        "allocated memory 12.00 MiB is allocated by PyTorch, and 2.00 MiB is reserved by "
        "PyTorch but unallocated.")


class _OomSegmenter:
    """A segmenter whose every call finds the GPU full (warm-up, CUDA graph capture)."""

    classes = ("background", "road", "car")
    fp16 = True
    spec = InputSpec(64, 48)
    config = ModelConfig(depth=2, base_channels=4)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError(_OOM)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_a_gpu_out_of_memory_at_start_is_one_error_naming_the_device(
        monkeypatch: pytest.MonkeyPatch, cuda_graph: bool) -> None:
    """Another process holding the GPU: the model's move to it, its warm-up or its CUDA graph
    capture raised torch's OutOfMemoryError, a traceback instead of the node's one line
    naming the node, the device and what to do. On fake GPUs: make_segmenter raises it, or
    the segmenter it returns does at warm-up."""
    import drivingseg.model.backends as backends

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    def full_gpu(weights: Path, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError(_OOM)

    monkeypatch.setattr(backends, "make_segmenter", full_gpu)
    node = Graph().add(SegmentationNode, "segmentation", {"device": "cuda:1",
                                                          "cuda_graph": cuda_graph})
    with pytest.raises(ConfigError, match=r"node 'segmentation' \(segmentation\): parameter "
                       r"'device': 'cuda:1' ran out of GPU memory while loading "
                       r"unet_rgb\.safetensors onto it \(CUDA out of memory\. .* 5\.06 MiB "
                       r"is free\. Process 4242 has 79\.17 GiB memory in use\.\); another "
                       r"process may hold the GPU .*or run on the CPU \(device cpu\)$"):
        node.setup()
    monkeypatch.setattr(backends, "make_segmenter", lambda weights, **kwargs: _OomSegmenter())
    node = Graph().add(SegmentationNode, "segmentation", {"device": "cuda:1",
                                                          "cuda_graph": cuda_graph})
    node.setup()
    doing = "capturing the CUDA graph" if cuda_graph else "warming up"
    with pytest.raises(ConfigError, match=rf"parameter 'device': 'cuda:1' ran out of GPU memory "
                       rf"while {doing} for 64x48 frames \(CUDA out of memory\."):
        node.ready()


def test_other_runtime_errors_at_start_are_not_called_out_of_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import drivingseg.model.backends as backends

    def broken(weights: Path, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(backends, "make_segmenter", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        Graph().add(SegmentationNode, "segmentation", {"device": "cpu"}).setup()


def test_cuda_graph_with_compile_cudagraphs_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A nested CUDA graph capture failed at warm-up on the GPU; refused before the model
    loads, naming the parameter (on a fake GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    node = Graph().add(SegmentationNode, "segmentation", {
        "device": "cuda", "cuda_graph": True, "compile": "cudagraphs"})
    with pytest.raises(ConfigError, match=r"parameter 'cuda_graph': cuda_graph and compile "
                       r"'cudagraphs' both capture"):
        node.setup()


def test_fusion_keeps_the_ground_plane_for_ground_refit_every_scans(
    kitti_raw_drive: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The fusion node fitted a RANSAC ground plane on every scan for the height channel
    (25-120 ms on 2 cores, a 10 Hz budget out of reach). ``ground_refit_every: 3`` fits
    scans 0 and 3 of four real ones and keeps the plane in between; the default fits each,
    as training does; 0 is refused when the graph is built."""
    import logging

    from drivingseg.fusion.channels import lidar_channels
    from drivingseg.node.messages import CameraImage, LidarCloud, SyncedFrames, Timing
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(kitti_raw_drive) as rec:
        rig = rec.require_rig()
        pairs = [(rec.camera(i), rec.lidar(i)) for i in range(4)]
    for every, fits in ((3, 2), (1, 4)):
        fusion = Graph().add(FusionNode, "fusion",
                             {"channels": "on", "ground_refit_every": every})
        sent: list[Any] = []
        fusion.pub.publish = sent.append  # type: ignore[method-assign]
        planes = []
        for frame, scan in pairs:
            timing = Timing(frame.stamp_ns, frame.stamp_ns, 0)
            fusion.on_synced(SyncedFrames(CameraImage(frame, rig, timing),
                                          LidarCloud(scan, timing), timing))
            planes.append(fusion.ground.plane)
        assert (fusion.ground.fits, fusion.ground.reused) == (fits, 4 - fits)
        if every == 3:
            kept = planes[0]
            assert kept is not None and planes[1] is planes[2] is kept
            expected = lidar_channels(pairs[2][1].points, rig, plane=kept).height_m
            np.testing.assert_array_equal(sent[2].channels[1], expected)
            with caplog.at_level(logging.INFO, logger="drivingseg.node.processing"):
                fusion.after_run()
            assert ("fusion: ground plane fitted on 2 scans (0 of them early, the kept plane "
                    "no longer fitting), kept for 2") in caplog.messages
    with pytest.raises(ConfigError, match=r"'ground_refit_every'.*0"):
        Graph().add(FusionNode, "fusion", {"ground_refit_every": 0})
