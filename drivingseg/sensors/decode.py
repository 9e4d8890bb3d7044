"""Decoding of image and point files, with errors that name the file.

OpenCV decodes a truncated PNG silently into a partly black image, so PNG data is
checked for its signature and its closing ``IEND`` chunk before decoding.
"""

from __future__ import annotations

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


def decode_image(
    data: bytes, source: str | PathLike[str], *, grayscale_ok: bool = True
) -> npt.NDArray[np.uint8]:
    """Decode PNG or JPEG bytes to an RGB uint8 HxWx3 array.

    Grey images are expanded to three channels; 16-bit images are refused (they are
    depth or label images, not camera frames).
    """
    if data.startswith(_PNG_SIGNATURE):
        if not data.rstrip(b"\x00").endswith(_PNG_IEND):
            raise RecordingError("truncated PNG (no IEND chunk at the end)", path=source)
    elif data.startswith(_JPEG_SOI):
        if _JPEG_EOI not in data[-64:]:
            raise RecordingError("truncated JPEG (no end-of-image marker)", path=source)
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
