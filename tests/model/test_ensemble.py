"""Ensembles: the mean of the members' probabilities, manifests on disk, the shipped one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import (
    Checkpoint,
    checkpoint_paths,
    default_weights,
    ensemble_weights,
    load_checkpoint,
    save_checkpoint,
)
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.ensemble import Ensemble, save_ensemble
from drivingseg.model.evaluate import evaluate
from drivingseg.model.infer import Segmenter
from drivingseg.model.unet import UNet
from drivingseg.sensors.decode import read_image_rgb

SHIPPED = default_weights().parent


def _frame_at_input_size(camvid_pair: tuple[Path, Path], spec: InputSpec) -> np.ndarray:
    """A real CamVid frame already at the model's input size, so no resizing separates the
    ensemble's output from its members'."""
    image = read_image_rgb(camvid_pair[0])
    return np.ascontiguousarray(cv2.resize(image, (spec.width, spec.height),
                                           interpolation=cv2.INTER_AREA))


def _copy_member(name: str, folder: Path) -> Path:
    for src in checkpoint_paths(SHIPPED / name):
        shutil.copy(src, folder / src.name)
    return folder / f"{name}.safetensors"


def test_ensemble_probabilities_are_the_members_mean(camvid_pair: tuple[Path, Path]) -> None:
    def ensemble_of(*names: str) -> Checkpoint:
        members = [load_checkpoint(SHIPPED / n).model for n in names]
        first = load_checkpoint(SHIPPED / names[0])
        unets = [m for m in members if isinstance(m, UNet)]
        return Checkpoint(Ensemble(unets), first.config, first.spec, first.classes)

    spec = load_checkpoint("default").spec
    frame = _frame_at_input_size(camvid_pair, spec)
    pa = Segmenter(SHIPPED / "unet_rgb")(frame).probs
    pb = Segmenter(SHIPPED / "unet_rgb_gpu")(frame).probs
    assert pa is not None and pb is not None
    assert (pa.argmax(axis=0) != pb.argmax(axis=0)).sum() > 100  # the members really differ
    both = Segmenter(ensemble_of("unet_rgb", "unet_rgb_gpu"))(frame)
    assert both.probs is not None
    np.testing.assert_allclose(both.probs, (pa + pb) / 2, atol=2e-5)
    np.testing.assert_array_equal(both.class_ids, ((pa + pb) / 2).argmax(axis=0))
    one = Segmenter(ensemble_of("unet_rgb"))(frame)
    assert one.probs is not None
    np.testing.assert_allclose(one.probs, pa, atol=2e-5)


def test_shipped_ensemble_on_real_frames(small_camvid: Path) -> None:
    ckpt = load_checkpoint("ensemble")
    assert isinstance(ckpt.model, Ensemble) and len(ckpt.model.members) == 3
    assert ckpt.path == ensemble_weights() and ckpt.classes == ("background", "road", "car")
    assert "77.29" in ckpt.notes["held_out_check"]
    single = evaluate(small_camvid / "val", weights="default")
    three = evaluate(small_camvid / "val", weights="ensemble")
    assert three["frames"] == single["frames"] == 3
    for name in ("road", "car"):  # frames every shipped member trained on: all score high
        assert three["per_class"][name]["iou"] > 0.85, three["per_class"]


def test_manifest_round_trip_keeps_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    members = [_copy_member(n, folder) for n in ("unet_rgb", "unet_rgb_gpu")]
    manifest = save_ensemble(folder / "pair", members, {"why": "test"})
    assert manifest == folder / "pair.json"
    meta = json.loads(manifest.read_text())
    assert meta["members"] == ["unet_rgb.safetensors", "unet_rgb_gpu.safetensors"]
    moved = shutil.copytree(folder, tmp_path / "moved")
    ckpt = load_checkpoint(moved / "pair")
    assert isinstance(ckpt.model, Ensemble) and ckpt.notes == {"why": "test"}
    assert ckpt.path == moved / "pair.json"


def test_a_manifest_never_overwrites_a_checkpoint_config(tmp_path: Path) -> None:
    """``drivingseg ensemble ck/b ck/a ck/a`` used to replace b.json (b's weights lost) and
    ``ensemble ck/a ck/a ck/b`` a's own config with a manifest naming itself."""
    folder = tmp_path / "ck"
    folder.mkdir()
    a, b = (_copy_member(n, folder) for n in ("unet_rgb", "unet_rgb_gpu"))
    configs = {p: p.with_suffix(".json").read_bytes() for p in (a, b)}
    with pytest.raises(ModelError, match=r"unet_rgb_gpu\.json: exists and is not an ensemble "
                       r"manifest"):
        save_ensemble(folder / "unet_rgb_gpu", [a, a])
    with pytest.raises(ModelError, match=r"would overwrite the config of its member"):
        save_ensemble(folder / "unet_rgb", [a, b])
    assert {p: p.with_suffix(".json").read_bytes() for p in (a, b)} == configs
    manifest = save_ensemble(folder / "pair", [a, b])
    assert save_ensemble(manifest, [b, a]) == manifest  # a manifest may be rewritten
    assert json.loads(manifest.read_text())["members"][0] == "unet_rgb_gpu.safetensors"
    with pytest.raises(ModelError, match=r"cannot create the manifest's folder"):
        save_ensemble(Path("/proc/no/such/pair.json"), [a, b])


def test_bad_manifests_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    member = _copy_member("unet_rgb", folder)
    manifest = folder / "ens.json"
    manifest.write_text(json.dumps({"format": "drivingseg-ensemble/1",
                                    "members": ["unet_rgb.safetensors", "gone.safetensors"]}))
    with pytest.raises(ModelError, match=r"ens\.json: ensemble member 1 \('gone\.safetensors'\)"
                                         r": .*gone\.safetensors: no checkpoint here"):
        load_checkpoint(manifest)
    manifest.write_text(json.dumps({"format": "drivingseg-ensemble/1", "members": []}))
    with pytest.raises(ModelError, match=r"ens\.json: ensemble 'members' must be a non-empty"):
        load_checkpoint(manifest)
    ckpt = load_checkpoint(member)
    other = save_checkpoint(folder / "small", ckpt.model, ckpt.config,
                            InputSpec(width=256, height=192))
    with pytest.raises(ModelError, match=r"ensemble member 1 takes input .*width=256.* members "
                                         r"must share input size"):
        save_ensemble(folder / "mixed", [member, other])
    assert not (folder / "mixed.json").exists()  # refused before writing
    nested = save_ensemble(folder / "one", [member])
    with pytest.raises(ModelError, match=r"member 0 \('one\.json'\) is itself an ensemble"):
        save_ensemble(folder / "nested", [nested])
    with pytest.raises(ModelError, match=r"checkpoint takes 3 input channels but 7 are given"):
        load_checkpoint(nested, in_channels=7)
    lidar = UNet(ModelConfig(depth=2, base_channels=4, in_channels=7))
    assert isinstance(ckpt.model, UNet)
    with pytest.raises(ModelError, match=r"members differ in \(input channels, classes\): "
                                         r"\[\(3, 3\), \(7, 3\)\]"):
        Ensemble([ckpt.model, lidar])
    with pytest.raises(ModelError, match=r"at least one member"):
        Ensemble([])


def test_manifests_listing_themselves_or_each_other_are_refused(tmp_path: Path) -> None:
    """A manifest naming itself (or two naming each other) used to recurse until Python's
    RecursionError; a nested manifest is refused before it is loaded."""
    fmt = "drivingseg-ensemble/1"
    (tmp_path / "self.json").write_text(json.dumps({"format": fmt, "members": ["self.json"]}))
    with pytest.raises(ModelError, match=r"self\.json: ensemble member 0 \('self\.json'\) is "
                                         r"itself an ensemble; list its members instead"):
        load_checkpoint(tmp_path / "self.json")
    (tmp_path / "a.json").write_text(json.dumps({"format": fmt, "members": ["b"]}))
    (tmp_path / "b.json").write_text(json.dumps({"format": fmt, "members": ["a.json"]}))
    with pytest.raises(ModelError, match=r"a\.json: ensemble member 0 \('b'\) is itself an "
                                         r"ensemble"):
        load_checkpoint(tmp_path / "a")


def test_ensemble_exports_to_onnx_with_the_same_classes(camvid_pair: tuple[Path, Path]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from drivingseg.model.backends import OnnxSegmenter
    from drivingseg.model.export import onnx_bytes

    ckpt = load_checkpoint("ensemble")
    frame = read_image_rgb(camvid_pair[0])
    ours = Segmenter(ckpt)(frame, probabilities=False).class_ids
    onnx_seg = OnnxSegmenter(onnx_bytes(ckpt), ("CPUExecutionProvider",))
    theirs = onnx_seg(frame, probabilities=False).class_ids
    assert (ours == theirs).mean() > 0.999
    props = onnx_seg.session.get_modelmeta().custom_metadata_map
    assert props["networks"] == "3"


def test_an_ensemble_teaches_but_does_not_start_a_training(tmp_path: Path,
                                                           small_camvid: Path) -> None:
    from drivingseg.model.train import train
    from drivingseg.model.train_config import load_train_config

    cfg = {
        "out_dir": "run", "seed": 1, "model": {"depth": 2, "base_channels": 4},
        "input": {"width": 48, "height": 32},
        "data": {"train": [{"path": str(small_camvid / "val")}]},
        "train": {"epochs": 1, "batch_size": 2, "num_threads": 2, "warmup_steps": 1,
                  "distill_from": [str(ensemble_weights())]},
    }
    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(cfg))
    taught = train(load_train_config(path), show_progress=False)["history"][0]["loss"]
    alone_cfg = {**cfg, "out_dir": "alone", "train": {
        k: v for k, v in cfg["train"].items() if k != "distill_from"}}  # type: ignore[attr-defined]
    path.write_text(json.dumps(alone_cfg))
    alone = train(load_train_config(path), show_progress=False)["history"][0]["loss"]
    assert np.isfinite(taught) and taught > alone  # the same step with the KL to the ensemble
    cfg["train"] = {"epochs": 1, "batch_size": 2, "init_from": str(ensemble_weights())}
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"unet_rgb_ensemble\.json: init_from: this is an "
                                         r"ensemble manifest"):
        train(load_train_config(path), show_progress=False)


