"""Benchmark: one real KITTI scan (~114k points) to a 375x1242 sparse depth image.

Run as ``python benchmarks/bench_projection.py [--runs N] [--json out.json]``. Single
thread (BLAS/OpenMP and torch limited to one). Reports, measured in the same run:

* median time per scan of ``depth_image`` (projection + culling + z-buffer + image),
  numpy and torch-CPU;
* a straightforward per-point Python loop, timed on a subset and extrapolated per point;
* the memory-bound floor: bytes that must move (read the Nx4 float32 scan, write the
  float32 depth image) divided by the copy bandwidth of a large numpy copy.

Before anything is timed, the torch input's image is checked equal to the numpy input's,
and the Python loop's image to ``depth_image``'s on the loop's subset; a difference stops the
run with status 1.

Skips with a message when the shared KITTI raw drive is absent.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import data_root, median_ms, positive_int  # noqa: E402

from drivingseg.calibration.kitti import load_kitti_raw_rig  # noqa: E402
from drivingseg.calibration.types import Rig  # noqa: E402
from drivingseg.fusion.zbuffer import depth_image  # noqa: E402

LOOP_SUBSET = 20000


def python_loop(points: np.ndarray, rig: Rig) -> np.ndarray:
    """The straightforward version: one point at a time, nearest kept in a 2-D list."""
    M = rig.lidar_to_pixel_matrix().tolist()
    w, h = rig.camera.width, rig.camera.height
    img = [[0.0] * w for _ in range(h)]
    for x, y, z, _ in points.tolist():
        d = M[2][0] * x + M[2][1] * y + M[2][2] * z + M[2][3]
        if d <= 0.5:
            continue
        u = (M[0][0] * x + M[0][1] * y + M[0][2] * z + M[0][3]) / d
        v = (M[1][0] * x + M[1][1] * y + M[1][2] * z + M[1][3]) / d
        c, r = math.floor(u + 0.5), math.floor(v + 0.5)
        if 0 <= c < w and 0 <= r < h and (img[r][c] == 0.0 or d < img[r][c]):
            img[r][c] = d
    return np.array(img, dtype=np.float32)


def copy_bandwidth_gbs(n_bytes: int = 256 * 2**20, runs: int = 5) -> float:
    """Bytes moved per second (read + write) by a large numpy copy."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(runs))
    return 2 * n_bytes / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=50, help="timed runs per variant")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    root = data_root() / "kitti_raw" / "2011_09_26"
    scan_path = root / "2011_09_26_drive_0000_sync" / "velodyne_points" / "data" / "0000000000.bin"
    if not scan_path.is_file():
        print(f"skipped: real KITTI scan not found at {scan_path}")
        return 0
    rig = load_kitti_raw_rig(root)
    points = np.fromfile(scan_path, dtype=np.float32).reshape(-1, 4)
    n = len(points)
    w, h = rig.camera.width, rig.camera.height

    import torch

    torch.set_num_threads(1)
    tpoints = torch.from_numpy(points)

    ref = depth_image(points, rig)
    if not np.array_equal(np.asarray(depth_image(tpoints, rig)), ref):
        print("error: depth_image of the torch input differs from the numpy input's",
              file=sys.stderr)
        return 1
    subset = points[:LOOP_SUBSET]
    loop_img = python_loop(subset, rig)
    if not np.allclose(loop_img, depth_image(subset, rig), atol=1e-4):
        print("error: the Python loop and depth_image disagree", file=sys.stderr)
        return 1

    t_numpy = median_ms(lambda: depth_image(points, rig), args.runs)
    t_torch = median_ms(lambda: depth_image(tpoints, rig), args.runs)
    t_loop_sub = statistics.median(_timed(lambda: python_loop(subset, rig)) for _ in range(3))
    t_loop = t_loop_sub * 1e3 * n / len(subset)

    moved = n * 16 + w * h * 4
    bandwidth = copy_bandwidth_gbs()
    t_floor = moved / (bandwidth * 1e9) * 1e3

    rows = [
        ("points in scan", f"{n}"),
        ("pixels with depth", f"{int(np.count_nonzero(ref))}"),
        ("depth_image numpy, median ms", f"{t_numpy:.3f}"),
        ("depth_image torch-cpu, median ms", f"{t_torch:.3f}"),
        ("torch-cpu / numpy", f"{t_torch / t_numpy:.2f}x"),
        (f"python loop ms (timed on {len(subset)} pts, x{n / len(subset):.2f})", f"{t_loop:.1f}"),
        ("speed-up numpy vs loop", f"{t_loop / t_numpy:.0f}x"),
        ("bytes moved (scan read + float32 image write)", f"{moved}"),
        ("copy bandwidth GB/s (read+write, 256 MiB copy)", f"{bandwidth:.2f}"),
        ("memory-bound floor ms", f"{t_floor:.3f}"),
        ("numpy / floor", f"{t_numpy / t_floor:.1f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"bench_projection: {scan_path.name} -> {h}x{w} depth image, 1 thread, {args.runs} runs")
    for key, value in rows:
        print(f"  {key:<{width}}  {value:>10}")
    if args.json is not None:
        result = {
            "points": n,
            "pixels_with_depth": int(np.count_nonzero(ref)),
            "image": [h, w],
            "runs": args.runs,
            "numpy_ms": t_numpy,
            "torch_cpu_ms": t_torch,
            "python_loop_ms_extrapolated": t_loop,
            "python_loop_subset_points": len(subset),
            "speedup_numpy_vs_loop": t_loop / t_numpy,
            "torch_cpu_vs_numpy": t_torch / t_numpy,
            "bytes_moved": moved,
            "copy_bandwidth_gbs": bandwidth,
            "floor_ms": t_floor,
            "numpy_vs_floor": t_numpy / t_floor,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
