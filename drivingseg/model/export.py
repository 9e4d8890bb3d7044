"""ONNX export of a checkpoint: uint8 RGB in, logits out, normalisation inside the graph.

The exported graph takes ``image``: N x H x W x 3 **uint8** RGB (the layout OpenCV and the
camera give; no host-side normalisation), converts it to float, standardises it with the
checkpoint's mean and std, pads it to a multiple of ``2 ** depth`` (with zeros after
normalisation, as :class:`~drivingseg.model.unet.UNet` does), runs the U-Net with its
batch norms folded, and crops back: ``logits`` N x classes x H x W float32. Models with
lidar input take a second input ``lidar``: N x 4 x H x W float32 (depth_m, height_m,
intensity, valid). ``fp16`` runs the network in float16 (inputs and outputs stay as above).

:func:`check_export` runs an exported graph in onnxruntime on given frames and compares
its logits, every class plane, with the checkpoint's own float32 torch model (``drivingseg
export --check`` does so before it writes the file).

The exporter is torch's TorchScript-based one (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which drivingseg does not depend on. The file's ``metadata_props`` carry what
a runtime needs (:data:`METADATA_KEYS`); :func:`read_metadata` reads them back.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from drivingseg import __version__
from drivingseg.errors import ModelError
from drivingseg.fileio import write_atomic
from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import LIDAR_CHANNELS, InputSpec, ModelConfig
from drivingseg.model.ensemble import Ensemble
from drivingseg.model.infer import fuse_batch_norm
from drivingseg.model.unet import UNet

__all__ = [
    "CHECK_TOLERANCES",
    "INPUT_LAYOUT",
    "METADATA_KEYS",
    "OPSET",
    "ExportCheck",
    "ExportedMetadata",
    "NormalisedUNet",
    "check_export",
    "export_onnx",
    "onnx_bytes",
    "read_metadata",
    "write_onnx",
]

log = logging.getLogger(__name__)

OPSET = 17
INPUT_LAYOUT = "image: N x H x W x 3 uint8 RGB (normalised inside the graph)"
"""The input of a ``dynamic`` graph; a fixed one's metadata names its 1 x H x W instead."""
METADATA_KEYS = ("format", "classes", "mean", "std", "in_channels", "input_width",
                 "input_height", "training_input", "input_layout", "dynamic", "fp16",
                 "model_config", "networks", "drivingseg_version")
FORMAT = "drivingseg-onnx/1"


def _onnx() -> Any:
    """The ``onnx`` package (an optional dependency), or ModelError saying how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise ModelError("ONNX export needs the onnx package: pip install 'drivingseg[onnx]'"
                         ) from exc
    return onnx


class NormalisedUNet(nn.Module):
    """uint8 N x H x W x 3 (+ lidar) -> logits; the graph that :func:`export_onnx` writes."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, model: UNet | Ensemble, spec: InputSpec,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype
        std = torch.tensor(spec.std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(dtype))
        self.register_buffer("shift", (-torch.tensor(spec.mean) / std).view(1, 3, 1, 1).to(dtype))
        self.multiple = model.config.size_multiple

    def forward(self, image: torch.Tensor, lidar: torch.Tensor | None = None) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.dtype) * self.scale + self.shift
        if lidar is not None:
            x = torch.cat([x, lidar.to(self.dtype)], dim=1)
        h, w = x.shape[2], x.shape[3]
        # Sizes stay symbolic under tracing, so a --dynamic graph pads every input size.
        pad_h = (self.multiple - h % self.multiple) % self.multiple
        pad_w = (self.multiple - w % self.multiple) % self.multiple
        x = functional.pad(x, [0, pad_w, 0, pad_h])
        logits: torch.Tensor = self.model(x)
        return logits[:, :, :h, :w].float()


@dataclass(frozen=True)
class ExportedMetadata:
    """What an exported file says about itself (from its ``metadata_props``)."""

    config: ModelConfig
    spec: InputSpec
    classes: tuple[str, ...]
    dynamic: bool
    fp16: bool
    version: str


def _metadata(ckpt: Checkpoint, height: int, width: int, dynamic: bool, fp16: bool
              ) -> dict[str, str]:
    spec = ckpt.spec
    layout = INPUT_LAYOUT + ("; lidar: N x 4 x H x W float32" if ckpt.config.uses_lidar else "")
    if not dynamic:  # a fixed graph takes one frame of one size: say which
        layout = layout.replace("N x H x W", f"1 x {height} x {width}").replace(
            "N x 4 x H x W", f"1 x 4 x {height} x {width}")
    return {
        "format": FORMAT,
        "classes": json.dumps(list(ckpt.classes)),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
        "in_channels": str(ckpt.config.in_channels),
        "input_width": str(width),
        "input_height": str(height),
        "training_input": json.dumps({"width": spec.width, "height": spec.height}),
        "input_layout": layout,
        "dynamic": json.dumps(dynamic),
        "fp16": json.dumps(fp16),
        "model_config": json.dumps(ckpt.config.to_dict(), sort_keys=True),
        "networks": str(len(ckpt.model.members) if isinstance(ckpt.model, Ensemble) else 1),
        "drivingseg_version": __version__,
    }


