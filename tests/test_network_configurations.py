"""Configurable SimpleCNN: any stack of conv -> ReLU -> 2x2 max-pool stages, exact and checked.

Random configurations (stages, filters, kernel sizes, paddings, input sizes, batch sizes) are
drawn by hypothesis; for each, impl="loops" and impl="fast" agree, and both agree with
TensorFlow's autodiff of the same network built from tf.nn ops. Also: the default network is
LeNet-5's bit for bit, the stateless paths, thread safety, and every bad setting refused.
"""

import re
import threading

import numpy as np
import pytest
from gradcheck import numerical_gradient, rel_error
from hypothesis import given, settings
from hypothesis import strategies as st
from tf_reference import tf_stages, tf_value_and_grads

import fused_layers
from simple_cnn import NonFiniteFeaturesError, NonFiniteGradientsError, SimpleCNN, plan_stages

HYPOTHESIS = settings(max_examples=40, deadline=None)


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"want a one-line message, got {message!r}"
    return message


@st.composite
def configurations(draw):
    """SimpleCNN keyword arguments for a random network that fits its input, and a batch size.

    The input is drawn just big enough (plus up to 5 pixels) for every stage's convolution to
    leave at least a 2x2 pooling window, worked out from the last stage backwards.
    """
    n_stages = draw(st.integers(1, 3))
    kernel_sizes = [draw(st.integers(1, 5)) for _ in range(n_stages)]
    paddings = []
    for k in kernel_sizes:
        options = [0, 1, 2, "valid"] + (["same"] if k % 2 else [])
        paddings.append(draw(st.sampled_from(options)))
    pixels = [
        0 if p == "valid" else (k - 1) // 2 if p == "same" else p
        for k, p in zip(kernel_sizes, paddings, strict=True)
    ]
    smallest = 1
    for k, p in zip(reversed(kernel_sizes), reversed(pixels), strict=True):
        # The stage after this one needs `smallest` pixels: the pooled output of a convolution
        # of at least 2 * smallest, which needs an input of 2 * smallest + K - 1 - 2p.
        smallest = max(1, 2 * smallest + k - 1 - 2 * p)
    height = draw(st.integers(smallest, smallest + 5))
    width = draw(st.integers(smallest, smallest + 5))
    config = {
        "num_filters": tuple(draw(st.integers(1, 4)) for _ in range(n_stages)),
        "kernel_sizes": tuple(kernel_sizes) if draw(st.booleans()) else kernel_sizes,
        "paddings": tuple(paddings),
        "input_shape": (draw(st.integers(1, 2)), height, width),
    }
    if len(set(kernel_sizes)) == 1 and draw(st.booleans()):
        config["kernel_sizes"] = kernel_sizes[0]  # one int for every stage
    return config, draw(st.integers(1, 3)), draw(st.integers(0, 2**32 - 1))


def random_batch(cnn: SimpleCNN, batch_size: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(batch_size, *cnn.input_shape)).astype(cnn.dtype)
    d_features = rng.normal(size=(batch_size, cnn.num_features)).astype(cnn.dtype)
    return x, d_features


@HYPOTHESIS
@given(
    case=configurations(),
    dtype_and_tolerance=st.sampled_from([(np.float64, 1e-9), (np.float32, 1e-4)]),
)
def test_loops_fast_and_tensorflow_agree_on_any_configuration(case, dtype_and_tolerance):
    config, batch_size, seed = case
    dtype, tolerance = dtype_and_tolerance
    fast = SimpleCNN(**config, seed=seed, dtype=dtype)
    loops = SimpleCNN(**config, seed=seed, impl="loops", dtype=dtype)
    x, d_features = random_batch(fast, batch_size, seed)

    features = fast.forward(x)
    d_filters = fast.backward(d_features, learning_rate=0)
    assert features.shape == (batch_size, fast.num_features)
    assert rel_error(loops.forward(x), features) < tolerance
    for loops_grad, fast_grad in zip(loops.backward(d_features, 0), d_filters, strict=True):
        assert rel_error(loops_grad, fast_grad) < tolerance

    paddings = [stage.padding for stage in fast.stages]
    tf_features, (tf_d_x, *tf_d_filters) = tf_value_and_grads(
        tf_stages(paddings), [x, *fast.filters], d_features
    )
    assert rel_error(features, tf_features) < tolerance
    for ours, theirs in zip(d_filters, tf_d_filters, strict=True):
        assert rel_error(ours, theirs) < tolerance
    # The stateless route: the same features, and the input's gradient too.
    assert rel_error(fast.features(x), tf_features) < tolerance
    assert rel_error(fast.gradients(x, d_features).input, tf_d_x) < tolerance


