"""A tiny real training run: loss falls; checkpoints, resume, CPU autocast, config errors."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drivingseg.errors import ConfigError, ModelError
from drivingseg.model.augment import Sample, SegmentationDataset
from drivingseg.model.checkpoint import (
    default_weights,
    ensemble_weights,
    load_checkpoint,
    save_checkpoint,
)
from drivingseg.model.config import IGNORE_INDEX, InputSpec, ModelConfig
from drivingseg.model.losses import segmentation_loss
from drivingseg.model.train import (
    adjusted,
    average_weights,
    class_weights,
    load_sources,
    train,
)
from drivingseg.model.train_config import DataSource, TrainConfig, load_train_config
from drivingseg.model.unet import UNet

train_module = importlib.import_module("drivingseg.model.train")  # not the function


def test_a_few_steps_on_real_frames_reduce_the_loss(small_camvid: Path) -> None:
    torch.manual_seed(0)
    samples = load_sources((DataSource(path=small_camvid),))
    assert len(samples) == 3
    dataset = SegmentationDataset(samples, InputSpec(width=64, height=48))
    pairs = [dataset[i] for i in range(len(dataset))]
    xb = torch.stack([p["input"] for p in pairs])
    yb = torch.stack([p["labels"] for p in pairs])
    model = UNet(ModelConfig(depth=2, base_channels=8))
    weights = class_weights(samples, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = segmentation_loss(model(xb), yb, weights, dice_weight=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def test_class_weights_favour_rare_cars(small_camvid: Path) -> None:
    w = class_weights(load_sources((DataSource(path=small_camvid),)), 3)
    assert w[2] > w[1] and w[2] > w[0]


def _write_config(tmp_path: Path, data: Path, **train: object) -> Path:
    cfg = {
        "out_dir": "run",
        "seed": 1,
        "model": {"depth": 2, "base_channels": 4},
        "input": {"width": 48, "height": 32},
        "data": {"train": [{"path": str(data / "val")}],
                 "val": [{"path": str(data / "val"), "include_sequences": ["0006R0"]}]},
        "train": {"epochs": 2, "batch_size": 2, "num_threads": 2, "warmup_steps": 1, **train},
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def test_train_writes_checkpoints_and_resumes(tmp_path: Path, small_camvid: Path) -> None:
    cfg = load_train_config(_write_config(tmp_path, small_camvid))
    summary = train(cfg, show_progress=False)
    out = tmp_path / "run"
    for name in ("last.safetensors", "last.json", "last.state.safetensors", "best.json"):
        assert (out / name).is_file()
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert 0.0 <= summary["history"][-1]["val"]["mean_iou"] <= 1.0
    more = load_train_config(_write_config(tmp_path, small_camvid, epochs=3))
    resumed = train(more, resume=True, show_progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert resumed["steps"] == 3


def test_cpu_bfloat16_channels_last_training_saves_a_usable_checkpoint(
    tmp_path: Path, small_camvid: Path,
) -> None:
    """amp on the CPU (bfloat16 autocast) with channels-last memory and car copy-paste."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=2, amp=True,
                                          channels_last=True, copy_paste=0.5))
    assert cfg.amp and cfg.channels_last and cfg.copy_paste == 0.5
    summary = train(cfg, show_progress=False)
    assert summary["steps"] == 2
    ckpt = load_checkpoint(tmp_path / "run" / "last")
    assert all(p.dtype == torch.float32 and p.is_contiguous() and torch.isfinite(p).all()
               for p in ckpt.model.state_dict().values() if p.is_floating_point())
    assert 0.0 <= summary["history"][-1]["val"]["mean_iou"] <= 1.0


def test_average_of_the_last_epochs(tmp_path: Path, small_camvid: Path) -> None:
    """``average_last: 2`` writes averaged.*, scored on the validation frames; it differs
    from the last epoch's weights, which ``average_last: 1`` reproduces exactly."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=3, average_last=2))
    summary = train(cfg, show_progress=False)
    assert summary["averaged"]["epochs"] == [1, 2]
    assert 0.0 <= summary["averaged"]["val"]["mean_iou"] <= 1.0
    out = tmp_path / "run"
    avg = load_checkpoint(out / "averaged")
    assert avg.notes["averaged_epochs"] == [1, 2] and avg.notes["step"] == summary["steps"]
    # The class weights are recorded (MODEL.md says so; only hand edits had put them there).
    weights = avg.notes["class_weights"]
    assert len(weights) == 3 and weights[1] == pytest.approx(1.0)
    last = load_checkpoint(out / "last").model.state_dict()
    assert not torch.equal(avg.model.state_dict()["head.weight"], last["head.weight"])
    one = tmp_path / "one"
    one.mkdir()
    train(load_train_config(_write_config(one, small_camvid, epochs=3, average_last=1)),
          show_progress=False)
    single = load_checkpoint(one / "run" / "averaged").model.state_dict()
    for key, value in load_checkpoint(one / "run" / "last").model.state_dict().items():
        torch.testing.assert_close(single[key], value, rtol=0, atol=0)


def test_logit_adjustment_shifts_the_scores_by_minus_log_weight(
    tmp_path: Path, small_camvid: Path,
) -> None:
    """best.* of a logit_adjust run holds the head bias of last.* minus log(class weight)."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=1, logit_adjust=True,
                                          average_last=1))
    train(cfg, show_progress=False)
    out = tmp_path / "run"
    weights = class_weights(load_sources(cfg.train_sources), 3)
    raw = load_checkpoint(out / "last").model.head.bias
    for name in ("best", "averaged"):
        ckpt = load_checkpoint(out / name)
        torch.testing.assert_close(ckpt.model.head.bias, raw - torch.log(weights))
        assert ckpt.notes["logit_adjustment"] == pytest.approx((-torch.log(weights)).tolist(),
                                                               abs=1e-5)
    model = UNet(ModelConfig(depth=2, base_channels=4)).eval()
    shift = torch.tensor([0.5, 0.0, -1.0])
    x = torch.randn(1, 3, 16, 16)
    moved = adjusted(model, shift)
    assert moved is not model and adjusted(model, None) is model
    torch.testing.assert_close(moved(x), model(x) + shift.view(1, 3, 1, 1))


