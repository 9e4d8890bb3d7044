"""The training config file (YAML): model shape, input size, data sources, optimisation.

Paths are relative to the config file's folder; ``$VARS`` are expanded. A data source is
either a labelled folder (any layout of :func:`drivingseg.model.data.discover`) with
optional ``include_sequences`` / ``exclude_sequences`` (CamVid file-name prefixes, so the
split is by drive, not by frame), or a synthetic drive ``{synthetic: {seed, frames, step}}``.
``init_from: CHECKPOINT`` starts from a saved model's weights (a fine-tuning stage) with
a fresh optimiser and learning-rate schedule; the model may add a context module that the
checkpoint lacks (it starts as the identity). ``distill_from: [CHECKPOINT, ...]`` adds a
distillation term (``distill_weight``, ``distill_temperature``): the student also learns
the mean class probabilities of these teachers on each augmented batch; with
``distill_tta: flip|multiscale`` the teachers instead run once per training frame with that
test-time augmentation before training, and their probabilities follow each sample's
scale, crop and flip (:mod:`drivingseg.model.distill`).
``copy_paste: P`` pastes the cars of another augmented training frame onto a sample with
probability P (:class:`drivingseg.model.augment.CopyPaste`). ``fine_weight: W`` adds a
training-only head taught CamVid's eleven classes, weighted W (:mod:`drivingseg.model.fine`).
See
``configs/train_default.yaml``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drivingseg.errors import ModelError
from drivingseg.fileio import read_yaml_mapping
from drivingseg.model.config import TTA_PRESETS, InputSpec, ModelConfig
from drivingseg.model.data import LabelledFile, camvid_sequence, discover

__all__ = ["DataSource", "TrainConfig", "apply_sets", "load_train_config"]

_TRAIN_KEYS = {
    "epochs": int, "batch_size": int, "lr": float, "weight_decay": float, "dice_weight": float,
    "lovasz_weight": float,
    "class_weight_power": float, "time_limit_min": float, "num_threads": int,
    "num_workers": int, "device": str, "amp": bool, "val_every": int, "warmup_steps": int,
    "jitter": float, "channels_last": bool, "average_last": int,
    "logit_adjust": bool, "init_from": str, "distill_from": list, "distill_weight": float,
    "distill_temperature": float, "distill_tta": str, "copy_paste": float,
    "fine_weight": float,
}


@dataclass(frozen=True)
class DataSource:
    """A labelled folder (with a sequence filter) or a synthetic drive."""

    path: Path | None = None
    include_sequences: tuple[str, ...] = ()
    exclude_sequences: tuple[str, ...] = ()
    synthetic_seed: int | None = None
    synthetic_frames: int = 100
    synthetic_step: int = 5

    def files(self) -> list[LabelledFile]:
        assert self.path is not None
        files = discover(self.path)
        if self.include_sequences:
            files = [f for f in files if camvid_sequence(f.image) in self.include_sequences]
        return [f for f in files if camvid_sequence(f.image) not in self.exclude_sequences]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs (see the module docstring for the file format)."""

    model: ModelConfig
    input: InputSpec
    train_sources: tuple[DataSource, ...]
    val_sources: tuple[DataSource, ...]
    out_dir: Path
    seed: int = 0
    epochs: int = 60
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 0.5
    lovasz_weight: float = 0.0
    class_weight_power: float = 1.0
    time_limit_min: float = 0.0
    num_threads: int = 0
    num_workers: int = 0
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    average_last: int = 0
    logit_adjust: bool = False
    init_from: Path | None = None
    distill_from: tuple[Path, ...] = ()
    distill_weight: float = 0.5
    distill_temperature: float = 1.0
    distill_tta: str = "off"
    copy_paste: float = 0.0
    fine_weight: float = 0.0
    val_every: int = 1
    warmup_steps: int = 50
    jitter: float = 0.3
    scale_range: tuple[float, float] = (0.8, 1.6)
    path: Path | None = field(default=None, compare=False)


def _source(item: object, base: Path, path: Path) -> DataSource:
    if isinstance(item, dict) and "synthetic" in item:
        syn = item["synthetic"] or {}
        try:
            return DataSource(synthetic_seed=int(syn.get("seed", 0)),
                              synthetic_frames=int(syn.get("frames", 100)),
                              synthetic_step=int(syn.get("step", 5)))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"invalid synthetic source {item!r}: {exc}", path=path) from exc
    if not isinstance(item, dict) or "path" not in item:
        message = f"a data source needs 'path: DIR' or 'synthetic: {{seed, frames}}', got {item!r}"
        raise ModelError(message, path=path)
    folder = Path(os.path.expandvars(str(item["path"])))
    return DataSource(
        path=folder if folder.is_absolute() else base / folder,
        include_sequences=tuple(str(s) for s in item.get("include_sequences", ())),
        exclude_sequences=tuple(str(s) for s in item.get("exclude_sequences", ())),
    )


