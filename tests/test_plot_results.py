"""Tests for plot_results: every picture is a real, non-blank PNG; bad input is a clear error.

The figure functions are checked on generated data (what they draw, not only that they draw);
the end-to-end tests save real model files with model_file.save_model (no TensorFlow: the
filters of a SimpleCNN and random head weights), write the history with the trainer's own
writer, and run the command line on them. Most end-to-end runs use 300 real test digits,
described by a download_mnist.DatasetSpec of their own content digests, to stay quick.
"""

import dataclasses
import errno
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import download_mnist
import plot_results
from adam import Adam
from download_mnist import load_dataset
from plot_results import PlotError
from simple_cnn import SimpleCNN
from training import model_file
from training.augmentation import Augmentation
from training.history import write_history
from training.model_file import SavedModel

PROJECT_DIR = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = [  # for the default, two-stage network
    "training_curves.png",
    "conv1_filters.png",
    "conv2_filters.png",
    "feature_maps.png",
    "confusion_matrix.png",
    "misclassified.png",
]


def assert_real_png(path: Path, min_size=(300, 150), max_size=(2500, 2000)) -> None:
    """A decodable PNG of a sensible size with a picture in it (not one flat colour)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG file"
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # checks the chunks and their CRCs
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        width, height = image.size
        rgb = np.asarray(image.convert("RGB"))
    assert min_size[0] <= width <= max_size[0], f"{path.name}: width {width}"
    assert min_size[1] <= height <= max_size[1], f"{path.name}: height {height}"
    assert rgb.std() > 10, f"{path.name} is (nearly) blank"
    # One integer per colour: np.unique of a flat array is far quicker than of (N, 3) rows.
    colours = np.unique(rgb.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32))
    assert len(colours) > 50, f"{path.name} has only {len(colours)} colours"


def history_records(count: int = 3, validation: bool = True) -> list[dict]:
    records = []
    for epoch in range(1, count + 1):
        record = {"epoch": epoch, "seconds": 20.0, "loss": 0.5 / epoch, "accuracy": 1 - 0.1 / epoch}
        if validation:
            record.update(val_loss=0.4 / epoch + 0.02, val_accuracy=1 - 0.08 / epoch - 0.01)
        records.append(record)
    return records


def mnist_like_images(count: int, seed: int = 0) -> np.ndarray:
    """uint8 (count, 28, 28): a bright bar on a dark background, at random places."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        row, col = rng.integers(4, 20, size=2)
        image[row : row + 6, col : col + 2] = 255
    return images


def one_line(message: str) -> str:
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


# --------------------------------------------------------------------------------------------
# The figures, from plain data
# --------------------------------------------------------------------------------------------