def test_the_default_network_is_lenet5_bit_for_bit():
    cnn = SimpleCNN(seed=11)
    rng = np.random.default_rng(11)  # the He initialisation, drawn in stage order
    conv1 = (rng.standard_normal((6, 1, 5, 5)) * np.sqrt(2 / 25)).astype(np.float32)
    conv2 = (rng.standard_normal((16, 6, 5, 5)) * np.sqrt(2 / 150)).astype(np.float32)
    np.testing.assert_array_equal(cnn.conv1_filters, conv1)
    np.testing.assert_array_equal(cnn.conv2_filters, conv2)
    assert cnn.filters[0] is cnn.conv1_filters and cnn.filters[1] is cnn.conv2_filters
    assert cnn.num_features == 400
    assert [stage.out_size for stage in cnn.stages] == [(14, 14), (5, 5)]
    assert cnn.architecture == {
        "num_filters": [6, 16],
        "kernel_sizes": [5, 5],
        "paddings": [2, 0],
        "input_shape": [1, 28, 28],
    }


def test_keras_mnist_example_network_shapes():
    # keras-io examples/vision/mnist_convnet.py: Conv2D(32, 3) -> pool -> Conv2D(64, 3) -> pool.
    cnn = SimpleCNN(num_filters=(32, 64), kernel_sizes=3, paddings="valid", seed=0)
    assert [(s.conv_size, s.out_size) for s in cnn.stages] == [
        ((26, 26), (13, 13)),
        ((11, 11), (5, 5)),
    ]
    assert cnn.num_features == 64 * 5 * 5
    x = np.random.default_rng(0).uniform(size=(3, 1, 28, 28)).astype(np.float32)
    assert cnn.forward(x).shape == (3, 1600)
    rebuilt = SimpleCNN(**cnn.architecture, seed=0)
    np.testing.assert_array_equal(rebuilt.forward(x), cnn.forward(x))
    assert "conv2 64 x 3x3, pad 0" in cnn.summary()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"num_filters": (6, 16, 32)},
            r"^paddings has 2 values \(2,0: LeNet-5's, the default\) for 3 stages; give one per "
            r"stage, or one for all$",
        ),
        (
            {"num_filters": (32,)},
            r"paddings has 2 values \(2,0: LeNet-5's, the default\) for 1 stage;",
        ),
        ({"num_filters": (6, 16, 0)}, r"filters must be positive integers"),  # before the paddings
        (
            {"num_filters": (32,), "kernel_sizes": (5, 5), "paddings": 0},
            r"kernel_sizes has 2 values \(5,5\) for 1 stage;",
        ),
        ({"num_filters": 6}, r"filters must be a sequence of positive integers, got 6"),
        ({"input_shape": 28}, r"input_shape must be a sequence of positive integers, got 28"),
        (
            {"num_filters": (6, 16, 32, 64), "kernel_sizes": 5, "paddings": 0},
            r"stage [23]: .*smaller than the 2x2 pooling window",
        ),
        (
            {"num_filters": (4,), "kernel_sizes": 5, "paddings": 0, "input_shape": (1, 5, 9)},
            r"stage 1: its 5x9 input, padded by 0 and convolved with 5x5 filters, gives 1x5",
        ),
        (
            {"num_filters": (4,), "kernel_sizes": 4, "paddings": "same"},
            r"'same' needs an odd kernel",
        ),
        ({"num_filters": (4,), "kernel_sizes": 3, "paddings": "full"}, r"'same' or 'valid'"),
        ({"num_filters": (4,), "kernel_sizes": 3, "paddings": -1}, r"padding must be"),
        ({"num_filters": (0, 3)}, r"filters must be positive integers"),
        ({"num_filters": ()}, r"at least one stage"),
        ({"num_filters": (4,), "kernel_sizes": 2.5, "paddings": 0}, r"kernel_sizes"),
        ({"input_shape": (28, 28)}, r"input_shape must be \(channels, height, width\)"),
    ],
)
def test_impossible_configurations_are_refused_with_the_reason(kwargs, pattern):
    with pytest.raises(ValueError) as excinfo:
        SimpleCNN(**kwargs)
    assert re.search(pattern, one_line(excinfo)), one_line(excinfo)


