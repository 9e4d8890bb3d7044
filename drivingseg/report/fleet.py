"""Run independent tasks in local processes or on Ray, surviving crashed workers.

:func:`run_tasks` calls ``fn(task)`` for every task and returns the results in task
order, ``None`` where a task failed, plus the failures. Locally it uses a
``ProcessPoolExecutor`` with the ``spawn`` start method (forking a process whose torch
threads hold locks can hang). When a worker process dies the pool breaks: the results
already received are kept, tasks that never started are run again in a fresh pool, and
each task that was running when it broke is run alone in a pool of its own; if that
kills its worker too, the task is a failure (never retried again). On Ray every task is
one remote call with ``max_retries=0``: an error or a crashed worker fails that task
only. Progress is counted in task sizes (frames) through ``progress(iterable, total)``:
each item is the size of a task that just ended, so a bar adds a chunk's frames at once
(its count and rate, hence its ETA, are those of the frames done).
An interrupt (Ctrl-C, or SIGTERM inside :func:`sigterm_interrupts`) terminates the local
workers at once (on Ray it cancels the run's tasks, killing those running, also on an
instance the caller started), and a worker whose parent process is gone exits by itself,
so a stopped or killed report leaves no worker processes behind.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue
from typing import Any, Generic, TypeVar

from drivingseg.errors import ConfigError
from drivingseg.signals import raise_interrupt, restore_sigterm, sigterm_interrupts

__all__ = ["FleetResult", "Progress", "TaskFailure", "cpu_count", "describe_executor", "run_tasks",
           "sigterm_interrupts"]

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[Iterable[int], int], Iterable[int]]
"""``progress(sizes, total)`` wraps the sizes of the tasks as they end (``total``: their sum)."""

log = logging.getLogger(__name__)

CRASH_MESSAGE = "worker process died while running this task (crashed or was killed)"


@dataclass(frozen=True)
class TaskFailure:
    """Task ``task`` (its index) failed: ``error`` is one line."""

    task: int
    error: str


@dataclass(frozen=True)
class FleetResult(Generic[R]):
    """``results[i]`` is task i's result, ``None`` when it failed (see ``failures``)."""

    results: list[R | None]
    failures: list[TaskFailure]


def describe_executor(workers: int, ray: str | None) -> str:
    """The report's ``executor`` field."""
    if ray is not None:
        return f"ray ({ray})"
    return f"local processes x{workers}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# --- local processes ------------------------------------------------------------------

_STARTED: SimpleQueue[int] | None = None
PARENT_POLL_S = 0.5
"""How often a worker checks that the process that started it is still there."""


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker once its parent is gone (killed, or stopped by a signal before it
    could stop its workers): its results have nowhere to go, and an orphan would keep its
    model in memory and wait for work for ever."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _init_worker(started: SimpleQueue[int], parent_pid: int) -> None:
    global _STARTED
    _STARTED = started
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent",
                     daemon=True).start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now: on an interrupt the tasks they run are
    abandoned, and ``shutdown`` alone would wait for each to finish (the executor has no
    public way to do this before Python 3.14)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError):
            proc.terminate()


def _call(fn: Callable[[T], R], index: int, task: T) -> R:
    """Run one task in a worker, saying first (synchronously) that it started."""
    if _STARTED is not None:
        _STARTED.put(index)
    return fn(task)


def _drain(queue: SimpleQueue[int]) -> set[int]:
    out: set[int] = set()
    while not queue.empty():
        out.add(queue.get())
    return out


