"""Train SimpleCNN end to end on MNIST: NumPy convolutions below, a small Keras dense head on top.

    python simple_cnn_from_scratch.py                            # LeNet-5 on MNIST, 6 epochs
    python simple_cnn_from_scratch.py --epochs 1 --limit 5000    # a quick try
    python simple_cnn_from_scratch.py --filters 32,64 --kernel-size 3 --padding valid \\
        --hidden none --dropout 0.5                              # Keras' MNIST example network
    python simple_cnn_from_scratch.py --resume simple_cnn_model.npz --epochs 8
    python simple_cnn_from_scratch.py --help

It reads top to bottom: the data, the model, one training step (``train_step``, the heart of
it), the epoch loop built on it, and the whole run. Every step:

    images (N, 1, 28, 28) --SimpleCNN.forward (NumPy)--> features (N, F)
    features --Keras head--> logits --> mean cross-entropy; tf.GradientTape gives
        d loss / d head weights (Keras' Adam applies them) and d loss / d features (N, F)
    d loss / d features --SimpleCNN.backward (NumPy)--> d filters (a NumPy Adam applies them)

The settings are ``training/settings.py``'s TrainConfig. The model file (filters, head, both
optimizers, the position reached) is written atomically after every epoch and when the run is
stopped (Ctrl-C, SIGTERM, SIGHUP, or its output piped to a program that quit: see
``training/stopping.py``), so ``--resume`` continues exactly where it stopped. TensorFlow is
imported only when training starts: ``--help`` and a mistyped option answer at once. Importing
this module only defines things; ``main()`` runs it.
"""

from __future__ import annotations

if __name__ == "__main__":
    # A stop signal while the modules below load ends the program quietly (status 130, 143 or
    # 129); stop_requests() takes over once training starts.
    from training.stopping import exit_quietly_on_stop_signals

    exit_quietly_on_stop_signals()

# ruff: noqa: E402  (the imports below come after that)
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
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
from plumbing.atomic_write import FileWriteError, same_file  # noqa: F401  (FileWriteError: API)
from plumbing.checks import one_line, printable
from simple_cnn import NonFiniteFeaturesError, NonFiniteGradientsError, SimpleCNN
from training import settings
from training.augmentation import augment
from training.history import write_history
from training.memory_use import check_training_fits, out_of_memory_message
from training.messages import (
    describe_run,
    diverged_message,
    interrupted_message,
    not_finite_model_message,
    what_next,
)
from training.model_file import ADAM_SETTINGS, ModelFileError, SavedModel, load_model, save_model
from training.options import parse_args
from training.output_files import check_outputs
from training.settings import ConfigError, TrainConfig
from training.stopping import (
    StopRequest,
    TrainingInterrupted,
    output_that_may_close,
    stop_requests,
)

VALIDATION_SIZE = 5000  # the last 5,000 training images, as in Keras' MNIST examples
NUM_CLASSES = settings.NUM_CLASSES


