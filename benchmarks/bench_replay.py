"""Replay the shared KITTI raw drive through the node graph: latency at 10 Hz, fps flat out.

Runs ``launch/replay_kitti.yaml`` (sources, sync, fusion, segmentation, car proposals,
latency tracker; outputs off unless ``--outputs``) on the 30-frame drive: at the recorded
10 Hz with keep-last queues, as fast as possible with blocking queues, and as fast as
possible with proposals off (no car probability, no proposals node), the baseline of the
proposals' cost measured in the same run, and both again with float32 in the NCHW layout
(``fp16:=off channels_last:=false``), the baseline of the node's default precision and
layout (bfloat16 + channels-last on a CPU with native bfloat16). Prints p50/p95/max
end-to-end latency, deadline misses against the 100 ms budget, achieved frames per second
and drops. Uses the shipped weights; without them an untrained model of the shipped
architecture and input size (``configs/train_default.yaml``) is timed instead (the cost of
a forward pass does not depend on the weight values).

``--concurrency`` also measures what decided threads over processes: the work of the graph
without proposals done sequentially in one thread with the segmentation node's settings
(compared with "fast, no proposals"), and the cost of moving one frame's messages to another
process and back through a ``multiprocessing`` queue.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _common import REPO, data_root

DRIVE = ("kitti_raw", "2011_09_26", "2011_09_26_drive_0000_sync")


def weights_or_untrained(weights: str, tmp: Path) -> tuple[str, str]:
    """(weights path, description); an untrained stand-in when the shipped ones are missing."""
    from drivingseg.model.checkpoint import resolve_weights, save_checkpoint

    path = resolve_weights(weights)
    if path.is_file():
        return str(path), f"{path.name}"
    from drivingseg.model.config import InputSpec, ModelConfig
    from drivingseg.model.unet import UNet

    cfg = yaml.safe_load((REPO / "configs" / "train_default.yaml").read_text())
    config = ModelConfig(**cfg["model"])
    spec = InputSpec(width=cfg["input"]["width"], height=cfg["input"]["height"])
    saved = save_checkpoint(tmp / "untrained", UNet(config).eval(), config, spec)
    return str(saved), f"untrained stand-in ({path.name} missing)"


def replay(
    drive: Path, weights: str, fast: bool, outputs: bool, out: Path, num_threads: int,
    proposals: bool = True, float32: bool = False,
) -> dict[str, Any]:
    from drivingseg.node.latency import LatencyTracker
    from drivingseg.node.launch import build_graph, load_launch

    desc = load_launch("replay_kitti", {
        "input": str(drive), "weights": weights, "rate": 0.0 if fast else 1.0,
        "overflow": "block" if fast else "drop_oldest", "out_dir": str(out),
        "record": outputs, "masks": outputs, "video": outputs, "live": False, "status": False,
        "num_threads": num_threads, "proposals": proposals,
        **({"fp16": "off", "channels_last": False} if float32 else {}),
    })
    graph = build_graph(desc)
    for node in graph.nodes:
        if isinstance(node, LatencyTracker):
            node.p["summary"] = False
    graph.setup()
    seg = next(n for n in graph.nodes if n.type_name == "segmentation")
    spec = seg.segmenter.spec  # type: ignore[attr-defined]
    graph.run(handle_signals=False)
    tracker = next(n for n in graph.nodes if isinstance(n, LatencyTracker))
    assert tracker.report is not None
    report = tracker.report.as_dict()
    report["input_size"] = f"{spec.width}x{spec.height}"
    prop = next((n for n in graph.nodes if n.type_name == "proposals"), None)
    if prop is not None:
        report["proposals_ms"] = prop.latency_ms()["proposals"]  # type: ignore[attr-defined]
    return report


def node_warm_up_calls() -> int:
    """How many calls the segmentation node runs before the first frame (its ``_warm_up``):
    the trace is optimised over the first few calls, so the loop warms up as much."""
    from drivingseg.node.processing import SegmentationNode

    calls: int = inspect.signature(SegmentationNode._warm_up).parameters["calls"].default
    return calls


def sequential_fps(drive: Path, weights: str, num_threads: int) -> float:
    """The work of the graph without proposals (read camera and lidar, segment) done one
    after the other, with the segmentation node's defaults: bfloat16 where the CPU has it,
    channels-last, the TorchScript trace, ``num_threads`` torch threads, the node's warm-up."""
    import torch

    from drivingseg.model.infer import RunOptions, Segmenter, cpu_has_native_bf16
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    if num_threads:
        torch.set_num_threads(num_threads)
    seg = Segmenter(weights, device="cpu", fp16=cpu_has_native_bf16(),
                    options=RunOptions(channels_last=True, trace=True))
    with KittiRawDrive(drive) as d:
        for _ in range(node_warm_up_calls()):  # as the node does before frame 0
            seg(d.camera(0).image, None, probabilities=False)
        n = len(d)
        start = time.perf_counter()
        for i in range(n):
            cam, _ = d.camera(i), d.lidar(i)
            seg(cam.image, None, probabilities=False)
        return n / (time.perf_counter() - start)


