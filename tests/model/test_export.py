"""ONNX export: parity with torch on real CamVid frames, metadata, sizes, CLI and errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.cli.main import main
from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.export import (
    METADATA_KEYS,
    check_export,
    export_onnx,
    onnx_bytes,
    read_metadata,
)
from drivingseg.model.unet import UNet
from drivingseg.sensors.decode import read_image_rgb

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _session(path: Path | bytes) -> object:
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _torch_logits(model: UNet, spec: InputSpec, batch: np.ndarray) -> np.ndarray:
    """The reference: normalisation in torch, the checkpoint's model as loaded (not fused)."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return model.eval()(x).numpy()


def test_parity_with_torch_on_real_camvid_frames(tmp_path: Path, camvid_root: Path) -> None:
    ckpt = load_checkpoint("default")
    path = export_onnx(ckpt, tmp_path / "unet.onnx")
    session = _session(path)
    names = sorted((camvid_root / "val").glob("*.png"))[::25][:4]
    assert len(names) == 4
    spec = ckpt.spec
    frames = [cv2.resize(read_image_rgb(p),
                         (spec.width, spec.height), interpolation=cv2.INTER_AREA)
              for p in names]
    worst, agree, pixels = 0.0, 0, 0
    for rgb in frames:
        batch = rgb[None]
        got = session.run(["logits"], {"image": batch})[0]  # type: ignore[attr-defined]
        ref = _torch_logits(ckpt.model, spec, batch)
        assert got.shape == ref.shape == (1, 3, spec.height, spec.width)
        worst = max(worst, float(np.abs(got - ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        pixels += ref[:, 0].size
    assert worst < 1e-4, f"max abs logit difference {worst:.2e}"
    assert agree / pixels >= 0.9999, f"argmax agrees on {agree / pixels:.6%}"


def test_metadata_describes_the_model(tmp_path: Path, tiny_weights: Path) -> None:
    path = export_onnx(tiny_weights, tmp_path / "out" / "tiny.onnx", height=40, width=70)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    props = {p.key: p.value for p in proto.metadata_props}
    assert set(METADATA_KEYS) <= set(props)
    assert json.loads(props["classes"]) == ["background", "road", "car"]
    assert json.loads(props["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(props["training_input"]) == {"width": 64, "height": 48}
    # A fixed graph takes one frame of its size (its metadata said N x H x W).
    assert props["in_channels"] == "3" and props["input_layout"].startswith(
        "image: 1 x 40 x 70 x 3 uint8")
    meta = read_metadata(props, str(path))
    assert (meta.spec.width, meta.spec.height, meta.dynamic) == (70, 40, False)
    assert meta.config == ModelConfig(depth=2, base_channels=4)
    inp = proto.graph.input[0]
    assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == [1, 40, 70, 3]
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.onnx"]  # no temp files


@pytest.mark.parametrize(("key", "value", "match"), [
    ("training_input", '"x"', r"malformed: TypeError"),
    ("training_input", '{"width": 64}', r"malformed: KeyError\('height'\)"),
    ("classes", "3", r"malformed: TypeError\(\"'int' object is not iterable"),
    ("mean", '["a", 0, 0]', r"malformed: ValueError"),
    ("training_input", '{"width": 8, "height": 48}', r"input width must be an integer in \[16"),
])
def test_malformed_metadata_is_refused_naming_the_file(tiny_weights: Path, key: str, value: str,
                                                       match: str) -> None:
    """Metadata of the right format with values of the wrong type used to end in a
    TypeError or KeyError from deep inside read_metadata."""
    data = onnx_bytes(load_checkpoint(tiny_weights), dynamic=True)
    props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    props[key] = value
    with pytest.raises(ModelError, match=r"^bad\.onnx: .*" + match):
        read_metadata(props, "bad.onnx")


def test_dynamic_export_takes_any_size(tmp_path: Path, tiny_weights: Path) -> None:
    ckpt = load_checkpoint(tiny_weights)
    session = _session(onnx_bytes(ckpt, dynamic=True))
    rng = np.random.default_rng(1)
    for shape in ((1, 37, 50, 3), (2, 48, 64, 3)):  # 37 x 50: padded to 40 x 52 inside
        batch = rng.integers(0, 256, shape, dtype=np.uint8)
        got = session.run(["logits"], {"image": batch})[0]  # type: ignore[attr-defined]
        np.testing.assert_allclose(got, _torch_logits(ckpt.model, ckpt.spec, batch), atol=1e-5)
    meta = read_metadata(session.get_modelmeta().custom_metadata_map)  # type: ignore[attr-defined]
    assert meta.dynamic and (meta.spec.width, meta.spec.height) == (64, 48)


def test_dynamic_export_of_the_aspp_context(tmp_path: Path) -> None:
    """The image-pooling branch is a mean over the frame, so any size exports."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4, context="aspp")
    model = UNet(cfg).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.context.fuse.weight, std=0.1)  # not the identity
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "ctx", model, cfg, InputSpec(64, 48)))
    assert ckpt.config.context == "aspp"
    session = _session(onnx_bytes(ckpt, dynamic=True))
    rng = np.random.default_rng(2)
    for shape in ((1, 37, 50, 3), (1, 48, 64, 3)):
        batch = rng.integers(0, 256, shape, dtype=np.uint8)
        got = session.run(["logits"], {"image": batch})[0]  # type: ignore[attr-defined]
        np.testing.assert_allclose(got, _torch_logits(ckpt.model, ckpt.spec, batch), atol=1e-5)


def test_cli_export_fp16_and_check(tmp_path: Path, tiny_weights: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "half.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--onnx", str(out), "--fp16",
                 "--check"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["fp16"] == "true"
    assert main(["export", "--weights", str(tiny_weights), "--onnx", str(out), "--dynamic",
                 "--width", "64"]) == 2
    assert "either --height/--width or --dynamic" in capsys.readouterr().err


def test_check_input_without_check_is_refused(tmp_path: Path, tiny_weights: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``--check-input DRIVE`` without ``--check`` wrote the model unchecked with status 0,
    however unreadable DRIVE was; it is refused before anything is exported."""
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--onnx", str(out),
                 "--check-input", str(tmp_path / "nonexistent")]) == 2
    err = capsys.readouterr().err
    assert "--check-input " in err and "nonexistent' names the frames of --check" in err
    assert not out.exists()


def test_mismatched_config_says_what_the_weights_hold(tmp_path: Path, tiny_weights: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, meta_path = checkpoint_paths(tiny_weights)
    meta = json.loads(meta_path.read_text())
    meta["model"]["in_channels"] = 7
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match=r"weights do not match the config .*'in_channels': 7.*"
                       r"'stem\.0\.weight': file \(4, 3, 3, 3\), config \(4, 7, 3, 3\)"):
        export_onnx(tiny_weights, out)
    assert main(["export", "--weights", str(tiny_weights), "--onnx", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drivingseg export: error: ")
    assert not out.exists()
    with pytest.raises(ModelError, match=r"export height must be in \[16, 4096\] pixels, got 8"):
        onnx_bytes(load_checkpoint("default"), height=8)


def test_fixed_sizes_the_reader_refuses_are_not_exported(tiny_weights: Path) -> None:
    """A file exported at a width its own reader cannot take (InputSpec: 16 to 4096) used to
    be written and then refused at load time."""
    ckpt = load_checkpoint(tiny_weights)
    data = onnx_bytes(ckpt, height=16, width=4096)
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert (read_metadata(meta).spec.width, read_metadata(meta).spec.height) == (4096, 16)
    with pytest.raises(ModelError, match=r"export width must be in \[16, 4096\] pixels, got 4200"):
        onnx_bytes(ckpt, height=16, width=4200)


def test_cli_check_runs_an_rgb_and_lidar_model(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--check ran the exported file on an image alone, which a 7-channel model refuses
    ("this model needs the 4 lidar channels"): exit status 2 for a good export."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4, in_channels=7)
    weights = save_checkpoint(tmp_path / "lidar", UNet(cfg).eval(), cfg, InputSpec(64, 48))
    for size in ([], ["--dynamic"]):
        out = tmp_path / f"lidar{len(size)}.onnx"
        assert main(["export", "--weights", str(weights), "--onnx", str(out), "--check",
                     *size]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert meta["in_channels"] == "7" and "lidar" in meta["input_layout"]


def _overflowing_weights(tmp_path: Path) -> Path:
    """A tiny U-Net whose logits (~1e6) are finite in float32 and overflow float16."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4)
    model = UNet(cfg).eval()
    with torch.no_grad():
        model.head.weight.mul_(1e6)
    return save_checkpoint(tmp_path / "loud", model, cfg, InputSpec(64, 48))


def test_cli_check_compares_with_torch_and_writes_nothing_on_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check ran the graph once on a blank frame and never looked at its output: a float16
    export whose logits overflow to inf passed and was written."""
    weights = _overflowing_weights(tmp_path)
    out = tmp_path / "half.onnx"
    assert main(["export", "--weights", str(weights), "--onnx", str(out), "--fp16",
                 "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: exported graph gives non-finite logits at 64x48 (fp16 True)" in err
    assert not out.exists() and list(tmp_path.glob("half*")) == []
    full = tmp_path / "full.onnx"
    assert main(["export", "--weights", str(weights), "--onnx", str(full), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("check: onnxruntime vs torch float32 on 2 frame(s) at 64x48: ")
    assert "class IoU background " in lines[0] and ", road " in lines[0] and ", car " in lines[0]
    assert lines[1] == f"wrote {full}" and full.exists()


def test_check_export_refuses_logits_off_by_more_than_the_tolerance(
        tmp_path: Path, tiny_weights: Path) -> None:
    """Every class plane is compared: one class's logits shifted by 0.01 fail a float32
    export's check."""
    ckpt = load_checkpoint(tiny_weights)
    data = onnx_bytes(ckpt, dynamic=True)
    frame = (np.random.default_rng(3).integers(0, 256, (60, 150, 3), dtype=np.uint8), None)
    result = check_export(data, ckpt, [frame], "ok.onnx")
    assert result.sizes == ((48, 64), (36, 88), (51, 67))  # training, keep-aspect, padded
    assert result.max_diff < 1e-4 and result.agreement > 0.999
    shifted = load_checkpoint(tiny_weights)
    with torch.no_grad():
        shifted.model.head.bias[2] -= 0.01  # type: ignore[index]
    with pytest.raises(ModelError, match=r"^bad\.onnx: exported graph differs from the torch "
                       r"model: .*max \|logit difference\| 1\.00e-02 \(tolerance 1\.\d\de-03\)"):
        check_export(data, shifted, [frame], "bad.onnx")


def test_export_without_the_onnx_package_says_how_to_install_it(
        tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """onnx is an optional extra: without it export was a ModuleNotFoundError traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ONNX export needs the onnx package: pip install 'drivingseg[onnx]'" in err
    assert not out.exists()
