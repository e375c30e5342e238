"""SimpleCNN: convolution -> ReLU -> 2x2 max-pool stages, forward and backward, in NumPy.

By default it is the feature extractor of LeNet-5:

    image (N, 1, 28, 28)
      -> pad 2, conv1: 6 filters 5x5  -> (N, 6, 28, 28) -> ReLU -> max-pool 2x2 -> (N, 6, 14, 14)
      -> conv2: 16 filters 5x5        -> (N, 16, 10, 10) -> ReLU -> max-pool 2x2 -> (N, 16, 5, 5)
      -> flatten (channel-major)      -> (N, 400) features for a dense classifier head

Any other stack of such stages is one argument away: ``SimpleCNN(num_filters=(32, 64),
kernel_sizes=3, paddings="valid")`` is the convolutional part of Keras' MNIST example.
``num_filters`` are counts; ``cnn.filters`` are the filters themselves, one array per stage.

Where to read what:

* this file: the network. ``SimpleCNN.forward`` runs the stages in order, ``SimpleCNN.backward``
  runs them in reverse, each stage's backward the mirror of its forward.
* ``fused_layers.py``: a stage's convolution and max-pooling as one layer, the way training runs.
* ``layers.py``: convolution and max-pooling on their own, as nested loops and vectorised.
* ``plumbing/network_guard.py``: what wraps forward and backward from outside (the checks, the
  threads that share a batch, a lock). A learner can skip it.

Threads: ``forward`` keeps what ``backward`` needs, so one SimpleCNN trains in one thread at a
time (a second thread gets a RuntimeError, not wrong gradients). ``features``, ``gradients``,
``feature_maps`` and the layer methods keep nothing: call them from any number of threads.
Imports only NumPy (and threadpoolctl, through ``plumbing/process_tuning.py``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import fused_layers
import layers
from plumbing import network_guard, process_tuning
from plumbing.network_guard import (
    NonFiniteFeaturesError,  # noqa: F401 (raised by the guard's checks, imported from here)
    NonFiniteGradientsError,  # noqa: F401
    guard_backward,
    guard_forward,
)

POOL_SIZE = 2  # every stage ends with 2x2 max-pooling, stride 2
LENET_PADDINGS = (2, 0)  # LeNet-5's: the 28x28 input padded to its 32x32 for stage 1, none after


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

    def __init__(
        self,
        num_filters: Sequence[int] = (6, 16),
        kernel_sizes: int | Sequence[int] = 5,
        paddings: int | str | Sequence[int | str] = LENET_PADDINGS,
        input_shape: Sequence[int] = (1, 28, 28),
        seed: int | None = None,
        impl: str = "fast",
        dtype: type[np.floating] | np.dtype = np.float32,
        threads: int | None = None,
        filters: Sequence[int] | None = None,
    ):
        num_filters = network_guard.renamed_filters_keyword(num_filters, filters)
        network_guard.check_settings(impl, dtype, seed, threads)
        self.stages = plan_stages(num_filters, kernel_sizes, paddings, input_shape)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.impl = impl
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.filters = [self._he_normal(rng, stage.filters_shape) for stage in self.stages]
        self.threads = threads if threads is not None else process_tuning.default_thread_count()
        if impl == "fast":
            process_tuning.keep_freed_memory_for_reuse()  # the same big arrays, step after step
        self._guard = network_guard.Guard()  # what forward() keeps for backward(), and a lock

    def _he_normal(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """He initialisation: std sqrt(2 / fan_in) keeps activations' scale through ReLU layers."""
        fan_in = shape[1] * shape[2] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(self.dtype)

    # ----------------------------------------------------------------------------------------
    # The network. The guard (plumbing/network_guard.py) checks what comes in and out, and runs
    # a large batch in parts on several threads: each function below sees one part.
    # ----------------------------------------------------------------------------------------

    @guard_forward
    def forward(self, x: np.ndarray, keep_cache: bool = True) -> tuple[np.ndarray, list]:
        """``cnn.forward(x)``: the features (N, num_features) of a batch x (N, C, H, W), or of
        one image (C, H, W).

        Pixels are expected scaled to [0, 1]. Keeps every intermediate result for backward(),
        so the pair forward/backward belongs to one thread at a time.

        Each stage's convolution and the max-pooling after it run as one layer (see
        fused_layers.py: the fast version computes the convolution pooling window by pooling
        window). ReLU is applied after max-pooling rather than before: the two commute (both
        keep the larger of two numbers), so pool(relu(conv)) = relu(pool(conv)), and ReLU on
        the pooled map touches 4x fewer numbers, forward and backward. The gradients are the
        same too: each window's first maximum is the same pixel either way, and where the
        maximum is not positive, ReLU passes no gradient in either order.

        Written for one part of the batch, returning (features, caches): ``cnn.forward(x)`` is
        this behind its guard, which checks x, keeps the caches for backward() and returns the
        features. ``keep_cache=False`` (features()) keeps nothing.
        """
        caches = []  # per stage: what its layer's backward needs, and the stage's output
        for stage, filters in zip(self.stages, self.filters, strict=True):
            if self.impl == "loops":  # the reference: nested loops
                pooled, cache = fused_layers.conv2d_maxpool2d_forward_loops(
                    x, filters, stage.padding, keep_cache
                )
            elif stage.kernel_size % 2 == 1:  # the fused layer, the way training runs
                pooled, cache = fused_layers.conv2d_maxpool2d_forward_fast(
                    x, filters, stage.padding, keep_cache
                )
            else:  # an even kernel's patches cannot be cut in halves: conv, then pool
                pooled, cache = fused_layers.conv2d_maxpool2d_forward_unfused(
                    x, filters, stage.padding, keep_cache
                )
            out = self.relu(pooled)  # = maxpool(relu(conv)): (n, F, H', W')
            caches.append((cache, out))
            x = out  # the next stage's input
        return self.flatten(x), caches

    @guard_backward
    def backward(
        self, d_out: np.ndarray, caches: list, need_d_input: bool = False
    ) -> tuple[list[np.ndarray], np.ndarray | None, list[np.ndarray]]:
        """``cnn.backward(d_out, learning_rate=0.001)``: backpropagate d_out = dLoss/dfeatures
        (N, num_features) of the last forward().

        Returns the filter gradients, one per stage (d_conv1_filters, d_conv2_filters, ...),
        each shaped like its filters, and applies ``filters -= learning_rate * gradient``
        (sgd_step, below); learning_rate=0 only computes the gradients, as the trainer does
        before its Adam step (adam.py).

        The stages run last first, each the mirror of its forward: back through the ReLU, then
        through the pooling and the convolution, to the stage's filters and its input.

        Written for one part of the batch and the caches its forward kept, returning
        (d_filters, d loss / d input, d loss / d every stage's output): ``cnn.backward(d_out,
        learning_rate=0.001)`` is this behind its guard, which checks d_out, sums the parts'
        filter gradients, takes the sgd_step and returns them. The input image is not learned,
        so the first stage skips its d_x (None) unless ``need_d_input`` (for gradients()).
        """
        d_filters = [None] * len(self.stages)
        d_pooled = [None] * len(self.stages)  # d loss / d each stage's output
        d_x = d_out.reshape(caches[-1][1].shape)  # undo flatten: (n, F, H, W)
        for index in reversed(range(len(self.stages))):  # the last stage first
            stage, (cache, out) = self.stages[index], caches[index]
            d_pooled[index] = d_x  # d loss / d out
            # Back through ReLU: its derivative, 1 where pooled > 0, is 1 where out > 0.
            d_conv_pooled = d_x * self.relu_derivative(out)
            need_d_x = index > 0 or need_d_input
            if self.impl == "loops":
                d_x, d_filters[index] = fused_layers.conv2d_maxpool2d_backward_loops(
                    d_conv_pooled, cache, need_d_x
                )
            elif stage.kernel_size % 2 == 1:
                d_x, d_filters[index] = fused_layers.conv2d_maxpool2d_backward_fast(
                    d_conv_pooled, cache, need_d_x
                )
            else:
                d_x, d_filters[index] = fused_layers.conv2d_maxpool2d_backward_unfused(
                    d_conv_pooled, cache, need_d_x
                )
        return d_filters, d_x, d_pooled

    def sgd_step(self, d_filters: Sequence[np.ndarray], learning_rate: float) -> None:
        """Plain gradient descent, what backward(d_out, learning_rate) ends with unless
        learning_rate is 0: ``filters -= learning_rate * gradient`` for every stage.

        A step that would overflow the filters is refused (NonFiniteGradientsError) and leaves
        them as they were.
        """
        new_filters = [f - learning_rate * d for f, d in zip(self.filters, d_filters, strict=True)]
        network_guard.check_update(new_filters, learning_rate, d_filters)
        for filters, new in zip(self.filters, new_filters, strict=True):
            filters[...] = new  # in place: an optimizer may hold these arrays

    def features(
        self, x: np.ndarray, then: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """forward(x) without keeping anything for backward(): for inference, from any thread.

        The same numbers as forward(x), faster (no cache to fill) and safe to call from any
        number of threads at once. It reads the filters as they are at the moment of the call.
        ``then``, a function of a batch of features (a dense head, say), runs on each part of
        the batch in the thread that computed it, and its results come back instead.
        """
        return network_guard.features(self, x, then)  # forward(keep_cache=False), part by part

    def gradients(self, x: np.ndarray, d_features: np.ndarray) -> Gradients:
        """Forward and backward in one call, keeping nothing: safe from any thread.

        x: (N, C, H, W) or (C, H, W); d_features: (N, num_features), d loss / d features.
        Returns the gradients of the loss with respect to every stage's filters, to the input
        image and to every stage's output, from the same hand-written backward pass.
        """
        d_filters, d_input, d_pooled = network_guard.gradients(self, x, d_features)
        return Gradients(filters=list(d_filters), input=d_input, pooled=d_pooled)

    def feature_maps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's output for x (N, C, H, W) or (C, H, W), for looking at.

        Returns a dict with keys conv1, relu1, pool1, conv2, relu2, pool2, ... (one triple per
        stage), each (N, F, H, W). The layers run one by one, in the textbook order (conv, ReLU,
        pool); forward() gets the same last pool, flattened, by a faster route.
        """
        x = network_guard.check_input(self, x)
        maps = {}
        for number, (stage, filters) in enumerate(zip(self.stages, self.filters, strict=True), 1):
            maps[f"conv{number}"] = self._conv2d_forward(x, filters, stage.padding)[0]
            maps[f"relu{number}"] = self.relu(maps[f"conv{number}"])
            x = self._maxpool2d_forward(maps[f"relu{number}"], POOL_SIZE, POOL_SIZE)[0]
            maps[f"pool{number}"] = x
        return maps

    # ----------------------------------------------------------------------------------------
    # The layers, usable on their own: any batch size, channel count, image and filter size.
    # ----------------------------------------------------------------------------------------

    def conv2d(self, x: np.ndarray, filters: np.ndarray, padding: int = 0) -> np.ndarray:
        """Convolution, stride 1. x: (N, C, H, W), filters: (F, C, K, K) -> (N, F, Ho, Wo).

        Ho = H + 2 * padding - K + 1 (likewise Wo); ``padding`` zeros are added on each side.
        """
        x, filters = network_guard.check_conv_args(self, x, filters, padding)
        return self._conv2d_forward(x, filters, padding)[0]

    def conv2d_backward(
        self, d_out: np.ndarray, x: np.ndarray, filters: np.ndarray, padding: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of conv2d(x, filters, padding) given d_out (N, F, Ho, Wo).

        Returns (d_x (N, C, H, W), d_filters (F, C, K, K)).
        """
        x, filters = network_guard.check_conv_args(self, x, filters, padding)
        out, cache = self._conv2d_forward(x, filters, padding)
        d_out = network_guard.check_gradient(self, d_out, out.shape, "d_out of conv2d")
        if self.impl == "loops":
            return layers.conv2d_backward_loops(d_out, cache)
        return layers.conv2d_backward_fast(d_out, cache)

    def _conv2d_forward(self, x: np.ndarray, filters: np.ndarray, padding: int):
        """layers.py's convolution, the loops or the fast one as ``impl`` says: (out, cache)."""
        if self.impl == "loops":
            return layers.conv2d_forward_loops(x, filters, padding)
        return layers.conv2d_forward_fast(x, filters, padding)

    def maxpool2d(self, x: np.ndarray, size: int = 2, stride: int = 2) -> np.ndarray:
        """Max-pooling. x: (N, C, H, W) -> (N, C, Ho, Wo), where Ho = (H - size) // stride + 1.

        Windows that do not fit are dropped; Wo likewise.
        """
        x = network_guard.check_pool_args(self, x, size, stride)
        return self._maxpool2d_forward(x, size, stride)[0]

    def maxpool2d_backward(
        self, d_out: np.ndarray, x: np.ndarray, size: int = 2, stride: int = 2
    ) -> np.ndarray:
        """Gradient of maxpool2d(x, size, stride) given d_out (N, C, Ho, Wo) -> d_x (N, C, H, W).

        Each window's gradient goes to its first maximum in row-major order, never to every tie.
        """
        x = network_guard.check_pool_args(self, x, size, stride)
        out, cache = self._maxpool2d_forward(x, size, stride)
        d_out = network_guard.check_gradient(self, d_out, out.shape, "d_out of maxpool2d")
        if self.impl == "loops":
            return layers.maxpool2d_backward_loops(d_out, cache)
        return layers.maxpool2d_backward_fast(d_out, cache)

    def _maxpool2d_forward(self, x: np.ndarray, size: int, stride: int):
        """layers.py's max-pooling, the loops or the fast one as ``impl`` says: (out, cache)."""
        if self.impl == "loops":
            return layers.maxpool2d_forward_loops(x, size, stride)
        return layers.maxpool2d_forward_fast(x, size, stride)

    @staticmethod
    def relu(x: np.ndarray) -> np.ndarray:
        """max(0, x), elementwise; any shape."""
        return np.maximum(network_guard.real_array(x, "relu"), 0)

    @staticmethod
    def relu_derivative(x: np.ndarray) -> np.ndarray:
        """1 where x > 0, else 0 (at exactly 0 the derivative is taken as 0); same shape, dtype."""
        x = network_guard.real_array(x, "relu_derivative")
        return (x > 0).astype(x.dtype)

    @staticmethod
    def softmax(x: np.ndarray) -> np.ndarray:
        """Softmax over the last axis of x (N, K): each row of logits becomes probabilities.

        Not used by forward(): the dense head (Keras) turns features into logits and probabilities.
        """
        x = network_guard.real_array(x, "softmax")
        exps = np.exp(x - np.max(x, axis=-1, keepdims=True))  # shifting avoids overflow
        return exps / np.sum(exps, axis=-1, keepdims=True)

    @staticmethod
    def flatten(x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C * H * W), channel-major: all of channel 0, then channel 1, ..."""
        x = network_guard.real_array(x, "flatten")
        if x.ndim < 2:
            raise ValueError(f"flatten takes a batch (N, ...), got shape {x.shape}")
        return x.reshape(x.shape[0], -1)

    # ----------------------------------------------------------------------------------------
    # Its configuration, and its filters by name
    # ----------------------------------------------------------------------------------------

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

    def set_filters(self, index: int, value: np.ndarray) -> None:
        """Replace stage ``index``'s filters by ``value``, checked for shape and cast to dtype."""
        index = network_guard.check_stage_index(self, index)
        shape = self.filters[index].shape
        value = network_guard.as_finite_array(self, value, f"conv{index + 1} filters")
        if value.shape != shape:
            raise ValueError(f"conv{index + 1} filters must have shape {shape}, got {value.shape}")
        self.filters[index] = value


@dataclass
class Gradients:
    """What :meth:`SimpleCNN.gradients` returns for a batch x (N, C, H, W).

    ``filters[i]`` is d loss / d stage i's filters (F, C, K, K); ``input`` is d loss / d x;
    ``pooled[i]`` is d loss / d stage i's output (after its ReLU and pooling), (N, F, H, W).
    """

    filters: list[np.ndarray]
    input: np.ndarray
    pooled: list[np.ndarray]


# --------------------------------------------------------------------------------------------
# The stages: a configuration checked, and every stage's sizes worked out
# --------------------------------------------------------------------------------------------


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
