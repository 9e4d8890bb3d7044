"""Checkpoint round trip (safetensors + JSON, no pickle) and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import (
    checkpoint_paths,
    load_checkpoint,
    load_training_state,
    resolve_weights,
    save_checkpoint,
    save_training_state,
)
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.unet import UNet

CONFIG = ModelConfig(depth=2, base_channels=4)
SPEC = InputSpec(width=64, height=48)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, UNet]:
    torch.manual_seed(1)
    model = UNet(CONFIG)
    model(torch.randn(2, 3, 16, 16))  # move the batch-norm running stats off their defaults
    model.eval()
    return save_checkpoint(tmp_path / "m", model, CONFIG, SPEC, {"epoch": 3}), model


def test_round_trip_gives_identical_outputs(saved: tuple[Path, UNet]) -> None:
    path, model = saved
    assert path.suffix == ".safetensors"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["classes"] == ["background", "road", "car"]
    assert meta["input"]["width"] == 64
    ckpt = load_checkpoint(path)
    assert ckpt.config == CONFIG and ckpt.spec == SPEC and ckpt.notes == {"epoch": 3}
    x = torch.randn(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), model(x))
    assert load_checkpoint(path.with_suffix("")).config == CONFIG  # stem works too


def test_half_precision_checkpoint_loads_as_float32(tmp_path: Path, saved: tuple[Path, UNet]
                                                    ) -> None:
    _, model = saved
    path = save_checkpoint(tmp_path / "h", model, CONFIG, SPEC, half=True)
    ckpt = load_checkpoint(path)
    assert next(ckpt.model.parameters()).dtype == torch.float32
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ckpt.model(x), model(x), atol=5e-2)


def test_half_precision_keeps_running_statistics_beyond_float16_range(
        tmp_path: Path, saved: tuple[Path, UNet]) -> None:
    """A trained wide model's running variance reached 1e5 (float16 overflows at 65504)."""
    _, model = saved
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_var[0] = 1.0e5
        bn.running_mean[0] = 300.0
    path = save_checkpoint(tmp_path / "h", model.eval(), CONFIG, SPEC, half=True)
    ckpt = load_checkpoint(path)
    state = ckpt.model.state_dict()
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ckpt.model.eval()(x), model(x), atol=5e-2)


def test_wrong_input_channels_or_classes(saved: tuple[Path, UNet]) -> None:
    path, _ = saved
    with pytest.raises(ModelError, match=r"takes 3 input channels but 7 are given"):
        load_checkpoint(path, in_channels=7)
    with pytest.raises(ModelError, match=r"predicts 3 classes, expected 2"):
        load_checkpoint(path, num_classes=2)


def test_truncated_weights(saved: tuple[Path, UNet]) -> None:
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"m\.safetensors: cannot read the weights \(truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("head.weight", float("nan"), r"1 tensors hold NaN or infinite values \(e\.g\. 'head\.weight'"
                                  r"\): weights of a training that diverged\?"),
    ("stem.0.weight", float("inf"), r"1 tensors hold NaN or infinite values"),
    ("head.bias", None, r"1 tensors hold integers where the model has floating-point weights "
                        r"\(e\.g\. 'head\.bias': torch\.int32\)"),
])
def test_weights_that_are_not_finite_floats_are_refused(
    saved: tuple[Path, UNet], key: str, value: float | None, match: str,
) -> None:
    """A diverged training's NaN weights loaded and ran, every pixel background."""
    path, _ = saved
    tensors = load_file(str(path))
    if value is None:
        tensors[key] = tensors[key].to(torch.int32)
    else:
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = value
    save_file(tensors, str(path))
    with pytest.raises(ModelError, match=r"m\.safetensors: " + match):
        load_checkpoint(path)


def test_config_that_does_not_match_the_weights(saved: tuple[Path, UNet]) -> None:
    path, _ = saved
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["model"]["base_channels"] = 8
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"weights do not match the config .*wrong shape"):
        load_checkpoint(path)
    meta["model"]["base_channels"] = 4
    meta["model"]["depth"] = 3
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"do not match the config.*missing"):
        load_checkpoint(path)


