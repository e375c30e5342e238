"""process_tuning: BLAS really on one thread in every thread that computes, whoever set it before.

threadpoolctl reports the thread count from inside each thread; a wrong count there is what
made results depend on the thread on some CPUs (OpenBLAS's multi-threaded kernels add up in
another order) and oversubscribed the cores.
"""

import threading

import numpy as np  # noqa: F401  (loads the BLAS that threadpoolctl then finds)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from plumbing import process_tuning


def blas_threads() -> list[int]:
    """Each BLAS library's thread count, as threadpoolctl reads it in the calling thread."""
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert counts, "threadpoolctl finds no BLAS library in this process"
    return counts


def in_new_thread(function):
    """function() in a thread of its own; its result, or its exception raised here."""
    outcome = {}

    def run():
        try:
            outcome["result"] = function()
        except BaseException as error:  # re-raised in the test's thread, where pytest sees it
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_every_worker_thread_runs_blas_on_one_thread_after_the_main_thread_set_a_limit():
    # The main thread limits BLAS first, as explore.py and a user's notebook do: since
    # threadpoolctl 3.8 that made it the only thread whose limits count, and a worker thread's
    # "one thread" was silently ignored.
    with threadpool_limits(limits=3, user_api="blas"):
        assert set(blas_threads()) == {3}

        def part(index: int) -> list[int]:
            return blas_threads()

        seen = in_new_thread(lambda: process_tuning.map_in_threads(part, range(4)))
        assert seen == [[1] * len(blas_threads())] * 4
        assert set(blas_threads()) == {3}  # restored once the last one left
        seen_alone = in_new_thread(lambda: process_tuning.map_in_threads(part, [0]))
        assert seen_alone == [[1] * len(blas_threads())]


def test_blas_stays_single_threaded_while_any_of_many_threads_is_inside():
    before = blas_threads()
    wrong, barrier = [], threading.Barrier(8)

    def user() -> None:
        barrier.wait()
        for _ in range(200):
            with process_tuning.blas_single_threaded():
                if set(blas_threads()) != {1}:
                    wrong.append(blas_threads())

    threads = [threading.Thread(target=user) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert blas_threads() == before


class PerThreadBlas:
    """A BLAS whose thread count belongs to each thread, as OpenBLAS built with OpenMP does."""

    internal_api, threading_layer, user_api = "openblas", "openmp", "blas"

    def __init__(self, default: int) -> None:
        self.default, self.local = default, threading.local()

    def get_num_threads(self) -> int:
        return getattr(self.local, "threads", self.default)

    def set_num_threads(self, threads: int) -> None:
        self.local.threads = threads


def test_a_per_thread_blas_is_limited_in_each_worker_thread_and_restored(monkeypatch):
    blas = PerThreadBlas(default=4)
    monkeypatch.setattr(process_tuning, "_blas_libraries", lambda: [blas])
    seen = process_tuning.map_in_threads(lambda index: blas.get_num_threads(), range(3))
    assert seen == [1, 1, 1]
    assert blas.get_num_threads() == 4
    assert process_tuning.map_in_threads(lambda index: blas.get_num_threads(), [0]) == [1]


def test_an_exception_inside_restores_the_thread_count():
    before = blas_threads()
    with pytest.raises(ZeroDivisionError):
        process_tuning.map_in_threads(lambda index: 1 / index, [1, 0])
    assert blas_threads() == before