def test_training_curves_draws_train_validation_and_test(tmp_path):
    history = {"epochs": history_records(4), "test_loss": 0.05, "test_accuracy": 0.98}
    fig = plot_results.training_curves_figure(history)
    loss_axes, accuracy_axes = fig.axes
    for axes, key in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        lines = {line.get_label(): line for line in axes.get_lines()}
        assert set(lines) == {"training", "validation", f"test ({history[f'test_{key}']:.4f})"}
        np.testing.assert_allclose(lines["training"].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_allclose(
            lines["validation"].get_ydata(), [r[f"val_{key}"] for r in history["epochs"]]
        )
        assert axes.get_xlabel() == "epoch" and axes.get_ylabel() == key
    assert_real_png(plot_results.save_figure(fig, tmp_path / "curves.png"))


def test_training_curves_without_validation_or_test():
    history = {"epochs": history_records(1, validation=False), "test_loss": None}
    fig = plot_results.training_curves_figure(history)
    for axes in fig.axes:
        assert [line.get_label() for line in axes.get_lines()] == ["training"]


def test_filters_use_one_symmetric_diverging_scale(tmp_path):
    filters = np.random.default_rng(0).normal(0.1, 0.3, SimpleCNN().conv1_filters.shape)
    fig = plot_results.filters_figure(filters)
    images = [image for axes in fig.axes for image in axes.get_images()]
    assert len(images) == 6
    vmax = np.abs(filters).max()
    for image, filt in zip(images, filters, strict=True):
        # White must mean exactly zero, and all filters share the scale to be comparable.
        assert image.norm.vmin == pytest.approx(-vmax) and image.norm.vmax == pytest.approx(vmax)
        np.testing.assert_array_equal(image.get_array(), filt[0])
    assert len(fig.axes) == 7, "expected 6 filters and a colourbar"
    assert_real_png(plot_results.save_figure(fig, tmp_path / "filters.png"))


def test_filters_with_several_input_channels_draw_every_slice():
    filters = np.random.default_rng(0).normal(size=SimpleCNN().conv2_filters.shape)
    fig = plot_results.filters_figure(filters, "conv2 filters")
    assert sum(len(axes.get_images()) for axes in fig.axes) == 16 * 6


def drawn_images(fig) -> list[np.ndarray]:
    return [image.get_array() for axes in fig.axes for image in axes.get_images()]


def test_a_large_filter_bank_is_capped_and_says_so():
    filters = np.random.default_rng(0).normal(size=(64, 32, 3, 3))  # Keras' example's conv2
    fig = plot_results.filters_figure(filters, "conv2 filters")
    drawn = drawn_images(fig)
    assert len(drawn) == 16 * 16  # the first 16 filters, each over its first 16 channels
    np.testing.assert_array_equal(drawn[-1], filters[15, 15])
    title = fig.get_suptitle()
    assert "64 x 32 x 3 x 3" in title
    assert "first 16 of 64 filters" in title and "first 16 of 32 input channels" in title
    # The colour scale is the whole bank's, drawn or not, and symmetric around zero.
    vmax = np.abs(filters).max()
    for image in (image for axes in fig.axes for image in axes.get_images()):
        assert image.norm.vmin == pytest.approx(-vmax) and image.norm.vmax == pytest.approx(vmax)


def test_one_channel_filters_wrap_into_rows():
    filters = np.random.default_rng(0).normal(size=(40, 1, 3, 3))
    fig = plot_results.filters_figure(filters)
    drawn = drawn_images(fig)
    assert len(drawn) == 32  # 4 rows of 8
    assert "first 32 of 40 filters" in fig.get_suptitle()
    assert len(fig.axes) == 32 + 1, "no empty panels, one colour bar"
    fig = plot_results.filters_figure(filters[:10])  # 8 + 2: the second row's gaps are removed
    assert len(fig.axes) == 10 + 1 and "drawn" not in fig.get_suptitle()


def test_feature_maps_draw_every_channel_of_each_layer(tmp_path):
    cnn = SimpleCNN(seed=0)
    digit = mnist_like_images(1)[0]
    maps = cnn.feature_maps(digit[None, None] / 255.0)
    fig = plot_results.feature_maps_figure(digit, maps)
    drawn = [image.get_array() for axes in fig.axes for image in axes.get_images()]
    # input + 6 (conv1) + 6 (pool1) + 16 (conv2) + 16 (pool2)
    assert len(drawn) == 1 + 6 + 6 + 16 + 16
    assert any(np.array_equal(array, maps["pool2"][0, 15]) for array in drawn)
    assert_real_png(plot_results.save_figure(fig, tmp_path / "maps.png"))


def test_feature_maps_of_a_deeper_wider_network_show_16_maps_per_layer():
    cnn = SimpleCNN(num_filters=(8, 32, 64), kernel_sizes=3, paddings="same", seed=0)
    digit = mnist_like_images(1)[0]
    maps = cnn.feature_maps(digit[None, None] / 255.0)
    fig = plot_results.feature_maps_figure(digit, maps)
    drawn = drawn_images(fig)
    # input + conv1, pool1 (8 each) + conv2, pool2, conv3, pool3 (16 of 32 or 64 each)
    assert len(drawn) == 1 + 8 + 8 + 4 * 16
    np.testing.assert_array_equal(drawn[-1], maps["pool3"][0, 15])
    labels = [axes.get_ylabel() for axes in fig.axes]
    labels = [label for label in labels if label.startswith(("conv", "pool"))]
    assert [label.split("\n")[0] for label in labels] == [
        "conv1", "pool1", "conv2", "pool2", "conv3", "pool3"
    ]  # fmt: skip
    assert "conv3\n64x7x7\nfirst 16 of 64" in labels
    assert "pool1\n8x14x14" in labels


def test_confusion_matrix_counts_every_pair():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), int)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    np.testing.assert_array_equal(plot_results.confusion_matrix(y_true, y_pred), expected)