def test_average_weights_is_the_mean_of_floats_and_the_last_of_counters() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    avg = average_weights([a, b])
    torch.testing.assert_close(avg["w"], torch.tensor([2.0, 4.0]))
    assert int(avg["n"]) == 7


def test_average_weights_refuses_nothing() -> None:
    with pytest.raises(ModelError, match=r"at least one state dict"):
        average_weights([])


def test_resume_with_a_different_model_is_refused(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before any frame is loaded (or any teacher target computed, which may take many
    minutes), as other changed settings; a state without the model keys (an older run)
    is still refused when the checkpoint is read."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)), show_progress=False)
    path = _write_config(tmp_path, small_camvid, epochs=2)
    text = path.read_text().replace('"base_channels": 4', '"base_channels": 8')
    path.write_text(text)

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("frames loaded before the model config was checked")

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "load_sources", no_loading)
        with pytest.raises(ModelError, match=r"train\.yaml: resume: model\.base_channels is 8 "
                                             r"but the run being resumed used 4"):
            train(load_train_config(path), resume=True, show_progress=False)
    meta_path = tmp_path / "run" / "last.state.json"
    meta = json.loads(meta_path.read_text())
    meta["info"]["config"] = {k: v for k, v in meta["info"]["config"].items()
                              if not k.startswith("model.")}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"resume: checkpoint config .* differs"):
        train(load_train_config(path), resume=True, show_progress=False)


def test_init_from_starts_a_fine_tuning_stage_from_saved_weights(
    tmp_path: Path, small_camvid: Path,
) -> None:
    """``init_from`` loads the weights (a saved logit adjustment taken back out), not the
    optimiser; with a zero learning rate the parameters come out as they went in."""
    first = tmp_path / "first"
    first.mkdir()
    train(load_train_config(_write_config(first, small_camvid, epochs=1, logit_adjust=True)),
          show_progress=False)
    raw = load_checkpoint(first / "run" / "last").model
    best = load_checkpoint(first / "run" / "best")
    assert best.notes["logit_adjustment"] is not None
    for start in ("last.safetensors", "best.safetensors"):
        path = _write_config(tmp_path, small_camvid, epochs=1, lr=0.0,
                             init_from=str(first / "run" / start))
        cfg = load_train_config(path)
        assert cfg.init_from == first / "run" / start
        summary = train(cfg, show_progress=False)
        assert summary["history"][0]["epoch"] == 0  # a new run, not a resume
        tuned = load_checkpoint(tmp_path / "run" / "last").model.state_dict()
        for key, value in raw.state_dict().items():
            if "running_" not in key and "num_batches" not in key:  # parameters, not stats
                torch.testing.assert_close(tuned[key], value, atol=1e-6, rtol=0, msg=key)
    wider = _write_config(tmp_path, small_camvid, init_from=str(first / "run" / "last"))
    wider.write_text(wider.read_text().replace('"base_channels": 4', '"base_channels": 8'))
    with pytest.raises(ModelError, match=r"init_from: checkpoint config .* differs"):
        train(load_train_config(wider), show_progress=False)
    gone = _write_config(tmp_path, small_camvid, init_from=str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match=r"nothing"):
        train(load_train_config(gone), show_progress=False)


def test_init_from_grafts_a_context_module_that_starts_as_the_identity(
    tmp_path: Path, small_camvid: Path,
) -> None:
    """A model with ``context: aspp`` may start from a checkpoint without one: every saved
    weight is loaded and the new module adds nothing until it is trained."""
    first = tmp_path / "first"
    first.mkdir()
    train(load_train_config(_write_config(first, small_camvid, epochs=1)), show_progress=False)
    source = load_checkpoint(first / "run" / "last").model.eval()
    path = _write_config(tmp_path, small_camvid, epochs=1, lr=0.0,
                         init_from=str(first / "run" / "last"))
    path.write_text(path.read_text().replace('"base_channels": 4', '"base_channels": 4, '
                                             '"context": "aspp"'))
    train(load_train_config(path), show_progress=False)
    grafted = load_checkpoint(tmp_path / "run" / "last")
    assert grafted.config.context == "aspp"
    state = grafted.model.state_dict()
    assert any(k.startswith("context.") for k in state)
    for key, value in source.state_dict().items():
        if "running_" not in key and "num_batches" not in key:
            torch.testing.assert_close(state[key], value, atol=1e-6, rtol=0, msg=key)
    back = _write_config(tmp_path / "first", small_camvid,
                         init_from=str(tmp_path / "run" / "last"))
    with pytest.raises(ModelError, match=r"only adding a context module to a model without"):
        train(load_train_config(back), show_progress=False)


def test_config_errors(tmp_path: Path, small_camvid: Path) -> None:
    path = _write_config(tmp_path, small_camvid, learning_rate=1)
    with pytest.raises(ConfigError, match=r"train\.yaml: unknown train key 'learning_rate'"):
        load_train_config(path)
    path.write_text("data: {train: []}")
    with pytest.raises(ConfigError, match=r"data\.train must list at least one source"):
        load_train_config(path)
    with pytest.raises(ConfigError, match=r"missing\.yaml: training config not found"):
        load_train_config(tmp_path / "missing.yaml")
    path.write_text("data: {train: [{pth: x}]}")
    with pytest.raises(ConfigError, match=r"a data source needs 'path: DIR'"):
        load_train_config(path)
    path = _write_config(tmp_path, small_camvid, copy_paste=2)
    with pytest.raises(ConfigError, match=r"train\.yaml: train\.copy_paste: 2\.0 is not a "
                                         r"probability"):
        load_train_config(path)


