"""Region proposals on the graph: real KITTI frames with the shipped weights give detections
for every mask, boxes inside the image, ranges inside the lidar's, annotations in the MCAP
equal to the boxes; bad parameters stop the launch; the overlay pairing stays bounded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drivingseg.detect.proposals import LidarInImage, ProposalParams, propose_regions
from drivingseg.errors import ConfigError
from drivingseg.fusion.projection import scale_rig
from drivingseg.node.detection import (
    BOX_COLOUR_RGB,
    DETECTIONS_TOPIC,
    ProposalNode,
    StampPairer,
    detection_text,
    draw_detections,
)
from drivingseg.node.graph import Graph
from drivingseg.node.latency import RECENT_FRAMES, LatencyTracker
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.messages import DETECTION_STAGES, Detection, Detections, Mask, Timing
from drivingseg.node.recorder import McapRecorder
from drivingseg.node.runtime import Node
from drivingseg.node.video_writer import VideoWriter
from drivingseg.sensors.frames import CameraFrame
from drivingseg.sensors.kitti_raw import KittiRawDrive

FRAMES = 3


class Collector(Node):
    """Test node: keeps every mask and every Detections message it receives."""

    type_name = "collector"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks: list[Mask] = []
        self.detections: list[Detections] = []
        self.create_subscription("/segmentation/mask", Mask, self.masks.append, depth=1000)
        self.create_subscription(DETECTIONS_TOPIC, Detections, self.detections.append,
                                 depth=1000)


def node_of(graph: Graph, cls: type[Any]) -> Any:
    return next(n for n in graph.nodes if isinstance(n, cls))


def test_real_frames_give_detections_for_every_mask(kitti_raw_drive: Path, tmp_path: Path
                                                     ) -> None:
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "rate": 0.0, "overflow": "block", "max_frames": FRAMES,
        "out_dir": str(tmp_path), "masks": False, "status": False}))
    collector = graph.add(Collector, "collector")
    graph.setup()
    result = graph.run(handle_signals=False, timeout_s=240)
    assert result.signal is None and graph.drops() == {}
    with KittiRawDrive(kitti_raw_drive) as drive:
        stamps = [drive.camera(i).stamp_ns for i in range(FRAMES)]
    assert [m.stamp_ns for m in collector.masks] == stamps
    assert [d.stamp_ns for d in collector.detections] == stamps

    ranged = 0
    for mask, dets in zip(collector.masks, collector.detections, strict=True):
        h, w = mask.class_ids.shape
        # The mask carries the car probability and the fused input's scan and rig.
        prob = mask.car_prob
        assert prob is not None and prob.shape == (h, w) and prob.dtype == np.float32
        assert prob.min() >= 0.0 and prob.max() <= 1.0
        # Car pixels have a high car probability (the softmax is taken at the model's input
        # size and resized, the ids from resized logits, so agreement is close, not exact).
        assert prob[mask.class_ids == 2].min() >= 1.0 / 3.0 - 0.02
        assert np.median(prob[mask.class_ids == 2]) > 0.8 > np.median(prob[mask.class_ids != 2])
        assert mask.scan is not None and mask.rig is not None
        visible = LidarInImage.from_scan(mask.scan.points, mask.rig).range_m
        assert [s for s, _ in dets.timing.stages] == [
            "read", "sync", "fusion", "inference", "publish", "proposals"]
        assert set(DETECTION_STAGES) == {s for s, _ in dets.timing.stages}
        assert dets.timing.stage_ns("proposals") > 0
        for d in dets.detections:
            x1, y1, x2, y2 = d.box_xyxy_px
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, d
            assert d.label == "car" and 0.0 <= d.score <= 1.0
            if d.n_points:
                assert d.range_m is not None and d.n_points >= 3
                assert visible.min() <= d.range_m <= visible.max(), d
                ranged += 1
            else:
                assert d.range_m is None and d.centroid_cam_m is None
    assert ranged > 0  # drive 0000 shows cars the lidar sees

    proposals = node_of(graph, ProposalNode)
    assert [f.stamp_ns for f in proposals.frames] == stamps
    assert proposals.latency_ms()["proposals"]["p50"] > 0
    tracker = node_of(graph, LatencyTracker)  # still measures masks, unchanged
    assert [f.stamp_ns for f in tracker.frames] == stamps
    video = node_of(graph, VideoWriter)
    assert video.written == FRAMES and video.pairer.unpaired == 0 and len(video.pairer) == 0

    # The MCAP holds one ImageAnnotations per frame whose polygons are the box corners.
    by_stamp = {d.stamp_ns: d for d in collector.detections}
    seen = []
    with (tmp_path / "masks.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, msg in reader.iter_decoded_messages():
            if channel.topic != "/segmentation/detections":
                continue
            assert schema is not None and schema.name == "foxglove_msgs/msg/ImageAnnotations"
            dets = by_stamp[message.log_time]
            seen.append(message.log_time)
            assert len(msg.points) == len(msg.texts) == len(dets.detections)
            for d, poly, label in zip(dets.detections, msg.points, msg.texts, strict=True):
                x1, y1, x2, y2 = d.box_xyxy_px
                assert poly.type == 2
                assert [(p.x, p.y) for p in poly.points] == [(x1, y1), (x2, y1), (x2, y2),
                                                             (x1, y2)]
                stamp = poly.timestamp.sec * 1_000_000_000 + poly.timestamp.nanosec
                assert stamp == message.log_time
                assert label.text == detection_text(d)
    assert seen == stamps


@pytest.mark.parametrize(("arguments", "match"), [
    ({"depth_jump_m": 0.0}, r"node 'proposals' \(proposals\): parameter 'depth_jump_m': 0\.0 "
                            r"is below the minimum 0\.01 m"),
    ({"min_area_px": 2.5}, r"parameter 'min_area_px': expected an integer, got 2\.5"),
    ({"min_points": 0}, r"parameter 'min_points': 0 is below the minimum 1 points"),
    ({"car_class": -1}, r"parameter 'car_class': -1 is below the minimum 0"),
    ({"road_class": -2}, r"parameter 'road_class': -2 is below the minimum -1"),
    ({"ground_clearance_m": -0.1}, r"parameter 'ground_clearance_m': -0\.1 is below the "
                                   r"minimum 0 m"),
    ({"proposal_lidar": "yes"}, r"parameter 'lidar': expected a boolean, got 'yes'"),
])
def test_bad_proposal_parameters_stop_the_launch(arguments: dict[str, Any], match: str) -> None:
    desc = load_launch("pipeline", {"input": "synthetic", **arguments})
    with pytest.raises(ConfigError, match=match) as info:
        build_graph(desc)
    assert info.value.path is not None and info.value.path.endswith("pipeline.yaml")


def test_empty_label_and_unknown_car_class(tiny_weights: Path, tmp_path: Path) -> None:
    graph = Graph()
    node = graph.add(ProposalNode, "prop", {"label": " "})
    with pytest.raises(ConfigError, match=r"parameter 'label': must not be empty, got ' '"):
        node.setup()
    # The model has 3 classes: car_class 3 is refused at start, before any frame is read.
    graph = build_graph(load_launch("pipeline", {
        "input": "synthetic", "weights": str(tiny_weights), "max_frames": 2, "rate": 0.0,
        "car_class": 3, "out_dir": str(tmp_path), "status": False}))
    match = (r"node 'proposals' \(proposals\): parameter 'car_class': 3 is not a class of the "
             r"model's masks \(0 background, 1 road, 2 car\)")
    with pytest.raises(ConfigError, match=match):
        graph.setup()


def test_a_road_class_outside_the_model_is_refused_at_start(
    tiny_weights: Path, tmp_path: Path
) -> None:
    """road_class 3 of a 3-class model marks no lidar point as road: no road plane was
    ever fitted, so ground points stayed in the car clusters, silently. Refused at start
    as car_class is; -1 (keep the ground points) still starts."""
    arguments = {"input": "synthetic", "weights": str(tiny_weights), "max_frames": 1,
                 "rate": 0.0, "out_dir": str(tmp_path), "status": False}
    graph = build_graph(load_launch("pipeline", {**arguments, "road_class": 3}))
    match = (r"node 'proposals' \(proposals\): parameter 'road_class': 3 is not a class of "
             r"the model's masks \(0 background, 1 road, 2 car\)")
    with pytest.raises(ConfigError, match=match):
        graph.setup()
    graph = build_graph(load_launch("pipeline", {**arguments, "road_class": -1}))
    graph.setup()
    for node in reversed(graph.nodes):
        node.shutdown()


def test_car_class_is_checked_at_the_first_mask_without_a_segmenter() -> None:
    """Masks from a node that announces no classes (here: published by hand) are checked
    as they come."""
    graph = Graph()
    node = graph.add(ProposalNode, "prop", {"car_class": 1})
    node.setup()
    node.ready()
    frame = CameraFrame(0, np.zeros((4, 4, 3), np.uint8), "cam")
    mask = Mask(frame, np.zeros((4, 4), np.uint8), ("background",), Timing(0, 0, 0), 0)
    with pytest.raises(ConfigError, match=r"'car_class': 1 is not a class of the model's "
                                          r"masks \(0 background\)"):
        node.on_mask(mask)


def test_frames_smaller_than_the_calibration_are_ranged_at_their_own_size(
    kitti_raw_drive: Path,
) -> None:
    """The fusion node passes the calibrated 1242x375 rig on with 621x188 frames: the node
    projects the lidar at the frame's size, so the near car gets its 6.8 m (the calibrated
    projection put it at 57 m)."""
    with KittiRawDrive(kitti_raw_drive) as drive:
        rig, scan = drive.rig(), drive.lidar(0)
    assert rig is not None and rig.camera.image_size == (1242, 375)
    graph = Graph()
    node = graph.add(ProposalNode, "prop", {})
    collector = graph.add(Collector, "collector")
    node.setup()
    node.ready()
    ids = np.zeros((188, 621), np.uint8)
    ids[81:185, 36:207] = 2  # the near car and what shows behind it
    frame = CameraFrame(5, np.zeros((188, 621, 3), np.uint8), "cam")
    node.on_mask(Mask(frame, ids, ("background", "road", "car"), Timing(5, 5, 0), 0,
                      scan=scan, rig=rig))
    (sub,) = (s for s in collector.subscriptions if s.topic.name == DETECTIONS_TOPIC)
    dets = sub.head()
    assert dets is not None and dets.stamp_ns == 5
    lidar = LidarInImage.from_scan(scan.points, scale_rig(rig, 621, 188))
    assert list(dets.detections) == propose_regions(ids, None, lidar, ProposalParams())
    near = max(dets.detections, key=lambda d: d.n_points)
    assert near.range_m == pytest.approx(6.8, abs=0.1) and near.n_points > 1500


def test_fusion_passes_the_rig_scaled_to_the_frame(kitti_raw_drive: Path) -> None:
    """Frames at half the calibrated size: /fused carries the rig of that size, so the
    recorder's CameraInfo and every projection downstream describe the image as it is."""
    from drivingseg.node.messages import CameraImage, FusedInput, LidarCloud, SyncedFrames
    from drivingseg.node.processing import FusionNode

    with KittiRawDrive(kitti_raw_drive) as drive:
        rig, scan = drive.rig(), drive.lidar(0)
    assert rig is not None
    graph = Graph()
    fusion = graph.add(FusionNode, "fusion", {"channels": "on"})
    fused: list[FusedInput] = []

    class Fused(Node):
        type_name = "fused"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.create_subscription("/fused", FusedInput, fused.append, depth=10)

    graph.add(Fused, "fused")
    fusion.setup()
    for stamp in (5, 6):
        frame = CameraFrame(stamp, np.zeros((188, 621, 3), np.uint8), "cam")
        timing = Timing(stamp, stamp, 0)
        fusion.on_synced(SyncedFrames(CameraImage(frame, rig, timing),
                                      LidarCloud(scan, timing), timing))
    (sub,) = (s for n in graph.nodes for s in n.subscriptions if s.topic.name == "/fused")
    with sub.node.cond:
        while len(sub):
            fused.append(sub.pop())
    assert len(fused) == 2 and fused[0].rig is fused[1].rig  # scaled once, then kept
    scaled = fused[0].rig
    assert scaled is not None and scaled.camera.image_size == (621, 188)
    np.testing.assert_allclose(scaled.camera.P, scale_rig(rig, 621, 188).camera.P)
    assert fused[0].channels is not None and fused[0].channels.shape[1:] == (188, 621)


