"""Peak resident memory of a training run: the from-scratch program vs the Keras-native network.

Each side trains in a fresh Python process (imports, the MNIST arrays, the model, then N
training steps), so neither side's memory counts for the other, and the process reports its own
peak resident set size (what ``top`` shows as RES at its highest).

* from scratch: the training program's own steps (simple_cnn_from_scratch.build_model and
  train_steps), which keep the images as uint8 and convert one batch at a time;
* Keras-native: ``model.fit`` on the training images as float32 (N, 28, 28, 1), as Keras
  examples prepare them.

Both train the same network (``--network``, see networks.py).

    python benchmarks/bench_memory.py [--network lenet|keras-example] [--batch-size 32]
        [--steps 200]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from networks import DEFAULT_NETWORK, NETWORKS
from timing import positive_int

from plumbing.command_line import ArgumentParser

SIDES = ("from_scratch", "keras_fit")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (10**6 bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kilobytes = peak / 1024 if sys.platform == "darwin" else peak  # macOS reports bytes
    return kilobytes * 1024 / 1e6


def current_rss_mb() -> float | None:
    """This process's resident memory now, in MB, where /proc tells it (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e6  # the line reads "VmRSS: 123 kB"
    except OSError:
        pass
    return None


def train_and_report(
    side: str, network: str, batch_size: int, steps: int, seed: int
) -> dict[str, Any]:
    """Run in the child process: train ``side`` for ``steps`` steps; return its memory figures."""
    # Imported here so the parent process, which only starts children, stays light.
    import bench_training
    import keras_native
    from networks import network_config

    config = network_config(network, batch_size=batch_size, seed=seed)
    data = bench_training.load_benchmark_data()
    if side == "from_scratch":
        training = bench_training.FromScratchTraining(config)
        before = current_rss_mb()
        started = time.perf_counter()
        training.time_steps(data, max_steps=steps)
    else:
        x_train = keras_native.images_to_nhwc(data.x_train)
        model = keras_native.build_keras_native_model(config)
        before = current_rss_mb()
        started = time.perf_counter()
        keras_native.fit_one_epoch(model, x_train, data.y_train, batch_size, steps=steps)
    return {
        "side": side,
        "network": network,
        "batch_size": batch_size,
        "steps": steps,
        "training_seconds": time.perf_counter() - started,
        "rss_before_training_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_in_subprocess(
    side: str, network: str, batch_size: int, steps: int, seed: int = 0
) -> dict[str, Any]:
    """Start a fresh Python process that trains ``side`` and return the figures it reports.

    Raises
    ------
    RuntimeError
        The child failed; the message holds the last line it wrote to stderr.
    """
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--network",
        network,
        "--batch-size",
        str(batch_size),
        "--steps",
        str(steps),
        "--seed",
        str(seed),
    ]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        last_line = (child.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise RuntimeError(
            f"the {side} memory process failed (exit status {child.returncode}): {last_line}"
        )
    return json.loads(child.stdout.strip().splitlines()[-1])  # the child's last line is JSON


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default=DEFAULT_NETWORK,
        help=f"the network both sides train (default {DEFAULT_NETWORK}; see networks.py)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="(default 32)")
    parser.add_argument(
        "--steps", type=positive_int, default=200, help="training steps per side (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0, help="(default 0)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)  # the measured process
    args = parser.parse_args(argv)

    if args.child:
        figures = train_and_report(args.child, args.network, args.batch_size, args.steps, args.seed)
        print(json.dumps(figures))
        return 0

    print(
        f"Peak resident memory, {args.network} network, {args.steps} training steps at batch size "
        f"{args.batch_size}, each side in a fresh process:"
    )
    print(f"  {'':<14}{'peak MB':>10}{'before training MB':>20}{'training s':>12}")
    for side in SIDES:
        try:
            figures = measure_in_subprocess(
                side, args.network, args.batch_size, args.steps, args.seed
            )
        except RuntimeError as error:
            sys.exit(f"error: {error}")
        before = figures["rss_before_training_mb"]
        before_text = "?" if before is None else f"{before:.0f}"
        print(
            f"  {side:<14}{figures['peak_rss_mb']:>10.0f}{before_text:>20}"
            f"{figures['training_seconds']:>12.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
