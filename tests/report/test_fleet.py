"""Running tasks in local processes and on Ray: order kept, crashes and errors isolated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from drivingseg.errors import ConfigError
from drivingseg.report.fleet import (
    CRASH_MESSAGE,
    TaskFailure,
    _check_reachable,
    run_tasks,
    sigterm_interrupts,
)
from drivingseg.report.write import make_report


def test_local_results_keep_task_order_and_progress_counts_sizes(
        crashy: types.ModuleType) -> None:
    seen: list[int] = []

    def wrap(items: Any, total: int) -> Any:
        seen.append(total)
        for item in items:
            seen.append(item)
            yield item

    out = run_tasks(crashy.raise_on_two, [5, 1, 4, 3], workers=2, sizes=[2, 1, 3, 1],
                    progress=wrap)
    assert out.results == [25, 1, 16, 9] and out.failures == []
    assert seen[0] == 7
    # each task's whole size as it ends, not one tick per frame: a bar fed frame by frame
    # showed only the first frame of each finished chunk, and an ETA a chunk's size too long
    assert sorted(seen[1:]) == [1, 1, 2, 3]


def test_local_worker_crash_loses_only_that_task(crashy: types.ModuleType) -> None:
    out = run_tasks(crashy.square_or_die, [1, 2, 3, 4, 5], workers=2)
    assert out.results == [1, 4, None, 16, 25]
    assert out.failures == [TaskFailure(2, CRASH_MESSAGE)]


def test_local_task_error_is_a_failure_with_its_message(crashy: types.ModuleType) -> None:
    out = run_tasks(crashy.raise_on_two, [1, 2, 3], workers=1)
    assert out.results == [1, None, 9]
    assert out.failures == [TaskFailure(1, "ValueError: two is not allowed")]


def test_bad_worker_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="workers must be at least 1, got 0"):
        run_tasks(abs, [1], workers=0)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "127.0.0.1:port"])
def test_an_unreachable_ray_address_is_refused_at_once(address: str) -> None:
    """ray.init retried an address nobody listens on for minutes, printing its logs."""
    ray = pytest.importorskip("ray")
    match = (r"expected HOST:PORT" if address.endswith("port")
             else rf"cannot reach Ray at '{address}': Connection refused \(is a Ray head")
    with pytest.raises(ConfigError, match=match):
        _check_reachable(address)
    if not ray.is_initialized():  # else (the session's ray_local) Ray is already reached
        with pytest.raises(ConfigError, match=match):
            run_tasks(abs, [1], workers=1, ray=address)


def test_ray_worker_crash_and_error_lose_only_their_tasks(
        crashy: types.ModuleType, ray_local: Any) -> None:
    out = run_tasks(crashy.square_or_die, [1, 2, 3, 4], workers=2, ray="auto")
    assert out.results == [1, 4, None, 16]
    assert [f.task for f in out.failures] == [2]
    assert "died" in out.failures[0].error or "Crash" in out.failures[0].error
    out = run_tasks(crashy.raise_on_two, [1, 2, 3], workers=2, ray="auto")
    assert out.results == [1, None, 9]
    assert out.failures == [TaskFailure(1, "ValueError: two is not allowed")]
    assert ray_local.is_initialized()  # not ours to shut down


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_report_lists_the_crashed_chunk_and_keeps_the_others(
        executor: str, crashy: types.ModuleType, camvid_root: Path, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    ray = None
    if executor == "ray":
        request.getfixturevalue("ray_local")
        ray = "auto"
    report = make_report([camvid_root / "val"], "default", tmp_path / "out", workers=2,
                         ray=ray, limit=4, chunk_frames=2, gallery=1,
                         task_fn=crashy.chunk_or_die)
    assert [f["frame"] for f in report["frames"]] == ["0016E5_07959", "0016E5_07961"]
    assert report["inputs"][0]["frames_ok"] == 2 and report["inputs"][0]["frames"] == 4
    [failure] = report["failures"]
    assert failure["frames"] == ["0016E5_07963", "0016E5_07965"]
    assert failure["path"] == str(camvid_root / "val")
    assert report["segmentation"]["frames"] == 2
    assert (tmp_path / "out" / "report.html").is_file()


def test_many_small_tasks_do_not_stall_the_started_pipe() -> None:
    # each task reports its start through a pipe; 6000 of them overflow its buffer
    # unless the parent keeps reading while the pool runs
    out = run_tasks(abs, list(range(-6000, 0)), workers=2)
    assert out.results == list(range(6000, 0, -1)) and out.failures == []


STOPPED_SCRIPT = """
import sys
from drivingseg.report.fleet import run_tasks, sigterm_interrupts
import report_crashy
try:
    with sigterm_interrupts():
        run_tasks(report_crashy.tell_and_sleep, [sys.argv[1] + "/a", sys.argv[1] + "/b"],
                  workers=2)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(("sig", "returncode"), [(signal.SIGTERM, 130), (signal.SIGKILL, -9)])
