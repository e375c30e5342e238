"""The trained-model file: one ``.npz`` holding everything a SimpleCNN training run has learned.

Saving and loading only, with NumPy alone: no TensorFlow, so predicting and plotting start in
a fraction of a second. The trainer (``simple_cnn_from_scratch.py``) writes the file at the end
of every epoch and when it is stopped; ``inference.py`` turns it into a classifier. It is a plain
NumPy archive, so ``np.load(path)`` shows every array by name:

==============================  =============================================================
``format``                      ``"simple-cnn-v2"`` (``"simple-cnn-lenet5-v1"`` files still load)
``architecture``                JSON: filters, kernel_sizes, paddings (pixels), input_shape,
                                hidden, dropout, num_classes
``conv1_filters``, ...          stage i's filters (F, C, K, K) float32, one per stage
``head.0.kernel`` / ``.bias``   the head's Dense layers in order: (in, out) / (out,) float32
``head_state.<i>``              the head's other variables (dropout's random-number state)
``conv_optimizer.<name>``       the NumPy Adam's ``state_dict()`` (moments of every filter bank)
``conv_optimizer_settings``     JSON: its learning rate, beta_1, beta_2 and epsilon
``head_optimizer.<i>``          the Keras Adam's ``variables`` in order (iterations, moments)
``epoch``                       epochs completed
``step``                        steps done in epoch ``epoch + 1`` when saved mid-epoch
``partial_epoch``               JSON: that partial epoch's running sums
``config``                      JSON: the run's settings (seed, batch size, learning rate, ...;
                                "filters", "kernel_size", "padding" are TrainConfig's
                                num_filters, kernel_sizes, paddings: see SETTINGS_ON_DISK)
``history``                     JSON: one record per finished epoch (loss, accuracy, val_*, ...)
==============================  =============================================================

Nothing in a file is trusted: every member is checked by name, and by the size and shape its
header claims, before its data is read; every number is checked for type and range.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plumbing.atomic_write import write_atomically
from plumbing.checks import as_path, is_finite_number, is_int, printable, shown
from plumbing.memory import memory_available, size_text
from plumbing.npy_header import MAX_HEADER_BYTES, NpyHeaderError, read_npy_header
from simple_cnn import plan_stages
from training import settings
from training.history import HistoryError, check_records

FORMAT = "simple-cnn-v2"
OLD_FORMAT = "simple-cnn-lenet5-v1"  # LeNet-5 only, no "architecture" member
ADAM_SETTINGS = ("learning_rate", "beta_1", "beta_2", "epsilon")
MAX_TEXT_CHARACTERS = 10_000_000  # a JSON member; a history of thousands of epochs is far less
MAX_RECORD_CHARACTERS = 2_000  # one epoch's record in the history: about 150 characters
MAX_CLASSES = 1000
MAX_COUNT = 2**63 - 1  # epoch, step, Adam's iterations: save_model writes them as int64
MAX_COMPRESSION = 50  # zeros compress about 1000:1, weights about 1.1:1 (see _check_compression)
# The architecture of files written before it was stored: LeNet-5 and Dense(128) -> Dense(10).
# Its names are the file's: SimpleCNN's ``num_filters`` is stored as "filters" (see ON_DISK).
OLD_ARCHITECTURE = {
    "filters": [6, 16],
    "kernel_sizes": [5, 5],
    "paddings": [2, 0],
    "input_shape": [1, 28, 28],
    "hidden": [128],
    "dropout": 0.0,
    "num_classes": 10,
}


# Names the file stores under others, older than SimpleCNN's (the format stays as it was): in
# the architecture, and in the run's settings (training/settings.py's TrainConfig fields).
ON_DISK = {"num_filters": "filters"}
SETTINGS_ON_DISK = {"num_filters": "filters", "kernel_sizes": "kernel_size", "paddings": "padding"}

TRAIN_COMMAND = "python simple_cnn_from_scratch.py"


class ModelFileError(ValueError):
    """A model file is missing, damaged, or not a SimpleCNN model; one line naming the file.

    ``reason`` is that line without its advice to train a new model (which a program offering
    its own way to train one, like the explorer, leaves out).
    """

    def __init__(self, reason: str, suggest_training: bool = False):
        advice = f"; train one with: {TRAIN_COMMAND}" if suggest_training else ""
        super().__init__(reason + advice)
        self.reason = reason


@dataclass
class SavedModel:
    """Everything a model file holds, as checked NumPy arrays and plain values.

    ``step > 0`` means training was interrupted after ``step`` batches of epoch ``epoch + 1``;
    ``partial_epoch`` then holds that epoch's running sums, so a resumed run can finish it exactly.
    """

    architecture: dict[str, Any]
    conv_filters: list[np.ndarray]
    head_weights: list[tuple[np.ndarray, np.ndarray]]  # (kernel (in, out), bias (out,)) per layer
    head_state: list[np.ndarray] = field(default_factory=list)
    conv_optimizer_settings: dict[str, float] = field(default_factory=dict)
    conv_optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    head_optimizer_state: list[np.ndarray] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    partial_epoch: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # TrainConfig field names and values
    history: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def save_model(path: str | os.PathLike, model: SavedModel) -> Path:
    """Write the model file atomically (see atomic_write.py): the old file or the new, never half.

    Returns the path written (a symbolic link's target, when ``path`` is a link).
    """
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "architecture": _json_array(
            {ON_DISK.get(name, name): value for name, value in model.architecture.items()}
        ),
        "epoch": np.array(model.epoch, np.int64),
        "step": np.array(model.step, np.int64),
        "partial_epoch": _json_array(model.partial_epoch),
        "config": _json_array(
            {SETTINGS_ON_DISK.get(name, name): value for name, value in model.config.items()}
        ),
        "history": _json_array(model.history),
        "conv_optimizer_settings": _json_array(model.conv_optimizer_settings),
    }
    for index, filters in enumerate(model.conv_filters, start=1):
        arrays[f"conv{index}_filters"] = np.asarray(filters, np.float32)
    for index, (kernel, bias) in enumerate(model.head_weights):
        arrays[f"head.{index}.kernel"] = np.asarray(kernel, np.float32)
        arrays[f"head.{index}.bias"] = np.asarray(bias, np.float32)
    for index, value in enumerate(model.head_state):
        arrays[f"head_state.{index}"] = np.asarray(value)
    for name, value in model.conv_optimizer_state.items():
        arrays[f"conv_optimizer.{name}"] = np.asarray(value)
    for index, value in enumerate(model.head_optimizer_state):
        arrays[f"head_optimizer.{index}"] = np.asarray(value)
    return write_atomically(path, lambda file: np.savez(file, **arrays))


def _json_array(value: Any) -> np.ndarray:
    return np.array(json.dumps(value))


# --------------------------------------------------------------------------------------------
# Loading: members checked by name and claimed size, then by shape, dtype and range
# --------------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike) -> SavedModel:
    """Read and check a model file written by :func:`save_model` (or by the first version).

    Raises
    ------
    ModelFileError
        One line naming the file: it is missing, unreadable, damaged, not a SimpleCNN model,
        or holds a setting, shape or number that cannot be right. A ValueError when ``path``
        is not a path at all.
    """
    path = as_path(path, "the model file")
    try:
        with _open_archive(path) as archive:
            return _read_model(_Members(archive, path))
    except ModelFileError:
        raise
    except PermissionError as error:
        raise ModelFileError(f"{printable(path)}: cannot read it ({error.strerror})") from None
    except MemoryError:
        raise ModelFileError(
            f"{printable(path)}: not enough memory to read it "
            f"({memory_available().describe()} left)"
        ) from None
    except UNREADABLE as error:
        # NumPy's and zipfile's own messages (pickles, zip internals) would only confuse.
        raise ModelFileError(
            f"{printable(path)}: not a readable .npz model file (damaged, truncated, or another "
            f"kind of file: {type(error).__name__})"
        ) from None


def _decompression_errors() -> tuple[type[BaseException], ...]:
    """What zipfile's decompressors raise on damaged data besides OSError and EOFError."""
    errors: list[type[BaseException]] = [zlib.error]
    try:
        import lzma  # absent from some Python builds, as zipfile allows

        errors.append(lzma.LZMAError)
    except ImportError:
        pass
    return tuple(errors)


# Everything reading a damaged archive can raise, found by reading zipfile.py and npy_header.py
# and by crafted files: zip internals (BadZipFile, struct.error), a method or flag zipfile does
# not take (NotImplementedError, RuntimeError: _Members refuses those by name first), numbers
# out of range (OverflowError), and the decompressors' own errors.
UNREADABLE = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    *_decompression_errors(),
)

