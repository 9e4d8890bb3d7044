"""Layouts, label mappings and refusals on real CamVid frames; augmentation consistency."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drivingseg.errors import ModelError, RecordingError
from drivingseg.model.augment import (
    Augmenter,
    CopyPaste,
    Sample,
    SegmentationDataset,
    resize_sample,
    seed_worker,
)
from drivingseg.model.config import FINE_CLASSES, InputSpec
from drivingseg.model.data import (
    LabelledFile,
    camvid_sequence,
    check_pair,
    discover,
    fine_from_coarse,
    load_pair,
    read_fine_labels,
    read_labels,
)


def test_camvid_discovery_and_sequences(camvid_root: Path) -> None:
    files = discover(camvid_root)
    assert len(files) == 468 and {f.layout for f in files} == {"camvid"}
    seqs = {camvid_sequence(f.image) for f in files}
    assert seqs == {"0001TP", "0006R0", "0016E5"}
    assert len(discover(camvid_root / "val")) == 101


def test_camvid_label_mapping_on_a_real_frame(camvid_pair: tuple[Path, Path]) -> None:
    image_path, label_path = camvid_pair
    raw = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    image, labels = load_pair(discover(image_path.parent)[0].__class__(image_path, label_path,
                                                                       "camvid"))
    assert image.shape == (360, 480, 3) and labels.shape == (360, 480)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels == 1, raw == 3)
    np.testing.assert_array_equal(labels == 2, raw == 8)
    np.testing.assert_array_equal(labels == 255, raw == 11)
    assert set(np.unique(labels)) <= {0, 1, 2, 255}
    assert (labels == 1).mean() > 0.1  # a road scene


def _fake_camvid(tmp_path: Path, camvid_pair: tuple[Path, Path], label: np.ndarray) -> Path:
    (tmp_path / "x").mkdir()
    (tmp_path / "xannot").mkdir()
    shutil.copy(camvid_pair[0], tmp_path / "x" / "a_1.png")
    cv2.imwrite(str(tmp_path / "xannot" / "a_1.png"), label)
    return tmp_path / "x"


def test_unknown_label_ids_are_refused_naming_the_file(
    tmp_path: Path, camvid_pair: tuple[Path, Path]
) -> None:
    label = np.full((360, 480), 3, dtype=np.uint8)
    label[0, :5] = [12, 40, 12, 3, 3]
    folder = _fake_camvid(tmp_path, camvid_pair, label)
    with pytest.raises(RecordingError, match=r"xannot/a_1\.png: .*unknown camvid ids \[12, 40\]"):
        load_pair(discover(folder)[0])


def test_label_size_mismatch_is_refused(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> None:
    folder = _fake_camvid(tmp_path, camvid_pair, np.zeros((180, 240), dtype=np.uint8))
    with pytest.raises(RecordingError, match=r"a_1\.png: label image is 240x180 but .* 480x360"):
        load_pair(discover(folder)[0])


def test_missing_label_and_unknown_layout(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> None:
    folder = _fake_camvid(tmp_path, camvid_pair, np.zeros((360, 480), dtype=np.uint8))
    (folder.parent / "xannot" / "a_1.png").unlink()
    with pytest.raises(RecordingError, match=r"a_1\.png: no label image 'a_1\.png'"):
        discover(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match=r"no labelled frames found"):
        discover(tmp_path / "empty")


def test_jpeg_frames_pair_with_png_labels(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> None:
    folder = _fake_camvid(tmp_path, camvid_pair, cv2.imread(str(camvid_pair[1]), 0))
    image = cv2.imread(str(folder / "a_1.png"))
    cv2.imwrite(str(folder / "a_1.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / "a_1.png").unlink()
    (file,) = discover(folder)
    assert file.image.name == "a_1.jpg" and file.label.name == "a_1.png"
    rgb, labels = load_pair(file)
    assert rgb.shape == (360, 480, 3)
    np.testing.assert_array_equal(labels, read_labels(discover(camvid_pair[0].parent)[0].__class__(
        camvid_pair[0], camvid_pair[1], "camvid")))


def test_kitti_road_colours(kitti_road_from_camvid: Path, camvid_pair: tuple[Path, Path]) -> None:
    files = discover(kitti_road_from_camvid)
    assert [f.layout for f in files] == ["kitti_road"]
    labels = read_labels(files[0])
    raw = cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels == 1, raw == 3)
    np.testing.assert_array_equal(labels == 255, raw == 11)
    assert set(np.unique(labels)) == {0, 1, 255}
    grey = cv2.imread(str(files[0].label))
    grey[:10, :20] = (40, 200, 40)  # green (BGR)
    cv2.imwrite(str(files[0].label), grey)
    with pytest.raises(RecordingError, match=r"um_road_000000\.png: KITTI road label holds 200 "
                                             r"pixels of colours other than magenta .* "
                                             r"RGB \[\(40, 200, 40\)\]"):
        read_labels(files[0])


def test_kitti_semantics_cityscapes_ids(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> None:
    root = tmp_path / "training"
    (root / "image_2").mkdir(parents=True)
    (root / "semantic").mkdir()
    shutil.copy(camvid_pair[0], root / "image_2" / "000000_10.png")
    ids = np.zeros((360, 480), dtype=np.uint8)
    ids[:, :100], ids[:, 100:200], ids[:, 200:300], ids[:, 300:] = 7, 26, 0, 21
    cv2.imwrite(str(root / "semantic" / "000000_10.png"), ids)
    f = discover(tmp_path)[0]
    assert f.layout == "kitti_semantics"
    labels = read_labels(f)
    assert labels[0, 0] == 1 and labels[0, 150] == 2 and labels[0, 250] == 255
    assert labels[0, 400] == 0
    ids[0, 0] = 34
    cv2.imwrite(str(root / "semantic" / "000000_10.png"), ids)
    with pytest.raises(RecordingError, match=r"unknown kitti_semantics ids \[34\]"):
        read_labels(f)


def _colour_coded(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[0], lut[1], lut[2] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    return lut[labels]


def test_scale_crop_flip_keep_each_label_with_its_pixel(camvid_pair: tuple[Path, Path]) -> None:
    """Image colours encode the labels; lidar encodes them too. After any augmentation,
    every pixel whose colour is still a pure class colour carries that class's label, and
    the lidar channel equals the label wherever the label is not padding."""
    raw_labels = read_labels(discover(camvid_pair[0].parent)[0].__class__(
        camvid_pair[0], camvid_pair[1], "camvid"))
    labels = np.where(raw_labels == 255, 0, raw_labels).astype(np.uint8)
    lidar = np.repeat(labels[..., None].astype(np.float32), 4, axis=2)
    sample = Sample(_colour_coded(labels), labels, lidar)
    aug = Augmenter(InputSpec(width=128, height=96), scale_range=(0.6, 2.0), jitter=0.0, seed=3)
    flips = 0
    for _ in range(8):
        out = aug(sample)
        assert out.image.shape == (96, 128, 3) and out.labels.shape == (96, 128)
        assert out.lidar is not None and out.lidar.shape == (96, 128, 4)
        pure = _colour_coded(np.arange(3, dtype=np.uint8))
        matched = 0
        for cls in range(3):
            mask = np.all(out.image == pure[cls], axis=2)
            assert np.all(out.labels[mask] == cls)
            matched += int(mask.sum())
        assert matched > 0.8 * (out.labels != 255).sum()
        keep = out.labels != 255
        np.testing.assert_array_equal(out.lidar[keep][:, 0], out.labels[keep].astype(np.float32))
        flips += int(out.labels[:, 0].mean() != out.labels[:, -1].mean())
    assert flips > 0


def test_flip_moves_image_and_labels_together(camvid_pair: tuple[Path, Path]) -> None:
    image, labels = load_pair(discover(camvid_pair[0].parent)[0].__class__(
        camvid_pair[0], camvid_pair[1], "camvid"))
    spec = InputSpec(width=128, height=96)
    plain = resize_sample(Sample(image, labels), spec)
    aug = Augmenter(spec, scale_range=(1.0, 1.0), jitter=0.0, seed=0)
    seen = set()
    for _ in range(10):
        out = aug(Sample(image, labels))
        flipped = np.array_equal(out.labels, plain.labels[:, ::-1])
        same = np.array_equal(out.labels, plain.labels)
        assert flipped != same
        ref = plain.image[:, ::-1] if flipped else plain.image
        np.testing.assert_array_equal(out.image, ref)
        seen.add(flipped)
    assert seen == {True, False}


def test_copy_paste_puts_a_donor_frames_cars_on_a_sample(camvid_root: Path) -> None:
    """Real frames: the donor's car pixels (image and label) replace the sample's, in place."""
    files = [f for f in discover(camvid_root / "train") if camvid_sequence(f.image) == "0006R0"]
    pairs = [load_pair(f) for f in files[::10]]
    cars = [int(np.count_nonzero(lbl == 2)) for _, lbl in pairs]
    d, r = int(np.argmax(cars)), int(np.argmin(cars))
    assert cars[d] > 5000 > cars[r], cars
    samples = [Sample(*pairs[r]), Sample(*pairs[d])]
    spec = InputSpec(width=160, height=120)
    still = Augmenter(spec, scale_range=(1.0, 1.0), flip=False, jitter=0.0)
    paste = CopyPaste(samples, class_id=2, probability=1.0, min_pixels=5000)
    assert paste.donors == [1]  # the frame without (enough) cars lends none
    base, donor = resize_sample(samples[0], spec), resize_sample(samples[1], spec)
    out = paste(base, still)
    mask = donor.labels == 2
    np.testing.assert_array_equal(out.labels, np.where(mask, 2, base.labels))
    np.testing.assert_array_equal(out.image, np.where(mask[..., None], donor.image, base.image))
    assert np.count_nonzero(out.labels == 2) > np.count_nonzero(base.labels == 2) + 100
    assert CopyPaste(samples, 2, probability=0.0)(base, still) is base
    data = SegmentationDataset(samples, spec, Augmenter(spec, seed=1), CopyPaste(samples, 2, 0.5))
    pasted = sum(int((data[0]["labels"] == 2).sum()) > 100 for _ in range(20))
    assert 3 <= pasted <= 17, pasted  # about half the draws
    with pytest.raises(ModelError, match=r"copy-paste probability 1\.5 is not in \[0, 1\]"):
        CopyPaste(samples, 2, 1.5)


def test_dataset_tensors(camvid_pair: tuple[Path, Path]) -> None:
    image, labels = load_pair(discover(camvid_pair[0].parent)[0].__class__(
        camvid_pair[0], camvid_pair[1], "camvid"))
    spec = InputSpec(width=64, height=48)
    item = SegmentationDataset([Sample(image, labels)], spec)[0]
    assert sorted(item) == ["input", "labels"]
    x, y = item["input"], item["labels"]
    assert x.shape == (3, 48, 64) and y.shape == (48, 64)
    assert str(y.dtype) == "torch.int64" and -3 < float(x.mean()) < 3


def test_plain_layout_scores_like_the_camvid_it_was_converted_from(
    tmp_path: Path, small_camvid: Path
) -> None:
    """images/ + labels/ holding drivingseg ids: the same frames, the same labels."""
    from drivingseg.model.evaluate import evaluate

    plain = tmp_path / "plain"
    (plain / "images").mkdir(parents=True)
    (plain / "labels").mkdir()
    for f in discover(small_camvid / "val"):
        shutil.copy(f.image, plain / "images" / f.image.name)
        cv2.imwrite(str(plain / "labels" / f.image.name), read_labels(f))
    files = discover(plain)
    assert [f.layout for f in files] == ["plain"] * 3
    for ours, theirs in zip(files, discover(small_camvid / "val"), strict=True):
        np.testing.assert_array_equal(read_labels(ours), read_labels(theirs))
    a, b = evaluate(plain, limit=1), evaluate(small_camvid / "val", limit=1)
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["layouts"] == ["plain"]
    bad = read_labels(files[0]).copy()
    bad[0, 0] = 7
    cv2.imwrite(str(plain / "labels" / files[0].image.name), bad)
    with pytest.raises(RecordingError, match=r"labels.*unknown plain ids \[7\] \(valid ids are "
                                             r"0\.\.2 and 255\)"):
        read_labels(files[0])


def test_each_loader_worker_draws_its_own_augmentations(camvid_pair: tuple[Path, Path]) -> None:
    """Forked workers inherit one generator; ``seed_worker`` must split it, reproducibly."""
    import torch
    from torch.utils.data import DataLoader

    image, labels = cv2.cvtColor(cv2.imread(str(camvid_pair[0])), cv2.COLOR_BGR2RGB), \
        cv2.imread(str(camvid_pair[1]), 0)
    spec = InputSpec(width=64, height=48)
    same = [Sample(image, labels)] * 4

    def batches(init: object) -> list[torch.Tensor]:
        data = SegmentationDataset(same, spec, Augmenter(spec, scale_range=(0.6, 1.8), seed=0))
        loader = DataLoader(data, batch_size=1, num_workers=2, worker_init_fn=init,
                            generator=torch.Generator().manual_seed(5))
        return [batch["input"] for batch in loader]

    plain = batches(None)  # workers 0 and 1 alternate: frames 0/1 and 2/3 come out equal
    assert torch.equal(plain[0], plain[1]) and torch.equal(plain[2], plain[3])
    seeded = batches(seed_worker)
    assert not torch.equal(seeded[0], seeded[1]) and not torch.equal(seeded[2], seeded[3])
    again = batches(seed_worker)
    assert all(torch.equal(a, b) for a, b in zip(seeded, again, strict=True))


def test_fine_labels_keep_camvid_classes_and_agree_with_the_three(
    camvid_pair: tuple[Path, Path],
) -> None:
    """CamVid's own ids 0-10 survive (11 unlabelled -> 255); road and car sit where the
    three-class labels put them; a layout without fine classes keeps road and car only."""
    file = LabelledFile(camvid_pair[0], camvid_pair[1], "camvid")
    raw = cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED)
    coarse, fine = read_labels(file), read_fine_labels(file)
    assert fine.shape == coarse.shape and fine.dtype == np.uint8
    np.testing.assert_array_equal(fine, np.where(raw == 11, 255, raw))
    assert len(set(np.unique(fine).tolist()) - {3, 8, 255}) >= 4  # sky, building, tree, ...
    np.testing.assert_array_equal(fine == FINE_CLASSES.index("road"), coarse == 1)
    np.testing.assert_array_equal(fine == FINE_CLASSES.index("car"), coarse == 2)
    np.testing.assert_array_equal(fine == 255, coarse == 255)
    np.testing.assert_array_equal(fine_from_coarse(coarse), np.select(
        [coarse == 1, coarse == 2], [3, 8], 255).astype(np.uint8))


def test_fine_labels_refuse_unknown_ids(tmp_path: Path, camvid_pair: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.png"
    raw = cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED)
    raw[0, 0] = 40
    cv2.imwrite(str(bad), raw)
    with pytest.raises(RecordingError, match=r"bad\.png.*unknown camvid ids \[40\]"):
        read_fine_labels(LabelledFile(camvid_pair[0], bad, "camvid"))


def test_augmentation_and_copy_paste_carry_fine_labels_with_their_pixels(
    camvid_pair: tuple[Path, Path],
) -> None:
    """Scale, crop, flip, padding and pasted cars move fine labels as they move labels:
    wherever the labels say road or car, the fine labels do too, and the padding is
    ignored in both; the dataset hands them on as int64."""
    file = LabelledFile(camvid_pair[0], camvid_pair[1], "camvid")
    image, labels = load_pair(file)
    sample = Sample(image, labels, fine=read_fine_labels(file))
    spec = InputSpec(width=128, height=96)
    aug = Augmenter(spec, scale_range=(0.5, 2.0), seed=4)
    paste = CopyPaste([sample, sample], 2, probability=1.0)
    for _ in range(8):
        out = paste(aug(sample), aug)
        assert out.fine is not None and out.fine.shape == out.labels.shape == (96, 128)
        np.testing.assert_array_equal(out.fine == 3, out.labels == 1)
        np.testing.assert_array_equal(out.fine == 8, out.labels == 2)
        np.testing.assert_array_equal(out.fine == 255, out.labels == 255)
    item = SegmentationDataset([sample], spec, aug)[0]
    assert item["fine"].dtype == torch.int64 and item["fine"].shape == (96, 128)
    assert set(torch.unique(item["fine"]).tolist()) <= set(range(11)) | {255}


def test_discover_names_a_folder_it_cannot_list(tmp_path: Path) -> None:
    """A drive's ``gt/`` copied without ``image_02/data/``: one RecordingError naming the
    missing folder, for every caller (training, eval, report), not a FileNotFoundError."""
    drive = tmp_path / "2024_05_01_drive_0001_sync"
    (drive / "gt" / "image_02").mkdir(parents=True)
    with pytest.raises(RecordingError, match=r"image_02/data: cannot list the labelled frames"):
        discover(drive)


@pytest.mark.parametrize("layout", ["camvid", "kitti_road", "kitti_semantics"])
def test_a_layout_with_empty_folders_is_refused(tmp_path: Path, layout: str) -> None:
    """A layout's folders with no frame in them (a copy that failed, a wrong split) used to
    give no frames and no error: a training then ran without validation, or died in torch
    with a traceback."""
    folders = {"camvid": ("train", "trainannot"), "kitti_road": ("training/image_2",
               "training/gt_image_2"), "kitti_semantics": ("training/image_2",
                                                           "training/semantic")}[layout]
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    with pytest.raises(RecordingError, match=rf"{tmp_path}: no labelled frames in this folder: "
                                             rf"the {layout} layout's image folders hold no "
                                             r"png/jpg/jpeg images"):
        discover(tmp_path)


def test_a_grey_id_image_in_gt_image_2_is_refused(
    kitti_road_from_camvid: Path, camvid_pair: tuple[Path, Path]
) -> None:
    """A single-channel id PNG (KITTI semantics' ``semantic/``, CamVid's annot) saved as a
    KITTI road label was expanded to grey RGB, whose small ids all lie within the tolerance
    of black: the whole frame was read as "don't care" and dropped from the scores."""
    files = discover(kitti_road_from_camvid)
    shutil.copy(camvid_pair[1], files[0].label)  # CamVid ids 0..11, one channel
    with pytest.raises(RecordingError, match=r"um_road_000000\.png: KITTI road label is a "
                                             r"single-channel \(grey\) image of values "
                                             r"\[0, 1, 2, 3, 5, 6, 8, 9\]"):
        read_labels(files[0])
    with pytest.raises(RecordingError, match=r"single-channel \(grey\)"):
        read_fine_labels(files[0])


def test_folders_of_two_layouts_are_refused(kitti_road_from_camvid: Path,
                                            camvid_pair: tuple[Path, Path]) -> None:
    """KITTI road and KITTI semantics unpacked into one ``training/`` (both ship
    ``image_2/``) were read as KITTI road alone, and the semantics frames then failed as
    frames without a ``..._road_...`` label."""
    training = kitti_road_from_camvid / "training"
    (training / "semantic").mkdir()
    shutil.copy(camvid_pair[0], training / "image_2" / "000000_10.png")
    shutil.copy(camvid_pair[1], training / "semantic" / "000000_10.png")
    with pytest.raises(RecordingError, match=rf"{training}: this folder holds labels of "
                                             r"several layouts \(image_2/ \+ gt_image_2/, "
                                             r"image_2/ \+ semantic/\)"):
        discover(kitti_road_from_camvid)


def test_the_out_dir_of_synth_is_a_synthetic_folder(tmp_path: Path,
                                                     camvid_pair: tuple[Path, Path]) -> None:
    """``drivingseg synth OUT`` writes ``OUT/<date>/<date>_drive_0001_sync``; ``OUT`` itself
    was "no labelled frames found", so ``drivingseg eval --data OUT`` right after ``synth
    OUT`` failed."""
    drive = tmp_path / "out" / "2024_05_01" / "2024_05_01_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "gt" / "image_02").mkdir(parents=True)
    shutil.copy(camvid_pair[0], drive / "image_02" / "data" / "0000000000.png")
    ids = cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(drive / "gt" / "image_02" / "0000000000.png"),
                np.where(ids == 3, 1, np.where(ids == 8, 2, 0)).astype(np.uint8))
    for root in (tmp_path / "out", drive.parent, drive):
        files = discover(root)
        assert [(f.layout, f.image.parent.parent.parent) for f in files] == [("synthetic", drive)]
    np.testing.assert_array_equal(read_labels(files[0]) == 2, ids == 8)


@pytest.mark.parametrize("bits", [8, 4])
def test_indexed_png_labels_are_read_as_their_palette_indices(
    tmp_path: Path, camvid_pair: tuple[Path, Path], bits: int
) -> None:
    """Label PNGs saved with a palette (to be viewable; PIL's mode P, labelling tools) were
    refused as 3-channel images: OpenCV replaces the indices by the palette's colours."""
    from PIL import Image as PILImage

    ids = np.asarray(cv2.imread(str(camvid_pair[1]), cv2.IMREAD_UNCHANGED), dtype=np.uint8)
    indexed = PILImage.fromarray(ids).convert("P")
    indexed.putdata(ids.ravel().tolist())
    indexed.putpalette([c for i in range(256) for c in ((37 * i) % 256, (91 * i) % 256, i)])
    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    shutil.copy(camvid_pair[0], root / "val" / camvid_pair[0].name)
    indexed.save(root / "valannot" / camvid_pair[0].name, bits=bits)
    header = (root / "valannot" / camvid_pair[0].name).read_bytes()[:26]
    assert (header[24], header[25]) == (bits, 3)  # bit depth, colour type 3: indexed
    f_indexed = discover(root / "val")[0]
    expected = read_labels(LabelledFile(*camvid_pair, "camvid"))
    np.testing.assert_array_equal(read_labels(f_indexed), expected)
    np.testing.assert_array_equal(read_fine_labels(f_indexed), read_fine_labels(
        LabelledFile(*camvid_pair, "camvid")))


def test_check_pair_reads_only_the_image_header_and_names_a_bad_file(
    tmp_path: Path, camvid_pair: tuple[Path, Path]
) -> None:
    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    image = root / "val" / camvid_pair[0].name
    shutil.copy(camvid_pair[0], image)
    shutil.copy(camvid_pair[1], root / "valannot" / image.name)
    f = discover(root / "val")[0]
    check_pair(f)
    image.write_bytes(b"not an image")
    with pytest.raises(RecordingError, match=rf"{image.name}: not a PNG or JPEG image"):
        check_pair(f)
    cv2.imwrite(str(image), np.zeros((360, 481, 3), dtype=np.uint8))
    with pytest.raises(RecordingError, match=r"label image is 480x360 but its camera image "
                                             rf"'{image.name}' is 481x360"):
        check_pair(f)


@pytest.mark.parametrize("layout", ["camvid", "kitti_road"])
def test_a_label_image_is_decoded_once(
    layout: str, camvid_root: Path, kitti_road_from_camvid: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The label reader decoded each label PNG twice (once only to check it, once for its
    ids), in every frame ``eval`` and ``report`` score and every training sample."""
    root = camvid_root / "val" if layout == "camvid" else kitti_road_from_camvid
    file = next(f for f in discover(root) if f.layout == layout)
    expected = read_labels(file)
    calls: list[int] = []
    real = cv2.imdecode

    def counting(buf: np.ndarray, flags: int) -> np.ndarray | None:
        calls.append(flags)
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", counting)
    np.testing.assert_array_equal(read_labels(file), expected)
    assert len(calls) == 1
