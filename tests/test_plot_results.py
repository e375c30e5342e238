"""Tests for plot_results: every picture is a real, non-blank PNG; bad input is a clear error.

The figure functions are checked on generated data (what they draw, not only that they draw);
the end-to-end tests save a real model file with model_file.save_model, write the history with
the trainer's own writer, and run the command line on them.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import model_file
import plot_results
from adam import Adam
from download_mnist import load_dataset
from plot_results import PlotError
from simple_cnn import SimpleCNN
from simple_cnn_from_scratch import write_history

PROJECT_DIR = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = [
    "training_curves.png",
    "conv1_filters.png",
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
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert min_size[0] <= width <= max_size[0], f"{path.name}: width {width}"
    assert min_size[1] <= height <= max_size[1], f"{path.name}: height {height}"
    assert pixels.std() > 10, f"{path.name} is (nearly) blank"
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
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

    def fail_half_way(path, **kwargs):
        Path(path).write_bytes(PNG_SIGNATURE + b"half a picture")
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
    ],
)
def test_bad_history_file_is_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "history.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PlotError, match=expected) as excinfo:
        plot_results.load_history(path)
    assert str(path) in one_line(str(excinfo.value))


def test_history_that_is_not_text_is_a_clear_error(tmp_path):
    path = tmp_path / "history.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(PlotError, match="cannot read history file") as excinfo:
        plot_results.load_history(path)
    one_line(str(excinfo.value))


# --------------------------------------------------------------------------------------------
# End to end: a real model file, the real test set, the command line
# --------------------------------------------------------------------------------------------


def save_fresh_model(path: Path, history: list[dict] | None = None) -> None:
    """An untrained but real model file, as the trainer would save it (fast: no training)."""
    cnn = SimpleCNN(seed=0)
    head = model_file.build_head(seed=0)
    model_file.save_model(
        path,
        cnn=cnn,
        head=head,
        conv_optimizer=Adam(),
        head_optimizer=model_file.build_head_optimizer(head),
        epoch=len(history or []),
        config={"dataset": "mnist", "seed": 0},
        history=history,
    )


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


def test_without_history_file_curves_come_from_the_model_file(tmp_path):
    # A small dataset directory (real digits) keeps this second run quick and tests --data-dir.
    x_train, y_train, x_test, y_test = load_dataset()
    data_dir = tmp_path / "small_mnist"
    data_dir.mkdir()
    for name, array in (
        ("train_images", x_train[:10]),
        ("train_labels", y_train[:10]),
        ("test_images", x_test[:300]),
        ("test_labels", y_test[:300]),
    ):
        np.save(data_dir / f"{name}.npy", array)
    model_path = tmp_path / "model.npz"
    save_fresh_model(model_path, history=history_records(2))
    paths = plot_results.make_all_plots(model_path, None, tmp_path / "plots", data_dir=data_dir)
    assert [p.name for p in paths] == ALL_PLOTS
    for path in paths:
        assert_real_png(path)


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
