"""The overlay video writer alone: whole frames, the video's rate over dropped and jittered
frames, masks lost at its end, earlier videos and probe files, paths that are not UTF-8."""

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
from support.overlay_masks import MaskAndBoxes, mask

from drivingseg.node import video_writer
from drivingseg.node.graph import Graph
from drivingseg.node.messages import Mask, Timing
from drivingseg.sensors.frames import CameraFrame


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