def apply_sets(raw: dict[str, Any], sets: Sequence[str], path: Path) -> dict[str, Any]:
    """A copy of the parsed YAML ``raw`` with each ``section.key=VALUE`` of ``sets`` applied
    (VALUE parsed as YAML, so ``model.base_channels=24`` sets an int); the command line's
    way to run a variant of a config without copying the file."""
    out = copy.deepcopy(raw)
    for item in sets:
        dotted, sep, text = item.partition("=")
        keys = dotted.strip().split(".")
        if not sep or not all(keys):
            raise ModelError(f"--set expects SECTION.KEY=VALUE, got {item!r}", path=path)
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ModelError(f"--set {item!r}: {key!r} is not a section", path=path)
            node = child
        try:
            node[keys[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"--set {item!r}: value is not valid YAML: {exc}", path=path) from exc
    return out


def load_train_config(
    path: str | os.PathLike[str], sets: Sequence[str] = (), **overrides: Any
) -> TrainConfig:
    """Parse a training YAML; ``sets`` (``section.key=VALUE``, see :func:`apply_sets`) and
    then ``overrides`` replace keys of its ``train:`` section."""
    p = Path(path)
    raw = apply_sets(read_yaml_mapping(p, error=ModelError, what="training config"), sets, p)
    valid = {"model", "input", "data", "train", "out_dir", "seed"}
    unknown = sorted(set(raw) - valid)
    if unknown:
        raise ModelError(f"unknown keys {unknown!r}; valid: {', '.join(sorted(valid))}", path=p)
    base = p.resolve().parent
    data = raw.get("data") or {}
    if not isinstance(data, dict) or not data.get("train"):
        raise ModelError("data.train must list at least one source", path=p)
    train = dict(raw.get("train") or {})
    train.update({k: v for k, v in overrides.items() if v is not None})
    kwargs: dict[str, Any] = {}
    for key, value in train.items():
        if key == "scale_range":
            kwargs[key] = (float(value[0]), float(value[1]))
            continue
        if key not in _TRAIN_KEYS:
            message = f"unknown train key {key!r}; valid: {', '.join(sorted(_TRAIN_KEYS))}"
            raise ModelError(message, path=p)
        if key == "distill_from":
            if not isinstance(value, list) or not value:
                message = f"train.distill_from: expected a list of checkpoints, got {value!r}"
                raise ModelError(message, path=p)
            paths = [Path(os.path.expandvars(str(v))) for v in value]
            kwargs[key] = tuple(v if v.is_absolute() else base / v for v in paths)
            continue
        if key == "init_from":
            init = Path(os.path.expandvars(str(value)))
            kwargs[key] = init if init.is_absolute() else base / init
            continue
        try:
            kwargs[key] = _TRAIN_KEYS[key](value)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"train.{key}: invalid value {value!r}", path=p) from exc
    if not 0.0 <= kwargs.get("copy_paste", 0.0) <= 1.0:
        raise ModelError(f"train.copy_paste: {kwargs['copy_paste']!r} is not a probability in "
                         "[0, 1]", path=p)
    if kwargs.get("fine_weight", 0.0) < 0:
        raise ModelError(f"train.fine_weight: {kwargs['fine_weight']!r} must be >= 0 "
                         "(0 turns the fine-class head off)", path=p)
    _check_distill_tta(kwargs, p)
    out_dir = Path(os.path.expandvars(str(raw.get("out_dir", "runs/unet"))))
    return TrainConfig(
        model=ModelConfig.from_dict(raw.get("model") or {}, p),
        input=InputSpec.from_dict(raw.get("input") or {"width": 256, "height": 192}, p),
        train_sources=tuple(_source(s, base, p) for s in data["train"]),
        val_sources=tuple(_source(s, base, p) for s in data.get("val") or ()),
        out_dir=out_dir if out_dir.is_absolute() else base / out_dir,
        seed=int(raw.get("seed", 0)),
        path=p,
        **kwargs,
    )


def _check_distill_tta(kwargs: dict[str, Any], path: Path) -> None:
    """``distill_tta`` names a preset and needs teachers, temperature 1 (the targets are
    stored as probabilities) and no copy-paste (a pasted car would keep the targets of the
    frame it was pasted onto)."""
    tta = kwargs.get("distill_tta", "off")
    if tta not in TTA_PRESETS:
        message = f"train.distill_tta: {tta!r} is not one of {sorted(TTA_PRESETS)}"
        raise ModelError(message, path=path)
    if tta == "off":
        return
    if not kwargs.get("distill_from"):
        message = f"train.distill_tta: {tta!r} needs teachers in train.distill_from"
        raise ModelError(message, path=path)
    if kwargs.get("distill_temperature", 1.0) != 1.0:
        message = (f"train.distill_tta: {tta!r} stores the teachers' probabilities, so "
                   f"distill_temperature must be 1, got {kwargs['distill_temperature']!r}")
        raise ModelError(message, path=path)
    if kwargs.get("copy_paste", 0.0) > 0:
        message = (f"train.distill_tta: {tta!r} cannot be combined with copy_paste "
                   f"{kwargs['copy_paste']!r} (pasted cars would keep the targets of the "
                   "frame they land on)")
        raise ModelError(message, path=path)
