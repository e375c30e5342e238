"""The settings of a training run: one dataclass with the defaults, and the command line.

    TrainConfig()                                   # the default run: LeNet-5 on MNIST, 6 epochs
    TrainConfig(num_filters=(32, 64), kernel_sizes=(3,), paddings=("valid",), hidden=(),
                dropout=0.5)                        # Keras' MNIST example network
    python simple_cnn_from_scratch.py --filters 32,64 --kernel-size 3 --padding valid \\
        --hidden none --dropout 0.5                 # the same, from the command line

``TrainConfig.check()`` checks every field the same way wherever it comes from: the command
line, a notebook, or the settings stored in a model file (``check_saved_settings``). A resumed
run is "the saved settings plus what you changed, checked" (``resumed_config``): the fields that
define a run (the seed, the data, the network, the learning-rate schedule) cannot change, or it
would no longer be that run; ``epochs`` may grow; the rest (where to save, what to print) is free.

Imports only the standard library, NumPy and simple_cnn: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plumbing.atomic_write import FileWriteError, check_writable
from plumbing.checks import is_finite_number, is_int
from plumbing.command_line import ArgumentParser
from simple_cnn import LENET_PADDINGS, Stage, per_stage_mismatch, plan_stages

DEFAULT_MODEL_PATH = "simple_cnn_model.npz"
DATASETS = ("mnist", "fashion")
IMPLEMENTATIONS = ("fast", "loops")
INPUT_SHAPE = (1, 28, 28)  # MNIST and Fashion-MNIST images
NUM_CLASSES = 10  # MNIST's digits, Fashion-MNIST's kinds of clothes
MAX_SHIFT = 4  # MNIST digits sit in a 20x20 box inside 28x28: 4 pixels of margin on each side
MAX_SEED = 2**32 - 1  # NumPy takes any; TensorFlow's seeds are 64-bit, and the head adds a few


class ConfigError(ValueError):
    """Settings that cannot work together, such as a resumed run changing its batch size."""


@dataclass
class TrainConfig:
    """Everything one run of the training program does. The defaults are the default run."""

    # The run itself: data, network, schedule. Stored in the model file; --resume keeps them.
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 0.004
    learning_rate_decay: float = 0.6  # each epoch's learning rate is the previous one's times this
    seed: int = 0
    shift: int = 1  # pixels a training image may move each way (data augmentation)
    dataset: str = "mnist"  # or "fashion"
    limit: int | None = None  # a quick try on the first N images of each split; None: all
    num_filters: tuple[int, ...] = (6, 16)  # per conv stage: two stages
    kernel_sizes: tuple[int, ...] = (5,)  # per stage, or one for all
    paddings: tuple[int | str, ...] = LENET_PADDINGS  # pixels, "same" or "valid"; per stage, or one
    hidden: tuple[int, ...] = (128,)  # units of the head's hidden Dense(relu) layers
    dropout: float = 0.0  # of the head's last layer's inputs
    # How this run goes about it: free to change when resuming.
    impl: str = "fast"  # SimpleCNN's layers: vectorised, or the readable "loops"
    data_dir: str | None = None  # None: mnist_data/ or fashion_mnist_data/
    save_path: str | None = DEFAULT_MODEL_PATH  # when resuming: the --resume file
    no_save: bool = False
    resume_path: str | None = None
    history_path: str | None = None
    tensorboard_dir: str | None = None
    tensorboard_every: int = 50  # steps between two batch-loss points in the logs
    verbose: bool = True
    # The fields given explicitly (on the command line); None: those that differ from the
    # defaults. A resumed run takes every other run-defining field from its model file.
    changed: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Check every field; ConfigError names the first bad one's option and what it takes.

        Lists (from JSON or a caller) become tuples, as the defaults are; NumPy numbers and
        arrays and pathlib paths, common in notebooks, become int, float, tuple and str.
        """
        for name in SETTINGS:
            setattr(self, name, _plain(getattr(self, name)))
        _check_int("--epochs", self.epochs, 1)
        _check_int("--batch-size", self.batch_size, 1)
        _check_number("--learning-rate", self.learning_rate, 0, math.inf, low_open=True)
        _check_number("--learning-rate-decay", self.learning_rate_decay, 0, 1, low_open=True)
        _check_int("--seed", self.seed, 0, MAX_SEED)
        _check_int("--shift", self.shift, 0, MAX_SHIFT)
        _check_choice("--dataset", self.dataset, DATASETS)
        if self.limit is not None:
            _check_int("--limit", self.limit, 1)
        _check_ints("--filters", self.num_filters, 1, 1024)
        _check_ints("--kernel-size", self.kernel_sizes, 1, 15)
        _check_paddings("--padding", self.paddings)
        _check_ints("--hidden", self.hidden, 1, 65_536, allow_empty=True)
        _check_number("--dropout", self.dropout, 0, 1, high_open=True)
        _check_choice("--impl", self.impl, IMPLEMENTATIONS)
        for name in ("data_dir", "save_path", "resume_path", "history_path", "tensorboard_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{option(name)} must be a path, got {value!r}")
        _check_int("--tensorboard-every", self.tensorboard_every, 1)
        if self.resume_path is None:  # resuming, the network is the saved one (resumed_config)
            self.network_stages()

    def network_stages(self) -> list[Stage]:
        """The conv stages these settings build (checked by simple_cnn.plan_stages).

        A count of kernel sizes or paddings that is neither one for all stages nor one per
        stage is named by its option.
        """
        n_stages = len(self.num_filters)
        for name in ("kernel_sizes", "paddings"):
            values = getattr(self, name)
            if len(values) not in (1, n_stages):
                raise ConfigError(per_stage_mismatch(option(name), values, n_stages))
        try:
            return plan_stages(
                self.num_filters,
                one_for_all(self.kernel_sizes),
                one_for_all(self.paddings),
                INPUT_SHAPE,
            )
        except ValueError as error:
            raise ConfigError(f"--filters/--kernel-size/--padding: {error}") from None

    def saves_model(self) -> bool:
        """Whether the run writes a model file."""
        return bool(self.save_path) and not self.no_save

    def model_path(self) -> str | None:
        """Where the run's model file goes: --save, or, resuming without it, the file resumed."""
        if self.resume_path and "save_path" not in self.changed_fields():
            return self.resume_path
        return self.save_path

    def changed_fields(self) -> frozenset[str]:
        """The fields given explicitly, or (``changed`` None) those unlike the defaults."""
        if self.changed is not None:
            return self.changed
        defaults = {item.name: item.default for item in dataclasses.fields(TrainConfig)}
        return frozenset(name for name in SETTINGS if getattr(self, name) != defaults[name])


