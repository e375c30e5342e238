"""Train SimpleCNN end to end on MNIST: NumPy convolutions below, a small Keras dense head on top.

    python simple_cnn_from_scratch.py                 # ~99.2% test accuracy in ~40 s
    python simple_cnn_from_scratch.py --epochs 1 --limit 5000     # a quick try
    python simple_cnn_from_scratch.py --resume simple_cnn_model.npz --epochs 8
    python simple_cnn_from_scratch.py --help

Every step runs the whole network on one batch:

    images (N, 1, 28, 28) --SimpleCNN.forward (NumPy)--> features (N, 400)
    features --Keras head: Dense(128, relu), Dense(10)--> logits (N, 10) --> mean cross-entropy
    tf.GradientTape gives d loss / d head weights (the head's Adam applies them) and
    d loss / d features (N, 400) --SimpleCNN.backward--> d filters (a NumPy Adam applies them)

The model file (conv filters, head weights, both optimizers' state, the epoch reached) is written
atomically after every epoch and on Ctrl-C, so ``--resume`` continues exactly where a run stopped.
Importing this module only defines things; ``main()`` runs the program.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from adam import Adam
from download_mnist import DatasetError, load_dataset
from model_file import (
    ModelFileError,
    TrainedModel,
    build_head,
    build_head_optimizer,
    images_to_input,
    keras,
    load_model,
    predict_logits,
    replace_atomically,
    save_model,
    tf,
)
from simple_cnn import NonFiniteFeaturesError, SimpleCNN

DEFAULT_MODEL_PATH = "simple_cnn_model.npz"
VALIDATION_SIZE = 5000  # the last 5,000 training images, as in Keras' MNIST examples
EVAL_BATCH_SIZE = 512  # measured: 128 -> 32k, 256 -> 45k, 512 -> 50k, 1000 -> 50k images/s
# The settings that define a run: a resumed run takes them from the model file, and may not
# change them, or it would not reach what an uninterrupted run reaches.
RUN_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "batch_size": 128,
    "learning_rate": 0.004,
    "learning_rate_decay": 0.6,  # each epoch's learning rate is the previous one's times this
    "shift": 1,
    "dataset": "mnist",
    "limit": None,
}
DEFAULT_EPOCHS = 6
MAX_SHIFT = 4  # MNIST digits sit in a 20x20 box inside 28x28: 4 pixels of margin on each side


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run diverged."""


class ConfigError(ValueError):
    """Settings that cannot work together, such as a resumed run changing its batch size."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; ``message`` says what was saved and how to resume."""


@dataclass
class TrainConfig:
    """What one run of the training program does; ``parse_args`` builds it from the command line.

    ``None`` means "the default, or the resumed model file's value" for the run-defining settings
    (seed, batch size, learning rate and its decay, dataset, limit) and for epochs;
    :func:`settle_config` fills them in.
    """

    epochs: int | None = None  # None: the default, or the resumed run's planned total
    batch_size: int | None = None
    learning_rate: float | None = None
    learning_rate_decay: float | None = None
    seed: int | None = None
    shift: int | None = None
    dataset: str | None = None
    limit: int | None = None
    impl: str = "fast"
    data_dir: str | None = None
    save_path: str | None = None  # None: simple_cnn_model.npz, or the --resume file
    no_save: bool = False
    resume_path: str | None = None
    history_path: str | None = None
    verbose: bool = True


