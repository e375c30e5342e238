"""The guard around SimpleCNN's forward and backward passes: checks, threads and a lock.

``simple_cnn.py`` writes ``forward`` and ``backward`` as a learner reads them: the stages and
their layers, in order, for one batch of images. The two decorators here, ``guard_forward`` and
``guard_backward``, turn them into the methods a user calls, adding what a robust program needs
and a learner can skip:

* Checks, once, at the public call: the input's shape, dtype and values, d_out against the last
  forward(), the learning rate; afterwards, features or gradients that overflowed (NumPy's own
  overflow warnings are silenced meanwhile: these checks report the overflow with its cause).
* Threads: a large batch is cut into parts that run the network at the same time, one part per
  thread (``process_tuning.map_in_threads``). The loss is a sum over images, so the parts'
  filter gradients are summed.
* The cache: forward() keeps what backward() needs, so one network trains in one thread at a
  time. A second thread inside forward() or backward() of the same network gets a RuntimeError,
  never wrong gradients.

What a user calls, and what the decorated functions in simple_cnn.py are::

    cnn.forward(x) -> features                       forward(self, x, keep_cache) -> (features,
                                                         caches), for one part of the batch
    cnn.backward(d_out, learning_rate) -> d_filters  backward(self, d_out, caches, need_d_input)
                                                         -> (d_filters, d_x, d_pooled), one part

The undecorated function stays reachable as ``SimpleCNN.forward.unguarded`` (likewise
backward): ``features`` and ``gradients``, the stateless routes, run it without the cache.
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from plumbing import process_tuning

if TYPE_CHECKING:
    from simple_cnn import SimpleCNN

MIN_IMAGES_PER_THREAD = 32  # with fewer, sharing Python's lock costs more than a thread saves
PART_BYTES = 6 * 2**20  # see images_per_part


class NonFiniteFeaturesError(ValueError):
    """The features came out NaN or infinite: the input or the filters are far too large."""


class NonFiniteGradientsError(ValueError):
    """The filter gradients, or the filters after the update, came out NaN or infinite."""


class Guard:
    """What the guard keeps on each network: the last forward()'s caches, and a lock."""

    def __init__(self) -> None:
        self.caches: list = []  # what the last forward() kept for backward(), one per part
        self.part_sizes: list[int] = []  # images in each part
        self.thread: int | None = None  # the thread that ran that forward()
        self.busy = threading.Lock()  # held inside forward() and backward()

    def __getstate__(self) -> dict:
        return {}  # a copy (pickled, e.g. for another process) has run no forward() yet

    def __setstate__(self, state: dict) -> None:
        self.__init__()


# --------------------------------------------------------------------------------------------
# The decorators
# --------------------------------------------------------------------------------------------


def guard_forward(network_forward: Callable) -> Callable:
    """``cnn.forward(x) -> features`` around ``network_forward(cnn, x) -> (features, caches)``.

    Checks x, runs the network on each part of the batch (in threads), keeps the caches for
    backward() and checks the features.
    """

    def forward(self: SimpleCNN, x: ArrayLike) -> np.ndarray:
        x = check_input(self, x)
        guard = self._guard
        with _one_thread_at_a_time(guard, "forward"):
            parts = split_batch(self, x)
            results = run_parts(self, _quietly(network_forward, self), parts)
            guard.caches = [caches for _, caches in results]
            guard.part_sizes = [len(part) for part in parts]
            guard.thread = threading.get_ident()
        return check_features(self, np.concatenate([features for features, _ in results]), x)

    return _named_like(forward, network_forward)


