"""Surface appearance: colour for the camera, reflectivity for the lidar, class for both.

Ground points get their material from the road cross-section at their lateral offset
(asphalt with dashed centre line and solid edge lines, kerb, paved sidewalk, grass);
boxes from their material and where on which face the ray hit (windows on walls, glass
and pillars on car cabins, lights and bumpers on car bodies, hubs on wheels). Textures
are anchored in the world (hashes of positions and a seeded noise tile), so they stay
put from frame to frame.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.sensors.synthetic import road as sc
from drivingseg.sensors.synthetic.boxes import BoxArray
from drivingseg.sensors.synthetic.road import ground_material
from drivingseg.sensors.synthetic.scene import World

__all__ = ["SUN_DIR", "NoiseTile", "face_light", "shade_boxes", "shade_ground", "sky_colour"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUN_DIR = np.array([0.35, -0.55, 0.76]) / np.linalg.norm([0.35, -0.55, 0.76])
AMBIENT, DIFFUSE = 0.5, 0.6
SKY_TOP = np.array([0.33, 0.53, 0.84])
SKY_HORIZON = np.array([0.78, 0.84, 0.9])
_GROUND_LIGHT = AMBIENT + DIFFUSE * SUN_DIR[2]


def _hash(a: FloatArray, b: FloatArray, c: FloatArray | float = 0.0) -> FloatArray:
    """Deterministic pseudo-random value in [0, 1) per integer triple."""
    v = np.sin(a * 12.9898 + b * 78.233 + np.asarray(c) * 37.719) * 43758.5453
    return np.asarray(v - np.floor(v))


def _blur_wrap(img: npt.NDArray[np.float32], sigma: float) -> npt.NDArray[np.float32]:
    """Gaussian blur of a periodic image (OpenCV has no wrap-around border for it)."""
    pad = int(np.ceil(4 * sigma))
    big = np.pad(img, pad, mode="wrap")
    return np.asarray(cv2.GaussianBlur(big, (0, 0), sigma)[pad:-pad, pad:-pad])


class NoiseTile:
    """A seeded, smooth, tileable noise texture (zero mean, unit std) sampled by world xy."""

    def __init__(self, seed: int, size: int = 512, cell_m: float = 0.08) -> None:
        rng = np.random.default_rng([seed, 21])
        raw = rng.standard_normal((size, size)).astype(np.float32)
        smooth = _blur_wrap(raw, 1.2)
        coarse = _blur_wrap(raw, 8.0)
        tile = smooth / smooth.std() + 0.7 * coarse / coarse.std()
        self.tile = (tile / tile.std()).astype(np.float64)
        self.size = size
        self.cell_m = cell_m

    def sample(self, x: FloatArray, y: FloatArray) -> FloatArray:
        i = np.floor(x / self.cell_m).astype(np.int64) % self.size
        j = np.floor(y / self.cell_m).astype(np.int64) % self.size
        return np.asarray(self.tile[i, j])


def sky_colour(dirs: FloatArray) -> FloatArray:
    """Sky gradient from pale at the horizon to blue overhead, by ray elevation."""
    elev = np.arctan2(dirs[:, 2], np.hypot(dirs[:, 0], dirs[:, 1]))
    f = np.clip(elev / 0.45, 0.0, 1.0)[:, None] ** 0.6
    return np.asarray(SKY_HORIZON * (1.0 - f) + SKY_TOP * f)


def shade_ground(
    world: World,
    noise: NoiseTile,
    x: FloatArray,
    y: FloatArray,
    dist: FloatArray,
    near_xy: FloatArray,
    radius_m: float,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.uint8]]:
    """Colour (M, 3), lidar reflectivity (M,) and class id (M,) of ground points."""
    mat, s, a = ground_material(world.roads, x, y, near_xy, radius_m)
    n = noise.sample(x, y)
    fade = np.exp(-dist / 35.0)
    road = (mat == sc.ASPHALT) | (mat == sc.PAINT)
    rgb = np.empty((x.size, 3))
    refl = np.empty(x.size)
    table = {
        sc.ASPHALT: ([0.33, 0.33, 0.34], 0.06, 0.12),
        sc.PAINT: ([0.9, 0.9, 0.87], 0.03, 0.75),
        sc.KERB: ([0.66, 0.66, 0.64], 0.04, 0.32),
        sc.SIDEWALK: ([0.6, 0.56, 0.52], 0.04, 0.22),
        sc.GRASS: ([0.26, 0.4, 0.16], 0.08, 0.08),
    }
    for m, (base, amp, r) in table.items():
        sel = mat == m
        rgb[sel] = np.asarray(base) * (1.0 + amp * n[sel] * (0.3 + 0.7 * fade[sel]))[:, None]
        refl[sel] = r * (1.0 + 0.25 * n[sel])
    # Shadow of the kerb's face on the road and joints between the sidewalk's slabs.
    kerb_face = (mat == sc.KERB) & (a < sc.ROAD_HALF_WIDTH_M + 0.05)
    rgb[kerb_face] *= 0.6
    slab = np.flatnonzero(mat == sc.SIDEWALK)
    across = a[slab] - sc.ROAD_HALF_WIDTH_M - sc.KERB_WIDTH_M
    joint = slab[(np.mod(s[slab], 0.9) < 0.04) | (np.mod(across, 0.9) < 0.04)]
    rgb[joint] *= 1.0 - 0.25 * fade[joint, None]
    label = np.where(road, sc.ROAD, sc.BACKGROUND).astype(np.uint8)
    return rgb * _GROUND_LIGHT, refl, label


def _walls(
    rgb: FloatArray,
    refl: FloatArray,
    half: FloatArray,
    axis: IntArray,
    top: npt.NDArray[np.bool_],
    local: FloatArray,
    obj: FloatArray,
) -> None:
    """Rows of windows (some catching the light) on walls, a dark roof on top."""
    u = np.where(axis == 0, local[:, 1] + half[:, 1], local[:, 0] + half[:, 0])
    width = 2.0 * np.where(axis == 0, half[:, 1], half[:, 0])
    h = local[:, 2] + half[:, 2]
    mu, mh = np.mod(u, 3.0), np.mod(h, 3.2)
    win = (
        ~top
        & (mu > 0.8)
        & (mu < 2.2)
        & (u > 0.6)
        & (u < width - 0.6)
        & (mh > 1.0)
        & (mh < 2.4)
        & (h < 2.0 * half[:, 2] - 0.7)
    )
    glint = _hash(np.floor(u[win] / 3.0), np.floor(h[win] / 3.2), obj[win])
    rgb[win] = np.array([0.12, 0.15, 0.2]) + glint[:, None] * np.array([0.3, 0.32, 0.33])
    refl[:] = np.where(win, 0.05, 0.3)
    rgb[top] = [0.36, 0.34, 0.33]


def _car_body(
    rgb: FloatArray,
    refl: FloatArray,
    half: FloatArray,
    axis: IntArray,
    positive: npt.NDArray[np.bool_],
    local: FloatArray,
) -> None:
    """Paint with a dark bumper strip, headlights at the front and tail lights at the back."""
    refl[:] = 0.25 + 0.3 * rgb.mean(axis=1)
    ly, lz = np.abs(local[:, 1]), local[:, 2]
    rgb[(axis < 2) & (lz < -half[:, 2] + 0.12)] = [0.12, 0.12, 0.13]
    lamp = (
        (axis == 0)
        & (ly > half[:, 1] - 0.45)
        & (ly < half[:, 1] - 0.08)
        & (lz > half[:, 2] - 0.3)
        & (lz < half[:, 2] - 0.08)
    )
    rgb[lamp & positive] = [0.95, 0.95, 0.88]
    rgb[lamp & ~positive] = [0.75, 0.05, 0.04]
    refl[lamp] = 0.9


def _car_cabin(
    rgb: FloatArray, refl: FloatArray, half: FloatArray, axis: IntArray, local: FloatArray
) -> None:
    """Dark glass between painted pillars on the sides, front and back; painted roof."""
    refl[:] = 0.25 + 0.3 * rgb.mean(axis=1)
    lx, ly, lz = np.abs(local[:, 0]), np.abs(local[:, 1]), local[:, 2]
    pillar = np.where(axis == 1, (lx > half[:, 0] - 0.12) | (lx < 0.05), ly > half[:, 1] - 0.1)
    glass = (axis < 2) & ~pillar & (lz < half[:, 2] - 0.05)
    sheen = np.clip((lz[glass] + half[glass, 2]) / (2.0 * half[glass, 2]), 0.0, 1.0)
    rgb[glass] = np.array([0.07, 0.09, 0.12]) + sheen[:, None] * np.array([0.12, 0.14, 0.17])
    refl[glass] = 0.04


def face_light(boxes: BoxArray) -> FloatArray:
    """Lambert light factor of each face of each box, shape (N, 6) (index: face code)."""
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    along = c * SUN_DIR[0] + s * SUN_DIR[1]
    across = -s * SUN_DIR[0] + c * SUN_DIR[1]
    up = np.full_like(along, SUN_DIR[2])
    n_dot_sun = np.stack([-along, along, -across, across, -up, up], axis=1)
    return np.asarray(AMBIENT + DIFFUSE * np.clip(n_dot_sun, 0.0, None))


def shade_boxes(
    boxes: BoxArray, ids: IntArray, face: npt.NDArray[np.int8], local: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Colour (M, 3) and lidar reflectivity (M,) of hits on boxes ``ids`` at box-frame ``local``."""
    mat = boxes.material[ids]
    rgb = np.empty((ids.size, 3))
    refl = np.full(ids.size, 0.15)
    for m in (sc.WALL, sc.CAR_BODY, sc.CAR_CABIN, sc.TYRE, sc.LEAVES, sc.TRUNK):
        sel = np.flatnonzero(mat == m)
        if sel.size == 0:
            continue
        b = ids[sel]
        c, r, loc = boxes.colour[b], refl[sel], local[sel]
        hf, ax, pos = boxes.half[b], face[sel].astype(np.int64) // 2, (face[sel] % 2) == 1
        if m == sc.WALL:
            _walls(c, r, hf, ax, (ax == 2) & pos, loc, boxes.obj[b].astype(np.float64))
        elif m == sc.CAR_BODY:
            _car_body(c, r, hf, ax, pos, loc)
        elif m == sc.CAR_CABIN:
            _car_cabin(c, r, hf, ax, loc)
        elif m == sc.TYRE:
            hub = (ax == 1) & (np.hypot(loc[:, 0], loc[:, 2]) < 0.55 * hf[:, 0])
            c[:] = np.where(hub[:, None], [0.5, 0.5, 0.52], [0.05, 0.05, 0.05])
            r[:] = 0.04
        elif m == sc.LEAVES:
            cell = np.floor(loc * 3.0)
            obj = boxes.obj[b].astype(np.float64)
            c *= (0.7 + 0.45 * _hash(cell[:, 0] + obj, cell[:, 1], cell[:, 2]))[:, None]
            r[:] = 0.08
        rgb[sel], refl[sel] = c, r
    light = face_light(boxes).ravel()[ids * 6 + face]
    return rgb * light[:, None], refl