def test_distillation_from_saved_teachers(tmp_path: Path, small_camvid: Path) -> None:
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    train(load_train_config(_write_config(teacher_dir, small_camvid, epochs=1,
                                          logit_adjust=True)), show_progress=False)
    teacher = teacher_dir / "run" / "best.safetensors"
    student = tmp_path / "student"
    student.mkdir()
    cfg = load_train_config(_write_config(student, small_camvid, epochs=2, logit_adjust=True,
                                          distill_from=[str(teacher), str(teacher)],
                                          distill_weight=1.0, distill_temperature=2.0))
    assert cfg.distill_from == (teacher, teacher) and cfg.distill_temperature == 2.0
    plain = load_train_config(_write_config(tmp_path, small_camvid, epochs=2, logit_adjust=True))
    taught = train(cfg, show_progress=False)["history"]
    alone = train(plain, show_progress=False)["history"]
    assert taught[0]["loss"] > alone[0]["loss"]  # the same run with a KL term on top
    assert (student / "run" / "last.safetensors").is_file()
    lidar = ModelConfig(depth=2, base_channels=4, in_channels=7)
    wide = save_checkpoint(tmp_path / "lidar_teacher", UNet(lidar), lidar, InputSpec(48, 32))
    path = _write_config(student, small_camvid, distill_from=[str(wide)], num_threads=1)
    with pytest.raises(ModelError, match=r"lidar_teacher\.safetensors: distill_from: teacher "
                                         r"takes 7 channels and predicts 3 classes; the "
                                         r"student 3 and 3"):
        train(load_train_config(path), show_progress=False)
    with pytest.raises(ConfigError, match=r"train\.distill_from: expected a list"):
        load_train_config(_write_config(student, small_camvid, distill_from=str(teacher)))


def test_set_overrides_any_key_with_a_yaml_value(tmp_path: Path, small_camvid: Path) -> None:
    path = _write_config(tmp_path, small_camvid)
    cfg = load_train_config(path, ["model.base_channels=6", "train.num_workers=3",
                                   "train.scale_range=[0.5, 2]", "seed=9"], epochs=4)
    assert cfg.model.base_channels == 6 and cfg.num_workers == 3 and cfg.seed == 9
    assert cfg.scale_range == (0.5, 2.0) and cfg.epochs == 4
    with pytest.raises(ConfigError, match=r"train\.yaml: --set expects SECTION\.KEY=VALUE"):
        load_train_config(path, ["model.base_channels"])
    with pytest.raises(ConfigError, match=r"--set 'seed\.x=1': 'seed' is not a section"):
        load_train_config(path, ["seed.x=1"])
    with pytest.raises(ConfigError, match=r"unknown train key 'speed'"):
        load_train_config(path, ["train.speed=3"])


def test_set_paths_are_relative_to_the_working_directory(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs").mkdir()
    path = _write_config(tmp_path / "configs", small_camvid)
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(path, ["train.init_from=runs/a/last.safetensors",
                                   "train.distill_from=[runs/t.json, /abs/u.json]",
                                   "out_dir=runs/b"])
    assert cfg.init_from == tmp_path / "runs" / "a" / "last.safetensors"
    assert cfg.distill_from == (tmp_path / "runs" / "t.json", Path("/abs/u.json"))
    assert cfg.out_dir == tmp_path / "runs" / "b"
    monkeypatch.setenv("RUNS", str(tmp_path / "elsewhere"))
    late = load_train_config(path, ["train.init_from=$RUNS/last.safetensors"])
    assert late.init_from == tmp_path / "elsewhere" / "last.safetensors"


def test_shipped_names_are_checkpoints_in_set_and_config(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'ensemble' and 'default' (what --weights takes) became ./ensemble and ./default."""
    path = _write_config(tmp_path, small_camvid)
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(path, ["train.init_from=default",
                                   "train.distill_from=[ensemble, default]"])
    assert cfg.init_from == default_weights()
    assert cfg.distill_from == (ensemble_weights(), default_weights())
    assert all(p.is_file() for p in (*cfg.distill_from, cfg.init_from))
    in_file = _write_config(tmp_path, small_camvid, distill_from=["ensemble"])
    assert load_train_config(in_file).distill_from == (ensemble_weights(),)


def test_gpu_run_lists_parse_and_point_inside_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """scripts/gpu_check.sh runs each line from the repository root; a teacher path that
    resolved outside it would fail only on the lent GPU, minutes into its time."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    lines = [line.split() for f in sorted((root / "configs" / "gpu_runs").glob("*.txt"))
             for line in f.read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) >= 10
    for _name, config, *rest in lines:
        sets = [item for flag, item in zip(rest[::2], rest[1::2], strict=True)
                if flag == "--set"]
        assert len(sets) * 2 == len(rest), rest
        cfg = load_train_config(root / config, sets)
        for teacher in cfg.distill_from:
            assert teacher.resolve().is_relative_to(root), teacher


def test_default_config_parses() -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    cfg = load_train_config(configs / "train_default.yaml")
    assert cfg.input == InputSpec(width=384, height=288) and cfg.class_weight_power == 0.5
    assert cfg.average_last == 10 and cfg.logit_adjust and cfg.amp and cfg.channels_last
    assert cfg.val_sources == () and not cfg.train_sources[0].exclude_sequences
    held = load_train_config(configs / "train_holdout.yaml")
    assert held.val_sources[0].include_sequences == ("0006R0",)
    assert "0006R0" in held.train_sources[0].exclude_sequences
    same = ("input", "model", "epochs", "time_limit_min", "lr", "batch_size", "dice_weight",
            "class_weight_power", "jitter", "scale_range", "average_last", "logit_adjust")
    assert all(getattr(cfg, k) == getattr(held, k) for k in same)
    stage2 = load_train_config(configs / "train_default_ft.yaml")
    held2 = load_train_config(configs / "train_holdout_ft.yaml")
    assert stage2.init_from == cfg.out_dir / "last.safetensors"
    assert held2.init_from == held.out_dir / "last.safetensors"
    assert all(getattr(stage2, k) == getattr(held2, k) for k in (*same, "seed"))
    stage3 = load_train_config(configs / "train_default_ctx.yaml")
    held3 = load_train_config(configs / "train_holdout_ctx.yaml")
    assert stage3.init_from == stage2.out_dir / "averaged.safetensors"
    assert held3.init_from == held2.out_dir / "averaged.safetensors"
    assert stage3.model.context == "aspp" and stage3.lovasz_weight > 0
    same3 = (*(k for k in same if k != "model"), "seed", "lovasz_weight")
    assert stage3.model == held3.model and all(
        getattr(stage3, k) == getattr(held3, k) for k in same3)
    gpu = load_train_config(configs / "train_gpu_default.yaml")
    gpu_held = load_train_config(configs / "train_gpu_holdout.yaml")
    assert gpu.device == gpu_held.device == "cuda" and gpu.num_workers > 0
    assert gpu.val_sources == () and gpu_held.val_sources == held.val_sources
    assert gpu.train_sources == cfg.train_sources and gpu_held.train_sources == held.train_sources
    same_gpu = tuple(k for k in same if k not in ("epochs", "time_limit_min", "average_last"))
    assert all(getattr(gpu, k) == getattr(cfg, k) == getattr(gpu_held, k) for k in same_gpu)
    kd = load_train_config(configs / "train_default_kd_ens.yaml")
    kd_held = load_train_config(configs / "train_holdout_kd_ens.yaml")
    assert kd.distill_from[0].resolve() == ensemble_weights()  # the shipped ensemble teaches
    stage2 = default_weights().with_name("unet_rgb_cpu.safetensors")  # what stage 3 restarts
    assert kd.init_from is not None and kd.init_from.resolve() == stage2
    assert stage2.name in json.loads(ensemble_weights().read_text())["members"]
    assert kd.train_sources == cfg.train_sources and kd_held.train_sources == held.train_sources
    same_kd = (*same, "seed", "distill_weight", "distill_temperature")
    assert all(getattr(kd, k) == getattr(kd_held, k) for k in same_kd)


def test_ddp_on_the_cpu_with_torchrun(tmp_path: Path, small_camvid: Path) -> None:
    """Two gloo processes: each trains on half the frames; rank 0 writes the checkpoint."""
    import subprocess
    import sys

    config = _write_config(tmp_path, small_camvid, epochs=1, batch_size=1, num_threads=1)
    script = tmp_path / "run_train.py"
    script.write_text(
        "import argparse, sys\n"
        "from drivingseg.cli import cmd_train\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(); cmd_train.add_parser(s)\n"
        "a = p.parse_args(['train', '--config', sys.argv[1]]); sys.exit(a.func(a))\n"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(config)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[:6000]
    steps = [json.loads(line)["steps"] for line in done.stdout.splitlines() if "steps" in line]
    assert steps == [2]  # rank 0 only; 3 frames padded to 4 by DistributedSampler: 2 per rank
    assert (tmp_path / "run" / "last.safetensors").is_file()


def test_class_weights_count_only_labelled_pixels() -> None:
    """A frame's ignored pixels do not dilute the frequency of the classes it shows."""
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    half = np.repeat(np.array([0, 1], dtype=np.uint8), 8).reshape(4, 4)
    few_cars = np.full((4, 4), IGNORE_INDEX, dtype=np.uint8)
    few_cars[0, :2] = 2
    w = class_weights([Sample(image, half), Sample(image, few_cars)], 3)
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 0.5]))  # car freq 2/2, not 2/16


