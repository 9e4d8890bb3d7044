"""Inference for the streaming node: uint8 RGB in, class ids and probabilities out.

:class:`Segmenter` keeps its input buffers between calls (a resized-frame buffer on the
host and a normalised input tensor on the device), runs under ``torch.inference_mode``,
and returns results at the frame's own size (logits upsampled bilinearly, then softmax
and arg-max). The same code runs on CUDA. ``fp16`` (half precision) runs the network in
float16 on CUDA (the default there) and in bfloat16 on the CPU, which is about twice as fast
as float32 on a CPU with native bfloat16 instructions (:func:`cpu_has_native_bf16`; the
streaming node turns it on there) and slow on one without.

:class:`RunOptions` are the vehicle-path switches, each a segmentation-node parameter:
``channels_last`` memory format (any device), ``pin_memory`` for the host buffer (CUDA;
a no-op on the CPU), ``compile`` with a ``torch.compile`` backend, ``cuda_graph``
(capture the forward once for the fixed input size and replay it; CUDA only) and ``trace``
(a frozen TorchScript trace of the forward). The trace matters in the streaming node,
where other nodes' threads run Python beside the network: eager PyTorch takes the GIL
back after each layer and waits up to the interpreter's switch interval (5 ms) each
time another thread holds it, while the trace runs the whole network in one call.
Measured on 2 cores (``benchmarks/bench_gil.py``: shipped model, bfloat16, KITTI frame):
both ~43 ms alone; beside one pure-Python thread eager 539-941 ms, traced 164-266 ms.

``resize`` says how a frame becomes the network's input. ``keep_aspect`` (the default)
keeps the frame's aspect ratio at about the checkpoint's pixel count (:func:`input_size`:
a 4:3 CamVid frame goes in at the checkpoint's 384 x 288, a 1242 x 375 KITTI frame at
576 x 176), as training shows frames (scaled, never squashed); ``stretch`` resizes every
frame to the checkpoint's width x height. Buffers (and trace, CUDA graph) are made per
input size on first use and kept.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import LIDAR_CHANNELS, InputSpec, ModelConfig
from drivingseg.model.device import torch_device
from drivingseg.model.ensemble import Ensemble
from drivingseg.model.finish import Segmentation, finish_numpy, finish_torch
from drivingseg.model.unet import UNet

__all__ = ["COMPILE_BACKENDS", "GRAPH_COMPILE_BACKENDS", "RESIZE_MODES", "RunOptions",
           "Segmentation", "Segmenter", "check_class_prob", "check_frame", "check_resize",
           "cpu_has_native_bf16", "fuse_batch_norm", "input_size"]

_Model = TypeVar("_Model", bound=nn.Module)
log = logging.getLogger(__name__)

COMPILE_BACKENDS = ("off", "inductor", "cudagraphs", "aot_eager", "eager")
"""``RunOptions.compile`` values: off, or the ``torch.compile`` backend to use."""

GRAPH_COMPILE_BACKENDS = ("cudagraphs",)
"""``compile`` backends that capture CUDA graphs themselves: ``cuda_graph`` around them would
be a capture inside a capture, which fails at the first call."""

RESIZE_MODES = ("keep_aspect", "stretch")
"""How a frame is resized to the network input (see the module docstring); the first is
the default everywhere (node, eval, report)."""

_MAX_SIDE = 4096
"""Longest input side (InputSpec's limit); frames of extreme aspect ratio are squashed to it."""

_MIN_SIDE = 16
"""Shortest input side (InputSpec's limit), likewise."""

_MAX_SIZES = 8
"""Input sizes whose buffers a Segmenter keeps (a folder of mixed frame sizes)."""


def check_resize(resize: str) -> None:
    """ModelError for an unknown ``resize`` mode, listing the valid ones."""
    if resize not in RESIZE_MODES:
        raise ModelError(f"unknown resize {resize!r}; valid: {', '.join(RESIZE_MODES)}")


def input_size(spec: InputSpec, height: int, width: int, multiple: int,
               resize: str = "keep_aspect") -> tuple[int, int]:
    """Network input (width, height) for a ``height`` x ``width`` frame: ``spec``'s own
    size for ``stretch``; for ``keep_aspect`` the frame's aspect ratio at about ``spec``'s
    pixel count, each side a multiple of ``multiple`` (the U-Net's 2^depth)."""
    check_resize(resize)
    if resize == "stretch" or height * spec.width == width * spec.height:
        return spec.width, spec.height
    top = _MAX_SIDE // multiple * multiple
    low = -(-_MIN_SIDE // multiple) * multiple
    ideal_h = math.sqrt(spec.width * spec.height * height / width)
    h = min(top, max(low, round(ideal_h / multiple) * multiple))
    w = min(top, max(low, round(h * width / height / multiple) * multiple))
    return w, h


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (x86 ``avx512_bf16`` or ``amx_bf16``).

    torch runs bfloat16 on any CPU, but without these instructions it converts to float32
    and back, slower than float32 alone. Not Linux, or unreadable: False.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def fuse_batch_norm(model: _Model) -> _Model:
    """Fold each eval-mode BatchNorm into the conv before it (same outputs, less work);
    a U-Net or an ensemble of them."""
    model.eval()
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return model


@dataclass(frozen=True)
class RunOptions:
    """How the torch backend runs the model (see the module docstring)."""

    channels_last: bool = False
    pin_memory: bool = False
    compile: str = "off"
    cuda_graph: bool = False
    trace: bool = False

    def check(self, device: torch.device) -> None:
        """ModelError for a combination this device cannot run."""
        if self.compile not in COMPILE_BACKENDS:
            message = (f"unknown compile backend {self.compile!r}; valid: "
                       f"{', '.join(COMPILE_BACKENDS)}")
            raise ModelError(message)
        if self.trace and self.compile != "off":
            message = (f"trace and compile {self.compile!r} both replace the eager forward; "
                       "choose one (set compile off or trace off)")
            raise ModelError(message)
        if self.cuda_graph and self.compile in GRAPH_COMPILE_BACKENDS:
            message = (f"cuda_graph and compile {self.compile!r} both capture the forward as "
                       "CUDA graphs, one inside the other, which fails at the first frame; "
                       "choose one (set cuda_graph off, or compile off or inductor)")
            raise ModelError(message)
        if self.cuda_graph and device.type != "cuda":
            message = (f"CUDA graph capture needs a CUDA device, the model runs on "
                       f"{device.type!r}; set cuda_graph off or device cuda")
            raise ModelError(message)


def check_class_prob(class_prob: int | None, classes: tuple[str, ...]) -> None:
    """ModelError unless ``class_prob`` (the class whose probability is asked for) is None or
    a class id of the model."""
    if class_prob is not None and not (isinstance(class_prob, int)
                                       and 0 <= class_prob < len(classes)):
        listed = ", ".join(f"{i} {c}" for i, c in enumerate(classes))
        raise ModelError(f"class_prob must be a class id of the model ({listed}), "
                         f"got {class_prob!r}")


def check_frame(image: npt.NDArray[np.uint8], lidar: object, uses_lidar: bool) -> None:
    """ModelError unless ``image`` is H x W x 3 uint8 and lidar is given iff the model needs it."""
    if not isinstance(image, np.ndarray):
        raise ModelError(f"expected an H x W x 3 uint8 numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        message = (
            f"expected an H x W x 3 uint8 RGB image, got shape {image.shape!r} dtype "
            f"{image.dtype}; convert BGR/float images first"
        )
        raise ModelError(message)
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ModelError(f"expected an H x W x 3 uint8 RGB image, got an empty one {image.shape!r}")
    if (lidar is not None) != uses_lidar:
        need = "needs the 4 lidar channels (lidar=...)" if uses_lidar else (
            "is RGB only; do not pass lidar channels")
        raise ModelError(f"this model {need}")


class Segmenter:
    """A loaded model ready for frames: ``Segmenter("default")(rgb).class_ids``."""

    def __init__(
        self,
        weights: str | os.PathLike[str] | Checkpoint = "default",
        device: str | torch.device = "cpu",
        fp16: bool | None = None,
        options: RunOptions | None = None,
        resize: str = "keep_aspect",
    ) -> None:
        self.device = torch_device(device)
        check_resize(resize)
        self.resize = resize
        if isinstance(weights, Checkpoint):  # the caller's: converted here, so copied first
            ckpt = dataclasses.replace(weights, model=copy.deepcopy(weights.model))
        else:
            ckpt = load_checkpoint(weights)
        self._setup(fuse_batch_norm(ckpt.model), ckpt.config, ckpt.spec, ckpt.classes, fp16,
                    options)

    @classmethod
    def from_model(
        cls, model: UNet, spec: InputSpec, device: str | torch.device = "cpu",
        fp16: bool | None = None, options: RunOptions | None = None,
        resize: str = "keep_aspect",
    ) -> Segmenter:
        """Wrap a model in training (validation uses the same code path as the node)."""
        obj = cls.__new__(cls)
        obj.device = torch_device(device)
        check_resize(resize)
        obj.resize = resize
        from drivingseg.model.config import CLASS_NAMES

        obj._setup(model, model.config, spec, CLASS_NAMES[: model.config.num_classes], fp16,
                   options)
        return obj

    def _setup(
        self, model: UNet | Ensemble, config: ModelConfig, spec: InputSpec,
        classes: tuple[str, ...], fp16: bool | None, options: RunOptions | None = None,
    ) -> None:
        self.options = options or RunOptions()
        self.options.check(self.device)
        self.config, self.spec, self.classes = config, spec, classes
        cuda = self.device.type == "cuda"
        if fp16 is not None and not isinstance(fp16, bool):
            raise ModelError(f"fp16 must be True, False or None (auto), got {fp16!r}")
        self.fp16 = cuda if fp16 is None else fp16
        if self.fp16 and self.device.type not in ("cuda", "cpu"):
            message = (f"half precision runs on 'cuda' (float16) or 'cpu' (bfloat16), not on "
                       f"{self.device.type!r}; use fp16=False")
            raise ModelError(message)
        half = torch.float16 if cuda else torch.bfloat16
        self.dtype = half if self.fp16 else torch.float32
        model = model.to(self.device)  # weights loaded by name or path arrive on the CPU
        self.model = model.to(self.dtype) if self.fp16 else model
        if self.options.channels_last:
            self.model = self.model.to(  # type: ignore[call-overload]
                memory_format=torch.channels_last)
        self._compiled: object | None = (
            None if self.options.compile == "off"
            else torch.compile(self.model, backend=self.options.compile))
        self.nominal_spec = spec
        """The checkpoint's input spec; ``spec`` is the one of the current input size."""
        self._sizes: dict[tuple[int, int], dict[str, object]] = {}
        self._allocate(spec)
        self._scale = (1.0 / (255.0 * torch.tensor(spec.std))).view(1, 3, 1, 1).to(
            self.device, self.dtype)
        self._shift = (-torch.tensor(spec.mean) / torch.tensor(spec.std)).view(1, 3, 1, 1).to(
            self.device, self.dtype)

    _PER_SIZE = ("spec", "_host_t", "_host", "_input", "_forward", "_graph", "_graph_out")

    def _allocate(self, spec: InputSpec) -> None:
        """Buffers, forward (traced when asked) and CUDA graph slot for ``spec``'s size."""
        h, w = spec.height, spec.width
        self.spec = spec
        self._host_t = torch.empty((h, w, 3), dtype=torch.uint8,
                                   pin_memory=self.device.type == "cuda"
                                   and self.options.pin_memory)
        self._host = self._host_t.numpy()
        self._input = torch.empty((1, self.config.in_channels, h, w), device=self.device,
                                  dtype=self.dtype)
        if self.options.channels_last:
            self._input = self._input.contiguous(memory_format=torch.channels_last)
        self._forward: nn.Module | object = (
            self.model if self._compiled is None else self._compiled)
        if self.options.trace:
            self._forward = self._traced()
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_out: torch.Tensor | None = None

    def use_frame_size(self, height: int, width: int) -> tuple[int, int]:
        """Make the input size for ``height`` x ``width`` frames current (``resize``
        decides it; buffers of earlier sizes are kept) and return it as (width, height).
        Called for every frame; a node may call it ahead to warm that size up."""
        size = input_size(self.nominal_spec, height, width, 2 ** self.config.depth,
                          self.resize)
        current = (self.spec.width, self.spec.height)
        if size == current:
            return size
        self._sizes[current] = {name: getattr(self, name) for name in self._PER_SIZE}
        state = self._sizes.pop(size, None)
        if state is not None:
            for name, value in state.items():
                setattr(self, name, value)
        else:
            while len(self._sizes) >= _MAX_SIZES:
                del self._sizes[next(iter(self._sizes))]
            self._allocate(dataclasses.replace(self.nominal_spec, width=size[0], height=size[1]))
            log.info("input %dx%d for %dx%d frames (resize %s)", *size, width, height,
                     self.resize)
        return size

    def _traced(self) -> nn.Module:
        """The model traced on the input buffer (fixed size, dtype and memory format) and
        frozen (weights become constants). torch marks ``jit.trace`` deprecated in favour
        of ``torch.compile``, which needs a C++ compiler and ~25 s per size here; the trace
        needs neither, so it stays while torch has it (its warnings are silenced), and a
        torch without it gets the eager model and a log line."""
        import warnings

        self.model.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # U-Net shape checks
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(self.model, self._input, check_trace=False)
                frozen: nn.Module = torch.jit.freeze(traced)
        except (AttributeError, RuntimeError) as exc:
            log.warning("trace failed (%s); running the eager model", exc)
            return self.model
        return frozen

    def _prepare(self, image: npt.NDArray[np.uint8], lidar: npt.NDArray[np.float32] | None
                 ) -> None:
        check_frame(image, lidar, self.config.uses_lidar)
        self.use_frame_size(int(image.shape[0]), int(image.shape[1]))
        cv2.resize(image, (self.spec.width, self.spec.height), dst=self._host,
                   interpolation=cv2.INTER_AREA)
        rgb = self._host_t.to(self.device, non_blocking=True)
        self._input[:, :3].copy_(rgb.permute(2, 0, 1).unsqueeze(0))
        self._input[:, :3].mul_(self._scale).add_(self._shift)
        if lidar is not None:
            self._input[:, 3:].copy_(self._lidar_tensor(lidar, image.shape[:2]))

    def _lidar_tensor(self, lidar: npt.NDArray[np.float32], hw: tuple[int, ...]) -> torch.Tensor:
        arr = np.asarray(lidar, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[0] == LIDAR_CHANNELS and arr.shape[1:] == hw:
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape != (*hw, LIDAR_CHANNELS):
            message = (
                f"lidar channels must be 4 x H x W or H x W x 4 at the image size {hw!r}, "
                f"got {lidar.shape!r}"
            )
            raise ModelError(message)
        small = cv2.resize(arr, (self.spec.width, self.spec.height),
                           interpolation=cv2.INTER_NEAREST_EXACT)
        return torch.from_numpy(small).permute(2, 0, 1).unsqueeze(0).to(self.device, self.dtype)

    def __call__(
        self,
        image: npt.NDArray[np.uint8],
        lidar: npt.NDArray[np.float32] | None = None,
        *,
        probabilities: bool = True,
        class_prob: int | None = None,
    ) -> Segmentation:
        """Segment one RGB frame (and its lidar channels when the model takes them)."""
        check_class_prob(class_prob, self.classes)
        self._prepare(image, lidar)
        logits = self.logits()
        height, width = int(image.shape[0]), int(image.shape[1])
        if self.device.type == "cpu":
            return finish_numpy(logits, height, width, probabilities, class_prob)
        return finish_torch(logits, height, width, probabilities, class_prob)

    def logits(self) -> torch.Tensor:
        """Run the model on the prepared input: classes x h x w logits at the input size
        (with ``cuda_graph``, a buffer the next call overwrites)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                if self.options.cuda_graph:
                    return self._replay()[0]
                out: torch.Tensor = self._forward(self._input)  # type: ignore[operator]
                return out[0]
        finally:
            self.model.train(was_training)

    def _replay(self) -> torch.Tensor:
        """Capture the forward on the fixed-size input once (after warm-up runs on a side
        stream, as CUDA graphs need), then replay it; the input buffer is updated in place.

        Both happen in the context of the segmenter's GPU, on a side stream made there: the
        calling thread's current GPU is cuda:0 unless it set another, and a capture on one
        GPU's stream of the work of another records nothing (every replay would give the
        first frame's logits) or fails."""
        with torch.cuda.device(self.device):
            if self._graph is None:
                forward = self._forward
                current = torch.cuda.current_stream(self.device)
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(current)
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        forward(self._input)  # type: ignore[operator]
                current.wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=stream):
                    self._graph_out = forward(self._input)  # type: ignore[operator]
                self._graph = graph
            self._graph.replay()
        assert self._graph_out is not None
        return self._graph_out
