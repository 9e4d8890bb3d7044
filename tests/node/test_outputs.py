"""Output nodes alone: mask PNGs, the live window with boxes, the recorder's topics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.overlay_masks import MaskAndBoxes, mask

from drivingseg.errors import ConfigError
from drivingseg.node import outputs
from drivingseg.node.detection import BOX_COLOUR_RGB, DETECTIONS_TOPIC
from drivingseg.node.graph import Graph
from drivingseg.node.messages import Mask
from drivingseg.node.outputs import PALETTE_RGB, MaskWriter
from drivingseg.node.recorder import McapRecorder
from drivingseg.sensors.frames import CameraFrame


def test_colour_mask_pngs_of_a_model_with_more_classes_than_the_palette(tmp_path: Path) -> None:
    """Class ids past the palette used to raise IndexError and stop the graph; they take
    the palette's last colour, as on the overlays (``colourise``)."""
    writer = Graph().add(MaskWriter, "masks", {"dir": str(tmp_path), "colour": True})
    writer.setup()
    ids = np.array([[0, 1, 2, 3, 4]], np.uint8)
    writer.on_mask(mask(42, ids))
    png = cv2.imread(str(tmp_path / "42.png"), cv2.IMREAD_UNCHANGED)
    rgb = np.asarray(png)[:, :, ::-1]
    assert rgb.tolist() == [[*PALETTE_RGB.tolist(), PALETTE_RGB[-1].tolist(),
                             PALETTE_RGB[-1].tolist()]]


