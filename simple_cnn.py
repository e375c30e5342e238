"""SimpleCNN: convolution -> ReLU -> 2x2 max-pool stages, forward and backward, in NumPy.

By default it is the feature extractor of LeNet-5:

    image (N, 1, 28, 28)
      -> pad 2, conv1: 6 filters 5x5  -> (N, 6, 28, 28) -> ReLU -> max-pool 2x2 -> (N, 6, 14, 14)
      -> conv2: 16 filters 5x5        -> (N, 16, 10, 10) -> ReLU -> max-pool 2x2 -> (N, 16, 5, 5)
      -> flatten (channel-major)      -> (N, 400) features for a dense classifier head

Any other stack of such stages is one argument away: ``SimpleCNN(num_filters=(32, 64),
kernel_sizes=3, paddings="valid")`` is the convolutional part of Keras' MNIST example.
``num_filters`` are counts; ``cnn.filters`` are the filters themselves, one array per stage.

The layers themselves live in ``layers.py`` (a nested-loop reference and a fast vectorised
version of each); this class checks its inputs, keeps what the backward pass needs, and chains
the layers. It imports only NumPy (and threadpoolctl, through ``process_tuning.py``).

Threads: ``forward`` keeps what ``backward`` needs, so one SimpleCNN trains in one thread at a
time (a second thread gets a RuntimeError, not wrong gradients). ``features``, ``gradients``,
``feature_maps`` and the layer methods keep nothing: call them from any number of threads.
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import layers
from plumbing import process_tuning

POOL_SIZE = 2  # every stage ends with 2x2 max-pooling, stride 2
LENET_PADDINGS = (2, 0)  # LeNet-5's: the 28x28 input padded to its 32x32 for stage 1, none after

# How each implementation runs one stage's convolution + pooling, (forward, backward), by the
# parity of the kernel size: the fused fast layer needs an odd one (see layers.py).
STAGE_LAYERS = {
    "loops": {
        "odd": (layers.conv2d_maxpool2d_forward_loops, layers.conv2d_maxpool2d_backward_loops),
        "even": (layers.conv2d_maxpool2d_forward_loops, layers.conv2d_maxpool2d_backward_loops),
    },
    "fast": {
        "odd": (layers.conv2d_maxpool2d_forward_fast, layers.conv2d_maxpool2d_backward_fast),
        "even": (
            layers.conv2d_maxpool2d_forward_unfused,
            layers.conv2d_maxpool2d_backward_unfused,
        ),
    },
}
LAYERS = {
    "loops": {
        "conv2d": layers.conv2d_forward_loops,
        "conv2d_backward": layers.conv2d_backward_loops,
        "maxpool2d": layers.maxpool2d_forward_loops,
        "maxpool2d_backward": layers.maxpool2d_backward_loops,
    },
    "fast": {
        "conv2d": layers.conv2d_forward_fast,
        "conv2d_backward": layers.conv2d_backward_fast,
        "maxpool2d": layers.maxpool2d_forward_fast,
        "maxpool2d_backward": layers.maxpool2d_backward_fast,
    },
}


class NonFiniteFeaturesError(ValueError):
    """The features came out NaN or infinite: the input or the filters are far too large."""


class NonFiniteGradientsError(ValueError):
    """The filter gradients, or the filters after the update, came out NaN or infinite."""


@dataclass(frozen=True)
class Stage:
    """One conv -> ReLU -> 2x2 max-pool stage and the sizes it maps between.

    ``conv_size`` is (H + 2p - K + 1, W + 2p - K + 1); ``out_size`` is half of it, rounded
    down: a last odd row or column of the convolution has no pooling window and is dropped, as
    TensorFlow's "valid" pooling drops it.
    """

    in_channels: int
    out_channels: int  # the number of filters
    kernel_size: int
    padding: int
    in_size: tuple[int, int]
    conv_size: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def filters_shape(self) -> tuple[int, int, int, int]:
        """(F, C, K, K)."""
        return (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)


def plan_stages(
    num_filters: Sequence[int],
    kernel_sizes: int | Sequence[int],
    paddings: int | str | Sequence[int | str],
    input_shape: Sequence[int],
) -> list[Stage]:
    """Check a configuration and work out every stage's sizes.

    Parameters
    ----------
    num_filters : sequence of int
        How many filters each stage has, one entry per stage.
    kernel_sizes : int or sequence of int
        Kernel size K per stage (K x K filters); one int applies to every stage.
    paddings : int, "same", "valid", or a sequence of them
        Zeros added on each side before each convolution. "valid" is 0; "same" is (K - 1) / 2,
        which keeps the size (odd K only). One value applies to every stage.
    input_shape : (C, H, W)

    Raises
    ------
    ValueError
        One line saying which setting is wrong, or at which stage the image becomes smaller
        than the pooling window.
    """
    num_filters = _positive_ints(num_filters, "num_filters")
    if not num_filters:
        raise ValueError("num_filters must list at least one stage, e.g. num_filters=(6, 16)")
    n_stages = len(num_filters)
    kernel_sizes = _positive_ints(
        _per_stage(kernel_sizes, n_stages, "kernel_sizes"), "kernel_sizes"
    )
    paddings = _per_stage(paddings, n_stages, "paddings")
    input_shape = _positive_ints(input_shape, "input_shape")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape}")

    stages = []
    channels, height, width = input_shape
    for number, (count, k, padding) in enumerate(
        zip(num_filters, kernel_sizes, paddings, strict=True), start=1
    ):
        padding = _resolve_padding(padding, k, number)
        conv_size = (height + 2 * padding - k + 1, width + 2 * padding - k + 1)
        if min(conv_size) < POOL_SIZE:
            raise ValueError(
                f"stage {number}: its {height}x{width} input, padded by {padding} and convolved "
                f"with {k}x{k} filters, gives {conv_size[0]}x{conv_size[1]}, smaller than the "
                f"{POOL_SIZE}x{POOL_SIZE} pooling window; use fewer stages, smaller kernels or "
                "more padding"
            )
        out_size = (conv_size[0] // POOL_SIZE, conv_size[1] // POOL_SIZE)
        stages.append(Stage(channels, count, k, padding, (height, width), conv_size, out_size))
        channels, (height, width) = count, out_size
    return stages


def _per_stage(value, n_stages: int, name: str) -> list:
    """One value per stage: a single value repeated, or a sequence of exactly n_stages."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return [value] * n_stages  # checked stage by stage by the caller
    values = list(value)
    if len(values) != n_stages:
        raise ValueError(per_stage_mismatch(name, values, n_stages))
    return values


