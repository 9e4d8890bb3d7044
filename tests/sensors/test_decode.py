"""drivingseg.sensors.decode: images and velodyne scans, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from drivingseg.errors import RecordingError
from drivingseg.sensors.decode import decode_image, read_image_rgb, read_velodyne_bin

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)


def _imread_rgb(path: Path) -> np.ndarray:
    """The reference decoding: OpenCV's own reader, BGR turned to RGB."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return bgr[:, :, ::-1]


def _encode(ext: str, img: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def test_real_png_is_rgb(kitti_raw_drive: Path) -> None:
    png = kitti_raw_drive / "image_02" / "data" / "0000000000.png"
    img = read_image_rgb(png)
    assert img.shape == (375, 1242, 3)
    assert img.dtype == np.uint8
    assert img.flags.c_contiguous
    np.testing.assert_array_equal(img, _imread_rgb(png))


def test_png_colour_grey_and_alpha() -> None:
    np.testing.assert_array_equal(decode_image(_encode(".png", BGR), "x.png"), BGR[:, :, ::-1])
    grey = BGR[:, :, 0]
    out = decode_image(_encode(".png", grey), "g.png")
    assert out.shape == (7, 9, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)
    bgra = np.dstack([BGR, np.full((7, 9), 128, np.uint8)])
    np.testing.assert_array_equal(decode_image(_encode(".png", bgra), "a.png"), BGR[:, :, ::-1])
    with pytest.raises(RecordingError, match=r"g\.png: expected a colour image, got a grey one"):
        decode_image(_encode(".png", grey), "g.png", grayscale_ok=False)


def test_png_padded_with_zeros_still_decodes() -> None:
    data = _encode(".png", BGR) + b"\x00" * 16
    np.testing.assert_array_equal(decode_image(data, "pad.png"), BGR[:, :, ::-1])


@pytest.mark.parametrize("tail", [b"\r\n", b"\n", b"\x00" * 100, b"\x00" * 3 + b"junk"])
def test_png_and_jpeg_with_trailing_bytes_decode(tail: bytes) -> None:
    png = _encode(".png", BGR)
    np.testing.assert_array_equal(decode_image(png + tail, "pad.png"), BGR[:, :, ::-1])
    jpg = _encode(".jpg", BGR, [cv2.IMWRITE_JPEG_QUALITY, 95])
    reference = decode_image(jpg, "x.jpg")
    np.testing.assert_array_equal(decode_image(jpg + tail, "pad.jpg"), reference)


@pytest.mark.parametrize("tail", [b"", b"\r\n", b"\x00" * 100])
def test_cut_png_and_jpeg_are_refused_whatever_follows(tail: bytes) -> None:
    png = _encode(".png", BGR)
    for cut in (png[:-12], png[:-13], png[: len(png) // 2], png[:40]):
        with pytest.raises(RecordingError, match=r"cut\.png: truncated PNG"):
            decode_image(cut + tail, "cut.png")
    big = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    jpg = _encode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    for cut in (jpg[:-2], jpg[: len(jpg) // 2], jpg[:100]):
        with pytest.raises(RecordingError, match=r"cut\.jpg: truncated JPEG"):
            decode_image(cut + tail, "cut.jpg")


def test_jpeg_end_marker_inside_a_header_segment_is_not_the_end() -> None:
    jpg = _encode(".jpg", RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8))
    # an APP1 segment (like an EXIF thumbnail) holding its own end-of-image marker
    payload = b"Exif\x00\x00\xff\xd8thumbnail\xff\xd9"
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    with_app1 = jpg[:2] + app1 + jpg[2:]
    assert decode_image(with_app1, "e.jpg").shape == (32, 32, 3)
    with pytest.raises(RecordingError, match=r"e\.jpg: truncated JPEG"):
        decode_image(with_app1[: len(with_app1) - 200], "e.jpg")


def test_sixteen_bit_png_is_refused() -> None:
    depth = np.arange(63, dtype=np.uint16).reshape(7, 9) * 1000
    with pytest.raises(RecordingError, match=r"d\.png: expected an 8-bit camera image, got dtype"):
        decode_image(_encode(".png", depth), "d.png")


def test_jpeg_and_truncated_jpeg() -> None:
    flat = np.empty((16, 24, 3), np.uint8)
    flat[:] = (30, 120, 220)  # BGR: distinct channels show the order after decoding
    data = _encode(".jpg", flat, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = decode_image(data, "x.jpg")
    assert out.shape == (16, 24, 3)
    assert np.abs(out.astype(int) - [220, 120, 30]).max() <= 3
    with pytest.raises(RecordingError, match=r"x\.jpg: truncated JPEG"):
        decode_image(data[: len(data) // 2], "x.jpg")


def test_truncated_and_corrupt_png(tmp_path: Path) -> None:
    f = tmp_path / "frame.png"
    data = _encode(".png", BGR)
    f.write_bytes(data[:-30])
    with pytest.raises(RecordingError, match=r"frame\.png: truncated PNG") as info:
        read_image_rgb(f)
    assert info.value.path == str(f)
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"IEND\xaeB`\x82")
    with pytest.raises(RecordingError, match=r"frame\.png: corrupt image"):
        read_image_rgb(f)
    # A flipped byte in the image data (CRC mismatch) must not decode silently.
    broken = bytearray(data)
    broken[len(broken) // 2] ^= 0xFF
    f.write_bytes(bytes(broken))
    with pytest.raises(RecordingError, match=r"frame\.png: corrupt image"):
        read_image_rgb(f)


def test_not_an_image_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.png"
    f.write_bytes(b"hello world")
    with pytest.raises(RecordingError, match=r"notes\.png: not a PNG or JPEG image .*b'hello wo'"):
        read_image_rgb(f)
    f.write_bytes(b"")
    with pytest.raises(RecordingError, match=r"notes\.png: not a PNG or JPEG image"):
        read_image_rgb(f)
    with pytest.raises(RecordingError, match=r"absent\.png: cannot read image"):
        read_image_rgb(tmp_path / "absent.png")


def test_real_velodyne_scan(kitti_raw_drive: Path) -> None:
    binf = kitti_raw_drive / "velodyne_points" / "data" / "0000000000.bin"
    pts = read_velodyne_bin(binf)
    assert pts.dtype == np.float32
    assert pts.shape == (binf.stat().st_size // 16, 4)
    np.testing.assert_array_equal(pts, np.fromfile(binf, np.float32).reshape(-1, 4))
    assert pts.flags.writeable


def test_velodyne_sizes(tmp_path: Path) -> None:
    f = tmp_path / "scan.bin"
    f.write_bytes(b"")
    assert read_velodyne_bin(f).shape == (0, 4)
    f.write_bytes(b"\x00" * 40)
    with pytest.raises(RecordingError, match=r"scan\.bin: size 40 bytes is not a multiple of 16"):
        read_velodyne_bin(f)
    with pytest.raises(RecordingError, match=r"gone\.bin: cannot read scan"):
        read_velodyne_bin(tmp_path / "gone.bin")
