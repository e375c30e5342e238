"""Convolution followed by 2x2 max-pooling, as one layer: what SimpleCNN trains with.

Every convolution in SimpleCNN is pooled in 2x2 windows, stride 2. So instead of copying one
K x K window per output pixel (im2col) and pooling afterwards, copy one (K + 1) x (K + 1) patch
per *pooling window*: the patch holds the K x K windows of all four of the window's pixels.
A filter matrix holding each filter four times, shifted to the four positions inside the patch
(zeros elsewhere), turns each patch into its window's four convolution outputs at once.

* The copy is (K + 1)^2 / (4 K^2) the size of im2col's, 36/100 for 5x5 filters: less memory to
  write and read back, and memory traffic, not arithmetic, is what bounds these small layers.
* The four pixels of every pooling window come out of the matrix product as four separate
  blocks, one per window position, so pooling is an elementwise maximum of four blocks,
  forward and backward, with no strided access at all.
* The price: the shifted filters' zeros cost (K + 1)^2 / K^2 the multiply-adds (36/25 for 5x5),
  which BLAS does at nearly full speed on the (4F, C (K + 1)^2) filter matrix, much squarer than
  im2col's (F, C K^2). With many filters that price outgrows the saving, and the layer copies
  im2col's windows instead, grouped by pooling position (the "windows" layout, choose_layout).

The pair ``conv2d_maxpool2d_forward_* -> (out, cache)`` / ``conv2d_maxpool2d_backward_*`` comes
three times, each forward directly above its backward:

* ``*_loops``: the two reference layers of layers.py in a row. The reference.
* ``*_fast``: the fused layer described above, for odd kernel sizes (its patches are K + 1
  pixels wide, cut in halves).
* ``*_unfused``: the two fast layers of layers.py in a row, for even kernel sizes.

x: (N, C, H, W), filters: (F, C, K, K) -> out (N, F, Ho // 2, Wo // 2), Ho = H + 2p - K + 1
(likewise Wo): an odd last row or column of the convolution has no pooling window and is
dropped, as TensorFlow's "valid" pooling drops it. ``keep_cache=False`` keeps nothing for the
backward pass (inference) and returns None for the cache. The tests prove the three equal.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from layers import (
    batch_last,
    conv2d_backward_fast,
    conv2d_backward_loops,
    conv2d_forward_fast,
    conv2d_forward_loops,
    maxpool2d_backward_fast,
    maxpool2d_backward_loops,
    maxpool2d_forward_fast,
    maxpool2d_forward_loops,
    unpad_images,
)

# --------------------------------------------------------------------------------------------
# Reference: the two nested-loop layers in a row.
# --------------------------------------------------------------------------------------------


def conv2d_maxpool2d_forward_loops(
    x: np.ndarray, filters: np.ndarray, padding: int = 0, keep_cache: bool = True
):
    """Convolution, then 2x2 max-pooling with stride 2: the two reference layers in a row."""
    conv, conv_cache = conv2d_forward_loops(x, filters, padding)
    out, pool_cache = maxpool2d_forward_loops(conv, 2, 2)
    return out, ((conv_cache, pool_cache) if keep_cache else None)


def conv2d_maxpool2d_backward_loops(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d_forward_loops: back through the pooling, then the conv."""
    conv_cache, pool_cache = cache
    return conv2d_backward_loops(maxpool2d_backward_loops(d_out, pool_cache), conv_cache, need_d_x)


# --------------------------------------------------------------------------------------------
# The fused layer's two layouts of its matrix product, each copy beside its adjoint (which adds
# the copy's gradient back onto the image).
#
# "patches": one (K + 1) x (K + 1) patch per pooling window, times the filters shifted to the
# patch's four corners.
# --------------------------------------------------------------------------------------------


def pooling_patches(x_padded: np.ndarray, k: int) -> np.ndarray:
    """Copy the (K + 1) x (K + 1) patch under every 2x2 pooling window into one column.

    x_padded: (N, C, H, W), batch-last, with H - K + 1 and W - K + 1 (the convolution's output
    size) even. Returns (C * (K + 1)^2, Ho/2 * Wo/2 * N): column (i, j, n) holds the patch
    x_padded[n, :, 2i : 2i + K + 1, 2j : 2j + K + 1], ordered (c, a, b).
    """
    channels = x_padded.shape[1]
    size = k + 1
    # Every (K + 1) x (K + 1) window, then only those at even rows and columns: one per pooling
    # window (a pooling window's top-left pixel is at (2i, 2j), and its patch starts there too).
    windows = sliding_window_view(x_padded, (size, size), axis=(2, 3))[:, :, ::2, ::2]
    return windows.transpose(1, 4, 5, 2, 3, 0).reshape(channels * size * size, -1)  # the copy


