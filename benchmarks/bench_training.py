"""Is the from-scratch program as fast as Keras? Training, inference, memory, GFLOP/s, one run.

The two sides train the same network (``--network``, see networks.py: LeNet-5, the program's
default, or Keras' MNIST example network), on the same machine, in the same run, taking turns
(A B, B A, ...):

* from scratch: the training program's own code (simple_cnn_from_scratch.build_model and
  train_steps, the loop the program runs), NumPy convolutions + the Keras dense head; its
  evaluation and prediction path, inference.Classifier.logits (NumPy only);
* Keras-native: the same network from Keras' Conv2D/MaxPool2D layers (keras_native.py), trained
  with model.fit and with a hand-written tf.function loop; the faster counts as Keras' time.

Each side runs in a Python process of its own, started once and kept warm (see SideProcess for
why); this script only sends it requests and collects the seconds it measured.

Sections (all by default; --sections picks some):

1. training: seconds per epoch over the 55,000 training images, at each --batch-sizes, and the
   ratio from-scratch / Keras (the target: at most 1.0 at the program's default batch size);
2. inference: images per second over the 10,000 test images, in the program's evaluation batches;
3. memory: peak resident memory of a training run, each side in a fresh process;
4. conv: GFLOP/s of the NumPy conv stack (forward + backward) against this machine's float32
   matrix-multiply peak, with TensorFlow's conv stack for comparison;
5. tensorboard: the from-scratch training with and without the program's --tensorboard log
   (the target: under 5% slower per epoch).

    python benchmarks/bench_training.py                          # the full measurement
    python benchmarks/bench_training.py --network keras-example  # Keras' MNIST example network
    python benchmarks/bench_training.py --repeats 1 --steps 100  # a quick look (scaled to an epoch)
    python benchmarks/bench_training.py --json figures.json      # also write the figures as JSON
"""

import argparse
import importlib.metadata
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

