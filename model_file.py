"""The trained-model file: one ``.npz`` holding everything a SimpleCNN training run has learned.

The driver (``simple_cnn_from_scratch.py``) writes it at the end of every epoch and on Ctrl-C,
``predict_digit.py`` and the plots read it. It is a plain NumPy archive, so ``np.load(path)``
shows every array by name:

==========================  ==================================================================
``format``                  ``"simple-cnn-lenet5-v1"``: which network the arrays belong to
``conv1_filters``           (6, 1, 5, 5) float32
``conv2_filters``           (16, 6, 5, 5) float32
``head.0.kernel`` / bias    (400, 128) / (128,) float32: Dense(128, relu)
``head.1.kernel`` / bias    (128, 10) / (10,) float32: Dense(10), logits
``conv_optimizer.<name>``   the NumPy Adam's ``state_dict()`` (moments of both filter banks)
``conv_optimizer_settings`` JSON: its learning rate, beta_1, beta_2 and epsilon
``head_optimizer.<i>``      the Keras Adam's ``variables`` in order (iterations, moments)
``epoch``                   epochs completed
``step``                    steps done in epoch ``epoch + 1`` when saved mid-epoch (Ctrl-C)
``partial_epoch``           JSON: that partial epoch's running sums (loss, correct, seen, seconds)
``config``                  JSON: the training settings (seed, batch size, learning rate, ...)
``history``                 JSON: one record per finished epoch (loss, accuracy, val_*, seconds)
==========================  ==================================================================
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from adam import Adam
from simple_cnn import SimpleCNN


def _import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) kept off the terminal.

    TF 2.20+ prints them before its logging is set up, so TF_CPP_MIN_LOG_LEVEL alone cannot hide
    them; file descriptor 2 goes to /dev/null for the import and the device probe only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)
    return tensorflow


tf = _import_tensorflow_quietly()
import keras  # noqa: E402  (after the quiet TensorFlow import above)

FORMAT = "simple-cnn-lenet5-v1"
ADAM_SETTINGS = ("learning_rate", "beta_1", "beta_2", "epsilon")
HEAD_UNITS = (128, 10)
# Every array the file must hold, with its shape; the optimizers' entries are checked on restore.
WEIGHT_SHAPES = {
    "conv1_filters": (6, 1, 5, 5),
    "conv2_filters": (16, 6, 5, 5),
    "head.0.kernel": (SimpleCNN.NUM_FEATURES, HEAD_UNITS[0]),
    "head.0.bias": (HEAD_UNITS[0],),
    "head.1.kernel": HEAD_UNITS,
    "head.1.bias": (HEAD_UNITS[1],),
}


class ModelFileError(ValueError):
    """A model file is missing, damaged, or belongs to another network."""


@dataclass
class TrainedModel:
    """Everything a model file holds, rebuilt into live objects.

    ``step > 0`` means training was interrupted after ``step`` batches of epoch ``epoch + 1``;
    ``partial_epoch`` then holds that epoch's running sums, so a resumed run can finish it exactly.
    """

    cnn: SimpleCNN
    head: keras.Sequential
    conv_optimizer: Adam
    head_optimizer: keras.optimizers.Adam
    epoch: int
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    partial_epoch: dict[str, float] = field(default_factory=dict)


def build_head(seed: int | None = None) -> keras.Sequential:
    """The dense head on top of SimpleCNN's 400 features: Dense(128, relu) then Dense(10) logits.

    Parameters
    ----------
    seed : int or None
        Seeds the Glorot-uniform kernels, so the same seed always gives the same starting head.

    Returns
    -------
    keras.Sequential
        Maps features (N, 400) float32 to logits (N, 10).
    """
    # Distinct seeds per layer: two layers sharing one seed would start from correlated draws.
    layer_seeds = (None, None) if seed is None else (seed, seed + 1)
    return keras.Sequential(
        [
            keras.Input((SimpleCNN.NUM_FEATURES,)),
            keras.layers.Dense(
                HEAD_UNITS[0],
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seeds[0]),
            ),
            keras.layers.Dense(
                HEAD_UNITS[1], kernel_initializer=keras.initializers.GlorotUniform(layer_seeds[1])
            ),
        ]
    )


def build_head_optimizer(head: keras.Model, learning_rate: float = 1e-3) -> keras.optimizers.Adam:
    """A Keras Adam for ``head``, built now so its state exists before the first step."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(head.trainable_variables)
    return optimizer


