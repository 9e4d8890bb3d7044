"""Segmentation beside a busy Python thread: eager torch, the TorchScript trace, onnxruntime.

The streaming node runs every node in a thread of one process. Eager PyTorch takes the GIL
back after each layer; when another thread is running Python it waits up to the
interpreter's switch interval (5 ms) each time. This times ``segmenter(frame)`` on one real
KITTI frame (the shipped weights at their input size, the node's CPU settings: bfloat16
where the CPU has it, channels-last) alone and with one pure-Python thread beside it, for
each way to run the network, in the same run; ratios are against eager alone. Each way's
class ids are checked against eager's before it is timed (``_common.check_agreement``).

    python benchmarks/bench_gil.py [--runs 9] [--weights default] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _common import BenchmarkError, check_agreement, data_root, median_s, positive_int
from run import FRAME  # benchmarks/run.py, beside this script

from drivingseg.model.backends import make_segmenter
from drivingseg.model.infer import RunOptions, cpu_has_native_bf16


def median_ms(call: Callable[[], object], runs: int) -> float:
    return 1e3 * median_s(call, runs, warmup=1)


def beside_python(call: Callable[[], object], runs: int) -> float:
    """``median_ms`` while another thread runs a pure-Python loop."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        return median_ms(call, runs)
    finally:
        stop.set()
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=9, help="timed calls per figure")
    parser.add_argument("--weights", default="default", help="default, ensemble or a path")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    path = data_root() / FRAME
    image = cv2.imread(str(path)) if path.is_file() else None
    if image is None:
        print(f"skipped: real KITTI frame not found at {path} (set DRIVINGSEG_DATA)")
        return 0
    frame = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    half = cpu_has_native_bf16()
    ways = {
        "torch eager": make_segmenter(args.weights, fp16=half,
                                      options=RunOptions(channels_last=True)),
        "torch trace (node default)": make_segmenter(
            args.weights, fp16=half, options=RunOptions(channels_last=True, trace=True)),
        "onnxruntime": make_segmenter(args.weights, backend="onnxruntime"),
    }
    rows = []
    base = 0.0
    base_ids: np.ndarray | None = None
    for name, seg in ways.items():
        def call(s: object = seg) -> object:
            return s(frame, probabilities=False, class_prob=2)  # type: ignore[operator]

        ids = call().class_ids  # type: ignore[attr-defined]
        base_ids = ids if base_ids is None else base_ids
        try:
            agreement = check_agreement(name, ids, base_ids)
        except BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        alone = median_ms(call, args.runs)
        busy = beside_python(call, max(3, args.runs // 2))
        base = base or alone
        rows.append({"way": name, "alone_ms": round(alone, 1), "beside_python_ms": round(busy, 1),
                     "alone_ratio": round(alone / base, 2), "beside_ratio": round(busy / base, 2),
                     "agreement": round(agreement, 4)})
        print(f"{name:28s} alone {alone:7.1f} ms ({alone / base:.2f}x)   beside a Python thread "
              f"{busy:7.1f} ms ({busy / base:.2f}x)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "weights": args.weights, "bfloat16": half, "runs": args.runs,
            "runs_beside_python": max(3, args.runs // 2), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
