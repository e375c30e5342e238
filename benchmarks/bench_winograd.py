"""Would Winograd's minimal filtering speed up a 3x3 convolution + 2x2 max-pooling in NumPy?

A study, not a layer SimpleCNN uses: the answer on the machines measured so far is no (see
benchmarks/README.md), and this script is how to check it again on yours.

Winograd's F(2x2, 3x3) (Lavin and Gray, 2015) computes a 2x2 block of a 3x3 convolution's
output from the 4x4 block of input under it with 16 multiplications per channel pair instead of
36. Everything else is linear algebra on 4x4 tiles, and each tile transform is one small matrix:

    output tile (2x2) = A16 @ [ (G16 @ filter (3x3)) * (B16 @ input tile (4x4)) ]

with every tile flattened row by row, A16 = kron(A^T, A^T) (4x16), G16 = kron(G, G) (16x9) and
B16 = kron(B^T, B^T) (16x16). Summed over input channels, the 16 elementwise products become 16
matrix products, (F, C) @ (C, tiles). A 2x2 output tile is exactly a 2x2 pooling window, so
max-pooling is an elementwise maximum over the tile's four outputs, as in the fused layer.

The script checks the layer against fused_layers.conv2d_maxpool2d_*_fast (same numbers within
float32 rounding), then times both on the keras-example network's second stage (32 -> 64 channels,
13x13 input, the shape where the multiply-adds are): whole parts of the batch and in blocks of
images, alone and with two threads running at once (as SimpleCNN's two threads do); and last in
the network itself, SimpleCNN's forward + backward with that stage swapped (see
winograd_in_the_network).

    python benchmarks/bench_winograd.py [--images 64] [--repeats 40]
"""

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

# The project's modules sit one directory up; this lets the script run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import (  # noqa: E402
    format_load,
    machine_description,
    median,
    positive_int,
    seconds,
)

import fused_layers  # noqa: E402
from plumbing import process_tuning  # noqa: E402
from plumbing.command_line import ArgumentParser  # noqa: E402
from simple_cnn import SimpleCNN  # noqa: E402

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
B16, G16, A16 = np.kron(B_T, B_T), np.kron(G, G), np.kron(A_T, A_T)