def test_same_and_valid_paddings():
    stages = plan_stages((4, 8), 3, "same", (1, 28, 28))
    assert [(s.padding, s.conv_size, s.out_size) for s in stages] == [
        (1, (28, 28), (14, 14)),
        (1, (14, 14), (7, 7)),
    ]
    assert [s.padding for s in plan_stages((4, 8), (5, 3), ("same", "valid"), (1, 28, 28))] == [
        2,
        0,
    ]


def test_odd_sizes_drop_the_last_row_and_column_like_tensorflow():
    # 13x13 conv output: pooled to 6x6, the 13th row and column never count.
    cnn = SimpleCNN(num_filters=(2,), kernel_sizes=3, paddings=0, input_shape=(1, 15, 15), seed=0)
    x = np.zeros((1, 1, 15, 15), np.float32)
    x[0, 0, 14, :] = 1.0  # light only where the dropped convolution row (12) alone reads
    x[0, 0, :, 14] = 1.0
    features = cnn.forward(x)
    assert cnn.stages[0].out_size == (6, 6)
    np.testing.assert_array_equal(features, np.zeros_like(features))


def test_an_even_kernel_trains_through_the_unfused_fast_layers(monkeypatch):
    fast = SimpleCNN(
        num_filters=(3, 4), kernel_sizes=(4, 2), paddings=(1, 0), seed=2, dtype=np.float64
    )
    loops = SimpleCNN(
        num_filters=(3, 4),
        kernel_sizes=(4, 2),
        paddings=(1, 0),
        seed=2,
        impl="loops",
        dtype=np.float64,
    )
    x, d = random_batch(fast, 2, 0)
    # Record the layers each stage really runs: the unfused ones, never the fused (odd K only).
    calls = []

    def recorded(name: str):
        layer = getattr(fused_layers, name)

        def record(*args, **kwargs):
            calls.append(name)
            return layer(*args, **kwargs)

        return record

    for kind in ("unfused", "fast"):
        for direction in ("forward", "backward"):
            name = f"conv2d_maxpool2d_{direction}_{kind}"
            monkeypatch.setattr(fused_layers, name, recorded(name))
    np.testing.assert_allclose(fast.forward(x), loops.forward(x), rtol=1e-12)
    for ours, reference in zip(fast.backward(d, 0), loops.backward(d, 0), strict=True):
        assert rel_error(ours, reference) < 1e-12
    assert (
        calls
        == ["conv2d_maxpool2d_forward_unfused"] * 2 + ["conv2d_maxpool2d_backward_unfused"] * 2
    )


def test_wide_stages_take_the_windows_layout_and_agree_with_the_loops_and_tensorflow():
    # From 32 filters on, the fused layer multiplies im2col windows instead of shifted filters.
    kwargs = dict(num_filters=(32, 33), kernel_sizes=3, paddings=(0, 1), input_shape=(2, 11, 10))
    fast = SimpleCNN(**kwargs, seed=3, dtype=np.float64)
    loops = SimpleCNN(**kwargs, seed=3, impl="loops", dtype=np.float64)
    assert [fused_layers.choose_layout(s.out_channels) for s in fast.stages] == ["windows"] * 2
    assert fused_layers.choose_layout(31) == "patches"
    x, d = random_batch(fast, 2, 3)
    features = fast.forward(x)
    d_filters = fast.backward(d, 0)
    assert rel_error(features, loops.forward(x)) < 1e-12
    for ours, reference in zip(d_filters, loops.backward(d, 0), strict=True):
        assert rel_error(ours, reference) < 1e-12
    tf_features, (tf_d_x, *tf_d_filters) = tf_value_and_grads(
        tf_stages([0, 1]), [x, *fast.filters], d
    )
    assert rel_error(features, tf_features) < 1e-9
    for ours, theirs in zip(d_filters, tf_d_filters, strict=True):
        assert rel_error(ours, theirs) < 1e-9
    assert rel_error(fast.gradients(x, d).input, tf_d_x) < 1e-9


