"""How well a trained model reads handwriting nobody in this project wrote, as users' pictures come.

    python benchmarks/bench_handwriting.py --model simple_cnn_model.npz
    python benchmarks/bench_handwriting.py --model m.npz --sources optdigits --per-class
    python benchmarks/bench_handwriting.py --model m.npz --examples plots/handwriting.png
    python benchmarks/bench_handwriting.py --model m.npz --sources outlined

Three sources, none MNIST nor made from it, all installed without the internet, and a fourth on
request:

* ``optdigits``: scikit-learn's copy of UCI's "Optical Recognition of Handwritten Digits" (the
  test set: 1,797 digits written on forms by 13 people, scanned, and stored as 8x8 counts of ink
  in 4x4 blocks). ``pip install scikit-learn``.
* ``fonts``: the digits of handwriting fonts from Debian, each made from one person's hand (or
  imitating one): a writing style each. ``apt-get install -y fonts-dkg-handwriting fonts-breip
  fonts-bwht fonts-femkeklaver fonts-humor-sans fonts-klee fonts-dancingscript
  fonts-kaushanscript fonts-kristi fonts-rufscript fonts-comic-neue fonts-joscelyn``.
* ``mouse``: digits written with a mouse on the explorer's pad, stroke by stroke
  (benchmarks/mouse_digits.json, made by make_mouse_digits.py: by the project, in the ways a
  class writes digits), drawn again as the pad draws them for the server.
* ``outlined`` (only with ``--sources``): the same fonts' digits drawn in outline, as bubble
  letters are: a line OUTLINE_WIDTH pixels wide around each glyph, paper inside.

Every optdigits and font digit is made into the picture a user would take or draw: dark ink on
light paper of a random shade, the digit at a random size and place on a page of random size,
with a little sensor noise. A mouse drawing is the pad's own picture. Then each goes the way a
user's picture goes: ``predict_digit.prepare_digit`` (the same preparation the explorer uses)
and the model. Prints the accuracy per source, per style
(font) and, with ``--per-class``, per digit. Seeded: the same command gives the same pictures.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's modules

# ruff: noqa: E402  (after the path)
from PIL import Image, ImageDraw, ImageFont

import inference
import predict_digit
from plumbing.command_line import ArgumentParser

DEFAULT_SOURCES = ("optdigits", "fonts", "mouse")
SOURCES = (*DEFAULT_SOURCES, "outlined")
MOUSE_DIGITS = Path(__file__).resolve().parent / "mouse_digits.json"
PAD_SIDE = 112  # pixels the pad draws a drawing at for the server (draw.js, inkGrid)
PAD_BRUSH = 0.075  # the pad's pen, as a fraction of its side (draw.js, BRUSH_WIDTH)
# Debian's handwriting fonts (package: files). A font missing here is skipped with a note.
HANDWRITING_FONTS = {
    "dkg": "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "dkg-bold-italic": "/usr/share/fonts/truetype/fifthhorseman/dkgBI.ttf",
    "breip": "/usr/share/fonts/truetype/breip/Breip.ttf",
    "bwht-build": "/usr/share/fonts/opentype/bwht/BecauseWeBuild-Regular.otf",
    "bwht-connect": "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
    "bwht-create": "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
    "bwht-learn": "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
    "bwht-mentor": "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
    "bwht-organize": "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
    "femkeklaver": "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "humor-sans": "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
    "klee": "/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf",
    "dancing-script": "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
    "kaushan-script": "/usr/share/fonts/opentype/kaushanscript/KaushanScript-Regular.otf",
    "kristi": "/usr/share/fonts/truetype/kristi/Kristi.ttf",
    "rufscript": "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
    "comic-neue": "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
    "comic-neue-light": "/usr/share/fonts/opentype/comic-neue/ComicNeue-Light.otf",
    "joscelyn": "/usr/share/fonts/opentype/joscelyn/Joscelyn-Regular.otf",
}
PICTURES_PER_GLYPH = 12  # each font's digit, on pages of different sizes, shades and places
OUTLINE_PICTURES_PER_GLYPH = 4
OUTLINE_WIDTH = 3  # pixels of a 96-pixel font: the pen an outlined digit is drawn with


@dataclass
class Digits:
    """Ink images of one source: ``ink`` (N, h, w) float in [0, 1] (1 ink), ``labels`` (N,),
    ``styles`` (N,) the writing style of each (a font's name, or the source's name)."""

    ink: list[np.ndarray]
    labels: np.ndarray
    styles: np.ndarray


def optdigits() -> Digits:
    """UCI's optdigits test set from scikit-learn: 8x8 counts 0..16 of ink per 4x4 block."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("error: the optdigits source needs scikit-learn: pip install scikit-learn")
    digits = load_digits()
    ink = [image / 16.0 for image in digits.images]
    return Digits(ink, digits.target.astype(np.int64), np.array(["optdigits"] * len(ink)))


