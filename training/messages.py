"""What the training program says besides its progress bar: what the run is, why it stopped and
how to go on, and what to try once it is done. The sentences live here, so that the trainer's
loop reads as the loop.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from plumbing.checks import printable
from training.model_file import TRAIN_COMMAND
from training.settings import DEFAULT_MODEL_PATH, NUM_CLASSES, TrainConfig

if TYPE_CHECKING:
    from simple_cnn import SimpleCNN
    from simple_cnn_from_scratch import Dataset


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
        lines.append(f"Resuming {printable(config.resume_path)} from {position(epoch, step)}")
    return "\n".join(lines)


def position(epoch: int, step: int) -> str:
    """Where a run stands after ``epoch`` epochs and ``step`` steps of the next one."""
    if step:
        return f"epoch {epoch + 1}, step {step}"
    return f"the end of epoch {epoch}"


def interrupted_message(config: TrainConfig, epoch: int, step: int) -> str:
    """What a stopped run saved (at ``step`` of epoch ``epoch + 1``) and how to go on."""
    if not config.saves_model():
        return f"Interrupted at {position(epoch, step)}; nothing saved (--no-save)."
    command = f"{TRAIN_COMMAND} --resume {shell_word(config.save_path)}"
    if config.history_path:
        command += f" --history {shell_word(config.history_path)}"
    if epoch == config.epochs:
        return (
            "Interrupted after the last epoch, before the test set; "
            f"{printable(config.save_path)} holds the finished model. Evaluate it with:\n"
            f"  {command}"
        )
    saved = f"Interrupted at {position(epoch, step)}; saved to {printable(config.save_path)}."
    return f"{saved} Continue with:\n  {command}"


def diverged_message(config: TrainConfig, epochs_saved: int, epoch: int, step: int) -> str:
    """The loss or a gradient became NaN or infinite at ``step`` of ``epoch``; the model file
    (if any) holds the end of epoch ``epochs_saved``."""
    if config.saves_model() and (epochs_saved or config.resume_path):
        kept = f"{printable(config.save_path)} keeps {position(epochs_saved, 0)}"
    else:
        kept = "this run has saved no model yet"
    return (
        f"the training loss or its gradient became NaN or infinite at epoch {epoch}, step "
        f"{step}: training diverged and stopped ({kept}); {_smaller_learning_rate(config)}"
    )


def not_finite_model_message(config: TrainConfig, epoch: int, step: int, kept: str) -> str:
    """The model to be saved holds NaN or infinity, by ``position(epoch, step)``; ``kept`` says
    what the model file holds instead."""
    return (
        f"the model's weights or its optimizers' state became NaN or infinite by "
        f"{position(epoch, step)}: training diverged and stopped ({kept}); "
        f"{_smaller_learning_rate(config)}"
    )


def _smaller_learning_rate(config: TrainConfig) -> str:
    # Resuming keeps the run's learning rate: only a new run can take a smaller one.
    new_run = "start a new run (without --resume) with" if config.resume_path else "try"
    return f"{new_run} a smaller --learning-rate than {config.learning_rate}"


def what_next(config: TrainConfig) -> str:
    """The trained model's next uses: a picture of one's own, and the explorer."""
    path = config.model_path()
    model = "" if path == DEFAULT_MODEL_PATH else f" --model {shell_word(path)}"
    return (
        f"Next, try the model on a picture of your own:  python predict_digit.py{model} IMAGE\n"
        f"or watch it at work, layer by layer, in your browser:  python explore.py{model}"
    )


def shell_word(path: str) -> str:
    """``path`` as one word of a command to copy into a shell, on one line: quoted when it
    holds spaces or quotes ('my model.npz'), and in bash's $'...' when it holds a line break
    or another control character ($'a\\nb.npz')."""
    if path.isprintable():
        return shlex.quote(path)
    escaped = "".join(
        c if c.isprintable() and c not in "\\'" else "\\" + c if c in "\\'" else repr(c)[1:-1]
        for c in path
    )
    return f"$'{escaped}'"