SETTINGS = tuple(item.name for item in dataclasses.fields(TrainConfig) if item.name != "changed")
# The fields that define a run: a model file stores them (and impl), and --resume keeps them.
RUN_SETTINGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "learning_rate_decay",
    "seed",
    "shift",
    "dataset",
    "limit",
    "num_filters",
    "kernel_sizes",
    "paddings",
    "hidden",
    "dropout",
)
STORED_SETTINGS = (*RUN_SETTINGS, "impl")
# Options named otherwise than "--" + the field's name: a program's options are public, so they
# keep the names they had before the fields took SimpleCNN's.
OPTIONS = {
    "num_filters": "--filters",
    "kernel_sizes": "--kernel-size",
    "paddings": "--padding",
    "save_path": "--save",
    "resume_path": "--resume",
    "history_path": "--history",
    "tensorboard_dir": "--tensorboard",
    "verbose": "--quiet",
}


def option(name: str) -> str:
    """The command-line option of field ``name``: "--batch-size" for batch_size."""
    return OPTIONS.get(name, "--" + name.replace("_", "-"))


def one_for_all(values: tuple) -> Any:
    """A per-stage setting as SimpleCNN takes it: (5,), one value, is 5 for every stage."""
    return values[0] if len(values) == 1 else values


# --------------------------------------------------------------------------------------------
# The checks: each raises ConfigError "<option> must be <what it takes>, got <value>"
# --------------------------------------------------------------------------------------------


def _check_int(option: str, value: Any, low: int, high: int | None = None) -> None:
    if not is_int(value) or value < low or (high is not None and value > high):
        takes = f"from {low} to {high}" if high is not None else f"greater than {low - 1}"
        raise ConfigError(f"{option} must be an integer {takes}, got {value!r}")