def test_class_id_mask_pngs_hold_the_ids(tmp_path: Path) -> None:
    writer = Graph().add(MaskWriter, "masks", {"dir": str(tmp_path)})
    writer.setup()
    ids = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    writer.on_mask(mask(7, ids))
    png = cv2.imread(str(tmp_path / "7.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and np.array_equal(png, ids)


def test_live_view_with_a_display_draws_the_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a display and ``boxes`` on (the default) the window used to fail to build:
    its detections queue took the ``qos_depth`` the live view does not declare."""
    shown: list[np.ndarray] = []
    monkeypatch.setattr(outputs, "display_available", lambda: True)
    monkeypatch.setattr(outputs.cv2, "imshow", lambda window, image: shown.append(image))
    monkeypatch.setattr(outputs.cv2, "waitKey", lambda delay: -1)
    monkeypatch.setattr(outputs.cv2, "destroyAllWindows", lambda: None)
    graph = Graph(overflow="block")
    graph.add(MaskAndBoxes, "segmentation")
    live = graph.add(outputs.LiveView, "live", {"max_pending": 3})
    assert live.enabled and live.det_sub is not None
    assert {(s.topic.name, s.qos.depth, s.qos.overflow) for s in live.subscriptions} == {
        ("/segmentation/mask", 1, "drop_oldest"), (DETECTIONS_TOPIC, 3, "drop_oldest")}
    graph.setup()
    assert graph.run(handle_signals=False, timeout_s=10).signal is None
    assert shown, "the window showed nothing"
    box_bgr = list(BOX_COLOUR_RGB[::-1])
    assert shown[-1][10, 20].tolist() == box_bgr  # the newest frame, with its box
    assert graph.drops() == {}


@pytest.mark.parametrize(("params", "param", "message"), [
    ({"camera_info_topic": "/camera/image"}, "camera_info_topic",
     r"'/camera/image' is already the topic of image_topic"),
    ({"overlay_topic": "/segmentation/mask"}, "overlay_topic",
     r"'/segmentation/mask' is already the topic of mask_topic"),
    ({"detections_topic": "/diagnostics"}, "detections_topic",
     r"'/diagnostics' is already the topic of diagnostics_topic"),
    ({"lidar": True, "lidar_topic": "/tf_static"}, "lidar_topic",
     r"'/tf_static' is already the topic of tf_static_topic"),
    ({"mask_topic": "segmentation/mask"}, "mask_topic",
     r"topic names start with '/', got 'segmentation/mask'"),
])
def test_recorder_topics_are_checked_at_start(
    tmp_path: Path, params: dict[str, str], param: str, message: str
) -> None:
    """Clashing topics used to pass the start and stop the graph at the first frame."""
    path = tmp_path / "masks.mcap"
    recorder = Graph().add(McapRecorder, "recorder", {"path": str(path), **params})
    with pytest.raises(ConfigError, match=rf"^node 'recorder' \(mcap_recorder\): parameter "
                       rf"'{param}': {message}"):
        recorder.setup()
    assert not path.exists()


def test_recorder_topics_of_streams_switched_off_may_repeat(tmp_path: Path) -> None:
    recorder = Graph().add(McapRecorder, "recorder", {
        "path": str(tmp_path / "masks.mcap"), "image": False, "overlay": False,
        "detections": False, "camera_info_topic": "", "tf_static_topic": "",
        "image_topic": "/segmentation/mask", "overlay_topic": "/segmentation/mask",
        "detections_topic": "relative"})
    recorder.setup()
    assert recorder.recorded_topics() == ["mask_topic", "diagnostics_topic"]
    recorder.shutdown()


def test_masks_lost_at_an_output_queue_are_not_dropped_frames(tmp_path: Path) -> None:
    """A mask dropped at a slow output's queue used to count as a dropped camera frame
    although the tracker had measured it, so masks plus dropped frames came to more than
    the frames in; it is a lost mask (a missing PNG), reported apart."""
    graph = Graph()
    writer = graph.add(MaskWriter, "mask_pngs", {"dir": str(tmp_path), "qos_depth": 2})
    (sub,) = writer.subscriptions
    for k in range(5):  # a burst of masks while the writer is busy
        sub.push(mask(k, np.zeros((2, 3), np.uint8)))
    assert graph.drops() == {}
    assert graph.losses() == {"masks": {"/segmentation/mask -> mask_pngs": 3}}


def test_masks_the_live_view_skips_are_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "display_available", lambda: True)
    graph = Graph()
    live = graph.add(outputs.LiveView, "live")
    mask_sub = next(s for s in live.subscriptions if s.topic.name == "/segmentation/mask")
    for k in range(4):
        mask_sub.push(mask(k, np.zeros((2, 3), np.uint8)))
    assert live.skipped == 3
    assert graph.drops() == {} and graph.losses() == {}


def _colourise_reference(image_rgb: np.ndarray, class_ids: np.ndarray,
                         alpha: float = 0.5) -> np.ndarray:
    """The numpy colourise the OpenCV one replaced (palette gather, boolean-mask copy)."""
    colours = PALETTE_RGB[np.minimum(class_ids, len(PALETTE_RGB) - 1)]
    blended = cv2.addWeighted(image_rgb, 1.0 - alpha, colours, alpha, 0.0)
    out = image_rgb.copy()
    sel = class_ids > 0
    out[sel] = blended[sel]
    return out


def test_colourise_gives_the_pixels_of_the_numpy_version_on_a_big_real_frame(
        kitti_raw_drive: Path, camvid_root: Path) -> None:
    """A KITTI raw frame at 1920 x 1200 with CamVid's real labels (ids 0-11, past the
    palette too): the OpenCV colourise matches the numpy one it replaced pixel for pixel,
    also for int64 ids and an image that is a strided view."""
    image = cv2.cvtColor(cv2.imread(str(kitti_raw_drive / "image_02/data/0000000000.png")),
                         cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (1920, 1200), interpolation=cv2.INTER_CUBIC)
    labels = cv2.imread(str(camvid_root / "valannot/0016E5_07959.png"), cv2.IMREAD_UNCHANGED)
    ids = cv2.resize(labels, (1920, 1200), interpolation=cv2.INTER_NEAREST)
    assert ids.max() > 2 and (ids == 0).any()
    assert np.array_equal(outputs.colourise(image, ids), _colourise_reference(image, ids))
    wide = ids.astype(np.int64)
    assert np.array_equal(outputs.colourise(image, wide), _colourise_reference(image, wide))
    view, view_ids = image[::2, ::3], ids[::2, ::3]
    assert np.array_equal(outputs.colourise(view, view_ids),
                          _colourise_reference(view, view_ids))


def test_recorder_writes_png_image_and_overlay_when_asked(tmp_path: Path) -> None:
    """``image_format``/``overlay_format`` png: both are lossless CompressedImage png."""
    from drivingseg.sensors.open import open_recording

    path = tmp_path / "masks.mcap"
    recorder = Graph().add(McapRecorder, "recorder", {
        "path": str(path), "image_format": "png", "overlay_format": "png",
        "detections": False})
    recorder.setup()
    recorder.open_outputs()
    ids = np.array([[0, 1, 2, 1]], np.uint8)
    msg = mask(5, ids)
    image = np.arange(12, dtype=np.uint8).reshape(1, 4, 3)
    recorder.on_mask(Mask(CameraFrame(5, image), ids, msg.classes, msg.timing, 0))
    recorder.shutdown()
    with open_recording(path, image_topic="/camera/image") as bag:
        assert np.array_equal(next(iter(bag.camera_frames())).image, image)
    with open_recording(path, image_topic="/segmentation/overlay/compressed") as bag:
        overlay = next(iter(bag.camera_frames())).image
        assert np.array_equal(overlay, outputs.colourise(image, ids))


def test_mask_pngs_of_an_earlier_run_are_removed_when_the_graph_starts(tmp_path: Path) -> None:
    """A second drive replayed into the same folder left the first drive's masks beside its
    own (17 PNGs for a 5-frame run after a 12-frame one); only names the writer gives are
    removed, not KITTI's zero-padded frames or other files."""
    earlier = tmp_path / "1714564800000000000.png"
    kept = [tmp_path / "0000000000.png", tmp_path / "notes.png", tmp_path / "7.txt"]
    for path in (earlier, *kept):
        path.write_bytes(b"x")
    writer = Graph().add(MaskWriter, "masks", {"dir": str(tmp_path)})
    writer.setup()
    assert earlier.exists()  # set up only: a graph that fails to start leaves them
    writer.open_outputs()
    writer.on_mask(mask(7, np.zeros((2, 3), np.uint8)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["7.png", *(p.name for p in kept)])


def test_recorder_keeps_the_frame_of_a_scan_without_a_rig(tmp_path: Path) -> None:
    """A bag without a lidar->camera transform: its ``os_sensor`` clouds were recorded in
    a ``velodyne`` frame the bag does not have, so no viewer could place them."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from drivingseg.sensors.frames import LidarScan

    path = tmp_path / "masks.mcap"
    recorder = Graph().add(McapRecorder, "recorder", {
        "path": str(path), "lidar": True, "overlay": False, "detections": False})
    recorder.setup()
    recorder.open_outputs()
    msg = mask(5_000, np.zeros((2, 3), np.uint8))
    points = np.array([[10.0, 1.0, -1.5, 0.3]], np.float32)
    scan = LidarScan(4_000, points, frame_id="os_sensor")
    recorder.on_mask(Mask(msg.frame, msg.class_ids, msg.classes, msg.timing, 0, scan=scan))
    recorder.shutdown()
    with path.open("rb") as f:
        clouds = [(m.log_time, ros.header) for _, c, m, ros in make_reader(
            f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(
                topics=["/lidar/points"])]
    assert [(t, h.frame_id, h.stamp.nanosec) for t, h in clouds] == [
        (4_000, "os_sensor", 4_000)]


