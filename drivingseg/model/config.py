"""Typed, frozen model configuration and the class table shared by training and inference.

A :class:`ModelConfig` is everything needed to rebuild a :class:`~drivingseg.model.unet.UNet`;
it is stored as JSON beside the safetensors weights. :class:`ModelError` is the error of
every user-caused model problem (bad config, wrong checkpoint, wrong input).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import Any

from drivingseg.errors import ModelError

__all__ = [
    "CLASS_NAMES",
    "CONTEXTS",
    "FINE_CLASSES",
    "IGNORE_INDEX",
    "NORMS",
    "NOT_ROAD_INDEX",
    "NUM_CLASSES",
    "RGB_MEAN",
    "RGB_STD",
    "TTA_PRESETS",
    "InputSpec",
    "ModelConfig",
    "TTAConfig",
    "tta_preset",
    "tta_record",
]

CLASS_NAMES: tuple[str, ...] = ("background", "road", "car")
"""Class ids of every label map and prediction: 0 background, 1 road, 2 car."""
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255
"""Label id of pixels that neither count in the loss nor in the metrics."""
NOT_ROAD_INDEX = 254
"""Training label id of a pixel known only not to be road (KITTI road's red): background or
car, the loss does not say which, so a road-only frame never teaches that a car is
background."""
FINE_CLASSES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
    "pedestrian", "bicyclist")
"""CamVid's eleven classes (SegNet ids 0-10): the fine labels of ``train.fine_weight``'s
auxiliary head, which sees what the three classes lump into background."""
NORMS = ("batch", "group", "none")
CONTEXTS = ("none", "aspp")
"""Optional context module at the bottleneck (``aspp``: dilated and image-pooling branches)."""
RGB_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
RGB_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
RGB_CHANNELS = 3
LIDAR_CHANNELS = 4
"""depth_m, height_m, intensity, valid (``drivingseg.fusion.channels.CHANNEL_NAMES``)."""


def _fail(message: str, path: str | PathLike[str] | None) -> ModelError:
    return ModelError(message, path=path)


def _check_model(c: dict[str, Any], path: str | PathLike[str] | None, section: str) -> None:
    """The checks of :meth:`ModelConfig.validate` on its fields as a mapping ``c``."""
    def key(name: str) -> str:
        return f"{section}.{name}" if section else name

    if c["norm"] not in NORMS:
        message = f"unknown {key('norm')} {c['norm']!r}; valid choices: {', '.join(NORMS)}"
        raise _fail(message, path)
    if c["context"] not in CONTEXTS:
        message = (f"unknown {key('context')} {c['context']!r}; valid choices: "
                   f"{', '.join(CONTEXTS)}")
        raise _fail(message, path)
    for name, lo, hi in (("depth", 1, 6), ("base_channels", 4, 128),
                         ("num_classes", 2, NUM_CLASSES)):
        value = c[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            message = f"{key(name)} must be an integer in [{lo}, {hi}], got {value!r}"
            if name == "num_classes":  # checkpoints, inference and scoring name them
                message += f" (the classes are {', '.join(CLASS_NAMES)}, in that order)"
            raise _fail(message, path)
    channels = c["in_channels"]
    if (not isinstance(channels, int) or isinstance(channels, bool)
            or channels not in (RGB_CHANNELS, RGB_CHANNELS + LIDAR_CHANNELS)):
        message = (
            f"{key('in_channels')} must be {RGB_CHANNELS} (RGB) or "
            f"{RGB_CHANNELS + LIDAR_CHANNELS} (RGB + lidar depth_m, height_m, intensity, "
            f"valid), got {channels!r}"
        )
        raise _fail(message, path)
    if c["norm"] == "group" and c["base_channels"] % 4:
        message = (f"{key('norm')} 'group' needs {key('base_channels')} divisible by 4, got "
                   f"{c['base_channels']!r}")
        raise _fail(message, path)


@dataclass(frozen=True)
class ModelConfig:
    """U-Net shape: ``depth`` down/up levels, ``base_channels`` at the first level (doubling
    per level), ``in_channels`` 3 (RGB) or 7 (RGB + 4 lidar channels), ``norm`` after each
    conv, ``context`` an optional module at the bottleneck (:data:`CONTEXTS`)."""

    depth: int = 4
    base_channels: int = 16
    in_channels: int = RGB_CHANNELS
    num_classes: int = NUM_CLASSES
    norm: str = "batch"
    context: str = "none"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, path: str | PathLike[str] | None = None, section: str = "") -> None:
        """Raise :class:`ModelError` naming the bad value and the valid choices; with a
        ``section`` (``"model"``) the key is named as the file spells it (``model.depth``)."""
        _check_model(asdict(self), path, section)

    @property
    def uses_lidar(self) -> bool:
        return self.in_channels > RGB_CHANNELS

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to a multiple of this (2 ** depth) and cropped back."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: object, path: str | PathLike[str] | None = None, section: str = "model"
    ) -> ModelConfig:
        """Build from a JSON/YAML mapping, its errors naming the key in its ``section``
        (``model.depth``); unknown keys are refused with the valid ones."""
        if not isinstance(data, dict):
            message = f"{section}: model config must be a mapping, got {type(data).__name__}"
            raise _fail(message, path)
        valid = tuple(cls.__dataclass_fields__)
        unknown = sorted(set(data) - set(valid))
        if unknown:
            message = (f"{section}: unknown model config keys {unknown!r}; valid keys: "
                       f"{', '.join(valid)}")
            raise _fail(message, path)
        _check_model({**asdict(cls()), **data}, path, section)
        return cls(**data)


@dataclass(frozen=True)
class InputSpec:
    """How frames become model input: resize to ``width`` x ``height``, normalise RGB."""

    width: int = 320
    height: int = 240
    mean: tuple[float, ...] = field(default=RGB_MEAN)
    std: tuple[float, ...] = field(default=RGB_STD)

    def __post_init__(self) -> None:
        """Check the values and store them as the types say (a list mean, as torchvision
        writes it, left the frozen spec mutable and unhashable; numpy numbers are taken)."""
        for name, value in (("width", self.width), ("height", self.height)):
            if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                    or not 16 <= value <= 4096):
                raise ModelError(f"input {name} must be an integer in [16, 4096], got {value!r}")
            object.__setattr__(self, name, int(value))
        if len(self.mean) != RGB_CHANNELS or len(self.std) != RGB_CHANNELS:
            message = f"mean and std need 3 values (RGB), got {self.mean!r} and {self.std!r}"
            raise ModelError(message)
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                   and math.isfinite(v) for v in (*self.mean, *self.std)):
            message = f"mean and std must be finite numbers, got {self.mean!r} and {self.std!r}"
            raise ModelError(message)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if min(self.std) <= 0:
            raise ModelError(f"std values must be positive, got {self.std!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: object, path: str | PathLike[str] | None = None) -> InputSpec:
        if not isinstance(data, dict) or not {"width", "height"} <= set(data):
            raise _fail(f"input spec must be a mapping with width and height, got {data!r}", path)
        try:
            return cls(
                width=data["width"],
                height=data["height"],
                mean=tuple(float(v) for v in data.get("mean", RGB_MEAN)),
                std=tuple(float(v) for v in data.get("std", RGB_STD)),
            )
        except (TypeError, ValueError) as exc:
            raise _fail(f"invalid input spec {data!r}: {exc}", path) from exc
        except ModelError as exc:
            raise _fail(exc.message, path) from exc


@dataclass(frozen=True)
class TTAConfig:
    """Views to average: the model's input size times each of ``scales``, and with ``flip``
    each of them mirrored left-right as well."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    def __post_init__(self) -> None:
        if not self.scales:
            raise ModelError("test-time augmentation needs at least one scale")
        bad = [s for s in self.scales if not (math.isfinite(s) and 0.1 <= s <= 4.0)]
        if bad:
            message = f"test-time scales must lie in 0.1 ... 4.0, got {bad!r}"
            raise ModelError(message)
        if len(set(self.scales)) != len(self.scales):
            message = f"test-time scales repeat: {list(self.scales)!r}"
            raise ModelError(message)

    @property
    def identity(self) -> bool:
        """One view at the model's own input: the same as no augmentation."""
        return self.scales == (1.0,) and not self.flip

    @property
    def views(self) -> int:
        """Forward passes per frame."""
        return len(self.scales) * (2 if self.flip else 1)

    def summary(self) -> str:
        """One line for reports: ``scales 0.5, 1, each mirrored too (4 views)``."""
        scales = ", ".join(f"{s:g}" for s in self.scales)
        mirrored = ", each mirrored too" if self.flip else ""
        return f"scales {scales}{mirrored} ({self.views} view{'s' * (self.views > 1)})"

    def describe(self) -> dict[str, object]:
        """What a report records of it."""
        return {"scales": list(self.scales), "flip": self.flip, "views": self.views,
                "summary": self.summary()}


def tta_record(tta: TTAConfig | None) -> dict[str, object] | None:
    """What eval and report JSON hold under ``tta``: None for no augmentation."""
    return None if tta is None or tta.identity else tta.describe()


TTA_PRESETS: dict[str, TTAConfig] = {
    "off": TTAConfig(),
    "flip": TTAConfig(flip=True),
    "multiscale": TTAConfig(scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True),
}
"""Named settings of ``--tta``: one view; the frame and its mirror; six scales, mirrored.
``multiscale`` uses the input ratios of mmsegmentation's multi-scale test (0.5 to 1.75 in
steps of 0.25), taken as they are, not tuned on the held-out drive."""


def tta_preset(name: str) -> TTAConfig:
    """The preset called ``name``; ModelError listing the valid names otherwise."""
    try:
        return TTA_PRESETS[name]
    except KeyError:
        message = f"unknown test-time augmentation {name!r}; choose one of {sorted(TTA_PRESETS)}"
        raise ModelError(message) from None