def test_confusion_matrix_figure_writes_every_count(tmp_path):
    rng = np.random.default_rng(1)
    matrix = rng.integers(0, 30, (10, 10)) + np.diag(rng.integers(900, 1100, 10))
    matrix[3, 5] = 0
    fig = plot_results.confusion_matrix_figure(matrix)
    axes = fig.axes[0]
    written = {
        (round(text.get_position()[1]), round(text.get_position()[0])): text.get_text()
        for text in axes.texts
    }
    assert written == {(t, p): str(matrix[t, p]) for t in range(10) for p in range(10)}
    assert axes.get_xlabel() == "predicted class" and axes.get_ylabel() == "true class"
    accuracy = np.trace(matrix) / matrix.sum()
    assert f"{accuracy:.2%}" in axes.get_title()
    assert_real_png(plot_results.save_figure(fig, tmp_path / "confusion.png"))


def test_misclassified_titles_say_true_and_predicted(tmp_path):
    images = mnist_like_images(12)
    true_labels = np.arange(12) % 10
    predicted = (true_labels + 3) % 10
    fig = plot_results.misclassified_figure(images, true_labels, predicted, np.full(12, 0.9))
    titles = [axes.get_title() for axes in fig.axes if axes.get_images()]
    assert titles == [
        f"true {t} / pred {p}\n90% sure" for t, p in zip(true_labels, predicted, strict=True)
    ]
    assert_real_png(plot_results.save_figure(fig, tmp_path / "wrong.png"))


def test_class_names_label_the_figures():
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot")  # fmt: skip
    fig = plot_results.misclassified_figure(mnist_like_images(2), [1, 9], [4, 5], None, names)
    titles = [axes.get_title() for axes in fig.axes if axes.get_images()]
    assert titles == ["true Trouser\npred Coat", "true Ankle boot\npred Sandal"]
    fig = plot_results.confusion_matrix_figure(np.eye(10, dtype=int), names)
    assert [label.get_text() for label in fig.axes[0].get_xticklabels()] == list(names)
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == list(names)


def test_misclassified_with_no_mistakes_still_draws_a_picture(tmp_path):
    empty = np.zeros((0,), int)
    fig = plot_results.misclassified_figure(np.zeros((0, 28, 28)), empty, empty)
    assert_real_png(plot_results.save_figure(fig, tmp_path / "none.png"), min_size=(100, 100))


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: plot_results.filters_figure(np.zeros((6, 5, 5))), r"\(F, C, K, K\)"),
        (lambda: plot_results.feature_maps_figure(np.zeros((28, 28)), {}), "no layer 'conv1'"),
        (
            lambda: plot_results.feature_maps_figure(
                np.zeros((28, 28)), {"conv1": np.full((1, 2, 4, 4), np.inf)}, ["conv1"]
            ),
            "NaN or infinite",
        ),
        (lambda: plot_results.confusion_matrix([1, 2], [1]), "equal length"),
        (lambda: plot_results.confusion_matrix([1, 12], [1, 2]), "outside 0..9"),
        (lambda: plot_results.confusion_matrix_figure(np.zeros((10, 9))), "square"),
        (
            lambda: plot_results.misclassified_figure(np.zeros((3, 28, 28)), [1, 2], [3, 4]),
            "one true and one predicted label per image",
        ),
    ],
)
def test_figures_reject_bad_arrays(call, expected):
    with pytest.raises(PlotError, match=expected) as excinfo:
        call()
    one_line(str(excinfo.value))


