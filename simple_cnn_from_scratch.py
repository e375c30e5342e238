"""Train SimpleCNN end to end on MNIST: NumPy convolutions below, a small Keras dense head on top.

    python simple_cnn_from_scratch.py                            # LeNet-5, about 99.2% on MNIST
    python simple_cnn_from_scratch.py --epochs 1 --limit 5000    # a quick try
    python simple_cnn_from_scratch.py --filters 32,64 --kernel-size 3 --padding valid \\
        --hidden none --dropout 0.5                              # Keras' MNIST example network
    python simple_cnn_from_scratch.py --resume simple_cnn_model.npz --epochs 8
    python simple_cnn_from_scratch.py --help

It reads top to bottom: the data, the model, one training step (``train_step``, the heart of
it), the epoch loop built on it, and the program around them. Every step:

    images (N, 1, 28, 28) --SimpleCNN.forward (NumPy)--> features (N, F)
    features --Keras head--> logits --> mean cross-entropy; tf.GradientTape gives
        d loss / d head weights (Keras' Adam applies them) and d loss / d features (N, F)
    d loss / d features --SimpleCNN.backward (NumPy)--> d filters (a NumPy Adam applies them)

The model file (filters, head, both optimizers, the position reached) is written atomically
after every epoch and when the run is stopped (Ctrl-C, SIGTERM, SIGHUP, or its output piped to
a program that quit), so ``--resume`` continues exactly where it stopped. TensorFlow is imported
only when training starts: ``--help`` and a mistyped option answer at once. Importing this
module only defines things; ``main()`` runs it.
"""

from __future__ import annotations

import signal
import sys

# Ctrl-C, SIGTERM and (where there are terminals) SIGHUP stop a run, saving it first.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

if __name__ == "__main__":
    # A stop signal while the modules below load: stop quietly with the shell's status (130,
    # 143, 129) instead of a traceback. stop_requests() takes over once training starts.
    for _signal_number in STOP_SIGNALS:
        signal.signal(_signal_number, lambda number, frame: sys.exit(128 + number))

# ruff: noqa: E402  (the imports below come after that)
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from adam import Adam, NonFiniteUpdateError
from download_mnist import DatasetError, load_dataset
from inference import (
    Classifier,
    DenseHead,
    NonFiniteOutputError,
    check_outputs_are_finite,
    class_names,
    classifier_from_saved,
    images_to_input,
)
from plumbing.atomic_write import (
    FileWriteError,
    check_writable,
    check_writable_folder,
    same_file,
)
from simple_cnn import NonFiniteFeaturesError, NonFiniteGradientsError, SimpleCNN
from training import settings
from training.history import is_history_file, write_history
from training.model_file import ADAM_SETTINGS, ModelFileError, SavedModel, load_model, save_model
from training.settings import ConfigError, TrainConfig, parse_args  # noqa: F401  (part of the API)

VALIDATION_SIZE = 5000  # the last 5,000 training images, as in Keras' MNIST examples
NUM_CLASSES = settings.NUM_CLASSES


class NonFiniteLossError(RuntimeError):
    """The training loss or a gradient became NaN or infinite: the run diverged."""


