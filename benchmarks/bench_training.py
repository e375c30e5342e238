"""Is the from-scratch program as fast as Keras? Training, inference, memory and GFLOP/s, one run.

The two sides, on the same machine, in the same run, taking turns (A B, B A, ...):

* from scratch: the training program's own code (simple_cnn_from_scratch.build_model,
  make_head_train_step, train_one_epoch), NumPy convolutions + the Keras dense head;
* Keras-native: the same network from Keras' Conv2D/MaxPool2D layers (keras_native.py), trained
  with model.fit and with a hand-written tf.function loop; the faster counts as Keras' time.

Each side runs in a Python process of its own, started once and kept warm (see SideProcess for
why); this script only sends it requests and collects the seconds it measured.

Sections (all by default; --sections picks some):

1. training: seconds per epoch over the 55,000 training images, at each --batch-sizes, and the
   ratio from-scratch / Keras (the goal: at most 1.0 at the driver's default batch size);
2. inference: images per second over the 10,000 test images, in the program's evaluation batches;
3. memory: peak resident memory of a training run, each side in a fresh process;
4. conv: GFLOP/s of the NumPy conv stack (forward + backward) against this machine's float32
   matrix-multiply peak, with TensorFlow's conv stack for comparison.

    python benchmarks/bench_training.py                          # the full measurement
    python benchmarks/bench_training.py --repeats 1 --steps 100  # a quick look (scaled to an epoch)
    python benchmarks/bench_training.py --json figures.json      # also write the figures as JSON
"""

import argparse
import json
import math
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

# The project's modules sit one directory up; this lets the script run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras_native  # noqa: E402
from bench_conv_stack import simple_cnn_step, tensorflow_step  # noqa: E402
from timing import (  # noqa: E402
    busy_machine_warning,
    load_average,
    machine_description,
    matmul_peak_gflops,
    median,
    positive_int,
    seconds,
    take_turns,
    usable_cores,
    warm_up_image_count,
)

from download_mnist import DatasetError  # noqa: E402
from model_file import images_to_input, keras, predict_logits, replace_atomically, tf  # noqa: E402
from simple_cnn import SimpleCNN  # noqa: E402
from simple_cnn_from_scratch import (  # noqa: E402
    EVAL_BATCH_SIZE,
    MAX_SHIFT,
    RUN_DEFAULTS,
    Dataset,
    TrainConfig,
    build_model,
    load_data,
    make_head_train_step,
    settle_config,
    train_one_epoch,
)

SECTIONS = ("training", "inference", "memory", "conv")
SIDES = ("from_scratch", "keras_fit", "keras_custom_loop")
SIDE_LABELS = {
    "from_scratch": "from scratch (NumPy + head)",
    "keras_fit": "Keras-native, model.fit",
    "keras_custom_loop": "Keras-native, custom loop",
}
INFERENCE_LABELS = {
    "from_scratch": "from scratch (NumPy + head)",
    "keras_fit": "Keras-native, model.predict",
    "keras_custom_loop": "Keras-native, tf.function",
}
LEARNING_RATE = RUN_DEFAULTS["learning_rate"]  # the first epoch's, for both sides


def load_benchmark_data() -> Dataset:
    """The training program's split: 55,000 training, 5,000 validation, 10,000 test images."""
    return load_data(settle_config(TrainConfig(no_save=True, verbose=False)))


def with_training_images(data: Dataset, count: int) -> Dataset:
    """``data`` with only its first ``count`` training images (a shorter epoch)."""
    return replace(data, x_train=data.x_train[:count], y_train=data.y_train[:count])


def conv_stack_inputs(data: Dataset, batch_size: int, seed: int):
    """The conv-stack step's inputs, the same numbers for both sides.

    Returns a SimpleCNN (its filters), test images x (N, 1, 28, 28) float32 and a gradient
    d_out (N, 400) float32 standing for the head's.
    """
    cnn = SimpleCNN(seed=seed)
    x = images_to_input(data.x_test[:batch_size])
    d_out = np.random.default_rng(seed).standard_normal((batch_size, 400)).astype(np.float32)
    return cnn, x, d_out