def test_outputs_do_not_wait_without_a_proposals_node(tmp_path: Path) -> None:
    for proposals in (True, False):
        graph = build_graph(load_launch("replay_kitti", {
            "input": "synthetic", "proposals": proposals, "out_dir": str(tmp_path)}))
        video, recorder = node_of(graph, VideoWriter), node_of(graph, McapRecorder)
        video.setup()
        recorder.setup()
        recorder.shutdown()
        assert video.pairer.wait is proposals
        for node in (video, recorder):
            topics = [s.topic.name for s in node.subscriptions]
            assert (DETECTIONS_TOPIC in topics) is proposals


# ---------------------------------------------------------------- pairing and drawing

IMG = np.zeros((4, 6, 3), np.uint8)


def mask(stamp: int) -> Mask:
    return Mask(CameraFrame(stamp, IMG), np.zeros((4, 6), np.uint8), ("b", "r", "car"),
                Timing(stamp, stamp, 0), 0)


def dets(stamp: int) -> Detections:
    return Detections((Detection("car", 0.5, (0.0, 0.0, 2.0, 2.0)),), Timing(stamp, stamp, 0))


def stamps_of(pairs: list[tuple[Mask, Detections | None]]) -> list[tuple[int, int | None]]:
    return [(m.stamp_ns, None if d is None else d.stamp_ns) for m, d in pairs]


