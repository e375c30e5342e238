"""Process-level tuning for SimpleCNN's fast layers: malloc, BLAS threads and a thread pool.

None of this changes a single number the network computes; it only decides how fast the process
computes them. SimpleCNN uses all three (``simple_cnn.py``); they live here so that the network's
own file opens with the network.

* :func:`keep_freed_memory_for_reuse`: glibc keeps the big arrays of one step for the next.
* :func:`blas_single_threaded`: NumPy's BLAS on one thread while our own threads share a batch.
* :func:`map_in_threads`: run one function on several parts of a batch at once.

Everything here is safe to call from any thread, any number of times.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController


def default_thread_count() -> int:
    """One thread per CPU core, at most 2: past two, sharing Python's lock costs more than a
    thread brings (see benchmarks/README.md, "Where a training step of the default network
    goes")."""
    return min(2, os.cpu_count() or 1)


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Make glibc's malloc keep freed memory for the next step instead of returning it to the OS.

    Every training step allocates and frees the same few megabytes of arrays. By default glibc
    adapts its thresholds as it goes and, depending on the order of earlier allocations, ends up
    handing large freed blocks back to the operating system each step; the next step then
    page-faults them in again, zero-filled, page by page, and whole runs come out slower at
    random. Fixing the two thresholds ends it. Affects the whole process, harmlessly: freed
    memory is kept for reuse. Returns False, doing nothing, where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # the option numbers in glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # blocks up to 32 MB (the most allowed) from heap
    libc.mallopt(m_trim_threshold, 256 * 2**20)  # keep up to 256 MB of freed heap for reuse
    return True


@functools.cache
def _blas_libraries() -> list:
    """threadpoolctl's handles on NumPy's BLAS libraries (looked up once: it takes a while)."""
    return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]


def _is_per_thread(lib) -> bool:
    """True where the library's thread count belongs to each calling thread (OpenMP's rule)."""
    return getattr(lib, "threading_layer", None) == "openmp"


@functools.cache
def _openblas_set_num_threads(filepath: str) -> Callable[[int], None]:
    """OpenBLAS's own ``openblas_set_num_threads``, whatever prefix or suffix the build gave it."""
    library = ctypes.CDLL(filepath)  # already loaded by NumPy: this only finds it
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        function = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
        if function is not None:
            function.argtypes, function.restype = [ctypes.c_int], None
            return function
    raise RuntimeError(f"{filepath} has no openblas_set_num_threads")  # threadpoolctl found one


def _set_threads(lib, threads: int) -> None:
    """Set one BLAS library's thread count, the process's one, from whichever thread calls.

    threadpoolctl's own ``set_num_threads`` will not do for OpenBLAS on its own threads (NumPy's
    wheels): since threadpoolctl 3.8, only the first thread that limits it may change it again,
    and calls from every other thread are silently ignored. Our worker threads then ran BLAS on
    several threads, whose kernels on some CPUs add up in another order. OpenBLAS's own function
    has no such rule.
    """
    if lib.internal_api == "openblas" and lib.threading_layer == "pthreads":
        _openblas_set_num_threads(lib.filepath)(threads)
    else:
        lib.set_num_threads(threads)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_threads_before: list[int] = []  # each process-wide library's threads, while we limit them


@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Keep NumPy's BLAS to one thread, in the calling thread, while the block runs.

    Our own threads each multiply their part of the batch; BLAS threads on top would
    oversubscribe the cores, and they spin-wait against other busy threads (TensorFlow's),
    which made steps many times slower. Most BLAS builds (NumPy's OpenBLAS among them) have one
    thread count for the whole process, so concurrent callers share it: the first one in sets
    it, the last one out restores what was there before. OpenMP builds keep a count per thread,
    so that one is set in the calling thread and restored on the way out. Set through the
    libraries' own calls, twice per training step, so it costs next to nothing.
    """
    global _blas_users, _blas_threads_before
    shared = [lib for lib in _blas_libraries() if not _is_per_thread(lib)]
    own = [lib for lib in _blas_libraries() if _is_per_thread(lib)]
    with _blas_lock:
        if _blas_users == 0:
            _blas_threads_before = [lib.get_num_threads() for lib in shared]
            for lib in shared:
                _set_threads(lib, 1)
        _blas_users += 1
    own_before = [lib.get_num_threads() for lib in own]
    for lib in own:
        _set_threads(lib, 1)
    try:
        yield
    finally:
        for lib, threads in zip(own, own_before, strict=True):
            _set_threads(lib, threads)
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, threads in zip(shared, _blas_threads_before, strict=True):
                    _set_threads(lib, threads)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """The process's helper threads, started on first use and replaced when more are asked for."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="simple_cnn")
            _pool_size = workers
        return _pool


def map_in_threads(function: Callable[..., Any], *part_lists: Sequence[Any]) -> list[Any]:
    """``[function(*parts) for parts in zip(*part_lists)]``, the parts in parallel threads.

    NumPy releases Python's global lock inside its array operations, so threads working on
    separate parts of a batch really do run at the same time, one per CPU core. The calling
    thread works on the first part itself: one thread fewer to wake up and to wait for. BLAS is
    kept to one thread meanwhile, in every thread, even for a single part (see
    :func:`blas_single_threaded`).
    """
    first, *rest = zip(*part_lists, strict=True)
    with blas_single_threaded():
        if not rest:
            return [function(*first)]
        pool = _thread_pool(len(rest))
        futures = [pool.submit(_single_threaded_blas_call, function, parts) for parts in rest]
        return [function(*first)] + [future.result() for future in futures]


def _single_threaded_blas_call(function: Callable[..., Any], parts: Sequence[Any]) -> Any:
    """``function(*parts)`` with BLAS on one thread in the helper thread that runs it."""
    with blas_single_threaded():
        return function(*parts)
