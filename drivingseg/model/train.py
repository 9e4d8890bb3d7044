"""Training: YAML config -> data -> U-Net, with checkpoints, resume, seeds, AMP and DDP.

The loss (:mod:`drivingseg.model.losses`) is class-weighted cross-entropy
(median-frequency weights from the training labels: cars are few pixels) plus soft Dice
and/or Lovasz-softmax terms over road and car; all skip ``IGNORE_INDEX`` pixels. The
learning rate follows a polynomial decay over the larger of step progress and time
progress (``time_limit_min``), so a time-boxed run still anneals. Each epoch writes
``last.*`` (weights + training state for ``--resume``, which checks them with
:mod:`drivingseg.model.resume`) and, when the validation mean IoU
over road and car improves, ``best.*``. With ``logit_adjust`` the validation, ``best.*``
and ``averaged.*`` use scores shifted by ``-log(class weight)`` (:func:`adjusted`;
``last.*`` stays the raw training state). With ``distill_from`` the loss adds the KL
divergence to the teachers' mean probabilities (knowledge distillation, which aims at an
ensemble's accuracy in one network's time; docs/MODEL.md has what it gave here), from
teachers run in the loop or, with ``distill_tta``, once per frame before it
(:mod:`drivingseg.model.distill`). With ``average_last: K`` the end of the run writes
``averaged.*``, the mean weights of the last K epochs (kept in ``average_window/`` for
``--resume``, which also writes it for a run stopped before it had). A run whose
weights turn NaN stops before saving them. Under ``torchrun`` the environment variables
select DDP (NCCL on CUDA, gloo on the CPU); rank 0 writes files. With ``fine_weight`` a
training-only head also learns CamVid's eleven classes from the same features
(:mod:`drivingseg.model.fine`).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import time
from collections import deque
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from drivingseg.errors import ModelError
from drivingseg.model.augment import (
    Augmenter,
    CopyPaste,
    Sample,
    SegmentationDataset,
    seed_worker,
)
from drivingseg.model.averaging import adjusted, average_weights
from drivingseg.model.checkpoint import load_checkpoint, save_checkpoint, save_training_state
from drivingseg.model.config import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NOT_ROAD_INDEX,
    NUM_CLASSES,
    ModelConfig,
    tta_preset,
)
from drivingseg.model.data import fine_from_coarse, load_training_pair, read_fine_labels
from drivingseg.model.device import torch_device
from drivingseg.model.distill import load_teacher, teacher_models, teacher_targets
from drivingseg.model.ensemble import Ensemble
from drivingseg.model.fine import FineHead, fine_loss
from drivingseg.model.infer import Segmenter
from drivingseg.model.losses import distillation_loss, segmentation_loss, soft_target_loss
from drivingseg.model.metrics import ConfusionMatrix
from drivingseg.model.resume import (
    check_resumable,
    keep_previous,
    prune_window,
    read_state_info,
    restore,
    restore_window,
    run_config,
    run_ended,
    save_window_member,
    weights_digest,
)
from drivingseg.model.train_config import DataSource, TrainConfig
from drivingseg.model.unet import UNet, count_parameters

__all__ = ["adjusted", "average_weights", "class_weights", "load_sources", "train"]

log = logging.getLogger(__name__)
ROAD = CLASS_NAMES.index("road")


def load_sources(sources: tuple[DataSource, ...], *, fine: bool = False,
                 num_classes: int = NUM_CLASSES, lidar: bool = False) -> list[Sample]:
    """Read every frame of ``sources`` into memory (images at full size), with ``fine``
    labels as well (:func:`~drivingseg.model.data.read_fine_labels`) and, for a model
    that takes them, ``lidar`` channels (synthetic drives only, checked by the config);
    for a model of ``num_classes`` 2 (background, road) a car is background, as it is
    "not road"."""
    from drivingseg.model.data import synthetic_frames, synthetic_lidar

    samples: list[Sample] = []
    for src in sources:
        if src.synthetic_seed is not None:
            seed, count, step = src.synthetic_seed, src.synthetic_frames, src.synthetic_step
            frames = synthetic_frames(seed, count, step)
            channels = synthetic_lidar(seed, count, step) if lidar else [None] * len(frames)
            samples += [Sample(img, lbl, planes, fine=fine_from_coarse(lbl) if fine else None)
                        for (img, lbl), planes in zip(frames, channels, strict=True)]
        else:
            samples += [Sample(*load_training_pair(f), fine=read_fine_labels(f) if fine else None)
                        for f in src.files()]
    for s in samples:  # (the class ids beyond the model's, which crashed the loss)
        s.labels[(s.labels >= num_classes) & (s.labels < NOT_ROAD_INDEX)] = 0
    return samples


def class_weights(
    samples: list[Sample], num_classes: int, cap: float = 10.0, power: float = 1.0
) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus): ``(median(freq) / freq_c) ** power``, capped.

    ``power`` < 1 softens the balancing: full weights buy car recall with many false
    positives (precision 0.69 against recall 0.87 on held-out CamVid), which costs IoU.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    present = np.zeros(num_classes, dtype=np.int64)
    for s in samples:
        c = np.bincount(s.labels.ravel(), minlength=256)[:num_classes]
        counts += c
        present += (c > 0) * int(np.count_nonzero(s.labels != IGNORE_INDEX))  # labelled pixels
    freq = counts / np.maximum(present, 1)
    w = np.where(freq > 0, np.median(freq[freq > 0]) / np.maximum(freq, 1e-12), 1.0)
    return torch.tensor(np.minimum(w**power, cap), dtype=torch.float32)


def _initial_state(cfg: TrainConfig) -> UNet:
    """The model of ``cfg.init_from``, with a saved logit adjustment taken back out (the
    head is trained raw and adjusted again when saved)."""
    assert cfg.init_from is not None
    ckpt = load_checkpoint(cfg.init_from)
    model = ckpt.model
    if isinstance(model, Ensemble):
        message = ("init_from: this is an ensemble manifest; a training starts from one "
                   "network (name one of its members), an ensemble can be a teacher "
                   "(distill_from)")
        raise ModelError(message, path=cfg.init_from)
    if ckpt.config != cfg.model:
        model = _grafted(model, cfg.model, cfg.init_from)
    saved = ckpt.notes.get("logit_adjustment")
    if isinstance(saved, list) and len(saved) == cfg.model.num_classes:
        return adjusted(model, -torch.tensor(saved, dtype=torch.float32))
    return model


def _grafted(source: UNet, config: ModelConfig, path: os.PathLike[str]) -> UNet:
    """A ``config`` model holding every weight of ``source``, a model without the context
    module that ``config`` adds; the new module starts as the identity (its output conv
    is zero), so the grafted model computes what ``source`` did and training goes on."""
    if replace(source.config, context=config.context) != config or \
            source.config.context != "none":
        message = (f"init_from: checkpoint config {source.config!r} differs from {config!r} "
                   "(only adding a context module to a model without one is allowed)")
        raise ModelError(message, path=path)
    model = UNet(config)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("context.") for k in missing), (missing, unexpected)
    log.info("init_from: added context module %r to %s", config.context, path)
    return model


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def validate(model: UNet, cfg: TrainConfig, samples: list[Sample], device: torch.device
             ) -> dict[str, Any]:
    """Confusion matrix over ``samples`` at the labels' own size (as ``drivingseg eval``)."""
    seg = Segmenter.from_model(model, cfg.input, device=device, fp16=False)
    cm = ConfusionMatrix(CLASS_NAMES[: cfg.model.num_classes])
    for s in samples:
        labels, pred = s.labels, seg(s.image, s.lidar, probabilities=False).class_ids
        if NOT_ROAD_INDEX in labels:  # KITTI road: a car counts as not road (drivingseg eval)
            labels = np.where(labels == NOT_ROAD_INDEX, 0, labels)
            pred = np.where(pred == ROAD, pred, 0)
        cm.update(labels, pred)
    scores = {c.name: c.iou for c in cm.scores()}
    return {"iou": scores, "mean_iou": cm.mean_iou(), "pixels": int(cm.matrix.sum())}


