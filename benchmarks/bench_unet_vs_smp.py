"""Benchmark: drivingseg's U-Net against segmentation_models_pytorch's ``Unet``, same run.

Both models train from scratch (smp: ``encoder_weights=None``) for the same epochs on
the same CamVid frames at the same input size with the same loop, loss (median-frequency
weighted cross-entropy + Dice), optimiser, schedule, augmentation and seed; then both are
scored on the held-out sequence (default 0006R0) at the labels' own size, and their CPU
inference time per frame (model forward at the input size, batch 1) is measured in float32
and in bfloat16 with channels-last memory (what the node runs on a CPU with native
bfloat16). The input size defaults to the shipped model's; training uses the shipped
recipe's bfloat16 autocast and channels-last memory unless ``--no-amp``.

smp needs torchvision and timm, which drivingseg must not depend on: run this from a
separate virtualenv that has them plus drivingseg (set up as docs/MODEL.md, "Comparison with
segmentation_models_pytorch", shows)::

    /work/smpvenv/bin/python benchmarks/bench_unet_vs_smp.py --epochs 8 --json out.json

Without CamVid (``$DRIVINGSEG_DATA/camvid`` or ``--data``) it prints a skip message and
exits with status 0; run without smp it says how to set up that virtualenv and exits with
status 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import data_root, positive_int  # benchmarks/_common.py: imports this checkout
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader

from drivingseg.model.augment import Augmenter, Sample, SegmentationDataset, normalise
from drivingseg.model.checkpoint import checkpoint_paths, default_weights
from drivingseg.model.config import CLASS_NAMES, InputSpec, ModelConfig
from drivingseg.model.data import camvid_sequence, discover, load_pair
from drivingseg.model.losses import segmentation_loss
from drivingseg.model.metrics import ConfusionMatrix
from drivingseg.model.train import class_weights
from drivingseg.model.unet import UNet, count_parameters

SMP_SETUP = """\
segmentation_models_pytorch cannot be imported by {python} ({error}).
This benchmark runs from a separate virtualenv with smp, torchvision and timm, which
drivingseg must not depend on (do not install them in the project's .venv). From the
repository root (docs/MODEL.md, "Comparison with segmentation_models_pytorch"):

    python3 -m venv /work/smpvenv
    /work/smpvenv/bin/pip install "torch==2.13.0,!=2.13.0+cpu" torchvision==0.28.0 \\
        segmentation-models-pytorch
    /work/smpvenv/bin/pip install -e . --no-deps
    /work/smpvenv/bin/pip install pyyaml tqdm opencv-python-headless safetensors mcap \\
        mcap-ros2-support rosbags
    /work/smpvenv/bin/python benchmarks/bench_unet_vs_smp.py --epochs 8 --json bench.json
"""


def _samples(root: Path, val_seq: str, limit: int | None) -> tuple[list[Sample], list[Sample]]:
    files = discover(root)
    train = [f for f in files if camvid_sequence(f.image) != val_seq][:limit]
    val = [f for f in files if camvid_sequence(f.image) == val_seq]
    return [Sample(*load_pair(f)) for f in train], [Sample(*load_pair(f)) for f in val]


def _train(model: nn.Module, samples: list[Sample], spec: InputSpec, args: argparse.Namespace
           ) -> float:
    torch.manual_seed(args.seed)
    aug = Augmenter(spec, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(SegmentationDataset(samples, spec, aug), batch_size=args.batch_size,
                        shuffle=True, drop_last=True, generator=gen)
    weights = class_weights(samples, len(CLASS_NAMES))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    total, step = args.epochs * len(loader), 0
    t0 = time.perf_counter()
    layout = torch.channels_last if args.amp else torch.contiguous_format
    model.to(memory_format=layout).train()
    for epoch in range(args.epochs):
        aug.reseed(args.seed * 1000 + epoch)
        for batch in loader:
            x, y = batch["input"], batch["labels"]
            for g in opt.param_groups:
                g["lr"] = args.lr * min(1.0, (step + 1) / 20) * (1 - step / total) ** 0.9
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
                logits = model(x.contiguous(memory_format=layout))
            loss = segmentation_loss(logits.float(), y, weights, 0.5)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return time.perf_counter() - t0


@torch.inference_mode()
def _score(model: nn.Module, samples: list[Sample], spec: InputSpec) -> dict[str, Any]:
    import cv2

    model.to(memory_format=torch.contiguous_format).eval()
    cm = ConfusionMatrix()
    for s in samples:
        small = np.asarray(cv2.resize(s.image, (spec.width, spec.height),
                                      interpolation=cv2.INTER_AREA), dtype=np.uint8)
        logits = model(normalise(small, spec).unsqueeze(0))
        logits = functional.interpolate(logits, size=s.labels.shape, mode="bilinear",
                                        align_corners=False)
        cm.update(s.labels, logits.argmax(1)[0].numpy())
    return {"iou": {c.name: c.iou for c in cm.scores()}, "mean_iou_road_car": cm.mean_iou()}


@torch.inference_mode()
def _time_ms(model: nn.Module, spec: InputSpec, runs: int, *, bf16: bool = False) -> float:
    """Median forward time at batch 1; ``bf16``: bfloat16 autocast, channels-last."""
    layout = torch.channels_last if bf16 else torch.contiguous_format
    model.to(memory_format=layout).eval()
    x = torch.randn(1, 3, spec.height, spec.width).contiguous(memory_format=layout)
    times = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(runs + 3):
            t = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def _shipped_input() -> tuple[int, int]:
    """Width and height of the shipped default model's input."""
    meta = json.loads(checkpoint_paths(default_weights())[1].read_text())
    return int(meta["input"]["width"]), int(meta["input"]["height"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=data_root() / "camvid",
                   help="CamVid in the SegNet layout (default: $DRIVINGSEG_DATA/camvid)")
    p.add_argument("--val-sequence", default="0006R0")
    p.add_argument("--epochs", type=int, default=2)
    width, height = _shipped_input()
    p.add_argument("--width", type=int, default=width, help=f"input width (default {width})")
    p.add_argument("--height", type=int, default=height, help=f"input height (default {height})")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="train with bfloat16 autocast and channels-last (default: on)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--limit", type=int, help="use only the first N training frames")
    p.add_argument("--encoder", default="resnet18", help="smp encoder (no pretrained weights)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=positive_int, default=20, help="timed inference runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: CamVid not found at {args.data} (set DRIVINGSEG_DATA or --data)")
        return 0
    try:
        import segmentation_models_pytorch as smp
    except (ImportError, RuntimeError) as exc:  # RuntimeError: torchvision built for another torch
        print(SMP_SETUP.format(python=sys.executable, error=f"{type(exc).__name__}: {exc}"),
              file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    spec = InputSpec(width=args.width, height=args.height)
    train, val = _samples(args.data, args.val_sequence, args.limit)
    torch.manual_seed(args.seed)
    models: dict[str, nn.Module] = {
        "drivingseg_unet": UNet(ModelConfig(depth=4, base_channels=16)),
        f"smp_unet_{args.encoder}": smp.Unet(encoder_name=args.encoder, encoder_weights=None,
                                             classes=len(CLASS_NAMES)),
    }
    results: dict[str, Any] = {
        "torch": torch.__version__, "smp": smp.__version__, "threads": args.threads,
        "input": [spec.width, spec.height], "epochs": args.epochs, "amp": args.amp,
        "train_frames": len(train),
        "val_frames": len(val), "val_sequence": args.val_sequence, "models": {},
    }
    for name, model in models.items():
        train_s = _train(model, train, spec, args)
        row = {"parameters": count_parameters(model), "train_s": round(train_s, 1),
               **_score(model, val, spec), "cpu_ms_per_frame": _time_ms(model, spec, args.runs),
               "cpu_ms_per_frame_bf16": _time_ms(model, spec, args.runs, bf16=True)}
        results["models"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
