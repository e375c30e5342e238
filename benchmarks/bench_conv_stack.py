"""Time SimpleCNN's conv stack, forward + backward, against TensorFlow's own ops.

One training step of the feature extractor on a float32 batch: forward to the features, then
backward to every stage's filter gradients (learning_rate=0, so the filters stay put). Timed for
impl="fast", impl="loops" (on a smaller batch, scaled per image) and the same network built from
tf.nn ops inside a warmed-up tf.function. The sides take turns so a busy machine slows them alike.
Then a per-layer breakdown of the fast implementation on the shapes the network uses.

    python benchmarks/bench_conv_stack.py [--network lenet|keras-example] [--batch-size 128]
        [--repeats 20] [--no-loops] [--no-tensorflow] [--one-core]

--one-core compares the two on one core each: SimpleCNN(threads=1) with NumPy's BLAS on one
thread, TensorFlow with one thread per op and one op at a time. With the batch halved, that is
what each of the program's two threads does.
"""

import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

# The project's modules sit one directory up; this lets the script run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from networks import (  # noqa: E402
    DEFAULT_NETWORK,
    NETWORKS,
    build_simple_cnn,
    describe_network,
    network_config,
)
from timing import seconds  # noqa: E402

import fused_layers  # noqa: E402
import layers  # noqa: E402
from plumbing.command_line import ArgumentParser  # noqa: E402
from simple_cnn import SimpleCNN, Stage  # noqa: E402


