"""``drivingseg eval`` on real CamVid frames and a KITTI road folder built from one."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.errors import DrivingsegError
from drivingseg.model.data import LabelledFile
from drivingseg.model.evaluate import evaluate, format_report


def _main(argv: list[str]) -> int:
    """The real ``drivingseg`` entry point (exit 2 and one line on a DrivingsegError)."""
    from drivingseg.cli import main

    return main(argv)


def test_eval_report_is_consistent(small_camvid: Path, tiny_weights: Path) -> None:
    report = evaluate(small_camvid, tiny_weights)
    assert report["frames"] == 3 and report["layouts"] == ["camvid"]
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (3, 3) and len(report["per_frame"]) == 3
    road = report["per_class"]["road"]
    assert road["tp"] == cm[1, 1] and road["fn"] == cm[1].sum() - cm[1, 1]
    assert "kitti_road" not in report


def test_eval_cli_writes_json(small_camvid: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r" / "eval.json"
    rc = _main(["eval", "--data", str(small_camvid / "val"), "--weights", "default",
                "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean IoU (road, car)" in text and "road" in text
    report = json.loads(out.read_text())
    assert report["per_class"]["road"]["iou"] > 0.7 and report["precision"] == "float32"
    assert [r["frame"] for r in report["per_frame"]] == sorted(
        p.stem for p in (small_camvid / "val").iterdir())
    half = tmp_path / "half.json"
    assert _main(["eval", "--data", str(small_camvid / "val"), "--fp16", "on",
                  "--json", str(half)]) == 0
    assert "bfloat16" in capsys.readouterr().out
    bf16 = json.loads(half.read_text())
    assert bf16["precision"] == "bfloat16"
    assert abs(bf16["mean_iou_road_car"] - report["mean_iou_road_car"]) < 0.01


def test_eval_on_kitti_road_gives_maxf_and_ap(kitti_road_from_camvid: Path) -> None:
    report = evaluate(kitti_road_from_camvid, "default")
    assert report["classes"] == ["not_road", "road"]
    k = report["kitti_road"]
    assert 0.7 < k["max_f"] <= 1.0 and 0.5 < k["ap"] <= 1.0
    assert k["max_f"] >= report["per_class"]["road"]["f1"] - 1e-9


def test_eval_json_path_that_cannot_be_written_fails_before_scoring(
    small_camvid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A file where the JSON's folder should be: one error line before any frame is
    scored (it used to raise FileExistsError after the whole evaluation)."""
    (tmp_path / "taken").write_text("a file")
    rc = _main(["eval", "--data", str(small_camvid / "val"), "--weights", "default",
                "--json", str(tmp_path / "taken" / "eval.json")])
    captured = capsys.readouterr()
    assert rc == 2
    assert "cannot write the JSON report: " in captured.err
    assert "taken' is not a folder" in captured.err
    assert "Traceback" not in captured.err and "mean IoU" not in captured.out


def test_eval_that_fails_before_writing_leaves_no_json_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``--json NEW/out.json`` with a run that stops before the report (a bad folder here,
    Ctrl-C alike): no empty ``NEW`` folder is left behind (it was created up front)."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / "new" / "deeper" / "eval.json"
    rc = _main(["eval", "--data", str(tmp_path / "empty"), "--weights", "default",
                "--json", str(out)])
    assert rc == 2 and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_eval_bad_folder_is_one_error(tmp_path: Path) -> None:
    assert _main(["eval", "--data", str(tmp_path), "--weights", "default"]) == 2