def _lr(cfg: TrainConfig, step: int, total: int, elapsed_s: float) -> float:
    progress = step / max(total, 1)
    if cfg.time_limit_min:
        progress = max(progress, elapsed_s / (60.0 * cfg.time_limit_min))
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return cfg.lr * warm * max(0.0, 1.0 - min(progress, 1.0)) ** 0.9


def _seed_of(*entropy: int) -> int:
    """A 32-bit seed drawn from ``entropy`` (run seed, epoch, rank) by ``SeedSequence``."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def train(cfg: TrainConfig, *, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run the whole training described by ``cfg``; returns a summary (best scores, times)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:  # named with the config file, as every other key of it is
        device = torch_device(cfg.device, "train.device")
    except ModelError as exc:
        raise ModelError(exc.message, path=exc.path or cfg.path) from exc
    if distributed:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    rank = dist.get_rank() if distributed else 0
    main = rank == 0
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # The checkpoints the config names, checked before the data (and the teachers' pass),
    # and before seeding: building their networks draws random numbers
    initial = _initial_state(cfg) if cfg.init_from is not None and not resume else None
    for path in cfg.distill_from:
        load_teacher(path, cfg.model)
    _seed_everything(cfg.seed + rank)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        check_resumable(cfg, read_state_info(out / "last"))
    t_load = time.perf_counter()
    classes = cfg.model.num_classes
    lidar = cfg.model.uses_lidar
    train_samples = load_sources(cfg.train_sources, fine=cfg.fine_weight > 0,
                                 num_classes=classes, lidar=lidar)
    val_samples = load_sources(cfg.val_sources, num_classes=classes, lidar=lidar) if main else []
    log.info("loaded %d training and %d validation frames in %.1f s", len(train_samples),
             len(val_samples), time.perf_counter() - t_load)
    weights = class_weights(train_samples, cfg.model.num_classes,
                            power=cfg.class_weight_power).to(device)
    shift = -torch.log(weights) if cfg.logit_adjust else None
    shift_note = None if shift is None else [round(float(v), 6) for v in shift]
    log.info("class weights %s", [round(float(w), 3) for w in weights])
    model = UNet(cfg.model).to(device)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)  # type: ignore[call-overload]
    log.info("U-Net %s: %d parameters", cfg.model.to_dict(), count_parameters(model))
    fine_head = None
    if cfg.fine_weight > 0:
        fine_head = FineHead(model).to(device, memory_format=layout)  # type: ignore[call-overload]
    trained: torch.nn.Module = model if fine_head is None else fine_head
    stored = cfg.distill_tta != "off"
    teachers = [] if stored else teacher_models(cfg.distill_from, cfg.model, device, layout,
                                                cfg.input)
    if stored:
        train_samples = teacher_targets(
            cfg.distill_from, train_samples, tta_preset(cfg.distill_tta), cfg.model,
            device=device, fp16=cfg.amp, show_progress=show_progress and main)
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, step, best, history = 0, 0, -1.0, []
    elapsed_before = 0.0
    recent: deque[tuple[int, dict[str, torch.Tensor]]] = deque(maxlen=max(cfg.average_last, 1))
    if initial is not None:
        model.load_state_dict(initial.state_dict())
    info: dict[str, Any] = {}
    if resume:
        info = restore(cfg, model, opt, None if fine_head is None else fine_head.head,
                       repair=main)
        start_epoch, step = int(info["epoch"]) + 1, int(info["step"])
        best, history = float(info.get("best", -1.0)), list(info.get("history", []))
        elapsed_before = float(info.get("elapsed_s", 0.0))
        if cfg.average_last and main:
            recent.extend(restore_window(out, info))
    elif cfg.average_last and main:
        prune_window(out, ())  # a new run in this out_dir: no epoch of an earlier one
    net = trained
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    autocast = cfg.amp  # on the CPU, bfloat16 autocast when asked (exercises the same path)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    if scaler.is_enabled() and info.get("grad_scaler"):  # else the scale starts over
        scaler.load_state_dict(info["grad_scaler"])
    aug = Augmenter(cfg.input, scale_range=cfg.scale_range, flip=True, jitter=cfg.jitter)
    paste = None
    if cfg.copy_paste > 0:
        paste = CopyPaste(train_samples, CLASS_NAMES.index("car"), cfg.copy_paste)
        log.info("copy-paste: cars of %d donor frames, probability %.2f", len(paste.donors),
                 cfg.copy_paste)
    dataset = SegmentationDataset(train_samples, cfg.input, aug, paste)
    # The shuffle has a generator of its own, reseeded each epoch: the loader also draws
    # its workers' base seed from its generator, once for persistent workers, so a shared
    # one would shuffle a resumed run's first epoch differently.
    shuffle_gen = torch.Generator()
    sampler: DistributedSampler[Any] | RandomSampler = (
        DistributedSampler(dataset, seed=cfg.seed) if distributed
        else RandomSampler(dataset, generator=shuffle_gen))
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                        num_workers=cfg.num_workers, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed),
                        pin_memory=device.type == "cuda",
                        worker_init_fn=seed_worker, persistent_workers=cfg.num_workers > 0)
    if len(loader) == 0:
        frames = len(sampler)
        message = (f"train.batch_size: {cfg.batch_size!r} is more than the {frames} training "
                   f"frames{' of each process' if distributed else ''}; no batch to train on")
        raise ModelError(message, path=cfg.path)
    resolved = run_config(cfg)
    total_steps = cfg.epochs * len(loader)
    t0 = time.perf_counter() - elapsed_before
    from drivingseg.cli._common import progress

    window: dict[int, str] = {e: weights_digest(s) for e, s in recent}
    last_epoch = cfg.epochs
    if resume and run_ended(cfg, info):  # stopped while writing averaged.*: only that is left
        log.info("resume: the run had ended; writing its averaged.*")
        last_epoch = start_epoch
    for epoch in range(start_epoch, last_epoch):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        # Seeds of (run seed, epoch[, rank]) through SeedSequence: distinct for every
        # combination (seed + epoch made seed 0's epoch 1 shuffle like seed 1's epoch 0).
        dataset.reseed(_seed_of(cfg.seed, epoch, rank))
        shuffle_gen.manual_seed(_seed_of(cfg.seed, epoch))
        net.train()
        losses: list[float] = []
        batches = progress(loader, total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           unit="batch") \
            if show_progress and main else loader
        for batch in batches:
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step, total_steps, time.perf_counter() - t0)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            x, y = batch["input"].contiguous(memory_format=layout), batch["labels"]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=autocast):
                outputs = net(x)
                with torch.no_grad():
                    taught = [t(x) for t in teachers]
            logits, fine_logits = outputs if isinstance(outputs, tuple) else (outputs, None)
            loss = segmentation_loss(logits, y, weights, cfg.dice_weight, cfg.lovasz_weight)
            if taught:
                loss = loss + cfg.distill_weight * distillation_loss(
                    logits, taught, y, shift, cfg.distill_temperature)
            if "soft" in batch:
                loss = loss + cfg.distill_weight * soft_target_loss(
                    logits, batch["soft"], y, shift)
            if fine_logits is not None:
                loss = loss + cfg.fine_weight * fine_loss(fine_logits, batch["fine"])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            step += 1
        elapsed = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch, "step": step, "loss": float(np.mean(losses)),
                                  "elapsed_s": round(elapsed, 1)}
        _check_finite(trained, epoch, record["loss"], cfg)
        if main:
            if val_samples and (epoch + 1) % cfg.val_every == 0:
                record["val"] = validate(adjusted(model, shift), cfg, val_samples, device)
            history.append(record)
            score = record.get("val", {}).get("mean_iou")
            notes = {"epoch": epoch, "step": step, "elapsed_s": round(elapsed, 1),
                     "val": record.get("val"), "config": str(cfg.path)}
            # best.* before the state that records its score: a save cut short resumes from
            # the epoch before, re-runs this one (bit-identically) and writes best.* again
            if score is not None and score > best:
                best = float(score)
                save_checkpoint(out / "best", adjusted(model, shift), cfg.model, cfg.input,
                                {**notes, "logit_adjustment": shift_note})
            if cfg.average_last:
                recent.append((epoch, {k: v.detach().to("cpu", copy=True)
                                       for k, v in model.state_dict().items()}))
                window[epoch] = save_window_member(out, epoch, recent[-1][1])
                window = {e: window[e] for e, _ in recent}
            # state first, weights last: resume checks that the four files match; this
            # epoch's window file comes before them, the dropped epoch's goes after them
            state = {"epoch": epoch, "step": step, "best": best, "history": history,
                     "elapsed_s": elapsed, "config": resolved,
                     "weights_sha256": weights_digest(model),
                     "average_window": [[e, d] for e, d in window.items()],
                     "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None}
            keep_previous(out)  # resumable from if this save is cut short
            save_training_state(out / "last", opt, state,
                                None if fine_head is None else fine_head.head)
            save_checkpoint(out / "last", model, cfg.model, cfg.input, notes)
            if cfg.average_last:
                prune_window(out, tuple(window))
            log.info("epoch %d: %s", epoch + 1, record)
        stop = cfg.time_limit_min and elapsed >= 60.0 * cfg.time_limit_min
        if distributed:
            flag = torch.tensor([1 if stop else 0], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            log.info("time limit of %s min reached after epoch %d", cfg.time_limit_min, epoch + 1)
            break
    averaged = None
    if main and cfg.average_last and recent:
        averaged = _save_average(cfg, [e for e, _ in recent], [s for _, s in recent],
                                 val_samples, device, shift, weights, step)
    if distributed:
        # DDP's reducer sits in a reference cycle with the gloo group; left to the collector at
        # interpreter exit, the group's threads abort the finished process, so free it first.
        dist.barrier()
        del net, model, opt, trained, fine_head
        gc.collect()
        dist.destroy_process_group()
    return {"best_mean_iou": best, "history": history, "steps": step,
            "elapsed_s": time.perf_counter() - t0, "out_dir": str(out), "averaged": averaged}


def _check_finite(model: torch.nn.Module, epoch: int, loss: float, cfg: TrainConfig) -> None:
    """ModelError when training has made a weight NaN or infinite (diverged): before this
    epoch is saved, so ``last.*``, the resume point, keeps the last finite weights. DDP
    replicas hold the same weights, so every rank stops here alike."""
    if all(bool(torch.isfinite(v).all()) for v in model.state_dict().values()
           if v.is_floating_point()):
        return
    kept = f"last.* keeps epoch {epoch}" if epoch else "no epoch was saved"
    message = (f"training diverged in epoch {epoch + 1} (mean loss {loss:.4g}): weights are "
               f"NaN or infinite, so they are not saved ({kept}); lower train.lr "
               f"({cfg.lr!r}) and start again, or init_from the last finite weights")
    raise ModelError(message, path=cfg.path)


def _save_average(cfg: TrainConfig, epochs: list[int], states: list[dict[str, torch.Tensor]],
                  val_samples: list[Sample], device: torch.device, shift: torch.Tensor | None,
                  weights: torch.Tensor, step: int) -> dict[str, Any]:
    """Write ``averaged.*``: the mean weights of the last ``average_last`` epochs (scored on
    the validation frames when there are some), its JSON recording the epochs, the class
    weights, the logit shift and the step; after ``--resume`` the same epochs, read back
    from ``average_window/``."""
    model = UNet(cfg.model)
    model.load_state_dict(average_weights(states))
    model = adjusted(model.to(device).eval(), shift)
    record: dict[str, Any] = {"epochs": epochs}
    if val_samples:
        record["val"] = validate(model, cfg, val_samples, device)
    save_checkpoint(cfg.out_dir / "averaged", model, cfg.model, cfg.input,
                    {"averaged_epochs": epochs, "step": step, "val": record.get("val"),
                     "config": str(cfg.path),
                     "class_weights": [round(float(w), 6) for w in weights],
                     "logit_adjustment": None if shift is None
                     else [round(float(v), 6) for v in shift]})
    log.info("averaged the weights of epochs %s: %s", [e + 1 for e in epochs], record)
    return record
