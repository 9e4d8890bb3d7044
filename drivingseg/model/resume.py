"""What ``drivingseg train --resume`` checks before it goes on with a run.

Each epoch writes the training state (``last.state.*``) and then the weights (``last.*``);
the state records the run's resolved config, the epoch and step, and a digest of the
weights saved with it. A resume refuses four ``last.*`` files that come from different
saves (a save interrupted between files) and goes on from ``previous.*``, the save
before (kept as each save starts), when those are whole; it refuses a config that differs
from the run's in anything but ``train.epochs`` and ``train.time_limit_min`` (how a run is
extended) and where it runs (``device``, ``num_threads``, ``num_workers``), and a run
whose epochs or time limit are already spent. With ``average_last`` each epoch's weights
also go to ``average_window/epoch_NNNN.safetensors`` (the last K are kept), and the
state lists them with their digests, so a resumed run averages the same epochs as an
uninterrupted one; a run stopped after its last epoch, while it wrote ``averaged.*``,
resumes to write it (:func:`averaged_pending`) instead of being refused as spent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from drivingseg.errors import ModelError
from drivingseg.fileio import write_atomic
from drivingseg.model.checkpoint import checkpoint_paths, load_checkpoint, load_training_state
from drivingseg.model.train_config import TrainConfig

__all__ = ["EXTENDABLE", "PREVIOUS", "WHERE_IT_RUNS", "WINDOW_DIR", "averaged_pending",
           "check_resumable", "checked_info", "keep_previous", "prune_window",
           "read_state_info", "restore", "restore_window", "run_config", "run_ended",
           "save_window_member", "weights_digest"]

log = logging.getLogger(__name__)

EXTENDABLE = ("epochs", "time_limit_min")
"""The train keys that extend a run; a resumed run may change them."""

WHERE_IT_RUNS = ("device", "num_threads", "num_workers")
"""Train keys that say where and how fast a run goes, not what it learns: a run started
on a CPU may go on on a GPU."""
_NOT_TRAIN_KEYS = ("model", "input", "train_sources", "val_sources", "out_dir", "path", "seed")


def run_config(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved settings a resumed run must share with the run it continues, by
    dotted key (``model.depth``, ``input.width``, ``train.lr``, ``data.train``, ...), as
    JSON values."""
    out: dict[str, Any] = {"seed": cfg.seed}
    out.update({f"model.{k}": v for k, v in cfg.model.to_dict().items()})
    out.update({f"input.{k}": v for k, v in cfg.input.to_dict().items()})
    for f in fields(cfg):
        if f.name not in (*_NOT_TRAIN_KEYS, *EXTENDABLE, *WHERE_IT_RUNS):
            out[f"train.{f.name}"] = getattr(cfg, f.name)
    out["train.init_from"] = _real(cfg.init_from)
    out["train.distill_from"] = [_real(p) for p in cfg.distill_from]
    out["data.train"] = [{**asdict(s), "path": _real(s.path)} for s in cfg.train_sources]
    out["data.val"] = [{**asdict(s), "path": _real(s.path)} for s in cfg.val_sources]
    result: dict[str, Any] = json.loads(json.dumps(out, default=str))
    return result


def _real(path: str | os.PathLike[str] | None) -> str | None:
    """A path as the file system resolves it (``a/../b``, links and spellings alike)."""
    return None if path is None else os.path.realpath(path)


def _paths_blanked(value: Any) -> Any:
    """``value`` with the paths of :func:`run_config` replaced by None (to tell a moved
    folder from a changed setting)."""
    if isinstance(value, list):
        return [_paths_blanked(v) for v in value]
    if isinstance(value, dict):
        return {k: None if k == "path" else _paths_blanked(v) for k, v in value.items()}
    return None if isinstance(value, str) and os.path.isabs(value) else value


