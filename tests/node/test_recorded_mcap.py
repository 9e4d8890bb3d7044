"""The recorded MCAP, decoded with ``mcap`` + ``mcap-ros2-support`` only (no drivingseg
code): message types, counts, mask contents equal to what the node produced, and one
detections annotation message per mask; and what the output nodes check when a graph
starts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drivingseg.calibration.kitti import load_kitti_raw_rig
from drivingseg.errors import ConfigError
from drivingseg.node.graph import Graph
from drivingseg.node.video_writer import VideoWriter

FRAMES = 5


def test_mcap_holds_image_mask_overlay_and_diagnostics(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    run_launch("replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights),
               rate=0.0, overflow="block", max_frames=FRAMES, out_dir=str(tmp_path),
               video=False, status=False)
    types: dict[str, str] = {}
    counts: Counter[str] = Counter()
    masks: dict[int, np.ndarray] = {}
    images: dict[int, np.ndarray] = {}
    diagnostics = []
    detection_stamps: list[int] = []
    frame_ids: dict[str, set[str]] = {}
    infos = []
    with (tmp_path / "masks.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None  # finalised: summary and footer written
        assert reader.get_header().profile == "ros2"
        for schema, channel, message, msg in reader.iter_decoded_messages():
            assert schema is not None
            types[channel.topic] = schema.name
            counts[channel.topic] += 1
            if channel.topic == "/segmentation/detections":  # foxglove ImageAnnotations
                for ann in (*msg.points, *msg.texts):
                    t = ann.timestamp
                    assert t.sec * 1_000_000_000 + t.nanosec == message.log_time
                detection_stamps.append(message.log_time)
                continue
            if channel.topic == "/tf_static":
                tf_frames = [(t.header.frame_id, t.child_frame_id) for t in msg.transforms]
                continue
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if channel.topic == "/diagnostics":
                diagnostics.append(msg)
                continue
            assert message.log_time == stamp
            frame_ids.setdefault(channel.topic, set()).add(msg.header.frame_id)
            if channel.topic == "/camera/camera_info":
                infos.append(msg)
            elif channel.topic == "/segmentation/mask":
                assert msg.encoding == "mono8" and msg.step == msg.width
                masks[stamp] = np.frombuffer(bytes(msg.data), np.uint8).reshape(
                    msg.height, msg.width)
            elif channel.topic == "/camera/image":
                assert msg.encoding == "rgb8"
                images[stamp] = np.frombuffer(bytes(msg.data), np.uint8).reshape(
                    msg.height, msg.width, 3)
            else:
                assert msg.format == "jpeg"
                overlay = np.asarray(cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8),
                                                  cv2.IMREAD_COLOR))
                assert overlay.shape == (375, 1242, 3)

    assert types == {
        "/camera/image": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/segmentation/mask": "sensor_msgs/msg/Image",
        "/segmentation/overlay/compressed": "sensor_msgs/msg/CompressedImage",
        "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
        "/segmentation/detections": "foxglove_msgs/msg/ImageAnnotations",
        "/tf_static": "tf2_msgs/msg/TFMessage",
    }
    assert counts["/camera/image"] == counts["/segmentation/mask"] == FRAMES
    assert counts["/segmentation/overlay/compressed"] == FRAMES
    # One CameraInfo per frame, in the images' frame (the rig's camera), with the rig's
    # projection, so that viewers can pair them and project into the image.
    assert counts["/camera/camera_info"] == FRAMES
    assert len(set().union(*frame_ids.values())) == 1
    rig = load_kitti_raw_rig(kitti_raw_drive.parent)
    assert frame_ids["/camera/image"] == {rig.camera.frame_id}
    assert (infos[0].width, infos[0].height) == (1242, 375)
    np.testing.assert_allclose(np.reshape(infos[0].p, (3, 4)), rig.camera.P)
    assert counts["/diagnostics"] >= 1
    # The lidar->camera transform once, from the lidar to the images' frame.
    assert counts["/tf_static"] == 1
    assert tf_frames == [(rig.camera.frame_id, rig.lidar_frame)]
    assert sorted(detection_stamps) == sorted(masks)  # one annotation message per mask

    # Mask contents equal what the node produced (its PNGs, named by stamp).
    pngs = {int(p.stem): p for p in (tmp_path / "masks").glob("*.png")}
    assert set(pngs) == set(masks)
    for stamp, mask in masks.items():
        assert mask.shape == (375, 1242)
        assert set(np.unique(mask)) <= {0, 1, 2}
        assert np.array_equal(mask, np.asarray(cv2.imread(str(pngs[stamp]),
                                                          cv2.IMREAD_UNCHANGED)))
    # The recorded input image is the KITTI frame itself.
    first = min(images)
    png = sorted((kitti_raw_drive / "image_02" / "data").glob("*.png"))[0]
    expected = cv2.cvtColor(np.asarray(cv2.imread(str(png))), cv2.COLOR_BGR2RGB)
    assert np.array_equal(images[first], expected)

    # Diagnostics carry the latency figures of the tracker.
    status = diagnostics[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["masks"] == str(FRAMES)
    report = json.loads((tmp_path / "latency.json").read_text())
    assert float(values["e2e_p95_ms"]) > 0 and report["masks"] == FRAMES
    assert status.name == "drivingseg: latency"


def test_recording_with_lidar_replays_with_the_drive_s_calibration_and_stamps(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    """The recording held no lidar scan and no /tf_static: replaying it ended with every
    frame dropped at the sync, and it had no calibration to read back."""
    from drivingseg.sensors.kitti_raw import KittiRawDrive
    from drivingseg.sensors.open import open_recording

    run_launch("replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights),
               rate=0.0, overflow="block", max_frames=FRAMES, out_dir=str(tmp_path),
               video=False, masks=False, status=False, record_lidar=True)
    with KittiRawDrive(kitti_raw_drive) as drive, open_recording(tmp_path / "masks.mcap") as bag:
        assert bag.image_topic == "/camera/image"  # not the masks: no CameraInfo beside them
        want, got = drive.rig(), bag.rig()
        assert want is not None and got is not None
        np.testing.assert_array_equal(got.camera.P, want.camera.P)
        np.testing.assert_allclose(got.lidar_to_pixel_matrix(), want.lidar_to_pixel_matrix(),
                                   atol=1e-4)
        scans = list(bag.lidar_scans())
        assert [s.stamp_ns for s in scans] == [drive.lidar(i).stamp_ns for i in range(FRAMES)]
        np.testing.assert_array_equal(scans[0].points, drive.lidar(0).points)
        frames = [f.stamp_ns for f in bag.camera_frames()]
        assert frames == [drive.camera(i).stamp_ns for i in range(FRAMES)]


def test_a_graph_that_fails_to_start_leaves_the_earlier_recording(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    """The recorder creates its file only once every node is set up: a mask folder that
    cannot be made (a file stands there) stops the graph before the last run's MCAP is
    touched."""
    earlier = tmp_path / "masks.mcap"
    earlier.write_bytes(b"the last run's recording")
    (tmp_path / "masks").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"node 'mask_pngs' .*parameter 'dir': cannot create"):
        run_launch("replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights),
                   rate=0.0, max_frames=1, out_dir=str(tmp_path), video=False, status=False)
    assert earlier.read_bytes() == b"the last run's recording"


def test_video_codec_is_checked_when_the_node_starts(tmp_path: Path) -> None:
    """OpenCV cannot write this codec: refused at setup (no probe file left), not after the
    model has run on the first frame."""
    graph = Graph()
    graph.add(VideoWriter, "video", {"path": str(tmp_path / "overlay.mp4"), "fourcc": "abcd"})
    with pytest.raises(ConfigError, match=r"parameter 'fourcc': OpenCV cannot write .*overlay"
                       r"\.mp4' with codec 'abcd'"):
        graph.setup()
    assert list(tmp_path.iterdir()) == []
    good = Graph()
    good.add(VideoWriter, "video", {"path": str(tmp_path / "overlay.mp4")})
    good.setup()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_a_compressed_image_recording_replays_with_drivingseg_replay(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple],
    cli: Callable[[Sequence[str]], int], fmt: str,
) -> None:
    """``record_image_format`` records the input image as CompressedImage (at 1920 x 1200
    the chunk compression of rgb8 images was the recorder's largest cost); the file still
    replays: the same frames and stamps, png bit for bit (so the same masks), jpeg close."""
    from drivingseg.sensors.kitti_raw import KittiRawDrive
    from drivingseg.sensors.open import open_recording

    first = tmp_path / "first"
    run_launch("replay_kitti", input=str(kitti_raw_drive), weights=str(tiny_weights),
               rate=0.0, overflow="block", max_frames=3, out_dir=str(first), video=False,
               status=False, record_lidar=True, record_image_format=fmt, record_jpeg_quality=95)
    recording = first / "masks.mcap"
    with recording.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        images = [(schema.name, msg.format) for schema, channel, _, msg
                  in reader.iter_decoded_messages(topics=["/camera/image"]) if schema]
    assert images == [("sensor_msgs/msg/CompressedImage", fmt)] * 3
    with KittiRawDrive(kitti_raw_drive) as drive, open_recording(recording) as bag:
        assert bag.image_topic == "/camera/image"
        for i, frame in enumerate(bag.camera_frames()):
            want = drive.camera(i)
            assert frame.stamp_ns == want.stamp_ns and frame.image.shape == want.image.shape
            error = np.abs(frame.image.astype(np.int16) - want.image).mean()
            assert error == 0 if fmt == "png" else error < 5.0  # q95: 3.2 on KITTI

    again = tmp_path / "again"
    assert cli(["replay", str(recording), "--fast", "--out", str(again), "--weights",
                str(tiny_weights), "video:=false", "live:=false", "status:=false"]) == 0
    pngs = sorted(p.name for p in (first / "masks").glob("*.png"))
    assert sorted(p.name for p in (again / "masks").glob("*.png")) == pngs and len(pngs) == 3
    if fmt == "png":  # the same pixels and scans: the same masks
        for name in pngs:
            assert (first / "masks" / name).read_bytes() == (again / "masks" / name).read_bytes()


def test_a_bad_recorded_image_format_is_refused_at_start_in_one_line(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path,
    cli: Callable[[Sequence[str]], int], capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli(["launch", "replay_kitti", f"input:={kitti_raw_drive}", f"out_dir:={tmp_path}",
                f"weights:={tiny_weights}", "record_image_format:=jpg", "live:=false"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.endswith("node 'recorder' (mcap_recorder, in outputs.yaml): parameter "
                        "'image_format': 'jpg' is not one of raw, jpeg, png")
    assert list(tmp_path.iterdir()) == []


def test_a_camera_only_bag_replays_with_its_camera_info(
    kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path, run_launch: Callable[..., tuple]
) -> None:
    """A bag with images and CameraInfo but no lidar has no rig; its replay wrote no
    CameraInfo into masks.mcap (so Foxglove had no camera and a replay of the recording no
    intrinsics). The frame's camera model now travels with the frame."""
    from drivingseg.outputs.mcap import Ros2McapWriter
    from drivingseg.sensors.kitti_raw import KittiRawDrive

    camera = load_kitti_raw_rig(kitti_raw_drive.parent).camera
    bag = tmp_path / "camera_only.mcap"
    with KittiRawDrive(kitti_raw_drive) as drive, Ros2McapWriter(bag) as writer:
        for k in range(3):
            frame = drive.camera(k)
            writer.write_image("/cam/image_rect", frame, frame_id=camera.frame_id)
            writer.write_camera_info("/cam/camera_info", camera, frame.stamp_ns)
    out = tmp_path / "out"
    run_launch("replay_bag", input=str(bag), weights=str(tiny_weights), rate=0.0,
               overflow="block", out_dir=str(out), video=False, status=False)
    infos = []
    with (out / "masks.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, _, msg in reader.iter_decoded_messages():
            if channel.topic == "/camera/camera_info":
                infos.append(msg)
    assert len(infos) == 3
    np.testing.assert_allclose(np.asarray(infos[0].k).reshape(3, 3), camera.K)
    assert (infos[0].width, infos[0].height) == (camera.width, camera.height)
