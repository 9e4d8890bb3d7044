"""``drivingseg ensemble OUT.json CHECKPOINT [CHECKPOINT ...] [--note KEY=TEXT ...]``.

Writes an ensemble manifest (:mod:`drivingseg.model.ensemble`): the members' paths relative
to the manifest, checked to load together (same input size, normalisation, channels and
classes) before anything is written. An earlier manifest at ``OUT.json`` is replaced, as
``eval --json`` and ``export`` replace their one small file (``convert``'s ``--force``
guards recordings); any other file there is refused. Any ``--weights`` option and the
segmentation node's ``weights`` parameter then take the manifest as one model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ensemble", help="write an ensemble manifest of several checkpoints",
        description="Write a manifest that runs several U-Net checkpoints as one model "
                    "(their class probabilities averaged).",
    )
    p.add_argument("out", metavar="OUT.json",
                   help="manifest to write (folders created); an earlier manifest there is "
                        "replaced, as eval --json and export replace their file, any other "
                        "existing file is refused")
    p.add_argument("members", nargs="+", metavar="CHECKPOINT",
                   help="member checkpoints (x, x.safetensors or x.json; 'default' = shipped)")
    p.add_argument("--note", action="append", default=[], metavar="KEY=TEXT",
                   help="a note kept in the manifest (repeatable), e.g. held_out_check=...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drivingseg.errors import ConfigError
    from drivingseg.model.checkpoint import load_checkpoint, resolve_weights
    from drivingseg.model.ensemble import save_ensemble

    suffix = Path(args.out).suffix
    if suffix not in ("", ".json"):
        message = (f"a manifest is JSON and is found by its .json suffix; name it .json, "
                   f"not {suffix!r}")
        raise ConfigError(message, path=args.out)
    notes = {}
    for item in args.note:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--note expects KEY=TEXT, got {item!r}")
        notes[key.strip()] = text
    out = save_ensemble(args.out, [resolve_weights(m) for m in args.members], notes)
    ckpt = load_checkpoint(out)
    n = len(args.members)
    print(f"wrote {out}: {n} network{'' if n == 1 else 's'}, input {ckpt.spec.width}x"
          f"{ckpt.spec.height}, classes {', '.join(ckpt.classes)}")
    return 0