# The zip compression methods Python's zipfile reads (bzip2 and LZMA when Python has them);
# np.savez writes "stored" members, np.savez_compressed and zip tools "deflate".
ZIP_METHOD_NAMES = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    9: "Deflate64",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    93: "Zstandard",
    95: "xz",
    98: "PPMd",
    99: "AES encryption",
}


def _readable_methods() -> set[int]:
    methods = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
    for method, module in ((zipfile.ZIP_BZIP2, "bz2"), (zipfile.ZIP_LZMA, "lzma")):
        try:
            __import__(module)
            methods.add(method)
        except ImportError:
            pass
    return methods


READABLE_METHODS = _readable_methods()


def _open_archive(path: str | os.PathLike) -> zipfile.ZipFile:
    if os.fsdecode(path) == "":
        raise ModelFileError("the model file path is empty; give the path of a .npz model file")
    if not os.path.exists(path):
        raise ModelFileError(f"{printable(path)}: no such model file", suggest_training=True)
    if not os.path.isfile(path):
        raise ModelFileError(
            f"{printable(path)}: not a regular file; give the path of a .npz model file"
        )
    with open(path, "rb") as file:
        if file.read(6) == b"\x93NUMPY":
            raise ModelFileError(f"{printable(path)}: a single NumPy array, not a .npz model file")
    return zipfile.ZipFile(path)