def test_eval_drive_without_its_image_folder_is_one_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gt/image_02`` without ``image_02/data`` (a partial copy): exit 2 and one line
    naming the missing folder, not a FileNotFoundError traceback."""
    drive = tmp_path / "2024_05_01_drive_0001_sync"
    (drive / "gt" / "image_02").mkdir(parents=True)
    assert _main(["eval", "--data", str(drive), "--weights", "default"]) == 2
    err = capsys.readouterr().err
    assert "image_02/data: cannot list the labelled frames" in err
    assert "Traceback" not in err


def test_eval_sequence_filter(small_camvid: Path, tiny_weights: Path) -> None:
    report = evaluate(small_camvid, tiny_weights, sequences=("0006R0",), limit=2)
    assert report["frames"] == 2 and report["sequences"] == ["0006R0"]
    with pytest.raises(DrivingsegError, match=r"no frames of sequences \['0001TP'\] in this "
                                              r"folder; its sequences are \['0006R0'\]"):
        evaluate(small_camvid, tiny_weights, sequences=("0001TP",))


@pytest.mark.parametrize("limit", [0, -1])
def test_eval_limit_below_one_is_refused(small_camvid: Path, tiny_weights: Path,
                                         limit: int) -> None:
    """0 used to score every frame and -1 all but the last."""
    with pytest.raises(DrivingsegError, match=rf"--limit must be at least 1 frame, got {limit}"):
        evaluate(small_camvid, tiny_weights, limit=limit)


def test_eval_folder_without_frames_is_refused(tmp_path: Path, tiny_weights: Path) -> None:
    """An empty ``val/`` beside ``valannot/`` used to give a 0-frame report and exit 0."""
    (tmp_path / "val").mkdir()
    (tmp_path / "valannot").mkdir()
    with pytest.raises(DrivingsegError, match=r"val: no labelled frames in this folder"):
        evaluate(tmp_path / "val", tiny_weights)


def test_eval_refuses_lidar_weights_and_bad_devices_up_front(
    small_camvid: Path, tmp_path: Path
) -> None:
    """eval scores camera images: an RGB + lidar checkpoint is refused by name before any
    frame is read, and a mistyped device is one line, not a torch traceback."""
    from drivingseg.model.checkpoint import save_checkpoint
    from drivingseg.model.config import InputSpec, ModelConfig
    from drivingseg.model.unet import UNet

    cfg = ModelConfig(depth=2, base_channels=4, in_channels=7)
    lidar = save_checkpoint(tmp_path / "lidar", UNet(cfg).eval(), cfg, InputSpec(64, 48))
    with pytest.raises(DrivingsegError, match=r"the model 'lidar\.safetensors' takes lidar "
                                              r"channels \(in_channels 7\), but frames of layout "
                                              r"'camvid' have no lidar scans"):
        evaluate(small_camvid, lidar)
    with pytest.raises(DrivingsegError, match=r"device 'gpu' is not one of auto, cpu, cuda"):
        evaluate(small_camvid, "default", device="gpu")


def test_a_road_only_model_is_scored_on_the_labels_classes(
    small_camvid: Path, tmp_path: Path
) -> None:
    """A background/road checkpoint on CamVid, whose labels hold cars: the cars count as
    missed (recall 0), where scoring on the model's two classes failed on every frame."""
    from drivingseg.model.checkpoint import save_checkpoint
    from drivingseg.model.config import InputSpec, ModelConfig
    from drivingseg.model.unet import UNet

    cfg = ModelConfig(depth=2, base_channels=4, num_classes=2)
    road = save_checkpoint(tmp_path / "road", UNet(cfg).eval(), cfg, InputSpec(64, 48))
    report = evaluate(small_camvid, road, limit=2)
    assert report["classes"] == ["background", "road", "car"]
    car = report["per_class"]["car"]
    assert car["tp"] == 0 and car["fn"] > 0 and car["recall"] == 0.0
    assert np.asarray(report["confusion_matrix"])[:, 2].sum() == 0  # never predicted


def test_names_without_a_sequence_prefix_list_no_sequences(
    tmp_path: Path, camvid_pair: tuple[Path, Path], tiny_weights: Path
) -> None:
    """A synthetic drive's (or any) ``0000000000.png`` was reported as a sequence of its
    own, file suffix and all, one per frame; ``--sequences`` on such a folder now says why
    nothing matched."""
    root = tmp_path / "plain"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    ids = cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED)
    for i in range(2):
        shutil.copy(camvid_pair[0], root / "images" / f"{i:010d}.png")
        cv2.imwrite(str(root / "labels" / f"{i:010d}.png"), np.where(ids == 3, 1, 0).astype(
            np.uint8))
    assert evaluate(root, tiny_weights)["sequences"] == []
    with pytest.raises(DrivingsegError, match=r"no frames of sequences \['0006R0'\] in this "
                                              r"folder; the file names of this plain folder "
                                              r"have no sequence prefix"):
        evaluate(root, tiny_weights, sequences=("0006R0",))


def test_kitti_road_mean_iou_is_named_as_road_alone(kitti_road_from_camvid: Path,
                                                    tiny_weights: Path) -> None:
    """On KITTI road only road is scored, but the table said "mean IoU (road, car)"."""
    report = evaluate(kitti_road_from_camvid, tiny_weights)
    assert report["mean_iou_classes"] == ["road"]
    assert report["mean_iou_road_car"] == report["per_class"]["road"]["iou"]
    text = format_report(report)
    assert "mean IoU (road): " in text and "(road, car)" not in text


