"""The training-only fine-class head: same three-class output, learns CamVid's classes,
saved with the training state (not the weights), resumes, refuses a negative weight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drivingseg.errors import ModelError
from drivingseg.model.augment import SegmentationDataset
from drivingseg.model.checkpoint import load_checkpoint
from drivingseg.model.config import FINE_CLASSES, InputSpec, ModelConfig
from drivingseg.model.fine import FineHead, fine_loss
from drivingseg.model.train import load_sources, train
from drivingseg.model.train_config import DataSource, load_train_config
from drivingseg.model.unet import UNet


def test_the_three_class_output_is_the_unets_own() -> None:
    torch.manual_seed(0)
    model = UNet(ModelConfig(depth=2, base_channels=8)).eval()
    wrapped = FineHead(model).eval()
    x = torch.randn(2, 3, 37, 50)  # not a multiple of 4: padded and cropped back
    logits, fine = wrapped(x)
    torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
    assert fine.shape == (2, len(FINE_CLASSES), 37, 50)
    assert model.decode(x).shape == (2, 8, 37, 50)


def test_fine_loss_ignores_unlabelled_pixels() -> None:
    logits = torch.randn(1, 11, 4, 4, requires_grad=True)
    none = torch.full((1, 4, 4), 255)
    assert float(fine_loss(logits, none).detach()) == 0.0
    labels = none.clone()
    labels[0, 0, 0] = 5
    expected = torch.nn.functional.cross_entropy(logits[:, :, 0, 0], torch.tensor([5]))
    torch.testing.assert_close(fine_loss(logits, labels), expected)


def test_the_fine_head_learns_camvid_classes_on_real_frames(small_camvid: Path) -> None:
    torch.manual_seed(0)
    samples = load_sources((DataSource(path=small_camvid),), fine=True)
    assert all(s.fine is not None for s in samples)
    data = SegmentationDataset(samples, InputSpec(width=64, height=48))
    items = [data[i] for i in range(len(data))]
    x, fine = torch.stack([i["input"] for i in items]), torch.stack([i["fine"] for i in items])
    net = FineHead(UNet(ModelConfig(depth=2, base_channels=8)))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = fine_loss(net(x)[1], fine)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def _config(tmp_path: Path, data: Path, **train: object) -> Path:
    cfg = {
        "out_dir": "run", "seed": 1, "model": {"depth": 2, "base_channels": 4},
        "input": {"width": 48, "height": 32},
        "data": {"train": [{"path": str(data / "val")}, {"synthetic": {"seed": 2, "frames": 2}}],
                 "val": [{"path": str(data / "val")}]},
        "train": {"epochs": 2, "batch_size": 2, "num_threads": 2, "warmup_steps": 1, **train},
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_training_with_the_fine_head_saves_plain_weights_and_resumes(
    tmp_path: Path, small_camvid: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checkpoint is a plain U-Net; the head travels in the training state, so a
    resumed run goes on with it, and a run without it cannot be resumed with one."""
    summary = train(load_train_config(_config(tmp_path, small_camvid, fine_weight=0.5,
                                              amp=True, channels_last=True)),
                    show_progress=False)
    assert summary["steps"] == 4
    out = tmp_path / "run"
    ckpt = load_checkpoint(out / "last")
    assert isinstance(ckpt.model, UNet) and ckpt.config == ModelConfig(depth=2, base_channels=4)
    state = load_file(str(out / "last.state.safetensors"))
    assert state["extra.weight"].shape == (len(FINE_CLASSES), 4, 1, 1)
    # The resumed epoch takes no optimiser step, so the head it saves is the one restored.
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    more = train(load_train_config(_config(tmp_path, small_camvid, fine_weight=0.5, epochs=3,
                                           amp=True, channels_last=True)),
                 resume=True, show_progress=False)
    assert [h["epoch"] for h in more["history"]] == [0, 1, 2]
    resumed = load_file(str(out / "last.state.safetensors"))
    for key in ("extra.weight", "extra.bias"):
        assert torch.equal(resumed[key], state[key]), key
    other = tmp_path / "other"
    other.mkdir()
    train(load_train_config(_config(other, small_camvid, epochs=1)), show_progress=False)
    with_head = load_train_config(_config(other, small_camvid, fine_weight=0.5, epochs=2))
    with pytest.raises(ModelError, match=r"resume: train\.fine_weight is 0\.5 but the run "
                       r"being resumed used 0\.0"):
        train(with_head, resume=True, show_progress=False)
    # A state saved before runs recorded their config: the missing head itself is refused.
    meta_path = other / "run" / "last.state.json"
    meta = json.loads(meta_path.read_text())
    del meta["info"]["config"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"training state lacks .* training-only Conv2d"):
        train(with_head, resume=True, show_progress=False)


def test_a_negative_fine_weight_is_refused(tmp_path: Path, small_camvid: Path) -> None:
    with pytest.raises(ModelError, match=r"train\.fine_weight: -1\.0 must be >= 0"):
        load_train_config(_config(tmp_path, small_camvid, fine_weight=-1))