def test_pairer_stays_bounded_when_detections_never_come() -> None:
    pairer = StampPairer(3)
    out = []
    for k in range(50):
        out += pairer.add_mask(mask(k))
        assert len(pairer) <= 3
    out += pairer.add_mask(mask(50))
    assert stamps_of(out) == [(k, None) for k in range(48)]
    assert stamps_of(pairer.flush()) == [(48, None), (49, None), (50, None)]
    assert len(pairer) == 0 and pairer.unpaired == 51
    for k in range(100, 150):  # detections of masks this output never got (dropped)
        assert pairer.add_detections(dets(k)) == []
        assert len(pairer) <= 3
    assert pairer.flush() == [] and len(pairer) == 0


def test_pairer_pairs_by_stamp_in_either_order() -> None:
    pairer = StampPairer(4)
    assert pairer.add_mask(mask(0)) == [] and pairer.add_mask(mask(1)) == []
    assert pairer.add_mask(mask(2)) == []
    assert stamps_of(pairer.add_detections(dets(0))) == [(0, 0)]
    # Detections of 1 were lost upstream: mask 1 goes out bare when those of 2 come.
    assert stamps_of(pairer.add_detections(dets(2))) == [(1, None), (2, 2)]
    assert pairer.add_detections(dets(1)) == []  # stale: its mask already went out
    assert pairer.add_detections(dets(4)) == []  # before its mask
    assert stamps_of(pairer.add_mask(mask(4))) == [(4, 4)]
    assert len(pairer) == 0 and pairer.unpaired == 1
    assert stamps_of(StampPairer(4, wait=False).add_mask(mask(9))) == [(9, None)]