def test_a_batch_larger_than_the_data_is_refused(tmp_path: Path, small_camvid: Path) -> None:
    cfg = load_train_config(_write_config(tmp_path, small_camvid, batch_size=4))
    with pytest.raises(ModelError, match=r"train\.yaml: train\.batch_size: 4 is more than the 3 "
                                         r"training frames; no batch to train on"):
        train(cfg, show_progress=False)


LAST = ("last.safetensors", "last.json", "last.state.safetensors", "last.state.json")


def _drop_previous(run: Path) -> None:
    """Delete previous.*, the save before last.* that a cut-short save resumes from."""
    for name in LAST:
        (run / name.replace("last", "previous")).unlink()


def test_resume_refuses_the_files_of_an_interrupted_save(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C between the training state and the weights of epoch 2 leaves last.* of two
    epochs; so does any other mix of the four files of two saves: resume refuses them all
    when previous.* (the save before, its own test below) is not there to go on from."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)),
          show_progress=False)
    run = tmp_path / "run"
    epoch0 = {name: (run / name).read_bytes() for name in LAST}
    real_save = train_module.save_checkpoint

    def interrupted(path: Path, *args: object, **kwargs: object) -> Path:
        if Path(path).name == "last":
            raise KeyboardInterrupt
        return real_save(path, *args, **kwargs)  # type: ignore[arg-type]

    more = load_train_config(_write_config(tmp_path, small_camvid, epochs=2))
    monkeypatch.setattr(train_module, "save_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(more, resume=True, show_progress=False)
    monkeypatch.undo()
    _drop_previous(run)
    with pytest.raises(ModelError, match=r"last: resume: last\.json is from epoch 0 \(step 1\) "
                                         r"but last\.state\.json from epoch 1 \(step 2\): a save "
                                         r"was interrupted"):
        train(more, resume=True, show_progress=False)
    for name, data in epoch0.items():  # back to epoch 0, then a complete save of epoch 1
        (run / name).write_bytes(data)
    train(more, resume=True, show_progress=False)
    epoch1 = {name: (run / name).read_bytes() for name in LAST}
    again = load_train_config(_write_config(tmp_path, small_camvid, epochs=3))
    _drop_previous(run)
    for mask in range(1, 2 ** len(LAST) - 1):  # every mix of the two saves
        for i, name in enumerate(LAST):
            (run / name).write_bytes((epoch0 if mask >> i & 1 else epoch1)[name])
        with pytest.raises(ModelError, match=r"interrupted"):
            train(again, resume=True, show_progress=False)
    for name, data in epoch1.items():
        (run / name).write_bytes(data)
    assert train(again, resume=True, show_progress=False)["steps"] == 3


@pytest.mark.parametrize(("change", "match"), [
    ({"batch_size": 1}, r"resume: train\.batch_size is 1 but the run being resumed used 2; "
                        r"only train\.epochs, train\.time_limit_min and where it runs "
                        r"\(train\.device, train\.num_threads, train\.num_workers\) may change"),
    ({"lr": 0.01}, r"resume: train\.lr is 0\.01 but the run being resumed used 0\.003"),
    ({"input": 64}, r"resume: input\.width is 64 but the run being resumed used 48"),
    ({"val": "0001TP"}, r"resume: data\.val is .*0001TP.* but the run being resumed used "
                        r".*0006R0"),
])
def test_resume_refuses_a_changed_config(
    tmp_path: Path, small_camvid: Path, change: dict[str, object], match: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only epochs and the time limit may change on --resume: that extends a run. The
    check comes before any frame is loaded."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)),
          show_progress=False)
    path = _write_config(tmp_path, small_camvid, epochs=2, time_limit_min=60,
                         **{k: v for k, v in change.items() if k not in ("input", "val")})
    text = path.read_text().replace('"width": 48', f'"width": {change.get("input", 48)}')
    path.write_text(text.replace('"0006R0"', f'"{change.get("val", "0006R0")}"'))

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("frames loaded before the config was checked")

    monkeypatch.setattr(importlib.import_module("drivingseg.model.train"), "load_sources",
                        no_loading)
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        train(load_train_config(path), resume=True, show_progress=False)


def test_resume_follows_data_that_moved(tmp_path: Path, small_camvid: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """The same folder spelt another way resumes silently; the data at another path (a
    moved checkout) resumes with a warning; only a changed setting is refused."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)),
          show_progress=False)
    spelt = tmp_path / "spelt"
    spelt.symlink_to(small_camvid)
    path = _write_config(tmp_path, spelt / ".." / spelt.name, epochs=2)
    assert train(load_train_config(path), resume=True, show_progress=False)["steps"] == 2
    assert "other paths" not in caplog.text
    moved = shutil.copytree(small_camvid, tmp_path / "moved")
    path = _write_config(tmp_path, moved, epochs=3)
    assert train(load_train_config(path), resume=True, show_progress=False)["steps"] == 3
    assert "resume: data.train names other paths than the run was started with" in caplog.text


def test_resume_may_change_where_a_run_goes(tmp_path: Path, small_camvid: Path) -> None:
    """Threads and loader workers (and the device: a CPU run may go on on a GPU) are not
    what a run learns; a resume with other values goes on."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)),
          show_progress=False)
    path = _write_config(tmp_path, small_camvid, epochs=2, num_threads=1, num_workers=1)
    more = train(load_train_config(path), resume=True, show_progress=False)
    assert [h["epoch"] for h in more["history"]] == [0, 1]


def test_resume_after_the_time_limit_trains_nothing(tmp_path: Path, small_camvid: Path) -> None:
    """A run stopped by its time limit is not trained on (at lr 0) by --resume; a larger
    limit extends it."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=5,
                                          time_limit_min=1e-6))
    assert train(cfg, show_progress=False)["steps"] == 1
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ModelError, match=r"train\.yaml: resume: the run has already used .* "
                                         r"of its train\.time_limit_min 1e-06 .*give a larger "
                                         r"time_limit_min"):
        train(cfg, resume=True, show_progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    longer = load_train_config(_write_config(tmp_path, small_camvid, epochs=2,
                                             time_limit_min=60))
    assert train(longer, resume=True, show_progress=False)["steps"] == 2


def _interrupted_and_resumed(cfg: TrainConfig, step: int,
                             monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Train ``cfg``, interrupted (Ctrl-C) at its ``step``-th training step, then resume it
    to the end; the resumed run's summary."""
    real_loss, calls = train_module.segmentation_loss, [0]

    def loss_that_is_interrupted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == step:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "segmentation_loss", loss_that_is_interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, show_progress=False)
    monkeypatch.setattr(train_module, "segmentation_loss", real_loss)
    return train(cfg, resume=True, show_progress=False)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_interrupted_and_resumed_run_ends_as_an_uninterrupted_one(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch, workers: int,
) -> None:
    """Same weights to the last bit, also with loader workers: those are persistent and
    used to keep the augmentation stream they started with, so a resumed run drew other
    crops than the run it continued (each epoch's seed now reaches them)."""

    def config(folder: str) -> TrainConfig:
        (tmp_path / folder).mkdir()
        return load_train_config(_write_config(tmp_path / folder, small_camvid, epochs=4,
                                               num_workers=workers))

    train(config("straight"), show_progress=False)
    interrupted = config("interrupted")
    resumed = _interrupted_and_resumed(interrupted, 3, monkeypatch)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2, 3]
    a = load_checkpoint(tmp_path / "straight" / "run" / "last").model.state_dict()
    b = load_checkpoint(tmp_path / "interrupted" / "run" / "last").model.state_dict()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_epoch_seeds_differ_for_every_run_seed_epoch_and_rank() -> None:
    """``seed + epoch`` made seed 0's epoch 1 shuffle like seed 1's epoch 0, and
    ``seed*1000 + epoch*10 + rank`` let ranks of 10 and more collide."""
    seed_of = importlib.import_module("drivingseg.model.train")._seed_of
    seeds = {seed_of(s, e, r) for s in range(10) for e in range(10) for r in range(12)}
    assert len(seeds) == 10 * 10 * 12
    assert seed_of(0, 1) != seed_of(1, 0)


