"""Tests for fused_layers: convolution + 2x2 max-pooling as one layer, the way SimpleCNN trains.

Each version (the fused fast layer in both its layouts, the loops reference) against the plain
layers of layers.py in a row, ties included, and against central finite differences.
"""

import numpy as np
import pytest
from gradcheck import numerical_gradient, rel_error
from hypothesis import given, settings
from hypothesis import strategies as st

import fused_layers
import layers

# Finite differences and loops are slow: few, small examples; timings vary, so no deadline.
HYPOTHESIS = settings(max_examples=40, deadline=None)


@st.composite
def conv_pool_cases(draw, values: str):
    """(x, filters, padding, d_out) for the fused layer: odd K, any convolution output >= 2.

    An odd output row or column has no pooling window: it is dropped, as TensorFlow drops it.

    values="distinct": normal floats (safe for finite differences); values="integers": small
    integer images and filters, so pooling windows are full of tied convolution outputs.
    """
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k, padding = draw(st.sampled_from([1, 3, 5])), draw(st.integers(0, 2))
    out_h, out_w = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    h, w = out_h + k - 1 - 2 * padding, out_w + k - 1 - 2 * padding
    if h < 1 or w < 1:
        padding, h, w = 0, out_h + k - 1, out_w + k - 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if values == "distinct":
        x, filters = rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, k, k))
    else:
        x = rng.integers(0, 2, size=(n, c, h, w)).astype(np.float64)
        filters = rng.integers(-1, 2, size=(f, c, k, k)).astype(np.float64)
    d_out = rng.normal(size=(n, f, out_h // 2, out_w // 2))
    return x, filters, padding, d_out


@HYPOTHESIS
@given(case=conv_pool_cases(values="integers"), layout=st.sampled_from(["patches", "windows"]))
def test_fused_conv2d_maxpool2d_equals_conv2d_then_maxpool2d_ties_included(case, layout):
    x, filters, padding, d_out = case
    conv, conv_cache = layers.conv2d_forward_fast(x, filters, padding)
    pooled, pool_cache = layers.maxpool2d_forward_fast(conv, 2, 2)
    d_x, d_filters = layers.conv2d_backward_fast(
        layers.maxpool2d_backward_fast(d_out, pool_cache), conv_cache
    )

    fused, fused_cache = fused_layers.conv2d_maxpool2d_forward_fast(
        x, filters, padding, layout=layout
    )
    fused_d_x, fused_d_filters = fused_layers.conv2d_maxpool2d_backward_fast(d_out, fused_cache)

    np.testing.assert_array_equal(fused, pooled)  # integers: exact, ties and all
    np.testing.assert_allclose(fused_d_x, d_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused_d_filters, d_filters, rtol=1e-12, atol=1e-12)
    loops, loops_cache = fused_layers.conv2d_maxpool2d_forward_loops(x, filters, padding)
    np.testing.assert_array_equal(loops, fused)
    for loops_grad, fused_grad in zip(
        fused_layers.conv2d_maxpool2d_backward_loops(d_out, loops_cache),
        (fused_d_x, fused_d_filters),
        strict=True,
    ):
        np.testing.assert_allclose(loops_grad, fused_grad, rtol=1e-12, atol=1e-12)


@HYPOTHESIS
@given(case=conv_pool_cases(values="distinct"), layout=st.sampled_from(["patches", "windows"]))
def test_fused_conv2d_maxpool2d_backward_matches_finite_differences(case, layout):
    x, filters, padding, d_out = case
    _, cache = fused_layers.conv2d_maxpool2d_forward_fast(x, filters, padding, layout=layout)
    d_x, d_filters = fused_layers.conv2d_maxpool2d_backward_fast(d_out, cache)
    _, d_filters_only = fused_layers.conv2d_maxpool2d_backward_fast(d_out, cache, need_d_x=False)

    def loss() -> float:
        out, _ = fused_layers.conv2d_maxpool2d_forward_fast(x, filters, padding, layout=layout)
        return float(np.sum(out * d_out))

    assert rel_error(d_x, numerical_gradient(loss, x)) < 1e-6
    assert rel_error(d_filters, numerical_gradient(loss, filters)) < 1e-6
    np.testing.assert_array_equal(d_filters_only, d_filters)


@pytest.mark.parametrize(
    "x_shape, filters_shape, padding",
    [((1, 1, 8, 8), (2, 1, 4, 4), 0), ((1, 2, 6, 7), (1, 2, 2, 2), 1)],
)
def test_fused_conv2d_maxpool2d_rejects_even_filter_sizes(x_shape, filters_shape, padding):
    # Its patches are K + 1 pixels wide and cut in halves: even K takes the unfused route.
    x, filters = np.zeros(x_shape), np.zeros(filters_shape)
    with pytest.raises(ValueError) as excinfo:
        fused_layers.conv2d_maxpool2d_forward_fast(x, filters, padding)
    message = str(excinfo.value)
    assert "\n" not in message and "conv2d, then maxpool2d" in message


@pytest.mark.parametrize(
    "x_shape, filters_shape, padding",
    [
        ((1, 1, 9, 9), (2, 1, 3, 3), 0),
        ((2, 2, 6, 7), (1, 2, 3, 3), 1),
        ((1, 1, 4, 9), (1, 1, 5, 5), 1),
    ],
)
def test_fused_conv2d_maxpool2d_drops_an_odd_last_row_and_column(x_shape, filters_shape, padding):
    rng = np.random.default_rng(0)
    x, filters = rng.normal(size=x_shape), rng.normal(size=filters_shape)
    fused, cache = fused_layers.conv2d_maxpool2d_forward_fast(x, filters, padding)
    conv, _ = layers.conv2d_forward_fast(x, filters, padding)
    np.testing.assert_allclose(fused, layers.maxpool2d_forward_fast(conv, 2, 2)[0], rtol=1e-12)
    assert fused.shape[2:] == (conv.shape[2] // 2, conv.shape[3] // 2)
    d_x, _ = fused_layers.conv2d_maxpool2d_backward_fast(np.ones(fused.shape), cache)
    assert d_x.shape == x.shape
    # Pixels that only the dropped row and column of the convolution read get no gradient.
    k = filters_shape[2]
    last_row_read = 2 * (conv.shape[2] // 2) + k - 1 - padding  # first padded row not read
    assert not d_x[:, :, last_row_read:].any()
