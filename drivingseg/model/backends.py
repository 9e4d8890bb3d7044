"""Inference backends behind one interface: torch (:class:`Segmenter`) or ONNX Runtime.

Both take a uint8 RGB frame and return a :class:`~drivingseg.model.infer.Segmentation`
(class ids, optionally probabilities) at the frame's own size, and both expose
``config``, ``spec`` and ``classes``, so the segmentation node does not care which one runs.
:class:`OnnxSegmenter` runs a file written by ``drivingseg export`` (uint8 NHWC input,
normalisation inside the graph), or exports a checkpoint in memory at start-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import torch

from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import load_checkpoint, resolve_weights
from drivingseg.model.config import LIDAR_CHANNELS, InputSpec, ModelConfig
from drivingseg.model.device import cuda_index
from drivingseg.model.finish import finish_numpy
from drivingseg.model.infer import (
    RunOptions,
    Segmentation,
    Segmenter,
    check_class_prob,
    check_frame,
    check_resize,
    input_size,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_PROVIDERS",
    "GPU_PROVIDERS",
    "FrameSegmenter",
    "OnnxSegmenter",
    "available_providers",
    "check_providers",
    "make_segmenter",
]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
"""Providers that run on a GPU: ``fp16`` auto exports a checkpoint in float16 for them."""


class FrameSegmenter(Protocol):
    """What the segmentation node uses of a backend."""

    config: ModelConfig
    spec: InputSpec
    classes: tuple[str, ...]

    def __call__(self, image: npt.NDArray[np.uint8], lidar: npt.NDArray[np.float32] | None = None,
                 *, probabilities: bool = True, class_prob: int | None = None
                 ) -> Segmentation: ...


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        message = ("backend 'onnxruntime' needs the onnxruntime package: "
                   "pip install 'drivingseg[onnx]'")
        raise ModelError(message) from exc
    return onnxruntime


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has (e.g. CPUExecutionProvider)."""
    return list(_ort().get_available_providers())


def check_providers(providers: Sequence[str]) -> list[str]:
    """``providers`` as a list; ModelError naming the available ones when one is missing."""
    wanted = [p.strip() for p in providers if p.strip()]
    available = available_providers()
    missing = [p for p in wanted if p not in available]
    if not wanted or missing:
        what = f"{missing!r} not installed" if missing else "none given"
        message = (f"onnxruntime execution providers {what}; available: "
                   f"{', '.join(available)}")
        raise ModelError(message)
    return wanted


def _started_providers(wanted: Sequence[str], started: Sequence[str], source: str) -> list[str]:
    """The providers a session runs on. onnxruntime falls back to the CPU when an installed
    provider fails to start (CUDA or cuDNN libraries missing) and only prints so: ModelError
    naming it, or a warning when the CPU was asked for too, as the fallback."""
    lost = [p for p in wanted if p not in started]
    if lost and "CPUExecutionProvider" not in wanted:
        message = (f"onnxruntime execution providers {lost!r} are installed but did not start "
                   f"(their libraries, e.g. CUDA or cuDNN, failed to load); the session would "
                   f"run on {', '.join(started)}. Fix the install, or add "
                   "CPUExecutionProvider to the providers to accept the CPU")
        raise ModelError(message, path=source)
    if lost:
        log.warning("%s: onnxruntime execution providers %r did not start; running on %s",
                    source, lost, ", ".join(started))
    return list(started)


def _with_device(providers: Sequence[str], device_id: int | None
                 ) -> list[str | tuple[str, dict[str, int]]]:
    """``providers`` as onnxruntime takes them, the GPU ones with ``device_id`` as their
    option: without it they run on GPU 0, whatever GPU the ``device`` asked for."""
    if device_id is None:
        return list(providers)
    return [(p, {"device_id": device_id}) if p in GPU_PROVIDERS else p for p in providers]


