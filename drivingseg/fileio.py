"""Atomic file writes: a failure, or a kill, never leaves half a file behind.

Every output the package finalises in one go (calibration files, images, depth PNGs,
checkpoints) is written to a temporary file in the target folder, flushed to disk and
moved into place with ``os.replace``. An ``OSError`` becomes the caller's
:class:`DrivingsegError` subclass naming the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from drivingseg.errors import DrivingsegError

__all__ = ["write_atomic", "write_bytes_atomic", "write_text_atomic"]


def write_atomic(
    path: str | PathLike[str],
    write: Callable[[Path], object],
    *,
    error: type[DrivingsegError],
    what: str,
) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path``; folders are created.

    ``what`` names the file kind in the error (``"cannot write {what}: ..."``).
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise error(f"cannot write {what}: {exc.strerror or exc}", path=target) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_bytes_atomic(
    path: str | PathLike[str], data: bytes, *, error: type[DrivingsegError], what: str
) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_atomic(path, lambda p: p.write_bytes(data), error=error, what=what)


def write_text_atomic(
    path: str | PathLike[str], text: str, *, error: type[DrivingsegError], what: str
) -> None:
    """Write UTF-8 ``text`` (with ``\\n`` line ends) to ``path`` atomically."""
    write_atomic(
        path,
        lambda p: p.write_text(text, encoding="utf-8", newline="\n"),
        error=error,
        what=what,
    )
