"""Drawings answered in worker processes, so that a classroom's requests use every core.

A drawing's answer is mostly Python: preparing the picture, then many small NumPy calls on one
28x28 image, each too short to let go of the interpreter's lock. Threads in one process take
turns on that lock, so two cores served one core's worth of answers (measured with 30 students
drawing at once: a second and a fourth thread made each answer cost more CPU, not less).
Processes each have their own interpreter, and so their own lock.

What the answers read (the model explored, where its test set is: ``Explorer.for_answers``) is
written to a file in a private folder each time it changes, and every request names the file
of the model explored when it arrived: a worker reads a file it has not read yet before it
answers. So a request sees the old model or the new, never half of each, and a change of model
starts no process. Starting one sends it nothing large, so it never waits on a worker that is
still importing (a large argument would be written down a pipe the new process reads only
once it has started).

The workers ignore Ctrl-C and SIGTERM, which a terminal or a service manager sends to every
process of the program: the explorer's own process decides how to stop, and stops them. A
worker whose explorer died without stopping it (killed) exits by itself. A worker that dies
is replaced at the next request.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from explorer.api import Explorer

MAX_WORKERS = 4  # a classroom's drawings keep about two cores busy
STOP_SECONDS = 5  # how long close() waits for a worker's answer before it kills the worker
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

# In a worker process: the copy its answers read, and the file it came from.
_copy: Explorer | None = None
_copy_file: str | None = None


def default_count() -> int:
    """One worker per core this process may use (its CPU affinity, a container's CPU quota),
    at most MAX_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:  # cgroup v2: "max 100000" (no quota) or "200000 100000" (two cores' worth)
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(cores or 1, MAX_WORKERS))


class AnswerProcesses:
    """Worker processes answering ``submit(function, *args)``: ``function(copy, *args)`` with
    a copy of what ``explorer`` explores at the time of the call."""

    def __init__(self, explorer: Explorer, count: int):
        self.explorer = explorer
        self.count = count
        self._lock = threading.Lock()
        self._folder = tempfile.mkdtemp(prefix="simple-cnn-explorer-")  # mode 0700: ours only
        self._copies: list[str] = []  # the files written, the newest last
        self._copied: tuple | None = None  # (classifier, model_error) of the newest file
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        """``function(copy, *args)`` in a worker process; ``function`` and ``args`` must be
        picklable (a module's function, bytes). A pool whose worker died is replaced."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the explorer is stopping")
            copy_file = self._copy_file()
            if self._pool is None:
                self._pool = self._start()
            with _stop_signals_blocked():  # a process started now inherits the mask
                try:
                    return self._pool.submit(_call, copy_file, function, *args)
                except BrokenProcessPool:  # a worker died (killed, out of memory): new ones
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
                    return self._pool.submit(_call, copy_file, function, *args)

    def warm_up(self) -> None:
        """Start every worker now, so that the first drawings do not wait for them to start
        (nothing, if the explorer stops meanwhile or a worker dies: the next request starts
        new ones)."""
        try:
            futures = [self.submit(_nothing) for _ in range(self.count)]
            for future in futures:
                future.result()
        except BrokenProcessPool:
            pass
        except Exception:  # cancelled, or refused: the explorer is stopping
            if not self._closed:
                raise

    def _copy_file(self) -> str:
        """The file holding a copy of what the explorer explores now (written if it changed)."""
        now = (self.explorer.classifier, self.explorer.model_error)
        if self._copied is None or now[0] is not self._copied[0] or now[1] != self._copied[1]:
            path = Path(self._folder) / f"copy-{len(self._copies)}.pickle"
            staged = path.with_suffix(".partial")
            staged.write_bytes(pickle.dumps(self.explorer.for_answers()))
            os.replace(staged, path)  # a worker reads a whole file or none
            self._copies.append(str(path))
            self._copied = now
            for old in self._copies[:-2]:  # a request still queued may name the one before
                Path(old).unlink(missing_ok=True)
        return self._copies[-1]

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("spawn"),  # this process has threads
            initializer=_begin,
            initargs=(os.getpid(),),
        )

    def close(self) -> None:
        """Stop the workers: those answering get STOP_SECONDS to finish, then are killed."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + STOP_SECONDS
            for worker in multiprocessing.active_children():  # the pool's: nothing else here
                worker.join(max(0.0, deadline - time.monotonic()))
                if worker.is_alive():
                    worker.kill()
                    worker.join(1)
        shutil.rmtree(self._folder, ignore_errors=True)


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back in this thread (the process's other threads take them):
    a worker process started meanwhile begins with them held back too, until ``_begin`` has
    told it to ignore them, instead of dying of a KeyboardInterrupt as it imports."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _begin(explorer_pid: int) -> None:
    """A worker process's start: Ctrl-C and SIGTERM are for the explorer's own process (which
    then stops this one); if that process dies without doing so, this one exits too."""
    for number in _STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    threading.Thread(target=_exit_with, args=(explorer_pid,), daemon=True).start()


def _exit_with(explorer_pid: int) -> None:
    while os.getppid() == explorer_pid:  # an orphan is given another parent
        time.sleep(0.5)
    os._exit(0)


def _call(copy_file: str, function: Callable[..., Any], *args: Any) -> Any:
    """In a worker: ``function`` with the copy in ``copy_file`` (read once)."""
    global _copy, _copy_file
    if copy_file != _copy_file:
        with open(copy_file, "rb") as file:  # written by this worker's explorer, in its folder
            copy = pickle.load(file)
        if _copy is not None and _copy.data_dir == copy.data_dir:
            copy._test_set = _copy._test_set  # loaded already (it is checked against the model)
        _copy, _copy_file = copy, copy_file
    return function(_copy, *args)


def _nothing(copy: Explorer) -> None:
    return None
