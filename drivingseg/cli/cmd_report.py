"""``drivingseg report INPUT... --weights W --out DIR``: offline accuracy report.

Scores a checkpoint on one or many labelled inputs (CamVid, KITTI road, KITTI semantics,
synthetic drives, KITTI object folders with ``label_2`` boxes) in worker processes or on
Ray, and writes ``report.html``, ``report.json``, ``frames.csv`` and ``classes.csv`` to
``DIR``. Exit status 2 when some frames failed (the partial report is still written).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from drivingseg.cli._common import add_tta_argument, progress_in_steps

__all__ = ["add_parser", "check_distinct", "command_line", "format_summary", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "report", help="accuracy report (HTML, JSON, CSV) over labelled datasets",
        description="Score a U-Net checkpoint on labelled folders and KITTI object folders "
        "(segmentation, KITTI road MaxF/AP, car IoU by lidar range, box AP, latency) and "
        "write report.html, report.json, frames.csv and classes.csv.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="labelled folder (CamVid, KITTI road/semantics, synthetic drive, "
                        "images/ + labels/) or KITTI object folder with label_2/")
    p.add_argument("--weights", default="default",
                   help="checkpoint (.safetensors beside its .json), ensemble manifest (.json), "
                   "'default' (shipped) or 'ensemble' (3 shipped networks, ~3x the time)")
    p.add_argument("--out", required=True, help="report folder (created; files replaced)")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run on Ray: 'auto' starts a local instance, or a cluster address")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: the number of CPU cores)")
    p.add_argument("--gallery", type=int, default=12, metavar="K",
                   help="show the K worst frames (default 12; 0: no gallery)")
    p.add_argument("--limit", type=int, help="score only the first N frames of each input")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    add_tta_argument(p)
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The command as it could be typed again (the report's ``command`` field)."""
    parts = ["drivingseg", "report", *map(str, args.inputs), "--weights", str(args.weights),
             "--out", str(args.out)]
    for flag, value in (("--ray", args.ray), ("--workers", args.workers),
                        ("--gallery", args.gallery), ("--limit", args.limit),
                        ("--device", args.device), ("--tta", args.tta)):
        if value is not None and not (flag == "--tta" and value == "off"):
            parts += [flag, str(value)]
    return shlex.join(parts)


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def format_summary(report: dict[str, Any]) -> str:
    """A short table in the style of ``drivingseg eval``."""
    from drivingseg.model.evaluate import pct_text, tta_text

    n_frames = len(report["frames"])
    lines = [f"{n_frames} frames from {len(report['inputs'])} input(s), {report['executor']}, "
             f"{report['wall_s']:.1f} s",
             f"weights {report['weights']}, checkpoint input {report['input_size'][0]}x"
             f"{report['input_size'][1]}, resize {report.get('resize', 'stretch')}"
             + tta_text(report.get("tta"))]
    seg = report["segmentation"]
    if seg:
        lines.append(f"{'class':<12}{'IoU %':>8}{'prec %':>8}{'recall %':>10}{'F1 %':>8}")
        for name, s in seg["per_class"].items():
            lines.append(f"{name:<12}{_pct(s['iou']):>8}{_pct(s['precision']):>8}"
                         f"{_pct(s['recall']):>10}{_pct(s['f1']):>8}")
        averaged = ", ".join(seg.get("mean_iou_classes") or ["road", "car"])
        lines.append(f"mean IoU ({averaged}): {pct_text(seg['mean_iou_road_car'])}")
    if report["kitti_road"]:
        k = report["kitti_road"]
        lines.append(f"KITTI road (perspective): MaxF {pct_text(k['max_f'])}, "
                     f"AP {pct_text(k['ap'])}")
    if report["by_range"]:
        cells = [f"{b['lo_m']:g}-{b['hi_m']:g} m {_pct(b['iou']).strip()}"
                 for b in report["by_range"]["car"]]
        lines.append("car IoU by lidar range (%): " + ", ".join(cells))
    det = report["detection"]
    if det:
        from drivingseg.detect.gt import MODERATE_MIN_HEIGHT_PX

        aps = ", ".join(f"AP@{t} {pct_text(v)}" for t, v in det["ap"].items())
        lines.append(f"boxes ({'/'.join(det['classes'])}): {det['n_gt']} ground truth, "
                     f"{det['n_proposals']} proposals, {det['n_det']} scored at IoU "
                     f"{min(det['thresholds']):g} (unmatched ones on don't-care or under "
                     f"{MODERATE_MIN_HEIGHT_PX:g} px dropped); {aps}")
    total = report["latency"].get("total")
    if total:
        lines.append(f"latency per frame: mean {total['mean_ms']:.1f} ms, "
                     f"p90 {total['p90_ms']:.1f} ms")
    return "\n".join(lines)


def check_distinct(inputs: list[str]) -> None:
    """Refuse an INPUT given twice (``val`` and ``val/``, or a shell glob that matches it
    again): its frames were scored twice, counted twice in every metric and shown as two
    inputs of one folder."""
    import os

    from drivingseg.errors import ConfigError

    seen: dict[str, str] = {}
    for given in inputs:
        key = os.path.realpath(given)
        if key in seen:
            message = (f"INPUT {given!r} is INPUT {seen[key]!r} again; its frames would be "
                       "scored and counted twice")
            raise ConfigError(message, path=given)
        seen[key] = given


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from drivingseg.model.config import tta_preset
    from drivingseg.report.write import REPORT_FILES, make_report
    from drivingseg.signals import sigterm_interrupts

    check_distinct([str(i) for i in args.inputs])
    with sigterm_interrupts():  # SIGTERM stops the workers and keeps an earlier report
        report = make_report(args.inputs, args.weights, args.out, workers=args.workers,
                             ray=args.ray, gallery=args.gallery, limit=args.limit,
                             device=args.device, command=command_line(args),
                             tta=tta_preset(args.tta),
                             progress=lambda sizes, n: progress_in_steps(sizes, total=n,
                                                                        desc="report"))
    print(format_summary(report))
    out = Path(args.out)
    print("wrote " + ", ".join(str(out / name) for name in REPORT_FILES))
    failures = report["failures"]
    if failures:
        n = sum(len(f["frames"]) for f in failures)
        print(f"{n} frame(s) failed; the report covers the others:")
        for f in failures:
            names = ", ".join(f["frames"][:5]) + (" ..." if len(f["frames"]) > 5 else "")
            print(f"  input {f['input']} {f['path']} [{names}]: {f['error']}")
        return 2
    return 0