def save_model(
    path: str | os.PathLike,
    *,
    cnn: SimpleCNN,
    head: keras.Model,
    conv_optimizer: Adam,
    head_optimizer: keras.optimizers.Optimizer,
    epoch: int,
    config: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
    step: int = 0,
    partial_epoch: dict[str, float] | None = None,
) -> None:
    """Write the model file atomically: to a temporary file beside ``path``, then os.replace.

    An interrupted save therefore leaves the previous file intact.
    """
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "conv1_filters": np.asarray(cnn.conv1_filters, np.float32),
        "conv2_filters": np.asarray(cnn.conv2_filters, np.float32),
        "epoch": np.array(epoch, np.int64),
        "step": np.array(step, np.int64),
        "partial_epoch": np.array(json.dumps(partial_epoch or {})),
        "config": np.array(json.dumps(config)),
        "history": np.array(json.dumps(history or [])),
    }
    for index, layer in enumerate(_dense_layers(head)):
        arrays[f"head.{index}.kernel"] = np.asarray(layer.kernel, np.float32)
        arrays[f"head.{index}.bias"] = np.asarray(layer.bias, np.float32)
    for name, value in conv_optimizer.state_dict().items():
        arrays[f"conv_optimizer.{name}"] = np.asarray(value)
    arrays["conv_optimizer_settings"] = np.array(
        json.dumps({name: float(getattr(conv_optimizer, name)) for name in ADAM_SETTINGS})
    )
    for index, variable in enumerate(head_optimizer.variables):
        arrays[f"head_optimizer.{index}"] = np.asarray(variable)

    replace_atomically(path, lambda file: np.savez(file, **arrays))


def replace_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``.

    os.replace is atomic, so readers see the old file or the new one, never half of one, and
    an interrupted or failed write leaves the old file intact.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary_path = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as temporary_file:
            # mkstemp makes the file private (0600); give it the mode a plain open() would.
            os.chmod(temporary_path, 0o666 & ~_current_umask())
            write(temporary_file)
            temporary_file.flush()
            os.fsync(temporary_file.fileno())
        os.replace(temporary_path, path)
    except BaseException:
        os.unlink(temporary_path)
        raise