class _Members:
    """The archive's members, each read only after its name, claimed size and header pass."""

    def __init__(self, archive: zipfile.ZipFile, path: str | os.PathLike):
        self.archive = archive
        self.path = path
        self.infos = {}
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise self.error(
                    f"unexpected member {shown(info.filename)}: not a SimpleCNN model file"
                )
            self.infos[info.filename.removesuffix(".npy")] = info
        for name, info in self.infos.items():
            if info.flag_bits & 0x1:  # the zip format's "encrypted" flag
                raise self.error(
                    f"{name} is encrypted (password-protected), which this program cannot read; "
                    "use the file the trainer wrote, or save the model again"
                )
            if info.compress_type not in READABLE_METHODS:
                method = ZIP_METHOD_NAMES.get(info.compress_type, "an unknown method")
                raise self.error(
                    f"{name} is compressed with {method} (zip method {info.compress_type}), "
                    "which Python's zip reader cannot read; use the file the trainer wrote, or "
                    "compress it again with plain zip (deflate)"
                )

    def error(self, problem: str, suggest_training: bool = False) -> ModelFileError:
        return ModelFileError(f"{printable(self.path)}: {problem}", suggest_training)

    def names(self) -> set[str]:
        return set(self.infos)

    def array(self, name: str, shape=None, kinds: str = "f", max_bytes: int = 0) -> np.ndarray:
        """Member ``name`` as an array, after checking its claimed size, dtype kind and shape.

        ``shape`` is the exact shape required, or None for any shape of at most ``max_bytes``
        bytes of data. ``kinds`` lists the accepted dtype kinds: "f" float, "iu" integer,
        "U" text.
        """
        info = self.infos.get(name)
        if info is None:
            raise self.error(f"damaged model file: {name} is missing")
        if shape is not None:
            max_bytes = 8 * math.prod(shape)  # float64 at most
        if info.file_size > MAX_HEADER_BYTES + max_bytes:  # claimed by the zip's directory
            raise self.error(
                f"damaged model file: {name} claims {info.file_size:,} bytes, more than it can hold"
            )
        with self.archive.open(info) as stream:
            try:
                header = read_npy_header(stream)
            except NpyHeaderError as error:
                raise self.error(f"damaged model file: {name} {error}") from None
            dtype = header.dtype
            if dtype.kind not in kinds or dtype.hasobject:
                raise self.error(
                    f"{name} is {dtype}{header.shape}, expected {_kinds_name(kinds)}: "
                    "this file was saved from another architecture or is damaged"
                )
            if shape is not None and header.shape != tuple(shape):
                raise self.error(
                    f"{name} is {dtype}{header.shape}, expected {_kinds_name(kinds)}"
                    f"{tuple(shape)}: this file was saved from another architecture"
                )
            if header.data_bytes > max_bytes:
                raise self.error(f"damaged model file: {name} claims more numbers than it can hold")
            data = stream.read(header.data_bytes)
        if len(data) != header.data_bytes:
            raise self.error(f"damaged model file: {name} is cut short")
        order = "F" if header.fortran_order else "C"
        array = np.frombuffer(data, dtype).reshape(header.shape, order=order).copy()
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise self.error(f"damaged model file: {name} holds NaN or infinite values")
        return array

    def text(self, name: str, max_characters: int = MAX_TEXT_CHARACTERS) -> str:
        return str(self.array(name, None, kinds="U", max_bytes=4 * max_characters))

    def json(self, name: str, kind: type, max_characters: int = MAX_TEXT_CHARACTERS):
        text = self.text(name, max_characters)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # nested too deeply, or a number of 5,000 digits
            value = None
        if not isinstance(value, kind):
            raise self.error(f"damaged model file: bad training record ({name} is not valid)")
        return value

    def integer(self, name: str) -> int:
        """A count (epoch, step, iterations): from 0 to what save_model can write again."""
        value = int(self.array(name, (), kinds="iu"))
        if not 0 <= value <= MAX_COUNT:
            raise self.error(f"damaged model file: bad training record ({name} is {value})")
        return value