def test_bad_or_missing_config(saved: tuple[Path, UNet]) -> None:
    path, _ = saved
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["model"]["norm"] = "layer"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"m\.json: unknown model\.norm 'layer'; valid choices"):
        load_checkpoint(path)
    meta_path.write_text("{not json")
    with pytest.raises(ModelError, match=r"not valid JSON"):
        load_checkpoint(path)
    meta_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match=r"format is 'something-else'"):
        load_checkpoint(path)
    meta_path.unlink()
    with pytest.raises(ModelError, match=r"checkpoint config .* not found"):
        load_checkpoint(path)


@pytest.mark.parametrize(("section", "key", "value", "match"), [
    (None, "classes", ["road", "background", "car"], r"classes \('road', 'background', 'car'\) "
     r"are not drivingseg's ids in order; expected \('background', 'road', 'car'\)"),
    (None, "classes", "abc", r"m\.json: config 'classes' must be a list of class names, "
     r"got 'abc'"),
    (None, "classes", 3, r"m\.json: config 'classes' must be a list of class names, got 3"),
    (None, "classes", None, r"config 'classes' must be a list of class names, got None"),
    ("model", "in_channels", 3.0, r"in_channels must be 3 \(RGB\) .* got 3\.0"),
    ("input", "std", [float("nan")] * 3, r"mean and std must be finite numbers"),
    ("input", "mean", [0.5, float("inf"), 0.5], r"mean and std must be finite numbers"),
])
def test_config_values_that_would_mislead_inference(
    saved: tuple[Path, UNet], section: str | None, key: str, value: object, match: str,
) -> None:
    """Values that loaded before and then scored under wrong names, predicted nothing, or
    crashed deep in torch."""
    path, _ = saved
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    (meta if section is None else meta[section])[key] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=match):
        load_checkpoint(path)


def test_missing_weights_file(tmp_path: Path) -> None:
    """Nothing at the path: the error says so; a bare name (a mistyped ``default``?) also
    lists the shipped names."""
    match = (r"nothing\.safetensors: no checkpoint here \(neither 'nothing\.safetensors' nor "
             r"'nothing\.json' exists\)$")
    with pytest.raises(ModelError, match=match):
        load_checkpoint(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelError, match=r"defualt: no checkpoint here .*; the shipped weights "
                                         r"are named \('default', 'ensemble'\)"):
        load_checkpoint("defualt")


def test_paths_and_default() -> None:
    assert checkpoint_paths("a/b.json") == (Path("a/b.safetensors"), Path("a/b.json"))
    assert resolve_weights("default").name == "unet_rgb.safetensors"
    assert resolve_weights("x.safetensors") == Path("x.safetensors")


def test_training_state_round_trip(tmp_path: Path) -> None:
    model = UNet(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 16, 16)).mean().backward()
    opt.step()
    save_training_state(tmp_path / "last", opt, {"epoch": 4, "step": 9})
    fresh = torch.optim.AdamW(model.parameters(), lr=5.0)
    info = load_training_state(tmp_path / "last", fresh)
    assert info == {"epoch": 4, "step": 9}
    assert fresh.param_groups[0]["lr"] == 1e-3
    a, b = opt.state_dict()["state"][0], fresh.state_dict()["state"][0]
    assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])