def test_a_resumed_run_averages_the_same_epochs_as_an_uninterrupted_one(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``average_last`` kept its window in memory only: a run resumed after epoch 2 of 4
    averaged epochs 3-4 where the uninterrupted run averaged 2-4. The window's weights are
    saved with each epoch and read back."""
    def config(folder: str) -> TrainConfig:
        (tmp_path / folder).mkdir()
        return load_train_config(_write_config(tmp_path / folder, small_camvid, epochs=4,
                                               average_last=3))

    train(config("straight"), show_progress=False)
    interrupted = config("interrupted")
    resumed = _interrupted_and_resumed(interrupted, 3, monkeypatch)
    assert resumed["averaged"]["epochs"] == [1, 2, 3]
    a = load_checkpoint(tmp_path / "straight" / "run" / "averaged")
    b = load_checkpoint(tmp_path / "interrupted" / "run" / "averaged")
    assert a.notes["averaged_epochs"] == b.notes["averaged_epochs"] == [1, 2, 3]
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    window = sorted(p.name for p in (tmp_path / "interrupted" / "run" / "average_window")
                    .iterdir())
    assert window == ["epoch_0001.safetensors", "epoch_0002.safetensors",
                      "epoch_0003.safetensors"]


def test_resume_averages_without_an_epoch_whose_window_file_is_lost(
    tmp_path: Path, small_camvid: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A missing or altered window file is left out with a warning; averaged.* records
    the epochs it did average."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=3, average_last=3)),
          show_progress=False)
    window = tmp_path / "run" / "average_window"
    (window / "epoch_0000.safetensors").unlink()
    shutil.copy(window / "epoch_0002.safetensors", window / "epoch_0001.safetensors")
    more = train(load_train_config(_write_config(tmp_path, small_camvid, epochs=4,
                                                 average_last=3)),
                 resume=True, show_progress=False)
    assert more["averaged"]["epochs"] == [2, 3]
    assert "cannot read the weights of epoch 1 for averaged.*" in caplog.text
    assert "epoch_0001.safetensors holds other weights than epoch 2 saved" in caplog.text


@pytest.mark.parametrize(("field", "value", "match"), [
    ("elapsed_s", None, r"the training state's elapsed_s is None, not int or float"),
    ("step", "7", r"the training state's step is '7', not int"),
    ("history", 5, r"the training state's history is 5, not list"),
    ("average_window", [[0]], r"the training state's average_window is \[\[0\]\], not "
                              r"\[\[epoch, sha256\], \.\.\.\]"),
])
def test_resume_names_a_damaged_field_of_the_training_state(
    tmp_path: Path, small_camvid: Path, field: str, value: object, match: str,
) -> None:
    """A training state whose JSON parses but holds a value of the wrong kind gave a
    TypeError from deep inside the loop (or a misleading mixed-save message)."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=1)),
          show_progress=False)
    meta_path = tmp_path / "run" / "last.state.json"
    meta = json.loads(meta_path.read_text())
    meta["info"][field] = value
    meta_path.write_text(json.dumps(meta))
    more = load_train_config(_write_config(tmp_path, small_camvid, epochs=2))
    with pytest.raises(ModelError, match=r"last\.state\.json: resume: " + match):
        train(more, resume=True, show_progress=False)