def weights_digest(model: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and values), as saved."""
    digest = hashlib.sha256()
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    for name, value in sorted(state.items()):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_state_info(last: Path) -> dict[str, Any]:
    """The ``info`` of ``last.state.json`` (epoch, step, elapsed time, ...), tensors unread."""
    meta_path = checkpoint_paths(Path(f"{last}.state"))[1]
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        if any(path.exists() for path in _files(last)):  # the first save was cut short
            message = ("resume: the run stopped while it saved its first epoch, so there is "
                       "no epoch to go on from; start it again without --resume")
        else:
            message = "resume: no training state here; was a run started with this out_dir?"
        raise ModelError(message, path=meta_path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"resume: cannot read the training state: {exc}", path=meta_path) from exc
    info = meta.get("info") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or not {"epoch", "step"} <= set(info):
        raise ModelError(f"resume: the training state has no epoch and step: {info!r}",
                         path=meta_path)
    return checked_info(info, meta_path)


_INFO_KINDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "step": (int,), "elapsed_s": (int, float), "best": (int, float),
    "history": (list,), "average_window": (list,), "grad_scaler": (dict, type(None))}


def checked_info(info: dict[str, Any], path: Path) -> dict[str, Any]:
    """``info`` of a training state, its values checked to be of the kinds a run saves
    (a hand-edited or damaged file names the field instead of failing in the loop)."""
    for key, kinds in _INFO_KINDS.items():
        if key not in info:
            continue
        value = info[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ModelError(f"resume: the training state's {key} is {value!r}, not "
                             f"{' or '.join(k.__name__ for k in kinds)}: a damaged file?",
                             path=path)
    window = info.get("average_window") or []
    if not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
               and isinstance(e[1], str) for e in window):
        raise ModelError(f"resume: the training state's average_window is {window!r}, not "
                         "[[epoch, sha256], ...]: a damaged file?", path=path)
    return info


def check_resumable(cfg: TrainConfig, info: dict[str, Any]) -> None:
    """Before any data is loaded: refuse a run whose time limit is spent or whose config
    is not the run's (``info``: :func:`read_state_info`)."""
    _check_time_left(cfg, info)
    _check_same_config(cfg, info)


def run_ended(cfg: TrainConfig, info: Mapping[str, Any]) -> bool:
    """Whether the save ``info`` describes ended the run: ``cfg``'s epochs or its time
    limit spent."""
    elapsed = float(info.get("elapsed_s", 0.0))
    return (int(info["epoch"]) + 1 >= cfg.epochs
            or bool(cfg.time_limit_min and elapsed >= 60.0 * cfg.time_limit_min))


def averaged_pending(cfg: TrainConfig, info: Mapping[str, Any]) -> bool:
    """Whether a run with ``average_last`` lacks the ``averaged.*`` of the save ``info``
    describes: the JSON, written last, is missing, unreadable or of another step (a run
    stopped while it validated and wrote the average, after its last epoch's save)."""
    if not cfg.average_last:
        return False
    meta_path = checkpoint_paths(cfg.out_dir / AVERAGED)[1]
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    notes = meta.get("notes") if isinstance(meta, dict) else None
    return not isinstance(notes, dict) or notes.get("step") != info.get("step")


def _check_time_left(cfg: TrainConfig, info: dict[str, Any]) -> None:
    """Refuse to resume a run that has already used its ``time_limit_min`` (unless its
    ``averaged.*`` is still to be written)."""
    elapsed = float(info.get("elapsed_s", 0.0))
    if cfg.time_limit_min and elapsed >= 60.0 * cfg.time_limit_min \
            and not averaged_pending(cfg, info):
        message = (f"resume: the run has already used {elapsed / 60:.3g} min of its "
                   f"train.time_limit_min {cfg.time_limit_min!r} (stopped after epoch "
                   f"{int(info['epoch']) + 1}); nothing left to train: give a larger "
                   "time_limit_min (--time-limit-min) to extend it")
        raise ModelError(message, path=cfg.path)


AVERAGED = "averaged"
"""The name of the mean weights of the last ``average_last`` epochs (``averaged.*``)."""