def _kinds_name(kinds: str) -> str:
    return {"f": "float", "iu": "integer", "U": "text"}.get(kinds, kinds)


def _read_model(members: _Members) -> SavedModel:
    try:
        file_format = members.text("format") if "format" in members.names() else "<none>"
    except ModelFileError:
        file_format = "<unreadable>"
    if file_format not in (FORMAT, OLD_FORMAT):
        raise members.error(
            f"not a SimpleCNN model file (format {shown(file_format)}, expected {FORMAT!r})",
            suggest_training=True,
        )
    if file_format == OLD_FORMAT:
        architecture = dict(OLD_ARCHITECTURE)
    else:
        architecture = _check_architecture(members.json("architecture", dict), members)
    in_memory = {stored: name for name, stored in ON_DISK.items()}
    architecture = {in_memory.get(name, name): value for name, value in architecture.items()}
    stages = plan_stages(
        architecture["num_filters"],
        architecture["kernel_sizes"],
        architecture["paddings"],
        architecture["input_shape"],
    )
    expected = _ExpectedMembers(members.names(), len(stages), len(architecture["hidden"]) + 1)
    if expected.unknown:
        raise members.error(
            f"unknown member {shown(expected.unknown[0])}: not written by this program"
        )

    # Every size the arrays will take is decided by now: the settings are checked against the
    # network, and the network against the memory, before any array is read.
    # Settings a file leaves out (the first version had no network settings) are its network's.
    network_settings = {name: architecture[name] for name in NETWORK_SETTINGS}
    config = {**network_settings, **_settings_from_disk(members.json("config", dict), members)}
    try:
        run = settings.check_saved_settings(config)
    except ValueError as error:
        raise members.error(f"damaged model file: bad training record ({error})") from None
    _check_settings_describe_the_network(run, architecture, stages, members)
    head_shapes = _head_shapes(architecture, stages)
    _check_it_fits_in_memory(stages, head_shapes, members)
    _check_compression(members)
    # The position next, so that a file is refused for it before its weights are read.
    epoch, step = members.integer("epoch"), members.integer("step")
    partial_epoch = _check_partial_epoch(members.json("partial_epoch", dict), members)
    _check_position(step, partial_epoch, run.batch_size, members)

    conv_filters = [
        members.array(f"conv{i}_filters", stage.filters_shape)
        for i, stage in enumerate(stages, start=1)
    ]
    head_weights = [
        (members.array(f"head.{i}.kernel", kernel), members.array(f"head.{i}.bias", bias))
        for i, (kernel, bias) in enumerate(head_shapes)
    ]
    # Optimizer and random state: Keras decides their shapes; none is larger than a weight.
    largest_bytes = 8 * max(math.prod(shape) for pair in head_shapes for shape in pair)
    head_state = [members.array(name, None, "iuf", 64) for name in expected.head_state]
    head_optimizer_state = [
        members.array(name, None, "iuf", largest_bytes) for name in expected.head_optimizer
    ]
    conv_settings, conv_state = _read_conv_optimizer(members, stages)
    # One record per epoch done: its length is bounded by the epochs before it is read.
    history_characters = min(MAX_TEXT_CHARACTERS, 2 + epoch * MAX_RECORD_CHARACTERS)
    history = _check_history(members.json("history", list, history_characters), epoch, members)
    return SavedModel(
        architecture=architecture,
        conv_filters=conv_filters,
        head_weights=head_weights,
        head_state=head_state,
        conv_optimizer_settings=conv_settings,
        conv_optimizer_state=conv_state,
        head_optimizer_state=head_optimizer_state,
        epoch=epoch,
        step=step,
        partial_epoch=partial_epoch,
        config=config,
        history=history,
    )