def test_a_resumed_run_goes_on_with_the_gradient_scale_it_had(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """float16 AMP on CUDA scales the loss; the scale was not saved, so a resumed run
    started again at 65536 (and skipped steps until it had backed off). A scaler enabled on
    the CPU, growing at every step, stands in for CUDA's here."""
    real_scaler = torch.amp.GradScaler

    def growing(device: str, enabled: bool = True) -> torch.amp.GradScaler:
        return real_scaler("cpu", enabled=True, growth_interval=1)

    monkeypatch.setattr(torch.amp, "GradScaler", growing)
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=2)),
          show_progress=False)
    state = json.loads((tmp_path / "run" / "last.state.json").read_text())["info"]
    assert state["grad_scaler"]["scale"] == 65536.0 * 2**2
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=3)), resume=True,
          show_progress=False)
    state = json.loads((tmp_path / "run" / "last.state.json").read_text())["info"]
    assert state["grad_scaler"]["scale"] == 65536.0 * 2**3


def test_a_diverging_run_stops_before_saving_nan_weights(tmp_path: Path, small_camvid: Path
                                                         ) -> None:
    """An absurd learning rate made the weights NaN in epoch 2; every later epoch then
    saved them over last.* (the resume point) and into averaged.*."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=3, lr=1e12,
                                          average_last=2))
    with pytest.raises(ModelError, match=r"train\.yaml: training diverged in epoch 2 \(mean "
                                         r"loss .*\): weights are NaN or infinite, so they "
                                         r"are not saved \(last\.\* keeps epoch 1\)"):
        train(cfg, show_progress=False)
    last = load_checkpoint(tmp_path / "run" / "last")
    assert last.notes["epoch"] == 0
    assert not (tmp_path / "run" / "averaged.json").exists()


def _camvid_truth(camvid_pair: tuple[Path, Path]) -> np.ndarray:
    """The real frame's CamVid labels as drivingseg ids (its cars included)."""
    from drivingseg.model.data import LabelledFile, read_labels

    return read_labels(LabelledFile(*camvid_pair, "camvid"))


def test_kitti_road_frames_do_not_teach_that_cars_are_background(
    kitti_road_from_camvid: Path, camvid_pair: tuple[Path, Path]
) -> None:
    """KITTI road labels say "not road" for cars too; read as background (0), a network
    that found the frame's cars was penalised on every car pixel, so adding KITTI road
    frames to car-labelled data taught the network to miss cars."""
    truth = _camvid_truth(camvid_pair)
    (sample,) = load_sources((DataSource(path=kitti_road_from_camvid),))
    cars = truth == 2
    assert cars.sum() > 1000
    labels = torch.from_numpy(sample.labels.astype(np.int64))[None]
    right = torch.nn.functional.one_hot(torch.from_numpy(np.where(
        truth == IGNORE_INDEX, 0, truth).astype(np.int64)), 3).permute(2, 0, 1)[None] * 20.0
    road_on_cars = right.clone()
    road_on_cars[0, :, torch.from_numpy(cars)] = torch.tensor([0.0, 20.0, 0.0])[:, None]
    weights = torch.ones(3)
    for dice, lovasz in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5)):
        assert float(segmentation_loss(right, labels, weights, dice, lovasz)) < 1e-3
        assert float(segmentation_loss(road_on_cars, labels, weights, dice, lovasz)) > 0.05
    from drivingseg.model.config import NOT_ROAD_INDEX

    assert np.all(sample.labels[cars] == NOT_ROAD_INDEX)


