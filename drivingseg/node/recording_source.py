"""The base of the source nodes: a recording's messages, paced like the live sensors.

At ``rate`` R > 0 a message is released at ``clock start + (stamp - window start) / R``
(both sources of a graph share the clock, so their streams interleave as recorded); the
frame is read ahead of that moment and its latency counts from the release, as it would
from a live driver. A message whose reading ends after its release time (a decoder or
renderer slower than the rate) moves the shared clock on by as much, and the other source
holds back what is due after it while it reads: the replay then runs behind the recorded
rate, with a warning, rather than counting the reading lag as latency and letting the
camera and lidar streams drift apart. At ``rate`` 0 messages go out as fast as the graph
takes them and latency counts from the end of reading. ``start_s``/``end_s`` cut a window
(seconds from the start of the recording's camera and lidar streams); ``loop`` replays the
window again and again with the stamps shifted by the window length rounded down to whole
periods (of those streams) plus one period, so time keeps increasing at the recorded rate.
Each pass starts at the window (:meth:`~drivingseg.sensors.base.Recording.camera_frames_from`:
the readers skip what comes before it without decoding it, a bag still reads past it); the
paced sources wait for each other at a pass's first message and the clock starts that pass
no earlier than then (:class:`~drivingseg.node.clock.ReplayClock`), so seeking delays the
replay rather than making its first frames late. The sources of a graph must share ``rate``,
``loop`` and the window (checked at start), and a camera source's window must hold some of
its frames.

``max_frames`` limits the messages of a source. Once every camera source has stopped, the
lidar source sends the first scan at or after their last frame (which decides that
frame's pairing) and stops, so the launch files limit the camera frames only: a lidar
faster than the camera does not run out before the frames do.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from drivingseg.errors import DrivingsegError
from drivingseg.node.messages import Timing
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node, Publisher
from drivingseg.sensors.base import STAMPS, Recording, StreamInfo
from drivingseg.sensors.open import FORMATS, open_recording

__all__ = ["RecordingSource"]

log = logging.getLogger(__name__)

_DEFAULT_PERIOD_NS = 100_000_000
_REPLAYED_KINDS = ("camera", "lidar")
_CLOCK_GAP_NS = 10_000_000_000
"""Camera and lidar streams whose stamps are further apart (10 s) are of two clocks."""
_BEHIND_WARN_NS = 10_000_000
"""How far behind the recorded rate a slow reader takes the replay before a warning."""


class RecordingSource(Node):
    """Shared replay logic of the camera and lidar sources."""

    parameters: ClassVar[tuple[Param, ...]] = (
        Param("input", str, "", "recording: KITTI folder, bag, .mcap, or synthetic[:SEED]"),
        Param("camera", int, 2, "KITTI camera number", "index", min=0, max=3),
        Param("image_topic", str, "", "bag: camera topic ('' = the only one)"),
        Param("lidar_topic", str, "", "bag: PointCloud2 topic ('' = the only one)"),
        Param("camera_info_topic", str, "", "bag: CameraInfo topic ('' = the only one)"),
        Param("stamps", str, "header", "stamp messages by their header stamp, or (bag) by "
              "their receive time, for sensors on clocks of their own", choices=STAMPS),
        Param("rate", float, 1.0, "replay speed (1 = recorded rate, 0 = as fast as possible)",
              "x", min=0.0, max=1000.0),
        Param("loop", bool, False, "replay the window again and again"),
        Param("start_s", float, 0.0, "start of the window after the recording start", "s",
              min=0.0),
        Param("end_s", float, 0.0, "end of the window after the recording start (0 = end)", "s",
              min=0.0),
        Param("max_frames", int, 0, "stop after this many messages (0 = no limit); a lidar "
              "source also stops after the scan that follows the camera's last frame",
              "messages", min=0),
    )
    common_parameters: ClassVar[tuple[Param, ...]] = ()
    """None: a source subscribes to nothing, so it takes no ``qos_depth``."""
    stream_kind: ClassVar[str] = ""
    """The kind of recording stream this source replays (``camera``, ``lidar``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording: Recording | None = None
        self.last_stamp_ns: int | None = None
        """Stamp of the last message published (after a loop's shift)."""
        self._window_ns = (0, 0)
        self._period_ns = _DEFAULT_PERIOD_NS
        self._own_period_ns = _DEFAULT_PERIOD_NS
        """The period of this source's own stream: its next message is due about that
        long after the last one (what it holds the other source back to while reading)."""
        self.behind_messages = 0
        """Messages read only after their release time (each moved the clock on)."""
        self.behind_ns = 0
        """How far those moved the replay clock on, in all."""

    def setup(self) -> None:
        if not self.p["input"]:
            raise self.config_error("no recording given (set it, e.g. input:=PATH)", "input")
        if self.p["end_s"] and self.p["end_s"] <= self.p["start_s"]:
            message = f"{self.p['end_s']!r} must be after start_s {self.p['start_s']!r}"
            raise self.config_error(message, "end_s")
        if self.p["loop"] and self.p["rate"] > 0 and self.context.overflow == "block":
            # each pass starts when both sources meet; a source blocked on a full queue
            # whose consumer waits for the other stream never gets there
            message = (f"a loop at a paced rate ({self.p['rate']!r}) with overflow 'block' "
                       "can stall at the end of a pass; pace with overflow 'drop_oldest', or "
                       "replay as fast as possible (rate 0) with 'block'")
            raise self.config_error(message, "loop")
        try:
            rec = open_recording(
                self.p["input"],
                camera=self.p["camera"],
                image_topic=self.p["image_topic"] or None,
                lidar_topic=self.p["lidar_topic"] or None,
                camera_info_topic=self.p["camera_info_topic"] or None,
            )
        except DrivingsegError as exc:
            raise self.config_error(f"{exc} (input {self.p['input']!r})", "input") from exc
        self.recording = rec
        try:
            rec.use_stamps(self.p["stamps"])
        except DrivingsegError as exc:
            raise self.config_error(f"{exc} (input {self.p['input']!r})", "stamps") from exc
        info = rec.info()
        topics = [n for n in ("image_topic", "lidar_topic", "camera_info_topic") if self.p[n]]
        if topics and info.format != "rosbag":  # as the CLI refuses --image-topic there
            message = (f"{self.p[topics[0]]!r} only applies to bags; input "
                       f"{self.p['input']!r} is not one ({FORMATS.get(info.format, info.format)})")
            raise self.config_error(message, topics[0])
        if self.p["camera"] != 2 and info.format in ("rosbag", "synthetic"):  # 2: the default
            message = (f"{self.p['camera']!r} picks a KITTI camera; input {self.p['input']!r} "
                       f"is not a KITTI recording ({FORMATS[info.format]}); choose a bag's "
                       "camera with image_topic")
            raise self.config_error(message, "camera")
        # The window and the loop period are the sensor streams' (a bag's other topics,
        # stamped by log time, may start earlier or come faster).
        sensors = [s for s in info.streams if s.kind in _REPLAYED_KINDS]
        firsts = [s.first_ns for s in sensors if s.first_ns is not None]
        lasts = [s.last_ns for s in sensors if s.last_ns is not None]
        first = min(firsts) if firsts else info.start_ns or 0
        last = max(lasts) if lasts else info.end_ns or first
        rates = [s.rate_hz for s in sensors if s.rate_hz]
        if rates:
            self._period_ns = int(1e9 / max(rates))
        own = [s.rate_hz for s in sensors if s.rate_hz and s.kind == self.stream_kind]
        self._own_period_ns = int(1e9 / max(own)) if own else self._period_ns
        start = first + int(self.p["start_s"] * 1e9)
        end = first + int(self.p["end_s"] * 1e9) if self.p["end_s"] else last
        if start > last:
            message = (
                f"{self.p['start_s']!r} is past the end of the recording "
                f"({(last - first) / 1e9:.2f} s)"
            )
            raise self.config_error(message, "start_s")
        self._window_ns = (start, min(end, last))
        self._check_own_stream(sensors, first)
        self._check_one_clock(sensors)

    def _check_one_clock(self, sensors: list[StreamInfo]) -> None:
        """Refuse camera and lidar stamps of two clocks (an Ouster stamping by its internal
        oscillator, from power-on, beside a camera on the recorder's): paced by stamp, the
        replay sat waiting for the later stream (for decades) and paired nothing."""
        spans = []
        for kind in _REPLAYED_KINDS:
            own = [s for s in sensors if s.kind == kind and s.first_ns is not None
                   and s.last_ns is not None]
            if own:
                spans.append((", ".join(s.name for s in own), min(s.first_ns or 0 for s in own),
                              max(s.last_ns or 0 for s in own)))
        if len(spans) < 2:
            return
        (a, a_first, a_last), (b, b_first, _) = sorted(spans, key=lambda v: v[1])
        gap_ns = b_first - a_last
        if gap_ns > _CLOCK_GAP_NS:
            bag = self.recording is not None and self.recording.format == "rosbag"
            hint = ("replay the bag by its receive times with stamps:=receive, or "
                    if bag and self.p["stamps"] == "header" else "")
            message = (f"the stamps of {a} ({a_first / 1e9:.1f} to {a_last / 1e9:.1f} s) end "
                       f"{gap_ns / 1e9:.1f} s before those of {b} begin "
                       f"({b_first / 1e9:.1f} s): the sensors' clocks are not synchronised, and "
                       f"pairing and pacing use the {self.p['stamps']} stamps ({hint}stamp the "
                       "sensors with one clock, e.g. ouster-ros timestamp_mode TIME_FROM_ROS_TIME)")
            raise self.config_error(message, "input")

    def _check_own_stream(self, sensors: list[StreamInfo], first_ns: int) -> None:
        """Refuse a window that holds none of a camera's frames (a camera that stops before
        the lidar): the graph ran without a frame and ended as if all were well."""
        own = [(s.first_ns, s.last_ns) for s in sensors if s.kind == self.stream_kind
               and s.first_ns is not None and s.last_ns is not None]
        if not self.is_frame_source or not own:
            return
        own_first = min(f for f, _ in own)
        own_last = max(last for _, last in own)
        span = (f"the camera's frames are from {(own_first - first_ns) / 1e9:.2f} to "
                f"{(own_last - first_ns) / 1e9:.2f} s after the recording start")
        start, end = self._window_ns
        if start > own_last:
            message = f"{self.p['start_s']!r} is after the camera's last frame ({span})"
            raise self.config_error(message, "start_s")
        if end < own_first:
            message = f"{self.p['end_s']!r} is before the camera's first frame ({span})"
            raise self.config_error(message, "end_s")

    def shutdown(self) -> None:
        if self.recording is not None:
            self.recording.close()

    def items(self) -> Iterator[Any]:
        """The recording's messages of this source's kind from the window's start on, in
        recorded order."""
        raise NotImplementedError

    def restamp(self, item: Any, stamp_ns: int) -> Any:
        return dataclasses.replace(item, stamp_ns=stamp_ns)

    def message(self, item: Any, timing: Timing) -> Any:
        raise NotImplementedError

    def _keep_up(self, offset_ns: int, read_start_ns: int, read_end_ns: int) -> None:
        """When the message was read only after its release time (``offset_ns`` after the
        clock's start), move the clock on by the part of the reading after that time.

        Reading is the replay's work, not the graph's (a live driver has the frame when it
        is stamped): left alone, a reader slower than ``rate`` fell further behind with
        every message, the lag counted as each frame's latency, and the camera drifted
        away from the lidar until frames lost their scans. Time the source waited before
        reading (a full queue with overflow ``block``) stays latency."""
        clock = self.context.clock
        seen_ns = clock.start_ns
        late_ns = read_end_ns - max(read_start_ns, seen_ns + offset_ns)
        if late_ns <= 0:
            return
        clock.fall_behind(seen_ns, late_ns)
        warned = self.behind_ns >= _BEHIND_WARN_NS
        self.behind_ns += late_ns
        self.behind_messages += 1
        if not warned and self.behind_ns >= _BEHIND_WARN_NS:
            log.warning("%s: reading is slower than rate %g: the replay has fallen %.0f ms "
                        "behind the recorded rate (not counted as latency); warned once, the "
                        "total comes at the end", self.name, self.p["rate"],
                        self.behind_ns / 1e6)

    def ready(self) -> None:
        self._check_shared_replay()
        if self.p["rate"] > 0:
            self.context.clock.join()

    def _check_shared_replay(self) -> None:
        """Refuse sources of one graph that replay at different rates or windows: they
        release messages on one clock, so a camera window starting 1 s after the lidar's
        made every frame wait 1 s for its scan."""
        for other in self.context.graph.nodes:
            if not isinstance(other, RecordingSource) or other is self:
                continue
            for name in ("rate", "loop", "start_s", "end_s"):
                if self.p[name] != other.p[name]:
                    message = (f"{self.p[name]!r} differs from {other.p[name]!r} of source "
                               f"{other.name!r}: the sources of a graph replay on one clock, "
                               "so their rate, loop and window must be the same")
                    raise self.config_error(message, name)

    def past_the_frames(self) -> bool:
        """Whether a source of other messages (lidar) can stop: every camera source of the
        graph has stopped and this one has sent a message stamped at or after the last
        frame any of them sent (later messages pair with no frame)."""
        if self.is_frame_source:
            return False
        cameras = [n.name for n in self.context.graph.nodes if n.is_frame_source]
        ends = self.context.frames_end_ns
        if not cameras or any(name not in ends for name in cameras):
            return False
        lasts = [stamp for name in cameras if (stamp := ends[name]) is not None]
        if not lasts:
            return True
        return self.last_stamp_ns is not None and self.last_stamp_ns >= max(lasts)

    def run(self) -> None:
        try:
            self._replay()
        finally:
            if self.is_frame_source:
                self.context.frames_end_ns[self.name] = self.last_stamp_ns
            if self.p["rate"] > 0:
                self.context.clock.leave()
            if self.behind_messages:
                level = logging.WARNING if self.behind_ns >= _BEHIND_WARN_NS else logging.INFO
                log.log(level, "%s: %d messages were read after their release time; the "
                        "replay ran %.0f ms behind rate %g (reading is slower than the replay)",
                        self.name, self.behind_messages, self.behind_ns / 1e6, self.p["rate"])

    def _replay(self) -> None:
        pub: Publisher[Any] = self.publishers[0]
        start, end = self._window_ns
        periods = int((end - start) / self._period_ns + 0.01) + 1
        shift_step = periods * self._period_ns
        rate = float(self.p["rate"])
        clock = self.context.clock
        limit = int(self.p["max_frames"])
        seq = 0
        passes = 0
        while not self.context.stop.is_set():
            shift = passes * shift_step
            it = self.items()
            sent_this_pass = 0
            offset = 0
            while not self.context.stop.is_set():
                if self.past_the_frames():
                    return
                hold = rate > 0 and sent_this_pass > 0
                if hold:  # the next message is due about a period (its stream's) after the last
                    clock.hold(self.name, offset + int(self._own_period_ns / rate))
                try:
                    t0 = time.perf_counter_ns()
                    item = next(it, None)
                    t1 = time.perf_counter_ns()
                    if hold and item is not None and start <= item.stamp_ns <= end:
                        self._keep_up(int((item.stamp_ns + shift - start) / rate), t0, t1)
                finally:
                    if hold:
                        clock.unhold(self.name)
                if item is None or item.stamp_ns > end:
                    break
                if item.stamp_ns < start:
                    continue
                stamp = item.stamp_ns + shift
                if rate > 0:
                    if sent_this_pass == 0:  # wait for the other sources to seek too
                        clock.meet(int(shift / rate), self.context.stop)
                    offset = int((stamp - start) / rate)
                    released = clock.wait_release(self.name, offset, self.context.stop)
                    if released is None:
                        break
                    available = released
                    if self.past_the_frames():  # the cameras stopped meanwhile
                        return
                else:
                    available = t1
                timing = Timing(stamp, seq, available).with_stage("read", t1 - t0)
                if shift:
                    item = self.restamp(item, stamp)
                pub.publish(self.message(item, timing))
                self.last_stamp_ns = stamp
                seq += 1
                sent_this_pass += 1
                if self.is_frame_source:
                    self.frames_published += 1
                if limit and seq >= limit:
                    return
            passes += 1
            if not self.p["loop"] or sent_this_pass == 0:
                break
