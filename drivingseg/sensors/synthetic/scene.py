"""The synthetic world: a curved road with markings, cars, buildings and trees as boxes.

Everything is a function of the seed: the road is a chain of straight and circular
segments drawn from one random stream, and the objects of each 30 m stretch of road are
drawn from a stream seeded by ``(seed, stretch)``, so a longer drive only adds stretches
and never changes the ones before. Some straights have a junction: a cross street with
its own buildings, parked cars and a car waiting to turn, cleared of the main road's
objects. Solid objects are upright oriented boxes (a car is a body, a cabin and four
wheels); the ground is the plane ``z = 0`` whose material follows from the distance to
the nearest road centreline (:mod:`.road`). World frame: x, y on the ground, z up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from drivingseg.sensors.synthetic.boxes import BoxArray, box_footprints
from drivingseg.sensors.synthetic.road import (
    CAR,
    CAR_BODY,
    CAR_CABIN,
    KERB_WIDTH_M,
    LANE_OFFSET_M,
    LEAVES,
    PARK_OFFSET_M,
    ROAD_HALF_WIDTH_M,
    ROAD_START_S,
    SIDEWALK_END_M,
    STRETCH_M,
    TRUNK,
    TYRE,
    WALL,
    Road,
)

__all__ = ["BoxArray", "CarSpec", "World", "box_footprints", "build_world"]

CROSS_HALF_M = 80.0
"""Half length of a cross street."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


_CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.86],
        [0.62, 0.63, 0.66],
        [0.08, 0.08, 0.09],
        [0.3, 0.31, 0.33],
        [0.62, 0.08, 0.07],
        [0.1, 0.2, 0.45],
        [0.15, 0.3, 0.6],
        [0.2, 0.33, 0.22],
        [0.78, 0.7, 0.5],
        [0.85, 0.65, 0.1],
        [0.45, 0.1, 0.12],
        [0.93, 0.93, 0.9],
    ]
)
_WALL_COLOURS = np.array(
    [
        [0.76, 0.68, 0.55],
        [0.62, 0.33, 0.25],
        [0.7, 0.7, 0.68],
        [0.86, 0.84, 0.78],
        [0.85, 0.78, 0.55],
        [0.55, 0.5, 0.45],
        [0.72, 0.55, 0.45],
    ]
)


@dataclass(frozen=True, eq=False)
class CarSpec:
    """One car: where it is on the road at ``t = 0``, its motion and its parts.

    ``s_m(t) = s0_m + speed_mps * t`` along the road at lateral offset ``lat_m``;
    ``facing`` is +1 along increasing ``s``, -1 against. Parts are boxes in the car frame
    (x forward, y left, z up, origin on the ground under the car's centre).
    """

    car_id: int
    s0_m: float
    lat_m: float
    speed_mps: float
    facing: int
    size_lwh: FloatArray
    part_center: FloatArray
    part_half: FloatArray
    part_material: IntArray
    colour: FloatArray
    road: int = 0


