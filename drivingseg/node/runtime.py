"""The node runtime: topics, publishers, subscriptions with a QoS depth, and the Node base.

Every node runs in its own thread (the heavy work, torch, numpy and OpenCV, releases the
GIL). A subscription is a keep-last-N queue: when it is full, a publisher either drops the
oldest message and counts the drop against that subscription (``drop_oldest``, the live
default, so a slow consumer never grows a queue) or waits for room (``block``, for replay
as fast as possible, where nothing should be lost). A topic closes when all of its
publishers have closed; a node whose inputs are all closed and drained finishes, closes
its own publishers, and so the end of a recording flows down the graph.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from drivingseg.errors import ConfigError
from drivingseg.node.clock import ReplayClock
from drivingseg.node.params import Param, resolve_parameters, where

if TYPE_CHECKING:
    from drivingseg.node.graph import Graph

__all__ = [
    "FRAMES",
    "OVERFLOW_POLICIES",
    "GraphContext",
    "Node",
    "Publisher",
    "QoS",
    "ReplayClock",
    "Subscription",
    "Topic",
]

log = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("drop_oldest", "block")
_ARRIVAL = itertools.count()
_WAIT_S = 0.05
_IDLE = object()
"""What :meth:`Node._next` returns to a node with ``idle_ticks`` when a wait found nothing."""

M = TypeVar("M")
K = TypeVar("K")

FRAMES = "frames"
"""What a lost message counts as unless its type says otherwise (see :func:`loss_kind`)."""


def loss_kind(msg_type: type) -> str:
    """What a message of ``msg_type`` lost at a queue counts as: a camera frame
    (:data:`FRAMES`), unless the type names what else it is in ``lost_as`` (``"lidar
    scans"``, ``"diagnostics messages"``, ``"masks"``, ``"detections"``): those are not
    counted as dropped frames."""
    return str(getattr(msg_type, "lost_as", FRAMES))


@dataclass(frozen=True)
class QoS:
    """Keep the last ``depth`` messages; on overflow drop the oldest or block the publisher."""

    depth: int = 2
    overflow: str = "drop_oldest"


class GraphContext:
    """What every node shares: the stop/abort events, the replay clock, the graph."""

    def __init__(self, graph: Graph, overflow: str) -> None:
        self.graph = graph
        self.overflow = overflow
        self.stop = threading.Event()
        """Set on SIGINT/SIGTERM or end of run: sources stop, others drain their queues."""
        self.abort = threading.Event()
        """Set on a second signal: every node leaves at once (outputs are still closed)."""
        self.clock = ReplayClock()
        """The paced sources' shared time base (started just before threads start)."""
        self.frame_sizes: dict[str, tuple[int, int]] = {}
        """Camera source name -> (height, width) of its frames, announced at setup (what a
        latched CameraInfo tells ROS nodes), so that consumers can warm up for that size."""
        self.frames_end_ns: dict[str, int | None] = {}
        """Camera source name -> stamp of the last frame it sent (``None``: none), set when
        it stops, so that the lidar source stops after the scan that follows it."""
        self.mask_classes: dict[str, tuple[str, ...]] = {}
        """Mask topic name -> the class names of its masks, announced by the segmenting node
        at setup, so that consumers check their class parameters before the first frame."""
        self.lidar_absent: set[str] = set()
        """Lidar topics whose source announced at setup that its recording has no scans (a
        camera-only recording): the sync node passes frames on without one."""


class Topic(Generic[M]):
    """A named, typed channel; closed once every publisher has closed."""

    def __init__(self, name: str, msg_type: type[M]) -> None:
        self.name = name
        self.msg_type = msg_type
        self.subscriptions: list[Subscription[M]] = []
        self.publishers: list[Publisher[M]] = []
        self._lock = threading.Lock()
        self._open = 0

    @property
    def closed(self) -> bool:
        return self._open == 0

    def _publisher_opened(self) -> None:
        with self._lock:
            self._open += 1

    def _publisher_closed(self) -> None:
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if last:
            for sub in self.subscriptions:
                sub.wake()


class Subscription(Generic[M]):
    """A node's keep-last-N queue on a topic; counts what it received and dropped.

    With ``keep`` the queue holds ``keep(msg)``, taken as the message arrives, and the
    callback gets that: a node that needs a few fields of a large message (the latency
    tracker, of a mask) then does not keep whole frames alive in a deep queue.
    """

    def __init__(
        self, node: Node, topic: Topic[M], callback: Callable[[Any], None], qos: QoS,
        keep: Callable[[M], Any] | None = None,
    ) -> None:
        self.node = node
        self.topic = topic
        self.callback = callback
        self.qos = qos
        self.keep = keep
        self.received = 0
        self.dropped = 0
        self.max_queued = 0
        self.active = True
        self.abandoned = 0
        """Messages left here when the node ended before taking them (a run aborted, or the
        node failed): those it still held, and those offered afterwards."""
        self.failed_on = 0
        """Messages taken from here whose callback raised (the node failed on them)."""
        self.lost_as = loss_kind(topic.msg_type)
        """What the messages this queue loses count as (:func:`loss_kind`); a node may set
        it (the latency tracker: a mask it never measures is a frame without a mask)."""
        self._queue: deque[tuple[int, Any]] = deque()

    @property
    def where(self) -> str:
        """``topic -> node``: how drops are reported."""
        return f"{self.topic.name} -> {self.node.name}"

    def __len__(self) -> int:
        return len(self._queue)

    def head_arrival(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def head(self) -> Any:
        """The oldest queued item (a message, or what ``keep`` kept of it); None if empty."""
        return self._queue[0][1] if self._queue else None

    def wake(self) -> None:
        with self.node.cond:
            self.node.cond.notify_all()

    def push(self, msg: M) -> None:
        """Called by a publisher's thread: enqueue, dropping or waiting when full."""
        cond = self.node.cond
        ctx = self.node.context
        item = msg if self.keep is None else self.keep(msg)
        with cond:
            if self.qos.overflow == "block":
                while len(self._queue) >= self.qos.depth and self.active and not ctx.abort.is_set():
                    cond.wait(_WAIT_S)
                if ctx.abort.is_set() and len(self._queue) >= self.qos.depth:
                    self.active = False  # aborted while waiting for room: not a drop
            if not self.active:
                self.abandoned += 1
                return
            while len(self._queue) >= self.qos.depth:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((next(_ARRIVAL), item))
            self.received += 1
            self.max_queued = max(self.max_queued, len(self._queue))
            cond.notify_all()

    def pop(self) -> Any:
        """Take the head (the caller holds ``node.cond``)."""
        msg = self._queue.popleft()[1]
        self.node.cond.notify_all()
        return msg


class Publisher(Generic[M]):
    """Sends messages of one type to every subscription of a topic."""

    def __init__(self, node: Node, topic: Topic[M]) -> None:
        self.node = node
        self.topic = topic
        self.published = 0
        self._closed = False
        topic._publisher_opened()

    def publish(self, msg: M) -> None:
        if not isinstance(msg, self.topic.msg_type):
            message = (
                f"node {self.node.name!r} published a {type(msg).__name__} on "
                f"{self.topic.name!r}, which carries {self.topic.msg_type.__name__}"
            )
            raise TypeError(message)
        for sub in self.topic.subscriptions:
            sub.push(msg)
        self.published += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.topic._publisher_closed()


class Node:
    """Base of every node: declared parameters, topics, and a spin loop in its own thread.

    Subclasses set ``type_name`` and ``parameters``, create publishers and subscriptions
    in ``__init__``, open resources in :meth:`setup`, and release them in
    :meth:`shutdown` (always called, also after errors and signals). Sources override
    :meth:`run`; other nodes get their callbacks called from the default :meth:`run`.
    """

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()
    common_parameters: ClassVar[tuple[Param, ...]] = (
        Param("qos_depth", int, 2, "queue depth of each subscription (keep last N)",
              "messages", min=1, max=1000),
    )
    is_frame_source: ClassVar[bool] = False
    idle_ticks: ClassVar[bool] = False
    """Whether :meth:`tick` is also called while no message comes (every ``_WAIT_S``), for
    periodic work that must not wait for one (a health report of a stalled graph)."""

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any],
        context: GraphContext,
        *,
        remappings: Mapping[str, str] | None = None,
        path: str | Path | None = None,
        origin: str = "",
    ) -> None:
        self.name = name
        self.origin = origin
        self.path = None if path is None else Path(path)
        self.context = context
        self.remappings = dict(remappings or {})
        declared = (*self.parameters, *self.common_parameters)
        self.p = resolve_parameters(
            declared, params, node=name, node_type=self.type_name, path=self.path,
            origin=origin,
        )
        self.cond = threading.Condition()
        self.subscriptions: list[Subscription[Any]] = []
        self.publishers: list[Publisher[Any]] = []
        self.frames_published = 0

    # ---------------------------------------------------------------- errors

    def config_error(self, message: str, param: str | None = None) -> ConfigError:
        """A ConfigError naming the launch file, this node and ``param``."""
        prefix = where(self.name, self.type_name, param, self.origin)
        return ConfigError(f"{prefix}: {message}", path=self.path)

    # ---------------------------------------------------------------- topics

    def resolve(self, topic: str) -> str:
        return self.remappings.get(topic, topic)

    def create_publisher(self, topic: str, msg_type: type[M]) -> Publisher[M]:
        t = self.context.graph.topic(self.resolve(topic), msg_type, self)
        pub = Publisher(self, t)
        t.publishers.append(pub)
        self.publishers.append(pub)
        return pub

    @overload
    def create_subscription(
        self, topic: str, msg_type: type[M], callback: Callable[[M], None],
        depth: int | None = None, overflow: str | None = None, *, keep: None = None,
    ) -> Subscription[M]: ...

    @overload
    def create_subscription(
        self, topic: str, msg_type: type[M], callback: Callable[[K], None],
        depth: int | None = None, overflow: str | None = None, *,
        keep: Callable[[M], K],
    ) -> Subscription[M]: ...

    def create_subscription(
        self, topic: str, msg_type: type[M], callback: Callable[[Any], None],
        depth: int | None = None, overflow: str | None = None, *,
        keep: Callable[[M], Any] | None = None,
    ) -> Subscription[M]:
        """Subscribe with a keep-last queue of ``depth`` (default: ``qos_depth``) and the
        graph's overflow policy unless ``overflow`` names one (a display never blocks);
        ``keep`` queues and delivers only what it takes of each message."""
        t = self.context.graph.topic(self.resolve(topic), msg_type, self)
        qos = QoS(depth or int(self.p["qos_depth"]), overflow or self.context.overflow)
        sub = Subscription(self, t, callback, qos, keep)
        t.subscriptions.append(sub)
        self.subscriptions.append(sub)
        return sub

    # ---------------------------------------------------------------- lifecycle hooks

    def setup(self) -> None:
        """Open files, load models; raise a DrivingsegError naming the parameter on bad input."""

    def ready(self) -> None:
        """Called once every node is set up, before any thread starts: checks that need the
        other nodes (raise as :meth:`setup` does)."""

    def open_outputs(self) -> None:
        """Create or replace output files: called once every node is ready, so that a graph
        that fails to start (a bad parameter of any node) leaves earlier outputs as they
        were."""

    def on_inputs_closed(self) -> None:
        """All inputs closed and drained: flush what is held (not called on abort)."""

    def shutdown(self) -> None:
        """Release resources; always called last, in the node's thread."""

    def after_run(self) -> None:
        """Called in the main thread once every node thread has ended."""

    def tick(self) -> None:
        """Called in the node's thread after each callback and, with ``idle_ticks``, after
        each wait that found no message."""

    def drops(self) -> dict[str, int]:
        """Camera frames lost at this node, by where (``topic -> node`` or a named reason)."""
        out: dict[str, int] = {}
        for sub in self.subscriptions:
            if sub.lost_as == FRAMES:
                out[sub.where] = sub.dropped
                out[f"{sub.where} (left when the node ended)"] = sub.abandoned
                out[f"{sub.where} (the node failed on it)"] = sub.failed_on
        return out

    def losses(self) -> dict[str, dict[str, int]]:
        """Other messages lost at this node (lidar scans, diagnostics, masks, detections):
        by what they are, then by where; never counted as dropped frames."""
        out: dict[str, dict[str, int]] = {}
        for sub in self.subscriptions:
            if sub.lost_as != FRAMES:
                kind = out.setdefault(sub.lost_as, {})
                kind[sub.where] = sub.dropped
                kind[f"{sub.where} (left when the node ended)"] = sub.abandoned
                kind[f"{sub.where} (the node failed on it)"] = sub.failed_on
        return out

    # ---------------------------------------------------------------- spinning

    def choose(self) -> Subscription[Any] | None:
        """Which subscription to serve next (the caller holds ``cond``): earliest arrival."""
        ready = [s for s in self.subscriptions if len(s)]
        if not ready:
            return None
        return min(ready, key=lambda s: s.head_arrival() or 0)

    def _next(self) -> tuple[Subscription[Any], Any] | object | None:
        """The next message and its subscription; None when the node is done; ``_IDLE``
        after a wait that found nothing (with ``idle_ticks`` only)."""
        with self.cond:
            while True:
                if self.context.abort.is_set():
                    return None
                sub = self.choose()
                if sub is not None:
                    return sub, sub.pop()
                if all(s.topic.closed and not len(s) for s in self.subscriptions):
                    return None
                self.cond.wait(_WAIT_S)
                if self.idle_ticks and self.choose() is None:
                    return _IDLE

    def run(self) -> None:
        """Serve callbacks until every input is closed and drained (or abort)."""
        while True:
            item = self._next()
            if item is None:
                break
            if isinstance(item, tuple):
                sub, msg = item
                try:
                    sub.callback(msg)
                except BaseException:  # the message is lost with the node: count it there
                    with self.cond:
                        sub.failed_on += 1
                    raise
            self.tick()
        if not self.context.abort.is_set():
            self.on_inputs_closed()

    def deactivate(self) -> None:
        """Stop accepting messages (the node has ended) and close the node's publishers."""
        with self.cond:
            for sub in self.subscriptions:
                sub.active = False
                sub.abandoned += len(sub._queue)
                sub._queue.clear()
            self.cond.notify_all()
        for pub in self.publishers:
            pub.close()
