"""The two layers SimpleCNN is built from, convolution and max-pooling, each written twice.

* ``*_loops``: the textbook definition as nested Python loops. Slow, but you can check every
  index by hand. This is the reference.
* ``*_fast``: the same arithmetic rearranged so NumPy does it in a few large operations
  (im2col + one matrix multiply for convolution, a running maximum for pooling).

A third pair, ``conv2d_maxpool2d_*``, is a convolution followed by 2x2 max-pooling as one layer:
the loops version simply chains the two reference layers; the fast version computes the
convolution one pooling window at a time, which is what SimpleCNN trains with (see the section
at the end of this file). It needs an odd filter size; for an even one, SimpleCNN takes the
``*_unfused`` pair, the two fast layers in a row.

Every layer is a pair ``forward(x, ...) -> (out, cache)`` / ``backward(d_out, cache) -> grads``:
the forward pass keeps in ``cache`` exactly what the backward pass needs. Shapes follow NumPy's
NCHW convention: ``x`` is ``(N, C, H, W)`` (images, channels, rows, columns) and ``filters`` is
``(F, C, K, K)`` (filters, input channels, kernel rows, kernel columns). Convolutions have stride 1
and no bias, as in SimpleCNN. The tests prove both versions equal, and equal to TensorFlow.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_images(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the two spatial axes of ``x`` (N, C, H, W) -> (N, C, H + 2p, W + 2p)."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def unpad_images(x: np.ndarray, padding: int) -> np.ndarray:
    """Undo ``pad_images``: (N, C, H + 2p, W + 2p) -> (N, C, H, W)."""
    if padding == 0:
        return x
    return x[:, :, padding:-padding, padding:-padding]


def pool_output_size(size_in: int, size: int, stride: int) -> int:
    """Number of pooling windows along one axis (windows that do not fit are dropped)."""
    return (size_in - size) // stride + 1


# --------------------------------------------------------------------------------------------
# Reference implementations: nested loops, one output number at a time.
# --------------------------------------------------------------------------------------------


def conv2d_forward_loops(x: np.ndarray, filters: np.ndarray, padding: int = 0):
    """Convolution (really cross-correlation, as in every deep-learning library).

    x: (N, C, H, W), filters: (F, C, K, K) -> out: (N, F, H + 2p - K + 1, W + 2p - K + 1), where
    out[n, f, i, j] = sum over c, u, v of x_padded[n, c, i + u, j + v] * filters[f, c, u, v].
    """
    x_padded = pad_images(x, padding)
    n_images, _, height, width = x_padded.shape
    n_filters, _, k, _ = filters.shape
    out = np.zeros((n_images, n_filters, height - k + 1, width - k + 1), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    window = x_padded[n, :, i : i + k, j : j + k]
                    out[n, f, i, j] = np.sum(window * filters[f])
    return out, (x_padded, filters, padding)


def conv2d_backward_loops(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of the convolution. d_out: (N, F, Ho, Wo) -> (d_x (N, C, H, W), d_filters).

    Each output number used one window of x and one filter, so it sends its gradient back to both:
    d_filters[f] += d_out[n, f, i, j] * window, d_window += d_out[n, f, i, j] * filters[f].
    ``need_d_x=False`` returns None for d_x (as the fast version does; here it is still computed).
    """
    x_padded, filters, padding = cache
    n_images, n_filters, out_height, out_width = d_out.shape
    k = filters.shape[2]
    d_x_padded = np.zeros_like(x_padded)
    d_filters = np.zeros_like(filters)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(out_height):
                for j in range(out_width):
                    window = x_padded[n, :, i : i + k, j : j + k]
                    d_filters[f] += d_out[n, f, i, j] * window
                    d_x_padded[n, :, i : i + k, j : j + k] += d_out[n, f, i, j] * filters[f]
    return (unpad_images(d_x_padded, padding) if need_d_x else None), d_filters


