"""Atomic text writes for calibration files: a failure never leaves half a file behind."""

from __future__ import annotations

import os
import tempfile
from os import PathLike
from pathlib import Path

from drivingseg.errors import CalibrationError

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder + ``os.replace``.

    The folder is created when missing. An ``OSError`` becomes a :class:`CalibrationError`
    naming ``path``; the temporary file is removed either way.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        message = f"cannot write calibration file: {exc.strerror or exc}"
        raise CalibrationError(message, path=target) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except OSError as exc:
        message = f"cannot write calibration file: {exc.strerror or exc}"
        raise CalibrationError(message, path=target) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
