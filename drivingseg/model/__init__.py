"""Model: the U-Net, its checkpoints, data, training, metrics, evaluation and inference."""

from drivingseg.errors import ModelError
from drivingseg.model.backends import OnnxSegmenter, make_segmenter
from drivingseg.model.checkpoint import (
    Checkpoint,
    default_weights,
    load_checkpoint,
    resolve_weights,
    save_checkpoint,
)
from drivingseg.model.config import CLASS_NAMES, IGNORE_INDEX, InputSpec, ModelConfig, TTAConfig
from drivingseg.model.data import LabelledFile, discover, load_pair
from drivingseg.model.ensemble import Ensemble
from drivingseg.model.evaluate import evaluate
from drivingseg.model.export import export_onnx
from drivingseg.model.infer import RunOptions, Segmentation, Segmenter
from drivingseg.model.metrics import ClassScores, ConfusionMatrix, RoadPR
from drivingseg.model.train import train
from drivingseg.model.train_config import DataSource, TrainConfig, load_train_config
from drivingseg.model.unet import UNet

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "Checkpoint",
    "ClassScores",
    "ConfusionMatrix",
    "DataSource",
    "Ensemble",
    "InputSpec",
    "LabelledFile",
    "ModelConfig",
    "ModelError",
    "OnnxSegmenter",
    "RoadPR",
    "RunOptions",
    "Segmentation",
    "Segmenter",
    "TTAConfig",
    "TrainConfig",
    "UNet",
    "default_weights",
    "discover",
    "evaluate",
    "export_onnx",
    "load_checkpoint",
    "load_pair",
    "load_train_config",
    "make_segmenter",
    "resolve_weights",
    "save_checkpoint",
    "train",
]
