"""The CLI entry point: SIGTERM (``kill``, ``timeout``, a job scheduler) stops every
command as Ctrl-C does, so its cleanup runs, in a real subprocess sent a real SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.bags import file_compressed_bag

REPO = Path(__file__).resolve().parents[2]

STOPPED_IN = """
import sys, tempfile, time
from pathlib import Path
from drivingseg.cli.main import main
from drivingseg.sensors import bag_sources
from drivingseg.sensors.synthetic import writer

tempfile.tempdir = sys.argv[1]
ready = Path(sys.argv[2])
real_unzstd, real_frame = bag_sources._unzstd, writer._write_frame

def unzstd(src, dst):  # the bag's copy is on disk; wait here for the SIGTERM
    real_unzstd(src, dst)
    ready.touch()
    time.sleep(120)

def write_frame(drive, layout, i):  # one frame rendered into the hidden folder
    result = real_frame(drive, layout, i)
    ready.touch()
    time.sleep(120)
    return result

bag_sources._unzstd, writer._write_frame = unzstd, write_frame
sys.exit(main(sys.argv[3:]))
"""


def stop_with_sigterm(
    argv: list[str], scratch: Path, ready: Path
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``argv`` in a subprocess, send it SIGTERM once it is mid-job
    (``ready`` exists), and return how it ended."""
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_IN, str(scratch), str(ready), *argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never got mid-job"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_sigterm_during_bag_decompression_removes_the_copy(tmp_path: Path, command: str) -> None:
    """SIGTERM while a file-compressed bag was being unpacked killed replay (and launch,
    and convert before its writing loop) on the spot: the decompressed copy stayed in the
    temporary folder. Every command now stops as Ctrl-C does: status 130, copy removed."""
    bag = file_compressed_bag(tmp_path / "drive")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = (["replay", str(bag), "--fast", "--out", str(tmp_path / "out")]
            if command == "replay" else ["convert", str(bag), str(tmp_path / "out.mcap")])
    done = stop_with_sigterm(argv, scratch, tmp_path / "ready")
    assert done.returncode == 130, done.stderr
    assert f"drivingseg {command}: interrupted" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(scratch.iterdir()) == []


def test_sigterm_during_synth_removes_the_half_written_drive(tmp_path: Path) -> None:
    """SIGTERM killed synth (and the demo's rendering) on the spot, leaving a hidden
    ``.<drive>.<pid>.<id>.tmp`` folder of half a drive in OUT_DIR; it is now removed."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    done = stop_with_sigterm(["synth", str(out), "--frames", "3", "--workers", "1"], scratch,
                             tmp_path / "ready")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert [p.relative_to(out) for p in out.rglob("*")] == [Path("2024_05_01")]


STOPPED_STARTING = """
import importlib, os, signal, sys, time
cli_main = importlib.import_module("drivingseg.cli.main")
real_build = cli_main.build_parser

def build_parser():  # the signal comes while the commands' modules (torch) are imported
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(30)
    return real_build()

cli_main.build_parser = build_parser
sys.exit(cli_main.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_while_the_commands_load_stops_with_status_130(sig: str) -> None:
    """Ctrl-C in the seconds the CLI spends importing its commands (torch) printed a
    traceback from inside torch, and SIGTERM killed the process on the spot; both now stop
    as they do later: one line, status 130."""
    done = subprocess.run([sys.executable, "-c", STOPPED_STARTING, sig, "info", "x"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "drivingseg: interrupted\n"


SIGNALLED_AT_EXIT = """
import atexit, os, signal, sys, time
from drivingseg.cli.main import main
sig = getattr(signal, sys.argv[1])

def late_signal():  # a second Ctrl-C (or a SIGTERM) while the interpreter tears down
    os.kill(os.getpid(), sig)
    time.sleep(0.5)

atexit.register(late_signal)
sys.argv = ["drivingseg", *sys.argv[2:]]
sys.exit(main())
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_command_ended_keeps_its_status(sig: str, tmp_path: Path) -> None:
    """The interpreter's teardown after torch takes seconds; a second Ctrl-C there printed
    a KeyboardInterrupt traceback from torch's exit callbacks, and a SIGTERM killed the
    process (status -15, not the command's). The command's status now stands."""
    done = subprocess.run([sys.executable, "-c", SIGNALLED_AT_EXIT, sig, "info",
                           str(tmp_path / "missing")], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("drivingseg info: error:")
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