def test_a_stopped_or_killed_run_leaves_no_worker_behind(
        crashy: types.ModuleType, tmp_path: Path, sig: signal.Signals, returncode: int) -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler) stops the run as Ctrl-C does and
    terminates its busy workers at once; a killed run's workers exit by themselves. Both
    used to leave the workers orphaned, holding their model, for ever."""
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_SCRIPT, str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / n).exists() for n in "ab"):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        pids = [int((tmp_path / n).read_text()) for n in "ab"]
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == returncode
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for name in "ab":
            if (tmp_path / name).exists() and _alive(pid := int((tmp_path / name).read_text())):
                os.kill(pid, signal.SIGKILL)


def test_an_interrupted_ray_run_cancels_its_tasks(
        crashy: types.ModuleType, ray_local: Any, tmp_path: Path) -> None:
    """Stopped on a Ray instance the caller had started (the Python API, a notebook),
    the run's tasks went on to their end, holding the cluster's CPUs (every chunk of the
    report, minutes each) so that the next run queued behind them."""
    paths = [str(tmp_path / n) for n in "abc"]

    def stop_once_two_run() -> None:
        deadline = time.monotonic() + 120
        while not all(Path(p).exists() for p in paths[:2]) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_two_run, daemon=True)
    stopper.start()
    with pytest.raises(KeyboardInterrupt), sigterm_interrupts():
        run_tasks(crashy.tell_and_sleep, paths, workers=2, ray="auto")
    stopper.join()
    pids = [int(Path(p).read_text()) for p in paths[:2]]
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)]
    assert not Path(paths[2]).exists()  # the one still waiting never started
    assert ray_local.is_initialized()  # not ours to shut down


RAY_STOPPED_SCRIPT = """
import signal, sys
from drivingseg.report.fleet import run_tasks, sigterm_interrupts
import report_crashy
run_tasks(report_crashy.raise_on_two, [1], workers=1, ray="auto")
handler = signal.getsignal(signal.SIGTERM)
assert handler is signal.SIG_DFL, f"SIGTERM handler after the run: {handler!r}"
try:
    with sigterm_interrupts():
        run_tasks(report_crashy.tell_and_sleep, [sys.argv[1] + "/a", sys.argv[1] + "/b"],
                  workers=2, ray="auto")
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_ray_run_keeps_the_callers_sigterm_handling(
        crashy: types.ModuleType, tmp_path: Path) -> None:
    """ray.init put in its own SIGTERM handler: a report on Ray that was stopped dumped a
    C++ stack and exited with status 1 instead of stopping as Ctrl-C does (130), and the
    handler stayed after the run, replacing the caller's for good."""
    pytest.importorskip("ray")
    proc = subprocess.Popen([sys.executable, "-c", RAY_STOPPED_SCRIPT, str(tmp_path)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not all((tmp_path / n).exists() for n in "ab"):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "SIGTERM received" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