def test_validation_scores_kitti_road_frames_on_road_only(
    tmp_path: Path, kitti_road_from_camvid: Path, camvid_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """On KITTI road a car prediction is "not road" (as drivingseg eval scores it): it
    used to count as a car false positive with car IoU 0, which halved the mean IoU that
    picks best.*."""
    from drivingseg.model.infer import Segmenter

    truth = _camvid_truth(camvid_pair)

    class Oracle:
        """A segmenter that predicts the CamVid truth, cars included."""

        def __call__(self, image: np.ndarray, lidar: object, probabilities: bool) -> Any:
            return type("Out", (), {"class_ids": np.where(truth == IGNORE_INDEX, 0, truth)})

    monkeypatch.setattr(Segmenter, "from_model", lambda *a, **k: Oracle())
    samples = load_sources((DataSource(path=kitti_road_from_camvid),))
    cfg = load_train_config(_write_config(tmp_path, kitti_road_from_camvid))
    scores = train_module.validate(UNet(cfg.model), cfg, samples, torch.device("cpu"))
    assert scores["iou"] == {"background": 1.0, "road": 1.0, "car": None}
    assert scores["mean_iou"] == 1.0
    assert scores["pixels"] == int((truth != IGNORE_INDEX).sum())


@pytest.mark.parametrize("extra", [{}, {"lovasz_weight": 0.5, "copy_paste": 1.0}])
def test_a_road_only_model_trains_on_frames_with_cars(
    tmp_path: Path, small_camvid: Path, extra: dict[str, object]
) -> None:
    """``model.num_classes: 2`` (background, road) is a valid model, but training it on
    CamVid died in the loss with an IndexError traceback (car id 2, and Dice/Lovasz over
    class 2): a car is now background, i.e. not road."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=1, **extra),
                            ["model.num_classes=2"])
    summary = train(cfg, show_progress=False)
    assert set(summary["history"][-1]["val"]["iou"]) == {"background", "road"}
    assert load_checkpoint(cfg.out_dir / "last").config.num_classes == 2
    samples = load_sources((DataSource(path=small_camvid),), num_classes=2)
    assert set(np.unique(np.concatenate([s.labels.ravel() for s in samples]))) == {0, 1, 255}


def test_resume_of_a_finished_run_is_refused(tmp_path: Path, small_camvid: Path) -> None:
    """A run that has trained all its epochs used to load every frame again and train
    nothing, silently, where a spent time limit is refused; more epochs extend it."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=1))
    assert train(cfg, show_progress=False)["steps"] == 1
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ModelError, match=r"train\.yaml: resume: the run has already trained 1 "
                                         r"epochs, and train\.epochs is 1; nothing left to "
                                         r"train: give more epochs \(--epochs\)"):
        train(cfg, resume=True, show_progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    longer = load_train_config(_write_config(tmp_path, small_camvid, epochs=2))
    assert train(longer, resume=True, show_progress=False)["steps"] == 2


def test_resume_of_a_run_stopped_in_its_first_save_says_so(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run stopped between the two files of its first training state was told "no
    training state here; was a run started with this out_dir?"."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=2))
    with pytest.raises(ModelError, match=r"last\.state\.json: resume: no training state here; "
                                         r"was a run started with this out_dir\?"):
        train(cfg, resume=True, show_progress=False)
    real_save = train_module.save_training_state

    def stopped(path: Path, *args: object, **kwargs: object) -> None:
        real_save(path, *args, **kwargs)  # type: ignore[arg-type]
        Path(f"{path}.state.json").unlink()  # as if stopped before the JSON was written
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_training_state", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, show_progress=False)
    monkeypatch.undo()
    with pytest.raises(ModelError, match=r"last\.state\.json: resume: the run stopped while it "
                                         r"saved its first epoch, so there is no epoch to go "
                                         r"on from; start it again without --resume"):
        train(cfg, resume=True, show_progress=False)
    assert train(cfg, show_progress=False)["steps"] == 2


@pytest.mark.parametrize("cut", ["before", "between"])
def test_a_run_stopped_while_writing_its_average_resumes_to_write_it(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch, cut: str,
) -> None:
    """A run stopped after its last epoch's save, while it validated and wrote averaged.*
    (the shipped weights), was refused as finished by --resume ("give more epochs"), and
    more epochs would have averaged other ones: the resume now writes the average only,
    the same as the uninterrupted run's, and a second resume is refused."""
    def config(folder: str) -> TrainConfig:
        (tmp_path / folder).mkdir()
        return load_train_config(_write_config(tmp_path / folder, small_camvid, epochs=3,
                                               average_last=2, logit_adjust=True))

    straight = train(config("straight"), show_progress=False)
    cfg = config("stopped")
    real_save = train_module.save_checkpoint

    def stopped(path: Path, *args: object, **kwargs: object) -> Path:
        if Path(path).name == "averaged":
            if cut == "between":  # the weights written, the JSON not
                real_save(path, *args, **kwargs)
                Path(path).with_suffix(".json").unlink()
            raise KeyboardInterrupt
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", stopped)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, show_progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    before = (tmp_path / "stopped" / "run" / "last.safetensors").read_bytes()
    resumed = train(cfg, resume=True, show_progress=False)
    assert (tmp_path / "stopped" / "run" / "last.safetensors").read_bytes() == before
    assert resumed["steps"] == straight["steps"] == 3
    assert resumed["averaged"]["epochs"] == [1, 2]
    a = load_checkpoint(tmp_path / "straight" / "run" / "averaged")
    b = load_checkpoint(tmp_path / "stopped" / "run" / "averaged")
    assert a.notes == {**b.notes, "config": a.notes["config"]}
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    with pytest.raises(ModelError, match=r"the run has already trained 3 epochs"):
        train(cfg, resume=True, show_progress=False)


