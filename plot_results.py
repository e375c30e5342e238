"""PNG pictures of a trained SimpleCNN: what it learned, what it sees, where it fails.

Run after training::

    python simple_cnn_from_scratch.py --history history.json
    python plot_results.py --model simple_cnn_model.npz --history history.json --out plots/

It writes these PNG files into ``plots/``, for a network of any number of stages:

- ``training_curves.png``: loss and accuracy per epoch, training and validation;
- ``conv1_filters.png``, ``conv2_filters.png``, ...: each stage's learned filters, one file
  per stage;
- ``feature_maps.png``: one test digit after every stage's convolution and pooling;
- ``confusion_matrix.png``: true against predicted class over the test set;
- ``misclassified.png``: the test digits the model got wrong most confidently;
- ``augmentation.png``: for a model trained with distortions (``--rotation``, ``--elastic``,
  ...), test digits distorted by each of its options and by all of them (training also moved
  each image by up to ``--shift`` whole pixels, not shown).

Each ``*_figure`` function builds one figure from plain arrays and returns it, so a notebook can
show it inline; ``save_figure`` writes it to disk. The figures are drawn with matplotlib's Agg
canvas directly (no pyplot, no global backend), so they work without a screen and importing this
module never changes the backend of the notebook that imports it. The model predicts in NumPy
(``inference.py``): no TensorFlow is imported.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

import download_mnist
import inference
from plumbing.atomic_write import check_writable, check_writable_folder, write_atomically
from plumbing.checks import one_line, printable
from plumbing.command_line import ArgumentParser
from plumbing.memory import memory_available
from training import history as history_file
from training.augmentation import OPTIONS as AUGMENTATION_OPTIONS
from training.augmentation import Augmentation, augment
from training.output_files import MAX_HISTORY_BYTES

MAX_MISCLASSIFIED = 36
# Beyond these, a figure becomes a wall of dots: the first ones are drawn, and the figure says so.
MAX_FILTERS_SHOWN = 16  # filters of a bank with several input channels (a row each)
MAX_ONE_CHANNEL_FILTERS_SHOWN = 32  # filters of a bank over the image itself (one panel each)
MAX_CHANNELS_SHOWN = 16  # input channels of each filter
MAX_MAPS_SHOWN = 16  # feature maps of one layer
PANELS_PER_LINE = 8  # one-channel filters, and feature maps, wrap after this many
PANEL_GAP = 0.2  # space between the small pictures of a row, as a fraction of their width


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
    if os.fsdecode(path) == "":  # Path("") would be the current folder
        raise PlotError(
            "the history file path is empty; give the JSON file, or leave out --history"
        )
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would wait for a writer forever
        raise PlotError(
            f"history file {path} is not a regular file (a folder, FIFO or device); give the "
            "JSON file written by 'simple_cnn_from_scratch.py --history FILE'"
        )
    try:
        if path.stat().st_size > MAX_HISTORY_BYTES:  # not read whole to find that out
            raise PlotError(
                f"history file {path} is {path.stat().st_size:,} bytes, far more than a history "
                "(about 250 bytes an epoch): give the JSON file written by --history"
            )
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
    except RecursionError:
        raise PlotError(
            f"history file {path} is not valid JSON (nested too deeply to read); "
            "train again with --history"
        ) from None
    check_history(history, source=str(path))
    return history


def check_history(history: object, source: str = "history") -> None:
    """Raise PlotError unless ``history`` has a non-empty ``epochs`` list of records, each with
    an epoch number (1, 2, ...), a loss (finite, >= 0) and an accuracy (0 to 1); ``val_*`` and
    ``test_*`` values must be such numbers too, or None (training/history.py checks them)."""
    expected = "expected the JSON written by 'simple_cnn_from_scratch.py --history FILE'"
    try:
        history_file.check_history(history, required=("loss", "accuracy"))
    except history_file.HistoryError as error:
        raise PlotError(f"{source}: {error}; {expected}") from None
    if not history["epochs"]:
        raise PlotError(f"{source} has no epochs (an empty 'epochs' list); {expected}")


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
        val_points = [(epoch, value) for epoch, value in val_points if value is not None]
        if val_points:
            axes.plot(*zip(*val_points, strict=True), "s--", color="tab:orange", label="validation")
        test_value = history.get(f"test_{key}")
        if test_value is not None:
            axes.axhline(test_value, color="tab:green", ls=":", label=f"test ({test_value:.4f})")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.set_title(f"{key} per epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no epoch 1.5
        # Half an epoch of margin on each side, so that a single epoch still gets its tick.
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_ylim(bottom=0)
    return fig


def filters_figure(
    filters: np.ndarray,
    title: str = "conv1 filters",
    max_filters: int | None = None,
    max_channels: int = MAX_CHANNELS_SHOWN,
) -> Figure:
    """Draw a bank of convolution filters as small images on one diverging colour scale.

    Parameters
    ----------
    filters : ndarray of shape (F, C, K, K)
        F filters over C input channels. With C = 1, each filter is one image, up to
        ``PANELS_PER_LINE`` to a row; with C > 1, each filter is a row with one image per
        input channel.
    title : str
        Figure title; the bank's shape is appended.
    max_filters, max_channels : int
        At most this many filters (the first ones), and input channels of each, are drawn; the
        title says so when some are left out. ``max_filters`` defaults to
        ``MAX_ONE_CHANNEL_FILTERS_SHOWN`` when C = 1, else ``MAX_FILTERS_SHOWN``.

    Notes
    -----
    Red is a positive weight, blue a negative one, white zero: the scale is symmetric around 0
    and shared by all filters of the bank (drawn or not), so their strengths can be compared.
    """
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim != 4 or filters.shape[2] != filters.shape[3] or 0 in filters.shape:
        raise PlotError(f"filters must have shape (F, C, K, K), got {filters.shape}")
    num_filters, num_channels, k, _ = filters.shape
    # The colour scale must be symmetric so that white means exactly zero.
    vmax = float(np.max(np.abs(filters))) or 1.0
    colours = {"cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax}
    if max_filters is None:
        max_filters = MAX_ONE_CHANNEL_FILTERS_SHOWN if num_channels == 1 else MAX_FILTERS_SHOWN
    shown = filters[:max_filters, :max_channels]
    shown_filters, shown_channels = shown.shape[:2]
    if num_channels == 1:
        # One small picture per filter, PANELS_PER_LINE to a row.
        cols = min(shown_filters, PANELS_PER_LINE)
        rows = math.ceil(shown_filters / cols)
        cell_inches = 1.5 if rows == 1 else 1.2
        # A wide, low figure: the colour bar goes underneath, where its label fits on one line.
        fig = _new_figure(cols * cell_inches + 0.6, rows * cell_inches + 1.3)
        grid = fig.subplots(rows, cols, squeeze=False)
        used = list(grid.flat[:shown_filters])
        for axes in grid.flat[shown_filters:]:
            fig.delaxes(axes)  # the last row may be short
        for f, axes in enumerate(used):
            image = _panel_strip(axes, shown[f], 1, **colours)
            axes.set_title(f"filter {f}", fontsize=10)
        label = "weight: red > 0, white = 0, blue < 0 (one scale for the whole bank)"
        fig.colorbar(image, ax=used, label=label, location="bottom", shrink=0.6, aspect=40)
    else:
        # A row per filter: its slice for each input channel, side by side.
        cell_inches = 0.7 if max(shown_filters, shown_channels) <= 8 else 0.55
        fig = _new_figure(shown_channels * cell_inches + 1.9, shown_filters * cell_inches + 1.0)
        used = list(fig.subplots(shown_filters, 1, squeeze=False)[:, 0])
        for f, axes in enumerate(used):
            image = _panel_strip(axes, shown[f], shown_channels, **colours)
            axes.set_ylabel(f"filter {f}", fontsize=8, rotation=0, ha="right", va="center")
        _label_panels(used[0], [f"in {c}" for c in range(shown_channels)], k)
        label = "weight: red > 0, white = 0, blue < 0\n(one scale for the whole bank)"
        fig.colorbar(image, ax=used, label=label, shrink=0.6)
    fig.suptitle(
        f"{title}: {num_filters} x {num_channels} x {k} x {k}{_shown_note(shown, filters)}"
    )
    return fig


def _panel_strip(axes: Axes, panels: np.ndarray, columns: int, **colours) -> AxesImage:
    """Draw ``panels`` (P, H, W) left to right in one Axes, each framed, with room for
    ``columns`` of them; return the last image (for a colour bar).

    One Axes per strip rather than one per panel: laying out the hundreds of Axes a large
    filter bank would need is slow.
    """
    _, height, width = panels.shape
    step = width * (1 + PANEL_GAP)
    for index, panel in enumerate(panels):
        left = index * step
        # nearest: a 3x3 filter or 5x5 map shows its values as squares, not as a blur
        image = axes.imshow(
            panel, extent=(left, left + width, height, 0), interpolation="nearest", **colours
        )
        axes.add_patch(Rectangle((left, 0), width, height, fill=False, linewidth=0.8))
    margin = 0.05 * width  # keeps the frames' outer edges inside the Axes
    axes.set_xlim(-margin, (columns - 1) * step + width + margin)
    axes.set_ylim(height + margin, -margin)
    axes.set_frame_on(False)
    axes.set_xticks([])
    axes.set_yticks([])
    return image


def _label_panels(axes: Axes, labels: Sequence[str], width: int) -> None:
    """Write a label above each panel of a strip drawn by _panel_strip."""
    step = width * (1 + PANEL_GAP)
    axes.set_xticks([index * step + width / 2 for index in range(len(labels))], labels)
    axes.tick_params(axis="x", length=0, labelsize=8, labeltop=True, labelbottom=False)


def _shown_note(shown: np.ndarray, filters: np.ndarray) -> str:
    """What part of a capped filter bank is drawn, for its title; empty when all of it is."""
    parts = []
    if shown.shape[0] < filters.shape[0]:
        parts.append(f"the first {shown.shape[0]} of {filters.shape[0]} filters")
    if shown.shape[1] < filters.shape[1]:
        parts.append(f"the first {shown.shape[1]} of {filters.shape[1]} input channels")
    return f"\n(drawn: {', '.join(parts)})" if parts else ""


def feature_maps_figure(
    image: np.ndarray,
    feature_maps: Mapping[str, np.ndarray],
    layers: Sequence[str] | None = None,
    title: str = "one digit through the network",
    max_maps: int = MAX_MAPS_SHOWN,
) -> Figure:
    """The input digit and its activations after each layer, one block of rows per layer.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (1, H, W)
        The input image.
    feature_maps : Mapping of str to ndarray of shape (N, C, H, W)
        As returned by ``SimpleCNN.feature_maps``; only sample 0 is drawn.
    layers : sequence of str, optional
        Keys of ``feature_maps`` to draw, in order. By default every stage's convolution and
        pooling: conv1, pool1, conv2, pool2, ... for as many stages as there are.
    title : str
        Figure title.
    max_maps : int
        At most this many channels of a layer (the first ones) are drawn, ``PANELS_PER_LINE``
        to a line; the layer's label says so when some are left out.

    Notes
    -----
    A layer with negative values (a convolution before its ReLU) gets a diverging scale centred
    on 0; a non-negative one (after ReLU or pooling) a sequential scale from 0. Each layer has
    its own scale, because activations grow from layer to layer.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise PlotError(f"image must have shape (H, W) or (1, H, W), got {image.shape}")
    if layers is None:
        layers = _conv_and_pool_layers(feature_maps)
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
        if not np.isfinite(array[0]).all():
            raise PlotError(
                f"feature map {layer!r} holds NaN or infinite values: the weights are far too "
                "large (training diverged?)"
            )
        maps[layer] = array[0]
    cols = PANELS_PER_LINE
    lines = [math.ceil(min(len(array), max_maps) / cols) for array in maps.values()]
    fig = _new_figure(1.05 * cols + 3.4, 1.05 * sum(lines) + 0.9)
    input_part, layers_part = fig.subfigures(1, 2, width_ratios=[1.6, 1.05 * cols + 1.8])
    input_axes = input_part.subplots()
    input_axes.imshow(image, cmap="gray_r")
    input_axes.set_title(f"input\n{image.shape[0]}x{image.shape[1]}", fontsize=10)
    input_axes.set_xticks([])
    input_axes.set_yticks([])
    # A line of maps per grid row, the colour bars in the last column: the maps line up.
    grid = layers_part.add_gridspec(sum(lines), 2, width_ratios=[cols * (1 + PANEL_GAP), 0.15])
    first_line = 0
    for (layer, array), layer_lines in zip(maps.items(), lines, strict=True):
        channels, height, width = array.shape
        shown = array[:max_maps]
        low, high = float(shown.min()), float(shown.max())
        if low < 0:
            limit = max(-low, high) or 1.0
            cmap, vmin, vmax = "RdBu_r", -limit, limit
            scale = "red > 0, blue < 0"
        else:
            cmap, vmin, vmax = "viridis", 0.0, high or 1.0
            scale = "from 0"
        label = f"{layer}\n{channels}x{height}x{width}"
        if len(shown) < channels:
            label += f"\nfirst {len(shown)} of {channels}"
        for line in range(layer_lines):
            axes = layers_part.add_subplot(grid[first_line + line, 0])
            line_maps = shown[line * cols : (line + 1) * cols]
            drawn = _panel_strip(axes, line_maps, cols, cmap=cmap, vmin=vmin, vmax=vmax)
            if line == 0:
                axes.set_ylabel(label, fontsize=9)
        colorbar_axes = layers_part.add_subplot(grid[first_line : first_line + layer_lines, 1])
        colorbar = layers_part.colorbar(drawn, cax=colorbar_axes)
        colorbar.ax.tick_params(labelsize=7)
        colorbar.set_label(scale, fontsize=7)
        first_line += layer_lines
    fig.suptitle(title)
    return fig


