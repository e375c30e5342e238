"""The settings of a training run: one dataclass with the defaults, checked, and resuming.

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
The command line is built from the dataclass in ``training/options.py``.

Imports only the standard library, NumPy and simple_cnn: ``--help`` answers at once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plumbing.checks import is_finite_number, is_int, shown
from simple_cnn import LENET_PADDINGS, Stage, per_stage_mismatch, plan_stages
from training.augmentation import Augmentation

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
    # More augmentation (training/augmentation.py): each image at most this much, anew each epoch.
    rotation: float = 0.0  # degrees either way
    scale: float = 0.0  # a fraction larger or smaller
    shear: float = 0.0  # degrees of slant either way
    elastic: float = 0.0  # pixels: a smooth random bending of the digit
    stroke: float = 0.0  # pixels thinner or thicker pen
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
        _check_number("--rotation", self.rotation, 0, 45)
        _check_number("--scale", self.scale, 0, 0.5)
        _check_number("--shear", self.shear, 0, 45)
        _check_number("--elastic", self.elastic, 0, 4)
        _check_number("--stroke", self.stroke, 0, 1)
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
                raise ConfigError(f"{option(name)} must be a path, got {shown(value)}")
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

    def augmentation(self) -> Augmentation:
        """The distortions of the training images beyond --shift (training/augmentation.py)."""
        return Augmentation.from_options(vars(self))

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
    "rotation",
    "scale",
    "shear",
    "elastic",
    "stroke",
    "dataset",
    "limit",
    "num_filters",
    "kernel_sizes",
    "paddings",
    "hidden",
    "dropout",
)
STORED_SETTINGS = (*RUN_SETTINGS, "impl")
# What runs written before a setting existed did: a model file that lacks one ran without it.
BEFORE_IT_EXISTED = {"rotation": 0.0, "scale": 0.0, "shear": 0.0, "elastic": 0.0, "stroke": 0.0}
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
        raise ConfigError(f"{option} must be an integer {takes}, got {shown(value)}")


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
        raise ConfigError(f"{option} must be a number {takes}, got {shown(value)}")


def _check_choice(option: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got {shown(value)}")


def _check_ints(option: str, values: Any, low: int, high: int, allow_empty: bool = False) -> None:
    if not isinstance(values, tuple) or (not values and not allow_empty):
        raise ConfigError(f"{option} must be a list of integers, got {shown(values)}")
    for value in values:
        _check_int(option, value, low, high)


def _check_paddings(option: str, values: Any) -> None:
    if not isinstance(values, tuple) or not values:
        raise ConfigError(f"{option} must be a list of paddings, got {shown(values)}")
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
    which are that network. Files written before the augmentation beyond --shift lack its
    fields: they ran without it (BEFORE_IT_EXISTED). Raises ValueError (ConfigError) naming the
    bad setting.
    """
    unknown = sorted(set(saved) - set(STORED_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting {shown(unknown[0])}")
    return TrainConfig(**{**BEFORE_IT_EXISTED, **saved}, save_path=None)


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
                f"{option(name)} {option_text(getattr(config, name))} differs from the "
                f"{option_text(saved_value)} that {config.resume_path} was trained with; resuming "
                f"keeps a run's settings (leave out {option(name)}), or start a new run "
                "without --resume"
            )
        values[name] = saved_value
    values["save_path"] = config.model_path()  # without --save, where it was
    return TrainConfig(**values, changed=config.changed)


def option_text(value: Any) -> str:
    """A setting as the command line writes it: 6,16 for a tuple, none for None."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


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
