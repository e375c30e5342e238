"""Drawings answered in worker processes, so that a classroom's requests use every core.

A drawing's answer is mostly Python: preparing the picture, then many small NumPy calls on one
28x28 image, each too short to let go of the interpreter's lock. Threads in one process take
turns on that lock, so two cores served one core's worth of answers (measured with 30 students
drawing at once: a second and a fourth thread made each answer cost more CPU, not less).
Processes each have their own interpreter, and so their own lock.

Each worker process holds a copy of what the answers read: the model being explored, and where
its test set is (``Explorer.for_answers``). When the server explores another model (a run has
finished, or the original was restored), a new set of processes starts with it; requests
already sent to the old set are answered there, so each sees the old model or the new, never
half of each. The workers ignore Ctrl-C (the terminal sends it to every process of the
program): the explorer's own process decides how to stop, and stops them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from explorer.api import Explorer

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_copy: Explorer | None = None  # in a worker process: what its answers read


def default_count() -> int:
    """One worker process per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class AnswerProcesses:
    """Worker processes answering ``answer(explorer, compute_in_worker, ...)`` calls for the
    model ``explorer`` explores now."""

    def __init__(self, explorer: Explorer, count: int):
        self.explorer = explorer
        self.count = count
        self._lock = threading.Lock()
        self._classifier = None  # the model the pool below was started with
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        """``function(copy_of_explorer, *args)`` in a worker process holding the model explored
        now; ``function`` and ``args`` must be picklable (a module's function, bytes)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the explorer is stopping")
            if self._pool is None or self.explorer.classifier is not self._classifier:
                self._start()
            with _stop_signals_blocked():  # a process started now inherits the mask
                try:
                    return self._pool.submit(_call, function, *args)
                except BrokenProcessPool:  # a worker died (killed, out of memory): new ones
                    self._start()
                    return self._pool.submit(_call, function, *args)

    def warm_up(self) -> None:
        """Start every worker now, so that the first drawings do not wait for them (nothing,
        if the explorer stops meanwhile)."""
        try:
            futures = [self.submit(_nothing) for _ in range(self.count)]
            for future in futures:
                future.result()
        except Exception:
            if not self._closed:
                raise

    def _start(self) -> None:
        old, self._classifier = self._pool, self.explorer.classifier
        self._pool = ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("spawn"),  # this process has threads
            initializer=_begin,
            initargs=(self.explorer.for_answers(),),
        )
        if old is not None:
            old.shutdown(wait=False)  # answers what it has, then its workers exit

    def close(self) -> None:
        """Stop the workers, once those answering now have answered."""
        with self._lock:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back in this thread (the process's other threads take them):
    a worker process started meanwhile begins with them held back too, until ``_begin`` has
    told it to ignore Ctrl-C, instead of dying of a KeyboardInterrupt as it imports."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _begin(copy: Explorer) -> None:
    """A worker process's start: keep the copy it answers from; Ctrl-C is for the explorer's
    own process (which then stops this one), SIGTERM ends it."""
    global _copy
    _copy = copy
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(_copy, *args)


def _nothing(copy: Explorer) -> None:
    return None
