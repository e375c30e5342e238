"""The two layers SimpleCNN is built from, convolution and max-pooling, each written twice.

* ``*_loops``: the textbook definition as nested Python loops. Slow, but you can check every
  index by hand. This is the reference.
* ``*_fast``: the same arithmetic rearranged so NumPy does it in a few large operations
  (im2col + one matrix multiply for convolution, a running maximum for pooling).

Every layer is a pair ``forward(x, ...) -> (out, cache)`` / ``backward(d_out, cache) -> grads``,
the forward directly above its backward: the forward pass keeps in ``cache`` exactly what the
backward pass needs. Shapes follow NumPy's NCHW convention: ``x`` is ``(N, C, H, W)`` (images,
channels, rows, columns) and ``filters`` is ``(F, C, K, K)`` (filters, input channels, kernel
rows, kernel columns). Convolutions have stride 1 and no bias, as in SimpleCNN. The tests prove
both versions equal, and equal to TensorFlow.

SimpleCNN trains with a convolution and the max-pooling after it computed as one layer: that
layer, built from these, is in ``fused_layers.py``.
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
    OpenBLAS is slower in one call than over blocks that stay in cache, and faster again when the
    tall operand comes first: so it sums b_block @ a_block.T and transposes the (K, M) total at
    the end.
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
            columns = slice(v, v + stride * (out_width - 1) + 1, stride)
            yield x[:, :, rows, columns]


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
            d_taken = d_unclaimed * is_max  # a multiply by the mask: faster than np.where
            d_pixels += d_taken
        d_unclaimed -= d_taken  # a later tie for the maximum finds nothing left
    return d_x