# --------------------------------------------------------------------------------------------
# The from-scratch side: the training program's epoch
# --------------------------------------------------------------------------------------------


class _StepLimitReached(Exception):
    """Raised from train_one_epoch's on_step hook to end the epoch before its validation pass."""


class FromScratchTraining:
    """The training program's epoch (``train_one_epoch``) with printing and saving off.

    Every step is the program's: batch from the shuffled order, its random shift (``shift``
    pixels at most; None: the program's default), SimpleCNN.forward, the compiled head step,
    SimpleCNN.backward, the NumPy Adam step, the (silent) Progbar update. The epoch
    stops after its last step, before the program's validation pass, so both sides time the
    training steps alone (Keras' fit() runs no validation without validation_data either).
    """

    def __init__(self, batch_size: int, seed: int = 0, shift: int | None = None):
        self.config = settle_config(
            TrainConfig(batch_size=batch_size, seed=seed, shift=shift, no_save=True, verbose=False)
        )
        self.model = build_model(self.config)
        self.head_train_step = make_head_train_step(self.model.head, self.model.head_optimizer)

    def run_epoch(self, data: Dataset, max_steps: int | None = None) -> float:
        """Seconds for one epoch over ``data.x_train`` (or its first ``max_steps`` steps)."""
        steps = math.ceil(len(data.x_train) / self.config.batch_size)
        if max_steps is not None:
            steps = min(steps, max_steps)
        finished_at = []

        def stop_after_last_step(model, epoch: int, step: int) -> None:
            if step == steps:
                finished_at.append(time.perf_counter())
                raise _StepLimitReached

        started_at = time.perf_counter()
        try:
            train_one_epoch(
                self.model,
                data,
                self.config,
                self.head_train_step,
                threading.Event(),  # a Ctrl-C request that never comes
                stop_after_last_step,
            )
        except _StepLimitReached:
            return finished_at[0] - started_at
        raise RuntimeError("train_one_epoch returned without reaching its last step")


# --------------------------------------------------------------------------------------------
# The sides' measurements. Every timed call is preceded by untimed warm-up work of its own.
# --------------------------------------------------------------------------------------------


class FromScratchSide:
    """The training program's code: its epoch, its evaluation path, SimpleCNN's conv stack."""

    def __init__(self, data: Dataset, seed: int, warmup_steps: int, shift: int | None):
        self.data = data
        self.seed = seed
        self.warmup_steps = warmup_steps
        self.shift = shift
        self._training: dict[int, FromScratchTraining] = {}
        self._inference_model = None

    def train_epoch(self, batch_size: int, image_count: int) -> float:
        """Seconds of one epoch over the first ``image_count`` training images."""
        if batch_size not in self._training:
            self._training[batch_size] = FromScratchTraining(batch_size, self.seed, self.shift)
        training = self._training[batch_size]
        warm_count = warm_up_image_count(batch_size, self.warmup_steps, len(self.data.x_train))
        training.run_epoch(with_training_images(self.data, warm_count))
        return training.run_epoch(with_training_images(self.data, image_count))

    def infer(self) -> float:
        """Seconds to compute the logits of every test image, as the program evaluates."""
        if self._inference_model is None:
            self._inference_model = build_model(
                settle_config(TrainConfig(seed=self.seed, no_save=True, verbose=False))
            )
        model = self._inference_model
        images = self.data.x_test
        predict_logits(model.cnn, model.head, images[:EVAL_BATCH_SIZE], EVAL_BATCH_SIZE)
        return seconds(lambda: predict_logits(model.cnn, model.head, images, EVAL_BATCH_SIZE))

    def conv_steps(self, batch_size: int, count: int) -> list[float]:
        """Seconds of ``count`` SimpleCNN forward + backward steps on ``batch_size`` images."""
        step = simple_cnn_step(*conv_stack_inputs(self.data, batch_size, self.seed))
        for _ in range(2):  # warm-up: caches, BLAS threads
            step()
        return [seconds(step) for _ in range(count)]