def onnx_bytes(
    ckpt: Checkpoint,
    *,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    fp16: bool = False,
) -> bytes:
    """The serialised ONNX model of ``ckpt`` (fixed size: ``height`` x ``width``, default the
    checkpoint's input size; ``dynamic``: any batch, height and width)."""
    onnx = _onnx()

    if dynamic and (height is not None or width is not None):
        raise ModelError("give either a fixed --height/--width or --dynamic, not both")
    h = ckpt.spec.height if height is None else height
    w = ckpt.spec.width if width is None else width
    for name, value in (("height", h), ("width", w)):
        if not 16 <= value <= 4096:  # InputSpec's range: read_metadata must take the file
            raise ModelError(f"export {name} must be in [16, 4096] pixels, got {value!r}")
    dtype = torch.float16 if fp16 else torch.float32
    model = fuse_batch_norm(copy.deepcopy(ckpt.model).to("cpu").float().eval()).to(dtype)
    wrapper = NormalisedUNet(model, ckpt.spec, dtype).eval()
    image = torch.zeros((1, h, w, 3), dtype=torch.uint8)
    args: tuple[torch.Tensor, ...] = (image,)
    names = ["image"]
    axes: dict[str, dict[int, str]] = {"image": {0: "batch", 1: "height", 2: "width"},
                                       "logits": {0: "batch", 2: "height", 3: "width"}}
    if ckpt.config.uses_lidar:
        args += (torch.zeros((1, LIDAR_CHANNELS, h, w), dtype=torch.float32),)
        names.append("lidar")
        axes["lidar"] = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the U-Net's shape checks
        try:
            torch.onnx.export(
                wrapper, args, buffer,  # type: ignore[arg-type]
                dynamo=False, opset_version=OPSET, input_names=names,
                output_names=["logits"], dynamic_axes=axes if dynamic else None,
                do_constant_folding=True,
            )
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
            raise ModelError(f"ONNX export failed: {exc}") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    meta = _metadata(ckpt, h, w, dynamic, fp16)
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "drivingseg"
    proto.producer_version = __version__
    return bytes(proto.SerializeToString())


def export_onnx(
    weights: str | os.PathLike[str] | Checkpoint,
    out: str | os.PathLike[str],
    *,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    fp16: bool = False,
) -> Path:
    """Export a checkpoint (``'default'``, a path or a loaded one) to ``out`` atomically."""
    ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
    data = onnx_bytes(ckpt, height=height, width=width, dynamic=dynamic, fp16=fp16)
    return write_onnx(data, out)


def write_onnx(data: bytes, out: str | os.PathLike[str]) -> Path:
    """Write serialised ONNX ``data`` to ``out`` atomically (a temp file, then a rename)."""
    target = Path(out)
    write_atomic(target, lambda p: p.write_bytes(data), error=ModelError, what="ONNX model")
    log.info("exported %s (%d bytes)", target, len(data))
    return target


def _field(meta: dict[str, str], key: str, source: str) -> Any:
    if key not in meta:
        message = f"ONNX model has no {key!r} metadata; export it with 'drivingseg export'"
        raise ModelError(message, path=source)
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise ModelError(f"ONNX metadata {key!r} is not JSON: {meta[key]!r}",
                         path=source) from exc


def read_metadata(meta: dict[str, str], source: str = "") -> ExportedMetadata:
    """Parse the ``metadata_props`` of an exported file (e.g. an onnxruntime session's
    ``get_modelmeta().custom_metadata_map``); ModelError when they are missing or wrong."""
    if meta.get("format") != FORMAT:
        message = (f"not a drivingseg ONNX export: metadata format is {meta.get('format')!r}, "
                   f"expected {FORMAT!r}")
        raise ModelError(message, path=source or None)
    config = ModelConfig.from_dict(_field(meta, "model_config", source), source or None,
                                   section="model_config")
    dynamic = bool(_field(meta, "dynamic", source))
    # A dynamic graph takes any size: frames are resized to the training input size.
    size = _field(meta, "training_input", source) if dynamic else {
        "width": _field(meta, "input_width", source),
        "height": _field(meta, "input_height", source)}
    try:
        spec = InputSpec(
            width=int(size["width"]),
            height=int(size["height"]),
            mean=tuple(float(v) for v in _field(meta, "mean", source)),
            std=tuple(float(v) for v in _field(meta, "std", source)),
        )
        classes = tuple(str(c) for c in _field(meta, "classes", source))
    except (TypeError, KeyError, ValueError) as exc:
        message = f"ONNX metadata of the input size, mean, std or classes is malformed: {exc!r}"
        raise ModelError(message, path=source or None) from exc
    except ModelError as exc:  # InputSpec's own refusal, which names no file
        raise ModelError(exc.message, path=source or None) from exc
    return ExportedMetadata(config, spec, classes, dynamic,
                            bool(_field(meta, "fp16", source)),
                            meta.get("drivingseg_version", ""))