def per_stage_mismatch(name: str, values: Sequence, n_stages: int) -> str:
    """Why a per-stage setting does not fit the stages: how many values for how many stages.

    LeNet-5's paddings are named as such: being the default, they are what a network of any
    other number of stages meets first, without its author having written them.
    """
    stages = "1 stage" if n_stages == 1 else f"{n_stages} stages"
    shown = ",".join(str(value) for value in values)
    if "padding" in name and tuple(values) == LENET_PADDINGS:
        shown += ": LeNet-5's, the default"
    return (
        f"{name} has {len(values)} values ({shown}) for {stages}; give one per stage, or one "
        "for all"
    )


def _positive_ints(values, name: str) -> tuple[int, ...]:
    try:
        values = tuple(values)
    except TypeError:
        message = f"{name} must be a sequence of positive integers, got {values!r}"
        raise ValueError(message) from None
    for value in values:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be positive integers, got {values}")
    return tuple(int(value) for value in values)


def _resolve_padding(padding, k: int, number: int) -> int:
    """A stage's padding as a number of pixels: "valid" is 0, "same" keeps the size."""
    if padding == "valid":
        return 0
    if padding == "same":
        if k % 2 == 0:
            raise ValueError(
                f"stage {number}: padding 'same' needs an odd kernel size to pad both sides "
                f"equally, got {k}; give the padding in pixels instead"
            )
        return (k - 1) // 2
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    raise ValueError(
        f"stage {number}: padding must be a number of pixels >= 0, 'same' or 'valid', "
        f"got {padding!r}"
    )


