"""Output nodes alone: mask PNGs, the live window with boxes, the recorder's topics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivingseg.errors import ConfigError
from drivingseg.node import outputs, video_writer
from drivingseg.node.detection import BOX_COLOUR_RGB, DETECTIONS_TOPIC
from drivingseg.node.graph import Graph
from drivingseg.node.messages import Detection, Detections, Mask, Timing
from drivingseg.node.outputs import PALETTE_RGB, MaskWriter
from drivingseg.node.recorder import McapRecorder
from drivingseg.node.runtime import Node
from drivingseg.sensors.frames import CameraFrame


def mask(stamp_ns: int, class_ids: np.ndarray) -> Mask:
    h, w = class_ids.shape
    frame = CameraFrame(stamp_ns, np.zeros((h, w, 3), np.uint8))
    classes = tuple(f"class{i}" for i in range(int(class_ids.max()) + 1))
    return Mask(frame, class_ids, classes, Timing(stamp_ns, 0, 0), 0)


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


class MaskAndBoxes(Node):
    """Publishes three empty masks and, after each, one box of its frame."""

    type_name = "mask_and_boxes"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks = self.create_publisher("/segmentation/mask", Mask)
        self.boxes = self.create_publisher(DETECTIONS_TOPIC, Detections)

    def run(self) -> None:
        for k in range(3):
            self.masks.publish(mask(k, np.zeros((40, 60), np.uint8)))
            box = Detection("car", 0.9, (10.0, 10.0, 30.0, 30.0))
            self.boxes.publish(Detections((box,), Timing(k, 0, 0)))


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


def test_a_video_of_odd_sized_frames_keeps_every_row(tmp_path: Path) -> None:
    """mp4v drops an odd last row: KITTI's 1242 x 375 frames came back 374 rows high.
    Frames are padded to even sides, so the whole frame is in the video."""
    path = tmp_path / "overlay.mp4"
    graph = Graph()
    video = graph.add(video_writer.VideoWriter, "video", {"path": str(path), "boxes": False})
    video.setup()
    ids = np.zeros((75, 121), np.uint8)
    ids[-1, :] = 1  # the last row is road: magenta in the overlay
    for k in range(3):
        video.show(mask(k, ids), None)
    video.shutdown()
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[:2] == (76, 122)
    assert frame[74, 20:100].mean(axis=0)[0] > 60  # the odd last row survived (blue > 0)


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


def test_masks_the_video_held_for_their_boxes_when_it_ended_are_lost(tmp_path: Path) -> None:
    """Ended without flushing (a second Ctrl-C, a failure), the video writer left out the
    masks it held waiting for their detections, and they were reported nowhere, though
    what every queue held at that moment is reported lost."""
    graph = Graph()
    graph.add(MaskAndBoxes, "segmentation")  # detections are published: masks wait
    video = graph.add(video_writer.VideoWriter, "video", {"path": str(tmp_path / "overlay.mp4")})
    video.setup()
    for k in range(3):  # their detections have not come yet
        video.on_mask(mask(k, np.zeros((40, 60), np.uint8)))
    assert graph.losses() == {}  # still waiting: not lost while the node runs
    video.deactivate()
    video.shutdown()
    assert graph.losses() == {
        "masks": {"video: waiting for its detections when the node ended": 3}}


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


def test_a_run_that_writes_no_frame_leaves_no_earlier_video(tmp_path: Path) -> None:
    """An earlier run's overlay.mp4 stayed beside a new run's outputs when the new run
    wrote no frame (stopped before its first mask)."""
    path = tmp_path / "overlay.mp4"
    path.write_bytes(b"an earlier run's video")
    video = Graph().add(video_writer.VideoWriter, "video", {"path": str(path), "boxes": False})
    video.setup()
    assert path.exists()
    video.open_outputs()
    video.shutdown()
    assert not path.exists()


def _video_rate_and_frames(path: Path) -> tuple[float, int]:
    capture = cv2.VideoCapture(str(path))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return fps, frames


@pytest.mark.parametrize("count", [2, 6])
def test_video_fps_0_runs_at_the_masks_rate(tmp_path: Path, count: int) -> None:
    """``fps`` 0: a 20 Hz camera (one frame dropped on the way) makes a 20 fps video with
    every frame, the first held over the dropped one, also when fewer frames come than
    measure the rate."""
    path = tmp_path / "overlay.mp4"
    video = Graph().add(video_writer.VideoWriter, "video", {"path": str(path), "boxes": False,
                                                            "fps": 0.0})
    video.setup()
    video.open_outputs()
    stamps = [0, 100_000_000, 150_000_000, 200_000_000, 250_000_000, 300_000_000][:count]
    for stamp in stamps:
        video.show(mask(stamp, np.zeros((48, 64), np.uint8)), None)
    video.shutdown()
    assert video.fps_written == pytest.approx(10.0 if count == 2 else 20.0)
    fps, frames = _video_rate_and_frames(path)
    assert video.written == count
    assert frames == video.frames_written == (2 if count == 2 else 7)
    assert fps == pytest.approx(video.fps_written)


def test_a_video_of_a_replay_that_dropped_frames_plays_as_long_as_the_drive(
        tmp_path: Path) -> None:
    """The masks of a real replay of the 10 Hz KITTI drive on a CPU too slow for it (19 of
    30 frames dropped at ``/fused -> segmentation``): the video was written at 5 fps, the
    smallest step between the first masks, with one frame per mask, so its 11 frames
    played in 2.2 s a drive of 3 s, every gap as one frame. It runs at the camera's rate
    (frame numbers tell a dropped frame from a slower camera), each mask held until the
    next one's stamp."""
    path = tmp_path / "overlay.mp4"
    video = Graph().add(video_writer.VideoWriter, "video", {"path": str(path), "boxes": False,
                                                            "fps": 0.0})
    video.setup()
    video.open_outputs()
    numbers = [0, 2, 5, 9, 13, 16, 20, 23, 26, 28, 29]
    for k, number in enumerate(numbers):
        stamp = 1_317_042_000_000_000_000 + number * 100_000_000
        ids = np.full((48, 64), k % 2, np.uint8)  # odd masks road (magenta), even not drawn
        frame = CameraFrame(stamp, np.zeros((48, 64, 3), np.uint8), index=number)
        video.on_mask(Mask(frame, ids, ("background", "road"), Timing(stamp, k, 0), 0))
    video.on_inputs_closed()
    video.shutdown()
    fps, frames = _video_rate_and_frames(path)
    assert (fps, frames) == (pytest.approx(10.0), 30)  # was (5.0, 11)
    assert video.frames_written == 30 and video.written == len(numbers)
    capture = cv2.VideoCapture(str(path))
    magenta = [bool(capture.read()[1][:, :, 2].mean() > 60) for _ in range(frames)]
    capture.release()
    shown = [max(k for k, n in enumerate(numbers) if n <= slot) for slot in range(30)]
    assert magenta == [k % 2 == 1 for k in shown]