def _make_car(
    rng: np.random.Generator,
    car_id: int,
    s0: float,
    lat: float,
    speed: float,
    facing: int,
    length: float,
) -> CarSpec:
    """A sedan or a van of random proportions and colour, ``length`` metres long."""
    width = rng.uniform(1.7, 1.95)
    van = rng.random() < 0.2
    wheel_r = rng.uniform(0.3, 0.36)
    body_z0 = 0.28
    body_h = rng.uniform(1.1, 1.4) if van else rng.uniform(0.55, 0.75)
    cab_len = length * (rng.uniform(0.35, 0.5) if van else rng.uniform(0.45, 0.58))
    cab_h = rng.uniform(0.5, 0.7) if van else rng.uniform(0.42, 0.55)
    cab_x = length / 2 - cab_len / 2 - 0.15 if van else rng.uniform(-0.35, -0.05) * length / 2
    top = body_z0 + body_h
    wx = length / 2 - rng.uniform(0.7, 0.9)
    centers = [
        [0.0, 0.0, body_z0 + body_h / 2],
        [cab_x, 0.0, top + cab_h / 2],
    ]
    halves = [[length / 2, width / 2, body_h / 2], [cab_len / 2, width / 2 - 0.06, cab_h / 2]]
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            centers.append([sx * wx, sy * (width / 2 - 0.13), wheel_r])
            halves.append([wheel_r, 0.12, wheel_r])
    return CarSpec(
        car_id=car_id,
        s0_m=s0,
        lat_m=lat,
        speed_mps=speed,
        facing=facing,
        size_lwh=np.array([length, width, top + cab_h]),
        part_center=np.array(centers),
        part_half=np.array(halves),
        part_material=np.array([CAR_BODY, CAR_CABIN] + [TYRE] * 4, dtype=np.int64),
        colour=_CAR_COLOURS[rng.integers(len(_CAR_COLOURS))],
    )


def _road(seed: int, length_m: float) -> tuple[Road, list[float]]:
    """Segments until the road is ``length_m`` long after s = 0, and the junctions' ``s``.

    The first straight usually has a junction a few seconds ahead of the start; later
    straights of 50 m or more get one at their middle half of the time.
    """
    rng = np.random.default_rng([seed, 11])
    first_end = rng.uniform(60.0, 110.0)
    lengths = [first_end - ROAD_START_S]
    curvs = [0.0]
    junctions = [float(rng.uniform(35.0, first_end - 20.0))] if rng.random() < 0.85 else []
    heading = 0.0
    while ROAD_START_S + sum(lengths) < length_m:
        angle = np.deg2rad(rng.uniform(12.0, 40.0))
        sign = -np.sign(heading) if abs(heading) > np.deg2rad(25) else rng.choice([-1.0, 1.0])
        radius = rng.uniform(110.0, 260.0)
        straight = rng.uniform(30.0, 90.0)
        if straight >= 50.0 and rng.random() < 0.5:
            junctions.append(float(ROAD_START_S + sum(lengths) + radius * angle + straight / 2))
        lengths += [radius * angle, straight]
        curvs += [sign / radius, 0.0]
        heading += sign * angle
    return Road(np.array(lengths), np.array(curvs)), junctions


def _cross_road(main: Road, s_j: float) -> Road:
    """A straight street 300 m long crossing ``main`` at right angles at ``s_j`` (its s = 0)."""
    x, y, h = (float(v) for v in main.pose(s_j))
    hc = h + np.pi / 2
    start = (x - CROSS_HALF_M * np.cos(hc), y - CROSS_HALF_M * np.sin(hc), hc)
    return Road(np.array([2 * CROSS_HALF_M]), np.array([0.0]), start, -CROSS_HALF_M)


CROSS_CAR_ID_BASE = 100_000


def _number_cars(cars: list[CarSpec]) -> list[CarSpec]:
    """Ids independent of the drive's length: main-road cars count along the road, cross
    street ``j``'s from ``CROSS_CAR_ID_BASE + 100 * j`` (listed after every main-road car,
    their ids used to shift when a longer drive had more of those)."""
    count: dict[int, int] = {}
    out = []
    for car in cars:
        count[car.road] = n = count.get(car.road, -1) + 1
        base = CROSS_CAR_ID_BASE + 100 * car.road if car.road else 0
        out.append(replace(car, car_id=base + n))
    return out


