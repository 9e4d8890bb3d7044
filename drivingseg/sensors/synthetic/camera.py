"""The synthetic camera: one ray per pixel through the rig's pinhole model.

Pixel ``(u, v)`` (OpenCV convention: integer coordinates at pixel centres) looks along
the ray whose points project onto it with ``P @ R``; the ray is scaled so that its
parameter ``t`` *is* the projective depth, which makes the depth image directly
comparable with projected lidar points. Each box is tested only against the pixels of
its projected bounding rectangle (corners clipped to the near plane first), and the
ground plane fills every pixel below the horizon that no box covers, so image, class
map and depth all come from the same hits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.calibration.types import CameraModel
from drivingseg.sensors.synthetic.boxes import BoxArray
from drivingseg.sensors.synthetic.raycast import (
    GROUND_HIT,
    NO_HIT,
    box_corners,
    cast,
    to_box_frame,
    transform,
)
from drivingseg.sensors.synthetic.scene import World
from drivingseg.sensors.synthetic.shading import (
    SKY_HORIZON,
    NoiseTile,
    shade_boxes,
    shade_ground,
    sky_colour,
)

__all__ = ["CameraRender", "CameraRenderer"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NEAR_M = 0.5
FAR_M = 400.0
CULL_M = 260.0
HAZE_M = 220.0
PIXEL_NOISE = 1.6

_EDGES = np.array([(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1])


@dataclass(frozen=True, eq=False)
class CameraRender:
    """A rendered frame: RGB image, class ids (0/1/2) and projective depth (inf: sky)."""

    image: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    depth_m: npt.NDArray[np.float32]


def _erfinv(y: FloatArray) -> FloatArray:
    """Inverse error function by Newton steps on ``math.erf`` (only used for a 256-entry table)."""
    x = np.zeros_like(y)
    erf = np.vectorize(math.erf)
    for _ in range(60):
        x = x - (erf(x) - y) / (2.0 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


class CameraRenderer:
    """Renders the world as seen by ``camera`` from a world pose of its frame."""

    def __init__(self, camera: CameraModel, world: World, noise: NoiseTile) -> None:
        self.world = world
        self.noise = noise
        self.width, self.height = camera.width, camera.height
        PR = camera.projection_matrix()
        self.M = PR[:, :3]
        self.p4 = PR[:, 3]
        M_inv = np.linalg.inv(self.M)
        self.centre_cam = -M_inv @ self.p4
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1).astype(np.float64)
        self.dirs_cam = pix @ M_inv.T
        self.ray_len = np.linalg.norm(self.dirs_cam, axis=1)
        # Gaussian pixel noise by table look-up of uniform bytes (much cheaper than normal()).
        q: FloatArray = (np.arange(256, dtype=np.float64) + 0.5) / 256.0
        self.noise_lut = (PIXEL_NOISE * np.sqrt(2.0) * _erfinv(2.0 * q - 1.0)).astype(np.float32)

    def _rois(
        self, boxes: BoxArray, cand: IntArray, R_cw: FloatArray, t_cw: FloatArray
    ) -> dict[int, IntArray]:
        """Flat pixel indices of each candidate box's projected bounding rectangle."""
        corners = transform(box_corners(boxes.subset(cand)), R_cw, t_cw)
        h = transform(corners, self.M, self.p4)
        w = h[..., 2]
        out: dict[int, IntArray] = {}
        for k, b in enumerate(cand):
            wk = w[k]
            if np.all(wk <= NEAR_M):
                continue
            pts = h[k][wk > NEAR_M]
            i, j = _EDGES[:, 0], _EDGES[:, 1]
            cross = (wk[i] - NEAR_M) * (wk[j] - NEAR_M) < 0.0
            if np.any(cross):
                a = (NEAR_M - wk[i[cross]]) / (wk[j[cross]] - wk[i[cross]])
                hi, hj = h[k][i[cross]], h[k][j[cross]]
                pts = np.vstack([pts, hi + a[:, None] * (hj - hi)])
            uv = pts[:, :2] / pts[:, 2:3]
            u0 = max(int(np.floor(uv[:, 0].min())) - 1, 0)
            u1 = min(int(np.ceil(uv[:, 0].max())) + 2, self.width)
            v0 = max(int(np.floor(uv[:, 1].min())) - 1, 0)
            v1 = min(int(np.ceil(uv[:, 1].max())) + 2, self.height)
            if u0 >= u1 or v0 >= v1:
                continue
            rows = np.arange(v0, v1)[:, None] * self.width
            out[int(b)] = (rows + np.arange(u0, u1)[None, :]).ravel()
        return out

    def render(
        self, boxes: BoxArray, t_s: float, T_world_cam: FloatArray, rng: np.random.Generator
    ) -> CameraRender:
        """Render ``boxes`` (the world at time ``t_s``) from camera pose ``T_world_cam``."""
        R_wc, t_wc = T_world_cam[:3, :3], T_world_cam[:3, 3]
        R_cw = R_wc.T
        t_cw = -R_cw @ t_wc
        origin = R_wc @ self.centre_cam + t_wc
        dirs = transform(self.dirs_cam, R_wc)
        dist_c = np.linalg.norm(boxes.center[:, :2] - origin[:2], axis=1)
        cand = np.flatnonzero(dist_c < CULL_M + np.linalg.norm(boxes.half, axis=1))
        rois = self._rois(boxes, cand, R_cw, t_cw)
        hits = cast(origin, dirs, boxes, np.array(sorted(rois)), rois.get, NEAR_M, FAR_M)

        n = dirs.shape[0]
        rgb = np.empty((n, 3))
        labels = np.zeros(n, dtype=np.uint8)
        sky = hits.box == NO_HIT
        rgb[sky] = sky_colour(dirs[sky])
        dist = np.where(sky, np.inf, hits.t * self.ray_len)

        ground = np.flatnonzero(hits.box == GROUND_HIT)
        gp = origin + hits.t[ground, None] * dirs[ground]
        g_rgb, _, g_label = shade_ground(
            self.world, self.noise, gp[:, 0], gp[:, 1], dist[ground], origin[:2], FAR_M
        )
        rgb[ground] = g_rgb
        labels[ground] = g_label
        self._shadows(rgb, hits.box == GROUND_HIT, origin, dirs, hits.t, t_s, R_cw, t_cw)

        solid = np.flatnonzero(hits.box >= 0)
        ids = hits.box[solid]
        hp = origin + hits.t[solid, None] * dirs[solid]
        local = to_box_frame(hp, boxes, ids)
        rgb[solid], _ = shade_boxes(boxes, ids, hits.face[solid], local)
        labels[solid] = boxes.label[ids]

        haze = np.where(sky, 0.0, 1.0 - np.exp(-np.where(sky, 0.0, dist) / HAZE_M))[:, None]
        rgb *= 1.0 - haze
        rgb += SKY_HORIZON * haze
        img = np.asarray(
            cv2.GaussianBlur(
                (rgb * 255.0).astype(np.float32).reshape(self.height, self.width, 3), (3, 3), 0.5
            ),
            dtype=np.float32,
        )
        img += self.noise_lut[rng.integers(0, 256, size=img.shape, dtype=np.uint8)]
        img += 0.5
        np.clip(img, 0.0, 255.0, out=img)
        image = img.astype(np.uint8)
        depth = hits.t.astype(np.float32).reshape(self.height, self.width)
        return CameraRender(image, labels.reshape(self.height, self.width), depth)

    def _shadows(
        self,
        rgb: FloatArray,
        ground: npt.NDArray[np.bool_],
        origin: FloatArray,
        dirs: FloatArray,
        t: FloatArray,
        t_s: float,
        R_cw: FloatArray,
        t_cw: FloatArray,
    ) -> None:
        """Darken the ground under each car (soft-edged patch a little larger than it)."""
        x, y, yaw = self.world.car_poses(t_s)
        size = np.array([c.size_lwh for c in self.world.cars])
        near = np.flatnonzero(np.hypot(x - origin[0], y - origin[1]) < 120.0)
        if near.size == 0:
            return
        margin = 0.35
        foot = BoxArray(
            center=np.stack([x[near], y[near], np.full(near.size, 0.02)], axis=1),
            half=np.stack(
                [size[near, 0] / 2 + margin, size[near, 1] / 2 + margin, np.full(near.size, 0.02)],
                axis=1,
            ),
            yaw=yaw[near],
            label=np.zeros(near.size, dtype=np.uint8),
            material=np.zeros(near.size, dtype=np.int64),
            colour=np.zeros((near.size, 3)),
            obj=near,
        )
        rois = self._rois(foot, np.arange(near.size), R_cw, t_cw)
        for k, idx in rois.items():
            idx = idx[ground[idx]]
            p = origin + t[idx, None] * dirs[idx]
            local = to_box_frame(p, foot, np.full(idx.size, k))
            edge = np.maximum(
                np.abs(local[:, 0]) - size[near[k], 0] / 2,
                np.abs(local[:, 1]) - size[near[k], 1] / 2,
            )
            dark = np.clip((margin - edge) / (margin + 0.15), 0.0, 1.0)
            rgb[idx] *= (1.0 - 0.6 * dark)[:, None]