def simple_cnn_step(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> Callable[[], object]:
    """One forward + backward of ``cnn`` on x (N, C, H, W) with d_out (N, cnn.num_features)."""

    def step():
        cnn.forward(x)
        return cnn.backward(d_out, learning_rate=0)

    return step


def tensorflow_step(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> Callable[[], object]:
    """The same network in tf.nn ops (NHWC, TensorFlow's CPU layout), forward + every filter
    gradient.

    The inputs are converted to NHWC once, outside the timing: TensorFlow gets its best case.
    """
    from training.keras_head import tf  # TensorFlow imported quietly, as the program does

    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    filters_hwio = [tf.constant(filters.transpose(2, 3, 1, 0)) for filters in cnn.filters]
    paddings = [stage.padding for stage in cnn.stages]
    last = cnn.stages[-1]
    # SimpleCNN flattens (N, F, H, W) channel-major; the same numbers laid out NHWC.
    d_pooled = d_out.reshape(-1, last.out_channels, *last.out_size).transpose(0, 2, 3, 1)
    d_pooled = tf.constant(d_pooled)

    @tf.function
    def forward_backward(x, filters, d_pooled):
        with tf.GradientTape() as tape:
            tape.watch(filters)
            h = x
            for stage_filters, padding in zip(filters, paddings, strict=True):
                if padding:
                    h = tf.pad(h, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
                h = tf.nn.relu(tf.nn.conv2d(h, stage_filters, 1, "VALID"))
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            loss = tf.reduce_sum(h * d_pooled)  # its gradient wrt the features is d_out
        return h, tape.gradient(loss, filters)

    def step():
        _, d_filters = forward_backward(x_nhwc, filters_hwio, d_pooled)
        return d_filters[0].numpy()  # wait for the result

    return step


def layer_steps(cnn: SimpleCNN, x: np.ndarray, d_out: np.ndarray) -> dict[str, Callable]:
    """Each layer of the fast network, forward and backward, on the network's own shapes.

    Calls the functions in fused_layers.py that SimpleCNN.forward/backward chain, with the same
    caches and gradients, so the parts add up to the network (minus input checks, threads and
    bookkeeping). Names that start with "  of which" time one piece of the layer above them and
    are not in the sum.
    """
    forward_steps: dict[str, Callable] = {}
    stages = []  # (number, stage, its input, its cache, its output) for the backward pass
    h = x
    for number, (stage, filters) in enumerate(zip(cnn.stages, cnn.filters, strict=True), 1):
        pooled, cache = stage_layers(stage)[0](h, filters, stage.padding)
        forward_steps.update(stage_forward_steps(cnn, number, stage, filters, h, pooled))
        stages.append((number, stage, h, cache, cnn.relu(pooled)))
        h = stages[-1][-1]

    backward_steps: dict[str, Callable] = {}
    d_h = d_out.reshape(h.shape)  # undo flatten, as SimpleCNN.backward does
    for number, stage, stage_input, cache, relu_out in reversed(stages):
        steps, d_h = stage_backward_steps(cnn, number, stage, stage_input, cache, relu_out, d_h)
        backward_steps.update(steps)
    return {**forward_steps, "flatten": lambda: cnn.flatten(h), **backward_steps}


def stage_layers(stage: Stage) -> tuple[Callable, Callable]:
    """The fast (forward, backward) pair SimpleCNN.forward/backward run for this stage: fused
    for odd K, the two fast layers in a row for even K."""
    if stage.kernel_size % 2 == 1:
        return (
            fused_layers.conv2d_maxpool2d_forward_fast,
            fused_layers.conv2d_maxpool2d_backward_fast,
        )
    return (
        fused_layers.conv2d_maxpool2d_forward_unfused,
        fused_layers.conv2d_maxpool2d_backward_unfused,
    )


def used_input(stage: Stage, x: np.ndarray) -> np.ndarray:
    """The padded input rows and columns some pooling window reads (the fused layer's cut)."""
    k = stage.kernel_size
    rows, columns = (size // 2 * 2 + k - 1 for size in stage.conv_size)
    return layers.batch_last(x, stage.padding)[:, :, :rows, :columns]


def stage_forward_steps(
    cnn: SimpleCNN,
    number: int,
    stage: Stage,
    filters: np.ndarray,
    x: np.ndarray,
    pooled: np.ndarray,
) -> dict[str, Callable]:
    """One stage's forward layers on its input x: conv + pool (and its patch copy), ReLU."""
    conv_pool = stage_layers(stage)[0]
    k = stage.kernel_size
    shapes = (
        f"pad {stage.padding}, {stage.in_channels}->{stage.out_channels}, "
        f"{stage.in_size[0]}x{stage.in_size[1]} -> {stage.out_size[0]}x{stage.out_size[1]}"
    )
    steps = {
        f"conv{number} + pool{number} forward ({shapes})": lambda: conv_pool(
            x, filters, stage.padding
        )
    }
    if k % 2:
        used = used_input(stage, x)
        if fused_layers.choose_layout(stage.out_channels) == "patches":
            what, copy = f"{k + 1}x{k + 1} pooling patches", fused_layers.pooling_patches
        else:
            what = f"{k}x{k} windows (grouped by pooling position)"
            copy = fused_layers.pooling_windows
        steps[f"  of which: copying conv{number}'s {what}"] = lambda: copy(used, k)
    steps[f"relu{number} forward"] = lambda: cnn.relu(pooled)
    return steps


def stage_backward_steps(
    cnn: SimpleCNN,
    number: int,
    stage: Stage,
    x: np.ndarray,
    cache: tuple,
    relu_out: np.ndarray,
    d_relu_out: np.ndarray,
) -> tuple[dict[str, Callable], np.ndarray | None]:
    """One stage's backward layers, given d loss / d its output: ReLU, then conv + pool.

    Returns the steps and d loss / d the stage's input (None for the first stage: the network
    never needs the gradient of the input image).
    """
    conv_pool_backward = stage_layers(stage)[1]
    need_d_x = number > 1
    d_pooled = d_relu_out * cnn.relu_derivative(relu_out)
    what = "d_x and d_filters" if need_d_x else "d_filters only"
    steps = {
        f"relu{number} backward": lambda: d_relu_out * cnn.relu_derivative(relu_out),
        f"conv{number} + pool{number} backward ({what})": lambda: conv_pool_backward(
            d_pooled, cache, need_d_x=need_d_x
        ),
    }
    if stage.kernel_size % 2 and need_d_x:
        filters = cnn.filters[number - 1]
        if fused_layers.choose_layout(stage.out_channels) == "patches":
            weights = fused_layers.shifted_filters(filters)  # (4F, C (K + 1)^2)
            to_image = fused_layers.patches_to_image
        else:
            weights = filters.reshape(len(filters), -1)  # (F, C K^2)
            to_image = fused_layers.windows_to_image
        d_conv = np.ones((len(weights), relu_out.size * 4 // len(weights)), relu_out.dtype)
        d_x_cols = weights.T @ d_conv  # the shape of the layer's column gradient
        shape = used_input(stage, x).shape
        steps[f"  of which: conv{number}'s {to_image.__name__}"] = lambda: to_image(
            d_x_cols, shape, stage.kernel_size
        )
    d_x, _ = conv_pool_backward(d_pooled, cache, need_d_x=need_d_x)
    return steps, d_x


def conv_stack_flops_per_image(cnn: SimpleCNN) -> dict[str, int]:
    """Floating-point operations (a multiply-add counts 2) per image of one training step.

    Counted: every stage's convolution forward, every stage's filter gradient, and the input
    gradient of every stage but the first (the input image's gradient is never computed). Each
    is one multiply-add per (output pixel, filter tap). Not counted: padding, ReLU, pooling and
    patch copies, which move data but do no arithmetic worth counting.
    """
    per_stage = {}
    for number, stage in enumerate(cnn.stages, start=1):
        output_pixels = stage.out_channels * stage.conv_size[0] * stage.conv_size[1]
        taps = stage.in_channels * stage.kernel_size**2
        per_stage[number] = 2 * output_pixels * taps
    return {
        **{f"conv{number} forward": flops for number, flops in per_stage.items()},
        **{f"conv{number} d_filters": flops for number, flops in per_stage.items()},
        **{f"conv{number} d_input": flops for number, flops in per_stage.items() if number > 1},
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default=DEFAULT_NETWORK,
        help=f"which network's conv stack (default {DEFAULT_NETWORK}; see networks.py)",
    )
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
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="one core each: SimpleCNN(threads=1) with BLAS on one thread, TensorFlow with one "
        "thread per op and one op at a time (with half the batch: one of the program's threads)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("batch_size", "repeats", "loops_batch_size", "loops_repeats"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    args.loops_repeats = min(args.loops_repeats, args.repeats)

    config = network_config(args.network)
    fast = build_simple_cnn(config, args.seed, impl="fast")
    if args.one_core:
        fast.threads = 1
        threadpool_limits(1, user_api="blas")  # for the rest of the program
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0, 1, size=(args.batch_size, *fast.input_shape)).astype(np.float32)
    d_out = rng.normal(size=(args.batch_size, fast.num_features)).astype(np.float32)
    sides = {"fast": simple_cnn_step(fast, x, d_out)}
    if not args.no_loops:
        loops = build_simple_cnn(config, args.seed, impl="loops")
        n = args.loops_batch_size
        sides["loops"] = simple_cnn_step(loops, x[:n], d_out[:n])
    if not args.no_tensorflow:
        from training.keras_head import tf

        if args.one_core:  # set before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
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

    print(
        f"SimpleCNN conv stack of the {args.network} network ({describe_network(config)}): "
        "forward + backward to every filter gradient, float32"
    )
    versions = f"NumPy {np.__version__}"
    if "tensorflow" in sides:
        versions += f", TensorFlow {tf.__version__}"
    cores = "one core each (--one-core)" if args.one_core else f"{os.cpu_count()} CPU cores"
    print(f"batch {args.batch_size}, {cores}, {versions}")
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
        print(f"fast vs loops speed-up ({args.network}): {speedup:.0f}x")
    if "tensorflow" in batch_seconds:
        ratio = batch_seconds["fast"] / batch_seconds["tensorflow"]
        print(
            f"fast / tensorflow time ({args.network}): {ratio:.2f} (above 1: TensorFlow is faster)"
        )

    print(
        f"\nimpl='fast' per layer, {args.network} network, batch {args.batch_size}, "
        f"median of {args.repeats}:"
    )
    layer_seconds = {
        name: statistics.median(seconds(step) for _ in range(args.repeats))
        for name, step in layer_steps(fast, x, d_out).items()
    }
    total = sum(t for name, t in layer_seconds.items() if not name.startswith("  of which"))
    width = max(52, *(len(name) + 2 for name in layer_seconds))
    for name, t in layer_seconds.items():
        print(f"  {name:<{width}}{t * 1e3:>9.2f} ms{100 * t / total:>6.1f}%")
    print(f"  {'sum of layers':<{width}}{total * 1e3:>9.2f} ms")
    print(f"  {'whole network step (above)':<{width}}{batch_seconds['fast'] * 1e3:>9.2f} ms")
    print("  (the layers run on the whole batch in one thread", end="")
    if fast.threads > 1:
        print(f"; the network step splits the batch across up to {fast.threads} threads)")
    else:
        print(", as the network step does)")


if __name__ == "__main__":
    main()
