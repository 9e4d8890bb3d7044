"""Stored teacher targets (``train.distill_tta``): computed with test-time augmentation,
carried through the augmentation with the image, and learnt in a real training run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.errors import ConfigError
from drivingseg.model.augment import Augmenter, Sample, SegmentationDataset, normalise
from drivingseg.model.checkpoint import save_checkpoint
from drivingseg.model.config import IGNORE_INDEX, InputSpec, ModelConfig, TTAConfig
from drivingseg.model.distill import teacher_models, teacher_targets
from drivingseg.model.infer import Segmenter
from drivingseg.model.losses import distillation_loss, soft_target_loss
from drivingseg.model.train import load_sources, train
from drivingseg.model.train_config import DataSource, load_train_config
from drivingseg.model.tta import TTASegmenter
from drivingseg.model.unet import UNet


@pytest.fixture
def tiny_teacher(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4)
    return save_checkpoint(tmp_path / "teacher", UNet(cfg).eval(), cfg, InputSpec(48, 32))


def test_stored_targets_follow_the_image_through_augmentation() -> None:
    """The image's red channel and the first target channel hold the same left-to-right ramp;
    after any scale, crop and flip they still agree pixel by pixel."""
    h, w = 90, 120
    ramp = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[:, :, 0] = np.round(255 * ramp).astype(np.uint8)
    soft = np.stack([ramp, 1 - ramp, np.zeros_like(ramp)], axis=2).astype(np.float16)
    sample = Sample(image, np.ones((h, w), dtype=np.uint8), soft=soft)
    aug = Augmenter(InputSpec(64, 48), scale_range=(0.6, 1.8), jitter=0.0, seed=3)
    flips = set()
    for _ in range(12):
        out = aug(sample)
        assert out.soft is not None and out.soft.shape == (48, 64, 3)
        valid = out.labels != IGNORE_INDEX
        red = out.image[:, :, 0].astype(np.float32) / 255
        np.testing.assert_allclose(out.soft[:, :, 0][valid], red[valid], atol=0.012)
        np.testing.assert_allclose(out.soft[valid].sum(axis=1), 1.0, atol=1e-3)
        flips.add(bool(red[valid.any(axis=1)][0, 0] > red[valid.any(axis=1)][0, -1]))
    assert flips == {True, False}  # both orientations were drawn
    item = SegmentationDataset([sample], InputSpec(64, 48), aug)[0]
    x, y, target = item["input"], item["labels"], item["soft"]
    assert "fine" not in item and target.shape == (3, 48, 64) and target.dtype == torch.float32
    assert x.shape == (3, 48, 64) and y.shape == (48, 64)


def test_teacher_targets_are_the_mean_tta_probabilities(tiny_teacher: Path,
                                                        small_camvid: Path) -> None:
    samples = load_sources((DataSource(path=small_camvid),))[:2]
    tta = TTAConfig(scales=(1.0, 1.5), flip=True)
    out = teacher_targets([tiny_teacher, tiny_teacher], samples, tta, ModelConfig(depth=2),
                          show_progress=False)
    assert [s.image is o.image for s, o in zip(samples, out, strict=True)] == [True, True]
    expected = TTASegmenter(tiny_teacher, tta)(samples[0].image).probs
    assert expected is not None and out[0].soft is not None
    assert out[0].soft.dtype == np.float16 and out[0].soft.shape == (360, 480, 3)
    np.testing.assert_allclose(out[0].soft.astype(np.float32), expected.transpose(1, 2, 0),
                               atol=1e-3)


def test_soft_target_loss_is_the_distillation_loss_of_stored_probabilities() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 3, (2, 8, 8))
    labels[0, :4] = IGNORE_INDEX
    shift = torch.tensor([0.1, 0.0, -0.5])
    stored = soft_target_loss(student, torch.softmax(teacher, dim=1), labels, shift)
    assert torch.allclose(stored, distillation_loss(student, [teacher], labels, shift))
    same = soft_target_loss(student, torch.softmax(student, dim=1), labels)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def _config(tmp_path: Path, data: Path, **train_keys: object) -> Path:
    cfg = {
        "out_dir": "run", "seed": 1,
        "model": {"depth": 2, "base_channels": 4},
        "input": {"width": 48, "height": 32},
        "data": {"train": [{"path": str(data / "val")}]},
        "train": {"epochs": 1, "batch_size": 2, "num_threads": 2, "warmup_steps": 1,
                  **train_keys},
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_training_learns_stored_targets(tmp_path: Path, tiny_teacher: Path,
                                        small_camvid: Path) -> None:
    (tmp_path / "a").mkdir()
    stored = load_train_config(_config(tmp_path / "a", small_camvid, distill_tta="flip",
                                       distill_from=[str(tiny_teacher)], distill_weight=1.0))
    plain = load_train_config(_config(tmp_path, small_camvid))
    assert stored.distill_tta == "flip"
    taught = train(stored, show_progress=False)["history"]
    alone = train(plain, show_progress=False)["history"]
    assert np.isfinite(taught[0]["loss"])
    assert taught[0]["loss"] > alone[0]["loss"]  # the same run with a KL term on top
    assert (tmp_path / "a" / "run" / "last.safetensors").is_file()


def test_distill_tta_config_errors(tmp_path: Path, small_camvid: Path, tiny_teacher: Path
                                   ) -> None:
    teacher = {"distill_from": [str(tiny_teacher)]}
    cases = [
        ({"distill_tta": "many", **teacher},
         r"train\.distill_tta: 'many' is not one of \['flip', 'multiscale', 'off'\]"),
        ({"distill_tta": "flip"}, r"'flip' needs teachers in train\.distill_from"),
        ({"distill_tta": "flip", "distill_temperature": 2, **teacher},
         r"distill_temperature must be 1, got 2\.0"),
        ({"distill_tta": "multiscale", "copy_paste": 0.5, **teacher},
         r"cannot be combined with copy_paste 0\.5"),
    ]
    for keys, match in cases:
        with pytest.raises(ConfigError, match=match):
            load_train_config(_config(tmp_path, small_camvid, **keys))


def test_a_teacher_in_the_loop_sees_the_batch_in_its_own_normalisation(
    tmp_path: Path, camvid_frame: np.ndarray,
) -> None:
    """The loop feeds teachers the student's standardised batch; a teacher saved with
    another mean and std saw wrongly scaled inputs. Its probabilities in the loop are now
    the ones it gives as a Segmenter, on its own normalisation."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4)
    model = UNet(cfg)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.05, 0.2)  # a teacher whose scores depend on the input
    own = InputSpec(64, 48, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    path = save_checkpoint(tmp_path / "teacher", model.eval(), cfg, own)
    student = InputSpec(64, 48)  # ImageNet mean and std
    image = cv2.resize(camvid_frame, (64, 48), interpolation=cv2.INTER_AREA)
    batch = normalise(image, student)[None]
    (teacher,) = teacher_models([path], cfg, torch.device("cpu"), torch.contiguous_format,
                                student)
    with torch.no_grad():
        in_loop = torch.softmax(teacher(batch), dim=1)[0].numpy()
    alone = Segmenter(path, fp16=False)(image).probs
    assert alone is not None
    np.testing.assert_allclose(in_loop, alone, atol=1e-5)
