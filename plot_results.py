"""PNG pictures of a trained SimpleCNN: what it learned, what it sees, where it fails.

Run after training::

    python simple_cnn_from_scratch.py --history history.json
    python plot_results.py --model simple_cnn_model.npz --history history.json --out plots/

It writes five PNG files into ``plots/``:

- ``training_curves.png``: loss and accuracy per epoch, training and validation;
- ``conv1_filters.png``: the six learned 5x5 filters of the first convolution;
- ``feature_maps.png``: one test digit after conv1, pool1, conv2 and pool2;
- ``confusion_matrix.png``: true against predicted class over the test set;
- ``misclassified.png``: the test digits the model got wrong most confidently.

Each ``*_figure`` function builds one figure from plain arrays and returns it, so a notebook can
show it inline; ``save_figure`` writes it to disk. The figures are drawn with matplotlib's Agg
canvas directly (no pyplot, no global backend), so they work without a screen and importing this
module never changes the backend of the notebook that imports it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# The layers drawn in feature_maps.png, in forward order (keys of SimpleCNN.feature_maps).
FEATURE_MAP_LAYERS = ("conv1", "pool1", "conv2", "pool2")
MAX_MISCLASSIFIED = 36


class PlotError(ValueError):
    """Bad input for a plot: a missing or damaged history file, arrays of the wrong shape."""


# --------------------------------------------------------------------------------------------
# Input: the history JSON written by simple_cnn_from_scratch.py --history
# --------------------------------------------------------------------------------------------


def load_history(path: str | os.PathLike) -> dict:
    """Read and check a training history file.

    Parameters
    ----------
    path : str or PathLike
        JSON written by ``simple_cnn_from_scratch.py --history FILE``:
        ``{"epochs": [{"epoch": 1, "loss": ..., "accuracy": ..., "val_loss": ...,
        "val_accuracy": ..., "seconds": ...}, ...], "test_loss": ..., "test_accuracy": ...}``.

    Returns
    -------
    dict
        The parsed history; every epoch has numeric ``epoch``, ``loss`` and ``accuracy``.

    Raises
    ------
    PlotError
        The file is missing, is not JSON, or does not have that structure.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlotError(
            f"history file {path} not found; train with "
            f"'python simple_cnn_from_scratch.py --history {path}' first, or leave out --history"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlotError(f"cannot read history file {path}: {exc}") from None
    try:
        history = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlotError(
            f"history file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "it may be truncated: train again with --history"
        ) from None
    check_history(history, source=str(path))
    return history


def check_history(history: object, source: str = "history") -> None:
    """Raise PlotError unless ``history`` has a non-empty ``epochs`` list of numeric records."""
    expected = "expected the JSON written by 'simple_cnn_from_scratch.py --history FILE'"
    if not isinstance(history, Mapping) or not isinstance(history.get("epochs"), list):
        raise PlotError(f"{source} has no 'epochs' list; {expected}")
    if not history["epochs"]:
        raise PlotError(f"{source} has no epochs (an empty 'epochs' list); {expected}")
    for position, record in enumerate(history["epochs"], start=1):
        if not isinstance(record, Mapping):
            raise PlotError(f"{source}: epoch record {position} is not an object; {expected}")
        for key in ("epoch", "loss", "accuracy"):
            if not _is_number(record.get(key)):
                raise PlotError(
                    f"{source}: epoch record {position} lacks a numeric '{key}'; {expected}"
                )


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True is no loss value.
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Figures: each builds one matplotlib Figure from plain data and does no I/O
# --------------------------------------------------------------------------------------------


def _new_figure(width_inches: float, height_inches: float) -> Figure:
    fig = Figure(figsize=(width_inches, height_inches), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas: render to pixels without any GUI
    return fig


def training_curves_figure(history: Mapping) -> Figure:
    """Loss and accuracy per epoch, training and validation, side by side.

    Parameters
    ----------
    history : Mapping
        As returned by :func:`load_history`. ``val_loss``/``val_accuracy`` are drawn when present;
        ``test_loss``/``test_accuracy`` (after the last epoch) are drawn as dotted lines.
    """
    check_history(history)
    records = history["epochs"]
    epochs = [record["epoch"] for record in records]
    fig = _new_figure(11, 4.2)
    loss_axes, accuracy_axes = fig.subplots(1, 2)
    for axes, key in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.plot(epochs, [r[key] for r in records], "o-", color="tab:blue", label="training")
        # Validation may be missing (or null) in some epochs: draw the ones that have it.
        val_points = [(r["epoch"], r.get(f"val_{key}")) for r in records]
        val_points = [(epoch, value) for epoch, value in val_points if _is_number(value)]
        if val_points:
            axes.plot(*zip(*val_points, strict=True), "s--", color="tab:orange", label="validation")
        test_value = history.get(f"test_{key}")
        if _is_number(test_value):
            axes.axhline(test_value, color="tab:green", ls=":", label=f"test ({test_value:.4f})")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.set_title(f"{key} per epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no tick at epoch 1.5
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_ylim(bottom=0)
    return fig


def filters_figure(filters: np.ndarray, title: str = "conv1 filters") -> Figure:
    """Draw convolution filters as a grid of small images on one diverging colour scale.

    Parameters
    ----------
    filters : ndarray of shape (F, C, K, K)
        F filters over C input channels; a row per filter when C > 1, else one row of F.
    title : str
        Figure title.

    Notes
    -----
    Red is a positive weight, blue a negative one, white zero: the scale is symmetric around 0
    and shared by all filters, so their strengths can be compared.
    """
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim != 4 or filters.shape[2] != filters.shape[3] or 0 in filters.shape:
        raise PlotError(f"filters must have shape (F, C, K, K), got {filters.shape}")
    num_filters, num_channels = filters.shape[:2]
    rows, cols = (1, num_filters) if num_channels == 1 else (num_filters, num_channels)
    # The colour scale must be symmetric so that white means exactly zero.
    vmax = float(np.max(np.abs(filters))) or 1.0
    cell_inches = 1.5 if num_channels == 1 else 0.7
    fig = _new_figure(cols * cell_inches + 1.2, rows * cell_inches + 0.8)
    grid = fig.subplots(rows, cols, squeeze=False)
    for f in range(num_filters):
        for c in range(num_channels):
            axes = grid[0, f] if num_channels == 1 else grid[f, c]
            image = axes.imshow(filters[f, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            axes.set_xticks([])
            axes.set_yticks([])
            if num_channels == 1:
                axes.set_title(f"filter {f}", fontsize=10)
            elif f == 0:
                axes.set_title(f"in {c}", fontsize=8)
        if num_channels > 1:
            grid[f, 0].set_ylabel(f"filter {f}", fontsize=8)
    fig.colorbar(image, ax=grid, shrink=0.9, label="weight")
    k = filters.shape[2]
    fig.suptitle(f"{title}: {num_filters} x {num_channels} x {k} x {k}")
    return fig


def feature_maps_figure(
    image: np.ndarray,
    feature_maps: Mapping[str, np.ndarray],
    layers: Sequence[str] = FEATURE_MAP_LAYERS,
    title: str = "one digit through the network",
) -> Figure:
    """The input digit and its activations after each layer, one row per layer.

    Parameters
    ----------
    image : ndarray of shape (28, 28) or (1, 28, 28)
        The input image.
    feature_maps : Mapping of str to ndarray of shape (N, C, H, W)
        As returned by ``SimpleCNN.feature_maps``; only sample 0 is drawn.
    layers : sequence of str
        Keys of ``feature_maps`` to draw, one row each.
    title : str
        Figure title.

    Notes
    -----
    A layer with negative values (a convolution before its ReLU) gets a diverging scale centred
    on 0; a non-negative one (after ReLU or pooling) a sequential scale from 0. Each row has its
    own scale because activations grow from layer to layer.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise PlotError(f"image must have shape (H, W) or (1, H, W), got {image.shape}")
    maps = {}
    for layer in layers:
        if layer not in feature_maps:
            raise PlotError(
                f"feature_maps has no layer {layer!r}; it has {sorted(feature_maps)} "
                "(pass the dict returned by SimpleCNN.feature_maps)"
            )
        array = np.asarray(feature_maps[layer], dtype=np.float64)
        if array.ndim != 4 or array.shape[0] == 0:
            raise PlotError(
                f"feature map {layer!r} must have shape (N, C, H, W), got {array.shape}"
            )
        maps[layer] = array[0]
    # Eight maps per line keeps the 16-channel layers compact; the input sits in its own column.
    cols = 8
    lines = [math.ceil(array.shape[0] / cols) for array in maps.values()]
    fig = _new_figure(1.05 * cols + 3.2, 1.05 * sum(lines) + 0.9)
    input_part, layers_part = fig.subfigures(1, 2, width_ratios=[1.6, 1.05 * cols + 1.6])
    input_axes = input_part.subplots()
    input_axes.imshow(image, cmap="gray_r")
    input_axes.set_title(f"input\n{image.shape[0]}x{image.shape[1]}", fontsize=10)
    input_axes.set_xticks([])
    input_axes.set_yticks([])
    # One grid for all layers, colour bars in the last column: the columns line up across rows.
    grid = layers_part.add_gridspec(sum(lines), cols + 1, width_ratios=[1] * cols + [0.12])
    first_line = 0
    for (layer, array), layer_lines in zip(maps.items(), lines, strict=True):
        channels, height, width = array.shape
        low, high = float(array.min()), float(array.max())
        if low < 0:
            limit = max(-low, high) or 1.0
            cmap, vmin, vmax = "RdBu_r", -limit, limit
        else:
            cmap, vmin, vmax = "viridis", 0.0, high or 1.0
        for channel in range(channels):
            axes = layers_part.add_subplot(grid[first_line + channel // cols, channel % cols])
            shown = axes.imshow(array[channel], cmap=cmap, vmin=vmin, vmax=vmax)
            axes.set_xticks([])
            axes.set_yticks([])
            if channel == 0:
                axes.set_ylabel(f"{layer}\n{channels}x{height}x{width}", fontsize=10)
        colorbar_axes = layers_part.add_subplot(grid[first_line : first_line + layer_lines, cols])
        layers_part.colorbar(shown, cax=colorbar_axes)
        first_line += layer_lines
    fig.suptitle(title)
    return fig


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Count how often each true class was predicted as each class.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (N,)
        Integer labels in ``[0, num_classes)``.

    Returns
    -------
    ndarray of shape (num_classes, num_classes)
        ``matrix[t, p]`` = number of samples of true class t predicted as p.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise PlotError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise PlotError(f"{name} has labels outside 0..{num_classes - 1}")
    # One bincount over the flat index t * C + p counts every (true, predicted) pair.
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_matrix_figure(
    matrix: np.ndarray, class_names: Sequence[str] | None = None, title: str = "test set"
) -> Figure:
    """Draw a confusion matrix with the count written in every cell.

    Parameters
    ----------
    matrix : ndarray of shape (C, C)
        Counts, rows = true class, columns = predicted class (see :func:`confusion_matrix`).
    class_names : sequence of C str, optional
        Tick labels; the class indices when omitted.
    title : str
        Figure title; the accuracy is appended.

    Notes
    -----
    The colour scale is logarithmic: the diagonal holds about a thousand digits per class and the
    mistakes a handful, and on a linear scale the mistakes would all look white. Zero cells are
    left white, their 0 written in grey.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise PlotError(f"confusion matrix must be square (C, C), got shape {matrix.shape}")
    if np.any(matrix < 0):
        raise PlotError("confusion matrix has negative counts")
    num_classes = matrix.shape[0]
    names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise PlotError(f"{len(names)} class names for a {num_classes}-class confusion matrix")
    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else float("nan")
    fig = _new_figure(8.2, 7.0)
    axes = fig.subplots()
    masked = np.ma.masked_equal(matrix, 0)
    norm = LogNorm(vmin=1, vmax=max(int(matrix.max()), 2))
    image = axes.imshow(masked, cmap="Blues", norm=norm)
    # White text on dark cells, black on light ones.
    dark = norm(np.maximum(matrix, 1)) > 0.6
    font_size = 9 if num_classes <= 10 else 6
    for t in range(num_classes):
        for p in range(num_classes):
            axes.text(
                p,
                t,
                str(int(matrix[t, p])),
                ha="center",
                va="center",
                fontsize=font_size,
                # Zeros in grey, so the eye goes to the counts that matter.
                color="white" if dark[t, p] else ("black" if matrix[t, p] else "0.7"),
            )
    axes.set_xticks(range(num_classes), names, rotation=45 if max(map(len, names)) > 2 else 0)
    axes.set_yticks(range(num_classes), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"confusion matrix, {title}: {total} images, accuracy {accuracy:.2%}")
    fig.colorbar(image, ax=axes, shrink=0.8, label="count (log scale)")
    return fig


def misclassified_figure(
    images: np.ndarray,
    true_labels: np.ndarray,
    predicted_labels: np.ndarray,
    confidences: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """A grid of misclassified digits titled "true 7 / pred 1".

    Parameters
    ----------
    images : ndarray of shape (M, 28, 28)
        The misclassified images (any numeric dtype), in the order to draw them.
    true_labels, predicted_labels : ndarray of shape (M,)
        Their labels.
    confidences : ndarray of shape (M,), optional
        Probability the model gave its (wrong) prediction; written under each title.
    class_names : sequence of str, optional
        Names for the labels (e.g. Fashion-MNIST); the digits when omitted.
    title : str, optional
        Figure title; "M misclassified images" when omitted.
    """
    images = np.asarray(images)
    true_labels = np.asarray(true_labels)
    predicted_labels = np.asarray(predicted_labels)
    if images.ndim != 3:
        raise PlotError(f"images must have shape (M, H, W), got {images.shape}")
    count = images.shape[0]
    if true_labels.shape != (count,) or predicted_labels.shape != (count,):
        raise PlotError(
            f"need one true and one predicted label per image: {count} images, "
            f"labels of shape {true_labels.shape} and {predicted_labels.shape}"
        )
    if confidences is not None and np.shape(confidences) != (count,):
        raise PlotError(f"confidences must have shape ({count},), got {np.shape(confidences)}")

    def name(label: int) -> str:
        return str(label) if class_names is None else class_names[int(label)]

    # Class names (Fashion-MNIST) are too long for "true Pullover / pred Coat" on one line.
    separator = " / " if class_names is None else "\n"
    cols = min(max(count, 1), 9)
    rows = max(math.ceil(count / cols), 1)
    fig = _new_figure(1.3 * cols + 0.4, (1.55 if class_names is None else 1.7) * rows + 0.7)
    grid = fig.subplots(rows, cols, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for i in range(count):
        axes = grid[i // cols, i % cols]
        axes.imshow(images[i], cmap="gray_r")
        label = f"true {name(true_labels[i])}{separator}pred {name(predicted_labels[i])}"
        if confidences is not None:
            label += f"\n{float(confidences[i]):.0%} sure"
        axes.set_title(label, fontsize=8, color="darkred")
    if count == 0:
        grid[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    fig.suptitle(title or f"{count} misclassified images")
    return fig


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG file atomically and return the path.

    The PNG goes to a temporary file in the same directory first and is moved into place with
    os.replace, so an interrupted run never leaves a half-written picture.
    """
    path = Path(path)
    # A name of our own rather than mkstemp: mkstemp's 0600 mode would make the PNG private.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(temporary, format="png")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def make_all_plots(
    model_path: str | os.PathLike,
    history_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    data_dir: str | None = None,
    dataset: str | None = None,
    sample_index: int = 0,
) -> list[Path]:
    """Write every PNG for a saved model (and its history) into ``out_dir``.

    Parameters
    ----------
    model_path : str or PathLike
        The ``.npz`` model file written by the trainer.
    history_path : str or PathLike or None
        The history JSON, for ``training_curves.png``. None: use the per-epoch records stored
        in the model file instead (no test-set line), and skip the curves if it has none.
    out_dir : str or PathLike
        Directory for the PNG files, created if missing.
    data_dir : str, optional
        Where the dataset lives (see ``download_mnist.load_dataset``).
    dataset : {"mnist", "fashion"}, optional
        The test set to evaluate on; by default the one in the model's config, else "mnist".
    sample_index : int
        Index of the test image drawn in ``feature_maps.png``.

    Returns
    -------
    list of Path
        The files written, in the order listed in the module docstring.

    Raises
    ------
    ValueError
        ``PlotError`` for a bad history or output directory, ``model_file.ModelFileError`` for a
        bad model file, ``download_mnist.DatasetError`` for missing data.
    """
    # Imported here: they pull in TensorFlow, which a figure function alone does not need.
    import download_mnist
    import model_file

    # Cheap checks first, so a typo fails before the model and the data are loaded.
    history = load_history(history_path) if history_path is not None else None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlotError(f"output directory {out_dir} is a file; pass a directory to --out")
    trained = model_file.load_model(model_path)
    if dataset is None:
        dataset = trained.config.get("dataset", "mnist")
    _, _, x_test, y_test = download_mnist.load_dataset(data_dir, dataset)
    if not 0 <= sample_index < len(x_test):
        raise PlotError(
            f"sample index {sample_index} is outside the test set (0..{len(x_test) - 1})"
        )
    class_names = download_mnist.FASHION_LABELS if dataset == "fashion" else None
    out_dir.mkdir(parents=True, exist_ok=True)

    if history is None and trained.history:
        history = {"epochs": trained.history}
        check_history(history, source=f"{model_path} (its training history)")

    figures: list[tuple[str, Figure]] = []
    if history is not None:
        figures.append(("training_curves.png", training_curves_figure(history)))
    cnn = trained.cnn
    figures.append(
        ("conv1_filters.png", filters_figure(cnn.conv1_filters, "learned conv1 filters"))
    )

    sample = x_test[sample_index]
    sample_input = model_file.images_to_input(sample[np.newaxis])  # (1, 1, 28, 28) in [0, 1]
    sample_title = f"test image {sample_index} (label {y_test[sample_index]}) through the network"
    figures.append(
        (
            "feature_maps.png",
            feature_maps_figure(sample, cnn.feature_maps(sample_input), title=sample_title),
        )
    )

    probabilities = model_file.predict_proba(cnn, trained.head, x_test)
    predicted = probabilities.argmax(axis=1)
    num_classes = probabilities.shape[1]
    figures.append(
        (
            "confusion_matrix.png",
            confusion_matrix_figure(
                confusion_matrix(y_test, predicted, num_classes),
                class_names,
                title=f"{dataset} test set",
            ),
        )
    )
    wrong = np.flatnonzero(predicted != y_test)
    confidence = probabilities[wrong, predicted[wrong]]
    # Most confident mistakes first: these are the instructive ones (or mislabelled digits).
    shown = wrong[np.argsort(-confidence, kind="stable")][:MAX_MISCLASSIFIED]
    figures.append(
        (
            "misclassified.png",
            misclassified_figure(
                x_test[shown],
                y_test[shown],
                predicted[shown],
                probabilities[shown, predicted[shown]],
                class_names,
                title=f"the {len(shown)} most confident of {len(wrong)} mistakes "
                f"on {len(x_test)} {dataset} test images",
            ),
        )
    )
    return [save_figure(fig, out_dir / name) for name, fig in figures]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Draw PNG plots of a trained SimpleCNN: training curves, conv1 filters, "
        "feature maps of one digit, test confusion matrix, misclassified digits."
    )
    parser.add_argument(
        "--model", default="simple_cnn_model.npz", help="model file (default: %(default)s)"
    )
    parser.add_argument(
        "--history",
        help="history JSON from 'simple_cnn_from_scratch.py --history FILE', for the training "
        "curves with the test result (default: the epochs recorded in the model file)",
    )
    parser.add_argument("--out", default="plots", help="output directory (default: %(default)s)")
    parser.add_argument("--data-dir", help="dataset directory (default: next to download_mnist.py)")
    parser.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        help="test set to evaluate on (default: the one the model was trained on)",
    )
    parser.add_argument(
        "--sample", type=int, default=0, help="test image for feature_maps.png (default: 0)"
    )
    args = parser.parse_args(argv)
    try:
        paths = make_all_plots(
            args.model, args.history, args.out, args.data_dir, args.dataset, args.sample
        )
    except (ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit("interrupted; the plots written so far are complete")  # save_figure is atomic
    if all(path.name != "training_curves.png" for path in paths):
        print("note: no finished epoch in the model file and no --history: no training curves")
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