@pytest.mark.parametrize("cut", range(1, 4))
def test_a_run_killed_between_the_files_of_a_save_resumes_from_the_save_before(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """A run killed while it wrote epoch 2's four last.* files (after ``cut`` of them) could
    not be resumed at all (a mix of two saves); previous.* holds epoch 1's, so resume goes
    on from there, trains epoch 2 again and ends as the uninterrupted run."""
    import drivingseg.fileio as fileio

    for run in ("a", "b"):
        (tmp_path / run).mkdir()
    straight = load_train_config(_write_config(tmp_path / "a", small_camvid, epochs=3,
                                               average_last=2))
    train(straight, show_progress=False)
    cfg = load_train_config(_write_config(tmp_path / "b", small_camvid, epochs=3,
                                          average_last=2))
    real_replace = fileio.os.replace
    written: list[str] = []

    def killed(src: str, dst: str) -> None:
        if Path(dst).name in LAST and len(written) == len(LAST) + cut:  # in epoch 2's save
            raise KeyboardInterrupt
        real_replace(src, dst)
        written.extend([Path(dst).name] if Path(dst).name in LAST else [])

    monkeypatch.setattr(fileio.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, show_progress=False)
    monkeypatch.undo()
    assert train(cfg, resume=True, show_progress=False)["steps"] == 3
    for name in ("last", "best", "averaged"):
        a, b = (load_checkpoint(c.out_dir / name).model.state_dict() for c in (straight, cfg))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_save_cut_short_twice_still_resumes(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in epoch 2's save, resumed from previous.* (epoch 1) and killed again in the
    same save: the resumed run's keep_previous had taken the broken last.* mix as previous.*,
    in place of epoch 1's save, so the second cut left nothing to resume from."""
    import drivingseg.fileio as fileio

    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=3))
    real_replace, real_keep = fileio.os.replace, train_module.keep_previous
    saves: list[int] = []  # last.* files written by each save so far

    def keep(out_dir: Path) -> None:  # a save starts
        real_keep(out_dir)
        saves.append(0)

    def killed(src: str, dst: str) -> None:
        if Path(dst).name in LAST and saves:
            if len(saves) == 2 and saves[-1] == 1:  # epoch 2's save, after one file
                raise KeyboardInterrupt
            saves[-1] += 1
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", killed)
    monkeypatch.setattr(train_module, "keep_previous", keep)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, show_progress=False)
    saves[:] = [len(LAST)]  # the resumed run's first save is epoch 2's again: cut it too
    with pytest.raises(KeyboardInterrupt):
        train(cfg, resume=True, show_progress=False)
    monkeypatch.undo()
    assert train(cfg, resume=True, show_progress=False)["steps"] == 3


def test_only_the_repairing_rank_copies_previous_over_a_cut_save(
    tmp_path: Path, small_camvid: Path,
) -> None:
    """Under torchrun every rank restores: each copied previous.* over the broken last.*
    through the same temporary files, so one rank's os.replace found the file gone
    (FileNotFoundError) and the job died. Only rank 0 (``repair``) copies; every rank
    still goes on from previous.*."""
    from drivingseg.model.resume import restore

    cfg = load_train_config(_write_config(tmp_path, small_camvid, epochs=3))
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=2)),
          show_progress=False)
    run = tmp_path / "run"
    (run / "last.safetensors").write_bytes((run / "previous.safetensors").read_bytes())
    broken = {name: (run / name).read_bytes() for name in LAST}
    model = UNet(cfg.model)
    info = restore(cfg, model, torch.optim.AdamW(model.parameters()), repair=False)
    assert info["epoch"] == 0
    assert {name: (run / name).read_bytes() for name in LAST} == broken
    info = restore(cfg, model, torch.optim.AdamW(model.parameters()))
    assert info["epoch"] == 0
    assert {name: (run / name).read_bytes() for name in LAST} == {
        name: (run / name.replace("last", "previous")).read_bytes() for name in LAST}


def test_a_new_run_cut_in_its_first_save_does_not_resume_the_run_before_it(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new run in an out_dir keeps the earlier run's last.* as previous.* at its first
    save; cut there, --resume went on from the earlier run's last epoch, with the new
    run's other seed and learning rate, silently (one warning)."""
    train(load_train_config(_write_config(tmp_path, small_camvid, epochs=2)),
          show_progress=False)
    new = load_train_config(_write_config(tmp_path, small_camvid, epochs=4, lr=0.01))
    real_save = train_module.save_checkpoint

    def cut(path: Path, *args: object, **kwargs: object) -> Path:
        if Path(path).name == "last":
            raise KeyboardInterrupt
        return real_save(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "save_checkpoint", cut)
    with pytest.raises(KeyboardInterrupt):
        train(new, show_progress=False)
    monkeypatch.undo()
    with pytest.raises(ModelError, match=r"last: resume: last\.json is from epoch 1 \(step 2\) "
                                         r"but last\.state\.json from epoch 0 \(step 1\): a "
                                         r"save was interrupted"):
        train(new, resume=True, show_progress=False)
    assert [h["epoch"] for h in train(new, show_progress=False)["history"]] == [0, 1, 2, 3]


def test_a_lidar_model_trains_on_the_synthetic_drive_with_its_lidar_channels(
    tmp_path: Path,
) -> None:
    """An RGB + lidar model (in_channels 7) on synthetic drives: each sample carries the
    lidar channels the fusion node makes from the frame's scan (H x W x 4, valid where a
    point landed), and the run validates and saves a 7-channel checkpoint that the node's
    Segmenter runs with lidar channels. The config used to refuse it outright."""
    (sample,) = load_sources((DataSource(synthetic_seed=3, synthetic_frames=1),), lidar=True)
    assert sample.lidar is not None and sample.lidar.shape == (*sample.labels.shape, 4)
    valid = sample.lidar[..., 3] > 0
    assert valid.sum() > 1000 and (sample.lidar[valid, 0] > 0).all()
    cfg = {"out_dir": "run", "seed": 1,
           "model": {"depth": 2, "base_channels": 4, "in_channels": 7},
           "input": {"width": 64, "height": 32},
           "data": {"train": [{"synthetic": {"seed": 3, "frames": 4, "step": 2}}],
                    "val": [{"synthetic": {"seed": 4, "frames": 1}}]},
           "train": {"epochs": 1, "batch_size": 2, "num_threads": 2, "warmup_steps": 1}}
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))
    summary = train(load_train_config(path), show_progress=False)
    assert summary["history"][0]["val"]["pixels"] == sample.labels.size
    ckpt = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert ckpt.config.in_channels == 7


@pytest.mark.parametrize(("device", "match"), [
    ("gpu", r"train\.device 'gpu' is not one of auto, cpu, cuda, cuda:N"),
    ("cuda:99", r"train\.device 'cuda:99'"),
])
def test_a_bad_train_device_names_the_config_file(
    tmp_path: Path, small_camvid: Path, device: str, match: str,
) -> None:
    """Every other config error names the file; train.device's did not (one line
    'train.device 'gpu' is not one of ...' with no file to look in)."""
    cfg = load_train_config(_write_config(tmp_path, small_camvid, device=device))
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        train(cfg, show_progress=False)
