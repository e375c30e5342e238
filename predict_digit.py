"""Classify your own picture of a handwritten digit with a trained SimpleCNN model.

    python simple_cnn_from_scratch.py                  # trains and writes simple_cnn_model.npz
    python predict_digit.py my_digit.png               # prints the digit and ten probabilities
    python predict_digit.py photo.jpg --model other.npz --show

The picture may be a PNG or JPEG of any size, a dark digit on light paper or a light digit on a
dark background. It is turned into what MNIST's digits are, so the network sees what it learnt:

    grey levels -> bright ink on black (inverted if the background is light)
    -> cropped to the ink -> longer side scaled to 20 px -> centred by its centre of mass in 28x28
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from download_mnist import FASHION_LABELS

IMAGE_SIZE = 28
DIGIT_BOX = 20  # MNIST scales each digit into a 20x20 box, then centres it in 28x28
INK_THRESHOLD = 0.2  # fraction of the strongest ink below which a pixel counts as paper


class ImageError(ValueError):
    """A picture that cannot be read or holds no digit."""


def load_image(path: str) -> Image.Image:
    """Open a picture file as greyscale ("L"), upright, transparent parts on white.

    Raises
    ------
    ImageError
        The file is missing or is not an image Pillow can read.
    """
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)  # phone photos store "rotate me" in EXIF
    except FileNotFoundError:
        raise ImageError(f"no such file: {path}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not a picture Pillow can read; use a PNG or JPEG") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path} is too large to be safe to open ({error})") from None
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error}") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # A drawing app's transparent background would turn black in "L" and hide dark ink.
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return image.convert("L")


def prepare_digit(image: Image.Image) -> np.ndarray:
    """Turn a greyscale picture of one digit into an MNIST-style image.

    Parameters
    ----------
    image : PIL.Image.Image
        Any size, mode "L"; dark ink on light paper or light ink on dark.

    Returns
    -------
    ndarray of shape (28, 28), uint8
        Bright digit on black, its longer side 20 px, centre of mass at the centre.

    Raises
    ------
    ImageError
        The picture is blank (no ink stands out from the background).
    """
    grey = np.asarray(image, dtype=np.float32)
    background = float(np.median(grey))  # the digit's strokes cover far less than half
    if background - grey.min() > grey.max() - background:
        grey = 255.0 - grey  # dark ink on light paper: invert to MNIST's light-on-dark
        background = 255.0 - background
    ink = np.clip(grey - background, 0.0, None)
    if ink.max() < 16:  # less than ~6% contrast between ink and paper
        raise ImageError("no digit found: the picture is blank or has almost no contrast")
    ink /= ink.max()
    ink[ink < INK_THRESHOLD] = 0.0  # paper texture and JPEG noise are not ink

    rows = np.flatnonzero(ink.any(axis=1))
    columns = np.flatnonzero(ink.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = DIGIT_BOX / max(digit.shape)
    width = max(1, round(digit.shape[1] * scale))
    height = max(1, round(digit.shape[0] * scale))
    digit_image = Image.fromarray(np.uint8(np.round(digit * 255)))
    # LANCZOS anti-aliases like MNIST's own downscaling, so strokes keep soft grey edges.
    digit = np.asarray(digit_image.resize((width, height), Image.Resampling.LANCZOS), np.float32)
    return _centre_by_mass(digit)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste ``digit`` (h, w), h and w <= 20, into 28x28 with its centre of mass in the middle."""
    height, width = digit.shape
    total = digit.sum()
    centre_row = (digit.sum(axis=1) @ np.arange(height)) / total
    centre_column = (digit.sum(axis=0) @ np.arange(width)) / total
    # MNIST puts the centre of mass at pixel (14, 14); clamped, so a lopsided digit moves as far
    # as it can without leaving the frame.
    top = int(np.clip(round(IMAGE_SIZE / 2 - centre_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(IMAGE_SIZE / 2 - centre_column), 0, IMAGE_SIZE - width))
    framed = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    framed[top : top + height, left : left + width] = digit
    return np.uint8(np.clip(np.round(framed), 0, 255))


def as_text(image: np.ndarray) -> str:
    """A 28x28 uint8 image as 28 lines of text, darker characters for brighter pixels."""
    shades = " .:-=+*#%@"
    levels = (image.astype(np.int32) * len(shades)) // 256
    return "\n".join("".join(shades[level] * 2 for level in row) for row in levels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Classify a picture of a handwritten digit (PNG or JPEG, any size, dark on "
        "light or light on dark) with a model trained by simple_cnn_from_scratch.py."
    )
    parser.add_argument("image", help="the picture file")
    parser.add_argument(
        "--model",
        default="simple_cnn_model.npz",
        help="model file written by simple_cnn_from_scratch.py (default simple_cnn_model.npz)",
    )
    parser.add_argument(
        "--show", action="store_true", help="also print the 28x28 image the network sees"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the predicted digit and the ten probabilities; returns 0."""
    args = build_parser().parse_args(argv)
    try:
        digit = prepare_digit(load_image(args.image))
    except ImageError as error:
        sys.exit(f"error: {error}")

    import model_file  # TensorFlow loads only once the picture is known to be good

    try:
        model = model_file.load_model(args.model)
    except model_file.ModelFileError as error:
        sys.exit(f"error: {error}")
    probabilities = model_file.predict_proba(model.cnn, model.head, digit[np.newaxis])[0]
    labels = FASHION_LABELS if model.config.get("dataset") == "fashion" else range(10)
    labels = [str(label) for label in labels]

    if args.show:
        print(as_text(digit))
    best = int(np.argmax(probabilities))
    print(f"Predicted: {labels[best]} ({probabilities[best]:.1%})")
    width = max(len(label) for label in labels)
    for label, probability in zip(labels, probabilities, strict=True):
        bar = "#" * round(probability * 40)
        print(f"  {label:>{width}}  {probability:.4f}  {bar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