class NonFiniteLossError(RuntimeError):
    """The training loss or a gradient became NaN or infinite: the run diverged."""


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
class TrainingState:
    """Everything that trains (the network, the head, their optimizers), and the position reached.

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


def build_model(config: TrainConfig, saved: SavedModel | None = None) -> TrainingState:
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
    model = TrainingState(
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


def restore(model: TrainingState, saved: SavedModel) -> None:
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


def to_saved(model: TrainingState) -> SavedModel:
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


def classifier(model: TrainingState) -> Classifier:
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


def train_step(model: TrainingState, images: np.ndarray, labels: np.ndarray) -> StepResult:
    """One step of gradient descent on a batch of uint8 images (N, 28, 28) and labels (N,).

    A loss, gradient or update that is NaN or infinite stops the step before it reaches a
    filter: NonFiniteLossError here, the network's and Adam's own errors (DIVERGED) in them.
    """
    features = model.cnn.forward(images_to_input(images))  # NumPy conv stack: (N, F)
    # Keras: the head's forward pass, loss, gradients, and its Adam update, in one graph.
    loss, correct, d_features, head_gradients = model.head_step(features, labels)
    loss = float(loss)
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"the loss is {loss}")
    conv_gradients = model.cnn.backward(d_features.numpy(), learning_rate=0)  # NumPy backward
    model.conv_optimizer.step(model.cnn.filters, list(conv_gradients))  # NumPy Adam
    return StepResult(loss, int(correct), conv_gradients, head_gradients)


# What a step raises when its loss, a gradient or an update is NaN or infinite: it diverged.
DIVERGED = (
    NonFiniteLossError,
    NonFiniteFeaturesError,
    NonFiniteGradientsError,
    NonFiniteUpdateError,
)


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
    model: TrainingState,
    data: Dataset,
    stop: StopRequest,
    on_step: Callable[[TrainingState, int, int], None] | None = None,
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
    augmentation = config.augmentation()
    last_step = steps_per_epoch(data, config)
    if max_steps is not None:
        last_step = min(last_step, model.step + max_steps)

    sums = EpochSums(**model.partial_epoch)  # non-empty when resuming mid-epoch
    started = time.perf_counter() - sums.seconds
    for step in range(model.step, last_step):
        if stop.is_set():
            break
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        images = shift_images(data.x_train[batch], shifts[batch])
        # Seeded by the step itself, so a resumed run distorts each batch as it would have been.
        images = augment(images, augmentation, np.random.default_rng([config.seed, epoch, step]))
        try:
            result = train_step(model, images, data.y_train[batch])
        except DIVERGED:
            if progress:
                progress.end_line()
            message = diverged_message(config, model.epoch, epoch, step + 1)
            raise NonFiniteLossError(message) from None
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
    model: TrainingState,
    data: Dataset,
    stop: StopRequest,
    on_step: Callable[[TrainingState, int, int], None] | None = None,
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
        message = diverged_message(config, model.epoch, epoch, model.step)
        raise NonFiniteLossError(message) from None
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


# --------------------------------------------------------------------------------------------
# 5. The whole run
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    on_step: Callable[[TrainingState, int, int], None] | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train (or resume) as ``config`` says, evaluate on the test set, and return the history.

    Parameters
    ----------
    config : TrainConfig
    on_step : callable, optional
        Called as ``on_step(model, epoch, step)`` after every training step (the explorer
        watches training through it; tests use it to interrupt a run or spoil its weights).
        ``model`` is the TrainingState: ``model.partial_epoch`` holds the epoch's running sums,
        ``model.last_step`` the step's StepResult.
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
        config, saved = read_resume_file(replace(config))  # replace() checks every field again
        check_outputs(config)
        data = load_data(config)
        if saved is not None and saved.epoch == config.epochs:
            # The run is over: only the test set is left, and that needs no TensorFlow.
            finished = classifier_from_saved(saved, source=config.resume_path)
            say(describe_run(config, data, finished.cnn, saved.epoch, saved.step))
            if config.saves_model() and not same_file(config.save_path, config.resume_path):
                save_model(config.save_path, saved)
            history = saved.history
        else:
            check_training_fits(config)  # before TensorFlow loads: a network too big for memory
            model = build_model(config, saved)
            model.steps_per_epoch = steps_per_epoch(data, config)
            check_resumed_position(model)
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
    if config.saves_model():
        say(f"Model saved to {printable(config.save_path)}")
    say(f"Test loss: {test_loss:.4f}")
    return {"epochs": history, "test_loss": test_loss, "test_accuracy": test_accuracy}


def read_resume_file(config: TrainConfig) -> tuple[TrainConfig, SavedModel | None]:
    """For ``--resume``: the saved model, and the run's settings, the saved ones plus what
    ``config`` changed (checked: see settings.resumed_config). Otherwise ``config`` and None."""
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


def check_resumed_position(model: TrainingState) -> None:
    """A resumed model's step must lie inside an epoch of this data and batch size."""
    if model.step >= model.steps_per_epoch:
        raise ModelFileError(
            f"{model.config.resume_path}: damaged model file: it was saved at step "
            f"{model.step} of epoch {model.epoch + 1}, but an epoch has only "
            f"{model.steps_per_epoch} steps"
        )


def save(model: TrainingState) -> None:
    """Write the model file (atomically), unless the run saves nothing.

    Never a model holding NaN or infinity (in a weight or an optimizer's state), which
    load_model refuses: the file keeps what it held, and NonFiniteLossError says so.
    """
    if not model.config.saves_model():
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
            not_finite_model_message(model.config, model.epoch, model.step, kept)
        )
    save_model(model.config.save_path, saved)


def open_tensorboard(config: TrainConfig):
    """A TensorBoardLog writing into ``config.tensorboard_dir``, or None."""
    if not config.tensorboard_dir:
        return None
    from training.tensorboard_log import TensorBoardLog

    return TensorBoardLog(config.tensorboard_dir, config.tensorboard_every)


def _silent(*args, **kwargs) -> None:
    pass


# --------------------------------------------------------------------------------------------
# 6. The program
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training program; returns the exit status (0 done, 130 Ctrl-C, 143 SIGTERM,
    129 SIGHUP, 141 output closed)."""
    config = parse_args(argv)
    with output_that_may_close():
        return _train_and_report(config)


def _train_and_report(config: TrainConfig) -> int:
    try:
        history = train(config)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt as stop:  # StopNow: a second signal
        print("\nInterrupted.", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    except (DatasetError, ModelFileError, NonFiniteLossError, ConfigError, OSError) as error:
        sys.exit(f"error: {one_line(str(error))}")  # one line, whatever a file's name holds
    except Exception as error:  # only running out of memory is answered here; the rest raise
        message = out_of_memory_message(error, config)
        if message is None:
            raise
        sys.exit(f"error: {message}")
    print(f"Test accuracy: {history['test_accuracy']:.4f}")
    if config.verbose and config.saves_model():
        print(what_next(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