def font_digits(rng: np.random.Generator) -> Digits:
    """Each handwriting font's ten digits, drawn large (the pictures are made from these)."""
    ink, labels, styles = [], [], []
    missing = [name for name, path in HANDWRITING_FONTS.items() if not Path(path).is_file()]
    if missing:
        print(f"note: fonts not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    for name, path in HANDWRITING_FONTS.items():
        if name in missing:
            continue
        font = ImageFont.truetype(path, 96)
        for digit in range(10):
            for _ in range(PICTURES_PER_GLYPH):
                ink.append(_glyph(font, str(digit)))
                labels.append(digit)
                styles.append(name)
    return Digits(ink, np.array(labels), np.array(styles))


def outlined_digits(rng: np.random.Generator) -> Digits:
    """Each handwriting font's ten digits drawn in outline (as bubble letters): a line
    OUTLINE_WIDTH wide around each glyph, paper inside."""
    ink, labels, styles = [], [], []
    for name, path in HANDWRITING_FONTS.items():
        if not Path(path).is_file():
            continue
        font = ImageFont.truetype(path, 96)
        for digit in range(10):
            outline = _glyph(font, str(digit), outline=OUTLINE_WIDTH)
            ink += [outline] * OUTLINE_PICTURES_PER_GLYPH
            labels += [digit] * OUTLINE_PICTURES_PER_GLYPH
            styles += [name] * OUTLINE_PICTURES_PER_GLYPH
    return Digits(ink, np.array(labels), np.array(styles))


def mouse_digits() -> Digits:
    """The mouse drawings, as the pad sends them: ink (side, side) in [0, 1], 1 ink."""
    drawings = json.loads(MOUSE_DIGITS.read_text())["drawings"]
    ink = [pad_ink(drawing["strokes"]) for drawing in drawings]
    labels = np.array([drawing["label"] for drawing in drawings])
    return Digits(ink, labels, np.array([drawing["style"] for drawing in drawings]))


def pad_ink(strokes: list, side: int = PAD_SIDE) -> np.ndarray:
    """Strokes (lists of [x, y] in pad units) drawn as the explorer's pad draws them for the
    server: black round-capped lines PAD_BRUSH of the side wide on white, anti-aliased (drawn
    at 4x and averaged down), as ink (side, side) in [0, 1], in the 8-bit levels the page
    sends (0 paper .. 255 ink)."""
    large = side * 4
    canvas = Image.new("L", (large, large), 255)
    pen = ImageDraw.Draw(canvas)
    width = PAD_BRUSH * large
    for stroke in strokes:
        points = [(x * large, y * large) for x, y in stroke]
        if len(points) > 1:
            pen.line(points, fill=0, width=round(width), joint="curve")
        for x, y in (points[0], points[-1]):  # round ends (a tap is a dot)
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=0)
    grey = np.asarray(canvas.resize((side, side), Image.Resampling.BOX), np.float32) / 255
    return np.round((1 - grey) * 255) / 255


def _glyph(font: ImageFont.FreeTypeFont, text: str, outline: int = 0) -> np.ndarray:
    """The text's ink (h, w) in [0, 1], cropped to it; with ``outline``, only a line that many
    pixels wide around the text's edge is ink."""
    left, top, right, bottom = font.getbbox(text, stroke_width=outline)
    canvas = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    pen = ImageDraw.Draw(canvas)
    if outline:  # Pillow draws the widened text in the stroke's colour, then the text over it
        pen.text(
            (4 - left, 4 - top), text, fill=0, font=font, stroke_width=outline, stroke_fill=255
        )
    else:
        pen.text((4 - left, 4 - top), text, fill=255, font=font)
    return np.asarray(canvas, np.float32) / 255


