"""A bag's transform tree, for the rig: /tf_static links, and /tf links that never move.

tf2 treats /tf as time-varying. A sensor mount republished on /tf (as ROS 1
``static_transform_publisher`` and many drivers do) never moves; odometry does. So
:class:`TfTree` records how far each /tf link moved over the bag, and the rig is never
built on a moving link.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivingseg.calibration.types import RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.sensors.ros_msgs import transform_from_tf
from drivingseg.sensors.ros_msgs_write import quaternion_from_matrix

__all__ = ["TF_FIXED_TOLERANCE_M", "TF_FIXED_TOLERANCE_RAD", "TfLookup", "TfTree"]

TF_FIXED_TOLERANCE_M = 1e-4
"""A /tf link whose translation stays within this many metres (0.1 mm) of its first value
over the whole bag is a fixed mount, usable for the rig (float noise of republishing)."""
TF_FIXED_TOLERANCE_RAD = 1e-4
"""... and whose rotation stays within this many radians (0.1 mrad) of its first value."""


@dataclass
class _TfLink:
    """What the bag's /tf says about one child frame: its first transform and its motion."""

    first: RigidTransform  # T_parent_child, frames without a leading '/'
    count: int = 1
    shift_m: float = 0.0  # largest translation away from ``first``
    turn_rad: float = 0.0  # largest rotation away from ``first``
    other_parent: str = ""  # a second parent seen for the child ('' when none)
    invalid: bool = False  # a sample with a zero or invalid quaternion
    first_q: tuple[float, float, float, float] = field(init=False)  # unit x, y, z, w

    def __post_init__(self) -> None:
        self.first_q = quaternion_from_matrix(self.first.rotation)

    def sample(self, translation: Sequence[float], quaternion: Sequence[float]) -> None:
        """One more sample of the link, as the message's numbers: plain float arithmetic,
        no validated transform per sample (a 100 Hz /tf of a long bag has millions)."""
        self.count += 1
        norm = math.sqrt(sum(v * v for v in quaternion))
        if not (math.isfinite(norm) and norm >= 1e-9 and all(map(math.isfinite, translation))):
            self.invalid = True
            return
        first_t = self.first.translation
        self.shift_m = max(self.shift_m, math.dist(translation, (first_t[0], first_t[1],
                                                                  first_t[2])))
        q = [v / norm for v in quaternion]
        sign = math.copysign(1.0, sum(a * b for a, b in zip(q, self.first_q, strict=True)))
        apart = math.dist(q, [sign * v for v in self.first_q])
        along = math.dist(q, [-sign * v for v in self.first_q])
        self.turn_rad = max(self.turn_rad, 4.0 * math.atan2(apart, along))

    @property
    def fixed(self) -> bool:
        return (self.count >= 2 and not self.other_parent and not self.invalid
                and self.shift_m <= TF_FIXED_TOLERANCE_M
                and self.turn_rad <= TF_FIXED_TOLERANCE_RAD)

    @property
    def name(self) -> str:
        return f"{self.first.target_frame} <- {self.first.source_frame}"

    def describe(self) -> str:
        """``parent <- child`` and why it is not fixed, e.g. ``odom <- base_link (moves
        12.3 m, 0.4 rad)`` (the largest translation and rotation from its first value)."""
        name = self.name
        if self.other_parent:
            return f"{name} (also published with parent {self.other_parent!r})"
        if self.invalid:
            return f"{name} (has an invalid quaternion)"
        if self.count < 2:
            return f"{name} (published once, so not known to be fixed)"
        return f"{name} (moves {self.shift_m:.3g} m, {self.turn_rad:.3g} rad)"


@dataclass(frozen=True)
class TfLookup:
    """A rig transform lookup: ``transform`` (``None`` when none is usable), the fixed /tf
    links it used, the moving /tf links the only chain needs (then no transform), and
    ``note``: which /tf links it took, or why there is none."""

    transform: RigidTransform | None
    from_tf: tuple[str, ...] = ()
    moving: tuple[str, ...] = ()
    note: str = ""


