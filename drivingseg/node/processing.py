"""Processing nodes: fusion (lidar channels) and segmentation (the sync node is in
:mod:`drivingseg.node.sync_node`).

The segmentation node depends on the model only through
:class:`drivingseg.model.infer.Segmenter`. ``num_threads`` sets torch's intra-op thread
count for the process (0 keeps torch's default, one per core). On a CPU shared with
another busy process, set it to 1: OpenMP's spinning workers then made one inference an
order of magnitude slower in our measurements (benchmarks/README.md).

With ``car_probability`` (default on) each mask also carries the car class probability
(one H x W float32 plane, from both backends) and the fused input's lidar scan and rig,
so the proposals node downstream needs nothing else.

The fusion node's height channel needs the ground plane, a RANSAC fit of 25-120 ms a scan
on a 2-core CPU. ``ground_refit_every: N`` keeps a plane for up to N scans, refitted sooner
when it stops fitting (:class:`~drivingseg.fusion.ground.GroundKeeper`). The default, 1,
fits every scan, so the channels are those training and ``eval`` make; on the KITTI drive
reuse moved the height of 1-2 % of the lidar pixels by more than 10 cm (N = 2-10).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np

from drivingseg.calibration.load import load_rig_any
from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, DrivingsegError
from drivingseg.fusion.channels import StreamNotes, lidar_channels
from drivingseg.fusion.ground import GroundKeeper, preload_open3d
from drivingseg.fusion.projection import scale_rig
from drivingseg.model.config import LIDAR_CHANNELS
from drivingseg.node.messages import FusedInput, Mask, SyncedFrames
from drivingseg.node.params import Param
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource

__all__ = ["FusionNode", "SegmentationNode"]

log = logging.getLogger(__name__)


def _upstream(node: Node) -> list[Node]:
    """Every node whose messages reach ``node``, through any chain of topics."""
    found: list[Node] = []
    todo = [node]
    while todo:
        for sub in todo.pop().subscriptions:
            for pub in sub.topic.publishers:
                if pub.node is not node and pub.node not in found:
                    found.append(pub.node)
                    todo.append(pub.node)
    return found


class FusionNode(Node):
    """Computes the lidar image channels of each synced pair; publishes ``/fused``.

    ``channels: auto`` computes them only when a node on ``/fused`` needs them (a model
    that takes lidar input), so an RGB model does not pay for the projection.
    """

    type_name = "fusion"
    description = "lidar projected into the image: depth, height, intensity, valid channels"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("channels", str, "auto", "compute lidar channels", choices=("auto", "on", "off")),
        Param("densify", bool, False, "fill the depth channel (IP-Basic)"),
        Param("intensity_scale", float, 0.0, "divide lidar intensity by this to 0..1 (0 = "
              "auto per scan: 1, 255 or 65535, the smallest at or above its largest value, "
              "so KITTI's 0..1 and a Velodyne driver's 0..255 both give 0..1)",
              "raw intensity", min=0.0, max=1e9),
        Param("calibration", str, "", "rig file or KITTI calibration (for the camera "
              "source's camera) overriding the camera's ('' = camera's)"),
        Param("ground_refit_every", int, 1, "fit the height channel's ground plane (RANSAC, "
              "25-120 ms) every N scans and keep it in between (1 = every scan, as training "
              "and eval do)", "scans", min=1, max=10_000),
        Param("ground_min_support", float, 0.8, "refit a kept ground plane early when the "
              "share of near lidar points within 0.15 m of it falls below this times its "
              "share on the scan it was fitted on (0 = never early)", "ratio",
              min=0.0, max=1.0),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/synced", SyncedFrames, self.on_synced)
        self.pub = self.create_publisher("/fused", FusedInput)
        self.rig: Rig | None = None
        self._scaled_rig: tuple[Rig | None, tuple[int, int], Rig | None] = (None, (0, 0), None)
        self.compute = self.p["channels"] == "on"
        self.frames_without_scan = 0  # kept frames without a scan, given empty channels
        self.notes = StreamNotes(self.name)  # scans without ground, intensity scale: warned once
        self.ground = GroundKeeper(self.p["ground_refit_every"], self.p["ground_min_support"])

    def setup(self) -> None:
        if self.p["calibration"]:
            self._load(camera=2)

    def _load(self, camera: int) -> None:
        try:
            self.rig = load_rig_any(self.p["calibration"], camera=camera)
        except DrivingsegError as exc:
            raise self.config_error(str(exc), "calibration") from exc

    def ready(self) -> None:
        """Decide ``channels: auto``; check before the first frame that channels can be made."""
        sources = [n for n in _upstream(self) if isinstance(n, CameraSource)]
        cameras = {n.p["camera"] for n in sources}
        if self.p["calibration"] and len(cameras) == 1 and cameras != {2}:
            self._load(camera=cameras.pop())  # a KITTI calibration: the camera in use
        users = [s.node for s in self.pub.topic.subscriptions]
        wanted = any(getattr(n, "wants_lidar_channels", False) for n in users)
        if wanted and self.context.lidar_absent:
            absent = ", ".join(sorted(self.context.lidar_absent))
            message = (f"the model takes lidar channels, but the recording has no lidar scans "
                       f"({absent}); use an RGB model (weights 'default')")
            raise self.config_error(message, "channels")
        if wanted and self.p["channels"] == "off":
            message = (f"{self.p['channels']!r} leaves the model, which takes lidar channels, "
                       "without them; set it to auto or on, or use an RGB model")
            raise self.config_error(message, "channels")
        if self.p["channels"] == "auto":
            self.compute = wanted
        missing = [n for n in sources if n.rig is None]  # found at the first frame, before
        if self.compute and self.rig is None and missing and not self.context.lidar_absent:
            why = "a model that takes them" if wanted else f"channels {self.p['channels']!r}"
            names = ", ".join(f"{n.name!r} (input {n.p['input']!r})" for n in missing)
            raise self.config_error(f"lidar channels are on ({why}), but camera source "
                                    f"{names} has no calibration to project the lidar with; "
                                    "give the camera source's calibration (calibration:=PATH) "
                                    "or this node's, or channels off", "calibration")
        if self.compute:  # the height channel's ground fit: not on the first frame's clock
            preload_open3d()
        log.info("%s: lidar channels %s", self.name, "on" if self.compute else "off")

    def on_synced(self, msg: SyncedFrames) -> None:
        t0 = time.perf_counter_ns()
        frame = msg.camera.frame
        rig = self.rig or msg.camera.rig
        scan = msg.lidar.scan if msg.lidar is not None else None
        channels = None
        if self.compute and scan is None:  # a kept frame without a scan: no point, valid 0
            channels = np.zeros((LIDAR_CHANNELS, frame.height, frame.width), np.float32)
            self.frames_without_scan += 1
            if self.frames_without_scan == 1:
                log.warning("%s: a frame without a lidar scan (stamp_ns %d) gets empty lidar "
                            "channels; warned once", self.name, msg.stamp_ns)
        elif self.compute and scan is not None:
            if rig is None:
                raise self.config_error("no calibration to project the lidar with; set it",
                                        "calibration")
            channels = lidar_channels(
                scan.points, rig, width=frame.width, height=frame.height,
                densify=self.p["densify"], intensity_scale=self.p["intensity_scale"] or None,
                notes=self.notes, ground_keeper=self.ground,
            ).stack()
        if rig is not None and rig.camera.image_size != (frame.width, frame.height):
            rig = self._scaled(rig, frame.width, frame.height)  # CameraInfo fits the image
        timing = msg.timing.with_stage("fusion", time.perf_counter_ns() - t0)
        self.pub.publish(FusedInput(frame, scan, channels, rig, timing,
                                    None if rig is not None else msg.camera.camera_model))

    def after_run(self) -> None:
        keeper = self.ground
        if keeper.refit_every > 1 and keeper.fits:
            log.info("%s: ground plane fitted on %d scans (%d of them early, the kept plane no "
                     "longer fitting), kept for %d", self.name, keeper.fits, keeper.forced,
                     keeper.reused)
        no_ground = self.notes.summary()
        if no_ground is not None:
            log.warning(no_ground)
        if self.frames_without_scan:
            log.warning("%s: %d frames came without a lidar scan and got empty lidar channels",
                        self.name, self.frames_without_scan)

    def _scaled(self, rig: Rig, width: int, height: int) -> Rig:
        """``rig`` scaled to frames of ``width`` x ``height``, kept for the next frame."""
        source, size, scaled = self._scaled_rig
        if source is not rig or size != (width, height) or scaled is None:
            scaled = scale_rig(rig, width, height)
            self._scaled_rig = (rig, (width, height), scaled)
        return scaled


class SegmentationNode(Node):
    """Runs the U-Net on each fused input; publishes ``/segmentation/mask``.

    ``backend: torch`` runs :class:`~drivingseg.model.infer.Segmenter` on ``device`` with the
    torch options (channels_last, pin_memory, compile, cuda_graph); ``backend: onnxruntime``
    runs :class:`~drivingseg.model.backends.OnnxSegmenter` with ``providers`` (``device``
    ``cuda:N`` puts its CUDA and TensorRT providers on GPU N; the torch options do not
    apply: channels_last and pin_memory, performance hints a launch file may set for either
    backend, are ignored; compile and cuda_graph are refused). Every combination is checked
    at start-up, and a GPU out of memory at start-up (another process holding it) is one
    error naming the device.
    """

    type_name = "segmentation"
    description = "U-Net road/car segmentation"
    parameters: ClassVar[tuple[Param, ...]] = (
        Param("weights", str, "default", "checkpoint or ensemble manifest ('default' = the "
              "shipped weights, 'ensemble' = the shipped 3-network ensemble, ~3x the time)"),
        Param("device", str, "auto", "where the torch backend runs: auto (CUDA when "
              "present), cpu, cuda or cuda:N (the N-th GPU; with onnxruntime, the GPU of its "
              "CUDA and TensorRT providers)"),
        Param("fp16", str, "auto", "half precision: float16 on CUDA, bfloat16 on the CPU "
              "(auto = on CUDA, onnxruntime's CUDA or TensorRT provider first included, and "
              "on a CPU with native bfloat16 for the torch backend; an .onnx file keeps the "
              "precision it was exported in)",
              choices=("auto", "on", "off")),
        Param("num_threads", int, 0, "torch intra-op threads (0 = torch's default)", "threads",
              min=0, max=256),
        Param("backend", str, "torch", "inference backend (onnxruntime: an .onnx file from "
              "'drivingseg export', or the checkpoint exported at start-up)",
              choices=("torch", "onnxruntime")),
        Param("providers", str, "CPUExecutionProvider",
              "onnxruntime execution providers, comma-separated, in order of preference (one "
              "that fails to start is an error, unless CPUExecutionProvider is listed after "
              "it as the fallback)"),
        Param("channels_last", bool, True, "torch: channels-last memory format (faster "
              "convolutions on CPU and CUDA; ignored by backend onnxruntime)"),
        Param("pin_memory", bool, False, "torch: pinned host buffer for the upload (CUDA only; "
              "a no-op on the CPU; ignored by backend onnxruntime)"),
        Param("compile", str, "off", "torch: torch.compile backend (off = eager)",
              choices=("off", "inductor", "cudagraphs", "aot_eager", "eager")),
        Param("cuda_graph", bool, False, "torch: capture the forward as a CUDA graph per "
              "input size (CUDA only)"),
        Param("resize", str, "keep_aspect", "how a frame becomes the network input: "
              "keep_aspect = the frame's aspect ratio at about the checkpoint's pixel count "
              "(a KITTI 1242x375 frame at 576x176), as in training; stretch = squashed to "
              "the checkpoint's size (a fixed-size .onnx file can only stretch)",
              choices=("keep_aspect", "stretch")),
        Param("trace", bool, True, "torch: run a frozen TorchScript trace of the network (one "
              "call per frame, so other nodes' Python threads do not stall it layer by layer; "
              "ignored when compile is set)"),
        Param("car_probability", bool, True, "publish the car class probability with each mask "
              "(region proposals score their boxes with it)"),
        Param("extra_delay_ms", float, 0.0, "test only: added to every inference (overload)",
              "ms", min=0.0, max=60_000.0),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_subscription("/fused", FusedInput, self.on_fused)
        self.pub = self.create_publisher("/segmentation/mask", Mask)
        self.segmenter: Any = None
        self.car_index: int | None = None
        self.device = ""  # where the model runs, as setup resolved ``device``

    @property
    def wants_lidar_channels(self) -> bool:
        return bool(self.segmenter is not None and self.segmenter.config.uses_lidar)

    def setup(self) -> None:
        import torch

        from drivingseg.model.backends import check_providers, make_segmenter
        from drivingseg.model.checkpoint import resolve_weights
        from drivingseg.model.device import check_device_name, torch_device
        from drivingseg.model.infer import RunOptions, cpu_has_native_bf16

        if self.p["num_threads"]:
            torch.set_num_threads(self.p["num_threads"])
        device = self.p["device"]
        try:  # checked here, so that a missing CUDA names 'device', not 'weights'
            check_device_name(device)
            if self.p["backend"] == "torch":  # onnxruntime runs where its providers say
                device = str(torch_device(device))
        except DrivingsegError as exc:
            raise self.config_error(str(exc), "device") from exc
        if self.p["backend"] != "torch" and device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        fp16 = None if self.p["fp16"] == "auto" else self.p["fp16"] == "on"
        if fp16 is None and device == "cpu" and self.p["backend"] == "torch":
            fp16 = cpu_has_native_bf16()
        weights = self.p["weights"]
        if not weights.strip():  # an empty launch argument (pathlib raised ValueError on it)
            raise self.config_error(f"names no checkpoint ({weights!r}); give default, "
                                    "ensemble or a path", "weights")
        path = resolve_weights(weights)
        if weights in ("default", "ensemble") and not path.is_file():
            message = (
                f"the shipped weights are missing ({path}); reinstall drivingseg, train them "
                "(docs/MODEL.md) or set weights:=PATH to a checkpoint or ensemble manifest"
            )
            raise self.config_error(message, "weights")
        backend = self.p["backend"]
        options = RunOptions(channels_last=self.p["channels_last"] and backend == "torch",
                             pin_memory=self.p["pin_memory"], compile=self.p["compile"],
                             cuda_graph=self.p["cuda_graph"],
                             trace=self.p["trace"] and backend == "torch"
                             and self.p["compile"] == "off")
        providers = self.p["providers"].split(",")
        if backend == "torch":
            try:
                options.check(torch.device(device))
            except DrivingsegError as exc:
                raise self.config_error(str(exc), "cuda_graph") from exc
        else:
            try:
                check_providers(providers)
            except DrivingsegError as exc:
                raise self.config_error(str(exc), "providers") from exc
            changed = [k for k in ("compile", "cuda_graph")
                       if self.p[k] != getattr(RunOptions(), k)]
            if changed:
                message = f"is a torch option; backend is {backend!r}"
                raise self.config_error(message, changed[0])
        self.device = device
        try:
            self.segmenter = make_segmenter(
                path, backend=backend, device=device, fp16=fp16, providers=providers,
                options=options if backend == "torch" else None,
                num_threads=self.p["num_threads"], resize=self.p["resize"])
        except DrivingsegError as exc:
            raise self.config_error(str(exc), "weights") from exc
        except RuntimeError as exc:
            error = self._out_of_memory(exc, f"loading {path.name} onto it")
            if error is None:
                raise
            raise error from exc
        classes = tuple(self.segmenter.classes)
        self.context.mask_classes[self.pub.topic.name] = classes
        self.car_index = classes.index("car") if "car" in classes else None
        if self.p["car_probability"] and self.car_index is None:
            log.warning("%s: the model has no 'car' class (%s); no car probability",
                        self.name, ", ".join(classes))
        if fp16 is not None and self.segmenter.fp16 != fp16:  # an .onnx file's own precision
            log.warning("%s: fp16 %r does not apply to %s, exported in %s ('drivingseg export "
                        "--fp16' makes a float16 one); it runs so", self.name, self.p["fp16"],
                        path.name, "float16" if self.segmenter.fp16 else "float32")
        where = device if backend == "torch" else ",".join(self.segmenter.providers)
        log.info("%s: %s with %s on %s, checkpoint input %dx%d, resize %s", self.name,
                 path.name, backend, where,
                 self.segmenter.spec.width, self.segmenter.spec.height, self.p["resize"])

    def ready(self) -> None:
        """Warm up for the frame sizes the camera sources announced at setup (or the
        checkpoint's own size when none did)."""
        spec = self.segmenter.spec
        sizes = set(self.context.frame_sizes.values()) or {(spec.height, spec.width)}
        for height, width in sorted(sizes):
            try:
                self._warm_up(height, width)
            except RuntimeError as exc:
                doing = "capturing the CUDA graph" if self.p["cuda_graph"] else "warming up"
                error = self._out_of_memory(exc, f"{doing} for {width}x{height} frames")
                if error is None:
                    raise
                raise error from exc

    def _out_of_memory(self, exc: RuntimeError, doing: str) -> ConfigError | None:
        """A GPU out of memory at start-up (most often another process holding it) as one
        line naming this node, the device and what to do; None for any other error."""
        import torch

        text = str(exc).strip()
        if not (isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text):
            return None
        detail = text.splitlines()[0].split(" Of the allocated memory")[0] if text else ""
        message = (f"{self.device!r} ran out of GPU memory while {doing} ({detail[:240]}); "
                   "another process may hold the GPU (see nvidia-smi): free it, pick another "
                   "GPU (device cuda:N) or run on the CPU (device cpu)")
        return self.config_error(message, "device")

    def _warm_up(self, height: int, width: int, calls: int = 6) -> None:
        """Run the network on blank frames of a size before the first real one: the first
        calls at an input size pay for its buffers, the trace and its optimisation, and
        kernel set-up (~100-250 ms here), which would otherwise make the first frames late
        and back the graph up behind them."""
        import numpy as np

        from drivingseg.model.config import LIDAR_CHANNELS

        seg = self.segmenter
        blank = np.zeros((height, width, 3), dtype=np.uint8)
        lidar = (np.zeros((height, width, LIDAR_CHANNELS), dtype=np.float32)
                 if seg.config.uses_lidar else None)
        t0 = time.perf_counter()
        for _ in range(calls):
            seg(blank, lidar, probabilities=False, class_prob=self.car_index)
        log.info("%s: warmed up for %dx%d frames (input %dx%d) in %.0f ms", self.name, width,
                 height, seg.spec.width, seg.spec.height, 1e3 * (time.perf_counter() - t0))

    def on_fused(self, msg: FusedInput) -> None:
        t0 = time.perf_counter_ns()
        seg = self.segmenter
        lidar = msg.channels if seg.config.uses_lidar else None
        if seg.config.uses_lidar and lidar is None:
            raise self.config_error("the model takes lidar channels but the input has none; "
                                    "set the fusion node's channels to on", "weights")
        want_prob = self.p["car_probability"] and self.car_index is not None
        result = seg(msg.frame.image, lidar, probabilities=False,
                     class_prob=self.car_index if want_prob else None)
        car_prob = result.class_prob
        delay_s = self.p["extra_delay_ms"] / 1e3
        if delay_s:
            self.context.abort.wait(delay_s)
        timing = msg.timing.with_stage("inference", time.perf_counter_ns() - t0)
        published = time.perf_counter_ns()
        self.pub.publish(Mask(msg.frame, result.class_ids, tuple(seg.classes), timing, published,
                              car_prob=car_prob, scan=msg.scan, rig=msg.rig,
                              camera_model=msg.camera_model))
