"""SimpleCNN: the convolutional feature extractor of LeNet-5, forward and backward, in NumPy.

    image (N, 1, 28, 28)
      -> pad 2, conv1: 6 filters 5x5  -> (N, 6, 28, 28) -> ReLU -> max-pool 2x2 -> (N, 6, 14, 14)
      -> conv2: 16 filters 5x5        -> (N, 16, 10, 10) -> ReLU -> max-pool 2x2 -> (N, 16, 5, 5)
      -> flatten (channel-major)      -> (N, 400) features for a dense classifier head

The layers themselves live in ``layers.py`` (a nested-loop reference and a fast vectorised
version of each); this class checks its inputs, keeps what the backward pass needs, and chains
the layers. It imports only NumPy (and threadpoolctl, a small pure-Python package).
"""

import ctypes
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

import layers


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The handle on NumPy's BLAS thread pool (looked up once: the lookup takes a while)."""
    return ThreadpoolController()


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Make glibc's malloc keep freed memory for the next step instead of returning it to the OS.

    Every training step allocates and frees the same few megabytes of arrays. By default glibc
    adapts its thresholds as it goes and, depending on the order of earlier allocations, ends up
    handing large freed blocks back to the operating system each step; the next step then
    page-faults them in again, zero-filled, page by page. Whole runs came out 15-25% slower
    that way, at random (measured: 0.3-1.1 million page faults in 600 steps instead of 15
    thousand). Fixing the two thresholds ends it. Affects the whole process, harmlessly: freed
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


IMPLEMENTATIONS = {
    "loops": {
        "conv2d": layers.conv2d_forward_loops,
        "conv2d_backward": layers.conv2d_backward_loops,
        "maxpool2d": layers.maxpool2d_forward_loops,
        "maxpool2d_backward": layers.maxpool2d_backward_loops,
        "conv2d_maxpool2d": layers.conv2d_maxpool2d_forward_loops,
        "conv2d_maxpool2d_backward": layers.conv2d_maxpool2d_backward_loops,
    },
    "fast": {
        "conv2d": layers.conv2d_forward_fast,
        "conv2d_backward": layers.conv2d_backward_fast,
        "maxpool2d": layers.maxpool2d_forward_fast,
        "maxpool2d_backward": layers.maxpool2d_backward_fast,
        "conv2d_maxpool2d": layers.conv2d_maxpool2d_forward_fast,
        "conv2d_maxpool2d_backward": layers.conv2d_maxpool2d_backward_fast,
    },
}