# The project's modules sit one directory up; this lets the script run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_conv_stack import conv_stack_flops_per_image, simple_cnn_step, tensorflow_step  # noqa: E402
from networks import (  # noqa: E402
    DEFAULT_NETWORK,
    NETWORK_FIELDS,
    NETWORKS,
    build_simple_cnn,
    describe_network,
    network_config,
)
from timing import (  # noqa: E402
    busy_machine_warning,
    format_load,
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
from inference import EVAL_BATCH_SIZE, images_to_input  # noqa: E402
from plumbing.atomic_write import write_atomically  # noqa: E402
from plumbing.command_line import ArgumentParser  # noqa: E402
from simple_cnn import SimpleCNN  # noqa: E402
from simple_cnn_from_scratch import (  # noqa: E402
    Dataset,
    EpochSums,
    Progress,
    StopRequest,
    build_model,
    classifier,
    learning_rate_for,
    load_data,
    open_tensorboard,
    steps_per_epoch,
    train_steps,
)
from training.settings import MAX_SHIFT, TrainConfig  # noqa: E402

SECTIONS = ("training", "inference", "memory", "conv", "tensorboard")
SIDES = ("from_scratch", "keras_fit", "keras_custom_loop")
SIDE_LABELS = {
    "from_scratch": "from scratch (NumPy + head)",
    "keras_fit": "Keras-native, model.fit",
    "keras_custom_loop": "Keras-native, custom loop",
}
INFERENCE_LABELS = {
    "from_scratch": "from scratch (Classifier.logits)",
    "keras_fit": "Keras-native, model.predict",
    "keras_custom_loop": "Keras-native, tf.function",
}
DEFAULT_SHIFT = TrainConfig().shift
# The epoch-time ratio each network's issue hoped for, beyond the target of 1.0 (Keras' speed).
TRAINING_RATIO_GOALS = {"lenet": 0.75, "keras-example": 0.5}


def benchmark_config(args: argparse.Namespace, batch_size: int | None = None) -> TrainConfig:
    """The training program's settings for this run's network, seed and shift (and batch size).

    Both sides read their network, learning rate (the first epoch's) and seed from it.
    """
    settings = {"seed": args.seed, "shift": args.shift}
    if batch_size is not None:
        settings["batch_size"] = batch_size
    return network_config(args.network, **settings)


def load_benchmark_data() -> Dataset:
    """The training program's split: 55,000 training, 5,000 validation, 10,000 test images."""
    return load_data(TrainConfig())


def conv_stack_inputs(data: Dataset, config: TrainConfig, batch_size: int):
    """The conv-stack step's inputs, the same numbers for both sides.

    Returns the network's SimpleCNN (its filters), test images x (N, 1, 28, 28) float32 and a
    gradient d_out (N, num_features) float32 standing for the head's.
    """
    cnn = build_simple_cnn(config, config.seed)
    x = images_to_input(data.x_test[:batch_size])
    rng = np.random.default_rng(config.seed)
    d_out = rng.standard_normal((batch_size, cnn.num_features)).astype(np.float32)
    return cnn, x, d_out


# --------------------------------------------------------------------------------------------
# The from-scratch side: the training program's epoch
# --------------------------------------------------------------------------------------------


class FromScratchTraining:
    """The training program's model at one batch size, trained by the program's ``train_steps``.

    Every step is the program's: the batch from the epoch's shuffled order, its random shift,
    SimpleCNN.forward, the compiled head step, SimpleCNN.backward, the NumPy Adam step, the
    progress bar's update (silent, as with --quiet) and, when attached, the TensorBoard log.
    The timed steps end before the program's validation pass, so both sides time the training
    steps alone (Keras' fit() runs no validation without validation_data either).
    """

    def __init__(self, config: TrainConfig):
        self.model = build_model(config)
        self.stop = StopRequest()  # a Ctrl-C request that never comes

    def time_steps(self, data: Dataset, max_steps: int | None = None, tensorboard=None) -> float:
        """Seconds of the first ``max_steps`` steps of an epoch (None: the whole epoch).

        Every call starts the first epoch again (its order, its learning rate); the weights
        keep learning from where they are.
        """
        model = self.model
        epoch_steps = steps_per_epoch(data, model.config)
        expected_steps = epoch_steps if max_steps is None else min(max_steps, epoch_steps)
        model.step, model.partial_epoch = 0, {}
        started = time.perf_counter()
        progress = Progress(model.config, model.epoch + 1, epoch_steps)
        train_steps(
            model, data, self.stop, max_steps=max_steps, progress=progress, tensorboard=tensorboard
        )
        elapsed = time.perf_counter() - started
        if model.step != expected_steps:
            raise RuntimeError(
                f"train_steps stopped after {model.step} steps, {expected_steps} were asked for"
            )
        return elapsed


# --------------------------------------------------------------------------------------------
# The sides' measurements. Every timed call is preceded by untimed warm-up work of its own.
# --------------------------------------------------------------------------------------------


class FromScratchSide:
    """The training program's code: its training steps, its evaluation path (the NumPy
    Classifier), SimpleCNN's conv stack, and its TensorBoard log."""

    def __init__(self, data: Dataset, args: argparse.Namespace):
        self.data = data
        self.args = args
        self._training: dict[int, FromScratchTraining] = {}
        self._classifier = None
        self._tensorboard: dict[int, Any] = {}  # batch size -> tensorboard_log.TensorBoardLog
        self._tensorboard_record: dict[int, dict[str, Any]] = {}
        self._tensorboard_dir: str | None = None

    def _trainer(self, batch_size: int) -> FromScratchTraining:
        if batch_size not in self._training:
            config = benchmark_config(self.args, batch_size)
            self._training[batch_size] = FromScratchTraining(config)
        return self._training[batch_size]

    def train(self, batch_size: int, steps: int | None, tensorboard: bool = False) -> float:
        """Seconds of the first ``steps`` training steps of an epoch (None: all of them), with
        the TensorBoard log attached if ``tensorboard`` (start_tensorboard first)."""
        training = self._trainer(batch_size)
        log = self._tensorboard[batch_size] if tensorboard else None
        training.time_steps(self.data, self.args.warmup_steps, log)
        return training.time_steps(self.data, steps, log)

    def infer(self) -> float:
        """Seconds to compute the logits of every test image, as the programs evaluate and
        predict: inference.Classifier.logits in batches of EVAL_BATCH_SIZE."""
        if self._classifier is None:
            self._classifier = classifier(build_model(benchmark_config(self.args)))
        images = self.data.x_test
        self._classifier.logits(images[:EVAL_BATCH_SIZE], EVAL_BATCH_SIZE)  # warm-up: caches
        return seconds(lambda: self._classifier.logits(images, EVAL_BATCH_SIZE))

    def conv_steps(self, batch_size: int, count: int) -> list[float]:
        """Seconds of ``count`` SimpleCNN forward + backward steps on ``batch_size`` images."""
        inputs = conv_stack_inputs(self.data, benchmark_config(self.args), batch_size)
        step = simple_cnn_step(*inputs)
        for _ in range(2):  # warm-up: caches, threads
            step()
        return [seconds(step) for _ in range(count)]

    def start_tensorboard(self, batch_size: int) -> float:
        """Open the program's TensorBoard log for the ``batch_size`` model, in a temporary
        folder, as ``--tensorboard DIR`` does; return the seconds a run pays for it once:
        opening the log and its first per-epoch call (summary writers, tracing)."""
        training = self._trainer(batch_size)
        model = training.model
        if self._tensorboard_dir is None:
            self._tensorboard_dir = tempfile.mkdtemp(prefix="bench_tensorboard_")
        config = replace(model.config, tensorboard_dir=self._tensorboard_dir)
        started = time.perf_counter()
        log = open_tensorboard(config)
        opening = time.perf_counter() - started
        # Untimed steps with the log attached: its first epoch call then has gradients to log.
        # At least one period of batch scalars among them: the first write traces TensorFlow's
        # summary ops, a one-off cost that a short timed window would count as per-step work.
        warm_up = max(self.args.warmup_steps, config.tensorboard_every)
        first_write = seconds(lambda: training.time_steps(self.data, warm_up, log))
        first_write -= seconds(lambda: training.time_steps(self.data, warm_up, None))
        self._tensorboard[batch_size] = log
        self._tensorboard_record[batch_size] = self._epoch_record(model)
        return opening + max(first_write, 0.0) + self.tensorboard_epoch_log(batch_size)

    def tensorboard_epoch_log(self, batch_size: int) -> float:
        """Seconds of the log's per-epoch call, which the program makes after each epoch's
        validation: scalars, weight and gradient histograms, filter images."""
        model = self._training[batch_size].model
        log = self._tensorboard[batch_size]
        record = self._tensorboard_record[batch_size]
        learning_rate = learning_rate_for(model.config, record["epoch"])
        return seconds(lambda: log.epoch(model, record, learning_rate))

    def _epoch_record(self, model) -> dict[str, Any]:
        """A history record as the program's train_epoch makes it, for the log's epoch call."""
        sums = EpochSums(**model.partial_epoch)
        val_loss, val_accuracy = classifier(model).evaluate(self.data.x_val, self.data.y_val)
        return {
            "epoch": model.epoch + 1,
            "seconds": sums.seconds,
            "loss": sums.loss_sum / sums.seen,
            "accuracy": sums.correct / sums.seen,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }

    def close(self) -> None:
        for log in self._tensorboard.values():
            log.close()
        if self._tensorboard_dir is not None:
            shutil.rmtree(self._tensorboard_dir, ignore_errors=True)


class KerasSide:
    """The Keras-native network's measurements, in one of two styles.

    mode "fit": training with ``model.fit``, inference with ``model.predict``;
    mode "custom_loop": training with keras_native.CustomLoop, inference with a tf.function
    forward pass. Either way the conv stack is bench_conv_stack's tf.nn version.
    """

    def __init__(self, data: Dataset, mode: str, args: argparse.Namespace):
        import keras_native  # TensorFlow: imported by the Keras side's process alone

        self.data = data
        self.mode = mode
        self.args = args
        self.x_train = keras_native.images_to_nhwc(data.x_train)
        self.x_test = keras_native.images_to_nhwc(data.x_test)
        self._training: dict[int, Callable[[int], object]] = {}
        self._predict: Callable[[], object] | None = None

    def _trainer(self, batch_size: int) -> Callable[[int], object]:
        """``train(n)``: one epoch over the first n training images (a model per batch size)."""
        import keras_native

        if batch_size not in self._training:
            config = benchmark_config(self.args, batch_size)
            model = keras_native.build_keras_native_model(config)
            x, y = self.x_train, self.data.y_train
            if self.mode == "fit":

                def train(n: int) -> None:
                    keras_native.fit_one_epoch(model, x[:n], y[:n], batch_size)

            else:
                loop = keras_native.CustomLoop(model, config.learning_rate, config.seed)

                def train(n: int) -> None:
                    loop.run_epoch(x[:n], y[:n], batch_size)

            self._training[batch_size] = train
        return self._training[batch_size]

    def train(self, batch_size: int, steps: int | None) -> float:
        """Seconds of an epoch over the first ``steps`` batches of training images (None: all)."""
        train = self._trainer(batch_size)
        available = len(self.x_train)
        image_count = available if steps is None else min(available, steps * batch_size)
        train(warm_up_image_count(batch_size, self.args.warmup_steps, available))
        return seconds(lambda: train(image_count))

    def infer(self) -> float:
        """Seconds to compute the logits of every test image, batches of EVAL_BATCH_SIZE."""
        import keras_native

        if self._predict is None:
            model = keras_native.build_keras_native_model(benchmark_config(self.args))
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
        inputs = conv_stack_inputs(self.data, benchmark_config(self.args), batch_size)
        step = tensorflow_step(*inputs)
        for _ in range(2):  # warm-up: tracing, thread pools
            step()
        return [seconds(step) for _ in range(count)]

    def close(self) -> None:
        pass


def _serve_side(connection, side: str, args: argparse.Namespace) -> None:
    """A side process's life: build the side, then answer (method, args) requests until None.

    Every answer is (True, result) or (False, "error message").
    """
    worker = None
    try:
        if args.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.blas_threads, user_api="blas")
        data = load_benchmark_data()
        if side == "from_scratch":
            worker = FromScratchSide(data, args)
        else:
            worker = KerasSide(data, side.removeprefix("keras_"), args)
        connection.send((True, None))  # ready
        while (request := connection.recv()) is not None:
            method, method_args = request
            try:
                connection.send((True, getattr(worker, method)(*method_args)))
            except Exception as error:  # report it to the parent, which says which side failed
                connection.send((False, f"{type(error).__name__}: {error}"))
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches every process of the terminal; the parent reports it
    except Exception as error:
        connection.send((False, f"{type(error).__name__}: {error}"))
    finally:
        if worker is not None:
            worker.close()