class KerasSide:
    """The Keras-native network's measurements, in one of two styles.

    mode "fit": training with ``model.fit``, inference with ``model.predict``;
    mode "custom_loop": training with keras_native.CustomLoop, inference with a tf.function
    forward pass. Either way the conv stack is bench_conv_stack's tf.nn version.
    """

    def __init__(self, data: Dataset, mode: str, seed: int, warmup_steps: int):
        self.data = data
        self.mode = mode
        self.seed = seed
        self.warmup_steps = warmup_steps
        self.x_train = keras_native.images_to_nhwc(data.x_train)
        self.x_test = keras_native.images_to_nhwc(data.x_test)
        self._training: dict[int, Callable[[int], object]] = {}
        self._predict: Callable[[], object] | None = None

    def _trainer(self, batch_size: int) -> Callable[[int], object]:
        """``train(n)``: one epoch over the first n training images (a model per batch size)."""
        if batch_size not in self._training:
            model = keras_native.build_keras_native_model(self.seed, LEARNING_RATE)
            x, y = self.x_train, self.data.y_train
            if self.mode == "fit":

                def train(n: int) -> None:
                    keras_native.fit_one_epoch(model, x[:n], y[:n], batch_size)

            else:
                loop = keras_native.CustomLoop(model, LEARNING_RATE, self.seed)

                def train(n: int) -> None:
                    loop.run_epoch(x[:n], y[:n], batch_size)

            self._training[batch_size] = train
        return self._training[batch_size]

    def train_epoch(self, batch_size: int, image_count: int) -> float:
        """Seconds of one epoch over the first ``image_count`` training images."""
        train = self._trainer(batch_size)
        train(warm_up_image_count(batch_size, self.warmup_steps, len(self.x_train)))
        return seconds(lambda: train(image_count))

    def infer(self) -> float:
        """Seconds to compute the logits of every test image, batches of EVAL_BATCH_SIZE."""
        if self._predict is None:
            model = keras_native.build_keras_native_model(self.seed, LEARNING_RATE)
            if self.mode == "fit":
                self._predict = lambda: model.predict(
                    self.x_test, batch_size=EVAL_BATCH_SIZE, verbose=0
                )
            else:
                forward = keras_native.make_forward(model)
                self._predict = lambda: keras_native.predict_logits_compiled(
                    forward, self.x_test, EVAL_BATCH_SIZE
                )
            self._predict()  # warm-up: tracing
        return seconds(self._predict)

    def conv_steps(self, batch_size: int, count: int) -> list[float]:
        """Seconds of ``count`` forward + backward steps of the conv stack in tf.nn ops."""
        step = tensorflow_step(*conv_stack_inputs(self.data, batch_size, self.seed))
        for _ in range(2):  # warm-up: tracing, thread pools
            step()
        return [seconds(step) for _ in range(count)]


def _serve_side(connection, side: str, args: argparse.Namespace) -> None:
    """A side process's life: build the side, then answer (method, args) requests until None.

    Every answer is (True, result) or (False, "error message").
    """
    try:
        if args.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.blas_threads, user_api="blas")
        data = load_benchmark_data()
        if side == "from_scratch":
            worker = FromScratchSide(data, args.seed, args.warmup_steps, args.shift)
        else:
            worker = KerasSide(data, side.removeprefix("keras_"), args.seed, args.warmup_steps)
        connection.send((True, None))  # ready
        while (request := connection.recv()) is not None:
            method, args = request
            try:
                connection.send((True, getattr(worker, method)(*args)))
            except Exception as error:  # report it to the parent, which says which side failed
                connection.send((False, f"{type(error).__name__}: {error}"))
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches every process of the terminal; the parent reports it
    except Exception as error:
        connection.send((False, f"{type(error).__name__}: {error}"))