PREVIOUS = "previous"
"""The name of the save before ``last.*`` (``previous.*``, hard links where the file system
has them), which :func:`restore` falls back to when a save of ``last.*`` was cut short."""


def _files(stem: Path) -> list[Path]:
    return [*checkpoint_paths(stem), *checkpoint_paths(Path(f"{stem}.state"))]


def keep_previous(out_dir: Path) -> None:
    """Before ``last.*`` is written again: keep its four files as ``previous.*``, so that a
    run killed between the files of the next save still resumes (from this save)."""
    last, previous = _files(out_dir / "last"), _files(out_dir / PREVIOUS)
    for path in previous:
        path.unlink(missing_ok=True)
    if not all(path.is_file() for path in last):
        return
    for source, target in zip(last, previous, strict=True):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _replace_last(out_dir: Path) -> None:
    """``last.*`` made whole again as copies of ``previous.*`` (the save resumed from):
    left a mix, the next save's :func:`keep_previous` took the mix as ``previous.*`` in
    place of the good save, so a second save cut short could not be resumed at all."""
    for source, target in zip(_files(out_dir / PREVIOUS), _files(out_dir / "last"),
                              strict=True):
        partial = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, partial)
        os.replace(partial, target)


def restore(cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            extra: torch.nn.Module | None = None, *, repair: bool = True) -> dict[str, Any]:
    """Load ``out_dir/last.*`` into ``model``, ``optimizer`` (and ``extra``) after checking
    that the files come from one save and the config is the run's; returns the state's info.
    ``last.*`` that cannot be resumed (a save cut short) give way to ``previous.*`` when
    those can: that epoch is trained again, as the run would have trained it. Only a
    ``repair`` call (DDP's rank 0: every rank restores) copies ``previous.*`` over them:
    ranks copying at once through the same temporary files crashed one another."""
    try:
        info = _restore(cfg, cfg.out_dir / "last", model, optimizer, extra)
    except ModelError as exc:
        previous = cfg.out_dir / PREVIOUS
        if not all(path.is_file() for path in _files(previous)):
            raise
        try:  # previous.* may be of another run: a new one's first save keeps the old last.*
            info = _restore(cfg, previous, model, optimizer, extra)
            _check_same_config(cfg, info)
        except ModelError:
            raise exc from None
        log.warning("%s; resuming from the save before it, %s.* (epoch %d)", exc,
                    previous, int(info["epoch"]) + 1)
        if repair:
            _replace_last(cfg.out_dir)
    done = int(info["epoch"]) + 1
    # else it trained nothing, silently (as a spent time limit did)
    if done >= cfg.epochs and not averaged_pending(cfg, info):
        message = (f"resume: the run has already trained {done} epochs, and train.epochs is "
                   f"{cfg.epochs!r}; nothing left to train: give more epochs (--epochs) to "
                   "extend it")
        raise ModelError(message, path=cfg.path)
    return info


def _restore(cfg: TrainConfig, last: Path, model: torch.nn.Module,
             optimizer: torch.optim.Optimizer, extra: torch.nn.Module | None) -> dict[str, Any]:
    """:func:`restore` from the four files of ``last``."""
    ckpt = load_checkpoint(last)
    if ckpt.config != cfg.model:
        message = f"resume: checkpoint config {ckpt.config!r} differs from {cfg.model!r}"
        raise ModelError(message, path=last)
    info = checked_info(load_training_state(last, optimizer, extra),
                        checkpoint_paths(Path(f"{last}.state"))[1])
    _check_same_save(last, ckpt.notes, info, ckpt.model)
    model.load_state_dict(ckpt.model.state_dict())
    return info


