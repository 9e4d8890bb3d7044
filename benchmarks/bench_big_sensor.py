"""Benchmark: the per-frame CPU work of the streaming graph on a modern vehicle's sensors.

Run as ``python benchmarks/bench_big_sensor.py [--runs N] [--json out.json]
[--write-mcap FILE.mcap --frames N]``. Single thread (BLAS/OpenMP and torch limited to
one). The sensors: real KITTI raw frames (``2011_09_26_drive_0000_sync``) upscaled to a
1920 x 1200 camera, and real scans made 240,000 points (a 128-beam lidar at 10 Hz) by
stacking copies jittered by 2 cm. For each rewritten hot path, the path it replaced runs
in the same run on the same input, its result is checked equal first, and the ratio
old / new of median times is printed:

* ``colourise`` (recorder and video writer, each frame): OpenCV lookup table and masked
  copy against numpy's palette gather and boolean-mask assignment;
* the segmenter's CPU finishing (``model.finish.finish_numpy`` as the node calls it, with the
  car probability): plane-by-plane resize and arg-max against interleaved H x W x C logits
  and ``argmax(axis=2)``;
* ``points_from_pointcloud2`` (the lidar source, each scan): one float32 gather against
  field-by-field copies;
* region proposals (``ProposalNode.on_mask``'s work: the scan projected at the mask's size
  and ``propose_regions`` on the network's mask and car probability of the frame): the
  vectorised clustering, pixel assignment and road-plane fit against the loops they
  replaced (``tests/support/proposals_reference.py``), same detections checked first;
* the MCAP recorder (``McapRecorder.on_mask``: image, mask and jpeg overlay, zstd chunks,
  to a file in a temporary folder), its ``image_format`` raw (rgb8 ``Image``, the default)
  against jpeg (``CompressedImage`` at ``jpeg_quality`` 85): the mean over ``--runs``
  frames, since a chunk is compressed only when it fills.

``--write-mcap`` also writes those frames as a ROS 2 MCAP (JPEG ``CompressedImage``,
``PointCloud2``, ``CameraInfo``, ``/tf_static``; frames repeat the 30 of the drive) to
replay through the graph: ``drivingseg replay FILE.mcap [--fast]``. Skips with a message
when the shared KITTI raw drive is absent.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import REPO, data_root, median_ms, positive_int  # noqa: E402

from drivingseg.detect.proposals import LidarInImage, propose_regions  # noqa: E402
from drivingseg.fusion.projection import scale_rig  # noqa: E402
from drivingseg.model.checkpoint import default_weights  # noqa: E402
from drivingseg.model.finish import finish_numpy  # noqa: E402
from drivingseg.model.infer import RunOptions, Segmenter, cpu_has_native_bf16  # noqa: E402
from drivingseg.node.graph import Graph  # noqa: E402
from drivingseg.node.messages import Mask, Timing  # noqa: E402
from drivingseg.node.outputs import PALETTE_RGB, colourise  # noqa: E402
from drivingseg.node.recorder import McapRecorder  # noqa: E402
from drivingseg.outputs.mcap import Ros2McapWriter  # noqa: E402
from drivingseg.sensors import open_recording  # noqa: E402
from drivingseg.sensors.frames import CameraFrame, LidarScan  # noqa: E402
from drivingseg.sensors.ros_msgs import points_from_pointcloud2  # noqa: E402
from drivingseg.sensors.ros_msgs_write import pointcloud2_to_msg  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))  # the replaced proposal steps, kept for the tests
from support.proposals_reference import reference_proposals  # noqa: E402

WIDTH, HEIGHT, POINTS = 1920, 1200, 240_000


def big_frame(image: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC))


def dense_scan(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``points`` and jittered copies, POINTS of them, in azimuth order as a lidar sends."""
    copies = [points]
    while sum(len(c) for c in copies) < POINTS:
        c = points.copy()
        c[:, :3] += rng.normal(0.0, 0.02, (len(points), 3)).astype(np.float32)
        copies.append(c)
    dense = np.concatenate(copies)[:POINTS]
    order = np.argsort(np.arctan2(dense[:, 1], dense[:, 0]), kind="stable")
    return np.ascontiguousarray(dense[order])