CHECK_TOLERANCES = {False: (1e-3, 1e-4), True: (5e-2, 1e-2)}
"""(absolute, relative to the largest reference logit) tolerance of :func:`check_export` on
any logit, by ``fp16``: float32 graphs differ from torch by ~2e-5 on the shipped models,
float16 ones by ~0.04 (logits up to ~18)."""

CheckFrame = tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None]
"""An H x W x 3 uint8 RGB frame and, for RGB + lidar models, its 4 x H x W lidar channels."""


@dataclass(frozen=True)
class ExportCheck:
    """How an exported graph's logits compare with the float32 torch model's."""

    sizes: tuple[tuple[int, int], ...]
    frames: int
    max_diff: float
    tolerance: float
    agreement: float
    class_iou: tuple[tuple[str, float | None], ...]

    def summary(self) -> str:
        """One line: what ran and how close it came, every class listed."""
        sizes = ", ".join(f"{w}x{h}" for h, w in self.sizes)
        ious = ", ".join(f"{name} {'-' if iou is None else f'{100 * iou:.2f} %'}"
                         for name, iou in self.class_iou)
        return (f"onnxruntime vs torch float32 on {self.frames} frame(s) at {sizes}: max "
                f"|logit difference| {self.max_diff:.2e} (tolerance {self.tolerance:.2e}), "
                f"arg-max agreement {100 * self.agreement:.3f} %, class IoU {ious}")


def _check_sizes(meta: ExportedMetadata, frames: Sequence[CheckFrame]) -> list[tuple[int, int]]:
    """(height, width) inputs to run: the fixed size; for a dynamic graph the training size,
    each frame's keep-aspect size and one that is no multiple of 2^depth (padded inside)."""
    spec = meta.spec
    if not meta.dynamic:
        return [(spec.height, spec.width)]
    from drivingseg.model.infer import input_size

    multiple = meta.config.size_multiple
    sizes = [(spec.height, spec.width)]
    for rgb, _ in frames:
        w, h = input_size(spec, int(rgb.shape[0]), int(rgb.shape[1]), multiple)
        sizes.append((h, w))
    sizes.append((min(4096, spec.height + multiple // 2 + 1), min(4096, spec.width + 3)))
    return list(dict.fromkeys(sizes))


def check_export(data: bytes, ckpt: Checkpoint, frames: Sequence[CheckFrame],
                 source: str = "") -> ExportCheck:
    """Check ``data`` (``onnx_bytes(ckpt, ...)``) with onnx.checker, run it in onnxruntime on
    ``frames`` at the sizes it takes and compare every class's logits with ``ckpt``'s own
    float32 model in torch; ModelError, naming ``source``, when a logit is not finite or
    differs by more than :data:`CHECK_TOLERANCES` allow."""
    from drivingseg.model.backends import _lidar_input, _ort

    onnx = _onnx()

    where = source or None
    if not frames:
        raise ModelError("export check needs at least one frame", path=where)
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"onnx.checker refuses the export: {exc}", path=where) from exc
    session = _ort().InferenceSession(data, providers=["CPUExecutionProvider"])
    meta = read_metadata(session.get_modelmeta().custom_metadata_map, source)
    reference = copy.deepcopy(ckpt.model).to("cpu").float().eval()
    spec, n = ckpt.spec, len(ckpt.classes)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    sizes = _check_sizes(meta, frames)
    worst, largest, agree, pixels = 0.0, 0.0, 0, 0
    inter, union = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for rgb, lidar in frames:
        for h, w in sizes:
            small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)[None]
            feeds: dict[str, npt.NDArray[Any]] = {"image": small}
            x = (torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            if lidar is not None:
                feeds["lidar"] = _lidar_input(lidar, rgb.shape[:2], (w, h))
                x = torch.cat([x, torch.from_numpy(feeds["lidar"])], dim=1)
            got = session.run(["logits"], feeds)[0]
            with torch.inference_mode():
                ref = reference(x).numpy()
            if not np.isfinite(got).all():
                message = (f"exported graph gives non-finite logits at {w}x{h} "
                           f"(fp16 {meta.fp16!r}); torch gives finite ones")
                raise ModelError(message, path=where)
            worst = max(worst, float(np.abs(got - ref).max()))
            largest = max(largest, float(np.abs(ref).max()))
            a, b = got.argmax(1), ref.argmax(1)
            agree, pixels = agree + int((a == b).sum()), pixels + a.size
            for c in range(n):
                inter[c] += int(((a == c) & (b == c)).sum())
                union[c] += int(((a == c) | (b == c)).sum())
    atol, rtol = CHECK_TOLERANCES[meta.fp16]
    result = ExportCheck(
        tuple(sizes), len(frames), worst, atol + rtol * largest, agree / pixels,
        tuple((name, float(inter[c] / union[c]) if union[c] else None)
              for c, name in enumerate(ckpt.classes)))
    if result.max_diff > result.tolerance:
        raise ModelError(f"exported graph differs from the torch model: {result.summary()}",
                         path=where)
    log.info("export check: %s", result.summary())
    return result