# The run's settings (settings.TrainConfig) that say what the architecture stores.
NETWORK_SETTINGS = ("num_filters", "kernel_sizes", "paddings", "hidden", "dropout")


def _settings_from_disk(stored: dict, members: _Members) -> dict:
    """The stored settings under TrainConfig's names (see SETTINGS_ON_DISK)."""
    in_memory = {name_on_disk: name for name, name_on_disk in SETTINGS_ON_DISK.items()}
    for name in stored:
        if name in SETTINGS_ON_DISK:  # a name this format does not use
            raise members.error(
                f"damaged model file: bad training record (unknown setting {shown(name)})"
            )
    return {in_memory.get(name, name): value for name, value in stored.items()}


def _check_settings_describe_the_network(run, architecture: dict, stages, members) -> None:
    """The stored settings build the stored network: resuming builds it from the settings."""
    run_stages = run.network_stages()
    found = {
        "num_filters": list(run.num_filters),
        "kernel_sizes": [stage.kernel_size for stage in run_stages],
        "paddings": [stage.padding for stage in run_stages],
        "hidden": list(run.hidden),
        "dropout": run.dropout,
    }
    stored = {**architecture, "paddings": [stage.padding for stage in stages]}
    for name in NETWORK_SETTINGS:
        if found[name] != stored[name]:
            raise members.error(
                f"damaged model file: its settings and its network differ in {name} "
                f"({shown(found[name])} and {shown(stored[name])})"
            )


_SCALAR_MEMBERS = {
    "format",
    "architecture",
    "epoch",
    "step",
    "partial_epoch",
    "config",
    "history",
    "conv_optimizer_settings",
    "conv_optimizer.iterations",
}


class _ExpectedMembers:
    """Which members a file of this architecture may hold; the rest are ``unknown``.

    The head's random state and the head optimizer's variables are numbered from 0 with no
    gaps; their counts are bounded (Keras' Adam keeps 2 moments per weight, plus 2 scalars).
    """

    def __init__(self, names: set[str], n_stages: int, n_dense: int):
        allowed = set(_SCALAR_MEMBERS)
        allowed |= {f"conv{i}_filters" for i in range(1, n_stages + 1)}
        allowed |= {f"conv_optimizer.{m}{i}" for m in "mv" for i in range(n_stages)}
        allowed |= {f"head.{i}.{w}" for i in range(n_dense) for w in ("kernel", "bias")}
        self.head_state = _numbered(names, "head_state", 8)
        self.head_optimizer = _numbered(names, "head_optimizer", 4 * n_dense + 4)
        allowed |= set(self.head_state) | set(self.head_optimizer)
        self.unknown = sorted(names - allowed)


def _numbered(names: set[str], prefix: str, limit: int) -> list[str]:
    """prefix.0, prefix.1, ... as long as they are in ``names`` (at most ``limit`` of them)."""
    numbered = []
    while f"{prefix}.{len(numbered)}" in names and len(numbered) < limit:
        numbered.append(f"{prefix}.{len(numbered)}")
    return numbered


