"""A running node graph: topics by name, one thread per node, clean shutdown on signals.

``Graph.run`` starts every node's thread and waits. The first SIGINT or SIGTERM sets the
stop event: sources stop producing, every other node drains what is queued and finishes,
and outputs are finalised (the MCAP gets its summary). A second signal aborts at once;
outputs are still closed in each node's ``shutdown``. A node that fails stops the graph
the same way and its error is raised from ``run`` once everything has ended.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from drivingseg.errors import ConfigError, DrivingsegError
from drivingseg.node.runtime import OVERFLOW_POLICIES, GraphContext, Node, Topic

__all__ = ["Graph", "RunResult"]

log = logging.getLogger(__name__)

N = TypeVar("N", bound=Node)
M = TypeVar("M")


@dataclass(frozen=True)
class RunResult:
    """How a run ended: wall time, the signal that stopped it (if any), node errors."""

    wall_s: float
    signal: str | None
    errors: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal number as shells report it."""
        if self.signal is None:
            return 0
        return 128 + int(getattr(signal, self.signal))


class Graph:
    """Nodes and the topics between them; build with :meth:`add`, then ``setup``, ``run``."""

    def __init__(self, *, overflow: str = "drop_oldest", path: str | Path | None = None) -> None:
        if overflow not in OVERFLOW_POLICIES:
            message = (
                f"qos overflow {overflow!r} is not one of {', '.join(OVERFLOW_POLICIES)}"
            )
            raise ConfigError(message, path=path)
        self.path = path
        self.context = GraphContext(self, overflow)
        self.nodes: list[Node] = []
        self.topics: dict[str, Topic[Any]] = {}
        self._errors: list[BaseException] = []
        self._signal: str | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ building

    def add(
        self,
        node_cls: type[N],
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        remappings: Mapping[str, str] | None = None,
        path: str | Path | None = None,
        origin: str = "",
    ) -> N:
        """Create a node (parameters are validated here) and wire its topics."""
        if any(n.name == name for n in self.nodes):
            raise ConfigError(f"node {name!r}: a node of that name already exists", path=path)
        node = node_cls(name, params or {}, self.context, remappings=remappings, path=path,
                        origin=origin)
        self.nodes.append(node)
        return node

    def topic(self, name: str, msg_type: type[M], node: Node) -> Topic[M]:
        """The topic ``name`` (created on first use); its type must match every user's."""
        if not name.startswith("/"):
            raise node.config_error(f"topic names start with '/', got {name!r}", "remappings")
        known = self.topics.get(name)
        if known is None:
            created: Topic[M] = Topic(name, msg_type)
            self.topics[name] = created
            return created
        if known.msg_type is not msg_type:
            message = (
                f"topic {name!r} carries {known.msg_type.__name__} but this node uses it "
                f"for {msg_type.__name__}; remap one of them"
            )
            raise node.config_error(message, "remappings")
        return known

    def setup(self) -> None:
        """Set every node up (open inputs, load models), then report unconnected topics.

        Then every node gets ready (checks across nodes), and only then are output files
        created or replaced (:meth:`Node.open_outputs`), so that an error of any node,
        wherever the launch file declares it, leaves an earlier run's outputs as they were.
        When a node fails, the nodes already touched are shut down before the error goes
        on, so inputs are closed and outputs finalised.
        """
        touched: list[Node] = []
        try:
            for node in self.nodes:
                touched.append(node)
                node.setup()
            for topic in self.topics.values():
                if topic.subscriptions and not topic.publishers:
                    users = ", ".join(repr(s.node.name) for s in topic.subscriptions)
                    log.warning("no node publishes %s (subscribed by %s)", topic.name, users)
            for node in self.nodes:
                node.ready()
            self._open_outputs()
        except BaseException:
            for node in reversed(touched):
                try:
                    node.shutdown()
                except Exception:
                    log.exception("node %r (%s) failed to shut down", node.name, node.type_name)
            raise

    def _open_outputs(self) -> None:
        """Every node's :meth:`Node.open_outputs`, with SIGINT/SIGTERM held off as in
        :meth:`run`: a signal meanwhile stops the graph as soon as it runs (no frame goes
        in, the reports are written), so the outputs are all this run's. A Ctrl-C while
        the recorder created masks.mcap had left it empty beside the earlier run's PNGs,
        video and latency.json."""
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            for node in self.nodes:
                node.open_outputs()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        """Finish: sources stop, the rest drains."""
        self.context.stop.set()

    def abort(self) -> None:
        """Leave now: queues are abandoned (outputs are still closed)."""
        self.context.stop.set()
        self.context.abort.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is None:
            self._signal = name
            log.warning("%s: stopping; finishing queued frames (again to abort)", name)
            self.stop()
        else:
            log.warning("%s again: aborting", name)
            self.abort()

    def _thread_main(self, node: Node) -> None:
        try:
            node.run()
        except BaseException as exc:  # reported from run() in the main thread
            if not isinstance(exc, DrivingsegError):
                log.exception("node %r (%s) failed", node.name, node.type_name)
            self._errors.append(exc)
            self.stop()
        finally:
            node.deactivate()
            try:
                node.shutdown()
            except Exception as exc:
                log.exception("node %r (%s) failed to shut down", node.name, node.type_name)
                self._errors.append(exc)

    def run(
        self,
        *,
        handle_signals: bool = True,
        timeout_s: float | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> RunResult:
        """Run every node to its end; SIGINT/SIGTERM stop cleanly (main thread only).

        ``timeout_s`` stops the graph (as a signal would) after that many seconds.
        """
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        start = time.perf_counter()
        self.context.clock.start_ns = time.perf_counter_ns()
        self._threads = [
            threading.Thread(target=self._thread_main, args=(n,), name=n.name, daemon=True)
            for n in self.nodes
        ]
        try:
            for t in self._threads:
                t.start()
            while alive := [t for t in self._threads if t.is_alive()]:
                alive[0].join(0.05)
                if on_tick is not None:
                    on_tick()
                if timeout_s is not None and time.perf_counter() - start > timeout_s:
                    self.stop()
            wall_s = time.perf_counter() - start
            # Still under this graph's handlers: a signal while the nodes write their
            # reports (a second Ctrl-C) had raised KeyboardInterrupt in the middle of them,
            # leaving no latency.json and a hidden temporary CSV.
            self._after_run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._errors:
            raise self._errors[0]
        return RunResult(wall_s, self._signal, ())

    def _after_run(self) -> None:
        """Every node reports; errors are kept (a node's own first)."""
        for node in self.nodes:
            try:
                node.after_run()
            except Exception as exc:
                if not isinstance(exc, DrivingsegError):
                    log.exception("node %r (%s) failed to report", node.name, node.type_name)
                self._errors.append(exc)

    # ------------------------------------------------------------------ reports

    def drops(self) -> dict[str, int]:
        """Camera frames lost anywhere in the graph, by where they were lost (non-zero only):
        with the masks they add up to the frames in."""
        out: dict[str, int] = {}
        for node in self.nodes:
            for where, n in node.drops().items():
                if n:
                    out[where] = out.get(where, 0) + int(n)
        return out

    def losses(self) -> dict[str, dict[str, int]]:
        """Other messages lost in the graph (lidar scans, diagnostics), by what they are,
        then by where (non-zero only); not dropped frames."""
        out: dict[str, dict[str, int]] = {}
        for node in self.nodes:
            for what, at in node.losses().items():
                for where, n in at.items():
                    if n:
                        kind = out.setdefault(what, {})
                        kind[where] = kind.get(where, 0) + int(n)
        return out

    def frames_in(self) -> int:
        """Camera frames the sources published."""
        return sum(n.frames_published for n in self.nodes if n.is_frame_source)

    def replay_behind(self) -> dict[str, dict[str, float]]:
        """Sources that read messages after their release time (non-zero only), by name:
        how many and how far that took the replay behind its rate, in ms."""
        out: dict[str, dict[str, float]] = {}
        for node in self.nodes:
            messages = int(getattr(node, "behind_messages", 0))
            if messages:
                out[node.name] = {"messages": messages,
                                  "ms": int(getattr(node, "behind_ns", 0)) / 1e6}
        return out

    def newest_frame_stamp_ns(self) -> int | None:
        """Sensor stamp of the newest camera frame a source published (None: none yet)."""
        stamps = [stamp for n in self.nodes if n.is_frame_source
                  if (stamp := getattr(n, "last_stamp_ns", None)) is not None]
        return max(stamps, default=None)
