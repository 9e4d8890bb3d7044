"""KittiBenchmark on the real Argoverse-in-KITTI-layout frames and on small fake folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.calibration.kitti import parse_kitti_calib_file
from drivingseg.errors import CalibrationError, RecordingError
from drivingseg.sensors import kitti_benchmark
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_benchmark import KittiBenchmark, KittiObject, png_size

REAL_IDS = ["000000", "000001", "000002"]


def _imread_rgb(path: Path) -> np.ndarray:
    """The reference decoding: OpenCV's own reader, BGR turned to RGB."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return bgr[:, :, ::-1]


def make_benchmark(root: Path, real: Path, ids: list[str], *, labels: bool = False) -> Path:
    """``root/training`` with 8x6 PNGs, 3-point scans and the real calib of frame 000000."""
    bench = root / "training"
    for sub in ("image_2", "velodyne", "calib"):
        (bench / sub).mkdir(parents=True)
    for k, frame_id in enumerate(ids):
        img = np.full((6, 8, 3), 40 * k, dtype=np.uint8)
        assert cv2.imwrite(str(bench / "image_2" / f"{frame_id}.png"), img)
        np.full((3, 4), k, dtype=np.float32).tofile(bench / "velodyne" / f"{frame_id}.bin")
        shutil.copy(real / "calib" / "000000.txt", bench / "calib" / f"{frame_id}.txt")
    if labels:
        (bench / "label_2").mkdir()
    return bench


# --- real data --------------------------------------------------------------------------


def test_real_benchmark_frames_and_info(kitti_object_root: Path) -> None:
    with KittiBenchmark(kitti_object_root) as bench:
        assert len(bench) == 3
        assert bench.ids == REAL_IDS
        info = bench.info()
        frame = bench.camera(1)
        scan = bench.lidar(1)
    assert [(s.name, s.kind, s.msgtype, s.count) for s in info.streams] == [
        ("image_2", "camera", "png", 3),
        ("velodyne", "lidar", "bin", 3),
    ]
    assert (info.streams[0].first_ns, info.streams[0].last_ns) == (0, 200_000_000)
    png = kitti_object_root / "image_2" / "000001.png"
    assert frame.image.shape == (514, 616, 3)
    np.testing.assert_array_equal(frame.image, _imread_rgb(png))
    assert (frame.index, frame.stamp_ns, frame.source) == (1, 100_000_000, str(png))
    binf = kitti_object_root / "velodyne" / "000001.bin"
    np.testing.assert_array_equal(scan.points, np.fromfile(binf, np.float32).reshape(-1, 4))
    assert 80_000 < len(scan) < 90_000
    assert scan.stamp_ns == frame.stamp_ns


def test_real_rig_is_per_frame(kitti_object_root: Path) -> None:
    with KittiBenchmark(kitti_object_root) as bench:
        rigs = [bench.rig(i) for i in range(len(bench))]
        frame_id = bench.camera(0).frame_id
    for frame, rig in zip(REAL_IDS, rigs, strict=True):
        assert rig is not None
        calib = parse_kitti_calib_file(kitti_object_root / "calib" / f"{frame}.txt")
        assert rig.camera.P is not None
        np.testing.assert_array_equal(rig.camera.P, calib["P2"].reshape(3, 4))
        np.testing.assert_array_equal(
            rig.T_cam_velo.matrix[:3], calib["Tr_velo_to_cam"].reshape(3, 4)
        )
        assert rig.camera.image_size == (616, 514)
        assert rig.path is not None and rig.path.endswith(f"{frame}.txt")
        assert rig.camera_frame == frame_id


def test_real_labels(kitti_object_root: Path) -> None:
    with KittiBenchmark(kitti_object_root) as bench:
        assert bench.has_labels
        per_frame = [bench.labels(i) for i in range(3)]
        assert bench.gt_road_path(0) is None
    assert [len(objs) for objs in per_frame] == [73, 74, 77]
    types = {o.type for objs in per_frame for o in objs}
    assert types == {"Car", "PEDESTRIAN", "ON_ROAD_OBSTACLE"}
    # First line of 000000.txt:
    # PEDESTRIAN 0 0 -2.38 0 296.0 0 494.0 1.91 0.6 0.65 -7.82 1.27 9.78 -3.06
    assert per_frame[0][0] == KittiObject(
        type="PEDESTRIAN",
        truncated=0.0,
        occluded=0,
        alpha=-2.38,
        bbox_xyxy=(0.0, 296.0, 0.0, 494.0),
        dimensions_hwl_m=(1.91, 0.6, 0.65),
        location_xyz_m=(-7.82, 1.27, 9.78),
        rotation_y=-3.06,
        score=None,
    )