class TfTree:
    """The links of a bag's /tf_static and /tf, fed one ``T_parent_child`` at a time.

    As in tf2, frame names match without a leading ``/`` and a child's latest /tf_static
    transform replaces earlier ones. /tf links are time-varying: :meth:`lookup` uses one
    only when it never moved over the bag (:data:`TF_FIXED_TOLERANCE_M`,
    :data:`TF_FIXED_TOLERANCE_RAD`, at least two samples, one parent) and /tf_static
    has no chain.
    """

    def __init__(self) -> None:
        self.static: dict[str, RigidTransform] = {}  # child -> T_parent_child
        self.dynamic: dict[str, _TfLink] = {}

    @staticmethod
    def _plain(T: RigidTransform) -> RigidTransform:
        return RigidTransform(T.matrix, T.source_frame.lstrip("/"), T.target_frame.lstrip("/"),
                              T.path)

    def add(self, msg: Any, source: str, *, static: bool) -> None:
        """Every transform of a ``TFMessage`` of /tf_static (``static``) or /tf. A bad one
        (zero quaternion) is an error on /tf_static; on /tf it makes its link unusable."""
        for stamped in msg.transforms:
            if static:
                self.add_static(transform_from_tf(stamped, source))
                continue
            link = self.dynamic.get(str(stamped.child_frame_id).lstrip("/"))
            if link is not None and (str(stamped.header.frame_id).lstrip("/")
                                     == link.first.target_frame):
                t, q = stamped.transform.translation, stamped.transform.rotation
                link.sample((float(t.x), float(t.y), float(t.z)),
                            (float(q.x), float(q.y), float(q.z), float(q.w)))
                continue
            try:
                T: RigidTransform | None = transform_from_tf(stamped, source)
            except RecordingError:
                T = None
            self.add_dynamic(T, str(stamped.child_frame_id), str(stamped.header.frame_id))

    def add_static(self, T: RigidTransform) -> None:
        plain = self._plain(T)
        self.static[plain.source_frame] = plain

    def add_dynamic(self, T: RigidTransform | None, child: str, parent: str) -> None:
        """One /tf sample of ``parent <- child``; ``T`` is ``None`` for an invalid one."""
        child, parent = child.lstrip("/"), parent.lstrip("/")
        link = self.dynamic.get(child)
        if link is None:
            if T is None:
                T = RigidTransform(np.eye(4), child, parent)
                self.dynamic[child] = _TfLink(T, invalid=True)
            else:
                self.dynamic[child] = _TfLink(self._plain(T))
            return
        if parent != link.first.target_frame:
            link.count += 1
            link.other_parent = link.other_parent or parent
        elif T is None:
            link.count += 1
            link.invalid = True
        else:
            link.sample(T.translation.tolist(), quaternion_from_matrix(T.rotation))

    def lookup(self, target: str, source: str, *, with_tf: bool) -> TfLookup:
        """``T_target_source`` through /tf_static, else (``with_tf``) also through fixed /tf
        links; ``note`` says which /tf links were used, or which moving ones the only
        chain needs."""
        goal, start = target.lstrip("/"), source.lstrip("/")
        path = self._search(start, goal, {})
        if path is not None or not with_tf:
            return self._result(path, source, target, ())
        dynamic = {c: link for c, link in self.dynamic.items() if c not in self.static}
        fixed = {c: link for c, link in dynamic.items() if link.fixed}
        path = self._search(start, goal, fixed)
        if path is not None:
            used = tuple(fixed[c].name for c in self._children(path, fixed))
            note = f"links from /tf (fixed over the bag): {', '.join(used)}"
            return self._result(path, source, target, used, note)
        path = self._search(start, goal, dynamic)
        if path is None:
            return TfLookup(None, note=f"no chain {goal} <- {start} in /tf_static or /tf")
        moving = tuple(dynamic[c].describe() for c in self._children(path, dynamic)
                       if not dynamic[c].fixed)
        return TfLookup(None, moving=moving, note=(
            f"the only chain {goal} <- {start} needs /tf links that are not fixed over the "
            f"bag: {'; '.join(moving)}"))

    @staticmethod
    def _children(path: list[RigidTransform], links: dict[str, _TfLink]) -> list[str]:
        """The child frames of the /tf links (of ``links``) on ``path``."""
        out = []
        for edge in path:
            for child in (edge.source_frame, edge.target_frame):
                link = links.get(child)
                other = edge.target_frame if child == edge.source_frame else edge.source_frame
                if link is not None and link.first.target_frame == other and child not in out:
                    out.append(child)
        return out

    def _result(self, path: list[RigidTransform] | None, source: str, target: str,
                used: tuple[str, ...], note: str = "") -> TfLookup:
        if path is None:
            return TfLookup(None, note=f"no chain {target.lstrip('/')} <- "
                                       f"{source.lstrip('/')} in /tf_static")
        matrix = np.eye(4)
        for edge in path:
            matrix = edge.matrix @ matrix
        origin = next((e.path for e in path if e.path), None)
        return TfLookup(RigidTransform(matrix, source, target, origin), used, note=note)

    def _search(self, start: str, goal: str,
                extra: dict[str, _TfLink]) -> list[RigidTransform] | None:
        """Breadth-first chain of edges (each ``T_next_frame``) from ``start`` to ``goal``
        over /tf_static plus ``extra`` /tf links (either way)."""
        edges: dict[str, list[RigidTransform]] = {}
        for T in [*self.static.values(), *(link.first for link in extra.values())]:
            edges.setdefault(T.source_frame, []).append(T)
            edges.setdefault(T.target_frame, []).append(T.inverse())
        found: dict[str, list[RigidTransform]] = {start: []}
        queue = deque([start])
        while queue:
            frame = queue.popleft()
            if frame == goal:
                return found[frame]
            for edge in edges.get(frame, []):
                if edge.target_frame not in found:
                    found[edge.target_frame] = [*found[frame], edge]
                    queue.append(edge.target_frame)
        return None
