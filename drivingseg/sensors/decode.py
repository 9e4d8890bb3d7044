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

import cv2
import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError

__all__ = ["decode_image", "read_image_rgb", "read_velodyne_bin"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length field: TEM and the restart markers RST0..RST7."""


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


def decode_image(
    data: bytes, source: str | PathLike[str], *, grayscale_ok: bool = True
) -> npt.NDArray[np.uint8]:
    """Decode PNG or JPEG bytes to an RGB uint8 HxWx3 array.

    Grey images are expanded to three channels; 16-bit images are refused (they are
    depth or label images, not camera frames).
    """
    if data.startswith(_PNG_SIGNATURE):
        _check_png_complete(data, source)
    elif data.startswith(_JPEG_SOI):
        _check_jpeg_complete(data, source)
    else:
        raise RecordingError(
            f"not a PNG or JPEG image (starts with {data[:8]!r})", path=source
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RecordingError("corrupt image: OpenCV could not decode it", path=source)
    if img.dtype != np.uint8:
        raise RecordingError(
            f"expected an 8-bit camera image, got dtype {img.dtype}", path=source
        )
    if img.ndim == 2:
        if not grayscale_ok:
            raise RecordingError("expected a colour image, got a grey one", path=source)
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
    if img.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def read_image_rgb(path: str | PathLike[str]) -> npt.NDArray[np.uint8]:
    """Read a PNG or JPEG file as RGB uint8 HxWx3; errors name the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"cannot read image: {exc.strerror}", path=p) from exc
    return decode_image(data, p)


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
