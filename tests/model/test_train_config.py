"""The training config refuses what it would otherwise misread: unknown or misspelt data
keys, scalar sequence filters, and values of the wrong type or range."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.errors import ModelError
from drivingseg.model.train_config import load_train_config

BASE = """\
model: {depth: 2, base_channels: 4}
input: {width: 48, height: 32}
data:
  train:
    - {path: camvid, exclude_sequences: [0006R0]}
    - synthetic: {seed: 3, frames: 4, step: 2}
  val:
    - {path: camvid, include_sequences: [0006R0]}
train: {epochs: 2, batch_size: 2}
"""


def _config(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_the_base_config_holds_the_drive_out(tmp_path: Path) -> None:
    cfg = load_train_config(_config(tmp_path))
    assert cfg.train_sources[0].exclude_sequences == ("0006R0",)
    assert cfg.train_sources[1].synthetic_frames == 4
    assert cfg.val_sources[0].include_sequences == ("0006R0",)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("exclude_sequences: [0006R0]", "exclude_sequence: [0006R0]",
     r"data\.train\[0\]: unknown keys \['exclude_sequence'\]; valid: exclude_sequences, "
     r"include_sequences, path"),
    ("exclude_sequences: [0006R0]", "exclude_sequences: 0006R0",
     r"data\.train\[0\]\.exclude_sequences: expected a list of sequence names .*got '0006R0'"),
    ("include_sequences: [0006R0]", "include_sequences: [6]",
     r"data\.val\[0\]\.include_sequences: expected a list of sequence names .*got \[6\]"),
    ("  val:", "  vall:", r"data: unknown keys \['vall'\]; valid: train, val"),
    ("frames: 4", "frame: 4",
     r"data\.train\[1\]\.synthetic: unknown keys \['frame'\]; valid: frames, seed, step"),
    ("frames: 4", "frames: 4.5", r"data\.train\[1\]\.synthetic\.frames: expected an integer"),
    ("- synthetic: {seed: 3, frames: 4, step: 2}",
     "- {path: camvid, synthetic: {seed: 3, frames: 4, step: 2}}",
     r"data\.train\[1\]: unknown keys \['path'\]; valid: synthetic"),
])
def test_data_keys_are_checked(tmp_path: Path, old: str, new: str, match: str) -> None:
    assert old in BASE
    path = _config(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        load_train_config(path)


@pytest.mark.parametrize(("item", "match"), [
    ('train.amp="false"', r"train\.amp: expected true or false, got 'false'"),
    ("train.logit_adjust=1", r"train\.logit_adjust: expected true or false, got 1"),
    ("train.epochs=2.9", r"train\.epochs: expected an integer, got 2\.9"),
    ("train.lr=true", r"train\.lr: expected a number, got True"),
    ("train.lr=.nan", r"train\.lr: expected a number, got nan"),
    ("train.lr=3e-x", r"train\.lr: expected a number, got '3e-x'"),
    ("train.scale_range=1.5", r"train\.scale_range: expected two numbers \[MIN, MAX\], got 1\.5"),
    ("train.scale_range=[2, 1]", r"train\.scale_range: \[2, 1\] needs 0 < MIN <= MAX"),
    ("seed=abc", r"seed: expected an integer, got 'abc'"),
    ("train.val_every=0", r"train\.val_every: 0 must be >= 1"),
    ("train.batch_size=0", r"train\.batch_size: 0 must be >= 1"),
    ("train.device=1", r"train\.device: expected a string, got 1"),
    ("train.init_from=[a]", r"train\.init_from: expected a string, got \['a'\]"),
    # a labelled folder gives no lidar channels: refused here, not after loading every frame
    ("model.in_channels=7", r"model\.in_channels: 7 \(RGB \+ lidar\) cannot be trained from "
                            r"the labelled folder '.*camvid', which gives RGB frames and "
                            r"labels only; train it on synthetic drives"),
])
def test_train_values_must_have_the_right_type_and_range(
    tmp_path: Path, item: str, match: str,
) -> None:
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        load_train_config(_config(tmp_path), [item])


def test_right_values_still_parse(tmp_path: Path) -> None:
    cfg = load_train_config(_config(tmp_path), ["train.amp=false", "train.lr=0",
                                                "train.weight_decay=1e-4",
                                                "train.scale_range=[1, 1.5]", "seed=7"])
    assert cfg.amp is False and cfg.lr == 0.0 and isinstance(cfg.lr, float)
    assert cfg.weight_decay == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert cfg.scale_range == (1.0, 1.5) and cfg.seed == 7


def test_a_sequence_filter_that_leaves_no_frame_is_refused(tmp_path: Path,
                                                           camvid_root: Path) -> None:
    """A misspelt sequence (0006RO for 0006R0) used to drop the whole source: as a val
    source the run trained without validation and wrote no best.*; as the only train
    source it died in torch's RandomSampler with a ValueError traceback."""
    text = BASE.replace("path: camvid", f"path: {camvid_root}").replace(
        "include_sequences: [0006R0]", "include_sequences: [0006RO]")
    cfg = load_train_config(_config(tmp_path, text))
    with pytest.raises(ModelError, match=r"/camvid: include_sequences \['0006RO'\] and "
                                         r"exclude_sequences \[\] leave none of its 468 "
                                         r"labelled frames; its sequences are \['0001TP', "
                                         r"'0006R0', '0016E5'\]"):
        cfg.val_sources[0].files()
    assert len(cfg.train_sources[0].files()) == 468 - 101  # exclude_sequences: [0006R0]


