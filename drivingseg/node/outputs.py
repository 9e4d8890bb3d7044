"""Output nodes: mask PNGs, overlay video, live window (the MCAP recorder is in
:mod:`drivingseg.node.recorder`).

The video writer and the live window draw each frame's boxes on its overlay. Detections
come after their mask, so both pair them by stamp
(:class:`~drivingseg.node.detection.StampPairer`, at most ``max_pending`` masks held).
Output nodes listen to ``/detections/cars`` only when some node publishes it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.fusion.overlay import write_image_atomic
from drivingseg.node.detection import (
    DETECTIONS_TOPIC,
    StampPairer,
    draw_detections,
)
from drivingseg.node.messages import Detections, Mask
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node, Subscription
from drivingseg.node.video_slots import VideoSlots, camera_rate_hz

__all__ = [
    "PALETTE_RGB",
    "LiveView",
    "MaskWriter",
    "OverlayOutput",
    "VideoWriter",
    "colourise",
]

log = logging.getLogger(__name__)

PALETTE_RGB = np.array([[0, 0, 0], [255, 0, 255], [0, 160, 255]], dtype=np.uint8)
"""Overlay colour per class id: background (not drawn), road magenta, car blue."""

_PALETTE_LUT = PALETTE_RGB[np.minimum(np.arange(256), len(PALETTE_RGB) - 1)][:, None, :]
"""``PALETTE_RGB`` as a 256 x 1 x 3 OpenCV lookup table (ids past the palette: its last)."""


def colourise(image_rgb: npt.NDArray[np.uint8], class_ids: npt.NDArray[np.uint8],
              alpha: float = 0.5) -> npt.NDArray[np.uint8]:
    """The image with road and car pixels blended with their palette colour (RGB).

    OpenCV throughout (a lookup table for the colours, a masked copy for the blend): numpy's
    per-pixel palette gather and boolean-mask assignment took ~55 ms of a 1920 x 1200 frame
    on 2 cores, twice a frame (recorder and video), this ~7 ms, the same pixels
    (``benchmarks/bench_big_sensor.py``)."""
    ids = np.asarray(class_ids)
    if ids.dtype != np.uint8:  # ids past the palette keep their colour, past 255 too
        ids = np.clip(ids, 0, 255).astype(np.uint8)
    ids = np.ascontiguousarray(ids)
    colours = cv2.LUT(cv2.merge([ids, ids, ids]), _PALETTE_LUT)
    blended = cv2.addWeighted(image_rgb, 1.0 - alpha, colours, alpha, 0.0)
    out = np.array(image_rgb, dtype=np.uint8, order="C")
    return np.asarray(cv2.copyTo(blended, ids, out), dtype=np.uint8)


def _drop_if_unpublished(node: Node, sub: Subscription[Any] | None) -> bool:
    """Forget ``sub`` when no node publishes its topic (no warning, no waiting); True if kept."""
    if sub is None:
        return False
    if sub.topic.publishers:
        return True
    sub.topic.subscriptions.remove(sub)
    node.subscriptions.remove(sub)
    log.info("%s: nothing publishes %s; no boxes", node.name, sub.topic.name)
    return False


def _out_path(node: Node, param: str) -> Path:
    value = node.p[param]
    if not value:
        raise node.config_error("no output path given", param)
    return Path(value)


def _utf8(name: str) -> bool:
    """Whether ``name`` encodes as UTF-8 (not so: a Latin-1 byte read as a surrogate)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_MASK_PNG = re.compile(r"(0|[1-9][0-9]*)\.png")
"""The names :class:`MaskWriter` gives its PNGs (``<stamp_ns>.png``, no leading zeros, so
KITTI's ``0000000000.png`` frames never match)."""


