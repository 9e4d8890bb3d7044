"""Ensembles: several trained U-Nets that run as one model and average their probabilities.

Independently trained networks make partly different mistakes, so the mean of their class
probabilities scores better than any one of them (docs/MODEL.md: three base-16 models
held out on CamVid 0006R0, car IoU 72.7-74.1 % alone, 77 % together). An ensemble costs
one network's time per member: for offline reports, and on a vehicle GPU where a member
takes about a millisecond.

:class:`Ensemble` is an ``nn.Module`` whose output is ``log(mean_m softmax(logits_m))``:
its softmax is the members' mean probability and its arg-max the ensemble's class, so the
:class:`~drivingseg.model.infer.Segmenter`, ONNX export, CUDA graphs and distillation
(``distill_from``) use it as they use one network. On disk an ensemble is a manifest,
``NAME.json`` with format ``drivingseg-ensemble/1`` listing member checkpoints relative to
the manifest's folder; :func:`~drivingseg.model.checkpoint.load_checkpoint` loads either
kind, and ``--weights ensemble`` is the shipped one (``drivingseg/weights/unet_rgb_ensemble.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drivingseg.errors import ModelError
from drivingseg.fileio import mkdir_problem, write_atomic
from drivingseg.model.config import ModelConfig
from drivingseg.model.unet import UNet

__all__ = ["ENSEMBLE_FORMAT", "Ensemble", "member_paths", "save_ensemble"]

ENSEMBLE_FORMAT = "drivingseg-ensemble/1"
_LOG_FLOOR = 1e-8


class Ensemble(nn.Module):
    """U-Nets of one input contract (channels, classes) run on the same input; the output
    is the log of their mean softmax, classes x H x W like one network's logits."""

    def __init__(self, members: Sequence[UNet]) -> None:
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one member")
        contracts = sorted({(m.config.in_channels, m.config.num_classes) for m in members})
        if len(contracts) != 1:
            message = (f"ensemble members differ in (input channels, classes): {contracts!r}; "
                       "every member must take the same input and predict the same classes")
            raise ModelError(message)
        self.members = nn.ModuleList(members)
        self.config: ModelConfig = max((m.config for m in members),
                                       key=lambda c: c.size_multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members]).mean(0)
        return torch.log(mean.clamp_min(_LOG_FLOOR)).to(x.dtype)


def member_paths(meta: dict[str, Any], manifest: Path) -> list[Path]:
    """The member checkpoint paths of a parsed manifest, resolved against its folder."""
    members = meta.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, str) and m for m in members):
        message = ("ensemble 'members' must be a non-empty list of checkpoint paths, "
                   f"got {members!r}")
        raise ModelError(message, path=manifest)
    out = []
    for m in members:
        p = Path(os.path.expandvars(m))
        out.append(p if p.is_absolute() else manifest.parent / p)
    return out


def _check_replaceable(target: Path) -> None:
    """ModelError unless ``target`` is an ensemble manifest (one may be rewritten)."""
    try:
        fmt = json.loads(target.read_text(encoding="utf-8")).get("format")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        fmt = None
    if fmt != ENSEMBLE_FORMAT:
        message = ("exists and is not an ensemble manifest (a checkpoint's config?); "
                   "choose another name or move it away")
        raise ModelError(message, path=target)


def save_ensemble(
    path: str | os.PathLike[str],
    members: Sequence[str | os.PathLike[str]],
    notes: dict[str, Any] | None = None,
) -> Path:
    """Write the manifest ``path`` (``.json`` added if missing) naming ``members``, stored
    relative to the manifest's folder so the set can be moved together. The ensemble is
    loaded once first, so a manifest that would not load is not written; an existing file
    is replaced only when it is an ensemble manifest itself (never a checkpoint's config,
    least of all a member's)."""
    from drivingseg.model.checkpoint import checkpoint_paths, load_ensemble

    target = Path(path)
    target = target if target.suffix == ".json" else target.with_name(target.name + ".json")
    names = []
    for m in members:
        given = Path(m)
        file = given if given.suffix in (".json", ".safetensors") else checkpoint_paths(m)[0]
        if checkpoint_paths(file)[1].resolve() == target.resolve():
            message = f"the manifest would overwrite the config of its member {str(m)!r}"
            raise ModelError(message, path=target)
        names.append(os.path.relpath(file.resolve(), target.parent.resolve()))
    if target.exists():
        _check_replaceable(target)
    meta = {"format": ENSEMBLE_FORMAT, "members": names, "notes": notes or {}}
    created = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    try:  # members are found relative to the folder, which must exist for that
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create the manifest's folder: {mkdir_problem(target.parent, exc)}"
        raise ModelError(message, path=target) from exc
    try:
        load_ensemble(meta, target)
    except ModelError:
        for folder in created:  # deepest first: every folder made here, not only the last
            folder.rmdir()
        raise
    write_atomic(target, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"),
                 error=ModelError, what="ensemble manifest")
    return target
