"""The synthetic lidar: a 64-beam spinning scanner (Velodyne HDL-64E-like) by ray casting.

Beams: 32 upper ones evenly from +2 to -8.33 degrees and 32 lower ones from -8.83 to
-24.8 degrees; azimuth step 0.2 degrees (1800 columns). The sweep is taken at one instant
(no motion skew). Returns carry 2 cm range noise, a few percent dropouts (more at long
range and on dark surfaces) and an intensity from the surface's reflectivity and the
angle of incidence. Rays that hit nothing within 120 m give no point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivingseg.sensors.synthetic.boxes import BoxArray
from drivingseg.sensors.synthetic.raycast import (
    GROUND_HIT,
    NO_HIT,
    cast,
    to_box_frame,
    transform,
)
from drivingseg.sensors.synthetic.scene import World
from drivingseg.sensors.synthetic.shading import NoiseTile, shade_boxes, shade_ground

__all__ = ["LidarModel", "LidarScanResult"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_RANGE_M = 120.0
MIN_RANGE_M = 0.9
RANGE_NOISE_M = 0.02


@dataclass(frozen=True, eq=False)
class LidarScanResult:
    """Points (N x 4 float32: x, y, z in the lidar frame, intensity) and their class ids."""

    points: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]


class LidarModel:
    """Beam pattern and the scan of a world from a lidar pose."""

    def __init__(self, world: World, noise: NoiseTile, azimuth_step_deg: float = 0.2) -> None:
        self.world = world
        self.noise = noise
        self.elevation = np.deg2rad(
            np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.8, 32)])
        )
        self.n_cols = round(360.0 / azimuth_step_deg)
        self.step = 2.0 * np.pi / self.n_cols
        # Column j looks at azimuth pi - (j + 0.5) * step: from behind, counter-clockwise.
        self.azimuth = np.pi - (np.arange(self.n_cols) + 0.5) * self.step
        el, az = np.meshgrid(self.elevation, self.azimuth, indexing="ij")
        self.dirs = np.stack(
            [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1
        ).reshape(-1, 3)

    def _rois(
        self, boxes: BoxArray, cand: IntArray, T_velo_world: FloatArray
    ) -> dict[int, IntArray]:
        """Ray indices (beam rows x azimuth columns) whose angles can reach each box."""
        R, t = T_velo_world[:3, :3], T_velo_world[:3, 3]
        sub = boxes.subset(cand)
        c, s = np.cos(sub.yaw), np.sin(sub.yaw)
        sx = np.array([-1.0, 1.0, 1.0, -1.0])
        sy = np.array([-1.0, -1.0, 1.0, 1.0])
        hx, hy = sub.half[:, 0:1] * sx, sub.half[:, 1:2] * sy
        cx = sub.center[:, 0:1] + c[:, None] * hx - s[:, None] * hy
        cy = sub.center[:, 1:2] + s[:, None] * hx + c[:, None] * hy
        pts = transform(np.stack([cx, cy, np.zeros_like(cx)], axis=-1), R, t)
        ctr = transform(sub.center, R, t)
        az_c = np.arctan2(ctr[:, 1], ctr[:, 0])
        rel = np.angle(np.exp(1j * (np.arctan2(pts[..., 1], pts[..., 0]) - az_c[:, None])))
        d_c = np.hypot(ctr[:, 0], ctr[:, 1])
        radius = np.hypot(sub.half[:, 0], sub.half[:, 1])
        d_min = np.maximum(d_c - radius, 0.3)
        d_max = d_c + radius
        z_top = ctr[:, 2] + sub.half[:, 2]
        z_bot = ctr[:, 2] - sub.half[:, 2]
        el_max = np.arctan2(z_top, np.where(z_top >= 0, d_min, d_max))
        el_min = np.arctan2(z_bot, np.where(z_bot >= 0, d_max, d_min))
        inside = d_c <= radius * 1.01
        out: dict[int, IntArray] = {}
        margin = np.deg2rad(0.5)
        for k, b in enumerate(cand):
            rows = np.flatnonzero(
                (self.elevation <= el_max[k] + margin) & (self.elevation >= el_min[k] - margin)
            )
            if rows.size == 0:
                continue
            if inside[k]:
                cols = np.arange(self.n_cols)
            else:
                a0 = az_c[k] + rel[k].max() + self.step
                a1 = az_c[k] + rel[k].min() - self.step
                j0 = int(np.floor((np.pi - a0) / self.step))
                j1 = int(np.ceil((np.pi - a1) / self.step))
                cols = np.arange(j0, j1 + 1) % self.n_cols
            out[int(b)] = (rows[:, None] * self.n_cols + cols[None, :]).ravel()
        return out

    def scan(
        self, boxes: BoxArray, T_world_velo: FloatArray, rng: np.random.Generator
    ) -> LidarScanResult:
        """Scan ``boxes`` and the ground from lidar pose ``T_world_velo``."""
        R_wl, t_wl = T_world_velo[:3, :3], T_world_velo[:3, 3]
        T_velo_world = np.eye(4)
        T_velo_world[:3, :3] = R_wl.T
        T_velo_world[:3, 3] = -R_wl.T @ t_wl
        dirs = transform(self.dirs, R_wl)
        dist_c = np.linalg.norm(boxes.center[:, :2] - t_wl[:2], axis=1)
        cand = np.flatnonzero(dist_c < MAX_RANGE_M + np.linalg.norm(boxes.half, axis=1))
        rois = self._rois(boxes, cand, T_velo_world)
        hits = cast(t_wl, dirs, boxes, np.array(sorted(rois)), rois.get, MIN_RANGE_M, MAX_RANGE_M)

        keep = np.flatnonzero(hits.box != NO_HIT)
        r = hits.t[keep]
        box = hits.box[keep]
        d = dirs[keep]
        p = t_wl + r[:, None] * d
        refl = np.empty(keep.size)
        cos_inc = np.empty(keep.size)
        labels = np.empty(keep.size, dtype=np.uint8)

        g = box == GROUND_HIT
        _, refl[g], labels[g] = shade_ground(
            self.world, self.noise, p[g, 0], p[g, 1], r[g], t_wl[:2], MAX_RANGE_M
        )
        cos_inc[g] = np.abs(d[g, 2])
        sol = ~g
        ids = box[sol]
        local = to_box_frame(p[sol], boxes, ids)
        _, refl[sol] = shade_boxes(boxes, ids, hits.face[keep][sol], local)
        labels[sol] = boxes.label[ids]
        axis = hits.face[keep][sol].astype(np.int64) // 2
        c, s = np.cos(boxes.yaw[ids]), np.sin(boxes.yaw[ids])
        d_axis = np.where(
            axis == 0,
            c * d[sol, 0] + s * d[sol, 1],
            np.where(axis == 1, -s * d[sol, 0] + c * d[sol, 1], d[sol, 2]),
        )
        cos_inc[sol] = np.abs(d_axis)

        intensity = refl * (0.45 + 0.55 * cos_inc) + rng.normal(0.0, 0.01, keep.size)
        p_drop = 0.015 + 0.1 * (r / MAX_RANGE_M) ** 2 + 0.06 * (refl < 0.07)
        ok = rng.random(keep.size) >= p_drop
        r_noisy = r + rng.normal(0.0, RANGE_NOISE_M, keep.size)
        xyz = self.dirs[keep] * r_noisy[:, None]
        pts = np.concatenate([xyz, np.clip(intensity, 0.0, 1.0)[:, None]], axis=1)
        return LidarScanResult(pts[ok].astype(np.float32), labels[ok])