def guard_backward(network_backward: Callable) -> Callable:
    """``cnn.backward(d_out, learning_rate=0.001) -> d_filters`` around
    ``network_backward(cnn, d_out, caches) -> (d_filters, d_x, d_pooled)``.

    Checks d_out and learning_rate, runs the backward pass on each part of the last forward()'s
    batch (in threads), sums the parts' filter gradients, checks them, and unless learning_rate
    is 0 takes one step of plain gradient descent with them (``cnn.sgd_step``).
    """

    def backward(
        self: SimpleCNN, d_out: ArrayLike, learning_rate: float = 0.001
    ) -> tuple[np.ndarray, ...]:
        learning_rate = check_learning_rate(learning_rate)
        guard = self._guard
        with _one_thread_at_a_time(guard, "backward"):
            d_out = check_d_out(self, d_out)
            d_parts = np.split(d_out, np.cumsum(guard.part_sizes)[:-1])
            results = run_parts(self, _quietly(network_backward, self), d_parts, guard.caches)
        with _overflow_reported_by_the_checks():
            # The loss is a sum over images, so each filter gradient is the sum of the parts'.
            d_filters = tuple(sum(parts) for parts in zip(*(r[0] for r in results), strict=True))
        check_gradients(self, d_filters, d_out)
        if learning_rate:
            with _overflow_reported_by_the_checks():
                self.sgd_step(d_filters, learning_rate)
        return d_filters

    return _named_like(backward, network_backward)


def _named_like(guarded: Callable, network_function: Callable) -> Callable:
    """The guarded method, with the network function's name and docstring (its signature is
    the guarded one's, what a user calls), and the network function as ``.unguarded``."""
    guarded.__name__ = network_function.__name__
    guarded.__qualname__ = network_function.__qualname__
    guarded.__module__ = network_function.__module__
    guarded.__doc__ = network_function.__doc__
    guarded.unguarded = network_function
    return guarded


# --------------------------------------------------------------------------------------------
# The stateless routes: the network functions without the cache, from any thread
# --------------------------------------------------------------------------------------------


def features(cnn: SimpleCNN, x: ArrayLike, then: Callable[[np.ndarray], Any] | None) -> np.ndarray:
    """SimpleCNN.features: the forward pass keeping no cache, part by part, in threads.

    A large batch goes through in groups, one part per thread each, so that a part's arrays stay
    about the size of a core's cache (see images_per_part).
    """
    x = check_input(cnn, x)
    network_forward = type(cnn).forward.unguarded
    group = cnn.threads * images_per_part(cnn)

    def part_features(part: np.ndarray) -> np.ndarray:
        with _overflow_reported_by_the_checks():
            features, _ = network_forward(cnn, part, keep_cache=False)
        features = check_features(cnn, features, part)
        return features if then is None else then(features)

    return np.concatenate(
        [
            result
            for start in range(0, len(x), group)
            for result in run_parts(cnn, part_features, split_batch(cnn, x[start : start + group]))
        ]
    )


def gradients(cnn: SimpleCNN, x: ArrayLike, d_features: ArrayLike) -> tuple:
    """SimpleCNN.gradients: forward and backward in the calling thread, keeping nothing.

    Returns (d_filters per stage, d loss / d x, d loss / d every stage's output).
    """
    x = check_input(cnn, x)
    with _overflow_reported_by_the_checks():
        features, caches = type(cnn).forward.unguarded(cnn, x)
    d_features = check_gradient(cnn, d_features, features.shape, "d_features")
    with _overflow_reported_by_the_checks():
        d_filters, d_input, d_pooled = type(cnn).backward.unguarded(
            cnn, d_features, caches, need_d_input=True
        )
    check_gradients(cnn, [*d_filters, d_input], d_features)
    return d_filters, d_input, d_pooled


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------