@pytest.mark.parametrize("value", ["[a, b]", "{x: 1}", "null", "true", "false"])
def test_an_out_dir_that_is_not_a_path_is_refused(tmp_path: Path, value: str) -> None:
    """``--set out_dir=[a, b]`` used to train into a folder named "['a', 'b']"."""
    with pytest.raises(ModelError, match=r"train\.yaml: out_dir: expected a string, got "):
        load_train_config(_config(tmp_path), [f"out_dir={value}"])


@pytest.mark.parametrize(("new", "bad"), [
    ("input: {widht: 64, width: 48, height: 32}", "widht"),
    ("input: {width: 48, height: 32, resize: stretch}", "resize"),
    ("input: {width: 48, height: 32, means: [0.5, 0.5, 0.5]}", "means"),
])
def test_input_keys_are_checked(tmp_path: Path, new: str, bad: str) -> None:
    """``InputSpec`` reads width, height, mean and std only: a misspelt key (or the
    inference-only ``resize``) was ignored and the run trained at another size or
    normalisation than the file says."""
    path = _config(tmp_path, BASE.replace("input: {width: 48, height: 32}", new, 1))
    with pytest.raises(ModelError, match=rf"train\.yaml: input: unknown keys \['{bad}'\]; "
                                         r"valid: height, mean, std, width"):
        load_train_config(path)


def test_input_section_defaults_and_takes_its_keys(tmp_path: Path) -> None:
    spec = load_train_config(_config(tmp_path, BASE.replace(
        "input: {width: 48, height: 32}", "input: {width: 64, height: 48, std: [1, 1, 1]}")))
    assert (spec.input.width, spec.input.height, spec.input.std) == (64, 48, (1.0, 1.0, 1.0))
    default = load_train_config(_config(tmp_path, BASE.replace(
        "input: {width: 48, height: 32}\n", "")))
    assert (default.input.width, default.input.height) == (256, 192)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("model:", "seed: -1\nmodel:", r"seed: -1 must be an integer in \[0, 2\*\*63 - 1\]"),
    ("model:", "seed: 18446744073709551617\nmodel:",
     r"seed: 18446744073709551617 must be an integer in \[0, 2\*\*63 - 1\]"),
    ("seed: 3,", "seed: -3,", r"data\.train\[1\]\.synthetic\.seed: -3 must be >= 0"),
])
def test_seeds_out_of_range_are_refused(tmp_path: Path, old: str, new: str, match: str) -> None:
    """A negative run seed crashed in the first epoch (numpy's SeedSequence), after every
    frame was loaded, a seed past 2**64 in torch.manual_seed, both with a traceback; a
    negative synthetic seed was refused at loading without naming the file."""
    path = _config(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        load_train_config(path)


def test_the_largest_seed_is_taken(tmp_path: Path) -> None:
    cfg = load_train_config(_config(tmp_path, "seed: 9223372036854775807\n" + BASE))
    assert cfg.seed == 2**63 - 1


@pytest.mark.parametrize(("value", "match"), [
    ("jitter: 40", r"train\.jitter: 40\.0 must be < 1 \(a fraction of each colour gain: 0\.4 "
                   r"is \+-40 %\)"),
    ("jitter: 1", r"train\.jitter: 1\.0 must be < 1"),
    ("distill_temperature: 0", r"train\.distill_temperature: 0\.0 must be > 0"),
    ("distill_temperature: -2", r"train\.distill_temperature: -2\.0 must be > 0"),
])
def test_jitter_and_temperature_out_of_range_are_refused(
    tmp_path: Path, value: str, match: str,
) -> None:
    """``jitter: 40`` (meant as percent) drew negative colour gains, so nearly every
    training pixel was clipped to 0 or 255; a distillation temperature of 0 turned the
    loss NaN after an epoch (reported as a learning rate too high), a negative one
    inverted the teachers' targets; all were taken."""
    path = _config(tmp_path, BASE.replace("batch_size: 2}", f"batch_size: 2, {value}}}", 1))
    with pytest.raises(ModelError, match=r"train\.yaml: " + match):
        load_train_config(path)
    good = BASE.replace("batch_size: 2}", "batch_size: 2, jitter: 0.4, distill_temperature: 2}")
    cfg = load_train_config(_config(tmp_path, good))
    assert (cfg.jitter, cfg.distill_temperature) == (0.4, 2.0)


def test_a_lidar_model_trains_from_synthetic_drives_alone(tmp_path: Path) -> None:
    """in_channels 7 was refused for every config, synthetic drives (which have lidar)
    included; now only a labelled folder, without lidar, is refused."""
    text = BASE.replace("    - {path: camvid, exclude_sequences: [0006R0]}\n", "")
    text = text.replace("{path: camvid, include_sequences: [0006R0]}", "synthetic: {seed: 4}")
    cfg = load_train_config(_config(tmp_path, text), ["model.in_channels=7"])
    assert cfg.model.uses_lidar and [s.synthetic_seed for s in cfg.train_sources] == [3]