def _conv_and_pool_layers(feature_maps: Mapping[str, np.ndarray]) -> list[str]:
    """conv1, pool1, conv2, pool2, ...: every stage's convolution and pooling, in order."""
    layers = []
    for number in itertools.count(1):
        if f"conv{number}" not in feature_maps:
            break
        layers += [f"conv{number}", f"pool{number}"]
    if not layers:
        raise PlotError(
            f"feature_maps has no layer 'conv1'; it has {sorted(feature_maps)} "
            "(pass the dict returned by SimpleCNN.feature_maps)"
        )
    return layers


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Count how often each true class was predicted as each class (inference.confusion_matrix).

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (N,)
        Integer labels in ``[0, num_classes)``.

    Returns
    -------
    ndarray of shape (num_classes, num_classes)
        ``matrix[t, p]`` = number of samples of true class t predicted as p.
    """
    try:
        return inference.confusion_matrix(y_true, y_pred, num_classes)
    except ValueError as error:
        raise PlotError(str(error)) from None


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


def augmentation_figure(images: np.ndarray, augmentation: Augmentation, seed: int = 0) -> Figure:
    """What each of the training program's distortions does: ``images`` (M, H, W) uint8 as
    they are (the top row), then distorted by each of ``augmentation``'s transforms on its own
    (a row each, named by its option) and, when it has several, by all of them together.

    Every row distorts the same images, each with its own random draw within the bounds
    (seeded by ``seed`` and the row), so a column shows one digit under each transform.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise PlotError(
            f"images must be uint8 of shape (M, H, W), got {images.dtype} {images.shape}"
        )
    rows = [("as they are", None)]  # (title, distortion)
    values = augmentation.as_dict()
    for option, field in AUGMENTATION_OPTIONS.items():
        value = values[field]
        if value:
            words = _AUGMENTATION_WORDS[option].format(value=value, percent=100 * value)
            rows.append((f"--{option} {value:g}: {words}", Augmentation(**{field: value})))
    if len(rows) > 2:
        together = "all of them together (training also moves each up to --shift whole pixels)"
        rows.append((together, augmentation))
    fig = _new_figure(0.75 * len(images) + 0.4, 1.05 * len(rows) + 0.2)
    grid = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for number, (axes, (title, distortion)) in enumerate(zip(grid, rows, strict=True)):
        rng = np.random.default_rng([seed, number])
        shown = images if distortion is None else augment(images, distortion, rng)
        _panel_strip(axes, shown, columns=len(images), cmap="gray_r", vmin=0, vmax=255)
        axes.set_title(title, fontsize=9, loc="left")
    return fig


