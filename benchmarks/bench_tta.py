"""What test-time augmentation costs: seconds per frame for each ``--tta`` preset and each
shipped weight set, as ratios against one view of the default network in the same run.

    python benchmarks/bench_tta.py [--runs 5] [--fp16 on|off] [--json out.json]

One real CamVid frame (480 x 360, the held-out drive 0006R0; what ``drivingseg eval`` scores)
through :class:`~drivingseg.model.tta.TTASegmenter` (``off`` through the plain
``Segmenter``), class probabilities at the frame's size as ``eval`` asks for them; medians
over ``--runs`` calls after one warm-up call. Accuracy is not measured here: ``drivingseg
eval --tta`` gives it (``docs/MODEL.md``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import data_root, positive_int

from drivingseg.model.config import TTA_PRESETS
from drivingseg.model.infer import Segmenter, cpu_has_native_bf16
from drivingseg.model.tta import TTASegmenter, scoring_segmenter

FRAME = Path("camvid/train/0006R0_f02400.png")


def seconds_per_frame(seg: Segmenter | TTASegmenter, frame: np.ndarray, runs: int) -> float:
    seg(frame)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        seg(frame)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=5, help="timed calls per figure")
    parser.add_argument("--fp16", choices=("auto", "on", "off"), default="auto",
                        help="bfloat16 on this CPU (auto: where it is native)")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: all)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    path = data_root() / FRAME
    if not path.exists():
        print(f"skip: real data not found at {path} (set DRIVINGSEG_DATA)")
        return 0
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    frame = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
    fp16 = cpu_has_native_bf16() if args.fp16 == "auto" else args.fp16 == "on"
    rows = []
    base = None
    for weights in ("default", "ensemble"):
        for name, tta in TTA_PRESETS.items():
            seg = scoring_segmenter(weights, tta, fp16=fp16)
            s = seconds_per_frame(seg, frame, args.runs)
            base = s if base is None else base
            rows.append({"weights": weights, "tta": name, "views": tta.views,
                         "s_per_frame": round(s, 4), "ratio": round(s / base, 2)})
            print(f"{weights:<9} {name:<11} {tta.views:>3} views  {1000 * s:8.1f} ms/frame  "
                  f"{s / base:5.1f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "frame": str(FRAME), "fp16": fp16, "threads": torch.get_num_threads(),
            "runs": args.runs,
            "python": sys.version.split()[0], "torch": torch.__version__, "rows": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