def test_real_messages_interleave(kitti_object_root: Path) -> None:
    with KittiBenchmark(kitti_object_root) as bench:
        msgs = list(bench.messages())
    assert [type(m) for m in msgs] == [CameraFrame, LidarScan] * 3
    assert [m.stamp_ns for m in msgs] == [i // 2 * 100_000_000 for i in range(6)]


def test_png_size_reads_the_header(kitti_object_root: Path, tmp_path: Path) -> None:
    assert png_size(kitti_object_root / "image_2" / "000000.png") == (616, 514)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a" + b"\x00" * 40)
    with pytest.raises(RecordingError, match=r"bad\.png: not a PNG image"):
        png_size(bad)
    bad.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(RecordingError, match=r"bad\.png: truncated PNG"):
        png_size(bad)


def test_scans_are_read_lazily(kitti_object_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = kitti_benchmark.read_velodyne_bin

    def counting(path: Path) -> np.ndarray:
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(kitti_benchmark, "read_velodyne_bin", counting)
    with KittiBenchmark(kitti_object_root) as bench:
        scans = bench.lidar_scans()
        assert calls == []
        next(scans)
        assert calls == ["000000.bin"]


def test_not_open_raises(kitti_object_root: Path) -> None:
    bench = KittiBenchmark(kitti_object_root)
    for use in (
        lambda: len(bench),
        lambda: bench.ids,
        lambda: bench.camera(0),
        lambda: bench.rig(0),
        lambda: bench.labels(0),
        lambda: bench.camera_frames(),
        lambda: bench.info(),
    ):
        with pytest.raises(RecordingError, match="KittiBenchmark is not open"):
            use()


# --- fake folders -----------------------------------------------------------------------


def test_rig_uses_each_frames_own_p2(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"])
    calib1 = bench / "calib" / "000001.txt"
    text = calib1.read_text().replace("P2: 973.508500621594", "P2: 500.0", 1)
    calib1.write_text(text)
    with KittiBenchmark(bench) as reader:
        rig0, rig1 = reader.rig(0), reader.rig(1)
    assert rig0 is not None and rig1 is not None
    assert rig0.camera.P is not None and rig1.camera.P is not None
    assert rig0.camera.P[0, 0] == pytest.approx(973.508500621594)
    assert rig1.camera.P[0, 0] == 500.0
    assert rig1.camera.image_size == (8, 6)


def test_road_ground_truth_path(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["um_000000", "uu_000001"])
    gt = bench / "gt_image_2"
    gt.mkdir()
    for name in ("um_road_000000.png", "um_lane_000000.png"):
        assert cv2.imwrite(str(gt / name), np.zeros((6, 8, 3), np.uint8))
    with KittiBenchmark(bench) as reader:
        assert reader.ids == ["um_000000", "uu_000001"]
        assert reader.gt_road_path(0) == gt / "um_road_000000.png"
        assert reader.gt_road_path(1) is None
        with pytest.raises(RecordingError, match="no label_2/ folder"):
            reader.labels(0)


def test_missing_calib_file(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"])
    (bench / "calib" / "000001.txt").unlink()
    with pytest.raises(CalibrationError, match=r"calib/000001\.txt: frame '000001' has an image"):
        KittiBenchmark(bench).open()


def test_calib_without_p2(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"])
    calib1 = bench / "calib" / "000001.txt"
    lines = calib1.read_text().splitlines()
    calib1.write_text("\n".join(line for line in lines if not line.startswith("P2:")))
    with KittiBenchmark(bench) as reader:
        assert reader.rig(0) is not None
        with pytest.raises(CalibrationError, match=r"000001\.txt: missing field 'P2'"):
            reader.rig(1)


def test_missing_velodyne_file(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"])
    (bench / "velodyne" / "000000.bin").unlink()
    with pytest.raises(RecordingError, match=r"velodyne/000000\.bin: frame '000000'"):
        KittiBenchmark(bench).open()


def test_without_velodyne_and_calib_folders(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000"])
    shutil.rmtree(bench / "velodyne")
    shutil.rmtree(bench / "calib")
    with KittiBenchmark(bench) as reader:
        assert reader.rig(0) is None
        assert list(reader.lidar_scans()) == []
        assert [s.kind for s in reader.info().streams] == ["camera"]
        assert reader.camera(0).frame_id == "image_2"
    with pytest.raises(RecordingError, match="no image_2/ folder"):
        KittiBenchmark(bench.parent).open()


def test_bad_scan_and_image_fail_on_read(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"])
    (bench / "velodyne" / "000001.bin").write_bytes(b"\x00" * 33)
    png0 = bench / "image_2" / "000000.png"
    png0.write_bytes(png0.read_bytes()[:-20])
    with KittiBenchmark(bench) as reader:
        assert len(reader.lidar(0)) == 3
        with pytest.raises(RecordingError, match=r"000001\.bin: size 33 bytes"):
            reader.lidar(1)
        with pytest.raises(RecordingError, match=r"000000\.png: truncated PNG"):
            reader.camera(0)


def test_labels_with_score_and_malformed_lines(kitti_object_root: Path, tmp_path: Path) -> None:
    bench = make_benchmark(tmp_path, kitti_object_root, ["000000", "000001"], labels=True)
    good = "Car 0.5 2 -1.5 10 20 110 90 1.5 1.6 4.0 1.0 1.7 20.0 0.3 0.87"
    dontcare_line = "DontCare -1 -1 -10 0 0 1 1 -1 -1 -1 -1000 -1000 -1000 -10"
    (bench / "label_2" / "000000.txt").write_text(f"\n{good}\n{dontcare_line}\n")
    (bench / "label_2" / "000001.txt").write_text(f"{good}\nCar 0 0 1 2 3 4 5 6 7 8 9 10 11\n")
    with KittiBenchmark(bench) as reader:
        car, dontcare = reader.labels(0)
        assert car.type == "Car" and car.occluded == 2 and car.score == 0.87
        assert car.bbox_xyxy == (10.0, 20.0, 110.0, 90.0)
        assert car.location_xyz_m == (1.0, 1.7, 20.0)
        assert dontcare.type == "DontCare" and dontcare.score is None
        with pytest.raises(RecordingError, match=r"000001\.txt: line 2: expected 15 or 16 columns"):
            reader.labels(1)
        (bench / "label_2" / "000001.txt").write_text(good.replace("1.6", "wide"))
        with pytest.raises(RecordingError, match=r"000001\.txt: line 1: non-numeric value"):
            reader.labels(1)
        (bench / "label_2" / "000001.txt").unlink()
        with pytest.raises(RecordingError, match=r"000001\.txt: label file not found"):
            reader.labels(1)
