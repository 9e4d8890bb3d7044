"""Fixtures of the model tests: small labelled folders of every layout in tmp_path, a real
CamVid frame and a tiny untrained checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.model.checkpoint import save_checkpoint
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.data import LabelledFile, load_pair
from drivingseg.model.unet import UNet


@pytest.fixture
def camvid_pair(camvid_root: Path) -> tuple[Path, Path]:
    """(image, label) of one real CamVid frame of the held-out sequence 0006R0."""
    train = camvid_root / "train"
    name = sorted(p.name for p in train.glob("0006R0_*.png"))[40]
    return train / name, camvid_root / "trainannot" / name


@pytest.fixture
def camvid_frame(camvid_pair: tuple[Path, Path]) -> np.ndarray:
    """That frame's RGB pixels (360 x 480 x 3 uint8)."""
    image, _ = load_pair(LabelledFile(*camvid_pair, "camvid"))
    return image


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """An untrained depth-2 U-Net with 4 base channels at a 64 x 48 input, saved."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4)
    return save_checkpoint(tmp_path / "tiny", UNet(cfg).eval(), cfg, InputSpec(64, 48))


@pytest.fixture
def small_camvid(tmp_path: Path, camvid_root: Path) -> Path:
    """A CamVid-layout folder (``val/`` + ``valannot/``) with three real frames."""
    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    names = sorted(p.name for p in (camvid_root / "train").glob("0006R0_*.png"))[::40][:3]
    for name in names:
        shutil.copy(camvid_root / "train" / name, root / "val" / name)
        shutil.copy(camvid_root / "trainannot" / name, root / "valannot" / name)
    return root


@pytest.fixture
def kitti_road_from_camvid(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> Path:
    """A KITTI road folder built from a real CamVid frame: labels as gt_image_2 colours."""
    root = tmp_path / "kitti_road" / "training"
    (root / "image_2").mkdir(parents=True)
    (root / "gt_image_2").mkdir()
    image, label = camvid_pair
    shutil.copy(image, root / "image_2" / "um_000000.png")
    ids = np.asarray(cv2.imread(str(label), cv2.IMREAD_UNCHANGED), dtype=np.uint8)
    bgr = np.zeros((*ids.shape, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # red: not road
    bgr[ids == 3] = (255, 0, 255)  # magenta: road
    bgr[ids == 11] = 0  # black: don't care
    cv2.imwrite(str(root / "gt_image_2" / "um_road_000000.png"), bgr)
    return root.parent