class SideProcess:
    """One side of the comparison in a Python process of its own, answering timing requests.

    Why not one process: TensorFlow's thread pool keeps spinning for a while after the Keras side
    works, and in the same process NumPy's BLAS threads then wait for cores. On a 2-core machine
    the from-scratch side measured up to 30x slower right after a Keras step than alone, a cost
    no user pays. A process of its own runs each side as a user runs it, yet the sides still
    take turns in the same run.
    """

    def __init__(self, side: str, args: argparse.Namespace):
        self.side = side
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no inherited state
        self._connection, child_connection = context.Pipe()
        self._process = context.Process(
            target=_serve_side,
            args=(child_connection, side, args),
            daemon=True,
        )
        self._process.start()

    def wait_until_ready(self) -> None:
        self._answer()

    def call(self, method: str, *args):
        """Run ``method(*args)`` of the side in its process and return what it returned."""
        self._connection.send((method, args))
        return self._answer()

    def _answer(self):
        try:
            ok, value = self._connection.recv()
        except EOFError:
            raise RuntimeError(f"the {self.side} process died; run it alone to see why") from None
        if not ok:
            raise RuntimeError(f"the {self.side} process failed: {value}")
        return value

    def close(self) -> None:
        try:
            self._connection.send(None)
        except OSError:
            pass  # already gone
        self._process.join(timeout=10)


# --------------------------------------------------------------------------------------------
# 1. Training seconds per epoch
# --------------------------------------------------------------------------------------------