@dataclass
class Dataset:
    """uint8 images (N, 28, 28) and int32 labels (N,) of the three splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class EpochSums:
    """Running totals of one epoch's training batches (weighted by batch size, as Keras does)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def add(self, loss: float, correct: int, count: int) -> None:
        self.loss_sum += loss * count
        self.correct += correct
        self.seen += count

    def means(self) -> list[tuple[str, float]]:
        return [("loss", self.loss_sum / self.seen), ("accuracy", self.correct / self.seen)]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, which must be a finite number greater than 0."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {noun} greater than 0, got {text}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _shift_pixels(text: str) -> int:
    value = _non_negative_int(text)
    if value > MAX_SHIFT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SHIFT} pixels, got {text}")
    return value


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _writable_path(text: str) -> str:
    # Checked now, so a typo fails at once instead of after a minute of training.
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"folder {directory} does not exist for {text}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python simple_cnn_from_scratch.py``."""
    d = RUN_DEFAULTS
    parser = argparse.ArgumentParser(
        description="Train SimpleCNN (NumPy convolutions + a Keras dense head) end to end on "
        "MNIST, save the model after every epoch, and print the test accuracy.",
        epilog="Ctrl-C saves the model and exits; continue with --resume. "
        "Classify your own picture with: python predict_digit.py IMAGE",
    )
    parser.add_argument(
        "--epochs",
        type=_positive(int),
        help=f"total number of epochs, counting those a resumed model has done (default "
        f"{DEFAULT_EPOCHS}, or the resumed run's)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive(int),
        help=f"images per training step (default {d['batch_size']})",
    )
    parser.add_argument(
        "--learning-rate",
        type=_positive(float),
        help=f"first-epoch learning rate of both Adam optimizers, filters and head; it is "
        f"multiplied by {d['learning_rate_decay']} after every epoch "
        f"(default {d['learning_rate']})",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        help=f"seed for the initial weights and the shuffling: the same seed gives the same "
        f"numbers (default {d['seed']})",
    )
    parser.add_argument(
        "--shift",
        type=_shift_pixels,
        metavar="PIXELS",
        help=f"data augmentation: move each training image by up to this many pixels in each "
        f"direction, a new random shift every epoch; 0 turns it off (default {d['shift']})",
    )
    parser.add_argument(
        "--data-dir",
        help="folder of the dataset's .npy files, built from the shipped archives when missing "
        "(default mnist_data/ or fashion_mnist_data/ beside this program)",
    )
    parser.add_argument(
        "--dataset",
        choices=["mnist", "fashion"],
        help=f"handwritten digits or Fashion-MNIST clothes (default {d['dataset']})",
    )
    parser.add_argument(
        "--impl",
        choices=["fast", "loops"],
        default="fast",
        help="SimpleCNN layers: vectorised NumPy, or the readable nested loops (very slow; use "
        "with --limit) (default fast)",
    )
    parser.add_argument(
        "--limit",
        type=_positive(int),
        metavar="N",
        help="quick try: train on the first N training images, and validate and test on at most "
        "N images (default: all 55,000 / 5,000 / 10,000)",
    )
    parser.add_argument(
        "--history",
        type=_writable_path,
        metavar="FILE",
        help="write the per-epoch loss/accuracy (like Keras' History) and the test result to this "
        "JSON file, updated after every epoch",
    )
    saving = parser.add_mutually_exclusive_group()
    saving.add_argument(
        "--save",
        type=_writable_path,
        metavar="PATH",
        help=f"model file written after every epoch (default {DEFAULT_MODEL_PATH}, or the "
        "--resume file when resuming)",
    )
    saving.add_argument("--no-save", action="store_true", help="do not write a model file")
    parser.add_argument(
        "--resume",
        type=_existing_file,
        metavar="PATH",
        help="continue training from this model file (after Ctrl-C, or to more --epochs); seed, "
        "batch size, learning rate, dataset and limit come from the file",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the final 'Test accuracy' line"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None) into a TrainConfig.

    Bad values exit through argparse's usual one-line error (status 2).
    """
    args = build_parser().parse_args(argv)
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        shift=args.shift,
        dataset=args.dataset,
        limit=args.limit,
        impl=args.impl,
        data_dir=args.data_dir,
        save_path=args.save,
        no_save=args.no_save,
        resume_path=args.resume,
        history_path=args.history,
        verbose=not args.quiet,
    )


def settle_config(config: TrainConfig, saved: dict[str, Any] | None = None) -> TrainConfig:
    """Fill in the run-defining settings: from the resumed file's ``saved`` config, else defaults.

    ``epochs`` may change on resume (it is the total to reach); the others may not.

    Raises
    ------
    ConfigError
        A setting given for a resumed run differs from the one the model file was trained with.
    """
    settled = {}
    for name, default in RUN_DEFAULTS.items():
        given = getattr(config, name)
        if saved is None:
            settled[name] = default if given is None else given
            continue
        if given is not None and given != saved.get(name):
            option = "--" + name.replace("_", "-")
            raise ConfigError(
                f"{option} {given} differs from the {saved.get(name)} that {config.resume_path} "
                f"was trained with; resuming keeps a run's settings (leave out {option}), "
                "or start a new run without --resume"
            )
        settled[name] = saved.get(name, default)
    saved_epochs = DEFAULT_EPOCHS if saved is None else saved.get("epochs", DEFAULT_EPOCHS)
    settled["epochs"] = config.epochs or saved_epochs
    save_path = config.save_path or config.resume_path or DEFAULT_MODEL_PATH
    return replace(config, save_path=None if config.no_save else save_path, **settled)


def run_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings stored in the model file: the run-defining ones plus epochs and impl."""
    return {name: getattr(config, name) for name in (*RUN_DEFAULTS, "epochs", "impl")}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def load_data(config: TrainConfig) -> Dataset:
    """Training images minus the last 5,000 (validation), and the test set; ``limit`` trims."""
    x_train, y_train, x_test, y_test = load_dataset(config.data_dir, config.dataset)
    y_train = y_train.astype(np.int32)  # the head's loss takes int32 class indices
    y_test = y_test.astype(np.int32)
    split = len(x_train) - VALIDATION_SIZE
    n_train = split if config.limit is None else min(config.limit, split)
    n_val = VALIDATION_SIZE if config.limit is None else min(config.limit, VALIDATION_SIZE)
    n_test = len(x_test) if config.limit is None else min(config.limit, len(x_test))
    return Dataset(
        x_train=x_train[:n_train],
        y_train=y_train[:n_train],
        x_val=x_train[split : split + n_val],
        y_val=y_train[split : split + n_val],
        x_test=x_test[:n_test],
        y_test=y_test[:n_test],
    )


def epoch_plan(seed: int, epoch: int, count: int, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ``epoch``'s shuffled image order (count,) and per-image shifts (count, 2) in pixels.

    A pure function of its arguments, so a resumed run needs no random-generator state to draw
    exactly the batches an uninterrupted run draws.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(count)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(count, 2))
    return order, shifts


def shift_images(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move each image (N, 28, 28) by its (rows, columns) in ``shifts`` (N, 2), filling with 0.

    Data augmentation: a digit moved by a pixel or two is the same digit, and seeing it so keeps
    the small network from memorising exact pixel positions.
    """
    margin = int(np.abs(shifts).max(initial=0))
    if margin == 0:
        return images
    count, height, width = images.shape
    padded = np.zeros((count, height + 2 * margin, width + 2 * margin), dtype=images.dtype)
    padded[:, margin : margin + height, margin : margin + width] = images  # np.pad, 3x faster
    # Every 28x28 crop of the padded image, as a view (N, 2m+1, 2m+1, 28, 28); a shift by (dy, dx)
    # is the crop that starts at (m - dy, m - dx). Picking one crop per image copies whole rows.
    crops = sliding_window_view(padded, images.shape[1:], axis=(1, 2))
    return crops[np.arange(len(images)), margin - shifts[:, 0], margin - shifts[:, 1]]


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def build_model(config: TrainConfig) -> TrainedModel:
    """A fresh SimpleCNN and head, both seeded, with an Adam optimizer each."""
    cnn = SimpleCNN(seed=config.seed, impl=config.impl)
    head = build_head(seed=config.seed)
    return TrainedModel(
        cnn=cnn,
        head=head,
        conv_optimizer=Adam(learning_rate=config.learning_rate),
        head_optimizer=build_head_optimizer(head, config.learning_rate),
        epoch=0,
        config=run_settings(config),
    )


def make_head_train_step(head: keras.Model, head_optimizer: keras.optimizers.Optimizer):
    """One compiled training step of the head that also returns the gradient for SimpleCNN.

    The returned function takes features (N, 400) float32 and labels (N,) int32, applies the
    head's optimizer, and returns (mean loss, number correct, d loss / d features (N, 400)).
    """
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # A fixed signature with a free batch size: one trace serves every batch, the last one too.
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, SimpleCNN.NUM_FEATURES], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def head_train_step(features, labels):
        with tf.GradientTape() as tape:
            tape.watch(features)  # features are an input, not a variable: ask for their gradient
            logits = head(features, training=True)
            loss = loss_function(labels, logits)
        *head_gradients, d_features = tape.gradient(loss, [*head.trainable_variables, features])
        head_optimizer.apply_gradients(zip(head_gradients, head.trainable_variables, strict=True))
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(predicted == labels, tf.int32))
        return loss, correct, d_features

    # Calling the traced graph directly skips re-checking the arguments against the signature
    # on every call (about 0.4 ms a step, a tenth of the head's time).
    return head_train_step.get_concrete_function()


def learning_rate_for(config: TrainConfig, epoch: int) -> float:
    """Epoch ``epoch``'s (1-based) learning rate: exponential decay, the same for both parts."""
    return config.learning_rate * config.learning_rate_decay ** (epoch - 1)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig, on_step: Callable[[TrainedModel, int, int], None] | None = None
) -> dict[str, Any]:
    """Train (or resume) as ``config`` says, evaluate on the test set, and return the history.

    Parameters
    ----------
    config : TrainConfig
    on_step : callable, optional
        Called as ``on_step(model, epoch, step)`` after every training step (tests use it to
        interrupt a run or spoil its weights).

    Returns
    -------
    dict
        ``{"epochs": [{"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}, ...],
        "test_loss": float, "test_accuracy": float}``

    Raises
    ------
    TrainingInterrupted
        Ctrl-C (SIGINT) arrived; the exact state was saved first (unless --no-save).
    NonFiniteLossError
        The loss became NaN or infinite; the model file keeps the last good epoch.
    DatasetError, ModelFileError, ConfigError
        Bad data, a bad model file to resume, or settings that contradict it.
    """
    say = print if config.verbose else _silent
    if config.resume_path:
        model = load_model(config.resume_path, impl=config.impl)
        config = settle_config(config, model.config)
        model.config = run_settings(config)
        started_epochs = model.epoch + (1 if model.step else 0)
        if config.epochs < started_epochs:
            raise ConfigError(
                f"{config.resume_path} has already started {started_epochs} epochs; --epochs "
                "is the total to reach, so give at least that"
            )
    else:
        config = settle_config(config)
        model = build_model(config)
    data = load_data(config)
    say(describe_run(config, data, model))

    head_train_step = make_head_train_step(model.head, model.head_optimizer)
    with stop_requests_on_ctrl_c() as ctrl_c:
        while model.epoch < config.epochs:
            record = train_one_epoch(model, data, config, head_train_step, ctrl_c, on_step)
            model.history.append(record)
            model.epoch, model.step, model.partial_epoch = record["epoch"], 0, {}
            if config.save_path:
                save_model_state(config.save_path, model)
            write_history(config.history_path, model.history)
            if ctrl_c.is_set() and model.epoch < config.epochs:
                raise TrainingInterrupted(interrupted_message(config, model))

    test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
    write_history(config.history_path, model.history, test_loss, test_accuracy)
    if config.save_path:
        say(f"Model saved to {config.save_path}")
    say(f"Test loss: {test_loss:.4f}")
    return {"epochs": model.history, "test_loss": test_loss, "test_accuracy": test_accuracy}


def train_one_epoch(
    model: TrainedModel,
    data: Dataset,
    config: TrainConfig,
    head_train_step,
    ctrl_c: threading.Event,
    on_step: Callable[[TrainedModel, int, int], None] | None,
) -> dict[str, Any]:
    """Train epoch ``model.epoch + 1`` from step ``model.step`` on; return its history record."""
    epoch = model.epoch + 1
    learning_rate = learning_rate_for(config, epoch)
    model.conv_optimizer.learning_rate = learning_rate
    model.head_optimizer.learning_rate.assign(learning_rate)

    order, shifts = epoch_plan(config.seed, epoch, len(data.x_train), config.shift)
    steps = math.ceil(len(order) / config.batch_size)
    sums = EpochSums(**model.partial_epoch)  # non-empty when resuming mid-epoch
    progbar = keras.utils.Progbar(
        steps, verbose=_progbar_verbosity(config), stateful_metrics=["loss", "accuracy"]
    )
    if config.verbose:
        print(f"Epoch {epoch}/{config.epochs} (learning rate {learning_rate:.3g})")
    if model.step:
        progbar.update(model.step, sums.means(), finalize=False)

    cnn = model.cnn
    started = time.perf_counter() - sums.seconds
    for step in range(model.step, steps):
        if ctrl_c.is_set():
            sums.seconds = time.perf_counter() - started
            model.step, model.partial_epoch = step, asdict(sums)
            if config.save_path:
                save_model_state(config.save_path, model)
            _end_progress_line(progbar)
            raise TrainingInterrupted(interrupted_message(config, model))
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        images = shift_images(data.x_train[batch], shifts[batch])
        try:
            features = cnn.forward(images_to_input(images))
        except NonFiniteFeaturesError:
            _end_progress_line(progbar)
            raise NonFiniteLossError(
                diverged_message(config, model, epoch, step + 1, math.nan)
            ) from None
        loss, correct, d_features = head_train_step(features, data.y_train[batch])
        loss, d_features = float(loss), d_features.numpy()
        # A NaN or inf would spread into every weight: stop before any update or save uses it.
        if not _all_finite(loss, d_features):
            _end_progress_line(progbar)
            raise NonFiniteLossError(diverged_message(config, model, epoch, step + 1, loss))
        filter_gradients = cnn.backward(d_features, learning_rate=0)
        if not _all_finite(*filter_gradients):
            _end_progress_line(progbar)
            raise NonFiniteLossError(diverged_message(config, model, epoch, step + 1, loss))
        model.conv_optimizer.step([cnn.conv1_filters, cnn.conv2_filters], list(filter_gradients))
        sums.add(loss, int(correct), len(batch))
        progbar.update(step + 1, sums.means(), finalize=False)
        if on_step is not None:
            on_step(model, epoch, step + 1)
    seconds = time.perf_counter() - started

    val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
    if not math.isfinite(val_loss):
        # The last step can leave NaN weights behind a finite loss: never save those.
        raise NonFiniteLossError(diverged_message(config, model, epoch, steps, val_loss))
    record = {
        "epoch": epoch,
        "seconds": seconds,
        "loss": sums.loss_sum / sums.seen,
        "accuracy": sums.correct / sums.seen,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }
    progbar.update(steps, [*sums.means(), ("val_loss", val_loss), ("val_accuracy", val_accuracy)])
    return record


def evaluate(model: TrainedModel, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model on uint8 images (N, 28, 28), labels (N,)."""
    logits = predict_logits(model.cnn, model.head, images, EVAL_BATCH_SIZE).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probabilities[np.arange(len(labels)), labels].mean()
    accuracy = (logits.argmax(axis=1) == labels).mean()
    return float(loss), float(accuracy)


@contextmanager
def stop_requests_on_ctrl_c() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a request that the loop honours between steps.

    Stopping between steps keeps the filters, the head and both optimizers consistent for the
    save; a second Ctrl-C interrupts at once, as usual.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested  # signal handlers can only be installed from the main thread
        return

    def request_stop(signum, frame):
        requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def save_model_state(path: str, model: TrainedModel) -> None:
    """Save everything in ``model`` (atomically) to ``path``."""
    save_model(
        path,
        cnn=model.cnn,
        head=model.head,
        conv_optimizer=model.conv_optimizer,
        head_optimizer=model.head_optimizer,
        epoch=model.epoch,
        config=model.config,
        history=model.history,
        step=model.step,
        partial_epoch=model.partial_epoch,
    )


def write_history(
    path: str | None,
    records: list[dict[str, Any]],
    test_loss: float | None = None,
    test_accuracy: float | None = None,
) -> None:
    """Write the history JSON atomically (nothing when ``path`` is None)."""
    if path is None:
        return
    history = {"epochs": records, "test_loss": test_loss, "test_accuracy": test_accuracy}
    text = json.dumps(history, indent=2) + "\n"
    replace_atomically(path, lambda file: file.write(text.encode()))


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def describe_run(config: TrainConfig, data: Dataset, model: TrainedModel) -> str:
    name = "Fashion-MNIST" if config.dataset == "fashion" else "MNIST"
    lines = [
        f"{name}: {len(data.x_train):,} training, {len(data.x_val):,} validation and "
        f"{len(data.x_test):,} test images",
        f"SimpleCNN ({config.impl}) + Dense(128, relu) + Dense(10); batch size "
        f"{config.batch_size}, Adam learning rate {config.learning_rate} x "
        f"{config.learning_rate_decay} per epoch, seed {config.seed}",
    ]
    if config.resume_path:
        lines.append(f"Resuming {config.resume_path} from {_position(model)}")
    return "\n".join(lines)


def _position(model: TrainedModel) -> str:
    if model.step:
        return f"epoch {model.epoch + 1}, step {model.step}"
    return f"the end of epoch {model.epoch}"


def interrupted_message(config: TrainConfig, model: TrainedModel) -> str:
    if not config.save_path:
        return f"Interrupted at {_position(model)}; nothing saved (--no-save)."
    command = f"python simple_cnn_from_scratch.py --resume {config.save_path}"
    if config.history_path:
        command += f" --history {config.history_path}"
    saved = f"Interrupted at {_position(model)}; saved to {config.save_path}."
    return f"{saved} Continue with:\n  {command}"


def diverged_message(
    config: TrainConfig, model: TrainedModel, epoch: int, step: int, loss: float
) -> str:
    # model.epoch and model.step change only when the file is written (or read, on resume).
    if config.save_path and (model.epoch or model.step):
        kept = f"{config.save_path} keeps {_position(model)}"
    else:
        kept = "this run has saved no model yet"
    if math.isfinite(loss):
        what = "the gradient of the loss became NaN or infinite"
    else:
        what = f"the training loss became {loss}"
    return (
        f"{what} at epoch {epoch}, step {step}: training diverged and stopped ({kept}); "
        f"try a smaller --learning-rate than {config.learning_rate}"
    )


def _progbar_verbosity(config: TrainConfig) -> int:
    # Keras' convention: a live bar on a terminal or in a notebook, one line per epoch in a log.
    if not config.verbose:
        return 0
    return 1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2


def _end_progress_line(progbar: keras.utils.Progbar) -> None:
    # A live bar leaves the cursor at the end of its line; a message must start on a new one.
    if progbar.verbose == 1:
        print()


def _all_finite(*values) -> bool:
    return all(np.isfinite(value).all() for value in values)


def _silent(*args, **kwargs) -> None:
    pass


# --------------------------------------------------------------------------------------------
# Program
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training program; returns the exit status (0 done, 130 interrupted)."""
    config = parse_args(argv)
    try:
        history = train(config)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except (DatasetError, ModelFileError, NonFiniteLossError, ConfigError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"Test accuracy: {history['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