def _check_architecture(architecture: dict, members: _Members) -> dict:
    """The stored architecture, every entry checked; the stages are checked by plan_stages."""
    keys = set(OLD_ARCHITECTURE)
    if set(architecture) != keys:
        raise members.error(f"damaged model file: the architecture must hold {sorted(keys)}")
    hidden = architecture["hidden"]
    dropout = architecture["dropout"]
    classes = architecture["num_classes"]
    if not (isinstance(hidden, list) and all(is_int(u) and u >= 1 for u in hidden)):
        raise members.error(f"damaged model file: bad hidden layer sizes {shown(hidden)}")
    if not (is_finite_number(dropout) and 0 <= dropout < 1):
        raise members.error(f"damaged model file: bad dropout {shown(dropout)}")
    if not (is_int(classes) and 2 <= classes <= MAX_CLASSES):
        raise members.error(f"damaged model file: bad number of classes {shown(classes)}")
    for name in ("filters", "kernel_sizes", "paddings", "input_shape"):
        if not (isinstance(architecture[name], list) and all(map(is_int, architecture[name]))):
            raise members.error(f"damaged model file: bad {name} {shown(architecture[name])}")
    # Its images and classes are the ones every program here uses: predicting reads 28x28 grey
    # pictures into MNIST's or Fashion-MNIST's 10 classes.
    if tuple(architecture["input_shape"]) != settings.INPUT_SHAPE:
        raise members.error(
            f"the network reads images of shape {tuple(architecture['input_shape'])}, but the "
            "programs here read 28x28 grey images (1, 28, 28): not a model they can use"
        )
    if classes != settings.NUM_CLASSES:
        raise members.error(
            f"the network has {classes} classes, but MNIST and Fashion-MNIST have "
            f"{settings.NUM_CLASSES}: not a model the programs here can use"
        )
    # The architecture sizes every array read after it, so each size it claims is bounded
    # first: no more stages and layers than the file has members, each within the bounds the
    # trainer's settings have (TrainConfig's checks), then the stages' sizes (plan_stages).
    layers = len(architecture["filters"]) + len(hidden) + 1
    if layers > len(members.names()):
        raise members.error(
            f"damaged model file: its architecture has {layers:,} layers, but the file holds "
            f"only {len(members.names())} arrays"
        )
    try:
        settings.TrainConfig(
            num_filters=tuple(architecture["filters"]),
            kernel_sizes=tuple(architecture["kernel_sizes"]),
            paddings=tuple(architecture["paddings"]),
            hidden=tuple(hidden),
            dropout=dropout,
            save_path=None,
        )
    except ValueError as error:
        raise members.error(f"damaged model file: impossible architecture ({error})") from None
    return architecture


def _check_compression(members: _Members) -> None:
    """The compressed members do not claim to inflate further than numbers compress.

    np.savez stores the arrays as they are; a file zipped again (deflate) shrinks its weights a
    little and its zeros (Adam's moments before the first step) a lot, to a third of the file at
    most. A few MB inflating to gigabytes of zeros is a file made to be read for nothing: the
    sizes it claims are within every bound, but it is refused before they are decompressed.
    """
    compressed = [info for info in members.infos.values() if info.compress_type != 0]
    claimed = sum(info.file_size for info in compressed)
    stored = sum(info.compress_size for info in compressed)
    if claimed > MAX_COMPRESSION * stored + 2**24:
        raise members.error(
            f"damaged model file: its compressed arrays claim {size_text(claimed)} from "
            f"{size_text(stored)}, more than numbers compress; use the file the trainer wrote"
        )


def _check_it_fits_in_memory(stages, head_shapes, members: _Members) -> None:
    """The weights the architecture sizes, with their optimizers' two moments each, fit in the
    memory this process may still use (checked before any of them is read)."""
    shapes = [stage.filters_shape for stage in stages] + [s for pair in head_shapes for s in pair]
    sizes = [math.prod(shape) for shape in shapes]
    # float32 weights and Adam's moments, and the bytes of the array being read.
    needed = 4 * (3 * sum(sizes) + max(sizes))
    limit = memory_available()
    if needed > limit.bytes:
        raise members.error(
            f"its network has {sum(sizes):,} weights: loading them and their optimizer state "
            f"takes about {size_text(needed)}, more than the {limit.describe()} this process "
            "may use"
        )