def maxpool2d_forward_loops(x: np.ndarray, size: int = 2, stride: int = 2):
    """Max-pooling. x: (N, C, H, W) -> out: (N, C, Ho, Wo), the maximum of each window."""
    n_images, channels, height, width = x.shape
    out_height = pool_output_size(height, size, stride)
    out_width = pool_output_size(width, size, stride)
    out = np.zeros((n_images, channels, out_height, out_width), dtype=x.dtype)
    for n in range(n_images):
        for c in range(channels):
            for i in range(out_height):
                for j in range(out_width):
                    window = x[n, c, i * stride : i * stride + size, j * stride : j * stride + size]
                    out[n, c, i, j] = np.max(window)
    return out, (x, size, stride)


def maxpool2d_backward_loops(d_out: np.ndarray, cache) -> np.ndarray:
    """Gradient of max-pooling. d_out: (N, C, Ho, Wo) -> d_x: (N, C, H, W).

    Only the maximum of a window reached the output, so only it gets the gradient. When several
    entries tie for the maximum, the first in row-major order takes it all (as TensorFlow does):
    copying it to every tie would count the same gradient several times.
    """
    x, size, stride = cache
    d_x = np.zeros_like(x)
    for n in range(d_out.shape[0]):
        for c in range(d_out.shape[1]):
            for i in range(d_out.shape[2]):
                for j in range(d_out.shape[3]):
                    window = x[n, c, i * stride : i * stride + size, j * stride : j * stride + size]
                    u, v = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    d_x[n, c, i * stride + u, j * stride + v] += d_out[n, c, i, j]
    return d_x


# --------------------------------------------------------------------------------------------
# Fast implementations: the same sums, as a few large NumPy operations.
#
# The arrays are still indexed (N, C, H, W), but stored batch-last in memory, (C, H, W, N): the
# same pixel of all N images sits side by side. Every step below (copying windows, pooling,
# adding gradients back) works on a shifted block of pixels, and in this layout each block row is
# one long run of contiguous numbers that NumPy streams through, instead of thousands of short
# 10- or 28-pixel rows. NumPy's elementwise operations keep the layout of their inputs, so the
# layout is chosen once, at the input, and flows through the whole network.
# --------------------------------------------------------------------------------------------


def batch_last(x: np.ndarray, padding: int = 0) -> np.ndarray:
    """x (N, C, H, W), zero-padded by ``padding``, as a view of memory laid out (C, H, W, N).

    No copy is made when x is already laid out that way and needs no padding.
    """
    n_images, channels, height, width = x.shape
    x_chwn = x.transpose(1, 2, 3, 0)
    if padding == 0 and x_chwn.flags.c_contiguous:
        return x
    p = padding
    x_padded = np.zeros((channels, height + 2 * p, width + 2 * p, n_images), dtype=x.dtype)
    x_padded[:, p : p + height, p : p + width, :] = x_chwn
    return x_padded.transpose(3, 0, 1, 2)


def im2col(x_padded: np.ndarray, k: int) -> np.ndarray:
    """Copy every K x K window of x_padded (N, C, H, W) into one column: (C * K * K, Ho * Wo * N).

    Column (i, j, n) holds the window under output pixel (n, i, j), ordered (c, u, v) like a
    filter, so the whole convolution is one matrix multiply: filters.reshape(F, C * K * K) @ cols.
    Row (c, u, v) is the block x_padded[:, c, u:u + Ho, v:v + Wo]: with x batch-last, one copy of
    long contiguous runs.
    """
    channels = x_padded.shape[1]
    windows = sliding_window_view(x_padded, (k, k), axis=(2, 3))  # (N, C, Ho, Wo, K, K), no copy
    return windows.transpose(1, 4, 5, 2, 3, 0).reshape(channels * k * k, -1)  # the one copy


