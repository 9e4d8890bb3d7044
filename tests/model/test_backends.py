"""Backends: onnxruntime against torch on real frames, torch run options, node parameters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.errors import ConfigError, ModelError
from drivingseg.model.backends import (
    OnnxSegmenter,
    available_providers,
    check_providers,
    make_segmenter,
)
from drivingseg.model.checkpoint import load_checkpoint, save_checkpoint
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.export import export_onnx
from drivingseg.model.infer import RunOptions, Segmenter, cpu_has_native_bf16
from drivingseg.model.unet import UNet
from drivingseg.node.graph import Graph
from drivingseg.node.launch import build_graph, load_launch
from drivingseg.node.processing import SegmentationNode

pytest.importorskip("onnxruntime")


def test_onnxruntime_backend_matches_torch_on_a_real_frame(tmp_path: Path,
                                                           camvid_frame: np.ndarray) -> None:
    onnx_path = export_onnx("default", tmp_path / "m.onnx")
    ort_seg = OnnxSegmenter(onnx_path)
    torch_seg = Segmenter("default")
    assert (ort_seg.spec, ort_seg.classes, ort_seg.config) == (
        torch_seg.spec, torch_seg.classes, torch_seg.config)
    a, b = ort_seg(camvid_frame), torch_seg(camvid_frame)
    assert a.class_ids.shape == camvid_frame.shape[:2] and a.class_ids.dtype == np.uint8
    assert a.probs is not None and b.probs is not None
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    assert (a.class_ids == b.class_ids).mean() >= 0.9999
    assert (a.class_ids == 1).mean() > 0.2  # the shipped model finds the road
    assert ort_seg(camvid_frame, probabilities=False).probs is None
    with pytest.raises(ModelError, match=r"class_prob must be a class id .* got 7"):
        ort_seg(camvid_frame, class_prob=7)


def test_onnxruntime_resizes_wide_frames_as_torch_does(tmp_path: Path,
                                                      camvid_frame: np.ndarray) -> None:
    """A checkpoint exported in memory takes any size, so a KITTI-shaped frame keeps its
    aspect ratio as in torch; a file exported at a fixed size can only stretch."""
    kitti = np.ascontiguousarray(cv2.resize(camvid_frame, (1242, 375)))
    for resize in ("keep_aspect", "stretch"):
        ort_seg = make_segmenter("default", backend="onnxruntime", resize=resize)
        a, b = ort_seg(kitti), Segmenter("default", resize=resize)(kitti)
        assert a.probs is not None and b.probs is not None
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    fixed = OnnxSegmenter(export_onnx("default", tmp_path / "fixed.onnx"))
    assert fixed.resize == "stretch"
    c, d = fixed(kitti), Segmenter("default", resize="stretch")(kitti)
    assert c.probs is not None and d.probs is not None
    np.testing.assert_allclose(c.probs, d.probs, atol=1e-4)


def test_checkpoint_exported_in_memory_and_lidar_input(tmp_path: Path) -> None:
    cfg = ModelConfig(depth=2, base_channels=4, in_channels=7)
    path = save_checkpoint(tmp_path / "l", UNet(cfg).eval(), cfg, InputSpec(64, 48))
    seg = make_segmenter(path, backend="onnxruntime")
    assert isinstance(seg, OnnxSegmenter) and seg.config.in_channels == 7
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    lidar = rng.random((4, 30, 40), dtype=np.float32)
    ref = Segmenter(path)(image, lidar)
    out = seg(image, lidar)
    assert out.probs is not None and ref.probs is not None
    np.testing.assert_allclose(out.probs, ref.probs, atol=1e-5)
    with pytest.raises(ModelError, match=r"needs the 4 lidar channels"):
        seg(image)
    with pytest.raises(ModelError, match=r"lidar channels must be 4 x H x W"):
        seg(image, lidar[:, :10])


def test_provider_errors_list_the_available_ones(tiny_weights: Path) -> None:
    assert "CPUExecutionProvider" in available_providers()
    assert check_providers([" CPUExecutionProvider "]) == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match=r"\['NoSuchExecutionProvider'\] not installed; "
                       r"available: .*CPUExecutionProvider"):
        make_segmenter(tiny_weights, backend="onnxruntime",
                       providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ModelError, match=r"none given; available: .*CPUExecutionProvider"):
        check_providers([""])
    with pytest.raises(ModelError, match=r"unknown backend 'tensorrt'; valid: torch, onnx"):
        make_segmenter(tiny_weights, backend="tensorrt")
    with pytest.raises(ModelError, match=r"do not apply to backend 'onnxruntime'"):
        make_segmenter(tiny_weights, backend="onnxruntime",
                       options=RunOptions(channels_last=True))
    with pytest.raises(ModelError, match=r"ONNX model file not found"):
        OnnxSegmenter(tiny_weights.with_suffix(".onnx"))


def test_truncated_or_corrupt_onnx_files_are_refused_naming_the_file(
        tmp_path: Path, tiny_weights: Path) -> None:
    """onnxruntime's load errors (InvalidProtobuf, InvalidArgument) derive from Exception
    only; they used to escape as a stack trace instead of a ModelError."""
    from drivingseg.model.export import onnx_bytes

    data = onnx_bytes(load_checkpoint(tiny_weights))
    for name, content in (("cut.onnx", data[: len(data) // 2]), ("text.onnx", b"hello"),
                          ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelError, match=rf"{name}: onnxruntime cannot load the model: "):
            OnnxSegmenter(tmp_path / name)


@pytest.mark.filterwarnings("ignore")
def test_onnx_file_without_drivingseg_metadata_is_refused(tmp_path: Path) -> None:
    model = UNet(ModelConfig(depth=2, base_channels=4)).eval()
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 48, 64),), str(plain), dynamo=False)
    with pytest.raises(ModelError, match=r"plain\.onnx: not a drivingseg ONNX export"):
        OnnxSegmenter(plain)


def test_channels_last_and_pinned_memory_give_the_same_output(tiny_weights: Path,
                                                              camvid_frame: np.ndarray) -> None:
    ref = Segmenter(tiny_weights)(camvid_frame)
    seg = Segmenter(tiny_weights, options=RunOptions(channels_last=True, pin_memory=True))
    assert seg._input.is_contiguous(memory_format=torch.channels_last)
    out = seg(camvid_frame)
    assert out.probs is not None and ref.probs is not None
    np.testing.assert_allclose(out.probs, ref.probs, atol=1e-5)
    np.testing.assert_array_equal(out.class_ids, ref.class_ids)


def test_compiled_forward_matches_eager(tiny_weights: Path, camvid_frame: np.ndarray) -> None:
    # The "eager" torch.compile backend runs dynamo's graph capture (the compile code path)
    # in a second; "inductor" needs a C++ toolchain and ~30 s per shape on this CPU.
    ref = Segmenter(tiny_weights)(camvid_frame)
    seg = Segmenter(tiny_weights, options=RunOptions(compile="eager"))
    assert seg._forward is not seg.model
    out = seg(camvid_frame)
    assert out.probs is not None and ref.probs is not None
    np.testing.assert_allclose(out.probs, ref.probs, atol=1e-5)


def test_cuda_only_options_fail_clearly_on_the_cpu(tiny_weights: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU refusal is not what runs")
    with pytest.raises(ModelError, match=r"CUDA graph capture needs a CUDA device, the model "
                       r"runs on 'cpu'"):
        Segmenter(tiny_weights, options=RunOptions(cuda_graph=True))
    with pytest.raises(ModelError, match=r"unknown compile backend 'tvm'"):
        Segmenter(tiny_weights, options=RunOptions(compile="tvm"))


def _segmentation_launch(tmp_path: Path, **params: object) -> Path:
    items = ", ".join(f"{k}: {v}" for k, v in params.items())
    text = f"""\
        nodes:
          - {{type: camera_source, name: camera, parameters: {{input: synthetic, max_frames: 2,
              rate: 0.0}}}}
          - {{type: lidar_source, name: lidar, parameters: {{input: synthetic, max_frames: 2,
              rate: 0.0}}}}
          - {{type: sync, name: sync}}
          - {{type: fusion, name: fusion}}
          - {{type: segmentation, name: seg, parameters: {{{items}}}}}
        """
    path = tmp_path / "seg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _setup(path: Path) -> Graph:
    graph = build_graph(load_launch(path))
    graph.setup()
    return graph


def test_node_runs_the_onnxruntime_backend(tmp_path: Path, tiny_weights: Path) -> None:
    onnx_path = export_onnx(tiny_weights, tmp_path / "tiny.onnx")
    graph = _setup(_segmentation_launch(
        tmp_path, weights=str(onnx_path), backend="onnxruntime",
        providers="CPUExecutionProvider", num_threads=1))
    node = next(n for n in graph.nodes if isinstance(n, SegmentationNode))
    assert isinstance(node.segmenter, OnnxSegmenter)
    result = graph.run(handle_signals=False, timeout_s=60)
    assert result.errors == ()
    assert node.pub.published == 2


def test_node_torch_options_and_their_errors(tmp_path: Path, tiny_weights: Path) -> None:
    graph = _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), device="cpu",
                                        channels_last="true", pin_memory="true"))
    node = next(n for n in graph.nodes if isinstance(n, SegmentationNode))
    assert node.segmenter.options == RunOptions(channels_last=True, pin_memory=True, trace=True)
    untraced = _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), device="cpu",
                                           compile="eager"))
    node = next(n for n in untraced.nodes if isinstance(n, SegmentationNode))
    assert node.segmenter.options == RunOptions(channels_last=True, compile="eager")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"seg\.yaml: node 'seg' \(segmentation\): "
                           r"parameter 'cuda_graph': CUDA graph capture needs a CUDA device"):
            _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), device="cpu",
                                        cuda_graph="true"))
    with pytest.raises(ConfigError, match=r"parameter 'providers': onnxruntime execution "
                       r"providers \['TensorrtExecutionProvider'\] not installed; available: "
                       r".*CPUExecutionProvider"):
        _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), backend="onnxruntime",
                                    providers="TensorrtExecutionProvider"))
    with pytest.raises(ConfigError, match=r"parameter 'compile': is a torch option; backend is "
                       r"'onnxruntime'"):
        _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), backend="onnxruntime",
                                    compile="eager"))
    with pytest.raises(ConfigError, match=r"parameter 'backend': 'tvm' is not one of torch, "
                       r"onnxruntime"):
        build_graph(load_launch(_segmentation_launch(tmp_path, backend="tvm")))


def test_node_half_precision_auto_on_the_cpu(tmp_path: Path, tiny_weights: Path) -> None:
    """fp16 auto on the CPU: bfloat16 exactly when the CPU has native bfloat16; off: float32.
    channels_last (default true) is a torch option the onnxruntime backend leaves alone."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: device auto would pick CUDA")
    auto = _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights)))
    node = next(n for n in auto.nodes if isinstance(n, SegmentationNode))
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert node.segmenter.dtype == expected
    assert node.segmenter.options.channels_last
    off = _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights), fp16='"off"',
                                      channels_last="false"))
    node = next(n for n in off.nodes if isinstance(n, SegmentationNode))
    assert node.segmenter.dtype == torch.float32 and not node.segmenter.options.channels_last
    onnx = _setup(_segmentation_launch(tmp_path, weights=str(tiny_weights),
                                       backend="onnxruntime"))
    node = next(n for n in onnx.nodes if isinstance(n, SegmentationNode))
    assert isinstance(node.segmenter, OnnxSegmenter) and not node.segmenter.fp16


