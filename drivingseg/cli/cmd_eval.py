"""``drivingseg eval --data DIR --weights W [--json OUT]``: score a model on labelled frames.

Works on CamVid (``X/`` + ``Xannot/``), KITTI road, KITTI semantics, synthetic drive and
``images/`` + ``labels/`` folders; prints per-class IoU, precision, recall, F1, the mean
IoU over road and car and the confusion matrix (plus MaxF and AP on KITTI road);
``--json`` writes everything, one row per frame included.
"""

from __future__ import annotations

import argparse
import json

from drivingseg.cli._common import add_tta_argument, progress
from drivingseg.errors import ConfigError
from drivingseg.fileio import prepare_output, write_text_atomic

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "eval", help="score a model on a labelled folder",
        description="Evaluate a U-Net checkpoint on labelled frames: CamVid (X/ + Xannot/), "
                    "KITTI road, KITTI semantics, a synthetic drive (drivingseg synth) or "
                    "images/ + labels/ with drivingseg ids (0 background, 1 road, 2 car, "
                    "255 ignore).",
    )
    p.add_argument("--data", required=True, help="labelled folder (any supported layout)")
    p.add_argument("--weights", default="default",
                   help="checkpoint (.safetensors beside its .json), ensemble manifest (.json), "
                   "'default' (shipped) or 'ensemble' (3 shipped networks, ~3x the time)")
    p.add_argument("--json", dest="json_out",
                   help="write the full report (per frame) here; an existing file is replaced")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--sequences", nargs="+", default=[], metavar="SEQ",
                   help="only frames of these CamVid sequences (file-name prefix, e.g. 0006R0)")
    p.add_argument("--limit", type=int, help="evaluate only the first N frames")
    p.add_argument("--fp16", choices=("auto", "on", "off"), default="auto",
                   help="half precision: float16 on CUDA, bfloat16 on the CPU (auto: on CUDA "
                        "only; 'on' scores what the streaming node runs on a bfloat16 CPU)")
    p.add_argument("--resize", choices=("keep_aspect", "stretch"), default="keep_aspect",
                   help="frame to network input: keep_aspect (default; the frame's aspect ratio "
                        "at about the checkpoint's pixel count, as the node runs) or stretch "
                        "(squashed to the checkpoint's size)")
    add_tta_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drivingseg.model.config import tta_preset
    from drivingseg.model.evaluate import evaluate, format_report

    out = (None if not args.json_out
           else prepare_output(args.json_out, error=ConfigError, what="the JSON report"))
    report = evaluate(args.data, args.weights, device=args.device, limit=args.limit,
                      sequences=tuple(args.sequences),
                      fp16=None if args.fp16 == "auto" else args.fp16 == "on",
                      tta=tta_preset(args.tta), resize=args.resize,
                      wrap=lambda items, n: progress(items, total=n, desc="eval"))
    if out is not None:  # before the table: a reader that left (``| head``) loses nothing
        write_text_atomic(out, json.dumps(report, indent=2, allow_nan=False) + "\n",
                          error=ConfigError, what="the JSON report")
    print(format_report(report))
    return 0