def test_cli_writes_a_manifest_or_one_error_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from drivingseg.cli.main import main

    folder = tmp_path / "set"
    folder.mkdir()
    members = [str(_copy_member(n, folder)) for n in ("unet_rgb", "unet_rgb_gpu")]
    assert main(["ensemble", str(folder / "pair.json"), *members,
                 "--note", "held_out_check=none"]) == 0
    assert "2 networks, input 384x288" in capsys.readouterr().out
    ckpt = load_checkpoint(folder / "pair.json")
    assert isinstance(ckpt.model, Ensemble) and ckpt.notes == {"held_out_check": "none"}
    assert main(["ensemble", str(folder / "bad.json"), members[0], str(folder / "nope")]) == 2
    err = capsys.readouterr().err
    assert "bad.json: ensemble member 1 ('nope.safetensors')" in err and "no checkpoint here" in err
    assert not (folder / "bad.json").exists()
    assert main(["ensemble", str(folder / "x.json"), members[0], "--note", "novalue"]) == 2
    assert "--note expects KEY=TEXT, got 'novalue'" in capsys.readouterr().err
    assert main(["ensemble", str(folder / "x.txt"), members[0]]) == 2  # wrote x.txt.json
    assert "x.txt: a manifest is JSON" in capsys.readouterr().err
    assert not list(folder.glob("x.txt*"))


def test_a_refused_manifest_leaves_none_of_the_folders_it_made(tmp_path: Path) -> None:
    """The manifest's folder is made before the members are loaded (they are found relative
    to it); a refused manifest removed only the deepest new folder and left the rest."""
    folder = tmp_path / "set"
    folder.mkdir()
    member = _copy_member("unet_rgb", folder)
    with pytest.raises(ModelError, match=r"ensemble member 1 \('nope\.safetensors'\)"):
        save_ensemble(tmp_path / "new" / "deeper" / "pair.json", [member, folder / "nope"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize("below", ["", "deeper/"])
def test_a_file_in_the_way_of_the_manifests_folder_is_named(tmp_path: Path, below: str) -> None:
    """It said 'cannot create the manifest's folder: File exists', not which path is a file."""
    taken = tmp_path / "runs"
    taken.write_text("a file")
    message = f"cannot create the manifest's folder: {str(taken)!r} is a file, not a folder"
    with pytest.raises(ModelError, match=re.escape(message)):
        save_ensemble(taken / f"{below}pair.json", ["default"])
    assert taken.read_text() == "a file"