def _check_same_save(last: Path, notes: dict[str, Any], info: dict[str, Any],
                     model: torch.nn.Module) -> None:
    """``last.json`` and ``last.safetensors`` are the weights the training state was saved
    with (a save interrupted between the files leaves a mix)."""
    advice = ("a save was interrupted between the files; start the run again, or "
              "resume from a consistent copy of last.*")
    weights_at = (notes.get("epoch"), notes.get("step"))
    state_at = (info.get("epoch"), info.get("step"))
    if weights_at != state_at:
        message = (f"resume: {last.name}.json is from epoch {weights_at[0]!r} (step "
                   f"{weights_at[1]!r}) but {last.name}.state.json from epoch {state_at[0]!r} "
                   f"(step {state_at[1]!r}): {advice}")
        raise ModelError(message, path=last)
    saved = info.get("weights_sha256")
    if saved is not None and saved != weights_digest(model):
        message = (f"resume: {last.name}.safetensors holds other weights than the training "
                   f"state of epoch {state_at[0]!r} was saved with: {advice}")
        raise ModelError(message, path=last)


def _check_same_config(cfg: TrainConfig, info: dict[str, Any]) -> None:
    """Every setting but :data:`EXTENDABLE` and :data:`WHERE_IT_RUNS` is the one the run
    was started with."""
    saved = info.get("config")
    if not isinstance(saved, dict):
        log.warning("resume: the training state does not record its config (an older run); "
                    "not checking that the config is unchanged")
        return
    for key, value in run_config(cfg).items():
        if key not in saved or saved[key] == value:
            continue
        if _paths_blanked(saved[key]) == _paths_blanked(value):
            log.warning("resume: %s names other paths than the run was started with (%r, "
                        "then %r): the same settings, so going on; make sure it is the "
                        "same data", key, value, saved[key])
            continue
        message = (f"resume: {key} is {value!r} but the run being resumed used "
                   f"{saved[key]!r}; only train.{', train.'.join(EXTENDABLE)} and where "
                   f"it runs (train.{', train.'.join(WHERE_IT_RUNS)}) may change on "
                   "--resume (start a new run in another out_dir, or use init_from)")
        raise ModelError(message, path=cfg.path)


WINDOW_DIR = "average_window"
"""The folder of ``out_dir`` holding the weights of the epochs ``average_last`` averages."""


def _window_file(out_dir: Path, epoch: int) -> Path:
    return out_dir / WINDOW_DIR / f"epoch_{epoch:04d}.safetensors"


def save_window_member(out_dir: Path, epoch: int, state: Mapping[str, torch.Tensor]) -> str:
    """Write one epoch's weights (CPU tensors) for the averaging window; returns their
    digest, which the training state records."""
    tensors = {k: v.contiguous() for k, v in state.items()}
    write_atomic(_window_file(out_dir, epoch), lambda p: save_file(tensors, str(p)),
                 error=ModelError, what="averaging window weights")
    return weights_digest(tensors)


def prune_window(out_dir: Path, keep: Sequence[int]) -> None:
    """Delete the window files of epochs not in ``keep`` (all of them for ``keep=()``)."""
    for path in sorted((out_dir / WINDOW_DIR).glob("epoch_*.safetensors")):
        if path.stem.removeprefix("epoch_").isdigit() and int(path.stem[6:]) not in keep:
            path.unlink(missing_ok=True)


def restore_window(out_dir: Path, info: Mapping[str, Any]
                   ) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """The ``(epoch, weights)`` of the averaging window the training state lists; an
    epoch whose file is missing, unreadable or holds other weights is left out, with a
    warning (``averaged.*`` records the epochs it averaged)."""
    listed = info.get("average_window")
    if listed is None:
        log.warning("resume: the training state lists no averaging window (an older run); "
                    "averaged.* will average only the epochs run from now on")
        return []
    window = []
    for epoch, digest in listed:
        path = _window_file(out_dir, int(epoch))
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            log.warning("resume: cannot read the weights of epoch %d for averaged.* (%s): %s; "
                        "averaging without them", int(epoch) + 1, path, exc)
            continue
        if weights_digest(state) != digest:
            log.warning("resume: %s holds other weights than epoch %d saved; averaging "
                        "without them", path, int(epoch) + 1)
            continue
        window.append((int(epoch), state))
    return window
