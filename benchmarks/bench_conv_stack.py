"""Time SimpleCNN's conv stack, forward + backward, against TensorFlow's own ops.

One training step of the feature extractor on a float32 batch: forward to the (N, 400) features,
then backward to both filter gradients (learning_rate=0, so the filters stay put). Timed for
impl="fast", impl="loops" (on a smaller batch, scaled per image) and the same network built from
tf.nn ops inside a warmed-up tf.function. The sides take turns so a busy machine slows them alike.
Then a per-layer breakdown of the fast implementation on the shapes the network uses.

    python benchmarks/bench_conv_stack.py [--batch-size 128] [--repeats 20]
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The project's modules sit one directory up; this lets the script run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import layers  # noqa: E402
from simple_cnn import SimpleCNN  # noqa: E402


def seconds(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def simple_cnn_step(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> Callable[[], object]:
    """One forward + backward of ``cnn`` on x (N, 1, 28, 28) with d_out (N, 400)."""

    def step():
        cnn.forward(x)
        return cnn.backward(d_out, learning_rate=0)

    return step


def tensorflow_step(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> Callable[[], object]:
    """The same network in tf.nn ops (NHWC, TensorFlow's CPU layout), forward + both gradients.

    The inputs are converted to NHWC once, outside the timing: TensorFlow gets its best case.
    """
    import tensorflow as tf

    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    conv1_hwio = tf.constant(cnn.conv1_filters.transpose(2, 3, 1, 0))
    conv2_hwio = tf.constant(cnn.conv2_filters.transpose(2, 3, 1, 0))
    # SimpleCNN flattens (N, 16, 5, 5) channel-major; the same numbers laid out NHWC.
    d_pool2 = tf.constant(d_out.reshape(-1, 16, 5, 5).transpose(0, 2, 3, 1))

    @tf.function
    def forward_backward(x, conv1, conv2, d_pool2):
        with tf.GradientTape() as tape:
            tape.watch([conv1, conv2])
            h = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]])
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(h, conv1, 1, "VALID")), 2, 2, "VALID")
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(h, conv2, 1, "VALID")), 2, 2, "VALID")
            loss = tf.reduce_sum(h * d_pool2)  # its gradient wrt the features is d_out
        return h, tape.gradient(loss, [conv1, conv2])

    def step():
        _, (d_conv1, _) = forward_backward(x_nhwc, conv1_hwio, conv2_hwio, d_pool2)
        return d_conv1.numpy()  # wait for the result

    return step


def layer_steps(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> dict[str, Callable]:
    """Each layer of the fast network, forward and backward, on the network's own shapes.

    Calls the functions in layers.py that SimpleCNN.forward/backward chain, with the same caches,
    so the parts add up to the network (minus input checks, threads and bookkeeping). Names that
    start with "  of which" time one piece of the layer above them and are not in the sum.
    """
    conv_pool, conv_pool_backward = (
        layers.conv2d_maxpool2d_forward_fast,
        layers.conv2d_maxpool2d_backward_fast,
    )
    pooled1, cache1 = conv_pool(x, cnn.conv1_filters, 2)
    pool1 = cnn.relu(pooled1)
    pooled2, cache2 = conv_pool(pool1, cnn.conv2_filters, 0)
    pool2 = cnn.relu(pooled2)
    d_pool2 = d_out.reshape(pool2.shape)
    d_pooled2 = d_pool2 * cnn.relu_derivative(pool2)
    d_pool1, _ = conv_pool_backward(d_pooled2, cache2)
    d_pooled1 = d_pool1 * cnn.relu_derivative(pool1)
    x_padded = layers.batch_last(x, 2)
    weights2 = layers.shifted_filters(cnn.conv2_filters)  # (4F, C (K + 1)^2)
    d_conv2 = np.ones((len(weights2), pool2.size // 16), dtype=x.dtype)  # conv2's d_conv's shape
    d_patches2 = weights2.T @ d_conv2
    return {
        "conv1 + pool1 forward (pad 2, 1->6, 28x28 -> 14x14)": lambda: conv_pool(
            x, cnn.conv1_filters, 2
        ),
        "  of which: copying its 6x6 pooling patches": lambda: layers.pooling_patches(x_padded, 5),
        "relu1 forward": lambda: cnn.relu(pooled1),
        "conv2 + pool2 forward (6->16, 14x14 -> 5x5)": lambda: conv_pool(
            pool1, cnn.conv2_filters, 0
        ),
        "  of which: copying its 6x6x6 pooling patches": lambda: layers.pooling_patches(pool1, 5),
        "relu2 forward": lambda: cnn.relu(pooled2),
        "flatten": lambda: cnn.flatten(pool2),
        "relu2 backward": lambda: d_pool2 * cnn.relu_derivative(pool2),
        "conv2 + pool2 backward (d_x and d_filters)": lambda: conv_pool_backward(d_pooled2, cache2),
        "  of which: patches_to_image": lambda: layers.patches_to_image(d_patches2, pool1.shape, 5),
        "relu1 backward": lambda: d_pool1 * cnn.relu_derivative(pool1),
        # The network never needs the gradient of the input image.
        "conv1 + pool1 backward (d_filters only)": lambda: conv_pool_backward(
            d_pooled1, cache1, need_d_x=False
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (128)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps for fast and TF (20)")
    parser.add_argument(
        "--loops-batch-size", type=int, default=2, help="images per impl='loops' step (2)"
    )
    parser.add_argument(
        "--loops-repeats", type=int, default=1, help="timed impl='loops' steps (1; they are slow)"
    )
    parser.add_argument("--no-loops", action="store_true", help="skip impl='loops'")
    parser.add_argument("--no-tensorflow", action="store_true", help="skip TensorFlow")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("batch_size", "repeats", "loops_batch_size", "loops_repeats"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    args.loops_repeats = min(args.loops_repeats, args.repeats)

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0, 1, size=(args.batch_size, 1, 28, 28)).astype(np.float32)
    d_out = rng.normal(size=(args.batch_size, 400)).astype(np.float32)
    fast = SimpleCNN(seed=args.seed, impl="fast", dtype=np.float32)
    sides = {"fast": simple_cnn_step(fast, x, d_out)}
    if not args.no_loops:
        loops = SimpleCNN(seed=args.seed, impl="loops", dtype=np.float32)
        n = args.loops_batch_size
        sides["loops"] = simple_cnn_step(loops, x[:n], d_out[:n])
    if not args.no_tensorflow:
        import tensorflow as tf

        sides["tensorflow"] = tensorflow_step(fast, x, d_out)

    for name in ("fast", "tensorflow"):  # warm up: caches, thread pools, tf.function tracing
        if name in sides:
            for _ in range(2):
                sides[name]()

    times = {name: [] for name in sides}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))  # take turns
        for name in order:
            if name == "loops" and len(times["loops"]) >= args.loops_repeats:
                continue
            times[name].append(seconds(sides[name]))

    # Median seconds for a whole batch; loops measured on fewer images and scaled per image.
    batch_seconds = {name: statistics.median(t) for name, t in times.items()}
    best_seconds = {name: min(t) for name, t in times.items()}
    if "loops" in batch_seconds:
        batch_seconds["loops"] *= args.batch_size / args.loops_batch_size
        best_seconds["loops"] *= args.batch_size / args.loops_batch_size

    print("SimpleCNN conv stack: forward + backward to both filter gradients, float32")
    versions = f"NumPy {np.__version__}"
    if "tensorflow" in sides:
        versions += f", TensorFlow {tf.__version__}"
    print(f"batch {args.batch_size}, {os.cpu_count()} CPU cores, {versions}")
    # Other work on the machine shows up as slow, scattered steps: say how busy it was.
    print(f"load average over the last minute: {os.getloadavg()[0]:.1f}")
    print(f"{'':<12}{'median ms/batch':>16}{'best ms':>10}{'images/s':>10}{'timed steps':>13}")
    for name, t in batch_seconds.items():
        note = ""
        if name == "loops":
            note = f"  (batch {args.loops_batch_size}, scaled to {args.batch_size} per image)"
        print(
            f"{name:<12}{t * 1e3:>16.2f}{best_seconds[name] * 1e3:>10.2f}"
            f"{args.batch_size / t:>10.0f}{len(times[name]):>13}{note}"
        )
    if "loops" in batch_seconds:
        speedup = batch_seconds["loops"] / batch_seconds["fast"]
        print(f"fast vs loops speed-up: {speedup:.0f}x")
    if "tensorflow" in batch_seconds:
        ratio = batch_seconds["fast"] / batch_seconds["tensorflow"]
        print(f"fast / tensorflow time: {ratio:.2f} (above 1: TensorFlow is faster)")

    print(f"\nimpl='fast' per layer, batch {args.batch_size}, median of {args.repeats}:")
    layer_seconds = {
        name: statistics.median(seconds(step) for _ in range(args.repeats))
        for name, step in layer_steps(fast, x, d_out).items()
    }
    total = sum(t for name, t in layer_seconds.items() if not name.startswith("  of which"))
    for name, t in layer_seconds.items():
        print(f"  {name:<52}{t * 1e3:>9.2f} ms{100 * t / total:>6.1f}%")
    print(f"  {'sum of layers':<52}{total * 1e3:>9.2f} ms")
    print(f"  {'whole network step (above)':<52}{batch_seconds['fast'] * 1e3:>9.2f} ms")
    print("  (the layers run on the whole batch in one thread; the network step splits the batch")
    print(f"  across up to {fast.threads} threads)")


if __name__ == "__main__":
    main()