class SimpleCNN:
    """Two convolution + ReLU + max-pool stages turning 28x28 images into 400 features.

    Parameters
    ----------
    seed : int or None
        Seed for the He-initialised filters: the same seed gives the same filters.
    impl : {"fast", "loops"}
        "fast" (vectorised NumPy, the default) or "loops" (readable nested loops, very slow).
        Both compute the same numbers up to floating-point rounding. "fast" also calls
        keep_freed_memory_for_reuse() (once per process; see there).
    dtype : numpy float type
        float32 (the default, fast) or float64 (for gradient checks).
    threads : int or None
        Threads that share each batch, each running the network on its own slice of the images
        (the gradients add up), with NumPy's BLAS kept to one thread meanwhile. None: one per
        CPU core, at most 2. 1 runs everything in the calling thread and leaves BLAS alone.
        The results do not depend on it beyond float rounding.

    Attributes
    ----------
    conv1_filters : ndarray of shape (6, 1, 5, 5)
    conv2_filters : ndarray of shape (16, 6, 5, 5)
    """

    INPUT_SHAPE = (1, 28, 28)
    CONV1_SHAPE = (6, 1, 5, 5)
    CONV1_PADDING = 2  # LeNet-5 pads 28x28 to 32x32, so conv2 + pooling end at 5x5: 16*5*5 = 400
    CONV2_SHAPE = (16, 6, 5, 5)
    POOL_SIZE = 2
    NUM_FEATURES = 400
    MIN_IMAGES_PER_THREAD = 32  # with fewer, sharing Python's lock costs more than a thread saves

    def __init__(
        self,
        seed: int | None = None,
        impl: str = "fast",
        dtype=np.float32,
        threads: int | None = None,
    ):
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {sorted(IMPLEMENTATIONS)}, got {impl!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.impl = impl
        self._layers = IMPLEMENTATIONS[impl]
        if impl == "fast":
            keep_freed_memory_for_reuse()
        rng = np.random.default_rng(seed)
        self.conv1_filters = self._he_normal(rng, self.CONV1_SHAPE)
        self.conv2_filters = self._he_normal(rng, self.CONV2_SHAPE)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads if threads is not None else min(2, os.cpu_count() or 1)
        self._executor = None  # started on first use, when a batch is split across threads
        self._caches = []  # what the last forward() kept for backward(), one per batch part

    def _he_normal(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """He initialisation: std sqrt(2 / fan_in) keeps activations' scale through ReLU layers."""
        fan_in = shape[1] * shape[2] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(self.dtype)

    # ----------------------------------------------------------------------------------------
    # The network
    # ----------------------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Features of a batch. x: (N, 1, 28, 28), or one image (1, 28, 28) -> (N, 400).

        Pixels are expected scaled to [0, 1]. Keeps every intermediate result for backward().
        """
        x = self._check_input(x)
        results = self._map(self._forward_part, self._split_batch(x))
        self._caches = [cache for _, cache in results]
        return np.concatenate([features for features, _ in results])

    def _forward_part(self, x: np.ndarray):
        """The network on one part of the batch: (features (n, 400), what backward needs).

        Each convolution and the max-pooling after it run as one layer, conv2d_maxpool2d (see
        layers.py: the fast version computes the convolution pooling window by pooling window).

        ReLU is applied after max-pooling rather than before: the two commute (both keep the
        larger of two numbers), so pool(relu(conv)) = relu(pool(conv)), and ReLU on the pooled
        map touches 4x fewer numbers, forward and backward. The gradients are the same too:
        each window's first maximum is the same pixel either way, and where the maximum is not
        positive, ReLU passes no gradient in either order.
        """
        conv_pool = self._layers["conv2d_maxpool2d"]
        # conv1 + max-pool: (n, 6, 14, 14)
        pooled1, conv1_cache = conv_pool(x, self.conv1_filters, self.CONV1_PADDING)
        pool1 = self.relu(pooled1)  # = maxpool(relu(conv1))
        pooled2, conv2_cache = conv_pool(pool1, self.conv2_filters, 0)  # (n, 16, 5, 5)
        pool2 = self.relu(pooled2)  # = maxpool(relu(conv2))
        features = self.flatten(pool2)  # (n, 400)
        cache = {"conv1": conv1_cache, "pool1": pool1, "conv2": conv2_cache, "pool2": pool2}
        return features, cache

    def backward(self, d_out: np.ndarray, learning_rate: float = 0.001):
        """Backpropagate d_out = dLoss/dfeatures (N, 400) of the last forward() to the filters.

        Returns (d_conv1_filters (6, 1, 5, 5), d_conv2_filters (16, 6, 5, 5)) and applies
        ``filters -= learning_rate * gradient``; learning_rate=0 only computes the gradients.
        """
        d_out = self._check_d_out(d_out)
        part_sizes = [len(cache["pool2"]) for cache in self._caches]
        d_parts = np.split(d_out, np.cumsum(part_sizes)[:-1])
        gradients = self._map(self._backward_part, d_parts, self._caches)
        # The loss is a sum over images, so the filter gradient is the sum of the parts' gradients.
        d_conv1_filters = sum(d_conv1 for d_conv1, _ in gradients)
        d_conv2_filters = sum(d_conv2 for _, d_conv2 in gradients)
        if learning_rate:
            self.conv1_filters -= learning_rate * d_conv1_filters
            self.conv2_filters -= learning_rate * d_conv2_filters
        return d_conv1_filters, d_conv2_filters

    def _backward_part(self, d_out: np.ndarray, cache: dict):
        """backward() for one part of the batch: d_out (n, 400) -> the two filter gradients."""
        conv_pool_backward = self._layers["conv2d_maxpool2d_backward"]
        pool1, pool2 = cache["pool1"], cache["pool2"]
        d_pool2 = d_out.reshape(pool2.shape)  # undo flatten: (n, 16, 5, 5)
        d_pooled2 = d_pool2 * self.relu_derivative(pool2)  # relu(p) > 0 exactly where p > 0
        d_pool1, d_conv2_filters = conv_pool_backward(d_pooled2, cache["conv2"])  # (n, 6, 14, 14)
        d_pooled1 = d_pool1 * self.relu_derivative(pool1)
        # Nobody learns the input image, so conv1's d_x is not needed.
        _, d_conv1_filters = conv_pool_backward(d_pooled1, cache["conv1"], need_d_x=False)
        return d_conv1_filters, d_conv2_filters

    def _split_batch(self, x: np.ndarray) -> list[np.ndarray]:
        """Cut a batch into one part per thread, or leave it whole when it is too small to pay."""
        parts = min(self.threads, len(x) // self.MIN_IMAGES_PER_THREAD)
        return np.array_split(x, parts) if parts > 1 else [x]

    def _map(self, function, *part_lists) -> list:
        """function applied to each part; the parts run in parallel threads when there are several.

        NumPy releases Python's global lock inside its array operations, so threads working on
        separate parts of the batch really do run at the same time, one per CPU core. BLAS is
        kept to one thread meanwhile: its own threads would oversubscribe the cores, and they
        spin-wait against other busy threads (TensorFlow's), which made steps up to 20x slower.
        """
        if self.threads == 1:
            return [function(*parts) for parts in zip(*part_lists, strict=True)]
        with _blas_controller().limit(limits=1, user_api="blas"):
            # The helper threads take all parts but the first, which this thread works on
            # meanwhile: one thread fewer to wake up and to wait for.
            first, *rest = zip(*part_lists, strict=True)
            if rest and self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads - 1, thread_name_prefix="simple_cnn"
                )
            futures = [self._executor.submit(function, *parts) for parts in rest]
            return [function(*first)] + [future.result() for future in futures]

    def feature_maps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's output for x (N, 1, 28, 28) or (1, 28, 28), for looking at.

        Returns a dict with keys conv1, relu1, pool1 (N, 6, ...), conv2, relu2, pool2 (N, 16, ...).
        The layers run one by one, in the textbook order (conv, ReLU, pool); forward() gets the
        same pool2, flattened, by a faster route.
        """
        x = self._check_input(x)
        conv, pool, size = self._layers["conv2d"], self._layers["maxpool2d"], self.POOL_SIZE
        maps = {"conv1": conv(x, self.conv1_filters, self.CONV1_PADDING)[0]}
        maps["relu1"] = self.relu(maps["conv1"])
        maps["pool1"] = pool(maps["relu1"], size, size)[0]
        maps["conv2"] = conv(maps["pool1"], self.conv2_filters, 0)[0]
        maps["relu2"] = self.relu(maps["conv2"])
        maps["pool2"] = pool(maps["relu2"], size, size)[0]
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
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"{name} must be a numeric array, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinity; expected finite values")
        return x

    def _check_input(self, x) -> np.ndarray:
        x = self._as_finite_array(x, "input")
        if x.shape == self.INPUT_SHAPE:
            x = x[np.newaxis]  # one image is a batch of one
        if x.ndim != 4 or x.shape[1:] != self.INPUT_SHAPE or x.shape[0] == 0:
            raise ValueError(
                f"input must have shape (N, 1, 28, 28) or (1, 28, 28), got {x.shape}; "
                "for images shaped (N, 28, 28) use x[:, np.newaxis]"
            )
        return x

    def _check_d_out(self, d_out) -> np.ndarray:
        if not self._caches:
            raise ValueError("backward() called before forward(); run forward(x) on a batch first")
        expected = (sum(len(c["pool2"]) for c in self._caches), self.NUM_FEATURES)
        return self._check_gradient(d_out, expected, "d_out")

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