def measure_training(
    sides: dict[str, SideProcess], batch_size: int, epoch_images: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Seconds per epoch of each side at ``batch_size``, taking turns ``args.repeats`` times.

    With ``args.steps`` the timed epochs are shorter, the first steps * batch_size training
    images, and are scaled up to the whole epoch: each side's fixed cost per epoch (model.fit's
    set-up, mostly) is measured first, on one-step epochs, and only the rest is scaled, by the
    ratio of steps.
    """
    steps_per_epoch = math.ceil(epoch_images / batch_size)
    count = epoch_images if args.steps is None else min(epoch_images, args.steps * batch_size)
    timed_steps = math.ceil(count / batch_size)

    def epochs_of(image_count: int) -> dict[str, Callable[[], float]]:
        return {
            name: (lambda side=side: side.call("train_epoch", batch_size, image_count))
            for name, side in sides.items()
        }

    fixed_seconds = None
    raw = take_turns(epochs_of(count), args.repeats)
    times = raw
    if timed_steps < steps_per_epoch:
        # t(n steps) = fixed + n * per_step: two epoch lengths give both, per side.
        one_step = {name: median(ts) for name, ts in take_turns(epochs_of(batch_size), 3).items()}
        if timed_steps > 1:
            fixed_seconds = {}
            times = {}
            for name, ts in raw.items():
                per_step = (median(ts) - one_step[name]) / (timed_steps - 1)
                fixed_seconds[name] = max(0.0, one_step[name] - per_step)
                times[name] = [
                    fixed_seconds[name] + (t - fixed_seconds[name]) * steps_per_epoch / timed_steps
                    for t in ts
                ]
        else:
            times = {name: [t * steps_per_epoch for t in ts] for name, ts in raw.items()}
    medians = {name: median(ts) for name, ts in times.items()}
    keras_best = min((name for name in medians if name != "from_scratch"), key=medians.get)
    return {
        "batch_size": batch_size,
        "epoch_images": epoch_images,
        "steps_per_epoch": steps_per_epoch,
        "timed_images": count,
        "timed_steps": timed_steps,
        "scaled_to_epoch": timed_steps < steps_per_epoch,
        "timed_seconds": raw,
        "fixed_seconds_per_epoch": fixed_seconds,
        "seconds_per_epoch": times,
        "median_seconds_per_epoch": medians,
        "keras_best": keras_best,
        "ratio": medians["from_scratch"] / medians[keras_best],
        "ratio_vs_fit": medians["from_scratch"] / medians["keras_fit"],
    }


def print_training(result: dict[str, Any], repeats: int) -> None:
    how = f"median of {repeats}"
    if result["scaled_to_epoch"]:
        how += (
            f"; timed on {result['timed_steps']} steps (the first {result['timed_images']:,} "
            f"images) and scaled to the {result['epoch_images']:,}-image epoch"
        )
    print(
        f"\nTraining, batch size {result['batch_size']} ({result['steps_per_epoch']} steps per "
        f"epoch; {how}):"
    )
    print(f"  {'':<30}{'s/epoch':>10}{'images/s':>10}   each repeat (s)")
    for name, t in result["median_seconds_per_epoch"].items():
        each = " ".join(f"{x:.1f}" for x in result["seconds_per_epoch"][name])
        best = "  <- Keras' time" if name == result["keras_best"] else ""
        rate = result["epoch_images"] / t
        print(f"  {SIDE_LABELS[name]:<30}{t:>10.2f}{rate:>10.0f}   {each}{best}")
    if result["fixed_seconds_per_epoch"]:
        fixed = ", ".join(
            f"{SIDE_LABELS[name].split(',')[-1].strip()} {t:.2f}"
            for name, t in result["fixed_seconds_per_epoch"].items()
        )
        print(f"  (fixed seconds per epoch, not scaled: {fixed})")
    uneven = [
        SIDE_LABELS[name]
        for name, ts in result["seconds_per_epoch"].items()
        if max(ts) > 1.5 * min(ts)
    ]
    if uneven:
        print(
            f"  warning: repeats differ by more than 1.5x for {'; '.join(uneven)}: a busy machine"
        )
    verdict = "met" if result["ratio"] <= 1.0 else "NOT met"
    print(
        f"  ratio from scratch / Keras: {result['ratio']:.2f} (target <= 1.0: {verdict}; goal "
        f"0.75); from scratch / model.fit: {result['ratio_vs_fit']:.2f}"
    )


# --------------------------------------------------------------------------------------------
# 2. Inference images per second
# --------------------------------------------------------------------------------------------


def measure_inference(
    sides: dict[str, SideProcess], test_images: int, repeats: int
) -> dict[str, Any]:
    """Images/s over the test images, batches of EVAL_BATCH_SIZE, as the program evaluates.

    From scratch: model_file.predict_logits, the program's evaluation path (logits, no softmax).
    Keras: model.predict and a tf.function forward pass, both returning logits.
    """
    calls = {name: (lambda side=side: side.call("infer")) for name, side in sides.items()}
    times = take_turns(calls, repeats)
    images_per_second = {name: test_images / median(ts) for name, ts in times.items()}
    keras_best = max(
        (name for name in images_per_second if name != "from_scratch"), key=images_per_second.get
    )
    return {
        "images": test_images,
        "batch_size": EVAL_BATCH_SIZE,
        "seconds": times,
        "images_per_second": images_per_second,
        "keras_best": keras_best,
        # Keras' rate over ours is our time over Keras': here too, above 1 means Keras is faster.
        "ratio": images_per_second[keras_best] / images_per_second["from_scratch"],
    }


def print_inference(result: dict[str, Any], repeats: int) -> None:
    print(
        f"\nInference, {result['images']:,} test images in batches of {result['batch_size']:,} "
        f"(median of {repeats}):"
    )
    for name, rate in result["images_per_second"].items():
        best = "  <- Keras' figure" if name == result["keras_best"] else ""
        print(f"  {INFERENCE_LABELS[name]:<30}{rate:>10.0f} images/s{best}")
    print(f"  time ratio from scratch / Keras: {result['ratio']:.2f}")


# --------------------------------------------------------------------------------------------
# 3. Peak memory of a training run
# --------------------------------------------------------------------------------------------


def measure_memory(batch_size: int, steps: int, seed: int) -> dict[str, Any]:
    """Each side's training in a fresh process; its peak resident memory in MB."""
    import bench_memory  # here, not at the top: bench_memory's child process imports this module

    return {
        side: bench_memory.measure_in_subprocess(side, batch_size, steps, seed)
        for side in bench_memory.SIDES
    }