# --------------------------------------------------------------------- the old paths


def colourise_old(image_rgb: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    colours = PALETTE_RGB[np.minimum(class_ids, len(PALETTE_RGB) - 1)]
    blended = cv2.addWeighted(image_rgb, 0.5, colours, 0.5, 0.0)
    out = image_rgb.copy()
    sel = class_ids > 0
    out[sel] = blended[sel]
    return out


def finish_old(logits: torch.Tensor, height: int, width: int, class_prob: int
               ) -> tuple[np.ndarray, np.ndarray]:
    arr = np.ascontiguousarray(logits.float().permute(1, 2, 0).numpy())
    e_small = np.exp(arr - arr.max(axis=2, keepdims=True))
    small = np.ascontiguousarray(e_small[:, :, class_prob] / e_small.sum(axis=2))
    one = np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))
    arr = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)
    return arr.argmax(axis=2).astype(np.uint8), one


def points_old(msg: Any) -> np.ndarray:
    wanted = ["x", "y", "z", "intensity"]
    fields = {str(f.name): f for f in msg.fields}
    dtype = np.dtype({"names": wanted, "formats": ["<f4"] * 4,
                      "offsets": [int(fields[n].offset) for n in wanted],
                      "itemsize": int(msg.point_step)})
    records = np.ascontiguousarray(np.asarray(msg.data, np.uint8)).view(dtype).ravel()
    out = np.zeros((records.size, 4), dtype=np.float32)
    for col, name in enumerate(wanted):
        out[:, col] = records[name]
    out = out[np.isfinite(out[:, :3]).all(axis=1)]
    out[~np.isfinite(out[:, 3]), 3] = 0.0
    return out


def recorder_ms(image: np.ndarray, ids: np.ndarray, image_format: str, frames: int) -> float:
    """Mean ms a frame of the recorder node on ``frames`` masks of ``image`` (file closed,
    so every chunk's compression is counted)."""
    with tempfile.TemporaryDirectory() as tmp:
        rec = Graph().add(McapRecorder, "recorder", {
            "path": str(Path(tmp) / "masks.mcap"), "image_format": image_format,
            "detections": False})
        rec.setup()
        rec.ready()
        rec.open_outputs()  # the graph's last start-up step: creates the file
        t0 = time.perf_counter()
        for i in range(frames):
            stamp = (i + 1) * 100_000_000
            rec.on_mask(Mask(CameraFrame(stamp, image, index=i), ids, ("background", "road",
                                                                         "car"),
                             Timing(stamp, 0, 0), 0))
        rec.shutdown()
        return (time.perf_counter() - t0) * 1e3 / frames


# --------------------------------------------------------------------- runs


def write_mcap(drive: Path, out: Path, frames: int) -> None:
    """The big-sensor recording: JPEG frames, dense scans, CameraInfo, /tf_static."""
    rng = np.random.default_rng(0)
    with open_recording(drive) as rec, Ros2McapWriter(out) as writer:
        rig = rec.rig()
        assert rig is not None
        big = scale_rig(rig, WIDTH, HEIGHT)
        first = rec.camera(0).stamp_ns
        writer.write_tf_static(big.T_cam_velo, first)
        for i in range(frames):
            stamp = first + i * 100_000_000
            frame = CameraFrame(stamp, big_frame(rec.camera(i % len(rec)).image), index=i)
            scan = LidarScan(stamp + 2_000_000, dense_scan(rec.lidar(i % len(rec)).points, rng))
            writer.write_compressed_image("/camera/image_color/compressed", frame,
                                          frame_id=big.camera_frame)
            writer.write_camera_info("/camera/camera_info", big.camera, stamp)
            writer.write_pointcloud("/lidar/points", scan, frame_id=big.lidar_frame)
    print(f"wrote {out}: {frames} frames of {WIDTH}x{HEIGHT} JPEG and {POINTS} points")