class _LocalRun(Generic[T, R]):
    """State of one local run: results so far, failures, tasks still to do."""

    def __init__(self, fn: Callable[[T], R], tasks: Sequence[T], sizes: Sequence[int]) -> None:
        self.fn, self.tasks, self.sizes = fn, tasks, sizes
        self.results: list[R | None] = [None] * len(tasks)
        self.done: set[int] = set()
        self.failures: dict[int, TaskFailure] = {}
        self.ctx = multiprocessing.get_context("spawn")

    def pool_round(self, indices: list[int], workers: int) -> Iterator[int]:
        """Run ``indices`` in one pool; yields sizes of finished tasks. Returns when all
        finished or the pool broke; ``self.unstarted`` / ``self.suspects`` say what's left."""
        started: SimpleQueue[int] = self.ctx.SimpleQueue()
        pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(indices))),
                                   mp_context=self.ctx, initializer=_init_worker,
                                   initargs=(started, os.getpid()))
        ran: set[int] = set()
        try:
            futures: dict[Future[R], int] = {
                pool.submit(_call, self.fn, i, self.tasks[i]): i for i in indices
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                ran |= _drain(started)  # keep the pipe from filling up on long runs
                for fut in sorted(done, key=lambda f: futures[f]):
                    i = futures[fut]
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        continue  # left for the next round (see run)
                    if exc is not None:
                        self.failures[i] = TaskFailure(i, _one_line(exc))
                    else:
                        self.results[i] = fut.result()
                        self.done.add(i)
                    yield self.sizes[i]
        except BaseException:  # an interrupt, or the caller closing this generator early
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        left = [i for i in indices if i not in self.done and i not in self.failures]
        ran |= _drain(started)
        started.close()
        self.suspects = [i for i in left if i in ran]
        self.unstarted = [i for i in left if i not in ran]

    def run(self, workers: int) -> Iterator[int]:
        todo = list(range(len(self.tasks)))
        while todo:
            yield from self.pool_round(todo, workers)
            suspects, unstarted = self.suspects, self.unstarted
            if not suspects and unstarted == todo:  # the pool broke before running anything
                for i in todo:
                    self.failures[i] = TaskFailure(i, "the worker pool broke before running it")
                    yield self.sizes[i]
                return
            for i in suspects:  # each alone: does it kill its worker by itself?
                yield from self.pool_round([i], 1)
                if i not in self.done and i not in self.failures:
                    self.failures[i] = TaskFailure(i, CRASH_MESSAGE)
                    yield self.sizes[i]
            todo = unstarted


# --- Ray --------------------------------------------------------------------------------


def _ray_module() -> Any:
    try:
        import ray
    except ImportError as exc:
        message = (f"--ray needs the 'ray' package, which is not installed ({exc}); "
                   "install it with 'pip install ray' or run without --ray")
        raise ConfigError(message) from exc
    return ray


RAY_CONNECT_TIMEOUT_S = 5.0
"""How long ``--ray ADDRESS`` waits for the head's port to answer before giving up."""


def _check_reachable(address: str) -> None:
    """Refuse a Ray address whose port does not answer: ``ray.init`` would retry it for
    minutes, printing its own logs, instead of failing."""
    client = address.startswith("ray://")
    host, sep, port_text = address.removeprefix("ray://").rpartition(":")
    if not sep:
        host, port_text = port_text, "10001" if client else "6379"
    try:
        port = int(port_text)
    except ValueError as exc:
        message = f"--ray {address!r}: expected HOST:PORT or ray://HOST:PORT, or 'auto'"
        raise ConfigError(message) from exc
    try:
        socket.create_connection((host, port), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        message = (f"cannot reach Ray at {address!r}: {exc.strerror or exc} (is a Ray head "
                   "running there? 'ray start --head' starts one; --ray auto starts a local one)")
        raise ConfigError(message) from exc


def _run_ray(fn: Callable[[T], R], tasks: Sequence[T], sizes: Sequence[int], address: str,
             workers: int, results: list[R | None], failures: dict[int, TaskFailure]
             ) -> Iterator[int]:
    ray = _ray_module()
    started = not ray.is_initialized()
    # ray.init puts in its own SIGTERM handler (a stack dump, then exit status 1) and
    # leaves it after ray.shutdown: within sigterm_interrupts SIGTERM must stay an
    # interrupt, and afterwards the caller's handler must be back.
    caller_sigterm = signal.getsignal(signal.SIGTERM)
    if started:
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if address == "auto":
            kwargs.update(num_cpus=max(1, workers), include_dashboard=False)
        else:
            _check_reachable(address)
        try:
            ray.init(address=None if address == "auto" else address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            restore_sigterm(caller_sigterm)
            message = f"cannot start or reach Ray at {address!r}: {_one_line(exc)}"
            raise ConfigError(message) from exc
        if caller_sigterm is raise_interrupt:
            restore_sigterm(caller_sigterm)
    pending: list[Any] = []
    try:
        remote = ray.remote(max_retries=0)(fn)
        refs: dict[Any, int] = {}
        for i, task in enumerate(tasks):
            ref = remote.remote(task)
            refs[ref] = i
            pending.append(ref)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = refs[ref]
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failures[i] = TaskFailure(i, _ray_error(exc))
                yield sizes[i]
    except BaseException:  # an interrupt, or the caller closing this generator early
        _cancel_ray(ray, pending)
        raise
    finally:
        if started:
            ray.shutdown()
            restore_sigterm(caller_sigterm)


def _cancel_ray(ray: Any, refs: Sequence[Any]) -> None:
    """Cancel the run's unfinished tasks, killing those running: on a Ray instance the
    caller started (not shut down here) they would otherwise run to their end, holding
    its CPUs, as local workers are terminated on an interrupt."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception as exc:  # finished meanwhile, or Ray is going down
            log.debug("could not cancel a Ray task: %s", _one_line(exc))


def _ray_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return _one_line(cause)
    name = type(exc).__name__
    if "WorkerCrashed" in name or "ActorDied" in name or "NodeDied" in name:
        return f"{CRASH_MESSAGE} ({name})"
    return _one_line(exc)


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    workers: int = 1,
    ray: str | None = None,
    sizes: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> FleetResult[R]:
    """Run ``fn`` over ``tasks`` (see the module docstring); results in task order.

    ``ray`` is None (local processes), ``"auto"`` (start a local Ray instance, or use the
    one this process already started) or a cluster address. ``sizes[i]`` is task i's
    weight in the progress count (default 1); ``progress`` gets each task's size as it ends.
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers!r}")
    weights = list(sizes) if sizes is not None else [1] * len(tasks)
    if len(weights) != len(tasks):
        raise ConfigError(f"{len(weights)} sizes for {len(tasks)} tasks")
    if not tasks:
        return FleetResult([], [])
    ticks: Iterable[int]
    if ray is not None:
        results: list[R | None] = [None] * len(tasks)
        failures: dict[int, TaskFailure] = {}
        ticks = _run_ray(fn, tasks, weights, ray, workers, results, failures)
    else:
        local = _LocalRun(fn, tasks, weights)
        results, failures = local.results, local.failures
        ticks = local.run(workers)
    try:  # whole sizes: frame by frame, a bar showed a chunk's first frame as all it had done
        for _ in progress(ticks, sum(weights)) if progress is not None else ticks:
            pass
    finally:  # on an interrupt in the progress bar: stop the workers now, not at collection
        close = getattr(ticks, "close", None)
        if close is not None:
            close()
    return FleetResult(results, [failures[i] for i in sorted(failures)])


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
