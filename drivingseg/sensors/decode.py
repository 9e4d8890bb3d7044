"""Decoding of image and point files, with errors that name the file.

OpenCV decodes a truncated PNG or JPEG silently into a partly black (or grey) image, so
the file structure is walked before decoding: a PNG's chunks up to ``IEND``, a JPEG's
header segments up to the scan and then its end-of-image marker. Bytes after the end
(zero padding, a line break) are ignored, as OpenCV ignores them.
"""

from __future__ import annotations

import struct
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError

__all__ = ["BAYER_TO_RGB", "YUV422_TO_RGB", "decode_compressed", "decode_image", "decode_stored",
           "read_image_rgb", "read_image_unchanged", "read_velodyne_bin", "scale_to_8bit",
           "stored_to_rgb"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length field: TEM and the restart markers RST0..RST7."""

BAYER_TO_RGB = {
    "bayer_rggb": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg": cv2.COLOR_BayerGB2RGB,
}
"""ROS Bayer patterns -> OpenCV demosaicing codes (OpenCV names the pattern one pixel
further in, as cv_bridge maps them: rggb -> BayerBG)."""

YUV422_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
"""ROS 4:2:2 encodings (two bytes a pixel, two pixels share a chroma pair; usb_cam's)
-> OpenCV codes, as cv_bridge maps them: ``yuv422`` is UYVY, ``yuv422_yuy2`` YUYV."""


def _check_png_complete(data: bytes, source: str | PathLike[str]) -> None:
    """Walk the chunks after the signature up to ``IEND``; raise if the data ends first."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if not ctype.isalpha():
            if data.find(_PNG_IEND, pos) < 0:
                break  # padding or junk where the next chunk should be, and no end: cut
            message = f"corrupt image: PNG chunk at byte {pos} has type {ctype!r}"
            raise RecordingError(message, path=source)
        end = pos + 12 + length
        if end > len(data) and data.rfind(_PNG_IEND) > pos:  # ends whole: a damaged length
            message = (f"corrupt image: PNG chunk {ctype!r} at byte {pos} claims {length} "
                       f"bytes, past the end of the {len(data)}-byte data")
            raise RecordingError(message, path=source)
        if end > len(data):
            message = (
                f"truncated PNG (chunk {ctype.decode()!r} at byte {pos} needs {end} bytes, "
                f"the data has {len(data)}; no IEND chunk)"
            )
            raise RecordingError(message, path=source)
        if ctype == b"IEND":
            return
        pos = end
    raise RecordingError(f"truncated PNG (no IEND chunk in {len(data)} bytes)", path=source)


def _check_jpeg_complete(data: bytes, source: str | PathLike[str]) -> None:
    """Walk the header segments up to the first scan; raise if no end-of-image follows it.

    Entropy-coded data never holds ``FF D9`` (a 0xFF data byte is stuffed as ``FF 00``),
    so the first end-of-image marker after the scan header ends the image; walking the
    headers skips any ``FF D9`` inside them (an EXIF thumbnail's, a table's bytes).
    """
    pos = len(_JPEG_SOI)
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            if data.find(_JPEG_EOI, pos) < 0:
                break  # padding or junk where the next marker should be, and no end: cut
            message = f"corrupt image: JPEG has byte {data[pos]:#04x} at {pos}, not a marker"
            raise RecordingError(message, path=source)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == _JPEG_EOI[1]:  # an image without a scan: OpenCV refuses it
            return
        if pos + 4 > len(data):
            break
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            break
        if marker == _JPEG_SOS:
            if data.find(_JPEG_EOI, end) < 0:
                message = f"truncated JPEG (no end-of-image marker in {len(data)} bytes)"
                raise RecordingError(message, path=source)
            return
        pos = end
    message = f"truncated JPEG (cut inside its header: no complete scan in {len(data)} bytes)"
    raise RecordingError(message, path=source)


def scale_to_8bit(values: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    """16-bit samples scaled to 8 bits, rounded (255 / 65535, cv_bridge's factor)."""
    scaled = (values.astype(np.uint32) * 255 + 32767) // 65535
    return scaled.astype(np.uint8)


def _decode_unchanged(data: bytes, source: str | PathLike[str]) -> npt.NDArray[Any]:
    """PNG or JPEG bytes, checked whole, as OpenCV decodes them (BGR order, any depth)."""
    if data.startswith(_PNG_SIGNATURE):
        _check_png_complete(data, source)
    elif data.startswith(_JPEG_SOI):
        _check_jpeg_complete(data, source)
    else:
        raise RecordingError(
            f"not a PNG or JPEG image (starts with {data[:8]!r})", path=source
        )
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RecordingError("corrupt image: OpenCV could not decode it", path=source)
    return np.asarray(img)


def decode_compressed(data: bytes, encoding: str,
                      source: str | PathLike[str]) -> npt.NDArray[np.uint8]:
    """A ``CompressedImage`` payload as RGB uint8 HxWx3, given the ``encoding`` of its
    pixels as image_transport's format names it (``bayer_rggb8`` of ``bayer_rggb8; png
    compressed``, ``bgr16`` of ``rgb16; png compressed bgr16``; '' when it names none): a
    Bayer mosaic (PNG keeps it as one grey channel) is demosaiced and a 16-bit image
    scaled as cv_bridge does.
    """
    if not encoding.startswith("bayer_") and not encoding.endswith("16"):
        return decode_image(data, source)
    img = _decode_unchanged(data, source)
    if img.dtype == np.uint16:
        img = scale_to_8bit(img)
    if img.dtype != np.uint8:
        message = f"expected an 8 or 16-bit {encoding} image, got dtype {img.dtype}"
        raise RecordingError(message, path=source)
    if encoding.startswith("bayer_"):
        if img.ndim != 2 or encoding[:10] not in BAYER_TO_RGB:
            message = (f"expected a one-channel {encoding} mosaic, got "
                       f"{img.shape[2] if img.ndim == 3 else 1} channels")
            raise RecordingError(message, path=source)
        return np.ascontiguousarray(cv2.cvtColor(img, BAYER_TO_RGB[encoding[:10]]))
    return stored_to_rgb(img, source, grayscale_ok=True)


def decode_image(
    data: bytes, source: str | PathLike[str], *, grayscale_ok: bool = True
) -> npt.NDArray[np.uint8]:
    """Decode PNG or JPEG bytes to an RGB uint8 HxWx3 array.

    Grey images are expanded to three channels; 16-bit images are refused (they are
    depth or label images, not camera frames).
    """
    return stored_to_rgb(decode_stored(data, source), source, grayscale_ok=grayscale_ok)


def decode_stored(data: bytes, source: str | PathLike[str]) -> npt.NDArray[np.uint8]:
    """PNG or JPEG bytes, checked whole, as 8-bit pixels in the channels stored (grey, BGR
    or BGRA): what :func:`decode_image` turns into RGB, for a reader that needs the stored
    channels as well (a label image) without decoding the file twice."""
    img = _decode_unchanged(data, source)
    if img.dtype != np.uint8:
        raise RecordingError(
            f"expected an 8-bit camera image, got dtype {img.dtype}", path=source
        )
    return np.asarray(img, dtype=np.uint8)


def stored_to_rgb(img: npt.NDArray[np.uint8], source: str | PathLike[str], *,
            grayscale_ok: bool) -> npt.NDArray[np.uint8]:
    """OpenCV's grey, BGR or BGRA pixels as RGB."""
    if img.ndim == 2:
        if not grayscale_ok:
            raise RecordingError("expected a colour image, got a grey one", path=source)
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
    if img.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def _image_bytes(path: str | PathLike[str]) -> tuple[bytes, Path]:
    """An image file's bytes, read by Python (``cv2.imread`` crashes the process on a file
    name that is not UTF-8); errors name the file."""
    p = Path(path)
    try:
        return p.read_bytes(), p
    except OSError as exc:
        raise RecordingError(f"cannot read image: {exc.strerror}", path=p) from exc


def read_image_rgb(path: str | PathLike[str]) -> npt.NDArray[np.uint8]:
    """Read a PNG or JPEG file as RGB uint8 HxWx3; errors name the file."""
    return decode_image(*_image_bytes(path))


def read_image_unchanged(path: str | PathLike[str]) -> npt.NDArray[Any]:
    """Read a PNG or JPEG file as OpenCV decodes it (BGR order, any depth); errors name it."""
    return _decode_unchanged(*_image_bytes(path))


def read_velodyne_bin(path: str | PathLike[str]) -> npt.NDArray[np.float32]:
    """Read a KITTI velodyne ``.bin`` (float32 x, y, z, intensity) as Nx4 float32."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"cannot read scan: {exc.strerror}", path=p) from exc
    if len(data) % 16:
        raise RecordingError(
            f"size {len(data)} bytes is not a multiple of 16 (4 float32 per point); "
            "the file is truncated or not a KITTI velodyne scan",
            path=p,
        )
    return np.frombuffer(data, dtype="<f4").reshape(-1, 4).copy()
