"""The overlay video output node: colourised masks, with boxes, in a video file.

Apart from the other outputs (:mod:`drivingseg.node.outputs`, whose
:class:`~drivingseg.node.outputs.OverlayOutput` it extends) because a video has a frame
rate: it probes the codec at start, measures the camera's rate from the first masks and
holds frames over the dropped ones (:mod:`drivingseg.node.video_slots`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.node.messages import Detections, Mask
from drivingseg.node.outputs import _PAIRING_PARAMS, OverlayOutput, _out_path, _utf8
from drivingseg.node.params import Param
from drivingseg.node.video_slots import VideoSlots, camera_rate_hz

__all__ = ["VideoWriter"]

log = logging.getLogger(__name__)


def _even(bgr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``bgr`` padded with a black row / column to even sides: codecs with 4:2:0 chroma
    (mp4v, H.264) drop an odd last row, so a 1242 x 375 KITTI frame came back 374 high."""
    height, width = bgr.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return bgr
    return cv2.copyMakeBorder(bgr, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=0)


_RATE_FRAMES = 4
"""Masks whose stamps measure the camera rate (see :func:`camera_rate_hz`)."""

_FALLBACK_FPS = 10.0
"""Frame rate of a video with ``fps`` 0 whose masks give no rate (a single frame) or one
outside ``[_MIN_FPS, _MAX_FPS]``, the range of the ``fps`` parameter."""

_MIN_FPS, _MAX_FPS = 0.1, 1000.0