def test_detection_text_and_drawing() -> None:
    box = (50.0, 20.0, 120.0, 60.0)
    assert detection_text(Detection("car", 0.874, box, 12.34)) == "car 0.87 12.3 m"
    assert detection_text(Detection("car", 0.874, box)) == "car 0.87"
    image = np.zeros((100, 200, 3), np.uint8)
    frame = Detections((Detection("car", 0.874, box, 12.34),), Timing(0, 0, 0))
    assert draw_detections(image, frame) is image
    colour = np.array(BOX_COLOUR_RGB, np.uint8)
    assert (image[35, 50] == colour).all() and (image[35, 119] == colour).all()  # edges
    assert (image[59, 80] == colour).all()  # bottom edge: row 59, the last row inside
    assert not image[40, 85].any() and not image[90, 190].any()  # inside, far outside
    assert not image[75, 80].any()  # below the box
    assert draw_detections(image, None) is image


def test_onnxruntime_backend_fills_the_car_probability(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    # as fast as possible without losses (replay --fast): the 10 Hz lidar is not capped
    # at max_frames, so a dropping queue could lose the two frames' scans on a busy machine
    graph = build_graph(load_launch("replay_kitti", {
        "input": str(kitti_raw_drive), "weights": str(tiny_weights), "backend": "onnxruntime",
        "rate": 0.0, "overflow": "block", "max_frames": 2, "out_dir": str(tmp_path),
        "status": False, "record": False, "video": False, "masks": False, "live": False}))
    collector = graph.add(Collector, "collector")
    graph.setup()
    graph.run(handle_signals=False, timeout_s=120)
    assert collector.masks and len(collector.detections) == len(collector.masks)
    for m in collector.masks:
        assert m.car_prob is not None and m.car_prob.shape == m.class_ids.shape
        assert m.car_prob.dtype == np.float32 and 0.0 < m.car_prob.max() <= 1.0
        assert m.scan is not None and m.rig is not None


def test_proposal_node_keeps_a_bounded_window_and_totals_over_every_frame() -> None:
    graph = Graph()
    node = graph.add(ProposalNode, "prop", {"min_area_px": 1, "lidar": False})
    node.setup()
    ids = np.zeros((4, 6), np.uint8)
    ids[1:3, 1:4] = 2  # one car blob a frame
    n = RECENT_FRAMES + 57
    for k in range(n):
        age_ns = 10_000_000_000 if k == 0 else 0  # the first frame: 10 s late
        timing = Timing(k, k, time.perf_counter_ns() - age_ns)
        node.on_mask(Mask(CameraFrame(k, IMG), ids, ("b", "r", "car"), timing, 0))
    assert node.frames.maxlen == RECENT_FRAMES and len(node.frames) == RECENT_FRAMES
    assert [f.stamp_ns for f in node.frames] == list(range(n - RECENT_FRAMES, n))
    assert node.detections == n and len(node.samples) == n
    assert node.samples.nbytes <= 2 * 8 * 2 * n
    stats = node.latency_ms()
    e2e_max = stats["e2e"]["max"]
    assert e2e_max is not None and e2e_max >= 10_000.0  # frame 0, long out of the window
    assert ProposalNode("p", {}, Graph().context).latency_ms()["e2e"]["p50"] is None


@pytest.mark.parametrize(("road_class", "want"), [(1, 1), (-1, None)])
def test_road_plane_parameters_reach_the_proposals(road_class: int, want: int | None) -> None:
    graph = Graph()
    node = graph.add(ProposalNode, "prop", {"road_class": road_class,
                                            "ground_clearance_m": 0.5})
    node.setup()
    assert (node.params.road_class, node.params.ground_clearance_m) == (want, 0.5)
