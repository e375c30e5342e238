"""The settings of a training run: one dataclass with the real defaults, and the command line
built from it.

    TrainConfig()                                   # the default run: LeNet-5 on MNIST, 6 epochs
    TrainConfig(filters=(32, 64), kernel_size=(3,), padding=("valid",), hidden=(), dropout=0.5)
    python simple_cnn_from_scratch.py --filters 32,64 --kernel-size 3 --padding valid \\
        --hidden none --dropout 0.5                 # the same, from the command line

Every field is checked the same way wherever it comes from: the command line, a notebook, or
the settings stored in a model file (``check_saved_settings``). A resumed run is "the saved
settings plus what you changed, checked": the fields that define a run (the seed, the data,
the network, the learning-rate schedule) cannot change, or it would no longer be that run;
``epochs`` may grow; the rest (where to save, what to print) is free.

Imports only the standard library, NumPy and simple_cnn: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plumbing.atomic_write import FileWriteError, check_writable
from plumbing.checks import is_int
from plumbing.command_line import ArgumentParser
from simple_cnn import LENET_PADDINGS, per_stage_mismatch, plan_stages

DEFAULT_MODEL_PATH = "simple_cnn_model.npz"
DATASETS = ("mnist", "fashion")
IMPLEMENTATIONS = ("fast", "loops")
INPUT_SHAPE = (1, 28, 28)  # MNIST and Fashion-MNIST images
NUM_CLASSES = 10  # MNIST's digits, Fashion-MNIST's kinds of clothes
MAX_SHIFT = 4  # MNIST digits sit in a 20x20 box inside 28x28: 4 pixels of margin on each side
MAX_SEED = 2**32 - 1  # NumPy takes any; TensorFlow's seeds are 64-bit, and the head adds a few


class ConfigError(ValueError):
    """Settings that cannot work together, such as a resumed run changing its batch size."""


# --------------------------------------------------------------------------------------------
# Parsers and checks: a parser turns command-line text into a value, a check raises ValueError
# with the reason. The same check runs on values from the command line, code and model files.
# --------------------------------------------------------------------------------------------


def _int_in(low: int, high: int | None = None) -> Callable[[Any], None]:
    if high is not None:
        bound = f"an integer from {low} to {high}"
    else:
        bound = "an integer greater than 0" if low == 1 else f"{low} or more"

    def check(value: Any) -> None:
        if not is_int(value) or value < low or (high is not None and value > high):
            raise ValueError(f"must be {bound}, got {value!r}")

    return check


def _number_in(low: float, high: float, *, low_open: bool, high_open: bool) -> Callable:
    if math.isinf(high):
        bound = f"a number greater than {low:g}" if low_open else f"a number {low:g} or more"
    else:
        bound = (
            f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )

    def check(value: Any) -> None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            raise ValueError(f"must be {bound}, got {value!r}")

    return check


def _optional(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_optional(value: Any) -> None:
        if value is not None:
            check(value)

    return check_optional


def _one_of(choices: Sequence[str]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")

    return check


def _ints_per_stage(low: int, high: int, *, allow_empty: bool = False) -> Callable:
    def check(values: Any) -> None:
        if not isinstance(values, tuple | list) or (not values and not allow_empty):
            raise ValueError(f"must be a list of integers, got {values!r}")
        for value in values:
            _int_in(low, high)(value)

    return check


def _check_paddings(values: Any) -> None:
    if not isinstance(values, tuple | list) or not values:
        raise ValueError(f"must be a list of paddings, got {values!r}")
    for value in values:
        if value not in ("same", "valid"):
            _int_in(0, 64)(value)


def _check_path(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"must be a path, got {value!r}")


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise ValueError(f"no such file: {text}")
    return text


def _writable_file(what: str) -> Callable[[str], str]:
    """A parser that checks at once that the file can be written (atomic_write.check_writable),
    so a typo fails now instead of after a minute of training."""

    def parse(text: str) -> str:
        try:
            check_writable(text, what)
        except FileWriteError as error:
            raise ValueError(str(error)) from None
        return text

    return parse


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _parse_int_list(text: str) -> tuple[int, ...]:
    return tuple(_parse_int(part) for part in text.split(","))


def _parse_hidden(text: str) -> tuple[int, ...]:
    return () if text.strip().lower() == "none" else _parse_int_list(text)


def _parse_paddings(text: str) -> tuple[int | str, ...]:
    return tuple(p if p in ("same", "valid") else _parse_int(p) for p in text.split(","))


# --------------------------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------------------------


def _setting(
    default: Any,
    help: str,
    check: Callable[[Any], None],
    parse: Callable[[str], Any] | None = None,
    *,
    defines_run: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A TrainConfig field with what the command line and the checks need to know of it."""
    metadata = {
        "help": help,
        "check": check,
        "parse": parse,
        "defines_run": defines_run,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
    }
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything one run of the training program does. The defaults are the default run.

    Fields marked ``defines_run`` are stored in the model file and kept by ``--resume``.
    """

    # The run itself: data, network, schedule. A resumed run keeps these.
    epochs: int = _setting(
        6,
        "total number of epochs, counting those a resumed model has done",
        _int_in(1),
        _parse_int,
        defines_run=True,
        metavar="N",
    )
    batch_size: int = _setting(
        128,
        "images per training step",
        _int_in(1),
        _parse_int,
        defines_run=True,
        metavar="N",
    )
    learning_rate: float = _setting(
        0.004,
        "first-epoch learning rate of both Adam optimizers, filters and head",
        _number_in(0, math.inf, low_open=True, high_open=True),
        _parse_float,
        defines_run=True,
        metavar="LR",
    )
    learning_rate_decay: float = _setting(
        0.6,
        "each epoch's learning rate is the previous one's times this",
        _number_in(0, 1, low_open=True, high_open=False),
        _parse_float,
        defines_run=True,
        metavar="FACTOR",
    )
    seed: int = _setting(
        0,
        "seed for the initial weights, shuffling, shifts and dropout: the same seed gives "
        "the same numbers",
        _int_in(0, MAX_SEED),
        _parse_int,
        defines_run=True,
        metavar="N",
    )
    shift: int = _setting(
        1,
        "data augmentation: move each training image by up to this many pixels in each "
        "direction, a new random shift every epoch; 0 turns it off",
        _int_in(0, MAX_SHIFT),
        _parse_int,
        defines_run=True,
        metavar="PIXELS",
    )
    dataset: str = _setting(
        "mnist",
        "handwritten digits (mnist) or Fashion-MNIST clothes (fashion)",
        _one_of(DATASETS),
        str,
        defines_run=True,
        choices=DATASETS,
    )
    limit: int | None = _setting(
        None,
        "quick try: train on the first N training images, and validate and test on at "
        "most N images (default: all 55,000 / 5,000 / 10,000)",
        _optional(_int_in(1)),
        _parse_int,
        defines_run=True,
        metavar="N",
    )
    filters: tuple[int, ...] = _setting(
        (6, 16),
        "filters of each conv stage, comma-separated: 32,64 is two stages",
        _ints_per_stage(1, 1024),
        _parse_int_list,
        defines_run=True,
        metavar="F,F,...",
    )
    kernel_size: tuple[int, ...] = _setting(
        (5,),
        "kernel size of each conv stage, or one for all",
        _ints_per_stage(1, 15),
        _parse_int_list,
        defines_run=True,
        metavar="K[,K...]",
    )
    padding: tuple[int | str, ...] = _setting(
        LENET_PADDINGS,
        "zeros added around each stage's input: pixels, 'same' or 'valid'; one value "
        "for all stages or one per stage",
        _check_paddings,
        _parse_paddings,
        defines_run=True,
        metavar="P[,P...]",
    )
    hidden: tuple[int, ...] = _setting(
        (128,),
        "units of the head's hidden Dense(relu) layers, comma-separated; 'none' for none",
        _ints_per_stage(1, 65_536, allow_empty=True),
        _parse_hidden,
        defines_run=True,
        metavar="U,...|none",
    )
    dropout: float = _setting(
        0.0,
        "fraction of the head's last-layer inputs dropped while training",
        _number_in(0, 1, low_open=False, high_open=True),
        _parse_float,
        defines_run=True,
        metavar="RATE",
    )
    # How this run goes about it: free to change when resuming.
    impl: str = _setting(
        "fast",
        "SimpleCNN layers: vectorised NumPy, or the readable nested loops (very slow; "
        "use with --limit)",
        _one_of(IMPLEMENTATIONS),
        str,
        choices=IMPLEMENTATIONS,
    )
    data_dir: str | None = _setting(
        None,
        "folder of the dataset's .npy files, built from the shipped archives when missing "
        "(default mnist_data/ or fashion_mnist_data/ beside this program)",
        _check_path,
        str,
        metavar="DIR",
    )
    save_path: str | None = _setting(
        DEFAULT_MODEL_PATH,
        "model file written after every epoch (default "
        f"{DEFAULT_MODEL_PATH}, or the --resume file when resuming)",
        _check_path,
        _writable_file("model file"),
        flag="--save",
        metavar="PATH",
    )
    no_save: bool = _setting(False, "do not write a model file", lambda value: None)
    resume_path: str | None = _setting(
        None,
        "continue training from this model file (after Ctrl-C, or to more --epochs); "
        "the run's settings come from the file",
        _check_path,
        _existing_file,
        flag="--resume",
        metavar="PATH",
    )
    history_path: str | None = _setting(
        None,
        "write the per-epoch loss/accuracy (like Keras' History) and the test result to "
        "this JSON file, updated after every epoch",
        _check_path,
        _writable_file("history file"),
        flag="--history",
        metavar="FILE",
    )
    tensorboard_dir: str | None = _setting(
        None,
        "write TensorBoard logs here (DIR/train, DIR/validation), as Keras' TensorBoard "
        "callback does; view them with: tensorboard --logdir DIR",
        _check_path,
        str,
        flag="--tensorboard",
        metavar="DIR",
    )
    tensorboard_every: int = _setting(
        50,
        "with --tensorboard: also log the batch loss and accuracy every N steps",
        _int_in(1),
        _parse_int,
        metavar="N",
    )
    verbose: bool = _setting(True, "print progress", lambda value: None)
    # The fields given explicitly (on the command line); None: those that differ from the
    # defaults. A resumed run takes every other run-defining field from its model file.
    changed: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            if item.name == "changed":
                continue
            value = _plain(getattr(self, item.name))
            setattr(self, item.name, value)
            try:
                item.metadata["check"](value)
            except ValueError as error:
                raise ConfigError(f"{_option(item)} {error}") from None
        if self.resume_path is not None:
            return  # the network is the saved one: resumed_config checks any change against it
        try:
            self.network_stages()
        except ConfigError:
            raise  # a count that does not fit the stages, naming its option
        except ValueError as error:
            raise ConfigError(f"--filters/--kernel-size/--padding: {error}") from None

    def network_stages(self):
        """The conv stages these settings build (checked: simple_cnn.plan_stages)."""
        return plan_stages(self.filters, self.kernel_sizes(), self.paddings(), INPUT_SHAPE)

    def kernel_sizes(self) -> tuple[int, ...]:
        """One kernel size per stage (a single value applies to every stage)."""
        return _per_stage(self.kernel_size, len(self.filters), "--kernel-size")

    def paddings(self) -> tuple[int | str, ...]:
        """One padding per stage (a single value applies to every stage)."""
        return _per_stage(self.padding, len(self.filters), "--padding")

    def changed_fields(self) -> frozenset[str]:
        if self.changed is not None:
            return self.changed
        return frozenset(
            item.name for item in _settings() if getattr(self, item.name) != item.default
        )


def _plain(value: Any) -> Any:
    """A field's value as the plain Python value the checks and the model file's JSON take:
    lists (from JSON or a caller) become tuples, as the defaults are; NumPy numbers and arrays
    and pathlib paths, common in notebooks, become int, float, tuple and str."""
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


def _per_stage(values: tuple, n_stages: int, option: str) -> tuple:
    if len(values) == 1:
        return values * n_stages
    if len(values) != n_stages:
        raise ConfigError(per_stage_mismatch(option, values, n_stages))
    return values


def _settings() -> list[dataclasses.Field]:
    return [item for item in dataclasses.fields(TrainConfig) if item.name != "changed"]


def _option(item: dataclasses.Field) -> str:
    return item.metadata["flag"] or "--" + item.name.replace("_", "-")


def run_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings stored in the model file: the run-defining ones, and impl, as JSON values."""
    names = [item.name for item in _settings() if item.metadata["defines_run"]] + ["impl"]
    return {name: _json_value(getattr(config, name)) for name in names}


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_saved_settings(saved: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a model file's stored settings describe, every value checked.

    Files written before the network was configurable lack its fields: they get the defaults,
    which are that network. Raises ValueError (ConfigError) naming the bad setting.
    """
    known = {item.name for item in _settings() if item.metadata["defines_run"]} | {"impl"}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    return TrainConfig(**{name: value for name, value in saved.items()}, save_path=None)


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
    for item in _settings():
        name = item.name
        if not item.metadata["defines_run"] or (name == "epochs" and name in changed):
            values[name] = getattr(config, name)
            continue
        saved_value = getattr(saved_config, name)
        if name in changed and getattr(config, name) != saved_value:
            raise ConfigError(
                f"{_option(item)} {_show(getattr(config, name))} differs from the "
                f"{_show(saved_value)} that {config.resume_path} was trained with; resuming "
                f"keeps a run's settings (leave out {_option(item)}), or start a new run "
                "without --resume"
            )
        values[name] = saved_value
    if "save_path" not in changed:
        values["save_path"] = config.resume_path  # a resumed run keeps saving where it was
    return TrainConfig(**values, changed=config.changed)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


# --------------------------------------------------------------------------------------------
# The command line, built from the fields
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python simple_cnn_from_scratch.py``: one option per field."""
    parser = ArgumentParser(
        description="Train SimpleCNN (NumPy convolutions + a Keras dense head) end to end on "
        "MNIST, save the model after every epoch, and print the test accuracy.",
        epilog="Ctrl-C (or SIGTERM, or closing the terminal) saves the model and exits; continue "
        "with --resume. Classify your own picture with: python predict_digit.py IMAGE",
        argument_default=argparse.SUPPRESS,  # only what was given: resuming needs to know
    )
    saving = parser.add_mutually_exclusive_group()
    for item in _settings():
        if item.name == "verbose":
            parser.add_argument(
                "--quiet",
                dest="verbose",
                action="store_false",
                help="print only the final 'Test accuracy' line",
            )
            continue
        if item.name == "no_save":
            saving.add_argument("--no-save", action="store_true", help=item.metadata["help"])
            continue
        help = item.metadata["help"]
        if "default" not in help:
            help += f" (default {_show(item.default)})"
        (saving if item.name == "save_path" else parser).add_argument(
            _option(item),
            dest=item.name,
            type=str if item.metadata["choices"] else _argparse_type(item),
            metavar=item.metadata["metavar"],
            choices=item.metadata["choices"],
            help=help,
        )
    return parser


def _argparse_type(item: dataclasses.Field) -> Callable[[str], Any]:
    """The field's parser and check as an argparse type: errors become the parser's one line."""

    def parse_and_check(text: str) -> Any:
        try:
            value = item.metadata["parse"](text)
            item.metadata["check"](value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse_and_check.__name__ = item.name  # argparse names the type in some messages
    return parse_and_check


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The command line (``sys.argv[1:]`` when ``argv`` is None) as a TrainConfig.

    Bad values exit with the parser's one-line error (status 2).
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    try:
        return TrainConfig(**given, changed=frozenset(given))
    except ConfigError as error:
        parser.error(str(error))