class TrainingInterrupted(Exception):
    """A stop signal ended training; the message says what was saved and how to resume."""

    def __init__(self, message: str, signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.exit_status = 128 + signal_number  # the shell's convention: 130 for Ctrl-C


# --------------------------------------------------------------------------------------------
# 1. The data
# --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """uint8 images (N, 28, 28) and int32 labels (N,) of the three splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(config: TrainConfig) -> Dataset:
    """Training images minus the last 5,000 (validation), and the test set; ``limit`` trims."""
    x_train, y_train, x_test, y_test = load_dataset(config.data_dir, config.dataset)
    if len(x_train) <= VALIDATION_SIZE:
        raise DatasetError(
            f"the dataset has {len(x_train)} training images, but {VALIDATION_SIZE} are set "
            "aside for validation and some must be left to train on; rebuild it with: "
            "python download_mnist.py --force"
        )
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
    padded[:, margin : margin + height, margin : margin + width] = images  # faster than np.pad
    # Every 28x28 crop of the padded image, as a view (N, 2m+1, 2m+1, 28, 28); a shift by (dy, dx)
    # is the crop that starts at (m - dy, m - dx). Picking one crop per image copies whole rows.
    crops = sliding_window_view(padded, images.shape[1:], axis=(1, 2))
    return crops[np.arange(len(images)), margin - shifts[:, 0], margin - shifts[:, 1]]


def steps_per_epoch(data: Dataset, config: TrainConfig) -> int:
    return math.ceil(len(data.x_train) / config.batch_size)


# --------------------------------------------------------------------------------------------
# 2. The model: SimpleCNN, the Keras head, an optimizer for each, and where training stands
# --------------------------------------------------------------------------------------------


@dataclass
class Model:
    """Everything that trains, and the position reached.

    ``step > 0`` means ``step`` batches of epoch ``epoch + 1`` are done; ``partial_epoch`` then
    holds that epoch's running sums, so a resumed run finishes it exactly.
    """

    cnn: SimpleCNN
    head: Any  # keras.Sequential
    head_step: Callable  # keras_head.make_head_train_step(head, head_optimizer)
    conv_optimizer: Adam
    head_optimizer: Any  # keras.optimizers.Adam
    config: TrainConfig
    epoch: int = 0
    step: int = 0
    partial_epoch: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_step: StepResult | None = None  # the latest step's loss and gradients, for watchers
    steps_per_epoch: int = 0  # of the data being trained on, once training starts


def build_model(config: TrainConfig, saved: SavedModel | None = None) -> Model:
    """A fresh model seeded by ``config.seed``, or the one ``saved`` in a model file."""
    from training import keras_head  # TensorFlow: seconds to import, so only once training starts

    cnn = SimpleCNN(
        num_filters=config.num_filters,
        kernel_sizes=settings.one_for_all(config.kernel_sizes),
        paddings=settings.one_for_all(config.paddings),
        input_shape=settings.INPUT_SHAPE,
        seed=config.seed,
        impl=config.impl,
    )
    head = keras_head.build_head(
        cnn.num_features, config.hidden, config.dropout, NUM_CLASSES, seed=config.seed
    )
    head_optimizer = keras_head.build_head_optimizer(head, config.learning_rate)
    model = Model(
        cnn=cnn,
        head=head,
        head_step=keras_head.make_head_train_step(head, head_optimizer),
        conv_optimizer=Adam(learning_rate=config.learning_rate),
        head_optimizer=head_optimizer,
        config=config,
    )
    if saved is not None:
        restore(model, saved)
    return model


def restore(model: Model, saved: SavedModel) -> None:
    """Put a model file's weights, optimizer states and position into ``model``."""
    from training import keras_head

    for index, filters in enumerate(saved.conv_filters):
        model.cnn.set_filters(index, filters)
    keras_head.set_head_weights(model.head, saved.head_weights)
    try:
        keras_head.set_variables_state(
            model.head.non_trainable_variables, saved.head_state, "head state"
        )
        keras_head.set_variables_state(
            model.head_optimizer.variables, saved.head_optimizer_state, "head optimizer state"
        )
    except ValueError as error:
        raise ModelFileError(f"{model.config.resume_path}: damaged model file: {error}") from None
    model.conv_optimizer = Adam(**saved.conv_optimizer_settings)
    model.conv_optimizer.load_state_dict(saved.conv_optimizer_state)
    model.epoch, model.step = saved.epoch, saved.step
    model.partial_epoch, model.history = dict(saved.partial_epoch), list(saved.history)


def to_saved(model: Model) -> SavedModel:
    """Everything in ``model`` as arrays, for the model file."""
    from training import keras_head

    architecture = {
        **model.cnn.architecture,
        "hidden": list(model.config.hidden),
        "dropout": model.config.dropout,
        "num_classes": NUM_CLASSES,
    }
    conv_optimizer = model.conv_optimizer
    return SavedModel(
        architecture=architecture,
        conv_filters=list(model.cnn.filters),
        head_weights=keras_head.head_weights(model.head),
        head_state=keras_head.variables_state(model.head.non_trainable_variables),
        conv_optimizer_settings={
            name: float(getattr(conv_optimizer, name)) for name in ADAM_SETTINGS
        },
        conv_optimizer_state=conv_optimizer.state_dict(),
        head_optimizer_state=keras_head.variables_state(model.head_optimizer.variables),
        epoch=model.epoch,
        step=model.step,
        partial_epoch=model.partial_epoch,
        config=settings.run_settings(model.config),
        history=model.history,
    )


def classifier(model: Model) -> Classifier:
    """The model as it is now, for prediction: the NumPy head on the Keras head's weights."""
    from training import keras_head

    return Classifier(
        cnn=model.cnn,
        head=DenseHead(keras_head.head_weights(model.head)),
        class_names=class_names(model.config.dataset),
    )


# --------------------------------------------------------------------------------------------
# 3. One training step: the heart of the program
# --------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    loss: float
    correct: int
    conv_gradients: tuple[np.ndarray, ...]  # d loss / d each stage's filters
    head_gradients: list  # d loss / d each head weight, as TensorFlow tensors


def train_step(model: Model, images: np.ndarray, labels: np.ndarray) -> StepResult:
    """One step of gradient descent on a batch of uint8 images (N, 28, 28) and labels (N,)."""
    features = model.cnn.forward(images_to_input(images))  # NumPy conv stack: (N, F)
    # Keras: the head's forward pass, loss, gradients, and its Adam update, in one graph.
    loss, correct, d_features, head_gradients = model.head_step(features, labels)
    loss, d_features = float(loss), d_features.numpy()
    _require_finite(loss, d_features)  # a NaN would spread into every weight: stop first
    conv_gradients = model.cnn.backward(d_features, learning_rate=0)  # NumPy backward pass
    model.conv_optimizer.step(model.cnn.filters, list(conv_gradients))  # NumPy Adam
    return StepResult(loss, int(correct), conv_gradients, head_gradients)


class _NonFiniteStep(Exception):
    """A step met NaN or infinity; train_steps turns it into NonFiniteLossError with context."""


def _require_finite(*values) -> None:
    if not all(np.isfinite(value).all() for value in values):
        raise _NonFiniteStep


# --------------------------------------------------------------------------------------------
# 4. The epoch loop, built on train_step
# --------------------------------------------------------------------------------------------


@dataclass
class EpochSums:
    """Running totals of one epoch's training batches (weighted by batch size, as Keras does)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def add(self, result: StepResult, count: int) -> None:
        self.loss_sum += result.loss * count
        self.correct += result.correct
        self.seen += count

    def means(self) -> list[tuple[str, float]]:
        return [("loss", self.loss_sum / self.seen), ("accuracy", self.correct / self.seen)]


def learning_rate_for(config: TrainConfig, epoch: int) -> float:
    """Epoch ``epoch``'s (1-based) learning rate: exponential decay, the same for both parts."""
    return config.learning_rate * config.learning_rate_decay ** (epoch - 1)


def train_steps(
    model: Model,
    data: Dataset,
    stop: StopRequest,
    on_step: Callable[[Model, int, int], None] | None = None,
    max_steps: int | None = None,
    progress: Progress | None = None,
    tensorboard=None,
) -> EpochSums:
    """Train epoch ``model.epoch + 1`` from step ``model.step`` until it ends, ``stop`` is
    requested, or ``max_steps`` steps are done; ``model.step`` and ``model.partial_epoch``
    record where it got. Returns the epoch's running sums so far.
    """
    config = model.config
    epoch = model.epoch + 1
    learning_rate = learning_rate_for(config, epoch)
    model.conv_optimizer.learning_rate = learning_rate
    model.head_optimizer.learning_rate.assign(learning_rate)
    order, shifts = epoch_plan(config.seed, epoch, len(data.x_train), config.shift)
    last_step = steps_per_epoch(data, config)
    if max_steps is not None:
        last_step = min(last_step, model.step + max_steps)

    sums = EpochSums(**model.partial_epoch)  # non-empty when resuming mid-epoch
    started = time.perf_counter() - sums.seconds
    for step in range(model.step, last_step):
        if stop.is_set():
            break
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        try:
            result = train_step(
                model, shift_images(data.x_train[batch], shifts[batch]), data.y_train[batch]
            )
        except (
            _NonFiniteStep,
            NonFiniteFeaturesError,
            NonFiniteGradientsError,
            NonFiniteUpdateError,
        ):
            if progress:
                progress.end_line()
            raise NonFiniteLossError(diverged_message(model, epoch, step + 1)) from None
        sums.add(result, len(batch))
        sums.seconds = time.perf_counter() - started
        model.step, model.partial_epoch, model.last_step = step + 1, vars(sums).copy(), result
        if progress:
            progress.update(step + 1, sums.means())
        if tensorboard:
            tensorboard.step(model, result, sums)
        if on_step is not None:
            on_step(model, epoch, step + 1)
    model.partial_epoch = asdict(sums)
    return sums


def train_epoch(
    model: Model,
    data: Dataset,
    stop: StopRequest,
    on_step: Callable[[Model, int, int], None] | None = None,
    tensorboard=None,
) -> dict[str, Any] | None:
    """Train the next epoch (or the rest of it), validate, and return its history record; or
    None when ``stop`` was requested first (``model.step`` says where it stopped)."""
    config = model.config
    epoch = model.epoch + 1
    progress = Progress(config, epoch, steps_per_epoch(data, config))
    if model.step:
        progress.update(model.step, EpochSums(**model.partial_epoch).means())
    sums = train_steps(model, data, stop, on_step, progress=progress, tensorboard=tensorboard)
    if model.step < steps_per_epoch(data, config):
        progress.end_line()
        return None

    try:
        val_loss, val_accuracy = classifier(model).evaluate(data.x_val, data.y_val)
    except NonFiniteOutputError:
        # The last step can leave weights behind a finite loss that overflow: never save those.
        raise NonFiniteLossError(diverged_message(model, epoch, model.step)) from None
    record = {
        "epoch": epoch,
        "seconds": sums.seconds,
        "loss": sums.loss_sum / sums.seen,
        "accuracy": sums.correct / sums.seen,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }
    progress.update(
        model.step,
        [*sums.means(), ("val_loss", val_loss), ("val_accuracy", val_accuracy)],
        finalize=True,
    )
    model.history.append(record)
    model.epoch, model.step, model.partial_epoch = epoch, 0, {}
    return record


# --------------------------------------------------------------------------------------------
# 5. The whole run
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    on_step: Callable[[Model, int, int], None] | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train (or resume) as ``config`` says, evaluate on the test set, and return the history.

    Parameters
    ----------
    config : TrainConfig
    on_step : callable, optional
        Called as ``on_step(model, epoch, step)`` after every training step (the explorer
        watches training through it; tests use it to interrupt a run or spoil its weights).
        ``model.partial_epoch`` then holds the epoch's running sums, ``model.last_step`` the
        step's StepResult.
    stop : StopRequest, optional
        Set it to stop the run as Ctrl-C does (from another thread: a run in the background).
        Without it, Ctrl-C, SIGTERM, SIGHUP and SIGPIPE set one (in the main thread).

    Returns
    -------
    dict
        ``{"epochs": [{"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}, ...],
        "test_loss": float, "test_accuracy": float}``

    Raises
    ------
    TrainingInterrupted
        Ctrl-C, SIGTERM, SIGHUP or SIGPIPE arrived; the exact state was saved first (unless
        ``no_save``).
    NonFiniteLossError
        The loss became NaN or infinite; the model file keeps the last good epoch.
    DatasetError, ModelFileError, ConfigError, FileWriteError
        Bad data, a bad model file to resume, settings that contradict it, or an output that
        cannot be written: all found before training starts.
    """
    say = print if config.verbose else _silent
    with stop_requests(stop) as stop:
        config, saved = settle(replace(config))  # replace() checks every field again
        check_outputs(config)
        data = load_data(config)
        if saved is not None and saved.epoch == config.epochs:
            # The run is over: only the test set is left, and that needs no TensorFlow.
            finished = classifier_from_saved(saved, source=config.resume_path)
            say(describe_run(config, data, finished.cnn, saved.epoch, saved.step))
            if saves(config) and not same_file(config.save_path, config.resume_path):
                save_model(config.save_path, saved)
            history = saved.history
        else:
            model = build_model(config, saved)
            model.steps_per_epoch = steps_per_epoch(data, config)
            check_position(model, data)
            tensorboard = open_tensorboard(config)
            say(describe_run(config, data, model.cnn, model.epoch, model.step))
            if stop.is_set():  # Ctrl-C during start-up: nothing trained, nothing to save
                raise TrainingInterrupted(
                    "Interrupted before training started.", stop.signal_number
                )

            try:
                while model.epoch < config.epochs:
                    record = train_epoch(model, data, stop, on_step, tensorboard)
                    save(model)
                    if record is not None:
                        write_history(config.history_path, model.history)
                        if tensorboard:
                            learning_rate = learning_rate_for(config, record["epoch"])
                            tensorboard.epoch(model, record, learning_rate)
                    if stop.is_set():
                        message = interrupted_message(config, model.epoch, model.step)
                        raise TrainingInterrupted(message, stop.signal_number)
            finally:
                if tensorboard:
                    tensorboard.close()  # however the run ends, its logs are complete
            finished, history = classifier(model), model.history

        test_loss, test_accuracy = finished.evaluate(data.x_test, data.y_test)
        if stop.is_set():  # Ctrl-C during the test set: the finished model is saved already
            message = interrupted_message(config, config.epochs, 0)
            raise TrainingInterrupted(message, stop.signal_number)
    write_history(config.history_path, history, test_loss, test_accuracy)
    if saves(config):
        say(f"Model saved to {config.save_path}")
    say(f"Test loss: {test_loss:.4f}")
    return {"epochs": history, "test_loss": test_loss, "test_accuracy": test_accuracy}


def settle(config: TrainConfig) -> tuple[TrainConfig, SavedModel | None]:
    """The run's settings: ``config`` itself, or for ``--resume`` the saved settings plus what
    ``config`` changed (checked: see settings.resumed_config), and the saved model."""
    if not config.resume_path:
        return config, None
    saved = load_model(config.resume_path)
    check_outputs_are_finite(saved, config.resume_path)
    resumed = settings.resumed_config(config, saved.config)
    started_epochs = saved.epoch + (1 if saved.step else 0)
    if resumed.epochs < started_epochs:
        raise ConfigError(
            f"{config.resume_path} has already started {started_epochs} epochs; --epochs is "
            "the total to reach, so give at least that"
        )
    return resumed, saved


def check_outputs(config: TrainConfig) -> None:
    """Refuse, before any work, outputs that would destroy a file or could not be written."""
    outputs = {}
    if not config.no_save:
        outputs["--save"] = config.save_path
    if config.history_path:
        outputs["--history"] = config.history_path
    if config.tensorboard_dir:
        outputs["--tensorboard"] = config.tensorboard_dir
    names = list(outputs)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if same_file(outputs[first], outputs[second]):
                raise ConfigError(
                    f"{first} and {second} are the same path, {outputs[first]}: one would "
                    "overwrite the other; give them different paths"
                )
    if config.resume_path:
        for option in ("--history", "--tensorboard"):
            if option in outputs and same_file(outputs[option], config.resume_path):
                raise ConfigError(
                    f"{option} {outputs[option]} is the model file being resumed; it would be "
                    "overwritten: give another path"
                )
    if "--save" in outputs:
        check_writable(config.save_path, "model file")
        _refuse_to_overwrite_a_stranger(config.save_path, "model file", _is_model_file)
    if "--history" in outputs:
        check_writable(config.history_path, "history file")
        _refuse_to_overwrite_a_stranger(config.history_path, "history file", is_history_file)
    if "--tensorboard" in outputs:
        if os.path.exists(config.tensorboard_dir) and not os.path.isdir(config.tensorboard_dir):
            raise FileWriteError(
                f"--tensorboard {config.tensorboard_dir} is a file; give a folder for the logs"
            )
        check_writable_folder(config.tensorboard_dir, "TensorBoard logs")


def _refuse_to_overwrite_a_stranger(path: str, what: str, is_ours: Callable[[str], bool]):
    """An existing file that this program did not write is the user's: never overwrite it."""
    if os.path.exists(path) and not is_ours(path):
        raise FileWriteError(
            f"{path} exists and is not a {what} written by this program; refusing to overwrite "
            "it: choose another path, or move it away first"
        )


def _is_model_file(path: str) -> bool:
    try:
        load_model(path)
    except ModelFileError:
        return False
    return True


def check_position(model: Model, data: Dataset) -> None:
    """A resumed model's step must lie inside an epoch of this data and batch size."""
    steps = steps_per_epoch(data, model.config)
    if model.step >= steps:
        raise ModelFileError(
            f"{model.config.resume_path}: damaged model file: it was saved at step "
            f"{model.step} of epoch {model.epoch + 1}, but an epoch has only {steps} steps"
        )


def saves(config: TrainConfig) -> bool:
    """Whether the run writes a model file."""
    return bool(config.save_path) and not config.no_save


def save(model: Model) -> None:
    """Write the model file (atomically), unless the run saves nothing.

    Never a model holding NaN or infinity (in a weight or an optimizer's state), which
    load_model refuses: the file keeps what it held, and NonFiniteLossError says so.
    """
    if not saves(model.config):
        return
    saved = to_saved(model)
    arrays = [
        *saved.conv_filters,
        *(weight for pair in saved.head_weights for weight in pair),
        *saved.head_state,
        *saved.conv_optimizer_state.values(),
        *saved.head_optimizer_state,
    ]
    if not all(np.isfinite(array).all() for array in arrays):
        path = model.config.save_path
        kept = f"{path} was left as it was" if os.path.exists(path) else "nothing was saved"
        raise NonFiniteLossError(
            f"the model's weights or its optimizers' state became NaN or infinite by "
            f"{_position(model.epoch, model.step)}: training diverged and stopped ({kept}); "
            f"{_smaller_learning_rate(model.config)}"
        )
    save_model(model.config.save_path, saved)


def open_tensorboard(config: TrainConfig):
    """A TensorBoardLog writing into ``config.tensorboard_dir``, or None."""
    if not config.tensorboard_dir:
        return None
    from training.tensorboard_log import TensorBoardLog

    return TensorBoardLog(config.tensorboard_dir, config.tensorboard_every)


# --------------------------------------------------------------------------------------------
# 6. Stopping: Ctrl-C, SIGTERM, SIGHUP and a closed output become a request honoured between
#    steps
# --------------------------------------------------------------------------------------------

# The reader of the program's output went away (``| head`` had its lines, ``| less`` was quit):
# the run stops and saves, as after Ctrl-C, where there are pipes.
OUTPUT_CLOSED = getattr(signal, "SIGPIPE", None)


class StopNow(KeyboardInterrupt):
    """A second stop signal: stop at once, without saving; ``exit_status`` is the shell's."""

    def __init__(self, signal_number: int):
        super().__init__()
        self.exit_status = 128 + signal_number


class StopRequest(threading.Event):
    """Set by the first Ctrl-C, SIGTERM, SIGHUP or SIGPIPE; ``signal_number`` says which."""

    signal_number: int = signal.SIGINT


@contextmanager
def stop_requests(request: StopRequest | None = None) -> Iterator[StopRequest]:
    """Turn the first Ctrl-C (SIGINT), SIGTERM or SIGHUP into a request that the loop honours
    between steps, where the filters, the head and both optimizers are consistent for the save.

    SIGTERM is what a scheduler, ``timeout`` or ``docker stop`` sends, SIGHUP what a closed
    terminal or a dropped ssh connection sends, SIGPIPE what writing to a pipe nobody reads
    any more raises: all are treated like Ctrl-C. A second signal interrupts at once, as usual
    (but never SIGPIPE, which only says the output is gone). A ``request`` given by the caller
    is used as it is, and no handler is installed: its owner sets it.
    """
    if request is not None:
        yield request
        return
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return

    def request_stop(signal_number, frame):
        if signal_number == OUTPUT_CLOSED:
            discard_output(sys.__stdout__)  # the rest of the output has no reader
            if request.is_set():
                return  # a reason to stop, never a reason to stop without saving
        elif request.is_set():
            raise StopNow(signal_number)  # the second time: stop now
        if signal_number == getattr(signal, "SIGHUP", None):
            # The terminal is gone: a progress line written to it would fail before the save.
            discard_output(sys.__stdout__)
            discard_output(sys.__stderr__)
        request.signal_number = signal_number
        request.set()

    signals = [*STOP_SIGNALS, *([OUTPUT_CLOSED] if OUTPUT_CLOSED else [])]
    previous = {sig: signal.signal(sig, request_stop) for sig in signals}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def discard_output(stream) -> None:
    """Send what is written to ``stream``'s file from now on nowhere (its reader is gone)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


class OutputThatMayClose:
    """sys.stdout while the program runs: when the pipe it writes to loses its reader, writing
    raises BrokenPipeError; here the rest of the output is discarded instead, and the run goes
    on to its save (SIGPIPE has asked it to stop: see stop_requests)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            discard_output(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            discard_output(self._stream)
            self._stream.flush()  # what was buffered goes nowhere too

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # isatty, fileno, encoding...


# --------------------------------------------------------------------------------------------
# 7. What the user sees
# --------------------------------------------------------------------------------------------


class Progress:
    """Keras' progress bar: live on a terminal or in a notebook, one line per epoch in a log."""

    def __init__(self, config: TrainConfig, epoch: int, steps: int):
        import keras

        if not config.verbose:
            verbosity = 0
        else:
            verbosity = 1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2
            learning_rate = learning_rate_for(config, epoch)
            print(f"Epoch {epoch}/{config.epochs} (learning rate {learning_rate:.3g})")
        self.bar = keras.utils.Progbar(
            steps, verbose=verbosity, stateful_metrics=["loss", "accuracy"]
        )

    def update(self, step: int, values: list, finalize: bool = False) -> None:
        self.bar.update(step, values, finalize=finalize)

    def end_line(self) -> None:
        # A live bar leaves the cursor at the end of its line; a message must start on a new one.
        if self.bar.verbose == 1:
            print()


def describe_run(config: TrainConfig, data: Dataset, cnn: SimpleCNN, epoch: int, step: int) -> str:
    """What the run trains on, its network and settings, and where a resumed run starts."""
    name = "Fashion-MNIST" if config.dataset == "fashion" else "MNIST"
    stages = " -> ".join(
        f"conv {stage.out_channels}x{stage.kernel_size}x{stage.kernel_size}"
        + (f" pad {stage.padding}" if stage.padding else "")
        for stage in cnn.stages
    )
    head = "".join(f"Dense({units}, relu) + " for units in config.hidden)
    dropout = f"Dropout({config.dropout}) + " if config.dropout else ""
    lines = [
        f"{name}: {len(data.x_train):,} training, {len(data.x_val):,} validation and "
        f"{len(data.x_test):,} test images",
        f"SimpleCNN ({config.impl}): {stages} -> {cnn.num_features} features; "
        f"{head}{dropout}Dense({NUM_CLASSES})",
        f"Batch size {config.batch_size}, Adam learning rate {config.learning_rate} x "
        f"{config.learning_rate_decay} per epoch, seed {config.seed}",
    ]
    if config.resume_path:
        lines.append(f"Resuming {config.resume_path} from {_position(epoch, step)}")
    return "\n".join(lines)


def _position(epoch: int, step: int) -> str:
    if step:
        return f"epoch {epoch + 1}, step {step}"
    return f"the end of epoch {epoch}"


def interrupted_message(config: TrainConfig, epoch: int, step: int) -> str:
    """What a stopped run saved (at ``step`` of epoch ``epoch + 1``) and how to go on."""
    if not saves(config):
        return f"Interrupted at {_position(epoch, step)}; nothing saved (--no-save)."
    command = f"python simple_cnn_from_scratch.py --resume {config.save_path}"
    if config.history_path:
        command += f" --history {config.history_path}"
    if epoch == config.epochs:
        return (
            f"Interrupted after the last epoch, before the test set; {config.save_path} holds "
            f"the finished model. Evaluate it with:\n  {command}"
        )
    saved = f"Interrupted at {_position(epoch, step)}; saved to {config.save_path}."
    return f"{saved} Continue with:\n  {command}"


def diverged_message(model: Model, epoch: int, step: int) -> str:
    # model.epoch changes only when the file is written (or read, on resume).
    config = model.config
    if saves(config) and (model.epoch or config.resume_path):
        kept = f"{config.save_path} keeps {_position(model.epoch, 0)}"
    else:
        kept = "this run has saved no model yet"
    return (
        f"the training loss or its gradient became NaN or infinite at epoch {epoch}, step "
        f"{step}: training diverged and stopped ({kept}); {_smaller_learning_rate(config)}"
    )


def _smaller_learning_rate(config: TrainConfig) -> str:
    # Resuming keeps the run's learning rate: only a new run can take a smaller one.
    new_run = "start a new run (without --resume) with" if config.resume_path else "try"
    return f"{new_run} a smaller --learning-rate than {config.learning_rate}"


def _silent(*args, **kwargs) -> None:
    pass


# --------------------------------------------------------------------------------------------
# 8. The program
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training program; returns the exit status (0 done, 130 Ctrl-C, 143 SIGTERM,
    129 SIGHUP, 141 output closed)."""
    config = parse_args(argv)
    stdout, sys.stdout = sys.stdout, OutputThatMayClose(sys.stdout)
    try:
        return _run(config)
    finally:
        sys.stdout.flush()  # here, where a closed pipe is handled, not at the interpreter's exit
        sys.stdout = stdout


def _run(config: TrainConfig) -> int:
    try:
        history = train(config)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt as stop:  # StopNow: a second signal
        print("\nInterrupted.", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    except (DatasetError, ModelFileError, NonFiniteLossError, ConfigError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"Test accuracy: {history['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
