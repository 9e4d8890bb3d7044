"""Road geometry: centrelines of straight and circular segments, and the cross-section.

The main road is a tangent-continuous chain of segments; a junction adds a straight cross
street. Every ground point takes its material from the road nearest to it: carriageway
(asphalt with a dashed centre line and solid edge lines), kerb, paved sidewalk, grass.
Where two roads meet, the carriageway wins and each road's markings stop at the other's
kerb, so corners and kerb cuts come out of the same rule.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Road", "ground_material"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Materials: ground (< 10) and solids (>= 10).
SKY, ASPHALT, PAINT, KERB, SIDEWALK, GRASS = 0, 1, 2, 3, 4, 5
CAR_BODY, CAR_CABIN, TYRE, WALL, TRUNK, LEAVES = 10, 11, 12, 13, 14, 15

BACKGROUND, ROAD, CAR = 0, 1, 2
"""Ground-truth class ids."""

LANE_OFFSET_M = 1.75
"""Lateral offset of each driving lane's centre from the road centreline (lanes 3.5 m)."""
LANE_EDGE_M = 3.5
"""Solid edge line between a driving lane and the parking strip."""
ROAD_HALF_WIDTH_M = 6.0
KERB_WIDTH_M = 0.25
SIDEWALK_END_M = 9.0
PARK_OFFSET_M = 4.8
LINE_HALF_WIDTH_M = 0.075
DASH_PERIOD_M, DASH_LENGTH_M = 9.0, 3.0
STRETCH_M = 30.0
ROAD_START_S = -150.0
"""Arc length where the road begins; the ego starts at s = 0."""