# How each option distorts, for augmentation_figure's row titles.
_AUGMENTATION_WORDS = {
    "rotation": "turned up to {value:g} degrees either way",
    "scale": "made up to {percent:g}% larger or smaller",
    "shear": "slanted up to {value:g} degrees either way",
    "elastic": "bent: each pixel moved about {value:g} px along a smooth random field",
    "stroke": "the pen up to {value:g} px thinner or thicker on each side",
}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


# Written into every PNG's text (its "Software" entry), so that a later run can tell the
# pictures it may replace (its own) from a user's files of the same name (never replaced).
SOFTWARE = "SimpleCNN plot_results.py"


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG file and return ``path``.

    The write is atomic (``atomic_write.write_atomically``): an interrupted run leaves the old
    picture or the new one, never half of one. The PNG says it was written here (SOFTWARE).
    """
    metadata = {"Software": SOFTWARE}
    write_atomically(path, lambda file: fig.savefig(file, format="png", metadata=metadata))
    return Path(path)


def check_outputs(out_dir: Path, names: Sequence[str]) -> None:
    """Refuse, before any drawing, an output folder that cannot be written, and any file of
    these ``names`` in it that this program did not write (a user's own ``confusion_matrix.png``):
    the rule the trainer follows for its model file.

    Raises
    ------
    FileWriteError, PlotError
        One line naming the folder or the file, and what to do.
    """
    check_writable_folder(out_dir, "plots")
    for name in names:
        path = out_dir / name
        if not os.path.lexists(path):
            continue
        check_writable(path, "plot")
        if not written_here(path):
            raise PlotError(
                f"{path} exists and is not a plot written by this program; refusing to "
                "replace it: choose another --out, or move it away first"
            )


def written_here(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG that :func:`save_figure` wrote (it says so in its text)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.text.get("Software") == SOFTWARE
    except (OSError, ValueError, SyntaxError):  # not a picture, or a damaged one
        return False


def output_names(num_stages: int, with_curves: bool, with_augmentation: bool = False) -> list[str]:
    """The files make_all_plots writes, in order, for a network of ``num_stages`` stages."""
    names = ["training_curves.png"] if with_curves else []
    names += [f"conv{number}_filters.png" for number in range(1, num_stages + 1)]
    names += ["feature_maps.png", "confusion_matrix.png", "misclassified.png"]
    if with_augmentation:
        names.append("augmentation.png")
    return names


def make_all_plots(
    model_path: str | os.PathLike,
    history_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    dataset: str | download_mnist.DatasetSpec | None = None,
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
    data_dir : str or PathLike, optional
        Where the dataset lives (see ``download_mnist.load_dataset``).
    dataset : "mnist", "fashion", a download_mnist.DatasetSpec, or None
        The test set to evaluate on; by default the one in the model's config, else "mnist".
        A DatasetSpec describes other data by its content digests (a subset, in the tests);
        its ``name`` picks the class names.
    sample_index : int
        Index of the test image drawn in ``feature_maps.png``.

    Returns
    -------
    list of Path
        The files written, in the order listed in the module docstring.

    Raises
    ------
    ValueError
        ``PlotError`` for a bad history, output directory or dataset name,
        ``model_file.ModelFileError`` for a bad model file or one whose outputs are not finite,
        ``download_mnist.DatasetError`` for missing data. Nothing is written then.
    """
    # Cheap checks first, so a typo fails before the model and the data are loaded.
    history = load_history(history_path) if history_path is not None else None
    if os.fspath(out_dir) == "":  # Path("") is the current folder
        raise PlotError("the output folder (--out) is empty; give a folder for the plots")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlotError(f"output directory {out_dir} is a file; pass a directory to --out")
    classifier = inference.load_classifier(model_path)
    with_curves = history is not None or bool(classifier.history)
    augmentation = Augmentation.from_options(classifier.config)
    names = output_names(len(classifier.cnn.stages), with_curves, not augmentation.is_off)
    check_outputs(out_dir, names)
    spec = _dataset_spec(dataset, classifier.config.get("dataset", "mnist"))
    _, _, x_test, y_test = download_mnist.load_dataset(data_dir, spec)
    if not 0 <= sample_index < len(x_test):
        raise PlotError(
            f"sample index {sample_index} is outside the test set (0..{len(x_test) - 1})"
        )
    # Predict before drawing: a model whose outputs overflow stops here, with the reason.
    probabilities = classifier.predict_proba(x_test)
    class_names = list(download_mnist.FASHION_LABELS) if spec.name == "fashion" else None
    if history is None and classifier.history:
        history = {"epochs": classifier.history}
        check_history(history, source=f"{model_path} (its training history)")

    figures: list[tuple[str, Figure]] = []
    if history is not None:
        figures.append(("training_curves.png", training_curves_figure(history)))
    cnn = classifier.cnn
    for number, filters in enumerate(cnn.filters, start=1):
        figure = filters_figure(filters, f"learned conv{number} filters")
        figures.append((f"conv{number}_filters.png", figure))

    sample = x_test[sample_index]
    sample_maps = cnn.feature_maps(inference.images_to_input(sample[np.newaxis]))
    label = y_test[sample_index] if class_names is None else class_names[y_test[sample_index]]
    sample_title = f"test image {sample_index} (label {label}) through the network"
    figures.append(
        ("feature_maps.png", feature_maps_figure(sample, sample_maps, title=sample_title))
    )

    predicted = probabilities.argmax(axis=1)
    num_classes = probabilities.shape[1]
    matrix = confusion_matrix(y_test, predicted, num_classes)
    figures.append(
        (
            "confusion_matrix.png",
            confusion_matrix_figure(matrix, class_names, title=f"{spec.title} test set"),
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
                f"on {len(x_test)} {spec.title} test images",
            ),
        )
    )
    if not augmentation.is_off:
        # The first test image of each class, distorted as the model's training images were.
        firsts = [np.flatnonzero(y_test == label)[:1] for label in range(num_classes)]
        figures.append(
            ("augmentation.png", augmentation_figure(x_test[np.concatenate(firsts)], augmentation))
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out_dir / name) for name, fig in figures]


