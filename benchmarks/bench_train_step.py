"""One training step of the shipped U-Net on the CPU: float32 NCHW (the baseline) against
channels-last, bfloat16 autocast, and both (what ``amp: true`` + ``channels_last: true`` run).

Times forward, loss and backward plus the AdamW step on random input at the given size and
batch (the cost of a step does not depend on the pixel values); prints the median seconds
per step of each variant and its speed ratio against float32 NCHW measured in the same run.

    python benchmarks/bench_train_step.py [--width 320 --height 240 --batch 8 --steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _common import positive_int  # benchmarks/_common.py: also imports this checkout
from torch.nn import functional

from drivingseg.model.config import ModelConfig
from drivingseg.model.unet import UNet


def step_s(channels_last: bool, bf16: bool, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = UNet(ModelConfig()).to(memory_format=layout)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch, 3, args.height, args.width).contiguous(memory_format=layout)
    y = torch.randint(0, 3, (args.batch, args.height, args.width))
    times = []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step allocates and picks kernels
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=positive_int, default=320)
    parser.add_argument("--height", type=positive_int, default=240)
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--steps", type=positive_int, default=4, help="timed steps per variant")
    parser.add_argument("--num-threads", type=int, default=0, help="0 = torch's default")
    args = parser.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    print(f"U-Net {ModelConfig()}, batch {args.batch}, {args.width}x{args.height}, "
          f"{torch.get_num_threads()} threads")
    base = None
    for name, cl, bf16 in (("float32 NCHW", False, False), ("float32 channels-last", True, False),
                           ("bfloat16 NCHW", False, True), ("bfloat16 channels-last", True, True)):
        s = step_s(cl, bf16, args)
        base = base or s
        print(f"{name:<24} {s:6.2f} s/step  {base / s:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