def measure(drive: Path, runs: int) -> dict[str, dict[str, float]]:
    with open_recording(drive) as rec:
        image = big_frame(rec.camera(0).image)
        points = dense_scan(rec.lidar(0).points, np.random.default_rng(0))
        rig = rec.require_rig()  # at its calibrated size: proposals scale it, as the node does
    seg = Segmenter(default_weights(), fp16=cpu_has_native_bf16(),
                    options=RunOptions(channels_last=True, trace=True))
    seg._prepare(image, None)
    logits = seg.logits().clone()
    ids, one = finish_old(logits, HEIGHT, WIDTH, 2)
    new = finish_numpy(logits, HEIGHT, WIDTH, False, 2)
    assert np.array_equal(new.class_ids, ids) and np.array_equal(new.class_prob, one)
    assert np.array_equal(colourise(image, ids), colourise_old(image, ids))
    msg = pointcloud2_to_msg(LidarScan(0, points))
    assert np.array_equal(points_from_pointcloud2(msg, "bench"), points_old(msg))
    car_prob = np.asarray(new.class_prob)

    def proposals() -> object:
        lidar = LidarInImage.from_scan(points, rig, (WIDTH, HEIGHT))
        return propose_regions(new.class_ids, car_prob, lidar)

    def proposals_old() -> object:
        with reference_proposals():
            return proposals()

    assert proposals() == proposals_old()
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "region proposals": (proposals_old, proposals),
        "colourise": (lambda: colourise_old(image, ids), lambda: colourise(image, ids)),
        "segmenter finishing": (lambda: finish_old(logits, HEIGHT, WIDTH, 2),
                                lambda: finish_numpy(logits, HEIGHT, WIDTH, False, 2)),
        "points_from_pointcloud2": (lambda: points_old(msg),
                                    lambda: points_from_pointcloud2(msg, "bench")),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (old, new_fn) in cases.items():
        old_ms, new_ms = median_ms(old, runs), median_ms(new_fn, runs)
        results[name] = {"old_ms": old_ms, "new_ms": new_ms, "speedup": old_ms / new_ms}
    recorder_ms(image, ids, "jpeg", 2)  # warm-up: OpenCV's encoder, the typestore
    raw_ms, jpeg_ms = recorder_ms(image, ids, "raw", runs), recorder_ms(image, ids, "jpeg", runs)
    results["recorder raw -> jpeg image"] = {"old_ms": raw_ms, "new_ms": jpeg_ms,
                                             "speedup": raw_ms / jpeg_ms}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-mcap", type=Path, help="also write the recording here")
    parser.add_argument("--frames", type=positive_int, default=60, help="frames of --write-mcap")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    drive = data_root() / "kitti_raw" / "2011_09_26" / "2011_09_26_drive_0000_sync"
    if not drive.is_dir():
        print(f"skipped: the KITTI raw drive is not at {drive}")
        return 0
    if args.write_mcap:
        write_mcap(drive, args.write_mcap, args.frames)
    results = measure(drive, args.runs)
    print(f"{WIDTH}x{HEIGHT} frame, {POINTS} points, median of {args.runs} runs, one thread")
    print(f"{'path':26s} {'old ms':>8s} {'new ms':>8s} {'speed-up':>9s}")
    for name, r in results.items():
        print(f"{name:26s} {r['old_ms']:8.2f} {r['new_ms']:8.2f} {r['speedup']:8.1f}x")
    if args.json:
        payload = {"frame": [WIDTH, HEIGHT], "points": POINTS, "runs": args.runs,
                   "paths": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
