"""Classifying one's own picture: MNIST-style preprocessing, and predictions from a saved model.

The pictures are made here from real MNIST test digits: moved off centre on a larger canvas,
scaled up, inverted to dark ink on light paper (or not), and saved as PNG or JPEG.
"""

import numpy as np
import pytest
from PIL import Image

import predict_digit
import simple_cnn_from_scratch as driver
from download_mnist import load_dataset
from predict_digit import ImageError, load_image, prepare_digit


@pytest.fixture(scope="module")
def test_digits():
    _, _, x_test, y_test = load_dataset()
    return x_test[:12], y_test[:12]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A model from a short real training run (2 epochs on 5,000 images, ~96% accurate)."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    config = driver.TrainConfig(
        epochs=2, limit=5000, batch_size=32, learning_rate=0.002, save_path=str(path), verbose=False
    )
    driver.train(config)
    return path


def photograph(digit, *, dark_on_light=True, size=(360, 240), offset=(10, 40)):
    """A 28x28 MNIST digit as a larger picture: off centre on a wider canvas, scaled up."""
    canvas = np.zeros((60, 90), np.uint8)
    canvas[offset[0] : offset[0] + 28, offset[1] : offset[1] + 28] = digit
    if dark_on_light:
        canvas = 255 - canvas
    return Image.fromarray(canvas).resize(size, Image.Resampling.BICUBIC)


def correlation(a, b):
    return np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-light", "light-on-dark"])
def test_preparing_a_picture_recovers_the_mnist_digit(test_digits, dark_on_light):
    digits, _ = test_digits
    similarities = [
        correlation(prepare_digit(photograph(digit, dark_on_light=dark_on_light)), digit)
        for digit in digits
    ]
    # MNIST's own recipe (20 px box, centre of mass in the middle) undoes the move and scaling.
    assert np.median(similarities) > 0.9


def test_prepared_digit_is_mnist_shaped(test_digits):
    prepared = prepare_digit(photograph(test_digits[0][1], size=(900, 600), offset=(30, 5)))
    rows = np.flatnonzero(prepared.any(axis=1))
    columns = np.flatnonzero(prepared.any(axis=0))
    assert prepared.shape == (28, 28) and prepared.dtype == np.uint8
    assert max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 == 20  # longer side: 20 px
    assert prepared[0].max() == 0 and prepared[:, 0].max() == 0  # black border, as in MNIST
    assert prepared.max() > 200  # bright ink


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_predicts_the_digits_of_saved_pictures(tmp_path, model_path, test_digits, suffix, capsys):
    digits, labels = test_digits
    right = 0
    for index, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        path = tmp_path / f"digit{index}.{suffix}"
        photograph(digit, dark_on_light=index % 2 == 0).convert("RGB").save(path)
        assert predict_digit.main([str(path), "--model", str(model_path)]) == 0
        output = capsys.readouterr().out.splitlines()
        probabilities = [float(line.split()[1]) for line in output[1:]]
        assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 1e-3
        predicted = int(output[0].split()[1])
        assert predicted == int(np.argmax(probabilities))
        right += predicted == label
    assert right >= 9  # of 12; the model is ~96% accurate on MNIST itself


def test_transparent_background_counts_as_paper(test_digits, tmp_path):
    # Drawing apps save black ink on a transparent background, which "L" alone would turn black.
    digit = test_digits[0][0]
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = digit  # black ink, opaque where the digit is
    path = tmp_path / "drawn.png"
    Image.fromarray(rgba, "RGBA").resize((112, 112)).save(path)

    prepared = prepare_digit(load_image(str(path)))
    assert correlation(prepared, digit) > 0.9


def test_show_prints_what_the_network_sees(model_path, test_digits, tmp_path, capsys):
    path = tmp_path / "seven.png"
    photograph(test_digits[0][0]).save(path)
    predict_digit.main([str(path), "--model", str(model_path), "--show"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines[0]) == 56 and set(lines[0]) == {" "}  # 28 blank pixels, two chars each
    assert lines[28].startswith("Predicted: 7")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda path: None, "no such file"),
        (lambda path: path.write_text("not a picture"), "not a picture Pillow can read; use a PNG"),
        (lambda path: Image.new("L", (50, 40), 255).save(path, "PNG"), "no digit found"),
        (lambda path: Image.new("RGB", (50, 40), (30, 30, 30)).save(path, "PNG"), "no digit"),
    ],
    ids=["missing", "not-an-image", "blank-white", "blank-dark"],
)
def test_bad_pictures_get_a_one_line_error(tmp_path, model_path, make, message):
    path = tmp_path / "picture.png"
    make(path)
    with pytest.raises(SystemExit) as exit_:
        predict_digit.main([str(path), "--model", str(model_path)])
    assert str(exit_.value).startswith("error: ") and message in str(exit_.value)
    assert "\n" not in str(exit_.value)


def test_missing_model_gets_a_one_line_error(tmp_path, test_digits):
    path = tmp_path / "digit.png"
    photograph(test_digits[0][0]).save(path)
    with pytest.raises(SystemExit) as exit_:
        predict_digit.main([str(path), "--model", str(tmp_path / "none.npz")])
    assert "no such model file" in str(exit_.value)
    assert "simple_cnn_from_scratch.py" in str(exit_.value)  # says how to make one


def test_prepare_digit_rejects_a_blank_picture():
    with pytest.raises(ImageError, match="no digit found"):
        prepare_digit(Image.new("L", (28, 28), 0))