def print_memory(result: dict[str, Any], batch_size: int, steps: int) -> None:
    print(
        f"\nPeak resident memory of a training run ({steps} steps at batch size {batch_size}, "
        "each side in a fresh process):"
    )
    print(f"  {'':<30}{'peak MB':>10}{'before training MB':>20}")
    for name, figures in result.items():
        before = figures.get("rss_before_training_mb")
        before_text = "?" if before is None else f"{before:.0f}"
        print(f"  {SIDE_LABELS[name]:<30}{figures['peak_rss_mb']:>10.0f}{before_text:>20}")
    print(
        "  (before training: after imports, data and model; the Keras side also holds the "
        "training images as float32)"
    )


# --------------------------------------------------------------------------------------------
# 4. Conv stack GFLOP/s against the matrix-multiply peak
# --------------------------------------------------------------------------------------------


def conv_stack_flops_per_image() -> dict[str, int]:
    """Floating-point operations (a multiply-add counts 2) per image of one training step.

    Counted: the two convolutions' forward passes, and in the backward pass conv1's filter
    gradient, conv2's filter gradient and conv2's input gradient (conv1's input gradient is never
    computed). Each is one multiply-add per (output pixel, filter tap). Not counted: padding,
    ReLU, pooling and im2col copies, which move data but do no arithmetic worth counting.
    """
    size = SimpleCNN.INPUT_SHAPE[1] + 2 * SimpleCNN.CONV1_PADDING  # 32: the padded input
    conv1_out = size - SimpleCNN.CONV1_SHAPE[2] + 1  # 28
    conv2_out = conv1_out // SimpleCNN.POOL_SIZE - SimpleCNN.CONV2_SHAPE[2] + 1  # 10
    f1, c1, k1, _ = SimpleCNN.CONV1_SHAPE
    f2, c2, k2, _ = SimpleCNN.CONV2_SHAPE
    conv1 = 2 * f1 * conv1_out**2 * c1 * k1 * k1
    conv2 = 2 * f2 * conv2_out**2 * c2 * k2 * k2
    return {
        "conv1 forward": conv1,
        "conv2 forward": conv2,
        "conv1 d_filters": conv1,
        "conv2 d_filters": conv2,
        "conv2 d_input": conv2,
    }


def measure_conv_stack(
    sides: dict[str, SideProcess], batch_size: int, args: argparse.Namespace, peak_gflops: float
) -> dict[str, Any]:
    """GFLOP/s of one forward + backward of the conv stack on ``batch_size`` test images.

    NumPy (SimpleCNN) in the from-scratch process, tf.nn ops in the custom-loop Keras process;
    ``args.repeats`` turns of ``args.conv_repeats`` steps each.
    """
    calls = {
        name: (lambda side=sides[side_name]: side.call("conv_steps", batch_size, args.conv_repeats))
        for name, side_name in (("numpy", "from_scratch"), ("tensorflow", "keras_custom_loop"))
    }
    times = {name: sum(ts, []) for name, ts in take_turns(calls, args.repeats).items()}
    flops = sum(conv_stack_flops_per_image().values()) * batch_size
    gflops = {name: flops / median(ts) / 1e9 for name, ts in times.items()}
    return {
        "batch_size": batch_size,
        "median_milliseconds": {name: 1e3 * median(ts) for name, ts in times.items()},
        "gflops": gflops,
        "fraction_of_matmul_peak": {name: g / peak_gflops for name, g in gflops.items()},
    }


