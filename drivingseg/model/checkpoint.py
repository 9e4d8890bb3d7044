"""Checkpoints: weights as safetensors, everything else as a JSON file beside them.

``name.safetensors`` holds the tensors (and a copy of the config in its header metadata);
``name.json`` holds the constructor arguments, the class names, the input size and
normalisation, and free-form training notes. Nothing is pickled, so loading a checkpoint
cannot run code. Every problem (missing or truncated file, wrong channel or class count,
a config that does not match the tensors) raises :class:`ModelError` naming the file.
The weights' header also holds the input spec and a save token, also in the JSON, so
weights beside the JSON of another save are refused.

Training state for ``--resume`` (optimizer moments, step, RNG) is a second pair,
``name.state.safetensors`` + ``name.state.json``, which share a random save token, so a
pair from two different saves is refused. A ``name.json`` of format
``drivingseg-ensemble/1`` (:mod:`drivingseg.model.ensemble`) lists member checkpoints
instead; :func:`load_checkpoint` loads it as one :class:`~drivingseg.model.ensemble.Ensemble`.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from drivingseg.errors import ModelError
from drivingseg.fileio import write_atomic
from drivingseg.model.config import CLASS_NAMES, IGNORE_INDEX, InputSpec, ModelConfig
from drivingseg.model.device import torch_device
from drivingseg.model.ensemble import ENSEMBLE_FORMAT, Ensemble, member_paths
from drivingseg.model.unet import UNet

__all__ = [
    "FORMAT",
    "SHIPPED_NAMES",
    "Checkpoint",
    "checkpoint_paths",
    "default_weights",
    "ensemble_weights",
    "load_checkpoint",
    "load_training_state",
    "resolve_weights",
    "save_checkpoint",
    "save_training_state",
]

FORMAT = "drivingseg-unet/1"
DEFAULT_WEIGHTS_NAME = "unet_rgb"
ENSEMBLE_WEIGHTS_NAME = "unet_rgb_ensemble"


@dataclass
class Checkpoint:
    """A loaded model (one U-Net or an ensemble of them) with what it needs to be used:
    classes, input size, notes."""

    model: UNet | Ensemble
    config: ModelConfig
    spec: InputSpec
    classes: tuple[str, ...] = CLASS_NAMES
    notes: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(``x.safetensors``, ``x.json``) for ``x``, ``x.safetensors`` or ``x.json``."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def default_weights() -> Path:
    """The weights shipped in the package (``drivingseg/weights/unet_rgb.*``)."""
    return Path(__file__).resolve().parents[1] / "weights" / f"{DEFAULT_WEIGHTS_NAME}.safetensors"


def ensemble_weights() -> Path:
    """The shipped ensemble manifest (``drivingseg/weights/unet_rgb_ensemble.json``)."""
    return default_weights().with_name(f"{ENSEMBLE_WEIGHTS_NAME}.json")


SHIPPED_NAMES = ("default", "ensemble")
"""The names ``--weights`` takes besides paths (:func:`resolve_weights`)."""


def resolve_weights(name: str | os.PathLike[str]) -> Path:
    """``'default'`` -> the shipped weights, ``'ensemble'`` -> the shipped ensemble;
    anything else is a path."""
    shipped = dict(zip(SHIPPED_NAMES, (default_weights, ensemble_weights),
                       strict=True)).get(str(name))
    return shipped() if shipped is not None else Path(name)


def _atomic_write(path: Path, write: Any) -> None:
    write_atomic(path, write, error=ModelError, what="checkpoint")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    config: ModelConfig,
    spec: InputSpec,
    notes: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write the weights and the JSON config; returns the weights path.

    ``half`` stores the parameters as float16 (half the file); buffers (batch-norm running
    statistics) stay float32, as a running variance can pass float16's 65504 and turn inf.
    """
    weights, meta_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    inner = getattr(model, "module", model)
    buffers = {name for name, _ in inner.named_buffers()}
    tensors = {}
    for k, v in inner.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        tensors[k] = t.half() if half and t.is_floating_point() and k not in buffers else t
    token = uuid.uuid4().hex
    header = {"model": json.dumps(config.to_dict(), sort_keys=True),
              "input": json.dumps(spec.to_dict(), sort_keys=True), "token": token}
    meta = {
        "format": FORMAT,
        "model": config.to_dict(),
        "classes": list(CLASS_NAMES[: config.num_classes]),
        "ignore_index": IGNORE_INDEX,
        "input": spec.to_dict(),
        "notes": notes or {},
        "token": token,
    }
    _atomic_write(weights, lambda p: save_file(tensors, str(p), metadata=header))
    _atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return weights


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        message = "checkpoint config (JSON beside the .safetensors) not found"
        raise ModelError(message, path=meta_path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"checkpoint config is not valid JSON: {exc}", path=meta_path) from exc
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, ENSEMBLE_FORMAT):
        got = meta.get("format") if isinstance(meta, dict) else meta
        message = (f"not a drivingseg checkpoint config: format is {got!r}, expected {FORMAT!r} "
                   f"or {ENSEMBLE_FORMAT!r}")
        raise ModelError(message, path=meta_path)
    return meta