def test_a_video_of_a_drive_with_jittered_stamps_has_one_frame_per_frame(
        tmp_path: Path) -> None:
    """A 10 Hz KITTI drive whose camera stamps jitter by up to 6 ms (as real stamps do),
    replayed without a drop: the video was 10.7 fps (the shortest of the first steps) with
    32 frames for 30, frames 7-30 showing the mask of the frame before. Now 30 frames at
    about 10 fps, frame k showing mask k."""
    path = tmp_path / "overlay.mp4"
    video = Graph().add(video_writer.VideoWriter, "video", {"path": str(path), "boxes": False,
                                                            "fps": 0.0})
    video.setup()
    video.open_outputs()
    jitter_ms = (0.0, -6.2, 4.0, 3.1, -5.0, 6.0, -2.0, 4.5, -5.8, 1.0) * 3
    for k, offset_ms in enumerate(jitter_ms):
        stamp = 1_317_042_000_000_000_000 + round((100 * k + offset_ms) * 1e6)
        ids = np.full((48, 64), k % 2, np.uint8)  # odd masks road (magenta), even not drawn
        frame = CameraFrame(stamp, np.zeros((48, 64, 3), np.uint8), index=k)
        video.on_mask(Mask(frame, ids, ("background", "road"), Timing(stamp, k, 0), 0))
    video.on_inputs_closed()
    video.shutdown()
    fps, frames = _video_rate_and_frames(path)
    assert frames == video.frames_written == 30  # was 32
    assert fps == pytest.approx(10.0, rel=0.02)  # was 10.66
    capture = cv2.VideoCapture(str(path))
    magenta = [bool(capture.read()[1][:, :, 2].mean() > 60) for _ in range(frames)]
    capture.release()
    assert magenta == [k % 2 == 1 for k in range(30)]