def input_tiles(x_chwn: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """x (C, H, W, N) -> (16, C, rows, cols, N): pixel (u, v) of every 4x4 tile, tiles at stride 2.

    Tile (i, j) covers image rows 2i .. 2i + 3 and columns 2j .. 2j + 3.
    """
    channels, _, _, n_images = x_chwn.shape
    tiles = np.empty((16, channels, rows, cols, n_images), x_chwn.dtype)
    for u in range(4):
        for v in range(4):
            tiles[4 * u + v] = x_chwn[:, u : u + 2 * rows : 2, v : v + 2 * cols : 2]
    return tiles


def tiles_to_image(d_tiles: np.ndarray, shape: tuple) -> np.ndarray:
    """The adjoint of input_tiles: (16, C, rows, cols, N) -> d_x (C, H, W, N). Tiles overlap."""
    _, _, rows, cols, _ = d_tiles.shape
    d_x = np.zeros(shape, d_tiles.dtype)
    for u in range(4):
        for v in range(4):
            d_x[:, u : u + 2 * rows : 2, v : v + 2 * cols : 2] += d_tiles[4 * u + v]
    return d_x


def winograd_conv3x3_maxpool2d_forward(x: np.ndarray, filters: np.ndarray):
    """3x3 convolution (no padding) then 2x2 max-pooling, as the fused layer computes them.

    x: (N, C, H, W), stored batch-last like the network's arrays (memory laid out (C, H, W, N));
    filters: (F, C, 3, 3). Returns (pooled, cache), pooled (F, rows * cols * N) with rows =
    (H - 2) // 2 and cols = (W - 2) // 2: the pooled maps in the fused layer's memory order.
    """
    x_chwn = x.transpose(1, 2, 3, 0)
    channels, height, width, _ = x_chwn.shape
    n_filters = len(filters)
    rows, cols = (height - 2) // 2, (width - 2) // 2
    tiles = input_tiles(x_chwn, rows, cols).reshape(16, -1)
    inputs = (B16 @ tiles).reshape(16, channels, -1)  # (16, C, tiles)
    weights = (G16 @ filters.reshape(n_filters * channels, 9).T).reshape(16, n_filters, channels)
    products = np.matmul(weights, inputs)  # (16, F, tiles): 16 matrix products, one per position
    conv = (A16 @ products.reshape(16, -1)).reshape(4, n_filters, -1)  # (4, F, tiles)
    pooled = conv.max(axis=0)
    is_max = conv == pooled
    fused_layers.keep_first_maximum(list(is_max))  # each window's gradient to its first maximum
    return pooled, (inputs, weights, is_max, x_chwn.shape, rows, cols)


def winograd_conv3x3_maxpool2d_backward(d_pooled: np.ndarray, cache):
    """Gradients of the forward pass: d_pooled (F, rows * cols * N) -> (d_x (N, C, H, W),
    d_filters (F, C, 3, 3)). Each step is the transpose of a forward step, in reverse order."""
    inputs, weights, is_max, shape, rows, cols = cache
    n_filters, channels = weights.shape[1:]
    d_conv = (d_pooled * is_max).reshape(4, -1)
    d_products = (A16.T @ d_conv).reshape(16, n_filters, -1)
    d_weights = np.matmul(d_products, inputs.transpose(0, 2, 1))  # (16, F, C)
    d_inputs = np.matmul(weights.transpose(0, 2, 1), d_products)  # (16, C, tiles)
    d_tiles = (B16.T @ d_inputs.reshape(16, -1)).reshape(16, channels, rows, cols, -1)
    d_x = tiles_to_image(d_tiles, shape).transpose(3, 0, 1, 2)
    d_filters = (G16.T @ d_weights.reshape(16, -1)).T.reshape(n_filters, channels, 3, 3)
    return d_x, d_filters


def check_against_the_fused_layer(
    x: np.ndarray, filters: np.ndarray, rng: np.random.Generator
) -> float:
    """The largest difference from the fused fast layer (forward, d_x, d_filters), relative to
    each result's largest value."""
    expected, cache = fused_layers.conv2d_maxpool2d_forward_fast(x, filters)
    pooled, winograd_cache = winograd_conv3x3_maxpool2d_forward(x, filters)
    d_out = rng.standard_normal(expected.shape).astype(np.float32)
    expected_d_x, expected_d_filters = fused_layers.conv2d_maxpool2d_backward_fast(d_out, cache)
    d_pooled = np.ascontiguousarray(d_out.transpose(1, 2, 3, 0)).reshape(len(filters), -1)
    d_x, d_filters = winograd_conv3x3_maxpool2d_backward(d_pooled, winograd_cache)
    pairs = [
        (pooled, expected.transpose(1, 2, 3, 0).reshape(len(filters), -1)),
        (d_x, expected_d_x),
        (d_filters, expected_d_filters),
    ]
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def median_ms(step: Callable[[], object], repeats: int) -> float:
    """The median time of ``step`` over ``repeats`` calls, in milliseconds."""
    return 1e3 * median([seconds(step) for _ in range(repeats)])


def median_ms_in_two_threads(step: Callable[[], object], repeats: int) -> float:
    """The median time of ``step`` while another thread runs the same step at the same time."""
    results = [0.0, 0.0]

    def run(index: int) -> None:
        results[index] = median_ms(step, repeats)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results) / 2


def training_step(forward, backward, x: np.ndarray, filters: np.ndarray, block: int):
    """Forward + backward of one stage over x, ``block`` images at a time."""
    d_outs = {}

    def step() -> None:
        for start in range(0, len(x), block):
            part = x[start : start + block]
            out, cache = forward(part, filters)
            if start not in d_outs:
                d_outs[start] = np.ones_like(out)
            backward(d_outs[start], cache)

    return step


class WinogradCache(tuple):
    """The Winograd layer's cache, told apart from the fused layer's by the swapped backward."""


@contextmanager
def winograd_in_the_network(filters_shape: tuple) -> Iterator[list[str]]:
    """Within the block, SimpleCNN's stages with filters of ``filters_shape`` (F, C, 3, 3) and no
    padding run the Winograd layer instead of the fused one.

    SimpleCNN calls fused_layers.conv2d_maxpool2d_forward_fast and _backward_fast by name, so
    those two are swapped, for the block, for functions that take that shape to Winograd's (with
    the network's signatures: (N, F, H, W) batch-last maps in and out) and pass every other to
    the originals. Yields the list of the calls Winograd's layer answered, to show it ran.
    """
    shipped_forward = fused_layers.conv2d_maxpool2d_forward_fast
    shipped_backward = fused_layers.conv2d_maxpool2d_backward_fast
    calls = []

    def forward(x, filters, padding=0, keep_cache=True, layout=None):
        if filters.shape != filters_shape or padding:
            return shipped_forward(x, filters, padding, keep_cache, layout)
        calls.append("forward")
        pooled, cache = winograd_conv3x3_maxpool2d_forward(x, filters)
        rows, cols = cache[4], cache[5]
        out = pooled.reshape(len(filters), rows, cols, -1).transpose(3, 0, 1, 2)
        return out, (WinogradCache(cache) if keep_cache else None)

    def backward(d_out, cache, need_d_x=True):
        if not isinstance(cache, WinogradCache):
            return shipped_backward(d_out, cache, need_d_x)
        calls.append("backward")
        d_pooled = d_out.transpose(1, 2, 3, 0).reshape(cache[1].shape[1], -1)
        return winograd_conv3x3_maxpool2d_backward(d_pooled, cache)

    fused_layers.conv2d_maxpool2d_forward_fast = forward
    fused_layers.conv2d_maxpool2d_backward_fast = backward
    try:
        yield calls
    finally:
        fused_layers.conv2d_maxpool2d_forward_fast = shipped_forward
        fused_layers.conv2d_maxpool2d_backward_fast = shipped_backward


