"""``drivingseg export --weights W --onnx OUT [--fp16] [--height H --width W | --dynamic]``.

Writes an ONNX model (uint8 N x H x W x 3 RGB in, normalisation inside the graph, logits
out) with the classes, normalisation, input size and model config in its metadata; see
:mod:`drivingseg.model.export`. The segmentation node runs it with ``backend: onnxruntime``.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX",
        description="Export a U-Net checkpoint to ONNX (uint8 NHWC RGB in, logits out).",
    )
    p.add_argument("--weights", default="default",
                   help="checkpoint (.safetensors beside its .json), ensemble manifest (.json), "
                   "'default' (shipped) or 'ensemble' (3 shipped networks, ~3x the time)")
    p.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write")
    p.add_argument("--fp16", action="store_true", help="run the network in float16")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--dynamic", action="store_true",
                      help="any batch, height and width (default: a fixed size)")
    size.add_argument("--height", type=int, help="fixed input height (default: checkpoint's)")
    p.add_argument("--width", type=int, help="fixed input width (default: checkpoint's)")
    p.add_argument("--check", action="store_true",
                   help="check the file with onnx.checker and run it once in onnxruntime")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drivingseg.errors import ConfigError
    from drivingseg.model.export import export_onnx

    if args.dynamic and args.width is not None:
        raise ConfigError("give either --height/--width or --dynamic, not both")
    out = export_onnx(args.weights, args.onnx, height=args.height, width=args.width,
                      dynamic=args.dynamic, fp16=args.fp16)
    if args.check:
        import numpy as np
        import onnx

        from drivingseg.model.backends import OnnxSegmenter
        from drivingseg.model.config import LIDAR_CHANNELS

        onnx.checker.check_model(str(out), full_check=True)
        seg = OnnxSegmenter(out)
        height, width = seg.spec.height, seg.spec.width
        lidar = (np.zeros((height, width, LIDAR_CHANNELS), dtype=np.float32)
                 if seg.config.uses_lidar else None)  # an RGB + lidar model takes both
        seg(np.zeros((height, width, 3), dtype=np.uint8), lidar)
    print(f"wrote {out}")
    return 0
