"""``drivingseg export --weights W --onnx OUT [--fp16] [--height H --width W | --dynamic]
[--check [--check-input INPUT]]``.

Writes an ONNX model (uint8 N x H x W x 3 RGB in, normalisation inside the graph, logits
out) with the classes, normalisation, input size and model config in its metadata; see
:mod:`drivingseg.model.export`. The segmentation node runs it with ``backend: onnxruntime``.
``--check`` compares the graph's logits with the checkpoint's torch model on frames of a
recording before anything is written: a graph that fails it leaves no file.
"""

from __future__ import annotations

import argparse
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivingseg.model.export import CheckFrame

__all__ = ["CHECK_FRAMES", "add_parser", "run"]

CHECK_FRAMES = 2
"""Frames of ``--check-input`` (its first ones) that ``--check`` runs."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX",
        description="Export a U-Net checkpoint to ONNX (uint8 NHWC RGB in, logits out).",
    )
    p.add_argument("--weights", default="default",
                   help="checkpoint (.safetensors beside its .json), ensemble manifest (.json), "
                   "'default' (shipped) or 'ensemble' (3 shipped networks, ~3x the time)")
    p.add_argument("--onnx", required=True, metavar="OUT",
                   help="ONNX file to write; an existing file is replaced")
    p.add_argument("--fp16", action="store_true", help="run the network in float16")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--dynamic", action="store_true",
                      help="any batch, height and width (default: a fixed size)")
    size.add_argument("--height", type=int, help="fixed input height (default: checkpoint's)")
    p.add_argument("--width", type=int, help="fixed input width (default: checkpoint's)")
    p.add_argument("--check", action="store_true",
                   help="before writing: onnx.checker, then onnxruntime against the torch "
                   "model on frames of --check-input (every class's logits within tolerance, "
                   "no file written otherwise)")
    p.add_argument("--check-input", default=None, metavar="INPUT",
                   help="recording whose first frames --check runs (default: the built-in "
                   "synthetic drive; e.g. a KITTI raw drive)")
    p.set_defaults(func=run)


def _check_frames(path: str, uses_lidar: bool) -> list[CheckFrame]:
    """The first :data:`CHECK_FRAMES` frames of ``path`` (with their lidar channels, 4 x H x W,
    for an RGB + lidar model); ConfigError when it has none."""
    from drivingseg.errors import ConfigError
    from drivingseg.sensors.open import open_recording

    with open_recording(path) as rec:
        if not uses_lidar:
            frames: list[CheckFrame] = [
                (f.image, None) for f in itertools.islice(rec.camera_frames(), CHECK_FRAMES)]
        else:
            from drivingseg.fusion.channels import StreamNotes, lidar_channels
            from drivingseg.sync import synchronize

            rig, notes = rec.require_rig(), StreamNotes(str(path))
            pairs = itertools.islice(synchronize(rec.camera_frames(), rec.lidar_scans()),
                                     CHECK_FRAMES)
            frames = [(pair.camera.image,
                       lidar_channels(pair.lidar.points, rig, width=pair.camera.image.shape[1],
                                      height=pair.camera.image.shape[0], notes=notes).stack())
                      for pair in pairs]
    if not frames:
        what = "camera and lidar pairs" if uses_lidar else "camera frames"
        raise ConfigError(f"--check-input {path!r} has no {what} to check the export on")
    return frames


def run(args: argparse.Namespace) -> int:
    from drivingseg.errors import ConfigError
    from drivingseg.model.checkpoint import load_checkpoint
    from drivingseg.model.export import check_export, onnx_bytes, write_onnx

    if args.dynamic and args.width is not None:
        raise ConfigError("give either --height/--width or --dynamic, not both")
    if args.check_input is not None and not args.check:
        # the check it names would silently not run
        message = (f"--check-input {args.check_input!r} names the frames of --check; "
                   "add --check, or leave --check-input out")
        raise ConfigError(message)
    ckpt = load_checkpoint(args.weights)
    data = onnx_bytes(ckpt, height=args.height, width=args.width, dynamic=args.dynamic,
                      fp16=args.fp16)
    if args.check:
        frames = _check_frames(args.check_input or "synthetic", ckpt.config.uses_lidar)
        result = check_export(data, ckpt, frames, args.onnx)
        print(f"check: {result.summary()}")
    out = write_onnx(data, args.onnx)
    print(f"wrote {out}")
    return 0
