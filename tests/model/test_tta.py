"""Test-time augmentation: presets and their errors, the averaging itself, mirrored lidar,
and ``drivingseg eval --tta`` on real CamVid frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from drivingseg.cli._common import TTA_CHOICES
from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import load_checkpoint, save_checkpoint
from drivingseg.model.config import TTA_PRESETS, InputSpec, ModelConfig, TTAConfig, tta_preset
from drivingseg.model.infer import Segmenter
from drivingseg.model.tta import TTASegmenter
from drivingseg.model.unet import UNet


def test_presets_and_bad_settings() -> None:
    assert tuple(TTA_PRESETS) == TTA_CHOICES  # the CLI's torch-free copy of the names
    assert tta_preset("off").identity and tta_preset("flip").views == 2
    multiscale = tta_preset("multiscale")
    assert multiscale.views == 12 and multiscale.scales[0] == 0.5 and multiscale.flip
    assert multiscale.summary() == ("scales 0.5, 0.75, 1, 1.25, 1.5, 1.75, each mirrored too "
                                    "(12 views)")
    with pytest.raises(ModelError, match=r"unknown test-time augmentation 'fast'; choose one "
                                         r"of \['flip', 'multiscale', 'off'\]"):
        tta_preset("fast")
    with pytest.raises(ModelError, match=r"at least one scale"):
        TTAConfig(scales=())
    with pytest.raises(ModelError, match=r"must lie in 0.1 \.\.\. 4.0, got \[0.0, nan\]"):
        TTAConfig(scales=(1.0, 0.0, float("nan")))
    with pytest.raises(ModelError, match=r"scales repeat: \[1.0, 1.0\]"):
        TTAConfig(scales=(1.0, 1.0))


def test_one_view_is_the_plain_segmenter(tiny_weights: Path, camvid_frame: np.ndarray) -> None:
    plain = Segmenter(tiny_weights)(camvid_frame)
    tta = TTASegmenter(tiny_weights, TTAConfig())(camvid_frame)
    assert plain.probs is not None and tta.probs is not None
    np.testing.assert_allclose(tta.probs, plain.probs, atol=1e-6)
    np.testing.assert_array_equal(tta.class_ids, plain.class_ids)


def test_views_are_averaged_at_the_frame_size(tiny_weights: Path,
                                              camvid_frame: np.ndarray) -> None:
    """Two scales and the mirror: the mean of the four views' probabilities, each run at its
    own input size (a multiple of 2^depth) and mirrored back."""
    ckpt = load_checkpoint(tiny_weights)
    tta = TTASegmenter(ckpt, TTAConfig(scales=(1.0, 1.5), flip=True))
    assert tta.input_sizes == [(64, 48), (96, 72)]
    mirrored = np.ascontiguousarray(camvid_frame[:, ::-1])
    expected = []
    for width, height in tta.input_sizes:
        one = load_checkpoint(tiny_weights)
        one.spec = InputSpec(width, height)
        seg = Segmenter(one)
        expected += [seg(camvid_frame).probs, seg(mirrored).probs[:, :, ::-1]]  # type: ignore[index]
    out = tta(camvid_frame, class_prob=2)
    assert out.probs is not None and out.class_prob is not None
    np.testing.assert_allclose(out.probs, np.mean(expected, axis=0), atol=1e-5)
    np.testing.assert_allclose(out.probs.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.class_ids, out.probs.argmax(axis=0))
    np.testing.assert_array_equal(out.class_prob, out.probs[2])
    with pytest.raises(ModelError, match=r"class_prob must be a class id .* got 3"):
        tta(camvid_frame, class_prob=3)
    # averaging over the frame and its mirror makes the result mirror-symmetric
    back = tta(mirrored)
    assert back.probs is not None
    np.testing.assert_allclose(back.probs[:, :, ::-1], out.probs, atol=1e-5)
    assert tta(camvid_frame, probabilities=False).probs is None


def test_lidar_channels_are_mirrored_with_the_image(tmp_path: Path) -> None:
    """A lidar model sees the mirrored channels beside the mirrored image, in either layout."""
    torch.manual_seed(1)
    cfg = ModelConfig(depth=2, base_channels=4, in_channels=7)
    path = save_checkpoint(tmp_path / "l", UNet(cfg).eval(), cfg, InputSpec(64, 48))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    lidar = rng.random((4, 48, 64), dtype=np.float32)
    tta = TTASegmenter(path, TTAConfig(flip=True))
    out = tta(image, lidar)
    assert out.probs is not None
    channels_last = tta(image, np.ascontiguousarray(lidar.transpose(1, 2, 0)))
    assert channels_last.probs is not None
    np.testing.assert_allclose(channels_last.probs, out.probs, atol=1e-6)
    seg = Segmenter(path)
    plain = seg(image, lidar).probs
    mirror = seg(np.ascontiguousarray(image[:, ::-1]),
                 np.ascontiguousarray(lidar[:, :, ::-1])).probs
    assert plain is not None and mirror is not None
    np.testing.assert_allclose(out.probs, (plain + mirror[:, :, ::-1]) / 2, atol=1e-5)


def test_eval_cli_with_tta_records_it(small_camvid: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from drivingseg.cli import main

    plain, flip = tmp_path / "plain.json", tmp_path / "flip.json"
    data = str(small_camvid / "val")
    assert main(["eval", "--data", data, "--json", str(plain)]) == 0
    assert main(["eval", "--data", data, "--tta", "flip", "--json", str(flip)]) == 0
    assert "test-time augmentation: scales 1, each mirrored too (2 views)" in (
        capsys.readouterr().out)
    one, two = json.loads(plain.read_text()), json.loads(flip.read_text())
    assert one["tta"] is None
    assert two["tta"] == {"scales": [1.0], "flip": True, "views": 2,
                          "summary": "scales 1, each mirrored too (2 views)"}
    # the shipped model on real held-out-style frames: the mirror changes pixels, not quality
    assert two["per_class"]["road"]["iou"] > 0.9
    assert abs(two["mean_iou_road_car"] - one["mean_iou_road_car"]) < 0.05
    assert two["confusion_matrix"] != one["confusion_matrix"]