class Road:
    """A tangent-continuous chain of straight (curvature 0) and circular segments."""

    def __init__(
        self,
        lengths: FloatArray,
        curvatures: FloatArray,
        start_xyh: tuple[float, float, float] = (ROAD_START_S, 0.0, 0.0),
        start_s: float = ROAD_START_S,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.curv = np.asarray(curvatures, dtype=np.float64)
        self.s0 = start_s + np.concatenate([[0.0], np.cumsum(self.lengths)[:-1]])
        n = len(self.lengths)
        self.x0, self.y0, self.h0 = np.zeros(n), np.zeros(n), np.zeros(n)
        # By default the road starts behind the origin so that s = 0 lies at the origin.
        x, y, h = start_xyh
        for k in range(n):
            self.x0[k], self.y0[k], self.h0[k] = x, y, h
            x, y, h = self._advance(x, y, h, self.lengths[k], self.curv[k])
        self.end_s = float(self.s0[-1] + self.lengths[-1])

    @staticmethod
    def _advance(x: float, y: float, h: float, ds: float, k: float) -> tuple[float, float, float]:
        if k == 0.0:
            return x + ds * np.cos(h), y + ds * np.sin(h), h
        h1 = h + k * ds
        return x + (np.sin(h1) - np.sin(h)) / k, y - (np.cos(h1) - np.cos(h)) / k, h1

    def pose(self, s: npt.ArrayLike, lat: npt.ArrayLike = 0.0) -> tuple[FloatArray, ...]:
        """World ``(x, y, heading)`` of the points at arc length ``s``, ``lat`` left of centre."""
        s_arr = np.asarray(s, dtype=np.float64)
        k_idx = np.clip(np.searchsorted(self.s0, s_arr, side="right") - 1, 0, len(self.s0) - 1)
        ds = s_arr - self.s0[k_idx]
        k = self.curv[k_idx]
        h0 = self.h0[k_idx]
        h = h0 + k * ds
        straight = k == 0.0
        k_safe = np.where(straight, 1.0, k)
        x = self.x0[k_idx] + np.where(straight, ds * np.cos(h0), (np.sin(h) - np.sin(h0)) / k_safe)
        y = self.y0[k_idx] + np.where(straight, ds * np.sin(h0), -(np.cos(h) - np.cos(h0)) / k_safe)
        lat_arr = np.asarray(lat, dtype=np.float64)
        return x - lat_arr * np.sin(h), y + lat_arr * np.cos(h), h

    def locate(
        self, x: FloatArray, y: FloatArray, near_xy: FloatArray, radius_m: float
    ) -> tuple[FloatArray, FloatArray]:
        """Arc length ``s`` and signed lateral offset (left +) of world points.

        Only segments within ``radius_m`` (plus a margin) of ``near_xy`` are searched;
        points beside none of them get ``lat = inf``.
        """
        best_s = np.zeros_like(x)
        best_lat = np.full_like(x, np.inf)
        mid_x, mid_y, _ = self.pose(self.s0 + self.lengths / 2)
        dist = np.hypot(mid_x - near_xy[0], mid_y - near_xy[1])
        for k in np.flatnonzero(dist < self.lengths / 2 + radius_m + 40.0):
            kk = float(self.curv[k])
            c, s_ = np.cos(self.h0[k]), np.sin(self.h0[k])
            dx, dy = x - self.x0[k], y - self.y0[k]
            if kk == 0.0:
                along = dx * c + dy * s_
                lat = -dx * s_ + dy * c
            else:
                cx, cy = -s_ / kk, c / kk  # centre relative to the segment start
                wx, wy = dx - cx, dy - cy
                rx, ry = -cx, -cy
                along = np.arctan2(rx * wy - ry * wx, rx * wx + ry * wy) / kk
                lat = np.sign(kk) * (1.0 / abs(kk) - np.hypot(wx, wy))
            ok = (along >= 0.0) & (along <= self.lengths[k]) & (np.abs(lat) < np.abs(best_lat))
            best_s = np.where(ok, self.s0[k] + along, best_s)
            best_lat = np.where(ok, lat, best_lat)
        return best_s, best_lat


_RANK = np.array([0, 3, 3, 2, 1, 0])
"""Priority of ground materials where roads overlap (index: material id)."""


def _section(s: FloatArray, lat: FloatArray) -> IntArray:
    a = np.abs(lat)
    mat = np.full(s.shape, GRASS, dtype=np.int64)
    mat[a < SIDEWALK_END_M] = SIDEWALK
    mat[a < ROAD_HALF_WIDTH_M + KERB_WIDTH_M] = KERB
    mat[a < ROAD_HALF_WIDTH_M] = ASPHALT
    edge = np.abs(a - LANE_EDGE_M) < LINE_HALF_WIDTH_M
    dash = (a < LINE_HALF_WIDTH_M) & (np.mod(s, DASH_PERIOD_M) < DASH_LENGTH_M)
    mat[(a < ROAD_HALF_WIDTH_M) & (edge | dash)] = PAINT
    return mat


def ground_material(
    roads: list[Road], x: FloatArray, y: FloatArray, near_xy: FloatArray, radius_m: float
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Material, arc length and |lateral offset| (of the deciding road) of ground points.

    ``roads[0]`` is the main road, the others cross it; only road parts within
    ``radius_m`` of ``near_xy`` are considered.
    """
    s, lat = roads[0].locate(x, y, near_xy, radius_m)
    mat = _section(s, lat)
    a = np.abs(lat)
    for cross in roads[1:]:
        s2, lat2 = cross.locate(x, y, near_xy, radius_m)
        a2 = np.abs(lat2)
        if not np.any(a2 < SIDEWALK_END_M):
            continue
        mat2 = _section(s2, lat2)
        mat[(mat == PAINT) & (a2 < ROAD_HALF_WIDTH_M + KERB_WIDTH_M)] = ASPHALT
        mat2[(mat2 == PAINT) & (a < ROAD_HALF_WIDTH_M + KERB_WIDTH_M)] = ASPHALT
        take = _RANK[mat2] > _RANK[mat]
        mat = np.where(take, mat2, mat)
        s = np.where(take, s2, s)
        a = np.where(take, a2, a)
    return mat, s, a