def _echo(q_in: Any, q_out: Any) -> None:
    while (item := q_in.get()) is not None:
        q_out.put(item)


def ipc_ms_per_frame(drive: Path, frames: int = 10) -> float:
    """One-way cost of moving a frame's camera image, lidar scan and mask to a process."""
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    with KittiRawDrive(drive) as d:
        items = [(d.camera(i), d.lidar(i), np.zeros((375, 1242), np.uint8)) for i in range(frames)]
    ctx = mp.get_context("fork")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_echo, args=(q_in, q_out))
    proc.start()
    q_in.put(items[0])
    q_out.get()
    start = time.perf_counter()
    for item in items:
        q_in.put(item)
        q_out.get()
    elapsed = time.perf_counter() - start
    q_in.put(None)
    proc.join()
    return elapsed / frames / 2 * 1e3


def ratios(results: dict[str, dict[str, Any]], sequential: float | None = None
           ) -> dict[str, float]:
    """The throughput ratios against the baselines of the same run (printed and in the JSON):
    proposals on / off, the node's default precision and layout / float32 NCHW and, given
    the sequential loop's fps, the threaded graph without proposals / that loop."""
    fast = results["as fast as possible"]["fps"]
    bare = results["fast, no proposals"]["fps"]
    out = {"proposals_on_vs_off": fast / bare,
           "default_precision_vs_float32": fast / results["fast, float32"]["fps"]}
    if sequential is not None:
        out["threaded_vs_sequential"] = bare / sequential
    return out


def line(name: str, r: dict[str, Any]) -> str:
    e2e = r["latency_ms"]["e2e"]
    inf = r["latency_ms"]["inference"]
    return (
        f"{name:<14} {r['masks']:>3}/{r['frames_in']:<3} masks  {r['fps']:5.1f} fps  e2e p50 "
        f"{e2e['p50']:6.1f}  p95 {e2e['p95']:6.1f}  max {e2e['max']:6.1f} ms  inference p50 "
        f"{inf['p50']:5.1f} ms  misses {r['deadline_misses']:>2}  dropped {r['dropped']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--outputs", action="store_true", help="MCAP, PNGs and video on too")
    parser.add_argument("--concurrency", action="store_true",
                        help="also time the sequential loop and the cost of processes")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch intra-op threads of the segmentation node (0 = torch's)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    drive = data_root().joinpath(*DRIVE)
    if not drive.is_dir():
        print(f"skip: {drive} not found (set DRIVINGSEG_DATA)")
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, what = weights_or_untrained(args.weights, tmp)
        load = os.getloadavg()
        outputs = "on" if args.outputs else "off"
        print(f"drive {drive.name}, weights {what}, {os.cpu_count()} CPUs, load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, outputs {outputs}, torch threads "
              f"{args.num_threads or 'default'}")
        results = {
            "10 Hz": replay(drive, weights, False, args.outputs, tmp / "paced",
                            args.num_threads),
            "as fast as possible": replay(drive, weights, True, args.outputs, tmp / "fast",
                                          args.num_threads),
            "fast, no proposals": replay(drive, weights, True, args.outputs, tmp / "bare",
                                         args.num_threads, proposals=False),
            "10 Hz, float32": replay(drive, weights, False, args.outputs, tmp / "fp32",
                                     args.num_threads, float32=True),
            "fast, float32": replay(drive, weights, True, args.outputs, tmp / "fp32fast",
                                    args.num_threads, float32=True),
        }
        print(f"model input {results['10 Hz']['input_size']}, budget 100 ms")
        for name, r in results.items():
            print(line(name, r))
            for where, n in r["drops"].items():
                print(f"    dropped {n} at {where}")
            if "proposals_ms" in r:
                p = r["proposals_ms"]
                print(f"    proposals stage p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms")
        r = ratios(results)
        print(f"throughput with proposals / without: {r['proposals_on_vs_off']:.2f}")
        print(f"throughput with the node's default precision and layout / float32 NCHW: "
              f"{r['default_precision_vs_float32']:.2f}")
        figures: dict[str, Any] = {"weights": what, "load_average": load,
                                   "outputs": args.outputs, "num_threads": args.num_threads,
                                   **results}
        if args.concurrency:
            seq = sequential_fps(drive, weights, args.num_threads)
            ipc = ipc_ms_per_frame(drive)
            r = ratios(results, seq)
            fast = results["fast, no proposals"]["fps"]
            print(f"sequential loop (same work, one thread): {seq:5.1f} fps; threaded graph "
                  f"without proposals {fast:5.1f} fps ({r['threaded_vs_sequential']:.2f}x)")
            print(f"moving one frame's messages to another process: {ipc:.1f} ms one way "
                  f"(pickle + pipe), paid at every process boundary")
            figures.update(sequential_fps=seq, ipc_ms_per_frame=ipc)
        figures["ratios"] = r
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