def test_fp16_export_runs_close_to_fp32(tmp_path: Path, camvid_frame: np.ndarray) -> None:
    ckpt = load_checkpoint("default")
    half = OnnxSegmenter(export_onnx(ckpt, tmp_path / "h.onnx", fp16=True))
    full = Segmenter(ckpt)
    assert half.fp16
    agree = (half(camvid_frame, probabilities=False).class_ids
             == full(camvid_frame, probabilities=False).class_ids).mean()
    assert agree > 0.99


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_provider_that_does_not_start_is_not_reported_as_running(
        tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """onnxruntime runs on the CPU when an installed provider fails to start (CUDA libraries
    missing) and only prints so; the segmenter said it ran on CUDA. Simulated on a CPU build:
    CUDA listed as installed, so onnxruntime's own fallback is what happens."""
    import onnxruntime

    path = export_onnx(tiny_weights, tmp_path / "tiny.onnx")
    listed = [*onnxruntime.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    with pytest.raises(ModelError, match=r"tiny\.onnx: onnxruntime execution providers "
                       r"\['CUDAExecutionProvider'\] are installed but did not start .* run on "
                       r"CPUExecutionProvider"):
        OnnxSegmenter(path, ["CUDAExecutionProvider"])
    with caplog.at_level("WARNING", logger="drivingseg.model.backends"):
        seg = OnnxSegmenter(path, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert seg.providers == ["CPUExecutionProvider"]
    assert "['CUDAExecutionProvider'] did not start; running on CPUExecutionProvider" in caplog.text


@pytest.mark.parametrize(("providers", "fp16", "half"), [
    (["CUDAExecutionProvider", "CPUExecutionProvider"], None, True),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider"], None, True),
    (["CPUExecutionProvider"], None, False),
    (["CPUExecutionProvider", "CUDAExecutionProvider"], None, False),
    (["CUDAExecutionProvider"], False, False),
    (["CPUExecutionProvider"], True, True),
])
def test_half_precision_auto_follows_the_leading_onnxruntime_provider(
        tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, providers: list[str],
        fp16: bool | None, half: bool) -> None:
    """``fp16: auto`` (None) with a checkpoint and onnxruntime's CUDA provider exported a
    float32 graph, where the torch backend and the launch files' "auto (float16 on CUDA)"
    run float16. Shown on a CPU build: the GPU providers listed as installed, and the
    export's precision caught before a session would start."""
    import onnxruntime

    import drivingseg.model.export as export

    listed = [*onnxruntime.get_available_providers(), "CUDAExecutionProvider",
              "TensorrtExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    exported: list[bool] = []

    def fake_onnx_bytes(ckpt: object, *, fp16: bool, **kwargs: object) -> bytes:
        exported.append(fp16)
        raise ModelError("exported")

    monkeypatch.setattr(export, "onnx_bytes", fake_onnx_bytes)
    with pytest.raises(ModelError, match="exported"):
        make_segmenter(tiny_weights, backend="onnxruntime", providers=providers, fp16=fp16)
    assert exported == [half]


@pytest.mark.parametrize(("device", "expected"), [
    ("cuda:1", [("CUDAExecutionProvider", {"device_id": 1}),
                ("TensorrtExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]),
    ("cuda", ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]),
    ("cpu", ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]),
])
def test_onnxruntime_runs_on_the_gpu_named_by_index(
        tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, device: str,
        expected: list[object]) -> None:
    """``backend: onnxruntime device: cuda:1`` ran on GPU 0: the CUDA and TensorRT providers
    got no ``device_id``. Shown on a CPU build: the GPU providers listed as installed, and
    what reaches onnxruntime.InferenceSession captured (a file and an in-memory export)."""
    import onnxruntime

    listed = [*onnxruntime.get_available_providers(), "CUDAExecutionProvider",
              "TensorrtExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    passed: list[object] = []

    def fake_session(model: object, sess_options: object = None,
                     providers: list[object] | None = None) -> object:
        passed.append(providers)
        raise RuntimeError("no GPU here")

    onnx_path = export_onnx(tiny_weights, tmp_path / "tiny.onnx")
    monkeypatch.setattr(onnxruntime, "InferenceSession", fake_session)
    providers = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]
    for weights in (onnx_path, tiny_weights):
        with pytest.raises(ModelError, match="onnxruntime cannot load the model: no GPU here"):
            make_segmenter(weights, backend="onnxruntime", device=device, providers=providers)
    assert passed == [expected, expected]
