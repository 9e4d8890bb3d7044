"""ROS message <-> drivingseg conversions on messages built with rosbags typestores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from drivingseg.calibration.types import CameraModel, RigidTransform
from drivingseg.errors import RecordingError
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.ros_msgs import (
    camera_model_from_camera_info,
    image_from_msg,
    points_from_pointcloud2,
    stamp_ns_of,
    transform_from_tf,
)
from drivingseg.sensors.ros_msgs_write import (
    camera_info_to_msg,
    compressed_image_to_msg,
    image_to_msg,
    pointcloud2_to_msg,
    quaternion_from_matrix,
    tf_static_msg,
)

ROS2 = get_typestore(Stores.ROS2_HUMBLE)
ROS1 = get_typestore(Stores.ROS1_NOETIC)
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def make_header(ts: Typestore, stamp_ns: int = 1_500_000_123_456_789, frame: str = "cam") -> Any:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)
    cls = ts.types["std_msgs/msg/Header"]
    if ts is ROS1:
        return cls(seq=0, stamp=stamp, frame_id=frame)
    return cls(stamp=stamp, frame_id=frame)


def make_image(ts: Typestore, pixels: np.ndarray, encoding: str, pad: int = 0) -> Any:
    """An Image with ``pad`` junk bytes at the end of every row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return ts.types["sensor_msgs/msg/Image"](
        header=make_header(ts), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=padded.shape[1], data=padded.reshape(-1),
    )


