"""Tests for simple_cnn.SimpleCNN: shapes, initialisation, gradients and bad input.

Gradients are checked three ways, as CS231n and micrograd do: against central finite differences
(float64), against TensorFlow's autodiff of the same network built from tf.nn ops, and the readable
``impl="loops"`` against the vectorised ``impl="fast"``.
"""

import gzip
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from gradcheck import numerical_gradient, rel_error
from hypothesis import given, settings
from hypothesis import strategies as st
from tf_reference import tf_conv2d, tf_maxpool2d, tf_network, tf_value_and_grads

from plumbing import network_guard
from simple_cnn import SimpleCNN

PROJECT_DIR = Path(__file__).resolve().parent.parent
MNIST_TEST_IMAGES = PROJECT_DIR / "mnist_data" / "t10k-images-idx3-ubyte.gz"

# Finite differences and loops are slow: few, small examples; timings vary, so no deadline.
HYPOTHESIS = settings(max_examples=40, deadline=None)


def mnist_digits(count: int) -> np.ndarray:
    """The first ``count`` test digits from the shipped archive, (count, 1, 28, 28) in [0, 1]."""
    with gzip.open(MNIST_TEST_IMAGES, "rb") as archive:
        magic, num_images, rows, cols = struct.unpack(">IIII", archive.read(16))
        assert (magic, rows, cols) == (2051, 28, 28) and num_images >= count
        pixels = archive.read(count * rows * cols)
    return np.frombuffer(pixels, dtype=np.uint8).reshape(count, 1, rows, cols) / 255.0


def one_line_message(excinfo: pytest.ExceptionInfo) -> str:
    """The error's message without spaces, after checking that it is a single line."""
    message = str(excinfo.value)
    assert message and "\n" not in message, f"want a one-line message, got {message!r}"
    return message.replace(" ", "")


# ---------------------------------------------------------------------------------------------
# Random layer cases for hypothesis. Each draws a seed and builds float64 arrays from it.


