"""Run package code on a file whose name is not UTF-8, in a subprocess.

OpenCV's path functions crash the process on such names (Python holds the byte as a
surrogate), so a test that calls them in-process would take the whole run down with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def write_latin1_named(folder: Path, name: bytes, data: bytes) -> bytes:
    """Write ``data`` to ``folder/name`` (``name`` holding a byte that is not UTF-8); the
    path as bytes."""
    path = os.fsencode(folder) + b"/" + name
    with open(path, "wb") as f:
        f.write(data)
    return path


def run_on(code: str, path: bytes) -> str:
    """Run ``code`` (it reads the path as ``os.fsdecode(sys.argv[1])``) in a fresh
    interpreter; its stdout, after checking it exited 0."""
    done = subprocess.run([os.fsencode(sys.executable), b"-c", code.encode(), path],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode().strip()