def make_cloud(
    ts: Typestore,
    fields: list[tuple[str, int, str]],
    values: dict[str, np.ndarray],
    *,
    point_step: int,
    height: int = 1,
    row_pad: int = 0,
    big_endian: bool = False,
) -> Any:
    """A PointCloud2 from (name, offset, numpy kind) fields; rows padded by ``row_pad`` bytes."""
    codes = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 8}
    order = ">" if big_endian else "<"
    dtype = np.dtype({
        "names": [f[0] for f in fields],
        "formats": [order + f[2] for f in fields],
        "offsets": [f[1] for f in fields],
        "itemsize": point_step,
    })
    n = len(next(iter(values.values())))
    rec = np.zeros(n, dtype=dtype)
    for name, arr in values.items():
        rec[name] = arr
    width = n // height
    raw = rec.view(np.uint8).reshape(height, width * point_step)
    raw = np.concatenate([raw, np.zeros((height, row_pad), np.uint8)], axis=1)
    pf = ts.types["sensor_msgs/msg/PointField"]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=make_header(ts, frame="velo"), height=height, width=width,
        fields=[pf(name=f[0], offset=f[1], datatype=codes[f[2]], count=1) for f in fields],
        is_bigendian=big_endian, point_step=point_step, row_step=raw.shape[1],
        data=raw.reshape(-1), is_dense=False,
    )


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("ts", [ROS1, ROS2], ids=["ros1", "ros2"])
@pytest.mark.parametrize("pad", [0, 3])
def test_image_encodings_with_row_padding(ts: Typestore, pad: int) -> None:
    np.testing.assert_array_equal(image_from_msg(make_image(ts, RGB, "rgb8", pad), "t"), RGB)
    bgr = RGB[:, :, ::-1].copy()
    np.testing.assert_array_equal(image_from_msg(make_image(ts, bgr, "bgr8", pad), "t"), RGB)
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(image_from_msg(make_image(ts, rgba, "rgba8", pad), "t"), RGB)
    bgra = np.dstack([bgr, np.full(RGB.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(image_from_msg(make_image(ts, bgra, "bgra8", pad), "t"), RGB)
    grey = RGB[:, :, 0].copy()
    out = image_from_msg(make_image(ts, grey, "mono8", pad), "t")
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_images_are_demosaiced(pattern: str) -> None:
    """A raw camera recorded as an 8-bit Bayer mosaic (row padding too) comes out RGB with
    each colour where the pattern puts it."""
    colour = np.array([200, 100, 50], np.uint8)
    mosaic = np.zeros((6, 8), np.uint8)
    for k, ch in enumerate(pattern):
        mosaic[k // 2::2, k % 2::2] = colour["rgb".index(ch)]
    rgb = image_from_msg(make_image(ROS2, mosaic[:, :, None], f"bayer_{pattern}8", pad=3), "t")
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[2:4, 2:6], np.broadcast_to(colour, (2, 4, 3)))


@pytest.mark.parametrize("big_endian", [False, True])
def test_16bit_images_are_scaled_to_8bit(big_endian: bool) -> None:
    """mono16 / rgb16 / bgra16 / bayer 16 (machine-vision cameras) in either byte order,
    with row padding, come out as cv_bridge would scale them (255 / 65535, rounded)."""
    wide = (RGB.astype(np.uint16) * 257 + RNG.integers(0, 129, RGB.shape)).astype(np.uint16)
    order = ">u2" if big_endian else "<u2"

    def msg16(pixels: np.ndarray, encoding: str) -> Any:
        raw = np.ascontiguousarray(pixels.astype(order)).view(np.uint8)
        msg = make_image(ROS2, raw.reshape(raw.shape[0], raw.shape[1], -1), encoding, pad=2)
        msg.width, msg.is_bigendian = pixels.shape[1], int(big_endian)
        return msg

    np.testing.assert_array_equal(image_from_msg(msg16(wide, "rgb16"), "t"), RGB)
    bgra = np.dstack([wide[:, :, ::-1], np.full(RGB.shape[:2], 7, np.uint16)])
    np.testing.assert_array_equal(image_from_msg(msg16(bgra, "bgra16"), "t"), RGB)
    grey = image_from_msg(msg16(wide[:, :, 1], "mono16"), "t")
    np.testing.assert_array_equal(grey, np.repeat(RGB[:, :, 1:2], 3, axis=2))
    mosaic = np.zeros((6, 8), np.uint16)
    for k, value in enumerate((51400, 25700, 25700, 12850)):  # r g / g b: 200, 100, 50
        mosaic[k // 2::2, k % 2::2] = value
    rgb = image_from_msg(msg16(mosaic, "bayer_rggb16"), "t")
    np.testing.assert_array_equal(rgb[2:4, 2:6], np.broadcast_to([200, 100, 50], (2, 4, 3)))


@pytest.mark.parametrize(("encoding", "red"), [("yuv422", [90, 81, 240, 81]),
                                               ("uyvy", [90, 81, 240, 81]),
                                               ("yuv422_yuy2", [81, 90, 81, 240]),
                                               ("yuyv", [81, 90, 81, 240])])
def test_yuv422_images_of_usb_cameras(encoding: str, red: list[int]) -> None:
    """usb_cam publishes 4:2:2 YUV (``yuv422`` = UYVY, ``yuv422_yuy2`` = YUYV), which was
    refused as an unsupported encoding. Two red pixels (BT.601 Y 81, U 90, V 240), then a
    row of grey, with row padding; an odd width cannot hold chroma pairs."""
    rows = np.array([red * 2, [128] * 8], np.uint8).reshape(2, 4, 2)
    out = image_from_msg(make_image(ROS2, rows, encoding, pad=3), "t")
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[0], np.broadcast_to([255, 0, 0], (4, 3)), atol=3)
    np.testing.assert_allclose(out[1], np.full((4, 3), 130), atol=3)
    with pytest.raises(RecordingError, match=rf"bag:/usb_cam: a {encoding} image .* odd width 3"):
        image_from_msg(make_image(ROS2, rows[:, :3], encoding), "bag:/usb_cam")


def test_unsupported_encoding_lists_supported() -> None:
    msg = make_image(ROS2, RGB[:, :, :2].copy(), "16UC1")
    with pytest.raises(RecordingError, match=r"unsupported image encoding '16UC1' \(a depth "
                                             r"or single-value image, not a camera picture; "
                                             r"supported: rgb8, bgr8.*mono16"):
        image_from_msg(msg, "bag:/cam")
    msg = make_image(ROS2, RGB, "nv21")
    with pytest.raises(RecordingError, match=r"encoding 'nv21' \(supported: rgb8"):
        image_from_msg(msg, "bag:/cam")


def test_image_too_short_is_refused() -> None:
    msg = make_image(ROS2, RGB, "rgb8")
    msg.data = msg.data[:-5]
    with pytest.raises(RecordingError, match="bytes"):
        image_from_msg(msg, "bag:/cam")


def _compressed(ext: str, fmt: str) -> Any:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    return ROS2.types["sensor_msgs/msg/CompressedImage"](
        header=make_header(ROS2), format=fmt, data=buf.reshape(-1)
    )


def test_compressed_png_exact_and_jpeg_close() -> None:
    np.testing.assert_array_equal(image_from_msg(_compressed(".png", "png"), "t"), RGB)
    smooth = np.tile(np.linspace(0, 250, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    _, buf = cv2.imencode(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    msg = ROS2.types["sensor_msgs/msg/CompressedImage"](
        header=make_header(ROS2), format="rgb8; jpeg compressed bgr8", data=buf.reshape(-1)
    )
    out = image_from_msg(msg, "t")
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth.astype(int)).mean() < 2.0


def test_compressed_without_a_format_is_decoded_by_content() -> None:
    """Drivers that leave ``format`` empty: it used to be refused as unsupported."""
    np.testing.assert_array_equal(image_from_msg(_compressed(".png", ""), "t"), RGB)
    assert image_from_msg(_compressed(".jpg", " "), "t").shape == RGB.shape
    msg = _compressed(".png", "")
    msg.data = np.frombuffer(b"not an image at all", np.uint8)
    with pytest.raises(RecordingError, match=r"^t: "):
        image_from_msg(msg, "t")


def test_compressed_depth_is_refused_as_not_a_camera_picture() -> None:
    """image_transport's compressedDepth (a 12-byte header, then a 16-bit PNG) was taken for
    a PNG ('png' is in its format) and failed as an undecodable image."""
    msg = _compressed(".png", "16UC1; compressedDepth png")
    with pytest.raises(RecordingError, match=r"^t: CompressedImage format '16UC1; "
                                             r"compressedDepth png' is a depth image"):
        image_from_msg(msg, "t")


def test_compressed_unsupported_format() -> None:
    msg = _compressed(".png", "tiff")
    with pytest.raises(RecordingError, match=r"unsupported CompressedImage format 'tiff'"):
        image_from_msg(msg, "t")


# --------------------------------------------------------------------------- point clouds


XYZI = np.array(
    [[1.0, 2.0, 3.0, 10.0], [np.nan, 0.0, 0.0, 5.0], [-4.5, 5.25, 6.0, 20.0],
     [7.0, np.inf, 1.0, 1.0], [0.125, -8.0, 9.5, 30.0]],
)
FINITE = XYZI[[0, 2, 4]].astype(np.float32)


@pytest.mark.parametrize("ts", [ROS1, ROS2], ids=["ros1", "ros2"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pointcloud_unusual_layout(ts: Typestore, big_endian: bool) -> None:
    # intensity first as uint16 named 'i', then padding, z, float64 x, y; rows padded.
    fields = [("i", 0, "u2"), ("z", 4, "f4"), ("ring", 8, "u2"), ("x", 12, "f8"), ("y", 24, "f8")]
    values = {"x": XYZI[:4, 0], "y": XYZI[:4, 1], "z": XYZI[:4, 2], "i": XYZI[:4, 3]}
    msg = make_cloud(ts, fields, values, point_step=40, height=2, row_pad=6, big_endian=big_endian)
    pts = points_from_pointcloud2(msg, "t")
    assert pts.dtype == np.float32 and pts.shape == (2, 4)
    np.testing.assert_array_equal(pts, XYZI[[0, 2]].astype(np.float32))


def test_pointcloud_reflectivity_and_no_intensity() -> None:
    fields = [("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f4"), ("reflectivity", 12, "u1")]
    values = {"x": XYZI[:, 0], "y": XYZI[:, 1], "z": XYZI[:, 2], "reflectivity": XYZI[:, 3]}
    pts = points_from_pointcloud2(make_cloud(ROS2, fields, values, point_step=16), "t")
    np.testing.assert_array_equal(pts, FINITE)
    values.pop("reflectivity")
    pts = points_from_pointcloud2(make_cloud(ROS2, fields[:3], values, point_step=12), "t")
    np.testing.assert_array_equal(pts[:, :3], FINITE[:, :3])
    np.testing.assert_array_equal(pts[:, 3], 0.0)


def test_pointcloud_without_x_names_fields() -> None:
    fields = [("y", 0, "f4"), ("z", 4, "f4"), ("intensity", 8, "f4")]
    values = {"y": XYZI[:, 1], "z": XYZI[:, 2], "intensity": XYZI[:, 3]}
    msg = make_cloud(ROS2, fields, values, point_step=12)
    with pytest.raises(RecordingError, match=r"bag:/velo: PointCloud2 has no x field.*'intensity'"):
        points_from_pointcloud2(msg, "bag:/velo")


def test_pointcloud_field_outside_point_is_refused() -> None:
    fields = [("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f8")]
    values = {"x": XYZI[:, 0], "y": XYZI[:, 1], "z": XYZI[:, 2]}
    msg = make_cloud(ROS2, fields, values, point_step=16)
    msg.point_step = 12
    with pytest.raises(RecordingError, match="does not fit in point_step 12"):
        points_from_pointcloud2(msg, "t")


def _points_reference(msg: Any) -> np.ndarray:
    """The field-by-field reading the one-gather float32 path replaced."""
    names = {str(f.name): f for f in msg.fields}
    wanted = ["x", "y", "z", *[n for n in ("intensity", "i", "reflectivity") if n in names][:1]]
    kinds = {7: "f4", 8: "f8", 2: "u1", 4: "u2", 6: "u4"}
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": wanted, "formats": [order + kinds[int(names[n].datatype)]
                                                   for n in wanted],
                      "offsets": [int(names[n].offset) for n in wanted],
                      "itemsize": int(msg.point_step)})
    data = np.asarray(msg.data, np.uint8).reshape(int(msg.height), int(msg.row_step))
    records = np.ascontiguousarray(data[:, : int(msg.point_step) * int(msg.width)])
    records = records.view(dtype).ravel()
    out = np.zeros((records.size, 4), np.float32)
    for col, name in enumerate(wanted):
        out[:, col] = records[name]
    out = out[np.isfinite(out[:, :3]).all(axis=1)]
    out[~np.isfinite(out[:, 3]), 3] = 0.0
    return out


@pytest.mark.parametrize("layout", ["xyzi16", "ouster48", "big_endian", "no_intensity",
                                    "float64_x", "two_rows_padded"])
def test_pointcloud_of_a_real_dense_scan_reads_as_field_by_field(
        kitti_raw_drive: Path, layout: str) -> None:
    """A real KITTI scan stacked twice (228k points, a 128-beam lidar's size) with NaN and
    inf points, in drivers' layouts: the float32 gather gives the field-by-field result."""
    scan = np.fromfile(kitti_raw_drive / "velodyne_points/data/0000000000.bin", "<f4")
    pts = np.concatenate([scan.reshape(-1, 4)] * 2).astype(np.float64)
    pts[::997, 0] = np.nan
    pts[5::1999, 2] = -np.inf
    pts[7::501, 3] = np.nan
    values = {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "intensity": pts[:, 3]}
    fields = [("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f4"), ("intensity", 12, "f4")]
    step, height, pad, big = 16, 1, 0, False
    if layout == "ouster48":
        fields = [*fields[:3], ("intensity", 16, "f4"), ("t", 20, "u4"), ("ring", 24, "u2")]
        values.update(t=np.arange(len(pts)), ring=np.arange(len(pts)) % 128)
        step = 48
    elif layout == "big_endian":
        big = True
    elif layout == "no_intensity":
        fields, step = fields[:3], 12
        del values["intensity"]
    elif layout == "float64_x":
        fields = [("x", 0, "f8"), ("y", 8, "f4"), ("z", 12, "f4"), ("intensity", 16, "f4")]
        step = 24
    elif layout == "two_rows_padded":
        height, pad = 2, 8
    msg = make_cloud(ROS2, fields, values, point_step=step, height=height, row_pad=pad,
                     big_endian=big)
    got = points_from_pointcloud2(msg, "t")
    want = _points_reference(msg)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
    assert len(got) < len(pts) and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


def test_pointcloud_round_trip() -> None:
    scan = LidarScan(42, RNG.normal(size=(50, 4)).astype(np.float32), frame_id="velo")
    msg = pointcloud2_to_msg(scan, ROS2)
    assert msg.point_step == 16 and msg.width == 50 and msg.header.frame_id == "velo"
    np.testing.assert_array_equal(points_from_pointcloud2(msg, "t"), scan.points)
    assert stamp_ns_of(msg) == 42


def test_image_round_trips() -> None:
    frame = CameraFrame(1_000_000_007, RGB, frame_id="cam2")
    msg = image_to_msg(frame, ROS2)
    assert (msg.encoding, msg.step, stamp_ns_of(msg)) == ("rgb8", 21, 1_000_000_007)
    np.testing.assert_array_equal(image_from_msg(msg, "t"), RGB)
    png = compressed_image_to_msg(frame, ROS2, fmt="png")
    np.testing.assert_array_equal(image_from_msg(png, "t"), RGB)


# --------------------------------------------------------------------------- calibration


def _camera_info(ts: Typestore, K: list[float], R: list[float], P: list[float]) -> Any:
    upper = ts is ROS1
    names = ("D", "K", "R", "P") if upper else ("d", "k", "r", "p")
    values = ([0.1, -0.2, 0.001, 0.002, 0.05], K, R, P)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    kwargs = {n: np.array(v, dtype=np.float64) for n, v in zip(names, values, strict=True)}
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=make_header(ts, frame="cam_optical"), height=375, width=1242,
        distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi, **kwargs,
    )


K9 = [700.0, 0.0, 600.0, 0.0, 710.0, 180.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("ts", [ROS1, ROS2], ids=["ros1", "ros2"])
def test_camera_info_both_spellings(ts: Typestore) -> None:
    R = [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    P = [690.0, 0.0, 610.0, 45.0, 0.0, 690.0, 170.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    cam = camera_model_from_camera_info(_camera_info(ts, K9, R, P), "t")
    assert (cam.width, cam.height, cam.frame_id) == (1242, 375, "cam_optical")
    assert cam.image_rectified is False and cam.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(cam.K.ravel(), K9)
    np.testing.assert_array_equal(cam.R.ravel(), R)
    assert cam.P is not None
    np.testing.assert_array_equal(cam.P.ravel(), P)
    np.testing.assert_array_equal(cam.D, [0.1, -0.2, 0.001, 0.002, 0.05])


def test_camera_info_zero_r_and_p() -> None:
    cam = camera_model_from_camera_info(
        _camera_info(ROS2, K9, [0.0] * 9, [0.0] * 12), "t", image_rectified=True
    )
    np.testing.assert_array_equal(cam.R, np.eye(3))
    np.testing.assert_array_equal(cam.P, np.hstack([np.reshape(K9, (3, 3)), np.zeros((3, 1))]))
    assert cam.image_rectified is True


def test_camera_info_uncalibrated_is_refused() -> None:
    msg = _camera_info(ROS2, [0.0] * 9, [0.0] * 9, [0.0] * 12)
    with pytest.raises(RecordingError, match="bag:/info: CameraInfo has an all-zero K"):
        camera_model_from_camera_info(msg, "bag:/info")


def test_camera_info_round_trip() -> None:
    P = np.array([[690.0, 0, 610, 45], [0, 690, 170, 0], [0, 0, 1, 0]])
    cam = CameraModel(1242, 375, np.reshape(K9, (3, 3)), P=P, distortion_model="none",
                      frame_id="cam0")
    msg = camera_info_to_msg(cam, 77, ROS2)
    assert msg.distortion_model == "plumb_bob" and stamp_ns_of(msg) == 77
    back = camera_model_from_camera_info(msg, "t")
    np.testing.assert_array_equal(back.K, cam.K)
    np.testing.assert_array_equal(back.P, cam.P)
    assert back.frame_id == "cam0" and not back.has_distortion
    fisheye = CameraModel(1242, 375, np.reshape(K9, (3, 3)), D=np.array([-0.05, 0.01, 0, 0]),
                          distortion_model="equidistant", image_rectified=False)
    back = camera_model_from_camera_info(camera_info_to_msg(fisheye, 5, ROS2), "t")
    assert back.distortion_model == "equidistant" and back.has_distortion
    np.testing.assert_array_equal(back.D, fisheye.D)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    R, _ = cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * angle)
    return np.asarray(R)


@pytest.mark.parametrize(
    ("axis", "angle"),
    [([1, 0, 0], 0.0), ([0, 0, 1], np.pi), ([1, 0, 0], np.pi), ([0, 1, 0], np.pi),
     ([1, 2, 3], 2.5), ([-3, 1, 0.5], 0.7), ([1, 1, 0], np.pi)],
)
def test_tf_round_trip(axis: list[float], angle: float) -> None:
    R = _rotation(np.array(axis), angle)
    x, y, z, w = quaternion_from_matrix(R)
    assert w >= 0 and abs(np.linalg.norm([x, y, z, w]) - 1) < 1e-12
    T = RigidTransform.from_rt(R, [0.5, -1.0, 2.0], "velodyne", "cam0")
    msg = tf_static_msg(T, 5_000_000_001, ROS2)
    (stamped,) = msg.transforms
    assert (stamped.header.frame_id, stamped.child_frame_id) == ("cam0", "velodyne")
    assert stamp_ns_of(stamped) == 5_000_000_001
    back = transform_from_tf(stamped, "t")
    assert (back.source_frame, back.target_frame) == ("velodyne", "cam0")
    np.testing.assert_allclose(back.matrix, T.matrix, atol=1e-12)


def test_tf_zero_quaternion_is_refused() -> None:
    msg = tf_static_msg(RigidTransform(np.eye(4), "a", "b"), 0, ROS2)
    q = msg.transforms[0].transform.rotation
    q.x = q.y = q.z = q.w = 0.0
    with pytest.raises(RecordingError, match="zero or invalid quaternion"):
        transform_from_tf(msg.transforms[0], "t")


def test_image_transport_png_of_bayer_and_16bit_cameras() -> None:
    """image_transport's compressed plugin keeps a Bayer mosaic as a one-channel PNG
    ('bayer_rggb8; png compressed '): it came out as a grey checkerboard, not demosaiced.
    A 16-bit camera's PNG was refused though its raw images are read; a depth camera's
    plain-compressed PNG is refused as depth."""
    colour = np.array([200, 100, 50], np.uint8)
    mosaic = np.zeros((6, 8), np.uint8)
    for k, ch in enumerate("rggb"):
        mosaic[k // 2::2, k % 2::2] = colour["rgb".index(ch)]

    def compressed(pixels: np.ndarray, fmt: str) -> Any:
        ok, buf = cv2.imencode(".png", pixels)
        assert ok
        return ROS2.types["sensor_msgs/msg/CompressedImage"](
            header=make_header(ROS2), format=fmt, data=buf.reshape(-1))

    raw = image_from_msg(make_image(ROS2, mosaic[:, :, None], "bayer_rggb8"), "t")
    out = image_from_msg(compressed(mosaic, "bayer_rggb8; png compressed "), "t")
    np.testing.assert_array_equal(out, raw)
    np.testing.assert_array_equal(out[2:4, 2:6], np.broadcast_to(colour, (2, 4, 3)))
    wide = RGB.astype(np.uint16) * 257
    grey = image_from_msg(compressed(wide[:, :, 1], "mono16; png compressed "), "t")
    np.testing.assert_array_equal(grey, np.repeat(RGB[:, :, 1:2], 3, axis=2))
    colour16 = image_from_msg(compressed(wide[:, :, ::-1], "rgb16; png compressed bgr16"), "t")
    np.testing.assert_array_equal(colour16, RGB)
    demosaiced = cv2.cvtColor(raw, cv2.COLOR_RGB2BGR)  # a plugin that demosaics first
    out = image_from_msg(compressed(demosaiced, "bayer_rggb8; png compressed bgr8"), "t")
    np.testing.assert_array_equal(out, raw)
    with pytest.raises(RecordingError, match=r"'16UC1; png compressed ' is of a 16uc1 image "
                                             r"\(a depth or single-value image\)"):
        image_from_msg(compressed(wide[:, :, 0], "16UC1; png compressed "), "bag:/depth")
    with pytest.raises(RecordingError, match=r"expected an 8-bit camera image, got dtype "
                                             r"uint16"):  # no encoding named: depth or label
        image_from_msg(compressed(wide[:, :, 0], "png"), "bag:/x")


def _windowed_info(roi: tuple[int, int, int, int], binning: int) -> Any:
    """A full-resolution CameraInfo of a camera read out through ``roi`` (x, y, w, h) and
    binned ``binning`` x ``binning``, as ROI-capable drivers (spinnaker, ueye) publish it."""
    msg = _camera_info(ROS2, K9, np.eye(3).ravel().tolist(),
                       [690.0, 0.0, 610.0, 45.0, 0.0, 690.0, 170.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    msg.roi = ROS2.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3], do_rectify=False)
    msg.binning_x = msg.binning_y = binning
    return msg


@pytest.mark.parametrize(("roi", "binning"), [((300, 100, 600, 200), 1),
                                              ((0, 0, 0, 0), 2), ((300, 100, 600, 200), 2)])
def test_camera_info_roi_and_binning_give_the_published_images_camera(
    roi: tuple[int, int, int, int], binning: int
) -> None:
    """A CameraInfo keeps the full-resolution calibration and says by ``roi`` and
    ``binning`` which pixels the images hold: both were ignored, so the camera was the
    full 1242 x 375 one and the fusion node stretched it over the 600 x 200 crop, putting
    the lidar points 100-400 px away from where they belong."""
    full = camera_model_from_camera_info(_windowed_info((0, 0, 0, 0), 0), "t")
    cam = camera_model_from_camera_info(_windowed_info(roi, binning), "t")
    x0, y0, w, h = roi if roi[2] else (0, 0, 1242, 375)
    assert cam.image_size == (w // binning, h // binning)
    rng = np.random.default_rng(3)
    pts = np.column_stack([rng.uniform(-5, 5, 50), rng.uniform(-1, 1, 50), rng.uniform(5, 40, 50)])
    np.testing.assert_array_equal(cam.D, full.D)  # raw pixels (K, D), rectified ones (P)
    raw_full, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), full.K, full.D)
    raw_cam, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), cam.K, cam.D)
    want = (raw_full[:, 0] - [x0, y0] + 0.5) / binning - 0.5  # pixel centres at integers
    np.testing.assert_allclose(raw_cam[:, 0], want, atol=1e-9)
    rect = np.column_stack([pts, np.ones(50)])
    uvw_full, uvw_cam = rect @ full.projection_matrix().T, rect @ cam.projection_matrix().T
    want = (uvw_full[:, :2] / uvw_full[:, 2:] - [x0, y0] + 0.5) / binning - 0.5
    np.testing.assert_allclose(uvw_cam[:, :2] / uvw_cam[:, 2:], want, atol=1e-9)


def test_camera_info_roi_outside_the_image_is_refused() -> None:
    with pytest.raises(RecordingError, match=r"bag:/cam/camera_info: bad CameraInfo: window "
                                             r"600x200\+700\+100 binned 1x1 does not fit the "
                                             r"calibrated 1242x375 image"):
        camera_model_from_camera_info(_windowed_info((700, 100, 600, 200), 1),
                                      "bag:/cam/camera_info")