def test_training_state_files_of_two_saves_are_refused(tmp_path: Path) -> None:
    """The optimizer moments of one save with the step counters of another (a save
    interrupted between its two files) are not loaded."""
    model = UNet(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in (0, 1):
        model(torch.randn(2, 3, 16, 16)).mean().backward()
        opt.step()
        save_training_state(tmp_path / f"e{epoch}", opt, {"epoch": epoch, "step": epoch + 1})
    older = (tmp_path / "e0.state.safetensors").read_bytes()
    (tmp_path / "e1.state.safetensors").write_bytes(older)
    with pytest.raises(ModelError, match=r"e1\.state\.json: training state e1\.state\.safetensors "
                                         r"\(save '[0-9a-f]+'\) and e1\.state\.json \(save "
                                         r"'[0-9a-f]+'\) come from different saves"):
        load_training_state(tmp_path / "e1", torch.optim.AdamW(model.parameters()))
    assert load_training_state(tmp_path / "e0", opt) == {"epoch": 0, "step": 1}


def test_unreadable_training_state_config_is_refused_naming_it(tmp_path: Path) -> None:
    """A state JSON that is not text, or not an object, used to escape as a
    UnicodeDecodeError or AttributeError."""
    model = UNet(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_training_state(tmp_path / "last", opt, {"epoch": 0})
    meta_path = tmp_path / "last.state.json"
    meta_path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match=r"last\.state\.json: cannot read training state: "
                                         r"'utf-8' codec can't decode"):
        load_training_state(tmp_path / "last", opt)
    meta_path.write_text("[1, 2]")
    with pytest.raises(ModelError, match=r"last\.state\.json: training state must be a JSON "
                                         r"object, got list"):
        load_training_state(tmp_path / "last", opt)


@pytest.mark.parametrize(("scalars", "match"), [
    ({"x": {}}, r"invalid literal for int\(\) with base 10: 'x'"),
    ([1], r"'list' object has no attribute 'items'"),
])
def test_damaged_optimizer_scalars_of_a_training_state_are_refused_naming_it(
    tmp_path: Path, scalars: object, match: str,
) -> None:
    """The optimizer's step counters of a hand-edited state escaped as ValueError or
    AttributeError."""
    model = UNet(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_training_state(tmp_path / "last", opt, {"epoch": 0, "step": 1})
    meta_path = tmp_path / "last.state.json"
    meta = json.loads(meta_path.read_text())
    meta["scalars"] = scalars
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"last\.state\.json: training state does not match "
                                         r"this optimizer/model: " + match):
        load_training_state(tmp_path / "last", opt)


def test_an_onnx_file_given_as_a_checkpoint_says_which_backend_runs_it(tmp_path: Path) -> None:
    """``replay --weights model.onnx`` said only "no checkpoint here"."""
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"an exported graph")
    with pytest.raises(ModelError, match=r"model\.onnx: no checkpoint here .*; an ONNX model "
                       r"runs with the onnxruntime backend \(backend:=onnxruntime"):
        load_checkpoint(onnx)


@pytest.mark.parametrize(("other_spec", "match"), [
    (InputSpec(width=96, height=64), r"the weights were trained for input \{'width': 64, "
                                     r"'height': 48, .*\} but the JSON says \{'width': 96, "),
    (InputSpec(width=64, height=48, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
     r"the weights were trained for input .*'mean': \[0\.485, .* but the JSON says "
     r".*'mean': \[0\.5, "),
    (SPEC, r"save '[0-9a-f]{32}' beside the JSON of save '[0-9a-f]{32}'"),
])
def test_weights_beside_the_json_of_another_save_are_refused(
    saved: tuple[Path, UNet], tmp_path: Path, other_spec: InputSpec, match: str,
) -> None:
    """Two networks of one shape: the weights of one beside the other's JSON loaded and
    ran at the JSON's input size and normalisation (or with its notes), silently."""
    path, _ = saved
    torch.manual_seed(2)
    other = save_checkpoint(tmp_path / "other", UNet(CONFIG).eval(), CONFIG, other_spec)
    path.with_suffix(".json").write_bytes(other.with_suffix(".json").read_bytes())
    with pytest.raises(ModelError, match=r"m\.safetensors: " + match + r".*m\.safetensors and "
                                         r"m\.json are of different saves"):
        load_checkpoint(path)


def test_weights_without_a_header_config_still_load(saved: tuple[Path, UNet]) -> None:
    """Files written before the header held the input spec and token (or by other tools)
    are taken as they are."""
    path, model = saved
    save_file(load_file(str(path)), str(path), metadata={"model": json.dumps(CONFIG.to_dict())})
    ckpt = load_checkpoint(path)
    assert ckpt.spec == SPEC
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt.model.state_dict()[key]), key
    assert load_checkpoint("default").spec.width == 384  # the shipped weights, without them