@st.composite
def conv_cases(draw):
    """(x, filters, padding, d_out) for any N, C, H, W, F, K and padding where the filter fits."""
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k, padding = draw(st.integers(1, 5)), draw(st.integers(0, 2))
    smallest = max(1, k - 2 * padding)
    h, w = draw(st.integers(smallest, smallest + 4)), draw(st.integers(smallest, smallest + 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(n, c, h, w))
    filters = rng.normal(size=(f, c, k, k))
    d_out = rng.normal(size=(n, f, h + 2 * padding - k + 1, w + 2 * padding - k + 1))
    return x, filters, padding, d_out


@st.composite
def pool_cases(draw, values: str):
    """(x, size, stride, d_out): overlapping, gapped and non-dividing windows included.

    values="distinct": no two inputs within 0.5 of each other (safe for finite differences);
    values="integers": small integers, so windows are full of ties.
    """
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    size = draw(st.integers(1, 4))
    stride = draw(st.integers(1, size + 1))
    h, w = draw(st.integers(size, size + 5)), draw(st.integers(size, size + 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (n, c, h, w)
    if values == "distinct":
        x = rng.permutation(n * c * h * w).reshape(shape) + rng.uniform(0, 0.5, size=shape)
    else:
        x = rng.integers(0, 3, size=shape).astype(np.float64)
    d_out = rng.normal(size=(n, c, (h - size) // stride + 1, (w - size) // stride + 1))
    return x, size, stride, d_out


def reference_maxpool_backward(d_out, x, size, stride):
    """Readable rule: each window's gradient goes to its first maximum in row-major order."""
    d_x = np.zeros_like(x)
    for n, c, i, j in np.ndindex(d_out.shape):
        window = x[n, c, i * stride : i * stride + size, j * stride : j * stride + size]
        # np.argmax returns the first maximum of the flattened (row-major) window.
        row, col = np.unravel_index(np.argmax(window), window.shape)
        d_x[n, c, i * stride + row, j * stride + col] += d_out[n, c, i, j]
    return d_x


@pytest.fixture(scope="module")
def fast64() -> SimpleCNN:
    return SimpleCNN(seed=0, impl="fast", dtype=np.float64)


@pytest.fixture(scope="module")
def loops64() -> SimpleCNN:
    return SimpleCNN(seed=0, impl="loops", dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Construction, initialisation, shapes.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filters_have_the_documented_shapes_and_dtype(dtype):
    cnn = SimpleCNN(seed=0, dtype=dtype)
    assert cnn.conv1_filters.shape == (6, 1, 5, 5)
    assert cnn.conv2_filters.shape == (16, 6, 5, 5)
    assert cnn.conv1_filters.dtype == dtype and cnn.conv2_filters.dtype == dtype
    assert cnn.dtype == dtype and cnn.impl == "fast"
    assert SimpleCNN.INPUT_SHAPE == (1, 28, 28) and SimpleCNN.NUM_FEATURES == 400


def test_same_seed_gives_same_filters_and_different_seed_different_filters():
    first, again, other = SimpleCNN(seed=7), SimpleCNN(seed=7), SimpleCNN(seed=8)
    np.testing.assert_array_equal(first.conv1_filters, again.conv1_filters)
    np.testing.assert_array_equal(first.conv2_filters, again.conv2_filters)
    assert not np.array_equal(first.conv1_filters, other.conv1_filters)
    assert not np.array_equal(first.conv2_filters, other.conv2_filters)
    # The implementation choice must not change which filters a seed gives.
    loops = SimpleCNN(seed=7, impl="loops")
    np.testing.assert_array_equal(first.conv2_filters, loops.conv2_filters)
    # No seed: fresh randomness each time.
    assert not np.array_equal(SimpleCNN().conv2_filters, SimpleCNN().conv2_filters)


def test_filters_are_he_initialised():
    # Pool 20 seeds so the sample std is within about 1.3% (conv1) and 0.3% (conv2) of the truth.
    cnns = [SimpleCNN(seed=seed, dtype=np.float64) for seed in range(20)]
    for name, fan_in in [("conv1_filters", 1 * 5 * 5), ("conv2_filters", 6 * 5 * 5)]:
        values = np.concatenate([getattr(cnn, name).ravel() for cnn in cnns])
        expected_std = np.sqrt(2.0 / fan_in)
        assert abs(values.std() / expected_std - 1) < 0.05, (name, values.std(), expected_std)
        assert abs(values.mean()) < 4 * expected_std / np.sqrt(values.size), name


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError) as excinfo:
        SimpleCNN(impl="slow")
    message = one_line_message(excinfo)
    assert "slow" in message and "fast" in message and "loops" in message


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_bad_thread_counts_are_rejected(threads):
    with pytest.raises(ValueError) as excinfo:
        SimpleCNN(threads=threads)
    assert "threads" in one_line_message(excinfo)


@pytest.mark.parametrize("batch_size", [64, 101])
def test_splitting_the_batch_across_threads_changes_nothing(batch_size):
    # 64 and 101 images are cut into parts (32 images at least each), 101 into unequal ones.
    rng = np.random.default_rng(7)
    x = rng.random((batch_size, 1, 28, 28))
    d_out = rng.standard_normal((batch_size, 400))
    whole = SimpleCNN(seed=3, dtype=np.float64, threads=1)
    split = SimpleCNN(seed=3, dtype=np.float64, threads=3)
    assert len(network_guard.split_batch(split, x)) > 1
    np.testing.assert_allclose(split.forward(x), whole.forward(x), rtol=0, atol=1e-12)
    for d_split, d_whole in zip(split.backward(d_out, 0), whole.backward(d_out, 0), strict=True):
        assert rel_error(d_split, d_whole) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_shapes_dtype_and_single_image(dtype):
    cnn = SimpleCNN(seed=1, dtype=dtype)
    x = mnist_digits(3).astype(dtype)
    features = cnn.forward(x)
    assert features.shape == (3, 400) and features.dtype == dtype
    # ReLU then max-pool: every feature is >= 0, and real digits light up some of them.
    assert np.all(features >= 0) and np.count_nonzero(features) > 0
    single = cnn.forward(x[1])
    assert single.shape == (1, 400)
    np.testing.assert_allclose(single[0], features[1], rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_forward_treats_each_image_independently(fast64):
    x = mnist_digits(4)
    features = fast64.forward(x)
    for i in range(4):
        np.testing.assert_allclose(fast64.forward(x[i : i + 1])[0], features[i], rtol=1e-12)


def test_forward_casts_input_to_the_model_dtype():
    cnn = SimpleCNN(seed=2, dtype=np.float32)
    x = mnist_digits(2)
    features = cnn.forward(x)  # float64 input into a float32 model
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, cnn.forward(x.astype(np.float32)), rtol=1e-6)


def test_forward_and_backward_leave_the_input_untouched(fast64):
    x = mnist_digits(2)
    x_before = x.copy()
    fast64.forward(x)
    fast64.backward(np.ones((2, 400)), learning_rate=0)
    np.testing.assert_array_equal(x, x_before)


def test_feature_maps_shapes_and_agreement_with_forward(fast64):
    x = mnist_digits(2)
    maps = fast64.feature_maps(x)
    expected_shapes = {
        "conv1": (2, 6, 28, 28),
        "relu1": (2, 6, 28, 28),
        "pool1": (2, 6, 14, 14),
        "conv2": (2, 16, 10, 10),
        "relu2": (2, 16, 10, 10),
        "pool2": (2, 16, 5, 5),
    }
    assert {name: m.shape for name, m in maps.items()} == expected_shapes
    np.testing.assert_array_equal(maps["relu1"], np.maximum(maps["conv1"], 0))
    np.testing.assert_allclose(maps["pool2"].reshape(2, 400), fast64.forward(x), rtol=1e-12)


def test_importing_simple_cnn_does_not_import_tensorflow():
    code = "import simple_cnn, sys; assert 'tensorflow' not in sys.modules, 'TF was imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# backward: what it returns and what it updates.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_returns_gradients_and_applies_the_learning_rate(dtype):
    cnn = SimpleCNN(seed=3, dtype=dtype)
    rng = np.random.default_rng(0)
    x = mnist_digits(4).astype(dtype)
    d_out = rng.normal(size=(4, 400)).astype(dtype)
    conv1_before, conv2_before = cnn.conv1_filters.copy(), cnn.conv2_filters.copy()
    rtol = 1e-5 if dtype == np.float32 else 1e-12

    cnn.forward(x)
    d_conv1, d_conv2 = cnn.backward(d_out, learning_rate=0)
    assert d_conv1.shape == (6, 1, 5, 5) and d_conv2.shape == (16, 6, 5, 5)
    assert d_conv1.dtype == dtype and d_conv2.dtype == dtype
    assert np.any(d_conv1 != 0) and np.any(d_conv2 != 0)
    assert not np.shares_memory(d_conv1, cnn.conv1_filters)
    # learning_rate=0 only computes.
    np.testing.assert_array_equal(cnn.conv1_filters, conv1_before)
    np.testing.assert_array_equal(cnn.conv2_filters, conv2_before)

    cnn.forward(x)
    again1, again2 = cnn.backward(d_out, learning_rate=0.5)
    np.testing.assert_allclose(again1, d_conv1, rtol=rtol)
    np.testing.assert_allclose(again2, d_conv2, rtol=rtol)
    np.testing.assert_allclose(cnn.conv1_filters, conv1_before - 0.5 * d_conv1, rtol=rtol)
    np.testing.assert_allclose(cnn.conv2_filters, conv2_before - 0.5 * d_conv2, rtol=rtol)
    assert cnn.conv1_filters.dtype == dtype and cnn.conv2_filters.dtype == dtype


def test_backward_default_learning_rate_is_0_001():
    cnn = SimpleCNN(seed=4, dtype=np.float64)
    x = mnist_digits(2)
    d_out = np.random.default_rng(1).normal(size=(2, 400))
    conv2_before = cnn.conv2_filters.copy()
    cnn.forward(x)
    _, d_conv2 = cnn.backward(d_out)
    np.testing.assert_allclose(cnn.conv2_filters, conv2_before - 0.001 * d_conv2, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Whole-network gradients: finite differences, TensorFlow, loops vs fast.


def test_network_gradients_match_finite_differences():
    cnn = SimpleCNN(seed=5, dtype=np.float64)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(2, 1, 28, 28))
    d_out = rng.normal(
        size=(2, 400)
    )  # loss = sum(features * d_out), so d loss / d features = d_out
    cnn.forward(x)
    d_conv1, d_conv2 = cnn.backward(d_out, learning_rate=0)

    def loss() -> float:
        return float(np.sum(cnn.forward(x) * d_out))

    # The loss is piecewise linear in each filter entry, so central differences are exact up to
    # rounding away from ReLU/max-pool switches; a tiny step makes crossing one unlikely.
    numeric1 = numerical_gradient(loss, cnn.conv1_filters, step=1e-6)
    numeric2 = numerical_gradient(loss, cnn.conv2_filters, step=1e-6)
    assert rel_error(d_conv1, numeric1) < 1e-6
    assert rel_error(d_conv2, numeric2) < 1e-6


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("data", ["mnist", "random"])
def test_network_matches_tensorflow(dtype, tolerance, data):
    cnn = SimpleCNN(seed=6, dtype=dtype)
    rng = np.random.default_rng(3)
    x = mnist_digits(8) if data == "mnist" else rng.uniform(0, 1, size=(8, 1, 28, 28))
    x = x.astype(dtype)
    d_out = rng.normal(size=(8, 400)).astype(dtype)

    features = cnn.forward(x)
    d_conv1, d_conv2 = cnn.backward(d_out, learning_rate=0)
    tf_features, (_, tf_d_conv1, tf_d_conv2) = tf_value_and_grads(
        tf_network, [x, cnn.conv1_filters, cnn.conv2_filters], d_out
    )
    assert rel_error(features, tf_features) < tolerance
    assert rel_error(d_conv1, tf_d_conv1) < tolerance
    assert rel_error(d_conv2, tf_d_conv2) < tolerance


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"]
)
def test_network_loops_matches_fast(dtype, tolerance):
    fast, loops = SimpleCNN(seed=9, dtype=dtype), SimpleCNN(seed=9, impl="loops", dtype=dtype)
    loops.conv1_filters[...] = fast.conv1_filters
    loops.conv2_filters[...] = fast.conv2_filters
    rng = np.random.default_rng(4)
    x = np.concatenate([mnist_digits(1), rng.uniform(0, 1, size=(1, 1, 28, 28))]).astype(dtype)
    d_out = rng.normal(size=(2, 400)).astype(dtype)

    assert rel_error(loops.forward(x), fast.forward(x)) < tolerance
    for loops_grad, fast_grad in zip(
        loops.backward(d_out, learning_rate=0), fast.backward(d_out, learning_rate=0), strict=True
    ):
        assert rel_error(loops_grad, fast_grad) < tolerance


# ---------------------------------------------------------------------------------------------
# Layer methods on random shapes, both implementations.


@HYPOTHESIS
@given(case=conv_cases())
@pytest.mark.parametrize("impl", ["fast", "loops"])
def test_conv2d_matches_tensorflow(impl, fast64, loops64, case):
    cnn = fast64 if impl == "fast" else loops64
    x, filters, padding, d_out = case
    out = cnn.conv2d(x, filters, padding=padding)
    d_x, d_filters = cnn.conv2d_backward(d_out, x, filters, padding=padding)
    tf_out, (tf_d_x, tf_d_filters) = tf_value_and_grads(
        lambda x, w: tf_conv2d(x, w, padding), [x, filters], d_out
    )
    assert out.shape == tf_out.shape and d_x.shape == x.shape and d_filters.shape == filters.shape
    assert rel_error(out, tf_out) < 1e-12
    assert rel_error(d_x, tf_d_x) < 1e-12
    assert rel_error(d_filters, tf_d_filters) < 1e-12


@HYPOTHESIS
@given(case=conv_cases())
def test_conv2d_backward_matches_finite_differences(fast64, case):
    x, filters, padding, d_out = case
    d_x, d_filters = fast64.conv2d_backward(d_out, x, filters, padding=padding)

    def loss() -> float:
        return float(np.sum(fast64.conv2d(x, filters, padding=padding) * d_out))

    assert rel_error(d_x, numerical_gradient(loss, x)) < 1e-6
    assert rel_error(d_filters, numerical_gradient(loss, filters)) < 1e-6


@HYPOTHESIS
@given(case=conv_cases())
def test_conv2d_loops_matches_fast(fast64, loops64, case):
    x, filters, padding, d_out = case
    assert (
        rel_error(loops64.conv2d(x, filters, padding), fast64.conv2d(x, filters, padding)) < 1e-12
    )
    loops_grads = loops64.conv2d_backward(d_out, x, filters, padding)
    fast_grads = fast64.conv2d_backward(d_out, x, filters, padding)
    for loops_grad, fast_grad in zip(loops_grads, fast_grads, strict=True):
        assert rel_error(loops_grad, fast_grad) < 1e-12


@HYPOTHESIS
@given(case=pool_cases(values="integers"))
@pytest.mark.parametrize("impl", ["fast", "loops"])
def test_maxpool2d_with_ties_matches_tensorflow_and_first_max_rule(impl, fast64, loops64, case):
    cnn = fast64 if impl == "fast" else loops64
    x, size, stride, d_out = case
    out = cnn.maxpool2d(x, size=size, stride=stride)
    d_x = cnn.maxpool2d_backward(d_out, x, size=size, stride=stride)
    tf_out, (tf_d_x,) = tf_value_and_grads(lambda x: tf_maxpool2d(x, size, stride), [x], d_out)
    np.testing.assert_array_equal(out, tf_out)
    assert d_x.shape == x.shape
    np.testing.assert_allclose(d_x, reference_maxpool_backward(d_out, x, size, stride), rtol=1e-12)
    np.testing.assert_allclose(d_x, tf_d_x, rtol=1e-12)


@HYPOTHESIS
@given(case=pool_cases(values="distinct"))
def test_maxpool2d_backward_matches_finite_differences(fast64, case):
    x, size, stride, d_out = case
    d_x = fast64.maxpool2d_backward(d_out, x, size=size, stride=stride)

    def loss() -> float:
        return float(np.sum(fast64.maxpool2d(x, size=size, stride=stride) * d_out))

    assert rel_error(d_x, numerical_gradient(loss, x)) < 1e-6


@HYPOTHESIS
@given(case=pool_cases(values="integers"))
def test_maxpool2d_loops_matches_fast(fast64, loops64, case):
    x, size, stride, d_out = case
    np.testing.assert_array_equal(
        loops64.maxpool2d(x, size, stride), fast64.maxpool2d(x, size, stride)
    )
    np.testing.assert_allclose(
        loops64.maxpool2d_backward(d_out, x, size, stride),
        fast64.maxpool2d_backward(d_out, x, size, stride),
        rtol=1e-12,
    )


def test_fast_impl_keeps_freed_memory_for_reuse():
    # In a fresh process: an 8 MB array, freed and allocated again, comes back from malloc's
    # heap without page faults. glibc's defaults hand it back to the OS instead, to fault in again.
    code = """if True:
        import resource, numpy as np, simple_cnn
        simple_cnn.SimpleCNN()
        np.ones(2 * 2**20, np.float32)  # allocated, touched, freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        np.ones(2 * 2**20, np.float32)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 100, f"{result.stdout.strip()} page faults for a reused 8 MB array"


@pytest.mark.parametrize("impl", ["fast", "loops"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool2d_backward_sends_tied_windows_to_their_first_position(impl, dtype):
    cnn = SimpleCNN(seed=0, impl=impl, dtype=dtype)
    x = np.full((1, 1, 4, 4), 3.0, dtype=dtype)  # every window is one big tie
    d_out = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=dtype)
    expected = np.zeros((1, 1, 4, 4), dtype=dtype)
    expected[0, 0, ::2, ::2] = d_out[0, 0]  # each window's top-left corner
    np.testing.assert_array_equal(cnn.maxpool2d_backward(d_out, x, size=2, stride=2), expected)

    # Overlapping 3x3 windows with stride 2 on a constant 5x5 image: the centre pixel is the
    # top-left of the last window only, so it gets that window's gradient and nothing else.
    x = np.zeros((1, 1, 5, 5), dtype=dtype)
    expected = np.zeros((1, 1, 5, 5), dtype=dtype)
    expected[0, 0, ::2, ::2][:2, :2] = d_out[0, 0]
    np.testing.assert_array_equal(cnn.maxpool2d_backward(d_out, x, size=3, stride=2), expected)

    # The same rule as TensorFlow's MaxPoolGrad, in this dtype, on integer images full of ties.
    rng = np.random.default_rng(6)
    x = rng.integers(0, 2, size=(2, 3, 9, 8)).astype(dtype)
    for size, stride in [(2, 2), (3, 2), (3, 3), (2, 1)]:
        d_out = rng.normal(size=(2, 3, (9 - size) // stride + 1, (8 - size) // stride + 1))
        d_out = d_out.astype(dtype)
        d_x = cnn.maxpool2d_backward(d_out, x, size=size, stride=stride)
        _, (tf_d_x,) = tf_value_and_grads(
            lambda x, size=size, stride=stride: tf_maxpool2d(x, size, stride), [x], d_out
        )
        np.testing.assert_allclose(d_x, tf_d_x, rtol=1e-6, err_msg=f"size={size} stride={stride}")
        if size == stride:  # non-overlapping: exactly one position per window
            assert np.count_nonzero(d_x) == d_out.size


@pytest.mark.parametrize("impl", ["fast", "loops"])
def test_relu_and_its_derivative(impl):
    cnn = SimpleCNN(seed=0, impl=impl, dtype=np.float64)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4, 5))
    x[np.abs(x) < 0.1] = 0.5  # keep clear of the kink for finite differences
    np.testing.assert_array_equal(cnn.relu(x), np.maximum(x, 0))
    derivative = cnn.relu_derivative(x)
    np.testing.assert_array_equal(derivative, (x > 0).astype(np.float64))
    weights = rng.normal(size=x.shape)
    numeric = numerical_gradient(lambda: float(np.sum(cnn.relu(x) * weights)), x)
    assert rel_error(derivative * weights, numeric) < 1e-6
    # At exactly 0 (a zero-padded border, a blank patch of a digit) the derivative is TF's choice.
    kink = np.array([-1.0, 0.0, 2.0])
    _, (tf_derivative,) = tf_value_and_grads(tf.nn.relu, [kink], np.ones(3))
    np.testing.assert_array_equal(cnn.relu_derivative(kink), tf_derivative)


@pytest.mark.parametrize("impl", ["fast", "loops"])
def test_softmax(impl):
    cnn = SimpleCNN(seed=0, impl=impl, dtype=np.float64)
    logits = np.random.default_rng(8).normal(size=(5, 10)) * 3
    probabilities = cnn.softmax(logits)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert rel_error(probabilities, tf.nn.softmax(logits).numpy()) < 1e-12
    # Shifting the logits changes nothing, and huge logits neither overflow nor give NaN.
    np.testing.assert_allclose(cnn.softmax(logits + 1000.0), probabilities, rtol=1e-12)
    np.testing.assert_allclose(
        cnn.softmax(np.array([[1000.0, 1000.0, -1000.0]])), [[0.5, 0.5, 0.0]], atol=1e-300
    )


@pytest.mark.parametrize("impl", ["fast", "loops"])
def test_flatten_is_channel_major(impl):
    cnn = SimpleCNN(seed=0, impl=impl)
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    flat = cnn.flatten(x)
    assert flat.shape == (2, 60)
    # (n, c, h, w) lands at column c * H * W + h * W + w.
    assert flat[1, 2 * 20 + 3 * 5 + 4] == x[1, 2, 3, 4]
    np.testing.assert_array_equal(flat, x.reshape(2, 60))


# ---------------------------------------------------------------------------------------------
# Bad input: ValueError with a one-line message saying what was expected and what came.


@pytest.mark.parametrize("impl", ["fast", "loops"])
@pytest.mark.parametrize(
    "shape",
    [(28, 28), (2, 1, 1, 28, 28), (2, 3, 28, 28), (3, 28, 28), (2, 1, 28, 27), (2, 1, 32, 32)],
)
def test_forward_rejects_wrong_shapes(impl, shape):
    cnn = SimpleCNN(seed=0, impl=impl)
    with pytest.raises(ValueError) as excinfo:
        cnn.forward(np.zeros(shape, dtype=np.float32))
    message = one_line_message(excinfo)
    assert "1,28,28" in message, f"expected shape missing from {message!r}"
    assert str(shape).replace(" ", "") in message, f"received shape missing from {message!r}"


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_forward_rejects_non_finite_values(bad_value):
    cnn = SimpleCNN(seed=0)
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    x[1, 0, 13, 7] = bad_value
    with pytest.raises(ValueError) as excinfo:
        cnn.forward(x)
    assert re.search("nan|inf|finite", one_line_message(excinfo), re.IGNORECASE)


def test_backward_before_any_forward_is_rejected():
    cnn = SimpleCNN(seed=0)
    conv1_before = cnn.conv1_filters.copy()
    with pytest.raises(ValueError) as excinfo:
        cnn.backward(np.zeros((1, 400), dtype=np.float32))
    assert "forward" in one_line_message(excinfo).lower()
    np.testing.assert_array_equal(cnn.conv1_filters, conv1_before)


@pytest.mark.parametrize("shape", [(3, 400), (2, 399), (400,), (2, 16, 5, 5)])
def test_backward_rejects_d_out_that_does_not_match_the_last_forward(shape):
    cnn = SimpleCNN(seed=0)
    cnn.forward(mnist_digits(2).astype(np.float32))
    conv1_before, conv2_before = cnn.conv1_filters.copy(), cnn.conv2_filters.copy()
    with pytest.raises(ValueError) as excinfo:
        cnn.backward(np.zeros(shape, dtype=np.float32), learning_rate=0.1)
    message = one_line_message(excinfo)
    assert "(2,400)" in message, f"expected shape missing from {message!r}"
    assert str(shape).replace(" ", "") in message, f"received shape missing from {message!r}"
    # A refused backward must not have touched the filters.
    np.testing.assert_array_equal(cnn.conv1_filters, conv1_before)
    np.testing.assert_array_equal(cnn.conv2_filters, conv2_before)


def test_backward_rejects_non_finite_d_out():
    cnn = SimpleCNN(seed=0)
    cnn.forward(mnist_digits(2).astype(np.float32))
    d_out = np.ones((2, 400), dtype=np.float32)
    d_out[0, 5] = np.nan
    with pytest.raises(ValueError) as excinfo:
        cnn.backward(d_out)
    assert re.search("nan|inf|finite", one_line_message(excinfo), re.IGNORECASE)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        # 2 input channels but filters for 3.
        ("conv2d", (np.zeros((1, 2, 8, 8)), np.zeros((4, 3, 3, 3)))),
        # Filters are square (F, C, K, K); a 3x5 one would silently be misread.
        ("conv2d", (np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 5)))),
        # A 5x5 filter does not fit a 3x3 image without padding.
        ("conv2d", (np.zeros((1, 1, 3, 3)), np.zeros((2, 1, 5, 5)))),
        # A 3x3 pooling window does not fit a 2x2 image.
        ("maxpool2d", (np.zeros((1, 1, 2, 2)), 3, 1)),
        # Pooling needs (N, C, H, W).
        ("maxpool2d", (np.zeros((2, 2)), 2, 2)),
    ],
)
def test_layer_methods_reject_shapes_that_do_not_fit(method, args):
    cnn = SimpleCNN(seed=0, dtype=np.float64)
    with pytest.raises(ValueError) as excinfo:
        getattr(cnn, method)(*args)
    one_line_message(excinfo)


def test_a_pickled_network_computes_the_same_and_has_run_no_forward():
    """A copy for another process (the explorer's workers) carries the filters, not the last
    forward()'s caches nor its lock."""
    import pickle

    cnn = SimpleCNN(seed=3)
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    features = cnn.forward(x)
    copy = pickle.loads(pickle.dumps(cnn))
    assert np.array_equal(copy.features(x), features)
    with pytest.raises(ValueError, match="before forward"):
        copy.backward(np.ones_like(features), learning_rate=0)
    assert np.array_equal(cnn.forward(x), features)  # the original is untouched
