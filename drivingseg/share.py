"""Where the package's data folders are: ``launch/`` and ``calibration/``.

They live at the top of the repository, beside ``drivingseg/``, as a ROS package keeps
them. A source checkout or an editable install (``pip install -e .``, as
``scripts/setup.sh`` does) reads them there. A built wheel (``pip install .`` or from an
index) installs them, as ROS's ament does, under ``<prefix>/share/drivingseg/``
(``[tool.setuptools.data-files]`` in ``pyproject.toml``), where ``<prefix>`` is the
environment's data directory (``sysconfig``'s ``data`` path, or the user scheme's for
``pip install --user``).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

__all__ = ["SHARED_FOLDERS", "share_dir", "share_dir_candidates"]

SHARED_FOLDERS = ("launch", "calibration")
"""The data folders a wheel installs under ``<prefix>/share/drivingseg/``."""

_CHECKOUT = Path(__file__).resolve().parents[1]
"""The folder holding ``drivingseg/``: a repository checkout (it has ``pyproject.toml``), or
site-packages, whose ``launch/`` would be another package's (ROS 2's ``launch``)."""


def share_dir_candidates(name: str) -> list[Path]:
    """Where the data folder ``name`` may be, in the order looked: beside the package
    (a checkout), then each installation scheme's ``share/drivingseg/``."""
    if name not in SHARED_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; valid: {', '.join(SHARED_FOLDERS)}")
    out = [_CHECKOUT / name] if (_CHECKOUT / "pyproject.toml").is_file() else []
    schemes = [sysconfig.get_default_scheme(), f"{os.name}_user"]
    for scheme in schemes:
        try:
            data = sysconfig.get_path("data", scheme)
        except KeyError:  # a scheme this platform lacks
            continue
        out.append(Path(data) / "share" / "drivingseg" / name)
    out.append(Path(sys.prefix) / "share" / "drivingseg" / name)
    return list(dict.fromkeys(out))


def share_dir(name: str) -> Path:
    """The first existing candidate folder for ``name`` (``launch`` or ``calibration``);
    the first candidate when none exists, so a "not found" error names where it looked."""
    candidates = share_dir_candidates(name)
    return next((p for p in candidates if p.is_dir()), candidates[0])