def load_model(path: str | os.PathLike, impl: str = "fast") -> TrainedModel:
    """Read a model file written by :func:`save_model` and rebuild every object in it.

    Parameters
    ----------
    path : str or PathLike
        The ``.npz`` model file.
    impl : {"fast", "loops"}
        Which SimpleCNN implementation the rebuilt network uses.

    Raises
    ------
    ModelFileError
        One line naming the file: it is missing, unreadable, damaged, or from another network.
    """
    arrays = _read_arrays(path)

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}")

    file_format = str(arrays.get("format", "<none>"))
    if file_format != FORMAT:
        raise fail(
            f"not a SimpleCNN model file (format {file_format!r}, expected {FORMAT!r}); "
            "train one with: python simple_cnn_from_scratch.py"
        )
    for name, shape in WEIGHT_SHAPES.items():
        if name not in arrays:
            raise fail(f"damaged model file: {name} is missing")
        array = arrays[name]
        if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
            raise fail(
                f"{name} is {array.dtype}{array.shape}, expected float{shape}: this file was "
                "saved from another architecture"
            )
        if not np.all(np.isfinite(array)):
            raise fail(f"damaged model file: {name} holds NaN or infinite values")
    try:
        epoch = int(arrays["epoch"])
        step = int(arrays["step"])
        config = json.loads(str(arrays["config"]))
        history = json.loads(str(arrays["history"]))
        partial_epoch = json.loads(str(arrays["partial_epoch"]))
    except (KeyError, TypeError, ValueError) as error:
        raise fail(f"damaged model file: bad training record ({error})") from None
    records_ok = all(
        isinstance(record, kind)
        for record, kind in ((config, dict), (history, list), (partial_epoch, dict))
    )
    if not records_ok or epoch < 0 or step < 0:
        raise fail("damaged model file: bad training record")

    cnn = SimpleCNN(seed=0, impl=impl)
    cnn.conv1_filters = arrays["conv1_filters"].astype(cnn.dtype)
    cnn.conv2_filters = arrays["conv2_filters"].astype(cnn.dtype)
    head = build_head()
    for index, layer in enumerate(_dense_layers(head)):
        layer.kernel.assign(arrays[f"head.{index}.kernel"].astype(np.float32))
        layer.bias.assign(arrays[f"head.{index}.bias"].astype(np.float32))

    conv_state = {
        name.removeprefix("conv_optimizer."): value
        for name, value in arrays.items()
        if name.startswith("conv_optimizer.")
    }
    try:
        conv_optimizer = Adam(**json.loads(str(arrays["conv_optimizer_settings"])))
        conv_optimizer.load_state_dict(conv_state)
    except (KeyError, TypeError, ValueError) as error:
        raise fail(f"damaged model file: bad conv optimizer state ({error})") from None
    filter_shapes = [WEIGHT_SHAPES["conv1_filters"], WEIGHT_SHAPES["conv2_filters"]]
    for moments in (conv_optimizer.m, conv_optimizer.v):
        # Empty moments are a valid state too: an optimizer that has not stepped yet.
        if moments and [moment.shape for moment in moments] != filter_shapes:
            raise fail("damaged model file: conv optimizer state does not match the filters")

    head_optimizer = build_head_optimizer(head)
    head_state = [arrays.get(f"head_optimizer.{i}") for i in range(len(head_optimizer.variables))]
    for variable, value in zip(head_optimizer.variables, head_state, strict=True):
        if value is None or tuple(value.shape) != tuple(variable.shape):
            raise fail("damaged model file: head optimizer state does not match the head")
        variable.assign(value.astype(variable.dtype))

    return TrainedModel(
        cnn=cnn,
        head=head,
        conv_optimizer=conv_optimizer,
        head_optimizer=head_optimizer,
        epoch=epoch,
        config=config,
        history=history,
        step=step,
        partial_epoch=partial_epoch,
    )


def predict_logits(
    cnn: SimpleCNN, head: keras.Model, images: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """Logits for uint8 images, computed batch by batch to keep memory small.

    Parameters
    ----------
    images : ndarray of shape (N, 28, 28), uint8
        MNIST-style images: bright digit on a dark background, 0-255.

    Returns
    -------
    ndarray of shape (N, 10), float32
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != SimpleCNN.INPUT_SHAPE[1:]:
        raise ValueError(f"images must have shape (N, 28, 28), got {images.shape}")
    logits = np.empty((len(images), HEAD_UNITS[1]), np.float32)
    for start in range(0, len(images), batch_size):
        features = cnn.forward(images_to_input(images[start : start + batch_size]))
        logits[start : start + batch_size] = head(features, training=False)
    return logits


def predict_proba(
    cnn: SimpleCNN, head: keras.Model, images: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """Class probabilities (N, 10) for uint8 images (N, 28, 28); each row sums to 1."""
    logits = predict_logits(cnn, head, images, batch_size)
    # Shift by the row maximum so exp never overflows.
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def images_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> the network's float32 input (N, 1, 28, 28) in [0, 1]."""
    return np.divide(images, np.float32(255.0), dtype=np.float32)[:, np.newaxis]  # one pass


def _current_umask() -> int:
    umask = os.umask(0)  # the only way to read the umask is to set it, so set it straight back
    os.umask(umask)
    return umask


def _dense_layers(head: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]


def _read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the archive, read eagerly so a damaged member fails here, not later."""
    if not os.path.isfile(path):
        raise ModelFileError(
            f"{path}: no such model file; train one with: python simple_cnn_from_scratch.py"
        )
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path}: a single NumPy array, not a .npz model file")
        with archive:
            return {name: archive[name] for name in archive.files}
    except ModelFileError:
        raise
    except PermissionError as error:
        raise ModelFileError(f"{path}: cannot read it ({error.strerror})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        # NumPy's own messages here (pickles, zip internals) would only confuse.
        raise ModelFileError(
            f"{path}: not a readable .npz model file (damaged, truncated, or another kind of file)"
        ) from None