class World:
    """Road, static boxes and cars of one seed; :meth:`boxes_at` poses the cars at a time."""

    def __init__(self, seed: int, length_m: float) -> None:
        self.seed = seed
        self.road, self.junction_s = _road(seed, length_m + 250.0)
        self.roads = [self.road] + [_cross_road(self.road, s) for s in self.junction_s]
        rng = np.random.default_rng([seed, 12])
        self.ego_speed_mps = float(rng.uniform(8.0, 11.0))
        self.oncoming_speed_mps = float(rng.uniform(8.0, 12.0))
        self.ahead_speed_mps = self.ego_speed_mps + float(rng.uniform(0.3, 1.2))
        statics: list[BoxArray] = []
        self.cars: list[CarSpec] = []
        n_stretch = int(np.ceil((length_m + 250.0 - ROAD_START_S) / STRETCH_M))
        for k in range(n_stretch):
            self._stretch(k, statics)
        for j in range(1, len(self.roads)):
            self._clear_junction(j, statics)
            self._cross_street(j, statics)
        self.cars = _number_cars(self.cars)
        self.static = BoxArray.concat(statics)
        self._part_count = np.array([len(c.part_material) for c in self.cars])

    def _clear_junction(self, j: int, statics: list[BoxArray]) -> None:
        """Remove what stands on cross street ``j``: boxes near it and main-road parked cars."""
        cross = self.roads[j]
        c, s = np.cos(cross.h0[0]), np.sin(cross.h0[0])
        for k, boxes in enumerate(statics):
            corners = box_footprints(boxes)
            lat = -(corners[..., 0] - cross.x0[0]) * s + (corners[..., 1] - cross.y0[0]) * c
            along = (corners[..., 0] - cross.x0[0]) * c + (corners[..., 1] - cross.y0[0]) * s
            blocked = (np.abs(lat).min(axis=1) < SIDEWALK_END_M + 0.3) | (
                np.sign(lat).min(axis=1) != np.sign(lat).max(axis=1)
            )
            blocked &= (along.max(axis=1) > 0.0) & (along.min(axis=1) < 2 * CROSS_HALF_M)
            statics[k] = boxes.subset(~blocked)
        s_j = self.junction_s[j - 1]
        clear = ROAD_HALF_WIDTH_M + KERB_WIDTH_M + 1.0
        self.cars = [
            car
            for car in self.cars
            if car.road != 0
            or car.speed_mps != 0.0
            or abs(car.s0_m - s_j) > clear + car.size_lwh[0] / 2
        ]

    def _cross_street(self, j: int, statics: list[BoxArray]) -> None:
        """Buildings and parked cars along cross street ``j`` and a car waiting to turn."""
        rng = np.random.default_rng([self.seed, 14, j])
        cross = self.roads[j]
        for side in (-1.0, 1.0):
            for s_a in (-CROSS_HALF_M, -CROSS_HALF_M + 24.0, 32.0, 56.0):
                statics.append(
                    self._buildings(rng, s_a, s_a + 24.0, side, 100_000 + 100 * j, cross)
                )
            for s_car in (-1.0, 1.0):
                s = s_car * rng.uniform(18.0, 30.0)
                length = rng.uniform(3.9, 4.8)
                self._add_car(rng, s, side * PARK_OFFSET_M, 0.0, int(side * -1), length, j)
        length = rng.uniform(3.9, 4.8)
        s = -(ROAD_HALF_WIDTH_M + KERB_WIDTH_M + 1.2 + length / 2)
        self._add_car(rng, s, -LANE_OFFSET_M, 0.0, 1, length, j)

    def _stretch(self, k: int, statics: list[BoxArray]) -> None:
        rng = np.random.default_rng([self.seed, 13, k])
        s_a = ROAD_START_S + k * STRETCH_M
        s_b = s_a + STRETCH_M
        for side in (-1.0, 1.0):
            s = s_a + rng.uniform(0.5, 4.0)
            while True:
                length = rng.uniform(3.8, 4.9)
                if s + length > s_b:
                    break
                if rng.random() < 0.7:
                    facing = 1 if side < 0 or rng.random() < 0.3 else -1
                    self._add_car(rng, s + length / 2, side * PARK_OFFSET_M, 0.0, facing, length)
                s += length + (rng.uniform(0.4, 2.5) if rng.random() < 0.7 else rng.uniform(5, 12))
            if rng.random() < 0.6:
                statics.append(self._buildings(rng, s_a, s_b, side, k))
            else:
                statics.append(self._trees(rng, s_a, s_b, side, k))
        if rng.random() < 0.4:
            s = s_a + rng.uniform(5.0, 25.0)
            if s > 14.0:
                speed = self.ahead_speed_mps
                self._add_car(rng, s, -LANE_OFFSET_M, speed, 1, rng.uniform(3.9, 4.8))
        if rng.random() < 0.5:
            s = s_a + rng.uniform(5.0, 25.0)
            self._add_car(
                rng, s, LANE_OFFSET_M, -self.oncoming_speed_mps, -1, rng.uniform(3.9, 4.8)
            )

    def _add_car(
        self,
        rng: np.random.Generator,
        s: float,
        lat: float,
        speed: float,
        facing: int,
        length: float,
        road: int = 0,
    ) -> None:
        car = _make_car(rng, len(self.cars), s, lat, speed, facing, length)
        self.cars.append(replace(car, road=road))

    def _buildings(
        self,
        rng: np.random.Generator,
        s_a: float,
        s_b: float,
        side: float,
        k: int,
        road: Road | None = None,
    ) -> BoxArray:
        rows: list[tuple[float, float, float, float, float]] = []  # s, lat, len, depth, h
        s = s_a + rng.uniform(0.0, 2.0)
        while s < s_b - 6.0:
            length = min(rng.uniform(8.0, 16.0), s_b - s)
            depth = rng.uniform(8.0, 14.0)
            setback = SIDEWALK_END_M + rng.uniform(1.2, 3.0)
            rows.append(
                (
                    s + length / 2,
                    side * (setback + depth / 2),
                    length,
                    depth,
                    rng.uniform(6.0, 18.0),
                )
            )
            s += length + rng.uniform(0.5, 4.0)
        arr = np.array(rows)
        x, y, h = (road or self.road).pose(arr[:, 0], arr[:, 1])
        n = len(arr)
        colour = _WALL_COLOURS[rng.integers(len(_WALL_COLOURS), size=n)]
        return BoxArray(
            center=np.stack([x, y, arr[:, 4] / 2], axis=1),
            half=np.stack([arr[:, 2] / 2, arr[:, 3] / 2, arr[:, 4] / 2], axis=1),
            yaw=h,
            label=np.zeros(n, dtype=np.uint8),
            material=np.full(n, WALL, dtype=np.int64),
            colour=colour * rng.uniform(0.9, 1.05, size=(n, 1)),
            obj=-1 - (k * 1000 + np.arange(n) + (0 if side < 0 else 500)),
        )

    def _trees(
        self, rng: np.random.Generator, s_a: float, s_b: float, side: float, k: int
    ) -> BoxArray:
        """Trees (trunk plus two crossed canopy boxes), a hedge and a house further back."""
        centers, halves, yaws, mats, cols = [], [], [], [], []
        s = s_a + rng.uniform(1.0, 5.0)
        while s < s_b - 1.0:
            lat = side * rng.uniform(9.8, 11.5)
            x, y, h = (float(v) for v in self.road.pose(np.array(s), np.array(lat)))
            trunk_h = rng.uniform(1.8, 3.0)
            crown = rng.uniform(1.2, 2.2)
            green = np.array([0.16, 0.36, 0.12]) * rng.uniform(0.7, 1.3)
            centers += [[x, y, trunk_h / 2], [x, y, trunk_h + crown], [x, y, trunk_h + crown]]
            halves += [
                [0.15, 0.15, trunk_h / 2],
                [crown, crown, crown],
                [crown * 0.9, crown * 0.9, crown * 1.15],
            ]
            yaws += [h, h, h + np.pi / 4]
            mats += [TRUNK, LEAVES, LEAVES]
            cols += [[0.3, 0.22, 0.14], green, green * 0.9]
            s += rng.uniform(5.0, 9.0)
        s_mid = (s_a + s_b) / 2
        x, y, h = (float(v) for v in self.road.pose(np.array(s_mid), np.array(side * 9.3)))
        centers.append([x, y, 0.45])
        halves.append([STRETCH_M / 2 - 0.5, 0.3, 0.45])
        yaws.append(h)
        mats.append(LEAVES)
        cols.append([0.14, 0.3, 0.1])
        if rng.random() < 0.7:
            depth, height = rng.uniform(8.0, 12.0), rng.uniform(5.0, 9.0)
            lat = side * (rng.uniform(18.0, 24.0) + depth / 2)
            x, y, h = (float(v) for v in self.road.pose(np.array(s_mid), np.array(lat)))
            centers.append([x, y, height / 2])
            halves.append([rng.uniform(5.0, 10.0), depth / 2, height / 2])
            yaws.append(h)
            mats.append(WALL)
            cols.append(_WALL_COLOURS[rng.integers(len(_WALL_COLOURS))])
        n = len(yaws)
        return BoxArray(
            center=np.array(centers),
            half=np.array(halves),
            yaw=np.array(yaws),
            label=np.zeros(n, dtype=np.uint8),
            material=np.array(mats, dtype=np.int64),
            colour=np.array(cols),
            obj=-1 - (k * 1000 + np.arange(n) + (0 if side < 0 else 500)),
        )

    # --- poses at a time ------------------------------------------------------------

    def ego_pose(self, t_s: float) -> FloatArray:
        """4x4 ``T_world_ego`` at time ``t_s``: ego frame x forward, y left, z up, on the ground."""
        x, y, h = self.road.pose(self.ego_speed_mps * t_s, -LANE_OFFSET_M)
        T = np.eye(4)
        c, s = np.cos(float(h)), np.sin(float(h))
        T[:2, :2] = [[c, -s], [s, c]]
        T[:2, 3] = [float(x), float(y)]
        return T

    def car_poses(self, t_s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """World ``x, y, yaw`` of every car at time ``t_s``."""
        s = np.array([c.s0_m + c.speed_mps * t_s for c in self.cars])
        lat = np.array([c.lat_m for c in self.cars])
        on = np.array([c.road for c in self.cars])
        x, y, h = np.zeros(len(s)), np.zeros(len(s)), np.zeros(len(s))
        for r in np.unique(on):
            sel = on == r
            x[sel], y[sel], h[sel] = self.roads[r].pose(s[sel], lat[sel])
        flip = np.array([c.facing < 0 for c in self.cars])
        return x, y, np.where(flip, h + np.pi, h)

    def boxes_at(self, t_s: float) -> BoxArray:
        """Every box in the world at time ``t_s``: static ones, then all car parts."""
        x, y, yaw = self.car_poses(t_s)
        rep = self._part_count
        cx, cy, cyaw = np.repeat(x, rep), np.repeat(y, rep), np.repeat(yaw, rep)
        pc = np.concatenate([c.part_center for c in self.cars])
        c, s = np.cos(cyaw), np.sin(cyaw)
        centers = np.stack(
            [cx + c * pc[:, 0] - s * pc[:, 1], cy + s * pc[:, 0] + c * pc[:, 1], pc[:, 2]], axis=1
        )
        cars = BoxArray(
            center=centers,
            half=np.concatenate([c.part_half for c in self.cars]),
            yaw=cyaw,
            label=np.full(len(cyaw), CAR, dtype=np.uint8),
            material=np.concatenate([c.part_material for c in self.cars]),
            colour=np.repeat(np.array([c.colour for c in self.cars]), rep, axis=0),
            obj=np.repeat(np.arange(len(self.cars)), rep),
        )
        return BoxArray.concat([self.static, cars])


def build_world(seed: int, length_m: float) -> World:
    """The world of ``seed`` with road and objects at least ``length_m`` past the start."""
    return World(seed, length_m)