def print_conv_stack(results: list[dict[str, Any]], peak_gflops: float, steps: int) -> None:
    per_image = conv_stack_flops_per_image()
    print(
        f"\nConv stack, forward + backward to both filter gradients (median of {steps} steps); "
        f"{sum(per_image.values()) / 1e6:.2f} MFLOP per image:"
    )
    print("  (" + ", ".join(f"{name} {f / 1e6:.2f}" for name, f in per_image.items()) + ")")
    print(f"  float32 matmul peak (NumPy, 2048 x 2048): {peak_gflops:.1f} GFLOP/s")
    labels = {"numpy": "SimpleCNN (NumPy)", "tensorflow": "TensorFlow tf.nn ops"}
    for result in results:
        for name, g in result["gflops"].items():
            print(
                f"  batch {result['batch_size']:>4}  {labels[name]:<22}"
                f"{result['median_milliseconds'][name]:>9.2f} ms{g:>8.1f} GFLOP/s"
                f"{100 * result['fraction_of_matmul_peak'][name]:>7.1f}% of peak"
            )


# --------------------------------------------------------------------------------------------
# Program
# --------------------------------------------------------------------------------------------


def _batch_sizes(text: str) -> list[int]:
    sizes = [positive_int(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one batch size, e.g. 32,128")
    return list(dict.fromkeys(sizes))  # drop repeats, keep the order


def _sections(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown) or '(none)'}; choose from {','.join(SECTIONS)}"
        )
    return names


def _json_path(text: str) -> str:
    directory = Path(text).resolve().parent
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"folder {directory} does not exist for {text}")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return text


def _load_text(load: float | None) -> str:
    return "unknown" if load is None else f"{load:.1f}"


def build_parser() -> argparse.ArgumentParser:
    default_batch_sizes = ",".join(str(b) for b in dict.fromkeys([RUN_DEFAULTS["batch_size"], 32]))
    parser = argparse.ArgumentParser(
        description="Time the from-scratch training program against the same network built from "
        "Keras' native layers: training s/epoch, inference images/s, peak memory, conv GFLOP/s.",
        epilog="Run it on a quiet machine: other work slows the sides unevenly.",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=_batch_sizes(default_batch_sizes),
        metavar="B[,B...]",
        help=f"training batch sizes; the first is used for memory (default {default_batch_sizes}:"
        " the training program's default, and 32)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="timed epochs (and inference passes) per side, taking turns (default 3)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="quick run: time epochs of N steps (the first N * batch size training images) and "
        "scale them to the whole 55,000-image epoch (default: time whole epochs)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=positive_int,
        default=20,
        help="untimed training steps of a side right before each of its timed epochs, so that "
        "tracing and cold caches are never timed (default 20)",
    )
    parser.add_argument(
        "--memory-steps",
        type=positive_int,
        default=200,
        help="training steps of each memory-measuring process (default 200)",
    )
    parser.add_argument(
        "--conv-repeats",
        type=positive_int,
        default=20,
        help="timed conv-stack steps per side and turn (default 20)",
    )
    parser.add_argument(
        "--sections",
        type=_sections,
        default=list(SECTIONS),
        help=f"what to measure, comma-separated (default {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--blas-threads",
        type=positive_int,
        metavar="N",
        help="limit NumPy's BLAS to N threads in the timed processes (needs threadpoolctl; "
        "default: the BLAS's own choice, as the training program runs)",
    )
    parser.add_argument(
        "--shift",
        type=int,
        choices=range(MAX_SHIFT + 1),
        metavar="PIXELS",
        help=f"the from-scratch program's data augmentation, a random shift of up to PIXELS; the "
        f"Keras side has none (default {RUN_DEFAULTS['shift']}, the program's; 0 turns it off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights and shuffling (default 0)")
    parser.add_argument("--json", type=_json_path, metavar="FILE", help="also write the figures")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.blas_threads:
        try:
            import threadpoolctl  # noqa: F401  (optional, not a project requirement)
        except ImportError:
            parser.error("--blas-threads needs threadpoolctl: pip install threadpoolctl")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except (DatasetError, RuntimeError) as error:
        sys.exit(f"error: {error}")


