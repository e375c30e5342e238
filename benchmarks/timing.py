"""Small helpers the benchmark scripts share: taking turns, medians, and what machine this is.

Only the standard library, NumPy and threadpoolctl (a project requirement; it names the BLAS).
"""

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info


def seconds(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def take_turns(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each side ``repeats`` times, taking turns: A B, then B A, then A B, ...

    Each side is a function returning the seconds it measured. Taking turns and reversing the order
    every round means a machine that gets busier or quieter during the run slows every side alike.

    Returns
    -------
    dict
        The seconds of every call, by side name, in call order.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].append(sides[name]())
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply speed through NumPy's BLAS, in GFLOP/s.

    The median of ``repeats`` products of two (size, size) float32 matrices, after one warm-up:
    the most arithmetic per second NumPy can get out of these cores, the ceiling any NumPy
    convolution built on matrix multiplies can approach.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults of the result
    flops = 2.0 * size**3  # one multiply and one add per inner-product term
    return flops / median([seconds(lambda: a @ b) for _ in range(repeats)]) / 1e9


def load_average() -> float | None:
    """The load average over the last minute (runnable processes), or None where unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def format_load(load: float | None) -> str:
    """A load average as printed: one decimal, or "unknown" where the system has none."""
    return "unknown" if load is None else f"{load:.1f}"


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo on Linux, else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (the affinity mask), not every core the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_description() -> str:
    """Which BLAS NumPy calls and with how many threads, e.g. "openblas 0.3.31, 2 threads"."""
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return f"{pool['internal_api']} {pool['version']}, {pool['num_threads']} threads"
    return _blas_from_numpy_config()


def _blas_from_numpy_config() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # the config layout differs between NumPy versions; it is only a label
        return "unknown"


def machine_description() -> dict[str, object]:
    """What the figures were measured on: CPU, cores, library versions, BLAS, load average."""
    return {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_description(),
        "load_average_1min": load_average(),
    }


def busy_machine_warning(load: float | None, cores: int) -> str | None:
    """A warning when other work kept the cores busy (more than half of them, on average)."""
    if load is None or load <= 0.5 * cores:
        return None
    return (
        f"warning: the machine is shared and was busy (load average {load:.1f} on {cores} cores): "
        "the timings are noisy; rerun on a quiet machine for figures to quote"
    )


def warm_up_image_count(batch_size: int, steps: int, available: int) -> int:
    """Images for a warm-up epoch: ``steps`` full batches and a smaller last one.

    The smaller last batch matters: a tf.function traced for one batch shape traces again for
    the epoch's last, smaller batch, and that tracing must not fall in a timed epoch.
    """
    return min(available, steps * batch_size + max(1, batch_size // 2))


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