def test_one_stage_network_has_no_conv2_filters():
    cnn = SimpleCNN(num_filters=(8,), kernel_sizes=5, paddings=2)
    assert cnn.conv1_filters.shape == (8, 1, 5, 5) and cnn.num_features == 8 * 14 * 14
    with pytest.raises(AttributeError, match="1 stage"):
        cnn.conv2_filters  # noqa: B018


def test_the_old_keyword_filters_still_builds_the_network_and_warns():
    with pytest.warns(DeprecationWarning, match="num_filters"):
        old = SimpleCNN(filters=(4, 8), kernel_sizes=3, paddings="valid", seed=3)
    new = SimpleCNN(num_filters=(4, 8), kernel_sizes=3, paddings="valid", seed=3)
    assert old.architecture == new.architecture and old.architecture["num_filters"] == [4, 8]
    for old_filters, new_filters in zip(old.filters, new.filters, strict=True):
        np.testing.assert_array_equal(old_filters, new_filters)


def test_setting_filters_checks_their_shape():
    cnn = SimpleCNN(seed=0)
    cnn.conv2_filters = np.ones((16, 6, 5, 5))
    assert cnn.filters[1].dtype == np.float32 and cnn.filters[1].sum() == 16 * 150
    with pytest.raises(ValueError, match=r"\(16, 6, 5, 5\)"):
        cnn.conv2_filters = np.ones((16, 6, 3, 3))


@pytest.mark.parametrize("index", [2, 5, -1, "0", 1.0, True, None])
def test_set_filters_takes_only_the_index_of_a_stage(index):
    cnn = SimpleCNN(seed=0)
    before = [filters.copy() for filters in cnn.filters]
    with pytest.raises(ValueError) as excinfo:
        cnn.set_filters(index, np.zeros((16, 6, 5, 5)))
    assert one_line(excinfo) == (
        f"the stage index must be 0 to 1 (this network has 2 stages), got {index!r}"
    )
    for filters, previous in zip(cnn.filters, before, strict=True):
        np.testing.assert_array_equal(filters, previous)  # -1 no longer replaces the last
    cnn.set_filters(np.int64(1), np.zeros((16, 6, 5, 5)))
    assert not cnn.filters[1].any()


@pytest.mark.parametrize("layer", ["relu", "relu_derivative", "softmax", "flatten"])
@pytest.mark.parametrize("value", ["abc", np.array([["a", "b"]]), np.ones((2, 3)) * 1j])
def test_the_small_layers_refuse_what_is_not_real_numbers(layer, value):
    with pytest.raises(ValueError, match=f"^{layer} takes an array of real numbers, got dtype"):
        getattr(SimpleCNN, layer)(value)


# ---------------------------------------------------------------------------------------------
# The stateless routes: features() and gradients()


def test_features_equals_forward_and_keeps_nothing():
    cnn = SimpleCNN(seed=1, dtype=np.float64)
    x, _ = random_batch(cnn, 70, 1)  # 70 images: split across threads
    features = cnn.features(x)
    with pytest.raises(ValueError, match="before forward"):
        cnn.backward(np.ones_like(features))  # features() left nothing for backward()
    np.testing.assert_allclose(features, cnn.forward(x), rtol=1e-12)


