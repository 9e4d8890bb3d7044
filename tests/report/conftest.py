"""Fixtures of the report tests: a tiny synthetic drive, a crashing task module, Ray."""

from __future__ import annotations

import argparse
import os
import shutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CRASH_MODULE = '''
"""Task functions that kill their worker process (for the crash tests); no torch import."""
import os


def square_or_die(x):
    if x == 3:
        os._exit(3)
    return x * x


def raise_on_two(x):
    if x == 2:
        raise ValueError("two is not allowed")
    return x * x


def tell_and_sleep(path):
    """Write this worker's pid to ``path``, then work for a minute."""
    import time

    with open(path + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)
    return path


def chunk_or_die(task):
    if task.frames[0].index == 2:
        os._exit(3)
    from drivingseg.report.worker import run_chunk

    return run_chunk(task)
'''


@pytest.fixture(scope="session")
def synthetic_drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-frame synthetic drive (labels, lidar, calibration) on disk."""
    from drivingseg.sensors.synthetic.writer import write_synthetic_drive

    return write_synthetic_drive(tmp_path_factory.mktemp("synth"), frames=2, seed=0)


@pytest.fixture
def two_drives(tmp_path: Path, synthetic_drive: Path) -> Path:
    """A date folder holding two 2-frame drives (both start at frame 0000000000)."""
    date = tmp_path / synthetic_drive.parent.name
    date.mkdir()
    for calib in synthetic_drive.parent.glob("calib_*.txt"):
        shutil.copy(calib, date)
    for n in (1, 2):
        shutil.copytree(synthetic_drive, date / f"{date.name}_drive_000{n}_sync")
    return date


@pytest.fixture(scope="session")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``report_crashy.py`` (task functions that kill their worker)."""
    folder = tmp_path_factory.mktemp("crashy")
    (folder / "report_crashy.py").write_text(CRASH_MODULE)
    return folder


@pytest.fixture
def crashy(crash_dir: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The crash module, importable here and (via PYTHONPATH) in spawned workers."""
    path = os.pathsep.join(p for p in (str(crash_dir), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(crash_dir))
    import report_crashy

    return report_crashy


@pytest.fixture(scope="session")
def ray_local(crash_dir: Path) -> Iterator[Any]:
    """A local Ray instance with 2 CPUs whose workers can import the crash module."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        path = os.pathsep.join(p for p in (str(crash_dir), os.environ.get("PYTHONPATH")) if p)
        mp.setenv("PYTHONPATH", path)
        mp.syspath_prepend(str(crash_dir))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()


def _run_report(argv: list[str]) -> int:
    """``drivingseg report ARGV`` through cmd_report's own parser (main.py registers it)."""
    from drivingseg.cli import cmd_report

    parser = argparse.ArgumentParser(prog="drivingseg")
    cmd_report.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return int(args.func(args))


def _strip_run_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between runs: executor, times, the command."""
    out = {k: v for k, v in report.items()
           if k not in ("executor", "created_utc", "wall_s", "command", "latency")}
    out["frames"] = [{k: v for k, v in f.items() if k != "latency_ms"} for f in out["frames"]]
    return out


@pytest.fixture
def run_report() -> Any:
    return _run_report


@pytest.fixture
def strip_run_fields() -> Any:
    return _strip_run_fields


MIXED_LIMIT = 2


@pytest.fixture(scope="session")
def mixed_inputs(synthetic_drive: Path, shared_data_root: Path) -> list[str]:
    """CamVid val, the Argoverse KITTI object folder and the synthetic drive."""
    return [str(shared_data_root / "camvid" / "val"),
            str(shared_data_root / "argoverse_kitti" / "training"),
            str(synthetic_drive)]


@pytest.fixture(scope="session")
def mixed_report(tmp_path_factory: pytest.TempPathFactory, mixed_inputs: list[str]
                 ) -> tuple[dict[str, Any], Path]:
    """One CLI run with 1 worker over the mixed inputs, 2 frames each: (report, folder)."""
    import json

    out = tmp_path_factory.mktemp("mixed") / "report"
    rc = _run_report([*mixed_inputs, "--out", str(out), "--workers", "1",
                      "--limit", str(MIXED_LIMIT), "--gallery", "3"])
    assert rc == 0
    return json.loads((out / "report.json").read_text()), out