def col2im(d_cols: np.ndarray, x_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of im2col: add each column's gradient back onto the window it was copied from.

    d_cols: (C * K * K, Ho * Wo * N) -> d_x_padded of x_shape = (N, C, H, W), batch-last.
    Windows overlap, so a pixel collects the gradient of every window it was in: one vectorised
    add per (u, v) offset.
    """
    n_images, channels, height, width = x_shape
    out_height, out_width = height - k + 1, width - k + 1
    d_windows = d_cols.reshape(channels, k, k, out_height, out_width, n_images)
    d_x_padded = np.zeros((channels, height, width, n_images), dtype=d_cols.dtype)
    for u in range(k):
        for v in range(k):
            d_x_padded[:, u : u + out_height, v : v + out_width] += d_windows[:, u, v]
    return d_x_padded.transpose(3, 0, 1, 2)


def matmul_transposed_blocked(a: np.ndarray, b: np.ndarray, block: int = 4096) -> np.ndarray:
    """a @ b.T for a (M, P) and b (K, P) with P huge: a sum of products of column blocks.

    For a tiny result and a very long inner dimension, like conv1's (6, 50176) @ (50176, 25),
    OpenBLAS is several times slower in one call than over blocks that stay in cache, and faster
    again when the tall operand comes first: so it sums b_block @ a_block.T and transposes the
    (K, M) total at the end.
    """
    out = np.zeros((b.shape[0], a.shape[0]), dtype=np.result_type(a, b))
    for start in range(0, a.shape[1], block):
        out += b[:, start : start + block] @ a[:, start : start + block].T
    return out.T


def conv2d_forward_fast(x: np.ndarray, filters: np.ndarray, padding: int = 0):
    """Convolution as one matrix multiply. x: (N, C, H, W), filters: (F, C, K, K) -> (N, F, Ho, Wo).

    The matrix product comes out as (F, Ho * Wo * N): batch-last already, so it is returned as an
    (N, F, Ho, Wo) view of that memory, without a copy.
    """
    x_padded = batch_last(x, padding)
    n_images, _, height, width = x_padded.shape
    n_filters, _, k, _ = filters.shape
    cols = im2col(x_padded, k)  # (C * K * K, Ho * Wo * N)
    out = filters.reshape(n_filters, -1) @ cols  # (F, Ho * Wo * N)
    out = out.reshape(n_filters, height - k + 1, width - k + 1, n_images).transpose(3, 0, 1, 2)
    return out, (x_padded.shape, cols, filters, padding)


def conv2d_backward_fast(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of the convolution. d_out: (N, F, Ho, Wo) -> (d_x (N, C, H, W), d_filters).

    With out = W @ cols, the matrix-calculus rules give d_W = d_out @ cols.T and
    d_cols = W.T @ d_out; col2im turns d_cols back into d_x. The first layer's d_x is never used
    (nobody learns the input image), so ``need_d_x=False`` skips it and returns None.
    """
    x_padded_shape, cols, filters, padding = cache
    n_filters = filters.shape[0]
    d_out = d_out.transpose(1, 2, 3, 0).reshape(n_filters, -1)  # (F, Ho * Wo * N), usually no copy
    d_filters = matmul_transposed_blocked(d_out, cols).reshape(filters.shape)
    if not need_d_x:
        return None, d_filters
    d_cols = filters.reshape(n_filters, -1).T @ d_out  # (C * K * K, Ho * Wo * N)
    d_x_padded = col2im(d_cols, x_padded_shape, filters.shape[2])
    return unpad_images(d_x_padded, padding), d_filters


def window_position_views(x: np.ndarray, size: int, stride: int):
    """For each position (u, v) of a pooling window, in row-major order, yield a view
    (N, C, Ho, Wo) of the pixel at that position in every window.

    The view x[:, :, u::stride, v::stride] (cut to Ho x Wo) holds pixel (u, v) of every window, so
    looping over the size * size positions, not over the windows, keeps the work in NumPy.
    """
    out_height = pool_output_size(x.shape[2], size, stride)
    out_width = pool_output_size(x.shape[3], size, stride)
    for u in range(size):
        for v in range(size):
            rows = slice(u, u + stride * (out_height - 1) + 1, stride)
            cols = slice(v, v + stride * (out_width - 1) + 1, stride)
            yield x[:, :, rows, cols]


def maxpool2d_forward_fast(x: np.ndarray, size: int = 2, stride: int = 2):
    """Max-pooling as a running maximum over window positions. x: (N, C, H, W) -> (N, C, Ho, Wo)."""
    positions = window_position_views(x, size, stride)
    out = next(positions).copy(order="K")  # order="K" keeps x's memory layout
    for pixels in positions:
        np.maximum(out, pixels, out=out)
    return out, (x, out, size, stride)


def maxpool2d_backward_fast(d_out: np.ndarray, cache) -> np.ndarray:
    """Gradient of max-pooling. d_out: (N, C, Ho, Wo) -> d_x: (N, C, H, W).

    Walking the window positions in row-major order, the first pixel equal to its window's maximum
    takes the window's whole gradient; later ties get nothing. Overlapping windows add up.
    """
    x, out, size, stride = cache
    # When the windows tile x exactly (2x2, stride 2, even sizes), every pixel is written exactly
    # once below, so d_x needs no zero-filling and each write can be a plain store.
    tiled = stride == size and all(n % size == 0 for n in x.shape[2:])
    d_x = (np.empty_like if tiled else np.zeros_like)(x, dtype=d_out.dtype)  # keeps x's layout
    d_unclaimed = np.empty_like(out)  # each window's gradient, until its first maximum takes it
    d_unclaimed[...] = d_out  # (copied into out's memory layout, which d_x shares)
    for pixels, d_pixels in zip(
        window_position_views(x, size, stride),
        window_position_views(d_x, size, stride),
        strict=True,
    ):
        is_max = pixels == out
        if tiled:
            d_taken = np.multiply(d_unclaimed, is_max, out=d_pixels)
        else:
            d_taken = d_unclaimed * is_max  # multiplying by a mask beats np.where 5x here
            d_pixels += d_taken
        d_unclaimed -= d_taken  # a later tie for the maximum finds nothing left
    return d_x


# --------------------------------------------------------------------------------------------
# Convolution followed by 2x2 max-pooling, in one step: what SimpleCNN trains with.
#
# Every convolution in SimpleCNN is pooled in 2x2 windows, stride 2. So instead of copying one
# K x K window per output pixel (im2col) and pooling afterwards, copy one (K + 1) x (K + 1) patch
# per *pooling window*: the patch holds the K x K windows of all four of the window's pixels.
# A filter matrix holding each filter four times, shifted to the four positions inside the patch
# (zeros elsewhere), turns each patch into its window's four convolution outputs at once.
#
# * The copy is (K + 1)^2 / (4 K^2) the size of im2col's, 36/100 for 5x5 filters: 2.8x less
#   memory to write and read back, and memory traffic, not arithmetic, is what bounds these
#   small layers.
# * The four pixels of every pooling window come out of the matrix product as four separate
#   blocks, one per window position, so pooling is an elementwise maximum of four blocks,
#   forward and backward, with no strided access at all.
# * The price: the shifted filters' zeros cost 1.44x the multiply-adds, which BLAS does at
#   nearly full speed on the (4F, C (K + 1)^2) filter matrix, much squarer than im2col's (F, C K^2).
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


WINDOWS_FROM_FILTERS = 32  # see choose_columns


def choose_columns(n_filters: int) -> str:
    """How conv2d_maxpool2d lays out its matrix product: "patches" or "windows".

    "patches" copies one (K + 1) x (K + 1) patch per pooling window and multiplies it by the
    filters shifted to its four corners: the smallest copy, but the shifted filters' zeros cost
    (K + 1)^2 / K^2 the multiply-adds. "windows" is im2col with its columns grouped by pooling
    position: a bigger copy, no wasted multiply-adds. Few filters make a layer's work mostly
    copying, many make it mostly multiplying: from WINDOWS_FROM_FILTERS filters on, the
    multiply-adds the shifted filters waste cost more than the smaller copy saves (see
    benchmarks/README.md). A rule on the shape alone, so a run computes the same numbers on
    every machine and every resume.
    """
    return "windows" if n_filters >= WINDOWS_FROM_FILTERS else "patches"


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


def conv2d_maxpool2d_forward_fast(
    x: np.ndarray,
    filters: np.ndarray,
    padding: int = 0,
    need_cache: bool = True,
    columns: str | None = None,
):
    """Convolution, then 2x2 max-pooling with stride 2, as one matrix multiply and one maximum.

    x: (N, C, H, W), filters: (F, C, K, K) with K odd -> (N, F, Ho // 2, Wo // 2), stored
    batch-last, where Ho = H + 2p - K + 1 (likewise Wo). Equal to
    maxpool2d_forward_fast(conv2d_forward_fast(x, filters, padding), 2, 2). ``need_cache=False``
    keeps nothing for the backward pass (inference) and returns None for the cache.
    ``columns`` is "patches" or "windows" (see choose_columns; None chooses by the shape).
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
    columns = columns or choose_columns(n_filters)
    if columns == "patches":
        matrix = pooling_patches(used, k)  # (C (K + 1)^2, Ho/2 Wo/2 N)
        weights = shifted_filters(filters)  # (4F, C (K + 1)^2)
    else:
        matrix = pooling_windows(used, k)  # (C K^2, 4 Ho/2 Wo/2 N)
        weights = filters.reshape(n_filters, -1)  # (F, C K^2)
    # Either way, conv[f, u * 2 + v] holds the convolution at pixel (u, v) of every window.
    conv = (weights @ matrix).reshape(n_filters, 4, -1)
    pooled = conv.max(axis=1)  # (F, Ho/2 Wo/2 N): the maximum of each window's four pixels
    out = pooled.reshape(n_filters, out_height // 2, out_width // 2, n_images).transpose(3, 0, 1, 2)
    if not need_cache:
        return out, None
    # Which pixel of each window is its first maximum is all the backward pass needs of conv:
    # found now, while conv is still in the CPU's cache, and kept as booleans, 1/4 of its size.
    is_first_max = conv == pooled[:, np.newaxis]  # (F, 4, Ho/2 Wo/2 N), every tie so far
    keep_first_maximum([is_first_max[:, position] for position in range(4)])
    cache = (columns, x_padded.shape, used.shape, matrix, weights, is_first_max, filters.shape)
    return out, (*cache, padding)


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


def conv2d_maxpool2d_backward_fast(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d. d_out: (N, F, Ho/2, Wo/2) -> (d_x (N, C, H, W), d_filters).

    Pooling first: each window's gradient goes to its first maximum (positions in row-major
    order), as in maxpool2d_backward_fast. Then the convolution, as in conv2d_backward_fast with
    the forward pass's matrix (patches or windows) for im2col's columns.
    """
    columns, x_padded_shape, used_shape, matrix, weights, is_first_max, filters_shape, padding = (
        cache
    )
    n_filters = filters_shape[0]
    d_pooled = d_out.transpose(1, 2, 3, 0).reshape(n_filters, 1, -1)  # (F, 1, Ho/2 Wo/2 N)
    # Each window's gradient goes to its first maximum, nothing to its other pixels.
    d_conv = (d_pooled * is_first_max).reshape(weights.shape[0], -1)  # as weights @ matrix
    # d_weights = d_conv @ matrix.T, computed as (matrix @ d_conv.T).T: with the tall operand
    # first OpenBLAS is faster here.
    d_weights = (matrix @ d_conv.T).T
    if columns == "patches":
        d_filters = unshift_filter_gradient(d_weights, filters_shape)
    else:
        d_filters = d_weights.reshape(filters_shape)
    if not need_d_x:
        return None, d_filters
    d_matrix = weights.T @ d_conv
    to_image = patches_to_image if columns == "patches" else windows_to_image
    d_x_padded = to_image(d_matrix, used_shape, filters_shape[2])
    if used_shape != x_padded_shape:  # the pixels cut off in the forward pass get no gradient
        d_x_full = np.zeros(x_padded_shape[1:] + x_padded_shape[:1], dtype=d_x_padded.dtype)
        d_x_full = d_x_full.transpose(3, 0, 1, 2)  # (N, C, H, W), batch-last like the rest
        d_x_full[:, :, : used_shape[2], : used_shape[3]] = d_x_padded
        d_x_padded = d_x_full
    return unpad_images(d_x_padded, padding), d_filters


def patches_to_image(d_patches: np.ndarray, x_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of pooling_patches: add each patch's gradient back where it was copied from.

    d_patches: (C * (K + 1)^2, Ho/2 * Wo/2 * N) -> d_x_padded of x_shape = (N, C, H, W),
    batch-last. Patch (i, j) covers image rows 2i .. 2i + K and columns 2j .. 2j + K.
    """
    n_images, channels, height, width = x_shape
    half = (k + 1) // 2  # K is odd, so a patch is 2 * half pixels wide
    rows, cols = (height - k + 1) // 2, (width - k + 1) // 2  # pooling windows per column, row
    # Patches overlap with a stride of 2, so work on the image's four "phases", the pixels at
    # (even, even), (even, odd), (odd, even) and (odd, odd) rows and columns: patch pixel
    # (2a + r, 2b + s) lands on pixel (2(i + a) + r, 2(j + b) + s), phase (r, s), at (i + a, j + b).
    # One add per (a, b) then covers all four phases: 9 adds of long runs for 5x5 filters,
    # instead of 36 adds of 2-pixel-strided ones.
    d_patches = d_patches.reshape(channels, half, 2, half, 2, rows, cols, n_images)
    d_phases = np.zeros((channels, 2, 2, height // 2, width // 2, n_images), d_patches.dtype)
    for a in range(half):
        for b in range(half):
            d_phases[:, :, :, a : a + rows, b : b + cols] += d_patches[:, a, :, b, :]
    # Interleave the phases back: d_x_padded[c, 2y + r, 2x + s] = d_phases[c, r, s, y, x].
    d_x_padded = d_phases.transpose(0, 3, 1, 4, 2, 5).reshape(channels, height, width, n_images)
    return d_x_padded.transpose(3, 0, 1, 2)


def conv2d_maxpool2d_forward_unfused(
    x: np.ndarray, filters: np.ndarray, padding: int = 0, need_cache: bool = True
):
    """Convolution, then 2x2 max-pooling, as the two fast layers in a row.

    The route for even filter sizes, which the fused layer cannot take: same shapes and numbers
    as conv2d_maxpool2d_forward_fast.
    """
    conv, conv_cache = conv2d_forward_fast(x, filters, padding)
    out, pool_cache = maxpool2d_forward_fast(conv, 2, 2)
    return out, ((conv_cache, pool_cache) if need_cache else None)


def conv2d_maxpool2d_backward_unfused(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d_forward_unfused: back through the pooling, then the conv."""
    conv_cache, pool_cache = cache
    return conv2d_backward_fast(maxpool2d_backward_fast(d_out, pool_cache), conv_cache, need_d_x)


def conv2d_maxpool2d_forward_loops(
    x: np.ndarray, filters: np.ndarray, padding: int = 0, need_cache: bool = True
):
    """Convolution, then 2x2 max-pooling with stride 2: the two reference layers in a row."""
    conv, conv_cache = conv2d_forward_loops(x, filters, padding)
    out, pool_cache = maxpool2d_forward_loops(conv, 2, 2)
    return out, ((conv_cache, pool_cache) if need_cache else None)


def conv2d_maxpool2d_backward_loops(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of conv2d_maxpool2d_forward_loops: back through the pooling, then the conv."""
    conv_cache, pool_cache = cache
    return conv2d_backward_loops(maxpool2d_backward_loops(d_out, pool_cache), conv_cache, need_d_x)