class MaskWriter(Node):
    """Writes each mask as a PNG named by its sensor stamp: ``<stamp_ns>.png``.

    By default the PNG holds the class ids (0, 1, 2) as grey values; ``colour`` writes the
    palette colours instead. When the graph starts, the mask PNGs of an earlier run in
    ``dir`` are removed (only names of that form), so the folder holds this run's masks
    only, as the MCAP and the video do: a second drive replayed into the same folder mixed
    its masks with the first one's.
    """

    type_name = "mask_writer"
    description = "per-frame mask PNGs"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("dir", str, "", "folder for the PNGs"),
        Param("colour", bool, False, "palette colours instead of class ids"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/segmentation/mask", Mask, self.on_mask)
        self.written = 0

    def setup(self) -> None:
        path = _out_path(self, "dir")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.config_error(f"cannot create {str(path)!r}: {exc.strerror}", "dir") from exc

    def open_outputs(self) -> None:
        """Remove an earlier run's mask PNGs, only now that every node is ready (a graph
        that fails to start leaves them as they were)."""
        folder = Path(self.p["dir"])
        removed = 0
        try:
            for entry in folder.iterdir():
                if _MASK_PNG.fullmatch(entry.name) and entry.is_file():
                    entry.unlink()
                    removed += 1
        except OSError as exc:
            message = f"cannot remove the earlier masks in {str(folder)!r}: {exc.strerror}"
            raise self.config_error(message, "dir") from exc
        if removed:
            log.info("%s: removed %d mask PNGs of an earlier run from %s", self.name, removed,
                     folder)

    def on_mask(self, msg: Mask) -> None:
        ids = msg.class_ids
        image = (PALETTE_RGB[np.minimum(ids, len(PALETTE_RGB) - 1)][:, :, ::-1]
                 if self.p["colour"] else ids)
        write_image_atomic(Path(self.p["dir"]) / f"{msg.stamp_ns}.png", np.ascontiguousarray(image))
        self.written += 1


_PAIRING_PARAMS = (
    Param("boxes", bool, True, "draw the boxes of /detections/cars (when published)"),
    Param("max_pending", int, 4, "masks held while waiting for their detections", "messages",
          min=1, max=100),
)


class OverlayOutput(Node):
    """Base of the overlay outputs: masks paired with their frame's detections by stamp."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pairer = StampPairer(self.p["max_pending"])
        self.det_sub: Subscription[Detections] | None = None
        self.left_waiting = 0
        """Masks held for their detections when the node ended (see deactivate)."""

    def subscribe(self, mask_depth: int | None = None, detections_depth: int | None = None,
                  overflow: str | None = None) -> None:
        """Subscribe to the masks and (``boxes``) the detections; subclasses call it
        (a depth of ``None`` is the node's ``qos_depth``)."""
        self.create_subscription("/segmentation/mask", Mask, self.on_mask, depth=mask_depth,
                                 overflow=overflow)
        self.det_sub = (self.create_subscription(DETECTIONS_TOPIC, Detections,
                                                 self.on_detections, depth=detections_depth,
                                                 overflow=overflow)
                        if self.p["boxes"] else None)

    def setup(self) -> None:
        self.pairer.wait = _drop_if_unpublished(self, self.det_sub)

    def on_mask(self, msg: Mask) -> None:
        for mask, dets in self.pairer.add_mask(msg):
            self.show(mask, dets)

    def on_detections(self, msg: Detections) -> None:
        for mask, dets in self.pairer.add_detections(msg):
            self.show(mask, dets)

    def on_inputs_closed(self) -> None:
        for mask, dets in self.pairer.flush():
            self.show(mask, dets)

    def deactivate(self) -> None:
        """Count the masks still waiting for their detections when the node ended without
        flushing (an aborted run, a failure): they never reach the output."""
        self.left_waiting = self.pairer.pending_masks
        super().deactivate()

    def losses(self) -> dict[str, dict[str, int]]:
        out = super().losses()
        where = f"{self.name}: waiting for its detections when the node ended"
        out.setdefault(Mask.lost_as, {})[where] = self.left_waiting
        return out

    def overlay_bgr(self, mask: Mask, dets: Detections | None) -> npt.NDArray[np.uint8]:
        """The colourised mask with the boxes drawn on it, BGR for OpenCV."""
        rgb = draw_detections(colourise(mask.frame.image, mask.class_ids), dets)
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)

    def show(self, mask: Mask, dets: Detections | None) -> None:
        """Output one frame."""
        raise NotImplementedError


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


def display_available() -> bool:
    """Whether a window can open: a DISPLAY/WAYLAND_DISPLAY on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class LiveView(OverlayOutput):
    """Shows the overlay, with boxes, in an OpenCV window when a display exists; otherwise
    does nothing. It shows only the newest mask (queue depth 1, no ``qos_depth``, always
    ``drop_oldest``): the masks it skips are not lost frames, and it never holds the
    pipeline back, not even when the graph's queues block (``--fast``). Its detections
    queue keeps ``max_pending`` messages (as many as masks wait for), also ``drop_oldest``."""

    type_name = "live_view"
    common_parameters: ClassVar[tuple[Param, ...]] = ()
    description = "live window (cv2.imshow) of the overlay (with detection boxes)"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("window", str, "drivingseg", "window title"),
        Param("scale", float, 1.0, "window size relative to the image", "x", min=0.1,
              max=8.0),
        *_PAIRING_PARAMS,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enabled = display_available()
        if self.enabled:
            self.subscribe(mask_depth=1, detections_depth=self.p["max_pending"],
                           overflow="drop_oldest")

    def open_outputs(self) -> None:
        """Say that the window is off only once the graph starts: a graph that fails to
        start printed this warning above its one-line error."""
        if not self.enabled:
            log.warning("%s: no display (DISPLAY is not set); the live window is off", self.name)

    def show(self, mask: Mask, dets: Detections | None) -> None:
        bgr: npt.NDArray[Any] = self.overlay_bgr(mask, dets)
        if self.p["scale"] != 1.0:
            bgr = cv2.resize(bgr, None, fx=self.p["scale"], fy=self.p["scale"])
        cv2.imshow(self.p["window"], bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.context.graph.stop()

    @property
    def skipped(self) -> int:
        """Messages the window skipped to show the newest (not lost frames)."""
        return sum(sub.dropped for sub in self.subscriptions)

    def drops(self) -> dict[str, int]:
        """None: a window shows the newest mask; those it skips are :attr:`skipped`."""
        return {}

    def losses(self) -> dict[str, dict[str, int]]:
        """None either: the masks and detections it skips are :attr:`skipped`."""
        return {}

    def after_run(self) -> None:
        if self.enabled:
            log.info("%s: showed the newest mask; skipped %d messages", self.name, self.skipped)

    def shutdown(self) -> None:
        if self.enabled:
            cv2.destroyAllWindows()