def run(args: argparse.Namespace) -> int:
    """Measure the sections ``args`` asks for, printing as it goes; write the JSON last."""
    machine = machine_description()
    machine.update(tensorflow=tf.__version__, keras=keras.__version__)
    cores = usable_cores()
    print("From-scratch SimpleCNN program vs the Keras-native network, same run, taking turns")
    print(
        f"{machine['cpu']}, {cores} usable cores; Python {machine['python']}, NumPy "
        f"{machine['numpy']} ({machine['blas']}), TensorFlow {machine['tensorflow']}, Keras "
        f"{machine['keras']}"
    )
    shift = settle_config(TrainConfig(shift=args.shift)).shift
    print(
        f"from scratch: random shifts of up to {shift} pixel(s) (the program's augmentation); "
        "Keras-native: no augmentation"
    )
    if args.blas_threads:
        print(f"NumPy's BLAS limited to {args.blas_threads} thread(s) in the timed processes")
    print(f"load average at start: {_load_text(machine['load_average_1min'])}")
    warning = busy_machine_warning(machine["load_average_1min"], cores)
    if warning:
        print(warning)
    sys.stdout.flush()

    data = load_benchmark_data()  # here too, to fail early and say so, before starting sides
    figures: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "batch_sizes": args.batch_sizes,
            "repeats": args.repeats,
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "blas_threads": args.blas_threads,
            "from_scratch_shift": shift,
            "learning_rate": LEARNING_RATE,
            "seed": args.seed,
            "training_images": len(data.x_train),
            "test_images": len(data.x_test),
        },
    }
    if "conv" in args.sections:
        # Measured first, in this process, with the BLAS's own thread count: the machine's peak.
        machine["matmul_peak_gflops"] = matmul_peak_gflops()

    in_process = [s for s in args.sections if s != "memory"]
    sides: dict[str, SideProcess] = {}
    try:
        if in_process:
            sides = {name: SideProcess(name, args) for name in SIDES}
            for side in sides.values():
                side.wait_until_ready()

        if "training" in args.sections:
            figures["training"] = []
            for batch_size in args.batch_sizes:
                result = measure_training(sides, batch_size, len(data.x_train), args)
                figures["training"].append(result)
                print_training(result, args.repeats)
                sys.stdout.flush()

        if "inference" in args.sections:
            figures["inference"] = measure_inference(sides, len(data.x_test), args.repeats)
            print_inference(figures["inference"], args.repeats)
            sys.stdout.flush()

        if "conv" in args.sections:
            peak = machine["matmul_peak_gflops"]
            figures["conv_stack"] = [
                measure_conv_stack(sides, batch_size, args, peak) for batch_size in args.batch_sizes
            ]
            figures["conv_stack_flops_per_image"] = conv_stack_flops_per_image()
            print_conv_stack(figures["conv_stack"], peak, args.repeats * args.conv_repeats)
            sys.stdout.flush()
    finally:
        for side in sides.values():
            side.close()

    if "memory" in args.sections:  # after the sides have stopped: nothing else runs meanwhile
        batch_size = args.batch_sizes[0]
        figures["memory"] = measure_memory(batch_size, args.memory_steps, args.seed)
        figures["memory_settings"] = {"batch_size": batch_size, "steps": args.memory_steps}
        print_memory(figures["memory"], batch_size, args.memory_steps)

    machine["load_average_1min_end"] = load_average()
    print(
        f"\nload average at end: {_load_text(machine['load_average_1min_end'])} (this run included)"
    )
    if args.json:
        text = json.dumps(figures, indent=2) + "\n"
        replace_atomically(args.json, lambda file: file.write(text.encode()))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
