"""The training program's command line, built from TrainConfig (``training/settings.py``):
one option for each field, written out with its help, as ``--help`` shows them.

    python simple_cnn_from_scratch.py --epochs 2 --limit 5000 --save quick.npz

The options only turn their text into values; ``TrainConfig.check()`` checks them, so a bad
value gets the same one-line message on the command line (status 2) as in code. An option left
out is not passed at all (``argparse.SUPPRESS``): a resumed run takes it from its model file.

Imports no TensorFlow: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

from plumbing.atomic_write import FileWriteError, check_writable
from plumbing.checks import file_kind, one_line, printable, shown
from plumbing.command_line import ArgumentParser
from training.settings import (
    DATASETS,
    DEFAULT_MODEL_PATH,
    IMPLEMENTATIONS,
    ConfigError,
    TrainConfig,
    option_text,
)


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
    augmenting = parser.add_argument_group(
        "more data augmentation",
        "each training image distorted anew every epoch, each by its own random amount up to "
        "these (training/augmentation.py); 0 turns one off",
    )
    augmenting.add_argument(
        "--rotation",
        type=_float,
        metavar="DEGREES",
        help=f"turned either way (default {default.rotation:g})",
    )
    augmenting.add_argument(
        "--scale",
        type=_float,
        metavar="FRACTION",
        help=f"made larger or smaller: 0.1 is 90%% to 110%% (default {default.scale:g})",
    )
    augmenting.add_argument(
        "--shear",
        type=_float,
        metavar="DEGREES",
        help=f"slanted either way (default {default.shear:g})",
    )
    augmenting.add_argument(
        "--elastic",
        type=_float,
        metavar="PIXELS",
        help="bent: every pixel moves along a smooth random field, about this far "
        f"(default {default.elastic:g})",
    )
    augmenting.add_argument(
        "--stroke",
        type=_float,
        metavar="PIXELS",
        help=f"written with a pen up to this much thinner or thicker on each side (default "
        f"{default.stroke:g})",
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
        f"(default {option_text(default.num_filters)})",
    )
    add(
        "--kernel-size",
        dest="kernel_sizes",
        type=_int_list,
        metavar="K[,K...]",
        help="kernel size of each conv stage, or one for all "
        f"(default {option_text(default.kernel_sizes)})",
    )
    add(
        "--padding",
        dest="paddings",
        type=_paddings,
        metavar="P[,P...]",
        help="zeros added around each stage's input: pixels, 'same' or 'valid'; one value for "
        f"all stages or one per stage (default {option_text(default.paddings)})",
    )
    add(
        "--hidden",
        type=_hidden,
        metavar="U,...|none",
        help="units of the head's hidden Dense(relu) layers, comma-separated; 'none' for none "
        f"(default {option_text(default.hidden)})",
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
        raise argparse.ArgumentTypeError(f"expected an integer, got {shown(text)}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {shown(text)}") from None


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(_int(part) for part in text.split(","))


def _hidden(text: str) -> tuple[int, ...]:
    return () if text.strip().lower() == "none" else _int_list(text)


def _paddings(text: str) -> tuple[int | str, ...]:
    return tuple(part if part in ("same", "valid") else _int(part) for part in text.split(","))


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        try:
            kind = file_kind(os.stat(text).st_mode)
        except OSError:
            raise argparse.ArgumentTypeError(f"no such file: {printable(text)}") from None
        raise argparse.ArgumentTypeError(
            f"{printable(text)} is {kind}, not a model file; give the .npz file to resume"
        )
    return text


def _writable(what: str) -> Callable[[str], str]:
    """A path that can be written (atomic_write.check_writable), checked at once: a typo fails
    now instead of after a minute of training."""

    def writable(text: str) -> str:
        try:
            check_writable(text, what)
        except FileWriteError as error:
            raise argparse.ArgumentTypeError(one_line(str(error))) from None
        return text

    return writable