def _read_tensors(weights: Path) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise ModelError("checkpoint weights file not found", path=weights)
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        message = f"cannot read the weights (truncated or not safetensors): {exc}"
        raise ModelError(message, path=weights) from exc


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Load and check a checkpoint or an ensemble manifest; ``in_channels`` / ``num_classes``
    say what the caller needs."""
    device = torch_device(device)
    weights, meta_path = checkpoint_paths(resolve_weights(path))
    if not weights.exists() and not meta_path.exists():
        message = f"no checkpoint here (neither {weights.name!r} nor {meta_path.name!r} exists)"
        if Path(path).parent == Path("."):  # a bare name: a mistyped shipped one?
            message += f"; the shipped weights are named {SHIPPED_NAMES!r}"
        if Path(path).suffix.lower() == ".onnx":
            message += ("; an ONNX model runs with the onnxruntime backend "
                        "(backend:=onnxruntime weights:=MODEL.onnx)")
        raise ModelError(message, path=path)
    meta = _read_meta(meta_path)
    if meta["format"] == ENSEMBLE_FORMAT:
        return load_ensemble(meta, meta_path, in_channels=in_channels, num_classes=num_classes,
                             device=device)
    config = ModelConfig.from_dict(meta.get("model"), meta_path)
    spec = InputSpec.from_dict(meta.get("input"), meta_path)
    listed = meta.get("classes", [])
    if not isinstance(listed, list):
        message = f"config 'classes' must be a list of class names, got {listed!r}"
        raise ModelError(message, path=meta_path)
    classes = tuple(str(c) for c in listed)
    if len(classes) != config.num_classes:
        message = f"config lists classes {classes!r} but num_classes is {config.num_classes!r}"
        raise ModelError(message, path=meta_path)
    if classes != CLASS_NAMES[: config.num_classes]:
        message = (f"classes {classes!r} are not drivingseg's ids in order; expected "
                   f"{CLASS_NAMES[: config.num_classes]!r} (inference and scoring read them so)")
        raise ModelError(message, path=meta_path)
    if in_channels is not None and config.in_channels != in_channels:
        message = (
            f"checkpoint takes {config.in_channels} input channels but {in_channels} are "
            "given; use RGB weights (3) or RGB+lidar weights (7) to match the input"
        )
        raise ModelError(message, path=meta_path)
    if num_classes is not None and config.num_classes != num_classes:
        message = f"checkpoint predicts {config.num_classes} classes, expected {num_classes}"
        raise ModelError(message, path=meta_path)
    tensors = _read_tensors(weights)
    model = UNet(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        details = []
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} tensors of the wrong shape (e.g. {k!r}: file "
                f"{tuple(tensors[k].shape)!r}, config {tuple(expected[k].shape)!r})"
            )
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        message = (
            f"weights do not match the config {config.to_dict()!r}: " + "; ".join(details)
            + f" (config: {meta_path.name})"
        )
        raise ModelError(message, path=weights)
    _check_values(tensors, expected, weights)
    _check_same_save(weights, meta_path, meta, config, spec)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    model.to(device).eval()
    notes = meta.get("notes", {})
    return Checkpoint(model, config, spec, classes, notes if isinstance(notes, dict) else {},
                      weights)


def _check_values(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                  weights: Path) -> None:
    """ModelError for integer tensors where the model holds floats, and for NaN or
    infinite weights (a diverged training), which would give a silently wrong mask."""
    ints = sorted(k for k, v in tensors.items()
                  if expected[k].is_floating_point() and not v.is_floating_point())
    if ints:
        message = (f"{len(ints)} tensors hold integers where the model has floating-point "
                   f"weights (e.g. {ints[0]!r}: {tensors[ints[0]].dtype}); not drivingseg weights")
        raise ModelError(message, path=weights)
    bad = sorted(k for k, v in tensors.items()
                 if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        message = (f"{len(bad)} tensors hold NaN or infinite values (e.g. {bad[0]!r}): weights "
                   "of a training that diverged?")
        raise ModelError(message, path=weights)


def _check_same_save(weights: Path, meta_path: Path, meta: dict[str, Any],
                     config: ModelConfig, spec: InputSpec) -> None:
    """ModelError when the weights' header (the model config, input spec and save token
    written with them; files without them pass) says they are not of ``meta_path``'s save:
    weights of one run beside the JSON of another ran at the other's input size and
    normalisation, silently, when the two networks had the same shape."""
    with safe_open(str(weights), framework="pt") as handle:
        header = handle.metadata() or {}
    advice = (f"{weights.name} and {meta_path.name} are of different saves (files of two "
              "checkpoints, or a save interrupted between them); use both files of one")
    try:
        saved_model = (ModelConfig.from_dict(json.loads(header["model"]))
                       if "model" in header else None)
        saved_spec = (InputSpec.from_dict(json.loads(header["input"]))
                      if "input" in header else None)
    except (ValueError, ModelError) as exc:
        raise ModelError(f"unreadable config in the weights' header: {exc}",
                         path=weights) from exc
    if saved_model is not None and saved_model != config:
        message = (f"the weights were saved with model {saved_model.to_dict()!r} but the "
                   f"JSON says {config.to_dict()!r}: {advice}")
        raise ModelError(message, path=weights)
    if saved_spec is not None and saved_spec != spec:
        message = (f"the weights were trained for input {saved_spec.to_dict()!r} but the "
                   f"JSON says {spec.to_dict()!r}: {advice}")
        raise ModelError(message, path=weights)
    token, meta_token = header.get("token"), meta.get("token")
    if token is not None and meta_token is not None and token != meta_token:
        message = f"save {token!r} beside the JSON of save {meta_token!r}: {advice}"
        raise ModelError(message, path=weights)


def _is_manifest(path: Path) -> bool:
    """Whether ``path`` names an ensemble manifest; False where its JSON cannot be read
    (loading it says why)."""
    try:
        meta = _read_meta(checkpoint_paths(resolve_weights(path))[1])
    except ModelError:
        return False
    return bool(meta["format"] == ENSEMBLE_FORMAT)


def load_ensemble(
    meta: dict[str, Any],
    manifest: Path,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """The ensemble of a parsed manifest: every member loaded (errors name the manifest and
    the member) and checked to share the input size, normalisation and classes."""
    members: list[Checkpoint] = []
    for i, member in enumerate(member_paths(meta, manifest)):
        ckpt = None
        if not _is_manifest(member):  # refused unloaded: it may list this one (a cycle)
            try:
                ckpt = load_checkpoint(member, in_channels=in_channels, num_classes=num_classes,
                                       device=device)
            except ModelError as exc:
                raise ModelError(f"ensemble member {i} ({member.name!r}): {exc}",
                                 path=manifest) from exc
        if ckpt is None or isinstance(ckpt.model, Ensemble):
            raise ModelError(f"ensemble member {i} ({member.name!r}) is itself an ensemble; "
                             "list its members instead", path=manifest)
        members.append(ckpt)
    first = members[0]
    for i, ckpt in enumerate(members[1:], start=1):
        if (ckpt.spec, ckpt.classes) != (first.spec, first.classes):
            message = (f"ensemble member {i} takes input {ckpt.spec!r} with classes "
                       f"{ckpt.classes!r}, member 0 {first.spec!r} with {first.classes!r}; "
                       "members must share input size, normalisation and classes")
            raise ModelError(message, path=manifest)
    unets = [m.model for m in members if isinstance(m.model, UNet)]
    model = Ensemble(unets).to(device).eval()
    notes = meta.get("notes", {})
    return Checkpoint(model, model.config, first.spec, first.classes,
                      notes if isinstance(notes, dict) else {}, manifest)


def save_training_state(
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    extra: torch.nn.Module | None = None,
) -> None:
    """Optimizer tensors + RNG state as safetensors, step counters and groups as JSON;
    ``extra``'s weights too (a training-only module such as the fine-class head). Both
    files carry one new token, which :func:`load_training_state` compares."""
    weights, meta_path = checkpoint_paths(Path(str(path) + ".state"))
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if extra is not None:
        tensors.update({f"extra.{k}": v.detach().cpu().contiguous()
                        for k, v in extra.state_dict().items()})
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    token = uuid.uuid4().hex
    meta = {"param_groups": sd["param_groups"], "scalars": scalars, "info": info, "token": token}
    _atomic_write(weights, lambda p: save_file(tensors, str(p), metadata={"token": token}))
    _atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))


def load_training_state(
    path: str | os.PathLike[str], optimizer: torch.optim.Optimizer,
    extra: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote (into ``extra`` as well, which must
    have been saved); returns its ``info``."""
    weights, meta_path = checkpoint_paths(Path(str(path) + ".state"))
    tensors = _read_tensors(weights)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read training state: {exc}", path=meta_path) from exc
    if not isinstance(meta, dict):
        message = f"training state must be a JSON object, got {type(meta).__name__}"
        raise ModelError(message, path=meta_path)
    with safe_open(str(weights), framework="pt") as handle:
        token = (handle.metadata() or {}).get("token")
    if token != meta.get("token"):
        message = (f"training state {weights.name} (save {token!r}) and {meta_path.name} (save "
                   f"{meta.get('token')!r}) come from different saves; was a save interrupted?")
        raise ModelError(message, path=meta_path)
    if extra is not None:
        saved = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
        try:
            extra.load_state_dict(saved)
        except RuntimeError as exc:
            message = ("training state lacks (or does not match) the training-only "
                       f"{type(extra).__name__} this run adds (was it saved by a run with "
                       f"the same options?): {str(exc).splitlines()[0]}")
            raise ModelError(message, path=weights) from exc
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        for idx, values in meta.get("scalars", {}).items():
            state.setdefault(int(idx), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        message = f"training state does not match this optimizer/model: {exc}"
        raise ModelError(message, path=meta_path) from exc
    info = meta.get("info", {})
    return info if isinstance(info, dict) else {}