def as_users_picture(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey levels (H, W) in [0, 1] of ``ink`` written on paper: dark ink on light paper of a
    random shade, the digit 35-80% of the page's height at a random place, a little noise."""
    page = int(rng.integers(48, 161))
    digit_height = max(8, int(page * rng.uniform(0.35, 0.8)))
    height, width = ink.shape
    digit_width = max(1, min(page - 2, round(width * digit_height / height)))
    digit_height = min(digit_height, page - 2)
    image = Image.fromarray(np.uint8(np.round(ink * 255)))
    digit = np.asarray(image.resize((digit_width, digit_height), Image.Resampling.BICUBIC))
    top = int(rng.integers(1, page - digit_height))
    left = int(rng.integers(1, page - digit_width))
    coverage = np.zeros((page, page), np.float32)
    coverage[top : top + digit_height, left : left + digit_width] = np.clip(digit / 255, 0, 1)
    paper, ink_level = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)
    grey = paper + (ink_level - paper) * coverage
    grey += rng.normal(0, 0.02, grey.shape)
    return np.clip(grey, 0, 1)


def prepared(digits: Digits, rng: np.random.Generator, on_the_pad: bool = False) -> np.ndarray:
    """Every digit as a user's picture (or, ``on_the_pad``, as the pad's drawing), prepared as
    predict_digit and the explorer prepare one: (N, 28, 28) uint8."""
    if on_the_pad:  # the explorer's server: grey levels, 1 paper, 0 ink
        return np.stack([predict_digit.prepare_digit(1 - ink) for ink in digits.ink])
    return np.stack([predict_digit.prepare_digit(as_users_picture(i, rng)) for i in digits.ink])


def accuracy_table(
    predictions: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> list[tuple[str, int, float]]:
    """(group, count, accuracy) for each distinct group, worst first."""
    rows = []
    for group in np.unique(groups):
        chosen = groups == group
        rows.append(
            (str(group), int(chosen.sum()), float((predictions[chosen] == labels[chosen]).mean()))
        )
    return sorted(rows, key=lambda row: row[2])


def examples_png(path: str, images: np.ndarray, labels, predictions, count: int = 60) -> None:
    """A grid of the first ``count`` misread pictures as the network saw them (for looking at)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(predictions != labels)[:count]
    columns = 10
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3))
    for axis in np.ravel(axes):
        axis.axis("off")
    for axis, index in zip(np.ravel(axes), wrong, strict=False):
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(f"{labels[index]} read {predictions[index]}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="simple_cnn_model.npz", help="model file")
    parser.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help=f"comma-separated, from {', '.join(SOURCES)} (default: {','.join(DEFAULT_SOURCES)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pictures (default 0)")
    parser.add_argument("--per-class", action="store_true", help="also print each digit's accuracy")
    parser.add_argument("--examples", metavar="PNG", help="draw the misread pictures into PNG")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sources = args.sources.split(",")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        parser.error(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    try:
        classifier = inference.load_classifier(args.model)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"model {args.model}; pictures seeded {args.seed}")
    all_images, all_labels, all_predictions = [], [], []
    for source in sources:
        rng = np.random.default_rng([args.seed, SOURCES.index(source)])
        if source == "optdigits":
            digits = optdigits()
        elif source == "fonts":
            digits = font_digits(rng)
        elif source == "outlined":
            digits = outlined_digits(rng)
        else:
            digits = mouse_digits()
        images = prepared(digits, rng, on_the_pad=source == "mouse")
        predictions = classifier.predict(images)
        correct = predictions == digits.labels
        print(f"{source}: {correct.mean():.2%} of {len(correct):,}")
        if source != "optdigits":
            for style, count, accuracy in accuracy_table(predictions, digits.labels, digits.styles):
                print(f"  {style:20s} {accuracy:7.2%} of {count}")
        if args.per_class:
            for digit, count, accuracy in accuracy_table(predictions, digits.labels, digits.labels):
                print(f"  digit {digit}  {accuracy:7.2%} of {count}")
        all_images.append(images)
        all_labels.append(digits.labels)
        all_predictions.append(predictions)
    labels, predictions = np.concatenate(all_labels), np.concatenate(all_predictions)
    print(f"all sources: {(predictions == labels).mean():.2%} of {len(labels):,}")
    if args.examples:
        examples_png(args.examples, np.concatenate(all_images), labels, predictions)
        print(f"misread pictures drawn in {args.examples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
