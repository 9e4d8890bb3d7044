"""``drivingseg info PATH``: what a recording holds."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from drivingseg.cli._common import add_recording_args, check_camera, open_from_args
from drivingseg.sensors.base import STAMPS, RecordingInfo

__all__ = ["add_parser", "add_stamps_arg", "format_info", "run"]


def add_stamps_arg(parser: argparse.ArgumentParser) -> None:
    """``--stamps header|receive``: what stamps a bag's frames and scans."""
    parser.add_argument(
        "--stamps", choices=STAMPS, default="header",
        help="bag: stamp messages by their header stamps (default) or their receive times "
             "(sensors on clocks of their own, e.g. an Ouster on its internal oscillator)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "info",
        help="show what a recording holds (streams, counts, rates, time span)",
        description="Print the sensors or topics of a KITTI folder, bag or MCAP file: "
        "message counts, rates, duration and time span, and its calibration.",
    )
    p.add_argument("path", help="KITTI raw drive, KITTI object/road folder, ROS 1 .bag, "
                   "ROS 2 bag folder, .db3 or .mcap, or synthetic[:SEED]")
    add_recording_args(p)
    add_stamps_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _iso(stamp_ns: int | None) -> str:
    if stamp_ns is None:
        return "-"
    sec, ns = divmod(stamp_ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns:09d}Z"


def format_info(info: RecordingInfo, rig_line: str) -> str:
    """The human-readable table ``drivingseg info`` prints."""
    lines = [
        f"recording: {info.path}",
        f"format:    {info.format}",
        f"start:     {_iso(info.start_ns)}",
        f"end:       {_iso(info.end_ns)}",
        f"duration:  {info.duration_s:.3f} s",
        f"rig:       {rig_line}",
        "",
    ]
    header = ("stream", "kind", "type", "count", "rate", "duration")
    rows = [
        (
            s.name,
            s.kind,
            s.msgtype,
            str(s.count),
            "-" if s.rate_hz is None else f"{s.rate_hz:.2f} Hz",
            f"{s.duration_s:.3f} s",
        )
        for s in info.streams
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # SIGTERM is Ctrl-C (cli.main): the recording closes, a file-compressed bag's copy goes
    with open_from_args(args.path, args) as rec:
        rec.use_stamps(args.stamps)
        check_camera(rec, args.camera)
        info = rec.info()
        ambiguous = getattr(rec, "ambiguous_topics", {})
        rig = None if ambiguous else rec.rig()
        note = getattr(rec, "rig_note", "")  # a bag's: why no rig, or the /tf links it uses
    if ambiguous:
        rig_line = "not chosen: " + "; ".join(ambiguous.values())
    elif rig is None:
        rig_line = f"none ({note})" if note else "none"
    else:
        cam = rig.camera
        rig_line = (
            f"{rig.name}: camera {cam.frame_id} {cam.width}x{cam.height} "
            f"fx={cam.P[0, 0] if cam.P is not None else cam.K[0, 0]:.1f}, "
            f"lidar {rig.lidar_frame}" + (f" ({note})" if note else "")
        )
    if args.json:
        out = {
            "path": info.path,
            "format": info.format,
            "start_ns": info.start_ns,
            "end_ns": info.end_ns,
            "duration_s": info.duration_s,
            "rig": rig_line,
            "streams": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "msgtype": s.msgtype,
                    "count": s.count,
                    "first_ns": s.first_ns,
                    "last_ns": s.last_ns,
                    "rate_hz": s.rate_hz,
                    "duration_s": s.duration_s,
                }
                for s in info.streams
            ],
        }
        print(json.dumps(out, indent=2))
    else:
        print(format_info(info, rig_line))
    return 0