def _check_number(
    option: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    above = is_finite_number(value) and (value > low if low_open else value >= low)
    if not (above and (value < high if high_open else value <= high)):
        if math.isinf(high):
            takes = f"greater than {low:g}" if low_open else f"{low:g} or more"
        else:
            takes = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{option} must be a number {takes}, got {value!r}")


def _check_choice(option: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


def _check_ints(option: str, values: Any, low: int, high: int, allow_empty: bool = False) -> None:
    if not isinstance(values, tuple) or (not values and not allow_empty):
        raise ConfigError(f"{option} must be a list of integers, got {values!r}")
    for value in values:
        _check_int(option, value, low, high)


def _check_paddings(option: str, values: Any) -> None:
    if not isinstance(values, tuple) or not values:
        raise ConfigError(f"{option} must be a list of paddings, got {values!r}")
    for value in values:
        if value not in ("same", "valid"):
            _check_int(option, value, 0, 64)


def _plain(value: Any) -> Any:
    """A field's value as the plain Python value the checks and the model file's JSON take."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# --------------------------------------------------------------------------------------------
# The settings in a model file, and resuming
# --------------------------------------------------------------------------------------------


def run_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings stored in the model file: the run-defining ones, and impl, as JSON values."""
    return {name: _json_value(getattr(config, name)) for name in STORED_SETTINGS}


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_saved_settings(saved: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a model file's stored settings describe, every value checked.

    Files written before the network was configurable lack its fields: they get the defaults,
    which are that network. Raises ValueError (ConfigError) naming the bad setting.
    """
    unknown = sorted(set(saved) - set(STORED_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    return TrainConfig(**saved, save_path=None)


def resumed_config(config: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``config`` for resuming a run whose model file stored ``saved``: the saved run-defining
    settings, plus the fields ``config`` changed, checked.

    Raises
    ------
    ConfigError
        A changed run-defining setting differs from the saved one (``epochs`` may grow).
    """
    saved_config = check_saved_settings(saved)
    changed = config.changed_fields()
    values = {}
    for name in SETTINGS:
        if name not in RUN_SETTINGS or (name == "epochs" and name in changed):
            values[name] = getattr(config, name)
            continue
        saved_value = getattr(saved_config, name)
        if name in changed and getattr(config, name) != saved_value:
            raise ConfigError(
                f"{option(name)} {_show(getattr(config, name))} differs from the "
                f"{_show(saved_value)} that {config.resume_path} was trained with; resuming "
                f"keeps a run's settings (leave out {option(name)}), or start a new run "
                "without --resume"
            )
        values[name] = saved_value
    values["save_path"] = config.model_path()  # without --save, where it was
    return TrainConfig(**values, changed=config.changed)


def _show(value: Any) -> str:
    """A setting as the command line writes it: 6,16 for a tuple, none for None."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python simple_cnn_from_scratch.py``: an option for each field.

    The options only parse their text; TrainConfig.check() checks the values (parse_args).
    """
    default = TrainConfig()
    parser = ArgumentParser(
        description="Train SimpleCNN (NumPy convolutions + a Keras dense head) end to end on "
        "MNIST, save the model after every epoch, and print the test accuracy.",
        epilog="Ctrl-C (or SIGTERM, or closing the terminal) saves the model and exits; continue "
        "with --resume. Classify your own picture with: python predict_digit.py IMAGE",
        argument_default=argparse.SUPPRESS,  # only what was given: resuming needs to know
    )
    add = parser.add_argument
    add(
        "--epochs",
        type=_int,
        metavar="N",
        help="total number of epochs, counting those a resumed model has done "
        f"(default {default.epochs})",
    )
    add(
        "--batch-size",
        type=_int,
        metavar="N",
        help=f"images per training step (default {default.batch_size})",
    )
    add(
        "--learning-rate",
        type=_float,
        metavar="LR",
        help="first-epoch learning rate of both Adam optimizers, filters and head "
        f"(default {default.learning_rate})",
    )
    add(
        "--learning-rate-decay",
        type=_float,
        metavar="FACTOR",
        help="each epoch's learning rate is the previous one's times this "
        f"(default {default.learning_rate_decay})",
    )
    add(
        "--seed",
        type=_int,
        metavar="N",
        help="seed for the initial weights, shuffling, shifts and dropout: the same seed gives "
        f"the same numbers (default {default.seed})",
    )
    add(
        "--shift",
        type=_int,
        metavar="PIXELS",
        help="data augmentation: move each training image by up to this many pixels in each "
        f"direction, a new random shift every epoch; 0 turns it off (default {default.shift})",
    )
    add(
        "--dataset",
        choices=DATASETS,
        help="handwritten digits (mnist) or Fashion-MNIST clothes (fashion) "
        f"(default {default.dataset})",
    )
    add(
        "--limit",
        type=_int,
        metavar="N",
        help="quick try: train on the first N training images, and validate and test on at "
        "most N images (default: all 55,000 / 5,000 / 10,000)",
    )
    add(
        "--filters",
        dest="num_filters",
        type=_int_list,
        metavar="F,F,...",
        help="filters of each conv stage, comma-separated: 32,64 is two stages "
        f"(default {_show(default.num_filters)})",
    )
    add(
        "--kernel-size",
        dest="kernel_sizes",
        type=_int_list,
        metavar="K[,K...]",
        help="kernel size of each conv stage, or one for all "
        f"(default {_show(default.kernel_sizes)})",
    )
    add(
        "--padding",
        dest="paddings",
        type=_paddings,
        metavar="P[,P...]",
        help="zeros added around each stage's input: pixels, 'same' or 'valid'; one value for "
        f"all stages or one per stage (default {_show(default.paddings)})",
    )
    add(
        "--hidden",
        type=_hidden,
        metavar="U,...|none",
        help="units of the head's hidden Dense(relu) layers, comma-separated; 'none' for none "
        f"(default {_show(default.hidden)})",
    )
    add(
        "--dropout",
        type=_float,
        metavar="RATE",
        help="fraction of the head's last-layer inputs dropped while training "
        f"(default {default.dropout})",
    )
    add(
        "--impl",
        choices=IMPLEMENTATIONS,
        help="SimpleCNN layers: vectorised NumPy, or the readable nested loops (very slow; "
        f"use with --limit) (default {default.impl})",
    )
    add(
        "--data-dir",
        metavar="DIR",
        help="folder of the dataset's .npy files, built from the shipped archives when missing "
        "(default mnist_data/ or fashion_mnist_data/ beside this program)",
    )
    saving = parser.add_mutually_exclusive_group()
    saving.add_argument(
        "--save",
        dest="save_path",
        type=_writable("model file"),
        metavar="PATH",
        help=f"model file written after every epoch (default {DEFAULT_MODEL_PATH}, or the "
        "--resume file when resuming)",
    )
    saving.add_argument("--no-save", action="store_true", help="do not write a model file")
    add(
        "--resume",
        dest="resume_path",
        type=_existing_file,
        metavar="PATH",
        help="continue training from this model file (after Ctrl-C, or to more --epochs); the "
        "run's settings come from the file (default none)",
    )
    add(
        "--history",
        dest="history_path",
        type=_writable("history file"),
        metavar="FILE",
        help="write the per-epoch loss/accuracy (like Keras' History) and the test result to "
        "this JSON file, updated after every epoch (default none)",
    )
    add(
        "--tensorboard",
        dest="tensorboard_dir",
        metavar="DIR",
        help="write TensorBoard logs here (DIR/train, DIR/validation), as Keras' TensorBoard "
        "callback does; view them with: tensorboard --logdir DIR (default none)",
    )
    add(
        "--tensorboard-every",
        type=_int,
        metavar="N",
        help="with --tensorboard: also log the batch loss and accuracy every N steps "
        f"(default {default.tensorboard_every})",
    )
    add(
        "--quiet",
        dest="verbose",
        action="store_false",
        help="print only the final 'Test accuracy' line",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The command line (``sys.argv[1:]`` when ``argv`` is None) as a checked TrainConfig.

    A bad value exits with the parser's one-line error (status 2), the message TrainConfig
    gives in code too.
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    try:
        return TrainConfig(**given, changed=frozenset(given))
    except ConfigError as error:
        parser.error(str(error))


# What the options' text becomes. argparse shows an ArgumentTypeError's message as it is.


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(_int(part) for part in text.split(","))


def _hidden(text: str) -> tuple[int, ...]:
    return () if text.strip().lower() == "none" else _int_list(text)


def _paddings(text: str) -> tuple[int | str, ...]:
    return tuple(part if part in ("same", "valid") else _int(part) for part in text.split(","))


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _writable(what: str) -> Callable[[str], str]:
    """A path that can be written (atomic_write.check_writable), checked at once: a typo fails
    now instead of after a minute of training."""

    def writable(text: str) -> str:
        try:
            check_writable(text, what)
        except FileWriteError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return writable


# --------------------------------------------------------------------------------------------
# The fields' old names, before they took SimpleCNN's: still accepted (with a
# DeprecationWarning), since users' notebooks may have been written with them.
# --------------------------------------------------------------------------------------------

RENAMED = {"filters": "num_filters", "kernel_size": "kernel_sizes", "padding": "paddings"}


def _accepting_old_names(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs) -> None:
        for old, new in RENAMED.items():
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"TrainConfig got both {old}= and {new}=; give {new}= only")
                warnings.warn(_renamed(old), DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    return __init__


def _old_name(old: str) -> property:
    def read(self) -> Any:
        warnings.warn(_renamed(old), DeprecationWarning, stacklevel=2)
        return getattr(self, RENAMED[old])

    return property(read, doc=f"Deprecated: {RENAMED[old]}.")


def _renamed(old: str) -> str:
    return (
        f"TrainConfig's {old} is now {RENAMED[old]}, as in SimpleCNN (the command line's "
        f"{option(RENAMED[old])} is unchanged)"
    )


TrainConfig.__init__ = _accepting_old_names(TrainConfig.__init__)
for _old in RENAMED:
    setattr(TrainConfig, _old, _old_name(_old))