def _overflow_reported_by_check_features():
    """Silence NumPy's overflow warnings: _check_features (and _check_gradients) report an
    overflow, with its cause."""
    return np.errstate(over="ignore", invalid="ignore")


@dataclass
class Gradients:
    """What :meth:`SimpleCNN.gradients` returns for a batch x (N, C, H, W).

    ``filters[i]`` is d loss / d stage i's filters (F, C, K, K); ``input`` is d loss / d x;
    ``pooled[i]`` is d loss / d stage i's output (after its ReLU and pooling), (N, F, H, W).
    """

    filters: list[np.ndarray]
    input: np.ndarray
    pooled: list[np.ndarray]


class SimpleCNN:
    """Convolution -> ReLU -> 2x2 max-pool stages turning images into a vector of features.

    Parameters
    ----------
    num_filters : sequence of int
        How many filters each stage has; its length is the number of stages. (6, 16) is
        LeNet-5's. (``filters=`` is its old name, still accepted.)
    kernel_sizes : int or sequence of int
        K per stage, for K x K filters (stride 1, no bias); one int applies to all stages.
    paddings : int, "same", "valid" or a sequence of them
        Zeros added on each side before each convolution; one value applies to all stages.
        The default, (2, 0), is LeNet-5's for its two stages: give paddings for any other
        number of stages.
    input_shape : (C, H, W)
        One image's shape; (1, 28, 28) for MNIST.
    seed : int or None
        Seed for the He-initialised filters: the same seed gives the same filters.
    impl : {"fast", "loops"}
        "fast" (vectorised NumPy, the default) or "loops" (readable nested loops, very slow).
        Both compute the same numbers up to floating-point rounding.
    dtype : numpy float type
        float32 (the default, fast) or float64 (for gradient checks).
    threads : int or None
        Threads that share each batch, each running the network on its own slice of the images
        (the gradients add up), with NumPy's BLAS kept to one thread meanwhile. None: one per
        CPU core, at most 2. 1 runs everything in the calling thread and leaves BLAS alone.
        The results do not depend on it beyond float rounding.

    Attributes
    ----------
    filters : list of ndarray
        Stage i's filters, (F_i, C_i, K_i, K_i); ``conv1_filters`` is ``filters[0]``,
        ``conv2_filters`` is ``filters[1]``.
    stages : list of Stage
        Every stage's channels, kernel, padding and sizes.
    num_features : int
        Length of the feature vector: F * H * W of the last stage's output.
    """

    INPUT_SHAPE = (1, 28, 28)  # the default network's
    NUM_FEATURES = 400  # the default network's: 16 * 5 * 5
    MIN_IMAGES_PER_THREAD = 32  # with fewer, sharing Python's lock costs more than a thread saves
    PART_BYTES = 6 * 2**20  # see _images_per_part

    def __init__(
        self,
        num_filters: Sequence[int] = (6, 16),
        kernel_sizes: int | Sequence[int] = 5,
        paddings: int | str | Sequence[int | str] = LENET_PADDINGS,
        input_shape: Sequence[int] = (1, 28, 28),
        seed: int | None = None,
        impl: str = "fast",
        dtype=np.float32,
        threads: int | None = None,
        filters: Sequence[int] | None = None,
    ):
        if filters is not None:  # the old name of num_filters, kept for code written with it
            warnings.warn(
                "SimpleCNN(filters=...) is now SimpleCNN(num_filters=...): cnn.filters are the "
                "filters themselves",
                DeprecationWarning,
                stacklevel=2,
            )
            num_filters = filters
        if impl not in LAYERS:
            raise ValueError(f"impl must be one of {sorted(LAYERS)}, got {impl!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if seed is not None and (
            not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.stages = plan_stages(num_filters, kernel_sizes, paddings, input_shape)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.impl = impl
        self._layers = LAYERS[impl]
        self._stage_layers = [
            STAGE_LAYERS[impl]["odd" if stage.kernel_size % 2 else "even"] for stage in self.stages
        ]
        if impl == "fast":
            process_tuning.keep_freed_memory_for_reuse()
        rng = np.random.default_rng(seed)
        self.filters = [self._he_normal(rng, stage.filters_shape) for stage in self.stages]
        self.threads = threads if threads is not None else process_tuning.default_thread_count()
        self._caches = []  # what the last forward() kept for backward(), one per batch part
        self._caches_thread = None  # the thread that ran that forward()
        self._busy = threading.Lock()  # held inside forward() and backward()

    def _he_normal(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """He initialisation: std sqrt(2 / fan_in) keeps activations' scale through ReLU layers."""
        fan_in = shape[1] * shape[2] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(self.dtype)

    @property
    def num_features(self) -> int:
        last = self.stages[-1]
        return last.out_channels * last.out_size[0] * last.out_size[1]

    @property
    def architecture(self) -> dict:
        """The configuration, as plain values: ``SimpleCNN(**cnn.architecture)`` rebuilds it."""
        return {
            "num_filters": [stage.out_channels for stage in self.stages],
            "kernel_sizes": [stage.kernel_size for stage in self.stages],
            "paddings": [stage.padding for stage in self.stages],
            "input_shape": list(self.input_shape),
        }

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={tuple(value)}" for name, value in self.architecture.items())
        return f"SimpleCNN({settings}, impl={self.impl!r}, dtype={self.dtype.name})"

    def summary(self) -> str:
        """One line per stage with the shapes it maps between, like Keras' model.summary()."""
        c, h, w = self.input_shape
        lines = [f"input          ({c}, {h}, {w})"]
        for number, stage in enumerate(self.stages, start=1):
            f, k, p = stage.out_channels, stage.kernel_size, stage.padding
            lines.append(
                f"conv{number} {f} x {k}x{k}, pad {p}  -> ({f}, {stage.conv_size[0]}, "
                f"{stage.conv_size[1]}) -> ReLU -> max-pool 2x2 -> ({f}, {stage.out_size[0]}, "
                f"{stage.out_size[1]})"
            )
        lines.append(f"flatten        -> ({self.num_features},) features")
        return "\n".join(lines)

    # conv1_filters and conv2_filters: the names of the two-stage network, kept for its readers.
    @property
    def conv1_filters(self) -> np.ndarray:
        return self._stage_filters(0)

    @conv1_filters.setter
    def conv1_filters(self, value: np.ndarray) -> None:
        self.set_filters(0, value)

    @property
    def conv2_filters(self) -> np.ndarray:
        return self._stage_filters(1)

    @conv2_filters.setter
    def conv2_filters(self, value: np.ndarray) -> None:
        self.set_filters(1, value)

    def _stage_filters(self, index: int) -> np.ndarray:
        if index >= len(self.stages):
            raise AttributeError(
                f"this network has {len(self.stages)} stage(s), so no conv{index + 1}_filters; "
                "use cnn.filters[i]"
            )
        return self.filters[index]

    def set_filters(self, index: int, value) -> None:
        """Replace stage ``index``'s filters by ``value``, checked for shape and cast to dtype."""
        shape = self._stage_filters(index).shape
        value = self._as_finite_array(value, f"conv{index + 1} filters")
        if value.shape != shape:
            raise ValueError(f"conv{index + 1} filters must have shape {shape}, got {value.shape}")
        self.filters[index] = value

    # ----------------------------------------------------------------------------------------
    # The network
    # ----------------------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Features of a batch. x: (N, C, H, W), or one image (C, H, W) -> (N, num_features).

        Pixels are expected scaled to [0, 1]. Keeps every intermediate result for backward(),
        so the pair forward/backward belongs to one thread at a time.
        """
        x = self._check_input(x)
        with self._one_thread_at_a_time("forward"):
            results = self._map(self._forward_part, self._split_batch(x))
            self._caches = [caches for _, caches in results]
            self._caches_thread = threading.get_ident()
        return self._check_features(np.concatenate([features for features, _ in results]), x)

    def features(self, x: np.ndarray, then: Callable[[np.ndarray], np.ndarray] | None = None):
        """forward(x) without keeping anything for backward(): for inference, from any thread.

        The same numbers as forward(x), faster (no cache to fill) and safe to call from any
        number of threads at once. It reads the filters as they are at the moment of the call.
        ``then``, a function of a batch of features (a dense head, say), runs on each part of
        the batch in the thread that computed it, and its results come back instead.
        """
        x = self._check_input(x)
        # A large batch goes through in groups, one part per thread each, so that a part's
        # arrays stay about the size of a core's cache (see _images_per_part).
        group = self.threads * self._images_per_part()

        def part_features(part: np.ndarray) -> np.ndarray:
            features = self._check_features(self._forward_part(part, keep_cache=False)[0], part)
            return features if then is None else then(features)

        return np.concatenate(
            [
                result
                for start in range(0, len(x), group)
                for result in self._map(part_features, self._split_batch(x[start : start + group]))
            ]
        )

    def _images_per_part(self) -> int:
        """Images one thread takes at a time in features(): as many as keep the first stage's
        convolution output, the biggest array of the pass, within PART_BYTES (a few MB: about
        a core's cache), and at least MIN_IMAGES_PER_THREAD. Past that, the pass streams its
        arrays through memory instead of the cache and takes longer per image."""
        stage = self.stages[0]
        bytes_per_image = stage.out_channels * stage.conv_size[0] * stage.conv_size[1]
        bytes_per_image *= self.dtype.itemsize
        return max(self.MIN_IMAGES_PER_THREAD, self.PART_BYTES // bytes_per_image)

    def _forward_part(self, x: np.ndarray, keep_cache: bool = True):
        """The network on one part of the batch: (features (n, num_features), stage caches).

        Each convolution and the max-pooling after it run as one layer, conv2d_maxpool2d (see
        layers.py: the fast version computes the convolution pooling window by pooling window).

        ReLU is applied after max-pooling rather than before: the two commute (both keep the
        larger of two numbers), so pool(relu(conv)) = relu(pool(conv)), and ReLU on the pooled
        map touches 4x fewer numbers, forward and backward. The gradients are the same too:
        each window's first maximum is the same pixel either way, and where the maximum is not
        positive, ReLU passes no gradient in either order.
        """
        caches = []
        with _overflow_reported_by_check_features():
            for stage, filters, (conv_pool, _) in zip(
                self.stages, self.filters, self._stage_layers, strict=True
            ):
                pooled, cache = conv_pool(x, filters, stage.padding, need_cache=keep_cache)
                x = self.relu(pooled)  # = maxpool(relu(conv)): (n, F, H', W')
                caches.append((cache, x))
        return self.flatten(x), caches

    def backward(self, d_out: np.ndarray, learning_rate: float = 0.001) -> tuple[np.ndarray, ...]:
        """Backpropagate d_out = dLoss/dfeatures (N, num_features) of the last forward().

        Returns the filter gradients, one per stage (d_conv1_filters, d_conv2_filters, ...),
        each shaped like its filters, and applies ``filters -= learning_rate * gradient``;
        learning_rate=0 only computes the gradients.
        """
        learning_rate = self._check_learning_rate(learning_rate)
        with self._one_thread_at_a_time("backward"):
            d_out = self._check_d_out(d_out)
            part_sizes = [len(caches[-1][1]) for caches in self._caches]
            d_parts = np.split(d_out, np.cumsum(part_sizes)[:-1])
            results = self._map(self._backward_part, d_parts, self._caches)
        # The loss is a sum over images, so each filter gradient is the sum of the parts'.
        with _overflow_reported_by_check_features():
            d_filters = tuple(sum(parts) for parts in zip(*(r[0] for r in results), strict=True))
        self._check_gradients(d_filters, d_out)
        if learning_rate:
            with _overflow_reported_by_check_features():
                updated = [
                    f - learning_rate * g for f, g in zip(self.filters, d_filters, strict=True)
                ]
            if not all(np.isfinite(filters).all() for filters in updated):
                raise NonFiniteGradientsError(
                    f"the update overflowed the filters (learning_rate {learning_rate:g} times "
                    "gradients up to "
                    f"{max(float(np.abs(g).max()) for g in d_filters):.3g}); the filters are kept: "
                    "use a smaller learning_rate"
                )
            for filters, new_filters in zip(self.filters, updated, strict=True):
                filters[...] = new_filters  # in place: an optimizer may hold these arrays
        return d_filters

    def gradients(self, x: np.ndarray, d_features: np.ndarray) -> Gradients:
        """Forward and backward in one call, keeping nothing: safe from any thread.

        x: (N, C, H, W) or (C, H, W); d_features: (N, num_features), d loss / d features.
        Returns the gradients of the loss with respect to every stage's filters, to the input
        image and to every stage's output, from the same hand-written backward pass.
        """
        x = self._check_input(x)
        features, caches = self._forward_part(x)
        d_features = self._check_gradient(d_features, features.shape, "d_features")
        d_filters, d_input, d_pooled = self._backward_part(d_features, caches, need_d_input=True)
        self._check_gradients([*d_filters, d_input], d_features)
        return Gradients(filters=list(d_filters), input=d_input, pooled=d_pooled)

    def _backward_part(self, d_out: np.ndarray, caches: list, need_d_input: bool = False):
        """backward() for one part of the batch: d_out (n, num_features) -> the gradients.

        Returns (filter gradients per stage, d loss / d input or None, d loss / d every stage's
        output). The input image is not learned, so by default the first stage skips its d_x.
        """
        d_filters = [None] * len(self.stages)
        d_pooled = [None] * len(self.stages)
        d_x = d_out.reshape(caches[-1][1].shape)  # undo flatten: (n, F, H, W)
        with _overflow_reported_by_check_features():  # by _check_gradients
            for index in reversed(range(len(self.stages))):
                cache, pooled = caches[index]
                d_pooled[index] = d_x
                d_conv_pooled = d_x * self.relu_derivative(pooled)  # relu(p) > 0 where p > 0
                conv_pool_backward = self._stage_layers[index][1]
                need_d_x = index > 0 or need_d_input
                d_x, d_filters[index] = conv_pool_backward(d_conv_pooled, cache, need_d_x=need_d_x)
        return d_filters, d_x, d_pooled

    def _split_batch(self, x: np.ndarray) -> list[np.ndarray]:
        """Cut a batch into one part per thread, or leave it whole when it is too small to pay."""
        parts = min(self.threads, len(x) // self.MIN_IMAGES_PER_THREAD)
        return np.array_split(x, parts) if parts > 1 else [x]

    def _map(self, function, *part_lists) -> list:
        """function applied to each part; in parallel threads unless threads=1."""
        if self.threads == 1:
            return [function(*parts) for parts in zip(*part_lists, strict=True)]
        return process_tuning.map_in_threads(function, *part_lists)

    @contextmanager
    def _one_thread_at_a_time(self, method: str):
        """Refuse a second thread inside forward()/backward(): they share one cache."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                f"SimpleCNN.{method}() was called while another thread is inside forward() or "
                "backward() of the same network, which share what forward() keeps; use "
                "cnn.features(x) or cnn.gradients(x, d) from several threads, or one SimpleCNN "
                "per thread"
            )
        try:
            yield
        finally:
            self._busy.release()

    def feature_maps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's output for x (N, C, H, W) or (C, H, W), for looking at.

        Returns a dict with keys conv1, relu1, pool1, conv2, relu2, pool2, ... (one triple per
        stage), each (N, F, H, W). The layers run one by one, in the textbook order (conv, ReLU,
        pool); forward() gets the same last pool, flattened, by a faster route.
        """
        x = self._check_input(x)
        conv, pool = self._layers["conv2d"], self._layers["maxpool2d"]
        maps = {}
        for number, (stage, filters) in enumerate(zip(self.stages, self.filters, strict=True), 1):
            maps[f"conv{number}"] = conv(x, filters, stage.padding)[0]
            maps[f"relu{number}"] = self.relu(maps[f"conv{number}"])
            x = maps[f"pool{number}"] = pool(maps[f"relu{number}"], POOL_SIZE, POOL_SIZE)[0]
        return maps

    # ----------------------------------------------------------------------------------------
    # The layers, usable on their own: any batch size, channel count, image and filter size.
    # ----------------------------------------------------------------------------------------

    def conv2d(self, x: np.ndarray, filters: np.ndarray, padding: int = 0) -> np.ndarray:
        """Convolution, stride 1. x: (N, C, H, W), filters: (F, C, K, K) -> (N, F, Ho, Wo).

        Ho = H + 2 * padding - K + 1 (likewise Wo); ``padding`` zeros are added on each side.
        """
        x, filters = self._check_conv_args(x, filters, padding)
        return self._layers["conv2d"](x, filters, padding)[0]

    def conv2d_backward(
        self, d_out: np.ndarray, x: np.ndarray, filters: np.ndarray, padding: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of conv2d(x, filters, padding) given d_out (N, F, Ho, Wo).

        Returns (d_x (N, C, H, W), d_filters (F, C, K, K)).
        """
        x, filters = self._check_conv_args(x, filters, padding)
        out, cache = self._layers["conv2d"](x, filters, padding)
        d_out = self._check_gradient(d_out, out.shape, "d_out of conv2d")
        return self._layers["conv2d_backward"](d_out, cache)

    def maxpool2d(self, x: np.ndarray, size: int = 2, stride: int = 2) -> np.ndarray:
        """Max-pooling. x: (N, C, H, W) -> (N, C, Ho, Wo), where Ho = (H - size) // stride + 1.

        Windows that do not fit are dropped; Wo likewise.
        """
        x = self._check_pool_args(x, size, stride)
        return self._layers["maxpool2d"](x, size, stride)[0]

    def maxpool2d_backward(
        self, d_out: np.ndarray, x: np.ndarray, size: int = 2, stride: int = 2
    ) -> np.ndarray:
        """Gradient of maxpool2d(x, size, stride) given d_out (N, C, Ho, Wo) -> d_x (N, C, H, W).

        Each window's gradient goes to its first maximum in row-major order, never to every tie.
        """
        x = self._check_pool_args(x, size, stride)
        out, cache = self._layers["maxpool2d"](x, size, stride)
        d_out = self._check_gradient(d_out, out.shape, "d_out of maxpool2d")
        return self._layers["maxpool2d_backward"](d_out, cache)

    @staticmethod
    def relu(x: np.ndarray) -> np.ndarray:
        """max(0, x), elementwise; any shape."""
        return np.maximum(x, 0)

    @staticmethod
    def relu_derivative(x: np.ndarray) -> np.ndarray:
        """1 where x > 0, else 0 (at exactly 0 the derivative is taken as 0); same shape, dtype."""
        return (x > 0).astype(x.dtype)

    @staticmethod
    def softmax(x: np.ndarray) -> np.ndarray:
        """Softmax over the last axis of x (N, K): each row of logits becomes probabilities.

        Not used by forward(): the dense head (Keras) turns features into logits and probabilities.
        """
        exps = np.exp(x - np.max(x, axis=-1, keepdims=True))  # shifting avoids overflow
        return exps / np.sum(exps, axis=-1, keepdims=True)

    @staticmethod
    def flatten(x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C * H * W), channel-major: all of channel 0, then channel 1, ..."""
        return x.reshape(x.shape[0], -1)

    # ----------------------------------------------------------------------------------------
    # Input checks: every mistake gets a ValueError saying what was expected and what came.
    # ----------------------------------------------------------------------------------------

    def _as_finite_array(self, x, name: str) -> np.ndarray:
        x = np.asarray(x)
        if np.iscomplexobj(x):
            raise ValueError(
                f"{name} holds complex numbers, dtype {x.dtype}; pass real values (x.real, or "
                "np.abs(x) for magnitudes)"
            )
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"{name} must be a numeric array, got dtype {x.dtype}")
        with np.errstate(over="ignore"):  # an overflow is reported below, with its size
            cast = x.astype(self.dtype, copy=False)
        if not np.isfinite(cast).all():
            if cast is not x and np.isfinite(x).all():
                raise ValueError(
                    f"{name} has values up to {float(np.abs(x).max()):.3g}, beyond "
                    f"{self.dtype.name}'s range; expected values that fit in {self.dtype.name}"
                )
            raise ValueError(f"{name} contains NaN or infinity; expected finite values")
        return cast

    def _check_input(self, x) -> np.ndarray:
        dtype = np.asarray(x).dtype
        if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
            raise ValueError(
                f"input has dtype {dtype}, but SimpleCNN takes float pixels scaled to [0, 1]; "
                "for 0-255 images pass x / 255 (inference.images_to_input does that)"
            )
        x = self._as_finite_array(x, "input")
        if x.shape == self.input_shape:
            x = x[np.newaxis]  # one image is a batch of one
        if x.ndim != 4 or x.shape[1:] != self.input_shape or x.shape[0] == 0:
            c, h, w = self.input_shape
            hint = "; for images shaped (N, H, W) use x[:, np.newaxis]" if c == 1 else ""
            raise ValueError(
                f"input must have shape (N, {c}, {h}, {w}) or ({c}, {h}, {w}), got {x.shape}{hint}"
            )
        return x

    def _check_features(self, features: np.ndarray, x: np.ndarray) -> np.ndarray:
        if np.isfinite(features).all():
            return features
        for number, filters in enumerate(self.filters, start=1):
            if not np.isfinite(filters).all():
                raise NonFiniteFeaturesError(
                    f"conv{number}'s filters hold NaN or infinity, so the features do too "
                    "(training diverged?)"
                )
        largest_filter = max(float(np.abs(filters).max()) for filters in self.filters)
        raise NonFiniteFeaturesError(
            f"the features overflowed {self.dtype.name} to infinity or NaN (the input's largest "
            f"value is {float(np.abs(x).max()):.3g}, the filters' {largest_filter:.3g}); "
            "SimpleCNN expects pixels scaled to [0, 1]"
        )

    def _check_gradients(self, gradients, d_out: np.ndarray) -> None:
        """Refuse gradients that overflowed: applied, they would make every filter NaN."""
        if all(np.isfinite(gradient).all() for gradient in gradients):
            return
        raise NonFiniteGradientsError(
            f"the gradients overflowed {self.dtype.name} to infinity or NaN (the incoming "
            f"gradient's largest value is {float(np.abs(d_out).max()):.3g}); the filters are "
            "kept: scale the loss down"
        )

    def _check_learning_rate(self, learning_rate) -> float:
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

    def _check_d_out(self, d_out) -> np.ndarray:
        if not self._caches:
            raise ValueError("backward() called before forward(); run forward(x) on a batch first")
        if self._caches_thread != threading.get_ident():
            raise RuntimeError(
                "backward() was called from another thread than the forward() it belongs to, "
                "which another thread may have replaced since; run forward() and backward() in "
                "the same thread (or use cnn.gradients(x, d), which keeps nothing)"
            )
        n_images = sum(len(caches[-1][1]) for caches in self._caches)
        return self._check_gradient(d_out, (n_images, self.num_features), "d_out")

    def _check_gradient(self, d_out, expected_shape: tuple, name: str) -> np.ndarray:
        d_out = self._as_finite_array(d_out, name)
        if d_out.shape != tuple(expected_shape):
            raise ValueError(
                f"{name} must have shape {tuple(expected_shape)} (the forward output's), "
                f"got {d_out.shape}"
            )
        return d_out

    def _check_images(self, x, name: str) -> np.ndarray:
        x = self._as_finite_array(x, name)
        if x.ndim != 4:
            raise ValueError(f"{name} must have 4 dimensions (N, C, H, W), got shape {x.shape}")
        return x

    def _check_conv_args(self, x, filters, padding: int):
        x = self._check_images(x, "x")
        filters = self._check_images(filters, "filters")
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

    def _check_pool_args(self, x, size: int, stride: int) -> np.ndarray:
        x = self._check_images(x, "x")
        for name, value in (("size", size), ("stride", stride)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"pooling {name} must be a positive integer, got {value!r}")
        if min(x.shape[2:]) < size:
            raise ValueError(f"a {size}x{size} pooling window does not fit in x {x.shape}")
        return x