def _head_shapes(architecture: dict, stages) -> list[tuple[tuple[int, int], tuple[int]]]:
    """(kernel shape, bias shape) of each Dense layer of the head."""
    last = stages[-1]
    sizes = [last.out_channels * last.out_size[0] * last.out_size[1], *architecture["hidden"]]
    sizes.append(architecture["num_classes"])
    return [((n_in, n_out), (n_out,)) for n_in, n_out in zip(sizes, sizes[1:], strict=False)]


def _read_conv_optimizer(members: _Members, stages) -> tuple[dict, dict]:
    """The NumPy Adam's settings and state; its moments are absent before its first step."""
    problem = "damaged model file: bad conv optimizer state"
    settings = members.json("conv_optimizer_settings", dict)
    if set(settings) != set(ADAM_SETTINGS) or not all(
        is_finite_number(settings[name]) and settings[name] >= 0 for name in ADAM_SETTINGS
    ):
        raise members.error(f"{problem} (settings {shown(settings)})")
    # epsilon keeps Adam's step finite where a filter's gradient has always been 0.
    if not (
        settings["beta_1"] < 1
        and settings["beta_2"] < 1
        and settings["epsilon"] > 0
        and settings["learning_rate"] > 0
    ):
        raise members.error(f"{problem} (settings {shown(settings)})")
    if "conv_optimizer.iterations" not in members.names():
        raise members.error(f"{problem} (conv_optimizer.iterations is missing)")
    state = {"iterations": np.array(members.integer("conv_optimizer.iterations"), np.int64)}
    moments = [f"{m}{i}" for m in "mv" for i in range(len(stages))]
    present = [name for name in moments if f"conv_optimizer.{name}" in members.names()]
    if present and len(present) != len(moments):
        raise members.error(f"{problem}: it does not match the filters")
    for name in present:
        shape = stages[int(name[1:])].filters_shape
        try:
            state[name] = members.array(f"conv_optimizer.{name}", shape)
        except ModelFileError:
            raise members.error(
                f"{problem}: conv_optimizer.{name} does not match the filters"
            ) from None
    return settings, state


def _check_partial_epoch(partial_epoch: dict, members: _Members) -> dict:
    """A mid-epoch save's running sums: empty, or four numbers >= 0."""
    keys = {"loss_sum", "correct", "seen", "seconds"}
    if partial_epoch and (
        set(partial_epoch) != keys
        or not all(is_finite_number(v) and v >= 0 for v in partial_epoch.values())
        or not is_int(partial_epoch["seen"])
        or not is_int(partial_epoch["correct"])
        or partial_epoch["correct"] > partial_epoch["seen"]
    ):
        raise members.error("damaged model file: bad training record (partial_epoch)")
    return partial_epoch


def _check_position(step: int, partial_epoch: dict, batch_size: int, members: _Members) -> None:
    """The running sums agree with the step: none before the epoch's first step (or all zero,
    for a run stopped before it), and after ``step`` full batches at most that many images.

    A resumed run starts from these sums: a step without them would divide by zero, and sums
    without a step would count images this epoch never trained on.
    """
    seen = partial_epoch.get("seen", 0)
    if (step == 0 and seen != 0) or (step > 0 and not 0 < seen <= step * batch_size):
        raise members.error(
            f"damaged model file: bad training record (partial_epoch counts {seen} images "
            f"after {step} steps of {batch_size})"
        )


def _check_history(records: list, epoch: int, members: _Members) -> list:
    """One record per finished epoch (training/history.py says what a record may hold): a
    resumed run extends them, and the curves are drawn from them."""
    try:
        check_records(records)
    except HistoryError as error:
        raise members.error(f"damaged model file: bad training record (history: {error})") from None
    if len(records) != epoch:
        raise members.error(
            f"damaged model file: bad training record (history: {len(records)} epochs for "
            f"{epoch} done)"
        )
    return records