def split_batch(cnn: SimpleCNN, x: np.ndarray) -> list[np.ndarray]:
    """Cut a batch into one part per thread, or leave it whole when it is too small to pay."""
    parts = min(cnn.threads, len(x) // MIN_IMAGES_PER_THREAD)
    return np.array_split(x, parts) if parts > 1 else [x]


def run_parts(cnn: SimpleCNN, function: Callable, *part_lists: Sequence) -> list:
    """``function`` applied to each part, in parallel threads unless cnn.threads is 1."""
    if cnn.threads == 1:
        return [function(*parts) for parts in zip(*part_lists, strict=True)]
    return process_tuning.map_in_threads(function, *part_lists)


def _quietly(network_function: Callable, cnn: SimpleCNN) -> Callable:
    """network_function(cnn, *parts) with NumPy's overflow warnings off, in the thread that
    runs it (NumPy's error state belongs to each thread)."""

    def run(*parts: Any) -> Any:
        with _overflow_reported_by_the_checks():
            return network_function(cnn, *parts)

    return run


def images_per_part(cnn: SimpleCNN) -> int:
    """Images one thread takes at a time in features(): as many as keep the first stage's
    convolution output, the biggest array of the pass, within PART_BYTES (a few MB: about
    a core's cache), and at least MIN_IMAGES_PER_THREAD. Past that, the pass streams its
    arrays through memory instead of the cache and takes longer per image."""
    stage = cnn.stages[0]
    bytes_per_image = stage.out_channels * stage.conv_size[0] * stage.conv_size[1]
    bytes_per_image *= cnn.dtype.itemsize
    return max(MIN_IMAGES_PER_THREAD, PART_BYTES // bytes_per_image)


@contextmanager
def _one_thread_at_a_time(guard: Guard, method: str) -> Iterator[None]:
    """Refuse a second thread inside forward()/backward(): they share one cache."""
    if not guard.busy.acquire(blocking=False):
        raise RuntimeError(
            f"SimpleCNN.{method}() was called while another thread is inside forward() or "
            "backward() of the same network, which share what forward() keeps; use "
            "cnn.features(x) or cnn.gradients(x, d) from several threads, or one SimpleCNN "
            "per thread"
        )
    try:
        yield
    finally:
        guard.busy.release()


def _overflow_reported_by_the_checks() -> np.errstate:
    """Silence NumPy's overflow warnings: check_features and check_gradients report an
    overflow, with its cause."""
    return np.errstate(over="ignore", invalid="ignore")


# --------------------------------------------------------------------------------------------
# Checks: every mistake gets a ValueError saying what was expected and what came.
# --------------------------------------------------------------------------------------------


def renamed_filters_keyword(
    num_filters: Sequence[int], filters: Sequence[int] | None
) -> Sequence[int]:
    """SimpleCNN(filters=...), the old name of num_filters, kept for code written with it."""
    if filters is None:
        return num_filters
    warnings.warn(
        "SimpleCNN(filters=...) is now SimpleCNN(num_filters=...): cnn.filters are the "
        "filters themselves",
        DeprecationWarning,
        stacklevel=3,
    )
    return filters


def check_settings(impl: str, dtype: Any, seed: Any, threads: Any) -> None:
    """SimpleCNN's settings other than its stages (simple_cnn.plan_stages checks those)."""
    if impl not in ("fast", "loops"):
        raise ValueError(f"impl must be one of ['fast', 'loops'], got {impl!r}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if seed is not None and (
        not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0
    ):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")


def real_array(x: ArrayLike, layer: str) -> np.ndarray:
    """x as an array of real numbers for a layer used on its own (relu, softmax, ...); only
    its dtype is looked at, so it costs nothing inside forward()."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise ValueError(f"{layer} takes an array of real numbers, got dtype {x.dtype}")
    return x


def check_stage_index(cnn: SimpleCNN, index: Any) -> int:
    """A stage's index, 0 for the first: an integer below the number of stages."""
    stages = len(cnn.stages)
    if (
        not isinstance(index, numbers.Integral)
        or isinstance(index, bool)
        or not 0 <= index < stages
    ):
        raise ValueError(
            f"the stage index must be 0 to {stages - 1} (this network has {stages} "
            f"stage{'s' if stages > 1 else ''}), got {index!r}"
        )
    return int(index)


def as_finite_array(
    cnn: SimpleCNN, x: ArrayLike, name: str, not_finite: type[ValueError] = ValueError
) -> np.ndarray:
    """x as an array of the network's dtype, refused if complex, not numeric, or not finite
    (raising ``not_finite``, a kind of ValueError, in that last case)."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise ValueError(
            f"{name} holds complex numbers, dtype {x.dtype}; pass real values (x.real, or "
            "np.abs(x) for magnitudes)"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {x.dtype}")
    with np.errstate(over="ignore"):  # an overflow is reported below, with its size
        cast = x.astype(cnn.dtype, copy=False)
    if not np.isfinite(cast).all():
        if cast is not x and np.isfinite(x).all():
            raise not_finite(
                f"{name} has values up to {float(np.abs(x).max()):.3g}, beyond "
                f"{cnn.dtype.name}'s range; expected values that fit in {cnn.dtype.name}"
            )
        raise not_finite(f"{name} contains NaN or infinity; expected finite values")
    return cast


def check_input(cnn: SimpleCNN, x: ArrayLike) -> np.ndarray:
    """Images for the network: float pixels, (N, C, H, W) or one image (C, H, W), finite."""
    dtype = np.asarray(x).dtype
    if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
        raise ValueError(
            f"input has dtype {dtype}, but SimpleCNN takes float pixels scaled to [0, 1]; "
            "for 0-255 images pass x / 255 (inference.images_to_input does that)"
        )
    x = as_finite_array(cnn, x, "input")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"input pixels range from {float(x.min()):.4g} to {float(x.max()):.4g}, but "
            "SimpleCNN takes pixels scaled to [0, 1]; for 0-255 images pass x / 255 "
            "(inference.images_to_input does that)"
        )
    if x.shape == cnn.input_shape:
        x = x[np.newaxis]  # one image is a batch of one
    if x.ndim != 4 or x.shape[1:] != cnn.input_shape or x.shape[0] == 0:
        c, h, w = cnn.input_shape
        hint = "; for images shaped (N, H, W) use x[:, np.newaxis]" if c == 1 else ""
        raise ValueError(
            f"input must have shape (N, {c}, {h}, {w}) or ({c}, {h}, {w}), got {x.shape}{hint}"
        )
    return x


def check_features(cnn: SimpleCNN, features: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Refuse features that overflowed, saying whether the filters or the input did it."""
    if np.isfinite(features).all():
        return features
    for number, filters in enumerate(cnn.filters, start=1):
        if not np.isfinite(filters).all():
            raise NonFiniteFeaturesError(
                f"conv{number}'s filters hold NaN or infinity, so the features do too "
                "(training diverged?)"
            )
    largest_filter = max(float(np.abs(filters).max()) for filters in cnn.filters)
    raise NonFiniteFeaturesError(
        f"the features overflowed {cnn.dtype.name} to infinity or NaN (the input's largest "
        f"value is {float(np.abs(x).max()):.3g}, the filters' {largest_filter:.3g}); "
        "SimpleCNN expects pixels scaled to [0, 1]"
    )


def check_gradients(cnn: SimpleCNN, gradients: Sequence[np.ndarray], d_out: np.ndarray) -> None:
    """Refuse gradients that overflowed: applied, they would make every filter NaN."""
    if all(np.isfinite(gradient).all() for gradient in gradients):
        return
    raise NonFiniteGradientsError(
        f"the gradients overflowed {cnn.dtype.name} to infinity or NaN (the incoming "
        f"gradient's largest value is {float(np.abs(d_out).max()):.3g}); the filters are "
        "kept: scale the loss down"
    )


def check_update(
    new_filters: Sequence[np.ndarray], learning_rate: float, d_filters: Sequence[np.ndarray]
) -> None:
    """Refuse a gradient step that overflowed the filters (before they are replaced)."""
    if all(np.isfinite(filters).all() for filters in new_filters):
        return
    largest = max(float(np.abs(g).max()) for g in d_filters)
    raise NonFiniteGradientsError(
        f"the update overflowed the filters (learning_rate {learning_rate:g} times gradients "
        f"up to {largest:.3g}); the filters are kept: use a smaller learning_rate"
    )


def check_learning_rate(learning_rate: Any) -> float:
    """A finite number >= 0, as a float."""
    if (
        not isinstance(learning_rate, numbers.Real)
        or isinstance(learning_rate, bool)
        or not math.isfinite(learning_rate)
        or learning_rate < 0
    ):
        raise ValueError(
            f"learning_rate must be a finite number >= 0 (0 only computes the gradients), "
            f"got {learning_rate!r}"
        )
    return float(learning_rate)


def check_d_out(cnn: SimpleCNN, d_out: ArrayLike) -> np.ndarray:
    """d_out for backward(): after a forward() in this thread, shaped like its features."""
    guard = cnn._guard
    if not guard.caches:
        raise ValueError("backward() called before forward(); run forward(x) on a batch first")
    if guard.thread != threading.get_ident():
        raise RuntimeError(
            "backward() was called from another thread than the forward() it belongs to, "
            "which another thread may have replaced since; run forward() and backward() in "
            "the same thread (or use cnn.gradients(x, d), which keeps nothing)"
        )
    n_images = sum(guard.part_sizes)
    return check_gradient(cnn, d_out, (n_images, cnn.num_features), "d_out")


def check_gradient(
    cnn: SimpleCNN, d_out: ArrayLike, expected_shape: tuple, name: str
) -> np.ndarray:
    """A finite gradient shaped like the output it belongs to (NaN or infinity in it is
    NonFiniteGradientsError: a training loop stops on it as on one that backward() computed)."""
    d_out = as_finite_array(cnn, d_out, name, NonFiniteGradientsError)
    if d_out.shape != tuple(expected_shape):
        raise ValueError(
            f"{name} must have shape {tuple(expected_shape)} (the forward output's), "
            f"got {d_out.shape}"
        )
    return d_out


def check_images(cnn: SimpleCNN, x: ArrayLike, name: str) -> np.ndarray:
    """Finite (N, C, H, W) arrays, for the layer methods."""
    x = as_finite_array(cnn, x, name)
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, C, H, W), got shape {x.shape}")
    return x


def check_conv_args(
    cnn: SimpleCNN, x: ArrayLike, filters: ArrayLike, padding: int
) -> tuple[np.ndarray, np.ndarray]:
    """The arguments of SimpleCNN.conv2d: any images and square filters that fit them."""
    x = check_images(cnn, x, "x")
    filters = check_images(cnn, filters, "filters")
    if not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    if filters.shape[2] != filters.shape[3]:
        raise ValueError(f"filters must be square (F, C, K, K), got shape {filters.shape}")
    if filters.shape[1] != x.shape[1]:
        raise ValueError(
            f"filters {filters.shape} expect {filters.shape[1]} input channels, "
            f"but x {x.shape} has {x.shape[1]}"
        )
    k = filters.shape[2]
    if min(x.shape[2:]) + 2 * padding < k:
        raise ValueError(
            f"a {k}x{k} filter does not fit in x {x.shape} with padding {padding}; "
            f"images must be at least {k - 2 * padding} pixels on each side"
        )
    return x, filters


def check_pool_args(cnn: SimpleCNN, x: ArrayLike, size: int, stride: int) -> np.ndarray:
    """The arguments of SimpleCNN.maxpool2d: any images a size x size window fits in."""
    x = check_images(cnn, x, "x")
    for name, value in (("size", size), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"pooling {name} must be a positive integer, got {value!r}")
    if min(x.shape[2:]) < size:
        raise ValueError(f"a {size}x{size} pooling window does not fit in x {x.shape}")
    return x