def test_gradients_match_finite_differences_for_the_input_and_every_stage_output():
    cnn = SimpleCNN(
        num_filters=(3, 4),
        kernel_sizes=(3, 5),
        paddings=("same", 1),
        input_shape=(1, 13, 11),
        seed=3,
        dtype=np.float64,
    )
    x, d_features = random_batch(cnn, 2, 3)
    gradients = cnn.gradients(x, d_features)

    def loss() -> float:
        return float(np.sum(cnn.features(x) * d_features))

    assert rel_error(gradients.input, numerical_gradient(loss, x, step=1e-6)) < 1e-6
    for filters, d_filters in zip(cnn.filters, gradients.filters, strict=True):
        assert rel_error(d_filters, numerical_gradient(loss, filters, step=1e-6)) < 1e-6
    maps = cnn.feature_maps(x)
    assert [g.shape for g in gradients.pooled] == [maps["pool1"].shape, maps["pool2"].shape]
    np.testing.assert_array_equal(gradients.pooled[1].reshape(2, -1), d_features)


def test_features_from_many_threads_at_once_are_right():
    cnn = SimpleCNN(seed=4)
    batches = [random_batch(cnn, n, n)[0] for n in (1, 5, 40, 70)]
    expected = [cnn.features(x) for x in batches]
    results, errors = {}, []

    def work(index: int) -> None:
        try:
            for _ in range(20):
                i = index % len(batches)
                np.testing.assert_array_equal(cnn.features(batches[i]), expected[i])
            results[index] = True
        except Exception as error:  # collected: an exception in a thread would pass unseen
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 8


def test_two_threads_training_one_network_get_an_error_never_wrong_gradients():
    cnn = SimpleCNN(seed=5, dtype=np.float64, threads=1)
    batches = [random_batch(cnn, 4, seed) for seed in range(2)]
    expected = []
    for x, d in batches:
        cnn.forward(x)
        expected.append(cnn.backward(d, learning_rate=0))
    silent_mismatches, refused = [], []

    def train(index: int) -> None:
        x, d = batches[index]
        for _ in range(300):
            try:
                cnn.forward(x)
                gradients = cnn.backward(d, learning_rate=0)
            except RuntimeError:
                refused.append(index)
                continue
            if any(
                rel_error(g, e) > 1e-12 for g, e in zip(gradients, expected[index], strict=True)
            ):
                silent_mismatches.append(index)

    threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert silent_mismatches == []
    assert refused  # the two threads did collide, and were told


def test_backward_in_another_thread_than_its_forward_is_refused():
    cnn = SimpleCNN(seed=6)
    x, d = random_batch(cnn, 2, 6)
    cnn.forward(x)
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_raises(cnn.backward, d)))
    thread.start()
    thread.join()
    assert errors and isinstance(errors[0], RuntimeError) and "same thread" in str(errors[0])
    cnn.backward(d)  # the thread that ran forward() still can


def _raises(function, *args):
    try:
        function(*args)
    except Exception as error:
        return error
    return None


# ---------------------------------------------------------------------------------------------
# Input that would go wrong silently


@pytest.mark.parametrize("method", ["forward", "features", "feature_maps"])
def test_integer_images_are_refused_with_the_scale_to_use(method):
    cnn = SimpleCNN(seed=0)
    images = np.full((2, 1, 28, 28), 255, dtype=np.uint8)
    with pytest.raises(ValueError) as excinfo:
        getattr(cnn, method)(images)
    assert "[0, 1]" in one_line(excinfo) and "/ 255" in one_line(excinfo)


def test_complex_input_is_refused():
    cnn = SimpleCNN(seed=0)
    with pytest.raises(ValueError, match="complex"):
        cnn.forward(np.zeros((1, 1, 28, 28), np.complex64) + 1j)


@pytest.mark.parametrize("method", ["forward", "features"])
def test_filters_so_large_the_features_overflow_are_refused(method):
    cnn = SimpleCNN(seed=0)
    cnn.set_filters(0, np.full(cnn.filters[0].shape, 3e37, np.float32))
    cnn.set_filters(1, np.full(cnn.filters[1].shape, 3e37, np.float32))
    x = np.full((2, 1, 28, 28), 1.0, np.float32)
    with pytest.raises(NonFiniteFeaturesError) as excinfo:
        getattr(cnn, method)(x)
    assert "overflowed float32" in one_line(excinfo) and "3e+37" in one_line(excinfo)