class OnnxSegmenter:
    """An ONNX Runtime session ready for frames: ``OnnxSegmenter("model.onnx")(rgb)``.

    ``model`` is an exported file or its bytes; ``device_id`` is the GPU the CUDA and
    TensorRT providers run on (None: onnxruntime's default, GPU 0). The frame is resized on
    the host into a preallocated uint8 buffer (as :class:`Segmenter` does, by ``resize``; a
    graph exported at a fixed size can only ``stretch``), the logits are upsampled and
    arg-maxed with the same numpy code as the torch backend on the CPU.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        *,
        num_threads: int = 0,
        resize: str = "keep_aspect",
        device_id: int | None = None,
    ) -> None:
        from drivingseg.model.export import read_metadata

        check_resize(resize)
        ort = _ort()
        self.providers = check_providers(providers)
        source = "<in memory>" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise ModelError("ONNX model file not found", path=source)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), sess_options=options,
                providers=_with_device(self.providers, device_id))
        except Exception as exc:  # onnxruntime's own (InvalidProtobuf, Fail, ...): Exception only
            message = f"onnxruntime cannot load the model: {exc}"
            raise ModelError(message, path=None if isinstance(model, bytes) else source) from exc
        self.providers = _started_providers(self.providers, self.session.get_providers(),
                                            source)
        meta = read_metadata(self.session.get_modelmeta().custom_metadata_map, source)
        self.config, self.spec, self.classes = meta.config, meta.spec, meta.classes
        self.fp16 = meta.fp16
        self.resize = resize if meta.dynamic else "stretch"
        if resize != self.resize:
            log.info("%s takes %dx%d inputs only (not exported --dynamic): frames are "
                     "stretched to it", source, self.spec.width, self.spec.height)
        self._host = np.empty((1, self.spec.height, self.spec.width, 3), dtype=np.uint8)

    def logits(self, feeds: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.float32]:
        """Run the session: classes x h x w float32 logits of the first batch item."""
        out: npt.NDArray[np.float32] = self.session.run(["logits"], feeds)[0][0]
        return out

    def __call__(
        self,
        image: npt.NDArray[np.uint8],
        lidar: npt.NDArray[np.float32] | None = None,
        *,
        probabilities: bool = True,
        class_prob: int | None = None,
    ) -> Segmentation:
        """Segment one RGB frame (and its lidar channels when the model takes them)."""
        check_frame(image, lidar, self.config.uses_lidar)
        check_class_prob(class_prob, self.classes)
        size = input_size(self.spec, int(image.shape[0]), int(image.shape[1]),
                          2 ** self.config.depth, self.resize)
        if self._host.shape[1:3] != (size[1], size[0]):
            self._host = np.empty((1, size[1], size[0], 3), dtype=np.uint8)
        cv2.resize(image, size, dst=self._host[0], interpolation=cv2.INTER_AREA)
        feeds: dict[str, npt.NDArray[Any]] = {"image": self._host}
        if lidar is not None:
            feeds["lidar"] = _lidar_input(lidar, image.shape[:2], size)
        logits = torch.from_numpy(self.logits(feeds))
        return finish_numpy(logits, int(image.shape[0]), int(image.shape[1]), probabilities,
                            class_prob)


def _lidar_input(lidar: npt.NDArray[np.float32], hw: tuple[int, ...], size: tuple[int, int]
                 ) -> npt.NDArray[np.float32]:
    """4 x H x W or H x W x 4 channels -> 1 x 4 x h x w at the model input size (nearest)."""
    arr = np.asarray(lidar, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == LIDAR_CHANNELS and arr.shape[1:] == hw:
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape != (*hw, LIDAR_CHANNELS):
        message = (f"lidar channels must be 4 x H x W or H x W x 4 at the image size {hw!r}, "
                   f"got {lidar.shape!r}")
        raise ModelError(message)
    small = cv2.resize(arr, size, interpolation=cv2.INTER_NEAREST_EXACT)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None])


def make_segmenter(
    weights: str | os.PathLike[str] = "default",
    *,
    backend: str = "torch",
    device: str = "cpu",
    fp16: bool | None = None,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    options: RunOptions | None = None,
    num_threads: int = 0,
    resize: str = "keep_aspect",
) -> Segmenter | OnnxSegmenter:
    """The backend asked for. For ``onnxruntime``, ``device`` ``cuda:N`` puts the CUDA and
    TensorRT providers on GPU N, and ``weights`` is an ``.onnx`` file, or a
    checkpoint exported in memory (float16 graph when ``fp16``, or when it is None (auto)
    and the first provider is a GPU's, as the torch backend runs float16 on CUDA; any input
    size for ``keep_aspect``, else the checkpoint's)."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    check_resize(resize)
    if backend == "torch":
        return Segmenter(resolve_weights(weights), device=device, fp16=fp16, options=options,
                         resize=resize)
    if options is not None and options != RunOptions():
        message = (f"torch options {options!r} do not apply to backend 'onnxruntime'; "
                   "leave channels_last, pin_memory, compile and cuda_graph at their defaults")
        raise ModelError(message)
    device_id = cuda_index(device)
    wanted = check_providers(providers)
    path = resolve_weights(weights)
    if path.suffix == ".onnx":
        return OnnxSegmenter(path, providers, num_threads=num_threads, resize=resize,
                             device_id=device_id)
    from drivingseg.model.export import onnx_bytes

    half = wanted[0] in GPU_PROVIDERS if fp16 is None else fp16
    log.info("exporting %s to ONNX (%s) in memory for onnxruntime", path.name,
             "float16" if half else "float32")
    data = onnx_bytes(load_checkpoint(path), fp16=half, dynamic=resize != "stretch")
    return OnnxSegmenter(data, providers, num_threads=num_threads, resize=resize,
                         device_id=device_id)