def _dataset_spec(
    dataset: str | download_mnist.DatasetSpec | None, model_dataset: str
) -> download_mnist.DatasetSpec:
    """The dataset to evaluate on: the one given, else the one the model was trained on."""
    if isinstance(dataset, download_mnist.DatasetSpec):
        return dataset
    name = model_dataset if dataset is None else dataset
    if name not in download_mnist.DATASETS:
        choices = ", ".join(sorted(download_mnist.DATASETS))
        raise PlotError(f"unknown dataset {name!r}; choose one of {choices}")
    return download_mnist.DATASETS[name]


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        description="Draw PNG plots of a trained SimpleCNN: training curves, the filters of "
        "every convolution, feature maps of one digit, test confusion matrix, misclassified "
        "digits, and the distortions a model was trained with.",
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
        choices=sorted(download_mnist.DATASETS),
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
        sys.exit(f"error: {one_line(str(exc))}")  # one line, whatever a file's name holds
    except MemoryError:
        sys.exit(f"error: not enough memory to plot this model: {memory_available().describe()}")
    except KeyboardInterrupt:
        sys.exit("interrupted; the plots written so far are complete")  # save_figure is atomic
    if all(path.name != "training_curves.png" for path in paths):
        print("note: no finished epoch in the model file and no --history: no training curves")
    for path in paths:
        print(f"wrote {printable(path)}")


if __name__ == "__main__":
    main()
