"""``drivingseg train --config FILE [--resume] [--set SECTION.KEY=VALUE]``: train the U-Net.

Runs on the CPU by default (``train.device``), on CUDA with AMP when configured, and on
several GPUs or processes under ``torchrun`` (DDP from the environment variables).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train", help="train the U-Net from a YAML config",
        description="Train the road/car U-Net; checkpoints go to the config's out_dir.",
    )
    p.add_argument("--config", required=True, help="training YAML (see configs/train_default.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from out_dir/last.*")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--time-limit-min", type=float, help="override train.time_limit_min")
    p.add_argument("--device", help="override train.device (cpu, cuda, cuda:1, auto)")
    p.add_argument("--out-dir", help="override out_dir")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. model.base_channels=24 or "
                        "train.num_workers=3 (repeatable; VALUE is YAML; relative paths "
                        "are from the working directory)")
    p.set_defaults(func=run)


def _check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` before any training work, refusing one that cannot be a folder (a
    file, a path under a file, a folder that cannot be created): the trainer's ``mkdir``
    raised a bare ``FileExistsError`` or ``OSError`` traceback."""
    from drivingseg.errors import ConfigError

    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == out_dir else f"is under the file {str(existing)!r}"
        raise ConfigError(f"out_dir {str(out_dir)!r} {where}, not a folder", path=out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create out_dir {str(out_dir)!r}: {exc.strerror or exc}"
        raise ConfigError(message, path=out_dir) from exc


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from drivingseg.model.train import train
    from drivingseg.model.train_config import load_train_config

    logging.getLogger("drivingseg.model").setLevel(logging.INFO)  # epoch summaries
    cfg = load_train_config(args.config, args.set, epochs=args.epochs,
                            time_limit_min=args.time_limit_min, device=args.device)
    if args.out_dir:
        cfg = replace(cfg, out_dir=Path(args.out_dir))
    _check_out_dir(Path(cfg.out_dir))
    summary = train(cfg, resume=args.resume)
    best = {k: summary[k] for k in ("best_mean_iou", "steps", "elapsed_s", "out_dir")}
    if os.environ.get("RANK", "0") == "0":  # one summary line, from the first torchrun rank
        print(json.dumps(best))
    return 0