def time_in_the_network(batch_size: int, turns: int, repeats: int) -> dict[str, list[float]]:
    """ms of SimpleCNN's forward + backward on Keras' example network, as the trainer runs it
    (two threads, batch_size images), with the second stage fused as shipped or Winograd's;
    medians of ``repeats`` steps, ``turns`` times each, taking turns."""
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 1, 28, 28), dtype=np.float32)
    cnn = SimpleCNN(num_filters=(32, 64), kernel_sizes=3, paddings="valid", seed=0)
    d_out = rng.standard_normal((batch_size, cnn.num_features)).astype(np.float32)
    second_stage = cnn.stages[1].filters_shape
    sides = {
        "fused layer (windows)": nullcontext,
        "Winograd F(2x2, 3x3)": lambda: winograd_in_the_network(second_stage),
    }

    def step() -> None:
        cnn.forward(x)
        cnn.backward(d_out, learning_rate=0)

    times = {name: [] for name in sides}
    for turn in range(turns):
        order = list(sides) if turn % 2 == 0 else list(reversed(sides))
        for name in order:
            with sides[name]():
                step()  # warm-up
                times[name].append(median_ms(step, repeats))
    return times


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=positive_int, default=64, help="images per part (64)")
    parser.add_argument("--repeats", type=positive_int, default=40, help="timed steps (40)")
    args = parser.parse_args()
    process_tuning.keep_freed_memory_for_reuse()  # as the program does
    rng = np.random.default_rng(0)
    channels, n_filters, size = 32, 64, 13  # the keras-example network's second stage
    x_chwn = rng.random((channels, size, size, args.images), dtype=np.float32)
    x = x_chwn.transpose(3, 0, 1, 2)  # (N, C, H, W), batch-last like the network's
    filters = (0.1 * rng.standard_normal((n_filters, channels, 3, 3))).astype(np.float32)

    machine = machine_description()
    print(f"{machine['cpu']}, NumPy {machine['numpy']} ({machine['blas']})")
    print("BLAS limited to one thread while timing, as in the program's own threads")
    print(f"load average over the last minute: {format_load(machine['load_average_1min'])}")
    difference = check_against_the_fused_layer(x, filters, rng)
    print(f"largest relative difference from the fused fast layer: {difference:.1e}")

    sides = {
        "fused layer (windows)": (
            fused_layers.conv2d_maxpool2d_forward_fast,
            fused_layers.conv2d_maxpool2d_backward_fast,
        ),
        "Winograd F(2x2, 3x3)": (
            winograd_conv3x3_maxpool2d_forward,
            winograd_conv3x3_maxpool2d_backward,
        ),
    }
    blocks = sorted({args.images, 16, 8} & set(range(1, args.images + 1)), reverse=True)
    print(
        f"\nforward + backward of conv {channels}->{n_filters}, 3x3, {size}x{size} + 2x2 "
        f"pooling, ms per {args.images} images (median of {args.repeats}):"
    )
    print(f"  {'':24s} {'images a call':>14s} {'alone':>8s} {'two threads':>12s}")
    with process_tuning.blas_single_threaded():
        for name, (forward, backward) in sides.items():
            for block in blocks:
                step = training_step(forward, backward, x, filters, block)
                step()  # warm-up
                alone = median_ms(step, args.repeats)
                together = median_ms_in_two_threads(step, args.repeats)
                print(f"  {name:24s} {block:14d} {alone:8.2f} {together:12.2f}")

    batch_size, turns = 128, 6
    print(
        f"\nIn the network: SimpleCNN's forward + backward of Keras' example network, batch "
        f"{batch_size}, as the trainer runs it (two threads), ms, medians of {args.repeats} "
        f"steps, {turns} turns each:"
    )
    times = time_in_the_network(batch_size, turns, args.repeats)
    for name, each in times.items():
        shown = " ".join(f"{t:.2f}" for t in each)
        print(f"  {name:24s} median {float(np.median(each)):6.2f}   ({shown})")
    fused, winograd = (float(np.median(each)) for each in times.values())
    print(f"  Winograd / fused: {winograd / fused:.3f}")


if __name__ == "__main__":
    main()