@pytest.mark.parametrize("method", ["forward", "features", "gradients", "feature_maps"])
@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 255.0), (-0.5, 0.5), (0.0, 3e38)], ids=["0-255", "negative", "huge"]
)
def test_pixels_outside_0_to_1_get_the_same_hint_as_integer_images(method, low, high):
    cnn = SimpleCNN(seed=0)
    x = np.linspace(low, high, 2 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28)
    arguments = (x, np.ones((2, cnn.num_features), np.float32)) if method == "gradients" else (x,)
    with pytest.raises(ValueError) as excinfo:
        getattr(cnn, method)(*arguments)
    assert one_line(excinfo) == (
        f"input pixels range from {low:.4g} to {high:.4g}, but SimpleCNN takes pixels scaled to "
        "[0, 1]; for 0-255 images pass x / 255 (inference.images_to_input does that)"
    )


@pytest.mark.parametrize("learning_rate", [float("nan"), float("inf"), -0.1, "0.1", None, True])
def test_backward_refuses_a_learning_rate_that_is_not_a_finite_number(learning_rate):
    cnn = SimpleCNN(seed=0)
    x, d = random_batch(cnn, 2, 0)
    cnn.forward(x)
    before = [f.copy() for f in cnn.filters]
    with pytest.raises(ValueError) as excinfo:
        cnn.backward(d, learning_rate=learning_rate)
    assert "learning_rate" in one_line(excinfo)
    for filters, previous in zip(cnn.filters, before, strict=True):
        np.testing.assert_array_equal(filters, previous)


@pytest.mark.parametrize("method", ["backward", "gradients"])
def test_gradients_that_overflow_are_refused_and_the_filters_kept(method):
    cnn = SimpleCNN(seed=0)
    x, _ = random_batch(cnn, 2, 0)
    d = np.full((2, cnn.num_features), 3e38, np.float32)  # finite, but the sums overflow
    before = [f.copy() for f in cnn.filters]
    with pytest.raises(NonFiniteGradientsError) as excinfo:
        if method == "backward":
            cnn.forward(x)
            cnn.backward(d, learning_rate=0.1)
        else:
            cnn.gradients(x, d)
    assert "overflowed float32" in one_line(excinfo) and "3e+38" in one_line(excinfo)
    for filters, previous in zip(cnn.filters, before, strict=True):
        np.testing.assert_array_equal(filters, previous)


def test_an_update_that_overflows_the_filters_is_refused_and_they_are_kept():
    cnn = SimpleCNN(seed=0)
    x, d = random_batch(cnn, 2, 0)
    cnn.forward(x)
    before = [f.copy() for f in cnn.filters]
    with pytest.raises(NonFiniteGradientsError) as excinfo:
        cnn.backward(d * 1e6, learning_rate=1e38)
    assert "learning_rate" in one_line(excinfo)
    for filters, previous in zip(cnn.filters, before, strict=True):
        np.testing.assert_array_equal(filters, previous)


@pytest.mark.parametrize("seed", [1.5, -1, True, "0"])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused(seed):
    with pytest.raises(ValueError, match="seed") as excinfo:
        SimpleCNN(seed=seed)
    one_line(excinfo)


def test_numpy_integer_seeds_are_seeds():
    np.testing.assert_array_equal(
        SimpleCNN(seed=np.int64(4)).filters[0], SimpleCNN(seed=4).filters[0]
    )


@pytest.mark.filterwarnings("error")  # NumPy's "overflow encountered in cast" would be one
def test_float64_input_too_large_for_float32_is_refused_with_its_size():
    cnn = SimpleCNN(seed=0)
    x = np.full((2, 1, 28, 28), 1e300)
    with pytest.raises(ValueError) as excinfo:
        cnn.forward(x)
    assert "1e+300" in one_line(excinfo) and "float32" in one_line(excinfo)