@pytest.mark.parametrize("fault", ["unknown_id", "other_size"])
def test_every_label_is_checked_before_scoring(small_camvid: Path, fault: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad label (an unknown id, a size other than its image's) used to stop the run only
    when its frame came up, after every frame before it had been scored: with multi-scale
    test-time augmentation or the ensemble, minutes of work lost for one file."""
    module = importlib.import_module("drivingseg.model.evaluate")
    scored: list[Path] = []
    real = module.load_pair

    def spy(f: LabelledFile) -> tuple[np.ndarray, np.ndarray]:
        scored.append(f.image)
        return real(f)

    monkeypatch.setattr(module, "load_pair", spy)
    last = sorted((small_camvid / "valannot").iterdir())[-1]
    ids = cv2.imread(str(last), cv2.IMREAD_UNCHANGED)
    bad = np.pad(ids, ((0, 8), (0, 0))) if fault == "other_size" else np.where(ids == 0, 12, ids)
    cv2.imwrite(str(last), bad.astype(np.uint8))
    message = {"unknown_id": r"label image holds unknown camvid ids \[12\]",
               "other_size": r"label image is 480x368 but its camera image"}[fault]
    with pytest.raises(DrivingsegError, match=rf"{last.name}: {message}"):
        evaluate(small_camvid, "default")
    assert scored == []


def test_a_lidar_model_is_scored_on_a_synthetic_drive_with_its_scans(tmp_path: Path) -> None:
    """A model trained on synthetic drives with lidar channels (in_channels 7) was refused
    by eval everywhere, its own kind of data included: a drive that ``drivingseg synth``
    writes has the scans and calibration beside the images. Each frame is now scored with
    the lidar channels the fusion node would give it."""
    from drivingseg.fusion.channels import lidar_channels
    from drivingseg.model.checkpoint import save_checkpoint
    from drivingseg.model.config import InputSpec, ModelConfig, tta_preset
    from drivingseg.model.infer import Segmenter
    from drivingseg.model.unet import UNet
    from drivingseg.sensors.kitti_raw import KittiRawDrive
    from drivingseg.sensors.synthetic.writer import write_synthetic_drive

    torch = importlib.import_module("torch")
    torch.manual_seed(0)
    cfg = ModelConfig(depth=2, base_channels=4, in_channels=7)
    lidar = save_checkpoint(tmp_path / "lidar", UNet(cfg).eval(), cfg, InputSpec(64, 32))
    drive = write_synthetic_drive(tmp_path / "synth", frames=2, seed=4)
    report = evaluate(tmp_path / "synth", lidar)
    assert report["frames"] == 2
    seg = Segmenter(lidar, fp16=False)
    cm = np.zeros((3, 3), np.int64)
    cm_blind = np.zeros((3, 3), np.int64)  # the same frames with empty lidar channels
    with KittiRawDrive(drive) as rec:
        for i in range(2):
            frame = rec.camera(i)
            planes = lidar_channels(rec.lidar(i).points, rec.require_rig()).stack()
            labels = cv2.imread(str(drive / "gt" / "image_02" / f"{i:010d}.png"),
                                cv2.IMREAD_UNCHANGED)
            for lidar_planes, matrix in ((planes, cm), (np.zeros_like(planes), cm_blind)):
                pred = seg(frame.image, lidar_planes, probabilities=False).class_ids
                np.add.at(matrix, (labels.ravel(), pred.ravel()), 1)
    # An untrained network's logits tie closely: another thread count (set by an earlier
    # test) flips a few pixels, so agreement is to 0.01 % of the pixels, where frames scored
    # without their lidar channels differ by far more.
    scored = np.asarray(report["confusion_matrix"])
    tolerance = cm.sum() // 10000
    assert np.abs(scored - cm).sum() <= tolerance
    assert np.abs(scored - cm_blind).sum() > 10 * tolerance
    with pytest.raises(DrivingsegError, match=r"synth: test-time augmentation \(--tta: scales "
                       r"1, each mirrored too \(2 views\)\) is not run for a model that takes "
                       r"lidar channels \('lidar\.safetensors', in_channels 7\); score it "
                       r"without --tta"):
        evaluate(tmp_path / "synth", lidar, tta=tta_preset("flip"))
    labelled = tmp_path / "plain"
    (labelled / "images").mkdir(parents=True)
    (labelled / "labels").mkdir()
    cv2.imwrite(str(labelled / "images" / "a.png"), np.zeros((32, 64, 3), np.uint8))
    cv2.imwrite(str(labelled / "labels" / "a.png"), np.zeros((32, 64), np.uint8))
    with pytest.raises(DrivingsegError, match=r"plain: the model 'lidar\.safetensors' takes "
                       r"lidar channels \(in_channels 7\), but frames of layout '\w+' have "
                       r"no lidar scans"):
        evaluate(labelled, lidar)


def test_format_report_writes_no_unit_after_n_a() -> None:
    """A mean IoU or KITTI AP that cannot be computed read 'n/a %'; it is 'n/a' alone."""
    report = {"frames": 1, "layouts": ["kitti_road"], "data": "d", "weights": "w",
              "input_size": [384, 288], "resize": "keep_aspect", "precision": "float32",
              "tta": None, "classes": ["not_road", "road"],
              "per_class": {"road": {"iou": None, "precision": None, "recall": None,
                                     "f1": None}},
              "mean_iou_classes": [], "mean_iou_road_car": None,
              "kitti_road": {"max_f": 0.25, "ap": None}, "confusion_matrix": [[1, 0], [0, 0]]}
    text = format_report(report)
    assert "n/a %" not in text
    assert "mean IoU (road, car): n/a" in text and "MaxF 25.00 %, AP n/a" in text