# --------------------------------------------------------------------------------------------
# Saving and the history file
# --------------------------------------------------------------------------------------------


def test_save_figure_replaces_atomically_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "picture.png"
    target.write_bytes(b"the user's previous picture")
    fig = plot_results.training_curves_figure({"epochs": history_records(2)})

    def fail_half_way(file, **kwargs):
        file.write(PNG_SIGNATURE + b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        plot_results.save_figure(fig, target)
    assert target.read_bytes() == b"the user's previous picture"
    assert [p.name for p in tmp_path.iterdir()] == ["picture.png"]

    monkeypatch.undo()
    assert plot_results.save_figure(fig, target) == target
    assert_real_png(target)
    assert [p.name for p in tmp_path.iterdir()] == ["picture.png"]


def test_load_history_reads_what_the_trainer_writes(tmp_path):
    path = tmp_path / "history.json"
    write_history(str(path), history_records(3), test_loss=0.04, test_accuracy=0.987)
    history = plot_results.load_history(path)
    assert [r["epoch"] for r in history["epochs"]] == [1, 2, 3]
    assert history["test_accuracy"] == 0.987


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "not found"),
        ('{"epochs": [{"epoch": 1, "loss": 0.3', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2, 3]", "no 'epochs' list"),
        ('{"loss": [0.5, 0.3]}', "no 'epochs' list"),
        ('{"epochs": []}', "no epochs"),
        ('{"epochs": [3]}', "record 1 is not an object"),
        ('{"epochs": [{"epoch": 1, "accuracy": 0.9}]}', "numeric 'loss'"),
        ('{"epochs": [{"epoch": 1, "loss": "low", "accuracy": 0.9}]}', "numeric 'loss'"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # deeper than Python's recursion
    ],
)
def test_bad_history_file_is_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "history.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PlotError, match=expected) as excinfo:
        plot_results.load_history(path)
    assert str(path) in one_line(str(excinfo.value))


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"epoch": 1, "loss": float("nan"), "accuracy": 0.9}, "'loss'"),  # JSON's NaN
        ({"epoch": 1, "loss": 0.3, "accuracy": 1e308}, "'accuracy'"),
        ({"epoch": 1, "loss": 0.3, "accuracy": 0.9, "val_accuracy": 1.5}, "'val_accuracy'"),
        ({"epoch": 1, "loss": -0.3, "accuracy": 0.9}, "'loss'"),
        ({"epoch": 1e300, "loss": 0.3, "accuracy": 0.9}, "'epoch'"),
        ({"epoch": 0, "loss": 0.3, "accuracy": 0.9}, "'epoch'"),
    ],
    ids=["nan-loss", "huge-accuracy", "val-accuracy-above-1", "negative-loss", "huge-epoch", "0"],
)
def test_history_numbers_that_cannot_be_right_are_a_clear_error(tmp_path, record, expected):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"epochs": [record]}))
    with pytest.raises(PlotError, match=expected) as excinfo:
        plot_results.load_history(path)
    assert str(path) in one_line(str(excinfo.value))


def test_a_history_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "history.json"
    os.mkfifo(fifo)
    # Opening a FIFO to read waits for a writer: this one comes after 10 s if the check is
    # missing, so the test fails instead of hanging.
    writer = threading.Timer(10, lambda: open(fifo, "w").close())
    writer.start()
    started = time.monotonic()
    try:
        with pytest.raises(PlotError, match="not a regular file") as excinfo:
            plot_results.load_history(fifo)
    finally:
        writer.cancel()
    assert time.monotonic() - started < 5
    one_line(str(excinfo.value))