@pytest.mark.parametrize(("step_ns", "warned"), [(50_000_000, True), (100_000_000, False)])
def test_a_fixed_fps_unlike_the_camera_rate_is_warned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, step_ns: int, warned: bool) -> None:
    """A 20 Hz bag in the default 10 fps video played at half speed without a word."""
    video = Graph().add(video_writer.VideoWriter, "video", {
        "path": str(tmp_path / "overlay.mp4"), "boxes": False, "fps": 10.0})
    video.setup()
    for k in range(5):
        video.show(mask(k * step_ns, np.zeros((48, 64), np.uint8)), None)
    video.shutdown()
    assert video.written == 5 and video.fps_written == 10.0
    assert ("masks are stamped at 20.0 Hz" in caplog.text) is warned


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


def test_video_fps_0_with_stamps_no_video_can_play_at_falls_back_to_10_fps(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Masks stamped 1 ns apart measure 1e9 Hz, which OpenCV refused to open a video at
    (the graph stopped with a codec error); such a rate falls back to 10 fps, warned."""
    path = tmp_path / "overlay.mp4"
    video = Graph().add(video_writer.VideoWriter, "video",
                        {"path": str(path), "boxes": False, "fps": 0.0})
    video.setup()
    with caplog.at_level(logging.WARNING):
        for k in range(5):
            video.show(mask(k, np.zeros((48, 64), np.uint8)), None)
    video.shutdown()
    assert video.fps_written == 10.0 and video.written == 5
    assert "no frame rate a video can have" in caplog.text
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()


class _InterruptedProbe:
    """cv2.VideoWriter that creates its file, then gets a Ctrl-C (a signal during set-up)."""

    fourcc = staticmethod(cv2.VideoWriter.fourcc)

    def __init__(self, path: str, *args: Any) -> None:
        Path(path).write_bytes(b"")

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        raise KeyboardInterrupt


def test_a_signal_while_the_video_codec_is_probed_leaves_no_probe_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the video writer tried its codec on a scratch file at start left the
    hidden ``.overlay.probe.mp4`` beside the outputs."""
    monkeypatch.setattr(cv2, "VideoWriter", _InterruptedProbe)
    video = Graph().add(video_writer.VideoWriter, "video", {"path": str(tmp_path / "overlay.mp4"),
                                                            "boxes": False})
    with pytest.raises(KeyboardInterrupt):
        video.setup()
    assert list(tmp_path.iterdir()) == []


def test_video_path_that_is_not_utf8_is_refused_at_setup(tmp_path: Path) -> None:
    """An ``out_dir`` with a Latin-1 byte in its name crashed the graph with a segmentation
    fault (OpenCV's VideoWriter got the undecodable name); setup refuses it, naming the
    path (run in a subprocess, so a crash fails only this test)."""
    code = (
        "import sys\n"
        "from drivingseg.errors import ConfigError\n"
        "from drivingseg.node import video_writer\n"
        "from drivingseg.node.graph import Graph\n"
        "video = Graph().add(video_writer.VideoWriter, 'video', {'path': sys.argv[1]})\n"
        "try:\n"
        "    video.setup()\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    path = os.fsencode(tmp_path) + b"/run\xff/overlay.mp4"
    done = subprocess.run([os.fsencode(sys.executable), b"-c", code.encode(), path],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert "run\\udcff/overlay.mp4" in done.stdout.decode()
    assert "UTF-8" in done.stdout.decode()