def patches_to_image(d_patches: np.ndarray, x_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of pooling_patches: add each patch's gradient back where it was copied from.

    d_patches: (C * (K + 1)^2, Ho/2 * Wo/2 * N) -> d_x_padded of x_shape = (N, C, H, W),
    batch-last. Patch (i, j) covers image rows 2i .. 2i + K and columns 2j .. 2j + K.
    """
    n_images, channels, height, width = x_shape
    half = (k + 1) // 2  # K is odd, so a patch is 2 * half pixels wide
    rows, columns = (height - k + 1) // 2, (width - k + 1) // 2  # pooling windows down, across
    # Patches overlap with a stride of 2, so work on the image's four "phases", the pixels at
    # (even, even), (even, odd), (odd, even) and (odd, odd) rows and columns: patch pixel
    # (2a + r, 2b + s) lands on pixel (2(i + a) + r, 2(j + b) + s), phase (r, s), at (i + a, j + b).
    # One add per (a, b) then covers all four phases: 9 adds of long runs for 5x5 filters,
    # instead of 36 adds of 2-pixel-strided ones.
    d_patches = d_patches.reshape(channels, half, 2, half, 2, rows, columns, n_images)
    d_phases = np.zeros((channels, 2, 2, height // 2, width // 2, n_images), d_patches.dtype)
    for a in range(half):
        for b in range(half):
            d_phases[:, :, :, a : a + rows, b : b + columns] += d_patches[:, a, :, b, :]
    # Interleave the phases back: d_x_padded[c, 2y + r, 2x + s] = d_phases[c, r, s, y, x].
    d_x_padded = d_phases.transpose(0, 3, 1, 4, 2, 5).reshape(channels, height, width, n_images)
    return d_x_padded.transpose(3, 0, 1, 2)


def shifted_filters(filters: np.ndarray) -> np.ndarray:
    """filters (F, C, K, K) -> (4F, C * (K + 1)^2): each filter at the four corners of a patch.

    Row (f, u, v), for pooling-window position (u, v) in row-major order, holds filter f placed
    at row u, column v of a (K + 1) x (K + 1) patch, zeros elsewhere: multiplied by a patch
    column, it gives the convolution at pixel (u, v) of that patch's pooling window.
    """
    n_filters, channels, k, _ = filters.shape
    shifted = np.zeros((n_filters, 2, 2, channels, k + 1, k + 1), dtype=filters.dtype)
    for u in range(2):
        for v in range(2):
            shifted[:, u, v, :, u : u + k, v : v + k] = filters
    return shifted.reshape(4 * n_filters, -1)


def unshift_filter_gradient(d_shifted: np.ndarray, filters_shape: tuple) -> np.ndarray:
    """The adjoint of shifted_filters: (4F, C * (K + 1)^2) -> (F, C, K, K).

    Each filter was used four times, once per corner, so its gradient is the sum of the four.
    """
    n_filters, channels, k, _ = filters_shape
    d_shifted = d_shifted.reshape(n_filters, 2, 2, channels, k + 1, k + 1)
    return sum(d_shifted[:, u, v, :, u : u + k, v : v + k] for u in range(2) for v in range(2))


# --------------------------------------------------------------------------------------------
# "windows": im2col's K x K windows, grouped by their pixel's position in its pooling window,
# times the filters as they are.
# --------------------------------------------------------------------------------------------


def pooling_windows(x_padded: np.ndarray, k: int) -> np.ndarray:
    """im2col with its columns grouped by pooling-window position.

    x_padded: (N, C, H, W), batch-last, with H - K + 1 and W - K + 1 even. Returns
    (C * K * K, 4 * Ho/2 * Wo/2 * N): column (u, v, i, j, n) holds the K x K window under
    convolution pixel (2i + u, 2j + v) of image n, that is pixel (u, v) of pooling window (i, j),
    ordered (c, a, b) like a filter.
    """
    n_images, channels, height, width = x_padded.shape
    out_height, out_width = height - k + 1, width - k + 1
    windows = sliding_window_view(x_padded, (k, k), axis=(2, 3))  # (N, C, Ho, Wo, K, K), no copy
    # Split each output axis into (window, position in the window): still a view.
    windows = windows.reshape(n_images, channels, out_height // 2, 2, out_width // 2, 2, k, k)
    return windows.transpose(1, 6, 7, 3, 5, 2, 4, 0).reshape(channels * k * k, -1)  # the copy


def windows_to_image(d_windows: np.ndarray, x_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of pooling_windows: add each window's gradient back where it was copied from.

    d_windows: (C * K * K, 4 * Ho/2 * Wo/2 * N) -> d_x_padded of x_shape = (N, C, H, W),
    batch-last. One add per filter tap (a, b), into a strided view of the image.
    """
    n_images, channels, height, width = x_shape
    out_height, out_width = height - k + 1, width - k + 1
    d_windows = d_windows.reshape(channels, k, k, 2, 2, out_height // 2, out_width // 2, n_images)
    d_x_padded = np.zeros((channels, height, width, n_images), dtype=d_windows.dtype)
    for a in range(k):
        for b in range(k):
            # Tap (a, b) of convolution pixel (2i + u, 2j + v) read image pixel (2i + u + a, ...).
            pixels = d_x_padded[:, a : a + out_height, b : b + out_width]
            pixels = pixels.reshape(channels, out_height // 2, 2, out_width // 2, 2, n_images)
            pixels.transpose(0, 2, 4, 1, 3, 5)[...] += d_windows[:, a, b]
    return d_x_padded.transpose(3, 0, 1, 2)


WINDOWS_FROM_FILTERS = 32  # see choose_layout


def choose_layout(n_filters: int) -> str:
    """How conv2d_maxpool2d_forward_fast lays out its matrix product: "patches" or "windows".

    "patches" copies one (K + 1) x (K + 1) patch per pooling window and multiplies it by the
    filters shifted to its four corners: the smallest copy, but the shifted filters' zeros cost
    (K + 1)^2 / K^2 the multiply-adds. "windows" is im2col with its columns grouped by pooling
    position: a bigger copy, no wasted multiply-adds. Few filters make a layer's work mostly
    copying, many make it mostly multiplying: from WINDOWS_FROM_FILTERS filters on, the
    multiply-adds the shifted filters waste cost more than the smaller copy saves (measured in
    benchmarks/README.md). A rule on the shape alone, so a run computes the same numbers on
    every machine and every resume.
    """
    return "windows" if n_filters >= WINDOWS_FROM_FILTERS else "patches"


# --------------------------------------------------------------------------------------------
# The fused layer, forward and backward.
# --------------------------------------------------------------------------------------------


def keep_first_maximum(is_max_at: list) -> None:
    """Of each window's pixels equal to its maximum, keep only the first, in place.

    ``is_max_at[p]`` is a boolean array, one entry per window, true where the window's pixel at
    position p (row-major order) equals its maximum: afterwards it is true only where no earlier
    position did, so ties send the window's gradient to one pixel, as TensorFlow does.
    """
    seen = is_max_at[0].copy()  # windows whose maximum has been met at an earlier position
    for is_max in is_max_at[1:]:
        # a > b on booleans is "a and not b": a later tie for the maximum is not the first.
        np.greater(is_max, seen, out=is_max)
        seen |= is_max


def conv2d_maxpool2d_forward_fast(
    x: np.ndarray,
    filters: np.ndarray,
    padding: int = 0,
    keep_cache: bool = True,
    layout: str | None = None,
):
    """Convolution, then 2x2 max-pooling with stride 2, as one matrix multiply and one maximum.

    x: (N, C, H, W), filters: (F, C, K, K) with K odd -> (N, F, Ho // 2, Wo // 2), stored
    batch-last, where Ho = H + 2p - K + 1 (likewise Wo). Equal to
    maxpool2d_forward_fast(conv2d_forward_fast(x, filters, padding), 2, 2). ``keep_cache=False``
    keeps nothing for the backward pass (inference) and returns None for the cache.
    ``layout`` is "patches" or "windows" (see choose_layout; None chooses by the shape).
    """
    n_filters, _, k, _ = filters.shape
    if k % 2 == 0:
        raise ValueError(
            f"conv2d_maxpool2d needs an odd filter size (its patches are K + 1 pixels wide, "
            f"cut in halves), got {k}x{k} filters; use conv2d, then maxpool2d"
        )
    x_padded = batch_last(x, padding)
    n_images, _, height, width = x_padded.shape
    out_height, out_width = height - k + 1, width - k + 1
    if out_height < 2 or out_width < 2:
        raise ValueError(
            f"a {k}x{k} convolution of x {x.shape} padded by {padding} gives "
            f"{out_height}x{out_width}, smaller than the 2x2 pooling window"
        )
    # An odd output row or column has no pooling window (it is dropped, as TensorFlow's "valid"
    # pooling drops it), so the input pixels only it would read are cut off here: the rest is
    # even, K being odd, and its gradient is zero (see the backward pass).
    used = x_padded[:, :, : out_height // 2 * 2 + k - 1, : out_width // 2 * 2 + k - 1]
    layout = layout or choose_layout(n_filters)
    if layout == "patches":
        x_cols = pooling_patches(used, k)  # (C (K + 1)^2, Ho/2 Wo/2 N)
        weights = shifted_filters(filters)  # (4F, C (K + 1)^2)
    else:
        x_cols = pooling_windows(used, k)  # (C K^2, 4 Ho/2 Wo/2 N)
        weights = filters.reshape(n_filters, -1)  # (F, C K^2)
    # Either way, conv[f, u * 2 + v] holds the convolution at pixel (u, v) of every window.
    conv = (weights @ x_cols).reshape(n_filters, 4, -1)
    pooled = conv.max(axis=1)  # (F, Ho/2 Wo/2 N): the maximum of each window's four pixels
    out = pooled.reshape(n_filters, out_height // 2, out_width // 2, n_images).transpose(3, 0, 1, 2)
    if not keep_cache:
        return out, None
    # Which pixel of each window is its first maximum is all the backward pass needs of conv:
    # found now, while conv is still in the CPU's cache, and kept as booleans, a byte a pixel.
    is_first_max = conv == pooled[:, np.newaxis]  # (F, 4, Ho/2 Wo/2 N), every tie so far
    keep_first_maximum([is_first_max[:, position] for position in range(4)])
    cache = (layout, x_padded.shape, used.shape, x_cols, weights, is_first_max, filters.shape)
    return out, (*cache, padding)


def conv2d_maxpool2d_backward_fast(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d. d_out: (N, F, Ho/2, Wo/2) -> (d_x (N, C, H, W), d_filters).

    Pooling first: each window's gradient goes to its first maximum (positions in row-major
    order), as in maxpool2d_backward_fast. Then the convolution, as in conv2d_backward_fast with
    the forward pass's matrix (patches or windows) for im2col's columns. The first layer's d_x
    is never used (nobody learns the input image), so ``need_d_x=False`` skips it (None).
    """
    layout, x_padded_shape, used_shape, x_cols, weights, is_first_max, filters_shape, padding = (
        cache
    )
    n_filters = filters_shape[0]
    d_pooled = d_out.transpose(1, 2, 3, 0).reshape(n_filters, 1, -1)  # (F, 1, Ho/2 Wo/2 N)
    # Each window's gradient goes to its first maximum, nothing to its other pixels.
    d_conv = (d_pooled * is_first_max).reshape(weights.shape[0], -1)  # as weights @ x_cols
    # d_weights = d_conv @ x_cols.T, computed as (x_cols @ d_conv.T).T: with the tall operand
    # first OpenBLAS is faster here.
    d_weights = (x_cols @ d_conv.T).T
    if layout == "patches":
        d_filters = unshift_filter_gradient(d_weights, filters_shape)
    else:
        d_filters = d_weights.reshape(filters_shape)
    if not need_d_x:
        return None, d_filters
    d_x_cols = weights.T @ d_conv
    if layout == "patches":
        d_x_padded = patches_to_image(d_x_cols, used_shape, filters_shape[2])
    else:
        d_x_padded = windows_to_image(d_x_cols, used_shape, filters_shape[2])
    if used_shape != x_padded_shape:  # the pixels cut off in the forward pass get no gradient
        d_x_full = np.zeros(x_padded_shape[1:] + x_padded_shape[:1], dtype=d_x_padded.dtype)
        d_x_full = d_x_full.transpose(3, 0, 1, 2)  # (N, C, H, W), batch-last like the rest
        d_x_full[:, :, : used_shape[2], : used_shape[3]] = d_x_padded
        d_x_padded = d_x_full
    return unpad_images(d_x_padded, padding), d_filters


# --------------------------------------------------------------------------------------------
# Even kernel sizes: the two fast layers in a row.
# --------------------------------------------------------------------------------------------


def conv2d_maxpool2d_forward_unfused(
    x: np.ndarray, filters: np.ndarray, padding: int = 0, keep_cache: bool = True
):
    """Convolution, then 2x2 max-pooling, as the two fast layers in a row.

    The route for even filter sizes, which the fused layer cannot take: same shapes and numbers
    as conv2d_maxpool2d_forward_fast.
    """
    conv, conv_cache = conv2d_forward_fast(x, filters, padding)
    out, pool_cache = maxpool2d_forward_fast(conv, 2, 2)
    return out, ((conv_cache, pool_cache) if keep_cache else None)


def conv2d_maxpool2d_backward_unfused(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d_forward_unfused: back through the pooling, then the conv."""
    conv_cache, pool_cache = cache
    return conv2d_backward_fast(maxpool2d_backward_fast(d_out, pool_cache), conv_cache, need_d_x)