def test_an_empty_output_folder_is_refused(model_and_history, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_path, history_path = model_and_history
    message = run_main(["--model", str(model_path), "--out", ""], capsys)
    assert "--out" in message and "empty" in message
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_an_empty_history_path_is_a_clear_error():
    with pytest.raises(PlotError, match="history file path is empty"):
        plot_results.load_history("")


def test_history_that_is_not_text_is_a_clear_error(tmp_path):
    path = tmp_path / "history.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(PlotError, match="cannot read history file") as excinfo:
        plot_results.load_history(path)
    one_line(str(excinfo.value))


# --------------------------------------------------------------------------------------------
# End to end: a real model file, the real test set, the command line
# --------------------------------------------------------------------------------------------


def save_fresh_model(
    path: Path,
    history: list[dict] | None = None,
    cnn: SimpleCNN | None = None,
    hidden: tuple[int, ...] = (128,),
    config: dict | None = None,
    weight_scale: float = 1.0,
) -> None:
    """An untrained but real model file, as the trainer would save it (fast: no training).

    The filters are ``cnn``'s (the default network's unless given), the dense head random
    He-initialised weights of the shapes the file format requires; every weight is multiplied
    by ``weight_scale``.
    """
    cnn = cnn or SimpleCNN(seed=0)
    rng = np.random.default_rng(0)
    sizes = [cnn.num_features, *hidden, 10]
    head_weights = [
        (rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)) * weight_scale, np.zeros(n_out))
        for n_in, n_out in zip(sizes, sizes[1:], strict=False)
    ]
    conv_optimizer = Adam()
    model = SavedModel(
        architecture={
            **cnn.architecture,
            "hidden": list(hidden),
            "dropout": 0.0,
            "num_classes": 10,
        },
        conv_filters=[filters * weight_scale for filters in cnn.filters],
        head_weights=head_weights,
        conv_optimizer_settings={
            name: float(getattr(conv_optimizer, name)) for name in model_file.ADAM_SETTINGS
        },
        conv_optimizer_state=conv_optimizer.state_dict(),
        epoch=len(history or []),
        config={"dataset": "mnist", "seed": 0} if config is None else config,
        history=history or [],
    )
    model_file.save_model(path, model)


def subset_spec(
    spec: download_mnist.DatasetSpec, arrays: dict[str, np.ndarray], title: str
) -> download_mnist.DatasetSpec:
    """``spec`` with the content digests and sizes of ``arrays``: a dataset that is exactly them.

    Its ``name`` stays ``spec``'s, as that picks the class names.
    """
    archives = tuple(
        dataclasses.replace(
            archive,
            content_sha256=download_mnist._idx_sha256(arrays[archive.array_name]),
            content_bytes=4 + 4 * arrays[archive.array_name].ndim + arrays[archive.array_name].size,
            known_archives={},
        )
        for archive in spec.archives
    )
    return dataclasses.replace(spec, title=title, mirrors=(), archives=archives)


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """300 real test digits (and 10 training ones) in a folder, and two specs of exactly them:
    as an MNIST subset, and standing in for Fashion-MNIST (for its class names)."""
    x_train, y_train, x_test, y_test = load_dataset()
    arrays = {
        "train_images": x_train[:10],
        "train_labels": y_train[:10],
        "test_images": x_test[:300],
        "test_labels": y_test[:300],
    }
    data_dir = tmp_path_factory.mktemp("small_mnist")
    for name, array in arrays.items():
        np.save(data_dir / f"{name}.npy", array)
    mnist = subset_spec(download_mnist.MNIST, arrays, "MNIST (first 300)")
    fashion = subset_spec(download_mnist.FASHION_MNIST, arrays, "MNIST as fake Fashion-MNIST")
    return data_dir, mnist, fashion


