"""The two layers SimpleCNN is built from, convolution and max-pooling, each written twice.

* ``*_loops``: the textbook definition as nested Python loops. Slow, but you can check every
  index by hand. This is the reference.
* ``*_fast``: the same arithmetic rearranged so NumPy does it in a few large operations
  (im2col + one matrix multiply for convolution, a window view for pooling). This is what trains.

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


def conv2d_backward_loops(d_out: np.ndarray, cache):
    """Gradients of the convolution. d_out: (N, F, Ho, Wo) -> (d_x (N, C, H, W), d_filters).

    Each output number used one window of x and one filter, so it sends its gradient back to both:
    d_filters[f] += d_out[n, f, i, j] * window, d_window += d_out[n, f, i, j] * filters[f].
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
    return unpad_images(d_x_padded, padding), d_filters


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
# --------------------------------------------------------------------------------------------


def im2col(x_padded: np.ndarray, k: int) -> np.ndarray:
    """Copy every K x K window of x_padded (N, C, H, W) into one row: (N * Ho * Wo, C * K * K).

    Row (n, i, j) holds the window under output pixel (n, i, j), ordered (c, u, v) like a filter,
    so the whole convolution becomes one matrix multiply with filters.reshape(F, C * K * K).
    """
    n_images, channels = x_padded.shape[:2]
    windows = sliding_window_view(x_padded, (k, k), axis=(2, 3))  # (N, C, Ho, Wo, K, K), no copy
    out_height, out_width = windows.shape[2:4]
    # The transpose puts one window's numbers next to each other; reshape then copies once.
    rows = windows.transpose(0, 2, 3, 1, 4, 5)
    return rows.reshape(n_images * out_height * out_width, channels * k * k)


def col2im(d_cols: np.ndarray, x_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of im2col: add each row's gradient back onto the window it was copied from.

    d_cols: (N * Ho * Wo, C * K * K) -> d_x_padded: x_shape = (N, C, H, W). Windows overlap, so
    a pixel collects the gradient of every window it was in: one vectorised add per (u, v) offset.
    """
    n_images, channels, height, width = x_shape
    out_height, out_width = height - k + 1, width - k + 1
    d_windows = d_cols.reshape(n_images, out_height, out_width, channels, k, k)
    d_x_padded = np.zeros(x_shape, dtype=d_cols.dtype)
    for u in range(k):
        for v in range(k):
            d_x_padded[:, :, u : u + out_height, v : v + out_width] += d_windows[
                :, :, :, :, u, v
            ].transpose(0, 3, 1, 2)
    return d_x_padded


def conv2d_forward_fast(x: np.ndarray, filters: np.ndarray, padding: int = 0):
    """Convolution as one matrix multiply. x: (N, C, H, W), filters: (F, C, K, K) -> (N, F, Ho, Wo).

    The result is returned as a transposed view of an (N, Ho, Wo, F) array: no copy is made, and
    NumPy's elementwise operations keep that memory order, so the backward pass gets its gradient
    in the (N * Ho * Wo, F) layout it multiplies with, again without a copy.
    """
    x_padded = pad_images(x, padding)
    n_filters, _, k, _ = filters.shape
    cols = im2col(x_padded, k)  # (N * Ho * Wo, C * K * K)
    out_rows = cols @ filters.reshape(n_filters, -1).T  # (N * Ho * Wo, F)
    n_images, _, height, width = x_padded.shape
    out = out_rows.reshape(n_images, height - k + 1, width - k + 1, n_filters)
    return out.transpose(0, 3, 1, 2), (x_padded.shape, cols, filters, padding)


def conv2d_backward_fast(d_out: np.ndarray, cache, need_d_x: bool = True):
    """Gradients of the convolution. d_out: (N, F, Ho, Wo) -> (d_x (N, C, H, W), d_filters).

    With out_rows = cols @ W.T, the matrix-calculus rules give d_W = d_out_rows.T @ cols and
    d_cols = d_out_rows @ W; col2im turns d_cols back into d_x. The first layer's d_x is never
    used (nobody learns the input image), so ``need_d_x=False`` skips it and returns None.
    """
    x_padded_shape, cols, filters, padding = cache
    n_filters = filters.shape[0]
    d_out_rows = d_out.transpose(0, 2, 3, 1).reshape(-1, n_filters)  # (N * Ho * Wo, F)
    d_filters = (d_out_rows.T @ cols).reshape(filters.shape)
    if not need_d_x:
        return None, d_filters
    d_cols = d_out_rows @ filters.reshape(n_filters, -1)  # (N * Ho * Wo, C * K * K)
    d_x_padded = col2im(d_cols, x_padded_shape, filters.shape[2])
    return unpad_images(d_x_padded, padding), d_filters


def pooling_windows(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """A view (N, C, Ho, Wo, size, size) of the pooling windows of x (N, C, H, W); no copy."""
    return sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]


def maxpool2d_forward_fast(x: np.ndarray, size: int = 2, stride: int = 2):
    """Max-pooling as one reduction over a window view. x: (N, C, H, W) -> (N, C, Ho, Wo).

    The cache keeps the flat index (u * size + v) of each window's first maximum, so the backward
    pass needs neither x nor a second search.
    """
    windows = pooling_windows(x, size, stride)
    n_images, channels, out_height, out_width = windows.shape[:4]
    flat_windows = windows.reshape(n_images, channels, out_height, out_width, size * size)
    argmax = flat_windows.argmax(axis=-1)  # argmax returns the first maximum on ties
    out = np.take_along_axis(flat_windows, argmax[..., None], axis=-1)[..., 0]
    return out, (x.shape, argmax, size, stride)


def maxpool2d_backward_fast(d_out: np.ndarray, cache) -> np.ndarray:
    """Gradient of max-pooling. d_out: (N, C, Ho, Wo) -> d_x: (N, C, H, W).

    For each of the size * size positions in a window, the windows whose maximum sits there pass
    their gradient to that pixel: one masked, strided add per position. Overlapping windows
    (stride < size) add up, exactly as the loops version does.
    """
    x_shape, argmax, size, stride = cache
    out_height, out_width = d_out.shape[2:]
    d_x = np.zeros(x_shape, dtype=d_out.dtype)
    for u in range(size):
        for v in range(size):
            rows = slice(u, u + stride * (out_height - 1) + 1, stride)
            cols = slice(v, v + stride * (out_width - 1) + 1, stride)
            d_x[:, :, rows, cols] += np.where(argmax == u * size + v, d_out, 0)
    return d_x
