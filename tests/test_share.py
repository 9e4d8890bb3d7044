"""Where the launch files and rig calibrations are found: a checkout, or a wheel's
``<prefix>/share/drivingseg/`` (a wheel used to install neither, so ``drivingseg demo``
and ``replay`` failed with 'launch file not found')."""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import pytest

import drivingseg.share as share
from drivingseg.node.launch import LAUNCH_DIR
from drivingseg.sensors.synthetic import default_rig_path

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_reads_its_own_folders() -> None:
    assert share.share_dir("launch") == REPO / "launch" == LAUNCH_DIR
    assert default_rig_path() == REPO / "calibration" / "synthetic.yaml"
    with pytest.raises(ValueError, match=r"unknown data folder 'configs'; valid: launch, "):
        share.share_dir("configs")


def test_an_installed_wheel_reads_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In site-packages (no pyproject.toml beside the package) a ``launch/`` there is
    another package's (ROS 2's launch), so the installed share folder is used."""
    site = tmp_path / "site-packages"
    (site / "launch").mkdir(parents=True)  # ROS 2's launch Python package
    data = tmp_path / "venv"
    (data / "share" / "drivingseg" / "launch").mkdir(parents=True)
    monkeypatch.setattr(share, "_CHECKOUT", site)
    real_get_path = sysconfig.get_path

    def get_path(name: str, scheme: str | None = None) -> str:
        return str(data) if name == "data" else real_get_path(name, scheme)

    monkeypatch.setattr(sysconfig, "get_path", get_path)
    assert share.share_dir("launch") == data / "share" / "drivingseg" / "launch"
    assert share.share_dir_candidates("calibration")[0] == (
        data / "share" / "drivingseg" / "calibration")
    # Nothing installed: the first place looked is named (the launch error shows it).
    assert share.share_dir("calibration") == data / "share" / "drivingseg" / "calibration"


def test_the_wheel_installs_every_launch_file_and_rig() -> None:
    """pyproject's data-files cover every file the package looks for in those folders."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    data_files = config["tool"]["setuptools"]["data-files"]
    for name in share.SHARED_FOLDERS:
        patterns = data_files[f"share/drivingseg/{name}"]
        installed = {Path(p).name for pattern in patterns
                     for p in glob.glob(str(REPO / pattern))}
        assert installed == {p.name for p in (REPO / name).glob("*.yaml")}
        assert installed  # the folders are not empty
