"""What distorting the training digits costs (training/augmentation.py): a batch's distortion
alone, and whole training steps with and without it, taking turns.

    python benchmarks/bench_augmentation.py                    # LeNet-5, 200 steps, 3 turns
    python benchmarks/bench_augmentation.py --network keras-example --steps 100

The distortion is the strongest the trainer's options were tried with (benchmarks/README.md,
"Real handwriting"): --rotation 8 --scale 0.08 --shear 10 --elastic 1 --stroke 0.5.
"""

from __future__ import annotations

import time

import numpy as np
from networks import NETWORKS, describe_network, network_config
from timing import format_load, load_average, machine_description, median, positive_int, take_turns

import simple_cnn_from_scratch as trainer
from plumbing.command_line import ArgumentParser
from training.augmentation import augment

DISTORTION = {"rotation": 8, "scale": 0.08, "shear": 10, "elastic": 1, "stroke": 0.5}


def seconds_of_steps(model, data, steps: int) -> float:
    """Seconds for ``steps`` training steps of ``model`` (its config says how it distorts)."""
    model.step = 0
    model.partial_epoch = {}
    started = time.perf_counter()
    trainer.train_steps(model, data, trainer.StopRequest(), max_steps=steps)
    return time.perf_counter() - started


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=NETWORKS, default="lenet")
    parser.add_argument("--steps", type=positive_int, default=200, help="steps per turn")
    parser.add_argument("--repeats", type=positive_int, default=3, help="turns of each side")
    args = parser.parse_args()
    print(machine_description())
    plain_config = network_config(args.network)
    distorted_config = network_config(args.network, **DISTORTION)
    print(f"{args.network}: {describe_network(plain_config)}, batch {plain_config.batch_size}")
    data = trainer.load_data(plain_config)
    plain = trainer.build_model(plain_config)
    distorted = trainer.build_model(distorted_config)
    for model in (plain, distorted):  # compiled and warmed up before timing
        seconds_of_steps(model, data, 5)

    batch = data.x_train[: plain_config.batch_size]
    augmentation = distorted_config.augmentation()
    alone = []
    for repeat in range(50):
        started = time.perf_counter()
        augment(batch, augmentation, np.random.default_rng([0, 1, repeat]))
        alone.append(time.perf_counter() - started)
    load_before = load_average()
    times = take_turns(
        {
            "no distortion": lambda: seconds_of_steps(plain, data, args.steps),
            "distorted": lambda: seconds_of_steps(distorted, data, args.steps),
        },
        args.repeats,
    )
    print(f"load average before: {format_load(load_before)}, after: {format_load(load_average())}")
    print(f"  distorting one batch alone: median {1e3 * median(alone):.2f} ms")
    base = median(times["no distortion"]) / args.steps
    for name, seconds in times.items():
        step = median(seconds) / args.steps
        extra = "" if name == "no distortion" else f"  (+{100 * (step / base - 1):.1f}%)"
        print(f"  a training step, {name:14s} median {1e3 * step:6.2f} ms{extra}")


if __name__ == "__main__":
    main()