class VideoWriter(OverlayOutput):
    """Writes the colourised overlays, with boxes, into a video through OpenCV (``mp4v``
    for .mp4).

    With ``fps`` 0 the video runs at the camera's rate, measured from the first masks'
    stamps and frame numbers (held until then), and each frame stays on screen until the
    next mask's frame (:class:`~drivingseg.node.video_slots.VideoSlots`), so that it plays
    as fast as the drive also where frames were dropped (dropped frames had made it half
    the rate, each gap one frame: faster than the drive). A fixed ``fps`` writes one frame
    per mask, warned about when it differs from the camera rate by more than 10 % (a 20 Hz
    bag in a 10 fps video played at half speed, silently). An earlier video at ``path`` is
    removed when the graph starts, so that a run that writes no frame does not leave
    another run's video behind.
    """

    type_name = "video_writer"
    description = "overlay video (with detection boxes)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("path", str, "", "video file to write"),
        Param("fps", float, 0.0, "frame rate written in the file (0 = the camera's rate, "
              "from the masks' stamps)", "Hz", min=0.0, max=_MAX_FPS),
        Param("fourcc", str, "mp4v", "OpenCV codec four-character code"),
        *_PAIRING_PARAMS,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribe()
        self.video: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.written = 0
        """Masks written (each once, however long it is held)."""
        self.frames_written = 0
        """Frames in the file: the masks and the repeats that hold them over gaps."""
        self.fps_written: float | None = None
        """The frame rate in the file, once it is open."""
        self._stamps_ns: list[int] = []
        self._indexes: list[int] = []
        self._held: list[tuple[int, int, npt.NDArray[Any]]] = []
        self._slots: VideoSlots | None = None
        self._last: npt.NDArray[Any] = np.zeros((0, 0, 3), np.uint8)

    def setup(self) -> None:
        super().setup()
        path = _out_path(self, "path")
        if not _utf8(str(path)):
            # OpenCV's VideoWriter crashes the process on such a name instead of failing
            raise self.config_error(f"{str(path)!r}: OpenCV writes videos only under "
                                    "UTF-8 file names; choose another out_dir", "path")
        if len(self.p["fourcc"]) != 4:
            raise self.config_error(f"{self.p['fourcc']!r} is not four characters", "fourcc")
        if self.p["fps"] != 0.0 and self.p["fps"] < _MIN_FPS:
            raise self.config_error(f"{self.p['fps']!r} Hz is below 0.1 Hz (0 = the camera's "
                                    "rate)", "fps")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.config_error(f"cannot create the folder: {exc.strerror}", "path") from exc
        # OpenCV says whether it can write this container and codec only when a writer
        # opens: try one on a scratch file now rather than fail at the first frame.
        probe = path.with_name(f".{path.stem}.probe{path.suffix}")
        fourcc = cv2.VideoWriter.fourcc(*self.p["fourcc"])
        try:  # removed also when a Ctrl-C lands here (it left a hidden .probe file)
            video = cv2.VideoWriter(str(probe), fourcc, self.p["fps"] or _FALLBACK_FPS, (64, 48))
            opened = video.isOpened()
            video.release()
        finally:
            probe.unlink(missing_ok=True)
        if not opened:
            message = (f"OpenCV cannot write {str(path)!r} with codec {self.p['fourcc']!r}; "
                       "'mp4v' writes .mp4, 'MJPG' .avi")
            raise self.config_error(message, "fourcc")

    def open_outputs(self) -> None:
        """Remove an earlier video at ``path`` (every node is ready by now)."""
        path = Path(self.p["path"])
        try:
            if path.is_file():
                path.unlink()
                log.info("%s: removed the earlier video %s", self.name, path)
        except OSError as exc:
            message = f"cannot remove the earlier video {str(path)!r}: {exc.strerror}"
            raise self.config_error(message, "path") from exc

    def show(self, mask: Mask, dets: Detections | None) -> None:
        bgr: npt.NDArray[Any] = _even(self.overlay_bgr(mask, dets))
        if len(self._stamps_ns) < _RATE_FRAMES:
            self._stamps_ns.append(mask.stamp_ns)
            self._indexes.append(mask.frame.index)
            if len(self._stamps_ns) == _RATE_FRAMES:
                self._check_rate()
            if self.video is None and self.p["fps"] == 0.0 and \
                    len(self._stamps_ns) < _RATE_FRAMES:
                self._held.append((mask.stamp_ns, mask.frame.index, bgr))
                return
        self._write(mask.stamp_ns, mask.frame.index, bgr)

    def _check_rate(self) -> None:
        """Warn when a fixed ``fps`` is not the rate of the masks' stamps."""
        rate_hz = camera_rate_hz(self._stamps_ns, self._indexes)
        fps = self.p["fps"]
        if fps == 0.0 or rate_hz is None or abs(rate_hz - fps) <= 0.1 * fps:
            return
        log.warning("%s: %s plays at %g fps but its masks are stamped at %.1f Hz: it "
                    "plays %.2fx as fast as the drive; fps 0 (video_fps:=0) follows the "
                    "camera", self.name, self.p["path"], fps, rate_hz, fps / rate_hz)

    def _open(self, bgr: npt.NDArray[Any]) -> cv2.VideoWriter:
        """Open the video at ``bgr``'s size and the frame rate of ``fps`` or the stamps."""
        fps, hold = self.p["fps"], False
        if fps == 0.0:
            rate_hz = camera_rate_hz(self._stamps_ns, self._indexes)
            if rate_hz is not None and _MIN_FPS <= rate_hz <= _MAX_FPS:
                fps, hold = rate_hz, True
                log.info("%s: writing %s at %.3g fps, the camera's rate", self.name,
                         self.p["path"], fps)
            else:  # one frame, or stamps no video can play at (1 ns apart)
                fps = _FALLBACK_FPS
                log.warning("%s: the masks' stamps give no frame rate a video can have "
                            "(%s Hz); writing %s at %g fps", self.name, rate_hz,
                            self.p["path"], fps)
        self.size = (bgr.shape[1], bgr.shape[0])
        fourcc = cv2.VideoWriter.fourcc(*self.p["fourcc"])
        video = cv2.VideoWriter(self.p["path"], fourcc, fps, self.size)
        if not video.isOpened():
            raise self.config_error(
                f"OpenCV cannot write {self.p['path']!r} with codec {self.p['fourcc']!r}",
                "fourcc")
        self.fps_written = fps
        self._slots = VideoSlots(fps, hold, self.name)
        return video

    def _write(self, stamp_ns: int, index: int, bgr: npt.NDArray[Any]) -> None:
        """Write the held frames, then ``bgr`` (frame number ``index``, resized to the
        video's size), each after the previous frame held over the slots up to its own."""
        frames, self._held = [*self._held, (stamp_ns, index, bgr)], []
        if self.video is None:
            self.video = self._open(frames[0][2])
        assert self._slots is not None
        for stamp, number, frame in frames:
            if self.size != (frame.shape[1], frame.shape[0]):
                frame = cv2.resize(frame, self.size)
            previous = self._slots.last
            for _ in range(self._slots.place(stamp, number) - previous - 1):
                self.video.write(self._last)
                self.frames_written += 1
            self.video.write(frame)
            self._last = frame
            self.written += 1
            self.frames_written += 1

    def shutdown(self) -> None:
        try:
            if self._held:  # fewer masks came than measure the rate: at what they give
                self._write(*self._held.pop())
        finally:
            if self.video is not None:
                self.video.release()
