"""The training config file (YAML): model shape, input size, data sources, optimisation.

Paths are relative to the config file's folder (those given with ``--set``: to the working
directory); ``$VARS`` are expanded; a checkpoint may also be a shipped name, ``default``
or ``ensemble``, as ``--weights`` takes it. A data source is
either a labelled folder (any layout of :func:`drivingseg.model.data.discover`) with
optional ``include_sequences`` / ``exclude_sequences`` (CamVid file-name prefixes, so the
split is by drive, not by frame), or a synthetic drive ``{synthetic: {seed, frames, step}}``.
A model that takes lidar channels (``model.in_channels: 7``) trains from synthetic drives
only, each frame with the channels of its scan; a labelled folder has no lidar.
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

import contextlib
import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drivingseg.errors import ModelError
from drivingseg.fileio import read_yaml_mapping, yaml_problem
from drivingseg.model.checkpoint import SHIPPED_NAMES, resolve_weights
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
        found = discover(self.path)
        files = found
        if self.include_sequences:
            files = [f for f in files if camvid_sequence(f.image) in self.include_sequences]
        files = [f for f in files if camvid_sequence(f.image) not in self.exclude_sequences]
        if not files:  # a misspelt sequence would silently drop the source (or validation)
            present = sorted({camvid_sequence(f.image) for f in found})
            message = (f"include_sequences {list(self.include_sequences)!r} and "
                       f"exclude_sequences {list(self.exclude_sequences)!r} leave none of its "
                       f"{len(found)} labelled frames; its sequences are {present[:12]!r}")
            raise ModelError(message, path=self.path)
        return files


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


_PATH_SOURCE_KEYS = ("exclude_sequences", "include_sequences", "path")
_SYNTHETIC_KEYS = {"seed": (0, 0), "frames": (100, 1), "step": (5, 1)}
_MINIMUM = {"epochs": 1, "batch_size": 1, "val_every": 1, "num_threads": 0, "num_workers": 0,
            "average_last": 0, "warmup_steps": 0, "lr": 0.0, "weight_decay": 0.0,
            "time_limit_min": 0.0, "dice_weight": 0.0, "lovasz_weight": 0.0,
            "class_weight_power": 0.0, "distill_weight": 0.0, "jitter": 0.0}
_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_keys(item: dict[Any, Any], valid: Sequence[str], where: str, path: Path) -> None:
    unknown = sorted(str(k) for k in set(item) - set(valid))
    if unknown:
        message = f"{where}: unknown keys {unknown!r}; valid: {', '.join(sorted(valid))}"
        raise ModelError(message, path=path)


def _typed(value: object, kind: type, where: str, path: Path) -> Any:
    """``value`` if it is exactly of ``kind``: an int will do for a float, a bool is no
    number; a float may be a string such as ``3e-4`` (YAML 1.1 reads that as one)."""
    if kind is float and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if kind in (bool, str):
        if isinstance(value, kind):
            return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is float and math.isfinite(value):
            return float(value)
        if kind is int and isinstance(value, int):
            return value
    raise ModelError(f"{where}: expected {_KIND[kind]}, got {value!r}", path=path)


def _sequences(item: dict[str, Any], key: str, where: str, path: Path) -> tuple[str, ...]:
    """A sequence filter: a list of CamVid sequence names (never one bare name)."""
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        message = (f"{where}.{key}: expected a list of sequence names such as [0006R0], "
                   f"got {value!r}")
        raise ModelError(message, path=path)
    return tuple(value)


def _source(item: object, where: str, base: Path, path: Path) -> DataSource:
    """One entry of ``data.train`` / ``data.val`` (``where`` names it in errors)."""
    if isinstance(item, dict) and "synthetic" in item:
        _check_keys(item, ("synthetic",), where, path)
        syn = {} if item["synthetic"] is None else item["synthetic"]
        if not isinstance(syn, dict):
            message = f"{where}.synthetic: expected a mapping {{seed, frames, step}}, got {syn!r}"
            raise ModelError(message, path=path)
        _check_keys(syn, tuple(_SYNTHETIC_KEYS), f"{where}.synthetic", path)
        values = {}
        for key, (default, minimum) in _SYNTHETIC_KEYS.items():
            value = _typed(syn.get(key, default), int, f"{where}.synthetic.{key}", path)
            if minimum is not None and value < minimum:
                message = f"{where}.synthetic.{key}: {value!r} must be >= {minimum}"
                raise ModelError(message, path=path)
            values[key] = value
        return DataSource(synthetic_seed=values["seed"], synthetic_frames=values["frames"],
                          synthetic_step=values["step"])
    if not isinstance(item, dict) or "path" not in item:
        message = f"a data source needs 'path: DIR' or 'synthetic: {{seed, frames}}', got {item!r}"
        raise ModelError(message, path=path)
    _check_keys(item, _PATH_SOURCE_KEYS, where, path)
    folder = Path(os.path.expandvars(_typed(item["path"], str, f"{where}.path", path)))
    return DataSource(
        path=folder if folder.is_absolute() else base / folder,
        include_sequences=_sequences(item, "include_sequences", where, path),
        exclude_sequences=_sequences(item, "exclude_sequences", where, path),
    )


def _sources(data: dict[str, Any], key: str, base: Path, path: Path) -> tuple[DataSource, ...]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise ModelError(f"data.{key}: expected a list of sources, got {items!r}", path=path)
    return tuple(_source(s, f"data.{key}[{i}]", base, path) for i, s in enumerate(items))


def _scale_range(value: object, path: Path) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        message = f"train.scale_range: expected two numbers [MIN, MAX], got {value!r}"
        raise ModelError(message, path=path)
    low, high = (_typed(v, float, "train.scale_range", path) for v in value)
    if not 0 < low <= high:
        message = f"train.scale_range: {value!r} needs 0 < MIN <= MAX"
        raise ModelError(message, path=path)
    return low, high


def apply_sets(raw: dict[str, Any], sets: Sequence[str], path: Path) -> dict[str, Any]:
    """A copy of the parsed YAML ``raw`` with each ``section.key=VALUE`` of ``sets`` applied
    (VALUE parsed as YAML, so ``model.base_channels=24`` sets an int); the command line's
    way to run a variant of a config without copying the file. Relative paths given for
    ``out_dir``, ``train.init_from`` and ``train.distill_from`` are taken from the working
    directory, like every other path on the command line."""
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
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            message = f"--set {item!r}: value is not valid YAML: {yaml_problem(exc)}"
            raise ModelError(message, path=path) from exc
        dotted = ".".join(keys)
        if dotted in _PATH_KEYS:
            value = ([_from_cwd(v) for v in value] if isinstance(value, list)
                     and _PATH_KEYS[dotted] else _from_cwd(value))
        node[keys[-1]] = value
    return out


_PATH_KEYS = {"out_dir": False, "train.init_from": False, "train.distill_from": True}
"""Keys whose ``--set`` values are paths, and whether they take a list of them."""


def _from_cwd(value: object) -> object:
    """A path typed on the command line, made absolute against the working directory (as
    ``--out-dir`` is) rather than left to resolve against the config file's folder; other
    values are left for the type check to name."""
    if isinstance(value, str) and not value.startswith("$") and value not in SHIPPED_NAMES:
        return os.path.abspath(value)
    return value


def _checkpoint(text: str, base: Path) -> Path:
    """A checkpoint named in a config: a shipped name (``default``, ``ensemble``) as
    ``--weights`` takes it, else a path, relative ones against ``base``."""
    if text in SHIPPED_NAMES:
        return resolve_weights(text)
    path = Path(os.path.expandvars(text))
    return path if path.is_absolute() else base / path


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
    if not isinstance(data, dict):
        raise ModelError(f"data: expected a mapping with train and val, got {data!r}", path=p)
    _check_keys(data, ("train", "val"), "data", p)
    if not data.get("train"):
        raise ModelError("data.train must list at least one source", path=p)
    section = raw.get("train") or {}
    if not isinstance(section, dict):
        raise ModelError(f"train: expected a mapping, got {section!r}", path=p)
    train = dict(section)
    train.update({k: v for k, v in overrides.items() if v is not None})
    kwargs: dict[str, Any] = {}
    for key, value in train.items():
        if key == "scale_range":
            kwargs[key] = _scale_range(value, p)
            continue
        if key not in _TRAIN_KEYS:
            message = f"unknown train key {key!r}; valid: {', '.join(sorted(_TRAIN_KEYS))}"
            raise ModelError(message, path=p)
        if key == "distill_from":
            if not isinstance(value, list) or not value:
                message = f"train.distill_from: expected a list of checkpoints, got {value!r}"
                raise ModelError(message, path=p)
            kwargs[key] = tuple(_checkpoint(_typed(v, str, "train.distill_from", p), base)
                                for v in value)
            continue
        if key == "init_from":
            kwargs[key] = _checkpoint(_typed(value, str, "train.init_from", p), base)
            continue
        kwargs[key] = _typed(value, _TRAIN_KEYS[key], f"train.{key}", p)
        if key in _MINIMUM and kwargs[key] < _MINIMUM[key]:
            raise ModelError(f"train.{key}: {value!r} must be >= {_MINIMUM[key]}", path=p)
    if kwargs.get("jitter", 0.0) >= 1.0:  # 40 meant as percent drew negative gains
        raise ModelError(f"train.jitter: {kwargs['jitter']!r} must be < 1 (a fraction of "
                         "each colour gain: 0.4 is +-40 %)", path=p)
    if kwargs.get("distill_temperature", 1.0) <= 0.0:  # 0 made the loss NaN, < 0 inverted it
        raise ModelError(f"train.distill_temperature: {kwargs['distill_temperature']!r} must "
                         "be > 0", path=p)
    if not 0.0 <= kwargs.get("copy_paste", 0.0) <= 1.0:
        raise ModelError(f"train.copy_paste: {kwargs['copy_paste']!r} is not a probability in "
                         "[0, 1]", path=p)
    if kwargs.get("fine_weight", 0.0) < 0:
        raise ModelError(f"train.fine_weight: {kwargs['fine_weight']!r} must be >= 0 "
                         "(0 turns the fine-class head off)", path=p)
    _check_distill_tta(kwargs, p)
    model = ModelConfig.from_dict(raw.get("model") or {}, p)
    train_sources, val_sources = _sources(data, "train", base, p), _sources(data, "val", base, p)
    folders = [s.path for s in (*train_sources, *val_sources) if s.synthetic_seed is None]
    if model.uses_lidar and folders:
        message = (f"model.in_channels: {model.in_channels} (RGB + lidar) cannot be trained "
                   f"from the labelled folder {str(folders[0])!r}, which gives RGB frames and "
                   "labels only; train it on synthetic drives (they have lidar) or train an "
                   "RGB model (in_channels 3)")
        raise ModelError(message, path=p)
    folder = raw.get("out_dir", "runs/unet")  # a number is a folder name, a list is not
    folder = str(folder) if isinstance(folder, (int, float)) and not isinstance(folder, bool) \
        else folder
    out_dir = Path(os.path.expandvars(_typed(folder, str, "out_dir", p)))
    return TrainConfig(
        model=model,
        input=_input_spec(raw.get("input"), p),
        train_sources=train_sources,
        val_sources=val_sources,
        out_dir=out_dir if out_dir.is_absolute() else base / out_dir,
        seed=_seed(raw.get("seed", 0), p),
        path=p,
        **kwargs,
    )


MAX_SEED = 2**63 - 1
"""The largest run seed: torch takes seeds up to 2**64 - 1, and each process adds its rank."""


def _seed(value: object, path: Path) -> int:
    """The run seed, an integer in [0, :data:`MAX_SEED`]: a negative one crashed in the
    first epoch (numpy's ``SeedSequence``), after every frame was loaded, and a larger one
    in ``torch.manual_seed``, both with a traceback."""
    seed: int = _typed(value, int, "seed", path)
    if not 0 <= seed <= MAX_SEED:
        raise ModelError(f"seed: {value!r} must be an integer in [0, 2**63 - 1]", path=path)
    return seed


_INPUT_KEYS = ("height", "mean", "std", "width")


def _input_spec(section: object, path: Path) -> InputSpec:
    """The ``input:`` section (default 256 x 192), its keys checked: ``InputSpec`` reads
    only these, so a misspelt ``widht`` or an inference-only ``resize`` was ignored and
    the run trained at another size than the file says."""
    if not section:
        return InputSpec(256, 192)
    if isinstance(section, dict):
        _check_keys(section, _INPUT_KEYS, "input", path)
    return InputSpec.from_dict(section, path)


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