class SideProcess:
    """One side of the comparison in a Python process of its own, answering timing requests.

    Why not one process: TensorFlow's thread pool keeps spinning for a while after the Keras side
    works, and in the same process NumPy's BLAS threads then wait for cores: on a 2-core machine
    the from-scratch side measured many times slower right after a Keras step than alone, a cost
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

    With ``args.steps`` the timed epochs are shorter, their first steps only, and are scaled up
    to the whole epoch: each side's fixed cost per epoch (model.fit's set-up, mostly) is
    measured first, on one-step epochs, and only the rest is scaled, by the ratio of steps.
    """
    epoch_steps = math.ceil(epoch_images / batch_size)
    timed_steps = epoch_steps if args.steps is None else min(epoch_steps, args.steps)

    def epochs_of(steps: int) -> dict[str, Callable[[], float]]:
        return {
            name: (lambda side=side: side.call("train", batch_size, steps))
            for name, side in sides.items()
        }

    fixed_seconds = None
    raw = take_turns(epochs_of(timed_steps), args.repeats)
    times = raw
    if timed_steps < epoch_steps:
        # t(n steps) = fixed + n * per_step: two epoch lengths give both, per side.
        one_step = {name: median(ts) for name, ts in take_turns(epochs_of(1), 3).items()}
        if timed_steps > 1:
            fixed_seconds = {}
            times = {}
            for name, ts in raw.items():
                per_step = (median(ts) - one_step[name]) / (timed_steps - 1)
                fixed_seconds[name] = max(0.0, one_step[name] - per_step)
                times[name] = [
                    fixed_seconds[name] + (t - fixed_seconds[name]) * epoch_steps / timed_steps
                    for t in ts
                ]
        else:
            times = {name: [t * epoch_steps for t in ts] for name, ts in raw.items()}
    medians = {name: median(ts) for name, ts in times.items()}
    keras_best = min((name for name in medians if name != "from_scratch"), key=medians.get)
    return {
        "network": args.network,
        "batch_size": batch_size,
        "epoch_images": epoch_images,
        "steps_per_epoch": epoch_steps,
        "timed_images": min(epoch_images, timed_steps * batch_size),
        "timed_steps": timed_steps,
        "scaled_to_epoch": timed_steps < epoch_steps,
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
    network, batch_size = result["network"], result["batch_size"]
    print(
        f"\nTraining, {network} network, batch size {batch_size} "
        f"({result['steps_per_epoch']} steps per epoch; {how}):"
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
        f"  {network}, batch {batch_size}: epoch-time ratio from scratch / Keras "
        f"{result['ratio']:.2f} (target <= 1.0: {verdict}; goal {TRAINING_RATIO_GOALS[network]}); "
        f"from scratch / model.fit {result['ratio_vs_fit']:.2f}"
    )


# --------------------------------------------------------------------------------------------
# 2. Inference images per second
# --------------------------------------------------------------------------------------------


def measure_inference(
    sides: dict[str, SideProcess], test_images: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Images/s over the test images, batches of EVAL_BATCH_SIZE, as the programs evaluate.

    From scratch: inference.Classifier.logits, the path the trainer's evaluation and
    predict_digit use (NumPy conv stack + NumPy dense head, logits, no softmax).
    Keras: model.predict and a tf.function forward pass, both returning logits.
    """
    calls = {name: (lambda side=side: side.call("infer")) for name, side in sides.items()}
    times = take_turns(calls, args.repeats)
    images_per_second = {name: test_images / median(ts) for name, ts in times.items()}
    keras_best = max(
        (name for name in images_per_second if name != "from_scratch"), key=images_per_second.get
    )
    return {
        "network": args.network,
        "images": test_images,
        "batch_size": EVAL_BATCH_SIZE,
        "seconds": times,
        "images_per_second": images_per_second,
        "keras_best": keras_best,
        # Keras' rate over ours is our time over Keras': here too, above 1 means Keras is faster.
        "ratio": images_per_second[keras_best] / images_per_second["from_scratch"],
    }


def print_inference(result: dict[str, Any], repeats: int) -> None:
    network = result["network"]
    print(
        f"\nInference, {network} network, {result['images']:,} test images in batches of "
        f"{result['batch_size']:,} (median of {repeats}):"
    )
    for name, rate in result["images_per_second"].items():
        best = "  <- Keras' figure" if name == result["keras_best"] else ""
        print(f"  {INFERENCE_LABELS[name]:<34}{rate:>10.0f} images/s{best}")
    print(f"  {network}: time ratio from scratch / Keras {result['ratio']:.2f}")


# --------------------------------------------------------------------------------------------
# 3. Peak memory of a training run
# --------------------------------------------------------------------------------------------


def measure_memory(args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    """Each side's training in a fresh process; its peak resident memory in MB."""
    import bench_memory  # here, not at the top: bench_memory's child process imports this module

    return {
        side: bench_memory.measure_in_subprocess(
            side, args.network, batch_size, args.memory_steps, args.seed
        )
        for side in bench_memory.SIDES
    }


def print_memory(result: dict[str, Any], network: str, batch_size: int, steps: int) -> None:
    print(
        f"\nPeak resident memory of a training run, {network} network ({steps} steps at batch "
        f"size {batch_size}, each side in a fresh process):"
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


def measure_conv_stack(
    sides: dict[str, SideProcess],
    batch_size: int,
    args: argparse.Namespace,
    cnn: SimpleCNN,
    peak_gflops: float,
) -> dict[str, Any]:
    """GFLOP/s of one forward + backward of the conv stack on ``batch_size`` test images.

    NumPy (SimpleCNN) in the from-scratch process, tf.nn ops in the custom-loop Keras process;
    ``args.repeats`` turns of ``args.conv_repeats`` steps each. ``cnn`` is the network's conv
    stack, for counting its operations.
    """
    calls = {
        name: (lambda side=sides[side_name]: side.call("conv_steps", batch_size, args.conv_repeats))
        for name, side_name in (("numpy", "from_scratch"), ("tensorflow", "keras_custom_loop"))
    }
    times = {name: sum(ts, []) for name, ts in take_turns(calls, args.repeats).items()}
    flops = sum(conv_stack_flops_per_image(cnn).values()) * batch_size
    gflops = {name: flops / median(ts) / 1e9 for name, ts in times.items()}
    return {
        "network": args.network,
        "batch_size": batch_size,
        "median_milliseconds": {name: 1e3 * median(ts) for name, ts in times.items()},
        "gflops": gflops,
        "fraction_of_matmul_peak": {name: g / peak_gflops for name, g in gflops.items()},
    }


def print_conv_stack(
    results: list[dict[str, Any]], cnn: SimpleCNN, network: str, peak_gflops: float, steps: int
) -> None:
    per_image = conv_stack_flops_per_image(cnn)
    print(
        f"\nConv stack of the {network} network, forward + backward to every filter gradient "
        f"(median of {steps} steps); {sum(per_image.values()) / 1e6:.2f} MFLOP per image:"
    )
    print("  (" + ", ".join(f"{name} {f / 1e6:.2f}" for name, f in per_image.items()) + ")")
    print(f"  float32 matmul peak (NumPy, 2048 x 2048): {peak_gflops:.1f} GFLOP/s")
    labels = {"numpy": "SimpleCNN (NumPy)", "tensorflow": "TensorFlow tf.nn ops"}
    for result in results:
        for name, g in result["gflops"].items():
            print(
                f"  {network}, batch {result['batch_size']:>4}  {labels[name]:<22}"
                f"{result['median_milliseconds'][name]:>9.2f} ms{g:>8.1f} GFLOP/s"
                f"{100 * result['fraction_of_matmul_peak'][name]:>7.1f}% of peak"
            )


# --------------------------------------------------------------------------------------------
# 5. TensorBoard's overhead
# --------------------------------------------------------------------------------------------


def measure_tensorboard(
    side: SideProcess, batch_size: int, epoch_images: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The from-scratch training's seconds per epoch without and with the program's
    TensorBoard log, taking turns.

    With the log, an epoch costs its steps (each calls the log; every ``tensorboard_every``
    steps it writes the batch scalars) plus the log's per-epoch call after validation (weight
    and gradient histograms, filter images). Validation itself is the same either way and is
    not timed. With ``args.steps`` the steps are scaled to the epoch by the ratio of steps.
    A run also pays once for opening the log and the first epoch call's tracing: reported apart,
    and spread over the program's default number of epochs for the whole-run figure.
    """
    config = benchmark_config(args, batch_size)
    epoch_steps = math.ceil(epoch_images / batch_size)
    timed_steps = epoch_steps if args.steps is None else min(epoch_steps, args.steps)
    if timed_steps < epoch_steps:
        # Whole periods of batch scalars in every timed window, so that each window holds as
        # many writes as the epoch has per step; a window with one more or one fewer would be
        # scaled up to the epoch with it.
        every = config.tensorboard_every
        timed_steps = min(epoch_steps, math.ceil(timed_steps / every) * every)
    once_seconds = side.call("start_tensorboard", batch_size)
    calls = {
        "without": lambda: side.call("train", batch_size, timed_steps, False),
        "with": lambda: side.call("train", batch_size, timed_steps, True),
    }
    times = take_turns(calls, args.repeats)
    epoch_log = [side.call("tensorboard_epoch_log", batch_size) for _ in range(args.repeats)]
    scale = epoch_steps / timed_steps
    without = median(times["without"]) * scale
    with_log = median(times["with"]) * scale + median(epoch_log)
    # Each turn's own overhead: how far apart they are is the noise of the median's.
    per_turn = [
        100 * ((w * scale + log) / (wo * scale) - 1)
        for w, wo, log in zip(times["with"], times["without"], epoch_log, strict=True)
    ]
    epochs = config.epochs
    return {
        "network": args.network,
        "batch_size": batch_size,
        "tensorboard_every": config.tensorboard_every,
        "steps_per_epoch": epoch_steps,
        "timed_steps": timed_steps,
        "timed_seconds": times,
        "epoch_log_seconds": epoch_log,
        "seconds_per_epoch": {"without": without, "with": with_log},
        "once_per_run_seconds": once_seconds,
        "overhead_percent_per_epoch": 100 * (with_log / without - 1),
        "overhead_percent_per_turn": per_turn,
        "load_average": os.getloadavg()[0],
        "run_epochs": epochs,
        "overhead_percent_per_run": 100
        * ((epochs * with_log + once_seconds) / (epochs * without) - 1),
    }


TENSORBOARD_TARGET_PERCENT = 5.0


def overhead_verdict(result: dict[str, Any]) -> str:
    """Whether the overhead meets its target, or that these timings cannot tell: the turns'
    own overheads lie on both sides of the target (one turn alone has no spread to judge by).
    Other work on the machine slows one side's turn and not the other's."""
    per_turn = result["overhead_percent_per_turn"]
    target = TENSORBOARD_TARGET_PERCENT
    if len(per_turn) < 2:
        verdict = "met" if result["overhead_percent_per_epoch"] < target else "NOT met"
        return f"{verdict}, but one turn cannot tell it from noise: give --repeats 3 or more"
    low, high = min(per_turn), max(per_turn)
    if high < target:
        return "met"
    if low >= target:
        return "NOT met"
    return (
        f"cannot tell: the turns gave {low:.1f}% to {high:.1f}% (load average "
        f"{result['load_average']:.1f}); give more --repeats, whole epochs, a quieter machine"
    )


def print_tensorboard(result: dict[str, Any], repeats: int) -> None:
    network = result["network"]
    how = f"median of {repeats}"
    if result["timed_steps"] < result["steps_per_epoch"]:
        how += f"; timed on {result['timed_steps']} steps and scaled to the epoch"
    print(
        f"\nTensorBoard overhead, {network} network, batch size {result['batch_size']} "
        f"(--tensorboard DIR, batch scalars every {result['tensorboard_every']} steps; {how}):"
    )
    seconds_per_epoch = result["seconds_per_epoch"]
    print(f"  {'training without TensorBoard':<44}{seconds_per_epoch['without']:>8.2f} s/epoch")
    print(f"  {'training with TensorBoard':<44}{seconds_per_epoch['with']:>8.2f} s/epoch")
    print(
        f"  {'  of which the per-epoch log call':<44}{median(result['epoch_log_seconds']):>8.2f} s"
    )
    turns = ", ".join(f"{percent:.1f}%" for percent in result["overhead_percent_per_turn"])
    print(f"  {'overhead of each turn':<44}{turns}")
    overhead = result["overhead_percent_per_epoch"]
    print(
        f"  {network}, batch {result['batch_size']}: TensorBoard overhead per epoch "
        f"{overhead:.1f}% (target < 5%: {overhead_verdict(result)})"
    )
    print(
        f"  once per run (opening the log, the first epoch call's tracing): "
        f"{result['once_per_run_seconds']:.2f} s; over a {result['run_epochs']}-epoch run: "
        f"{result['overhead_percent_per_run']:.1f}%"
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


def _installed_version(package: str) -> str:
    """A package's version from its installed metadata ("unknown" under another name, such as
    tensorflow-cpu)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    program_batch_size = TrainConfig().batch_size
    default_batch_sizes = ",".join(str(b) for b in dict.fromkeys([program_batch_size, 32]))
    parser = ArgumentParser(
        description="Time the from-scratch training program against the same network built from "
        "Keras' native layers: training s/epoch, inference images/s, peak memory, conv GFLOP/s, "
        "TensorBoard's overhead.",
        epilog="Run it on a quiet machine: other work slows the sides unevenly.",
    )
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default=DEFAULT_NETWORK,
        help=f"the network both sides train (default {DEFAULT_NETWORK}, the program's default; "
        "keras-example: keras-io's MNIST convnet; see benchmarks/networks.py)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=_batch_sizes(default_batch_sizes),
        metavar="B[,B...]",
        help=f"training batch sizes; the first is used for memory and TensorBoard (default "
        f"{default_batch_sizes}: the training program's default, and 32)",
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
        help="quick run: time the first N steps of each epoch and scale them to the whole "
        "55,000-image epoch (default: time whole epochs)",
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
        help="limit NumPy's BLAS to N threads in the timed processes (default: the BLAS's own "
        "choice, as the training program runs)",
    )
    parser.add_argument(
        "--shift",
        type=int,
        choices=range(MAX_SHIFT + 1),
        default=DEFAULT_SHIFT,
        metavar="PIXELS",
        help=f"the from-scratch program's data augmentation, a random shift of up to PIXELS; the "
        f"Keras side has none (default {DEFAULT_SHIFT}, the program's; 0 turns it off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights and shuffling (default 0)")
    parser.add_argument("--json", type=_json_path, metavar="FILE", help="also write the figures")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except (DatasetError, RuntimeError) as error:
        sys.exit(f"error: {error}")


def sides_needed(sections: list[str]) -> list[str]:
    """The side processes the in-process sections use (memory starts fresh ones of its own)."""
    needed = set()
    if "training" in sections or "inference" in sections:
        needed.update(SIDES)
    if "conv" in sections:
        needed.update(("from_scratch", "keras_custom_loop"))
    if "tensorboard" in sections:
        needed.add("from_scratch")
    return [side for side in SIDES if side in needed]


def run(args: argparse.Namespace) -> int:
    """Measure the sections ``args`` asks for, printing as it goes; write the JSON last."""
    config = benchmark_config(args)
    machine = machine_description()
    # Read from the installed packages: importing TensorFlow here would cost seconds, and only
    # the side processes need it.
    machine.update(tensorflow=_installed_version("tensorflow"), keras=_installed_version("keras"))
    cores = usable_cores()
    print("From-scratch SimpleCNN program vs the Keras-native network, same run, taking turns")
    print(f"network: {args.network} ({describe_network(config)}), the same on both sides")
    print(
        f"{machine['cpu']}, {cores} usable cores; Python {machine['python']}, NumPy "
        f"{machine['numpy']} ({machine['blas']}), TensorFlow {machine['tensorflow']}, Keras "
        f"{machine['keras']}"
    )
    print(
        f"from scratch: random shifts of up to {config.shift} pixel(s) (the program's "
        "augmentation); Keras-native: no augmentation"
    )
    if args.blas_threads:
        print(f"NumPy's BLAS limited to {args.blas_threads} thread(s) in the timed processes")
    print(f"load average at start: {format_load(machine['load_average_1min'])}")
    warning = busy_machine_warning(machine["load_average_1min"], cores)
    if warning:
        print(warning)
    sys.stdout.flush()

    data = load_benchmark_data()  # here too, to fail early and say so, before starting sides
    figures: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "network": args.network,
            "network_description": describe_network(config),
            "network_settings": {name: getattr(config, name) for name in NETWORK_FIELDS},
            "batch_sizes": args.batch_sizes,
            "repeats": args.repeats,
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "blas_threads": args.blas_threads,
            "from_scratch_shift": config.shift,
            "learning_rate": config.learning_rate,
            "seed": args.seed,
            "training_images": len(data.x_train),
            "test_images": len(data.x_test),
        },
    }
    if "conv" in args.sections:
        # Measured first, in this process, with the BLAS's own thread count: the machine's peak.
        machine["matmul_peak_gflops"] = matmul_peak_gflops()

    sides: dict[str, SideProcess] = {}
    try:
        sides = {name: SideProcess(name, args) for name in sides_needed(args.sections)}
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
            figures["inference"] = measure_inference(sides, len(data.x_test), args)
            print_inference(figures["inference"], args.repeats)
            sys.stdout.flush()

        if "conv" in args.sections:
            peak = machine["matmul_peak_gflops"]
            cnn = build_simple_cnn(config, args.seed)
            figures["conv_stack"] = [
                measure_conv_stack(sides, batch_size, args, cnn, peak)
                for batch_size in args.batch_sizes
            ]
            figures["conv_stack_flops_per_image"] = conv_stack_flops_per_image(cnn)
            print_conv_stack(
                figures["conv_stack"], cnn, args.network, peak, args.repeats * args.conv_repeats
            )
            sys.stdout.flush()

        if "tensorboard" in args.sections:
            batch_size = args.batch_sizes[0]
            figures["tensorboard"] = measure_tensorboard(
                sides["from_scratch"], batch_size, len(data.x_train), args
            )
            print_tensorboard(figures["tensorboard"], args.repeats)
            sys.stdout.flush()
    finally:
        for side in sides.values():
            side.close()

    if "memory" in args.sections:  # after the sides have stopped: nothing else runs meanwhile
        batch_size = args.batch_sizes[0]
        figures["memory"] = measure_memory(args, batch_size)
        figures["memory_settings"] = {
            "network": args.network,
            "batch_size": batch_size,
            "steps": args.memory_steps,
        }
        print_memory(figures["memory"], args.network, batch_size, args.memory_steps)

    machine["load_average_1min_end"] = load_average()
    end_load = format_load(machine["load_average_1min_end"])
    print(f"\nload average at end: {end_load} (this run included)")
    if args.json:
        text = json.dumps(figures, indent=2) + "\n"
        write_atomically(args.json, lambda file: file.write(text.encode()))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
