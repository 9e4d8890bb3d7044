"""The report's ``read`` stage on a label image: one decode against the old two, in one run.

    python benchmarks/bench_report_read.py [--runs 5] [--frames 20] [--input DIR] [--json out.json]

``drivingseg report``, ``eval`` and training read every frame's label PNG with
:func:`drivingseg.model.data.read_labels`. It used to decode each file twice (once only to
check it whole, expanded to RGB, then again for its ids); it now decodes it once. This
times both on the first ``--frames`` labels of ``--input`` (default the real CamVid ``val``,
480 x 360; a ``drivingseg synth`` drive gives 1242 x 375 ones), the old path reproduced
here, after checking that both give the same ids. Single thread; medians of ``--runs``
passes over the frames, per frame, in CPU time (``time.process_time``: the figures hold on
a machine shared with other jobs, where wall time mostly measures the others).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from _common import BenchmarkError, data_root, positive_int

from drivingseg.model.data import LabelledFile, discover, map_label_ids, read_labels
from drivingseg.sensors.decode import decode_image


def read_labels_twice(file: LabelledFile) -> npt.NDArray[np.uint8]:
    """The old path of a single-channel label: decode_image for the checks, then imdecode."""
    data = file.label.read_bytes()
    decode_image(data, file.label)
    raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return map_label_ids(np.asarray(raw, dtype=np.uint8), file.layout, file.label)


def cpu_ms(call: Callable[[], object], runs: int) -> float:
    """Median CPU milliseconds of ``runs`` calls of ``call`` after one warm-up call."""
    call()
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        call()
        times.append(time.process_time() - t0)
    return 1e3 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=5, help="timed passes")
    parser.add_argument("--frames", type=positive_int, default=20, help="label images")
    parser.add_argument("--input", type=Path, help="labelled folder (default: CamVid val)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    root = args.input or data_root() / "camvid" / "val"
    if not root.is_dir():
        print(f"skip: real data not found at {root} (set DRIVINGSEG_DATA)")
        return 0
    cv2.setNumThreads(1)
    files = discover(root)[: args.frames]
    for f in files:
        if not np.array_equal(read_labels(f), read_labels_twice(f)):
            raise BenchmarkError(f"{f.label}: the one-decode ids differ from the old path's")
    old_ms = cpu_ms(lambda: [read_labels_twice(f) for f in files], args.runs) / len(files)
    new_ms = cpu_ms(lambda: [read_labels(f) for f in files], args.runs) / len(files)
    row = {"frames": len(files), "old_ms": round(old_ms, 3), "new_ms": round(new_ms, 3),
           "speedup": round(old_ms / new_ms, 2)}
    print(f"label read per frame ({len(files)} labels of {root}): two decodes {old_ms:.2f} ms, "
          f"one decode {new_ms:.2f} ms ({old_ms / new_ms:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