@pytest.fixture(scope="module")
def model_and_history(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trained")
    model_path, history_path = directory / "model.npz", directory / "history.json"
    save_fresh_model(model_path)
    write_history(str(history_path), history_records(3), test_loss=0.05, test_accuracy=0.98)
    return model_path, history_path


def test_command_line_writes_every_plot(model_and_history, tmp_path, capsys):
    model_path, history_path = model_and_history
    out_dir = tmp_path / "plots" / "run1"  # created, parents too
    plot_results.main(
        ["--model", str(model_path), "--history", str(history_path), "--out", str(out_dir)]
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"wrote {out_dir / name}" for name in ALL_PLOTS]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(ALL_PLOTS)  # no temporaries
    for name in ALL_PLOTS:
        assert_real_png(out_dir / name)


def test_without_history_file_curves_come_from_the_model_file(tmp_path, small_mnist):
    # A small dataset directory (real digits) keeps this second run quick and tests --data-dir.
    data_dir, small_mnist_spec, _ = small_mnist
    model_path = tmp_path / "model.npz"
    save_fresh_model(model_path, history=history_records(2))
    paths = plot_results.make_all_plots(
        model_path, None, tmp_path / "plots", data_dir=data_dir, dataset=small_mnist_spec
    )
    assert [p.name for p in paths] == ALL_PLOTS
    for path in paths:
        assert_real_png(path)


def test_keras_example_network_gets_one_filters_picture_per_stage(tmp_path, small_mnist):
    data_dir, small_mnist_spec, _ = small_mnist
    cnn = SimpleCNN(
        num_filters=(32, 64), kernel_sizes=3, paddings=0, seed=0
    )  # Keras' MNIST example
    model_path = tmp_path / "model.npz"
    save_fresh_model(model_path, cnn=cnn, hidden=())
    paths = plot_results.make_all_plots(
        model_path, None, tmp_path / "plots", data_dir=data_dir, dataset=small_mnist_spec
    )
    # No history in the model file: no training curves.
    expected = ["conv1_filters.png", "conv2_filters.png", *ALL_PLOTS[3:]]
    assert [p.name for p in paths] == expected
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(expected)
    for path in paths:
        assert_real_png(path)


def test_a_model_trained_with_distortions_shows_them(tmp_path, small_mnist):
    """augmentation.png, only for a model whose training distorted its images: a row of test
    digits as they are, one per option it used, and one with all of them."""
    data_dir, small_mnist_spec, _ = small_mnist
    model_path = tmp_path / "model.npz"
    config = {"dataset": "mnist", "seed": 0, "rotation": 12.0, "stroke": 0.5}
    save_fresh_model(model_path, config=config)
    paths = plot_results.make_all_plots(
        model_path, None, tmp_path / "plots", data_dir=data_dir, dataset=small_mnist_spec
    )
    assert [p.name for p in paths] == [*ALL_PLOTS[1:], "augmentation.png"]
    assert_real_png(paths[-1])


def test_the_distortions_picture_distorts_each_row_its_own_way():
    digits = load_dataset()[2][:6]
    strong = Augmentation(rotation_degrees=30, elastic_pixels=2)
    fig = plot_results.augmentation_figure(digits, strong, seed=3)
    titles = [axes.get_title(loc="left") for axes in fig.axes]
    assert titles == [
        "as they are",
        "--rotation 30: turned up to 30 degrees either way",
        "--elastic 2: bent: each pixel moved about 2 px along a smooth random field",
        "all of them together (training also moves each up to --shift whole pixels)",
    ]
    rows = [[image.get_array() for image in axes.get_images()] for axes in fig.axes]
    assert all(len(row) == 6 for row in rows)
    np.testing.assert_array_equal(np.array(rows[0]), digits)  # the originals, untouched
    for row in rows[1:]:  # every digit moved, and differently in each row
        assert all((shown != digit).any() for shown, digit in zip(row, digits, strict=True))
    assert (np.array(rows[1]) != np.array(rows[3])).any()
    with pytest.raises(PlotError, match="uint8"):
        plot_results.augmentation_figure(digits.astype(np.float32), strong)


def test_fashion_model_figures_use_its_class_names(tmp_path, small_mnist, monkeypatch):
    data_dir, _, fake_fashion_spec = small_mnist
    model_path = tmp_path / "model.npz"
    save_fresh_model(model_path, config={"dataset": "fashion"})
    saved = {}

    def keep_figure(fig, path):
        saved[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plot_results, "save_figure", keep_figure)
    plot_results.make_all_plots(
        model_path, None, tmp_path, data_dir=data_dir, dataset=fake_fashion_spec
    )
    names = list(download_mnist.FASHION_LABELS)
    confusion_axes = saved["confusion_matrix.png"].axes[0]
    assert [label.get_text() for label in confusion_axes.get_xticklabels()] == names
    titles = [a.get_title() for a in saved["misclassified.png"].axes if a.get_images()]
    assert titles and all(
        title.split("\n")[0].removeprefix("true ") in names for title in titles
    ), titles
    first_label = names[load_dataset(data_dir, fake_fashion_spec)[3][0]]
    assert f"(label {first_label})" in saved["feature_maps.png"].get_suptitle()


def test_three_stage_network_is_plotted_without_tensorflow(tmp_path, small_mnist):
    """--help and a whole plotting run, in a fresh interpreter, never import TensorFlow; a
    three-stage network gets three filters pictures."""
    data_dir, small_mnist_spec, _ = small_mnist
    model_path, spec_path = tmp_path / "model.npz", tmp_path / "spec.pickle"
    cnn = SimpleCNN(num_filters=(8, 16, 32), kernel_sizes=3, paddings="same", seed=0)
    save_fresh_model(model_path, history=history_records(2), cnn=cnn, hidden=(64,))
    spec_path.write_bytes(pickle.dumps(small_mnist_spec))
    script = """
import pickle, sys
import plot_results
try:
    plot_results.main(["--help"])
except SystemExit:
    pass
assert "tensorflow" not in sys.modules, "--help imported TensorFlow"
model_path, spec_path, data_dir, out_dir = sys.argv[1:]
with open(spec_path, "rb") as file:
    spec = pickle.load(file)
plot_results.make_all_plots(model_path, None, out_dir, data_dir=data_dir, dataset=spec)
assert "tensorflow" not in sys.modules, "plotting imported TensorFlow"
assert "keras" not in sys.modules, "plotting imported Keras"
"""
    out_dir = tmp_path / "plots"
    result = subprocess.run(
        [sys.executable, "-c", script, model_path, spec_path, data_dir, out_dir],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout  # the help was printed
    expected = ["training_curves.png", "conv1_filters.png", "conv2_filters.png"]
    expected += ["conv3_filters.png", *ALL_PLOTS[3:]]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(expected)
    for name in expected:
        assert_real_png(out_dir / name)


def run_main(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as excinfo:
        plot_results.main(args)
    message = str(excinfo.value.code)
    assert message.startswith("error: ")
    assert capsys.readouterr().out == ""  # nothing written, nothing claimed
    return one_line(message)


def test_missing_model_file_is_a_clear_error(model_and_history, tmp_path, capsys):
    _, history_path = model_and_history
    missing = tmp_path / "nowhere.npz"
    args = ["--model", str(missing), "--history", str(history_path), "--out", str(tmp_path / "p")]
    message = run_main(args, capsys)
    assert str(missing) in message
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other network"])
def test_damaged_model_file_is_a_clear_error(model_and_history, tmp_path, capsys, damage):
    model_path, history_path = model_and_history
    damaged = tmp_path / "damaged.npz"
    if damage == "truncated":
        damaged.write_bytes(model_path.read_bytes()[:5000])
    elif damage == "garbage":
        damaged.write_bytes(b"this is not a model file" * 100)
    else:
        np.savez(damaged, format=np.array("some-other-net"), weights=np.zeros(3))
    args = ["--model", str(damaged), "--history", str(history_path), "--out", str(tmp_path)]
    assert str(damaged) in run_main(args, capsys)
    assert list(tmp_path.glob("*.png")) == []


def test_model_whose_outputs_overflow_is_a_clear_error(tmp_path, capsys):
    """Finite weights so large that the numbers overflow: one error line, not a blank matrix."""
    model_path = tmp_path / "huge.npz"
    save_fresh_model(model_path, weight_scale=1e30)
    out_dir = tmp_path / "plots"
    message = run_main(["--model", str(model_path), "--out", str(out_dir)], capsys)
    assert str(model_path) in message and "not finite" in message
    assert not out_dir.exists()


def test_unknown_dataset_name_is_a_clear_error(model_and_history, tmp_path):
    model_path, _ = model_and_history
    with pytest.raises(PlotError, match="unknown dataset 'digits'") as excinfo:
        plot_results.make_all_plots(model_path, None, tmp_path, dataset="digits")
    one_line(str(excinfo.value))


def test_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit) as excinfo:
        plot_results.main(["--mod", "x.npz"])
    assert excinfo.value.code == 2
    assert "unrecognized arguments: --mod" in capsys.readouterr().err


def test_damaged_history_fails_before_anything_is_drawn(model_and_history, tmp_path, capsys):
    model_path, _ = model_and_history
    history_path = tmp_path / "history.json"
    history_path.write_text(json.dumps({"epochs": history_records(2)})[:-30])
    args = ["--model", str(model_path), "--history", str(history_path), "--out", str(tmp_path)]
    message = run_main(args, capsys)
    assert "not valid JSON" in message and str(history_path) in message
    assert list(tmp_path.glob("*.png")) == []


def test_output_directory_that_is_a_file_is_a_clear_error(model_and_history, tmp_path, capsys):
    model_path, history_path = model_and_history
    not_a_dir = tmp_path / "plots"
    not_a_dir.write_text("keep me")
    args = ["--model", str(model_path), "--history", str(history_path), "--out", str(not_a_dir)]
    assert "is a file" in run_main(args, capsys)
    assert not_a_dir.read_text() == "keep me"


def test_command_line_error_has_no_traceback(tmp_path):
    """The real program, as a user runs it: one 'error:' line on stderr, exit status 1."""
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "plot_results.py"), "--model", "missing.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert one_line(result.stderr.strip()).startswith("error: missing.npz")
    assert "Traceback" not in result.stdout


# --------------------------------------------------------------------------------------------
# The user's files: a run replaces only the pictures it wrote itself
# --------------------------------------------------------------------------------------------


def test_a_users_own_file_with_a_plots_name_is_never_replaced(tmp_path, small_mnist, capsys):
    data_dir, spec, _ = small_mnist
    model_path = tmp_path / "model.npz"
    save_fresh_model(model_path, history=history_records(2))
    out_dir = tmp_path / "plots"
    out_dir.mkdir()
    mine = out_dir / "confusion_matrix.png"  # a user's own picture, made with matplotlib too
    figure = plot_results.confusion_matrix_figure(np.eye(10, dtype=np.int64))
    figure.savefig(mine, format="png")
    before = mine.read_bytes()
    with pytest.raises(plot_results.PlotError) as refused:
        plot_results.make_all_plots(model_path, None, out_dir, data_dir=data_dir, dataset=spec)
    assert str(refused.value) == (
        f"{mine} exists and is not a plot written by this program; refusing to replace it: "
        "choose another --out, or move it away first"
    )
    assert mine.read_bytes() == before and sorted(out_dir.iterdir()) == [mine]  # nothing drawn

    mine.rename(tmp_path / "kept.png")  # moved away: the run goes ahead, and again after it
    for _ in range(2):
        paths = plot_results.make_all_plots(
            model_path, None, out_dir, data_dir=data_dir, dataset=spec
        )
        assert [path.name for path in paths] == ALL_PLOTS
        assert all(plot_results.written_here(path) for path in paths)


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
    model_and_history, tmp_path, capsys, monkeypatch
):
    model_path, history_path = model_and_history

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def no_work(*args, **kwargs):
        raise AssertionError("the test set was loaded before the folder was checked")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # how the folder is probed
    monkeypatch.setattr(download_mnist, "load_dataset", no_work)
    args = ["--model", str(model_path), "--history", str(history_path), "--out", str(tmp_path)]
    message = run_main(args, capsys)
    assert message == f"error: cannot write the plots in {tmp_path}: Read-only file system"
