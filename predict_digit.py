"""Classify your own pictures of handwritten digits with a trained SimpleCNN model.

    python simple_cnn_from_scratch.py                  # trains and writes simple_cnn_model.npz
    python predict_digit.py my_digit.png               # prints the digit and ten probabilities
    python predict_digit.py photo.jpg --model other.npz --show
    python predict_digit.py a.png b.jpg my_folder/     # one line per picture: "a.png: 4 (99.9%)"
    python predict_digit.py my_folder/ --json          # one JSON document, for scripts

A picture may be a PNG (8 or 16 bits), JPEG, BMP, GIF or WebP of any size (an animation gives its
first frame), a dark digit on light paper or a light digit on a dark background. It is turned into
what MNIST's digits are, so the network sees what it learnt:

    grey levels in [0, 1] -> bright ink on black (inverted if the background is light)
    -> faint ink stretched to full contrast -> a slanted digit sheared upright
    -> strokes thinner or thicker than MNIST's pens made as wide as theirs
    -> longer side scaled to 20 px -> centred by its centre of mass in 28x28

(``preparation_steps``; ``--show`` prints each step.)

``load_image`` reads a file as grey levels and ``prepare_digit`` does the rest, so grey levels from
elsewhere (a canvas drawn in a browser) are prepared the same way. A warning says when the ink runs
into the picture's edge (a shadow, the paper's border) or the answer is unclear. A picture that
cannot be read gets a one-line error and the others are still classified; the exit status is 1 if
any picture failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from plumbing.command_line import ArgumentParser

IMAGE_SIZE = 28
DIGIT_BOX = 20  # MNIST scales each digit into a 20x20 box, then centres it in 28x28
WORK_SCALE = 4  # the upright and pen-width steps work at 4x the final size
WORK_BOX = DIGIT_BOX * WORK_SCALE
MAX_SLANT = 1.0  # a slant of 45 degrees at most is corrected: more is not slant but a stroke
# MNIST's pen widths in its 20x20 box (pen_width of its first 2,000 training digits): 10% are
# thinner than the first, 10% thicker than the second. Strokes outside are brought inside.
MNIST_PEN_WIDTHS = (1.41, 2.82)
# Outlined digits (each stroke drawn as its outline, as in bubble letters and some fonts). Where
# the outlines are closed, the inside of each stroke is paper closed in by ink, long and thin,
# and bent the way the digit's strokes bend, or round a loop's hole; the hole of a loop written
# with a pen (a 6, an 8, a narrow 0, a 4 closed at the top) is round, or long but convex, like a
# lens or a triangle. A length over width past OUTLINE_ELONGATION, and an area under
# OUTLINE_SOLIDITY of the region's convex hull or a ring round another closed-in region (the
# loop's hole), tell them apart (benchmarks/README.md, "Real handwriting"). Small gaps
# in an outline (a sketchy font's corners) are closed first, up to 2 x OUTLINE_SMALL_GAP working
# pixels. Where the outlines have wider gaps, closing the gaps up to 2 x OUTLINE_GAP working
# pixels wide (1/8 of the digit's height) more than doubles their ink, and no other digit's ink
# grows by even half.
OUTLINE_INK = 0.25  # ink this strong (or more) closes a region in
OUTLINE_SMALL_GAP = 2
OUTLINE_ELONGATION = 12
OUTLINE_SOLIDITY = 0.65
OUTLINE_MAX_INSIDES = 12  # an outlined digit's strokes have a few insides (8 at most measured)
OUTLINE_MIN_AREA = 20  # working pixels: a smaller closed-in speck is no stroke's inside
OUTLINE_GAP = 5
OUTLINE_GROWTH = 1.8
MAX_PEN_STEPS = 16  # working pixels a stroke may widen or thin on each side (4 final pixels)
INK_THRESHOLD = 0.2  # fraction of the strongest ink below which a pixel counts as paper
MIN_CONTRAST = 16 * 257  # 16-bit levels: under 16 of 255 (~6%) between ink and paper is blank
MIN_SIDE = 8  # pixels: fewer cannot draw a digit
CLEAR_PROBABILITY = 0.8  # below it, answers are often wrong (benchmarks/README.md, "How sure")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")  # what a folder offers
EDGE_WARNING = (
    "the ink touches the picture's edge (a shadow or the paper's border?); crop to the digit or "
    "light it evenly, and look at what the network sees with --show"
)


class ImageError(ValueError):
    """A picture that cannot be read or holds no digit."""


class ModelError(ValueError):
    """A model file that cannot be used."""


# --- Reading a picture ---------------------------------------------------------------------------


def load_image(path: str) -> np.ndarray:
    """Read a picture file as grey levels: upright, transparent parts as white paper.

    Parameters
    ----------
    path : str
        Any picture Pillow reads: PNG (8 or 16 bits), JPEG (CMYK too), BMP, GIF, WebP...
        An animation gives its first frame.

    Returns
    -------
    ndarray of shape (H, W), float32
        Grey levels in [0, 1]: 0 black, 1 white.

    Raises
    ------
    ImageError
        One line: the file is missing, not a regular file, not a picture, damaged or too large.
    """
    _check_is_a_file(path)
    return _grey_levels(_read_picture(path))


def _check_is_a_file(path: str) -> None:
    """Refuse anything but a regular file before opening it: a FIFO would wait for a writer."""
    if path == "":
        raise ImageError("the picture's path is empty; give the path of a picture file")
    if os.path.isdir(path):
        raise ImageError("a folder, not a picture file")
    if not os.path.exists(path):
        raise ImageError("no such file")
    if not os.path.isfile(path):
        raise ImageError("not a regular file (a device, FIFO or socket?); give a picture file")


def _read_picture(path: str) -> Image.Image:
    """Decode the picture at ``path`` (its first frame), turned upright as its EXIF says."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns up to twice its pixel limit, then decodes gigabytes.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return ImageOps.exif_transpose(image)  # phone photos store "rotate me" in EXIF
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"too large: over {Image.MAX_IMAGE_PIXELS:,} pixels is unsafe to open (a "
            "decompression bomb?); scale the picture down"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "not a picture Pillow can read; use a PNG, JPEG, BMP, GIF or WebP file"
        ) from None
    except PermissionError:
        raise ImageError("cannot read it: permission denied") from None
    except (OSError, ValueError, EOFError, SyntaxError, NotImplementedError) as error:
        # Pillow's decoders report a damaged file with any of these, depending on the format.
        raise ImageError(f"damaged or truncated picture ({error}); save it again") from None


def _grey_levels(image: Image.Image) -> np.ndarray:
    """Grey levels (H, W), float32 in [0, 1], of a decoded picture in any of Pillow's modes."""
    if image.mode == "F":
        raise ImageError("floating-point pictures are not supported; save it as a PNG")
    if image.mode == "I" or image.mode.startswith("I;16"):
        return _sixteen_bit_grey_levels(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # A drawing app's transparent background would turn black in "L" and hide dark ink.
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("L"), np.float32) / 255


def _sixteen_bit_grey_levels(image: Image.Image) -> np.ndarray:
    """Grey levels (H, W), float32 in [0, 1], of a 16-bit grey picture, at its full depth.

    Pillow's convert("L") clips these at 255 instead of scaling them: grey ink on grey paper
    would turn white. 16-bit PNGs open as "I;16", 16-bit PGMs as "I" (scaled to 0-65535).
    """
    levels = np.asarray(image)
    if levels.min() < 0 or levels.max() > 65535:
        raise ImageError(
            f"grey levels from {levels.min()} to {levels.max()} are not 16-bit; save the picture "
            "as an 8- or 16-bit PNG"
        )
    grey = levels.astype(np.float32) / 65535
    transparent = image.info.get("transparency")  # a 16-bit PNG marks one grey level as clear
    if transparent is not None:
        grey[levels == transparent] = 1.0
    return grey


# --- Preparing it the way MNIST's digits were ---------------------------------------------------


def prepare_digit(grey: np.ndarray) -> np.ndarray:
    """Turn grey levels of a picture of one digit into an MNIST-style image.

    Parameters
    ----------
    grey : ndarray of shape (H, W), float
        Grey levels in [0, 1] (0 black, 1 white), H and W at least 8: dark ink on light paper or
        light ink on dark.

    Returns
    -------
    ndarray of shape (28, 28), uint8
        Bright digit on black, upright, with MNIST's stroke width, its longer side 20 px, centre
        of mass at the centre.

    Raises
    ------
    ImageError
        ``grey`` is not such an array, or is blank (no ink stands out from the background).
    """
    return preparation_steps(grey)[-1][1]


def preparation_steps(grey: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """What :func:`prepare_digit` does, step by step: (what the step did, the image after it).

    MNIST's digits were all prepared alike (size-normalised, centred, drawn with pens of much
    the same width), and a network trained on them alone has learnt that preparation as much
    as the digits. So a picture is made to look prepared the same way:

    1. ink: bright on black whichever way round the picture was, paper and noise removed;
    2. full contrast: faint ink (a pencil, a grey pen) stretched until its strokes are solid;
    3. upright: a slanted digit sheared upright, as MNIST-style deskewing does (the image's
       second moments: the slant is the covariance of row and column over the row variance);
    (only for a digit drawn in outline: its outlines filled in, so that each stroke is solid);
    4. pen width: strokes thinner or thicker than nearly all of MNIST's made as wide as theirs;
    5. MNIST's box: the longer side scaled to 20 px, the centre of mass put at the centre of
       28x28.

    Steps 3 and 4 (and the filling in) work at four times the final size, so that shearing and
    widening by a fraction of a final pixel are exact enough. Each image is float in [0, 1]
    (the last one uint8 in 0..255), bright ink on black.
    """
    ink = find_ink(grey)
    steps = [("the ink, bright on black", ink)]
    ink = _full_contrast(ink)
    steps.append(("full contrast", ink))
    # A thin line on a large picture comes out grey when scaled down: stretched again.
    ink = _full_contrast(_scaled(_cropped(ink), WORK_BOX))
    ink = _scaled(_cropped(_upright(ink)), WORK_BOX)
    steps.append(("upright", ink))
    outlined = _outlines_filled(ink)
    if outlined is not None:
        ink = outlined
        steps.append(("outlines filled in", ink))
    ink = _cropped(_with_mnist_pen_width(ink))
    steps.append(("MNIST's pen width", ink))
    digit = _scaled(ink, DIGIT_BOX) * 255
    steps.append(("in MNIST's 20x20 box, centred by mass", _centre_by_mass(digit)))
    return steps


def _full_contrast(ink: np.ndarray) -> np.ndarray:
    """``ink`` stretched so that its strongest tenth is solid (1): faint strokes made solid."""
    return np.clip(ink / np.percentile(ink[ink > 0], 90), 0, 1)


def _cropped(ink: np.ndarray) -> np.ndarray:
    """``ink`` cut down to the rows and columns that hold some."""
    rows = np.flatnonzero(ink.any(axis=1))
    columns = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _scaled(ink: np.ndarray, box: int) -> np.ndarray:
    """``ink`` resized so that its longer side is ``box`` pixels, keeping its proportions.

    LANCZOS anti-aliases like MNIST's own downscaling, so strokes keep soft grey edges.
    """
    scale = box / max(ink.shape)
    width = max(1, round(ink.shape[1] * scale))
    height = max(1, round(ink.shape[0] * scale))
    image = Image.fromarray(np.float32(ink), mode="F")
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, np.float32), 0, 1)


def _upright(ink: np.ndarray) -> np.ndarray:
    """``ink`` sheared so that its slant is gone: each row moved sideways in proportion to its
    height above the centre of mass, by the slant the image's moments measure."""
    height, width = ink.shape
    rows, columns = np.arange(height), np.arange(width)
    total = ink.sum()
    centre_row = ink.sum(axis=1) @ rows / total
    centre_column = ink.sum(axis=0) @ columns / total
    row_variance = ink.sum(axis=1) @ (rows - centre_row) ** 2 / total
    covariance = (rows - centre_row) @ ink @ (columns - centre_column) / total
    if row_variance <= 0:  # a single row of ink: a dash has no slant
        return ink
    slant = float(np.clip(covariance / row_variance, -MAX_SLANT, MAX_SLANT))
    margin = int(np.ceil(abs(slant) * height / 2)) + 2
    # The new image's pixel (x, y) reads the old one at (x + slant (y - centre_row), y).
    mapping = (1, slant, -margin - slant * centre_row, 0, 1, 0)
    image = Image.fromarray(np.float32(ink), mode="F")
    sheared = image.transform(
        (width + 2 * margin, height), Image.Transform.AFFINE, mapping, Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(sheared, np.float32), 0, 1)


def _outlines_filled(ink: np.ndarray) -> np.ndarray | None:
    """``ink`` (at WORK_BOX) with the inside of each stroke filled, where the digit is drawn in
    outline; None where it is drawn with a pen."""
    solid = np.float32(ink >= OUTLINE_INK)
    # Closing a gap in an outline can also close up the thin inside of another stroke, so the
    # outline is looked at as it is and with each width of gap closed, and every stroke's
    # inside that any of them closes in is filled.
    insides = [
        inside
        for gap in range(OUTLINE_SMALL_GAP + 1)
        for inside in _stroke_insides(
            _enclosed_regions(_closed(solid, gap)[0] >= 0.5, OUTLINE_MIN_AREA)
        )
    ]
    if insides:  # closed outlines
        return np.maximum(ink, np.any(insides, axis=0))
    filled, nearby = _closed(ink, OUTLINE_GAP)  # outlines with gaps: the gaps closed
    if np.count_nonzero(filled >= 0.5) <= OUTLINE_GROWTH * np.count_nonzero(ink >= 0.5):
        return None
    # What the closing added is the strokes' insides where the digit is outlined; where it is
    # drawn with a thin pen, it is small loops (of a 9, an 8, a narrow 0), round or convex,
    # and they stay paper.
    added = (filled >= 0.5) & (ink < 0.5)
    insides = _stroke_insides(_regions(added, OUTLINE_MIN_AREA))
    if not insides:
        return None
    # Thin outlines come out grey at this size, and so does what fills them: each filled pixel
    # as strong as the strongest ink near it.
    strength = filled / np.maximum(nearby, 1e-6)
    return np.maximum(ink, np.where(np.any(insides, axis=0), strength, 0))


def _closed(ink: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """``ink`` with every gap between strokes up to ``2 gap`` pixels wide filled: widened by
    ``gap`` pixels on every side, then thinned back by as much (a morphological closing); and
    the widened ink (each pixel the strongest ink within ``gap`` pixels)."""
    levels = _as_levels(ink, margin=gap + 1)
    for _ in range(gap):
        levels = _over_3x3(levels, np.maximum)
    widened = levels
    for _ in range(gap):
        levels = _over_3x3(levels, np.minimum)
    inside = (slice(gap + 1, -gap - 1),) * 2
    return _as_ink(levels[inside]), _as_ink(widened[inside])


def _enclosed_regions(solid: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """The regions of paper that the ink ``solid`` (bool) closes in, of ``min_area`` pixels or
    more, each a bool mask: the pixels that cannot reach the picture's edge by steps up, down,
    left or right without crossing ink."""
    paper = ~np.pad(solid, 1)  # a frame of paper, all of it outside
    numbers = _region_numbers(paper)  # the frame's corner is pixel 0: the outside is numbered 0
    enclosed = paper & (numbers != 0)
    return [region[1:-1, 1:-1] for region in _numbered_regions(numbers, enclosed, min_area)]


def _regions(mask: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """The parts of ``mask`` (bool) that steps up, down, left and right within it connect, of
    ``min_area`` pixels or more, each a bool mask."""
    return _numbered_regions(_region_numbers(mask), mask, min_area)


def _numbered_regions(numbers: np.ndarray, mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """The pixels of ``mask`` that share each number, where ``min_area`` or more do."""
    counts = np.bincount(numbers[mask])
    return [numbers == number for number in np.flatnonzero(counts >= min_area)]


def _region_numbers(mask: np.ndarray) -> np.ndarray:
    """Each pixel of ``mask`` (bool) numbered by its region (the pixels that steps up, down, left
    and right within the mask reach): the smallest flat index among them. Every pixel starts
    with its own index; each pass gives every run of mask pixels along a row, then along a
    column, the smallest number in it, until nothing changes. Pixels outside: mask.size."""
    numbers = np.where(mask, np.arange(mask.size).reshape(mask.shape), mask.size)
    along_rows, along_columns = _runs(mask), _runs(mask.T).T
    while True:
        before = numbers
        numbers = _smallest_in_runs(numbers, along_rows)
        numbers = _smallest_in_runs(numbers, along_columns)
        if np.array_equal(numbers, before):
            return numbers


def _runs(allowed: np.ndarray) -> np.ndarray:
    """Each ``allowed`` pixel's run: the runs of allowed pixels along the rows numbered from 1,
    row after row; 0 where not allowed."""
    starts = allowed.copy()
    starts[:, 1:] &= ~allowed[:, :-1]
    return np.cumsum(starts).reshape(allowed.shape) * allowed


def _smallest_in_runs(numbers: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """``numbers`` with each run's pixels (numbered as :func:`_runs` numbers them) given the
    smallest number in the run; pixels in no run kept as they are."""
    smallest = np.full(runs.max() + 1, numbers.size)
    np.minimum.at(smallest, runs, numbers)
    return np.where(runs > 0, smallest[runs], numbers)


def _stroke_insides(regions: list[np.ndarray]) -> list[np.ndarray]:
    """The regions of paper (bool masks, OUTLINE_MIN_AREA pixels or more) that are the insides
    of outlined strokes: long and thin (a length, half the outline, over a width, twice the
    area over the outline, past OUTLINE_ELONGATION), and either bent (under OUTLINE_SOLIDITY
    of the convex hull) or a ring round another of the regions (the inside of an outlined loop
    goes round the loop's hole). The hole of a loop drawn with a pen is round, or long but
    convex, and goes round no paper. More than OUTLINE_MAX_INSIDES long, thin regions are
    none: they are a texture."""
    thin = [region for region in regions if _elongation(region) > OUTLINE_ELONGATION]
    if len(thin) > OUTLINE_MAX_INSIDES:  # stripes, ruled paper: a texture, not a digit
        return []
    insides = []
    for region in thin:
        bent = np.count_nonzero(region) < OUTLINE_SOLIDITY * _hull_area(region)
        if bent or _goes_round(region, [other for other in regions if other is not region]):
            insides.append(region)
    return insides


def _elongation(region: np.ndarray) -> float:
    """A region's length, half its outline L, over its width, twice its area A over its outline
    (as :func:`pen_width` measures a stroke): L / 2 / (2 A / L) = L**2 / (4 A)."""
    return _outline_length(region) ** 2 / (4 * np.count_nonzero(region))


def _goes_round(region: np.ndarray, others: list[np.ndarray]) -> bool:
    """Whether ``region`` (bool) closes in any of ``others`` (bool masks that do not overlap it)."""
    closed_in = np.zeros_like(region)
    for hole in _enclosed_regions(region):
        closed_in |= hole
    return any(closed_in.flat[np.argmax(other)] for other in others)


def _hull_area(region: np.ndarray) -> float:
    """The area of the convex hull of ``region`` (bool): the smallest convex polygon around its
    pixels (squares one unit wide). Only each row's leftmost and rightmost pixels can be on it;
    their corners are walked round in order of column, keeping only left turns (Andrew's
    monotone chain), and the polygon's area is the shoelace formula's."""
    rows = np.flatnonzero(region.any(axis=1))
    left = region[rows].argmax(axis=1)
    right = region.shape[1] - region[rows, ::-1].argmax(axis=1)  # one past the last pixel
    columns = np.concatenate([left, left, right, right]).tolist()
    corner_rows = np.concatenate([rows, rows + 1, rows, rows + 1]).tolist()
    points = sorted(set(zip(columns, corner_rows, strict=True)))

    def half(points):  # the hull's lower or upper half, from the first point to the last
        chain = []
        for x, y in points:
            while len(chain) >= 2 and _turn(chain[-2], chain[-1], (x, y)) <= 0:
                chain.pop()
            chain.append((x, y))
        return chain

    hull = half(points)[:-1] + half(points[::-1])[:-1]
    xs, ys = np.array(hull, float).T
    return 0.5 * abs(xs @ np.roll(ys, 1) - ys @ np.roll(xs, 1))


def _turn(a, b, c) -> int:
    """Positive where a -> b -> c turns left (counter-clockwise), negative right, 0 straight."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def pen_width(ink: np.ndarray) -> float:
    """The strokes' mean width in pixels: twice the inked area over its outline's length
    (a stroke of width w and length L has area w L and an outline of about 2 L)."""
    return _solid_pen_width(ink >= 0.5)


def _solid_pen_width(solid: np.ndarray) -> float:
    """:func:`pen_width` of the pixels where ``solid`` (bool) is true."""
    return 2 * np.count_nonzero(solid) / max(_outline_length(solid), 1)


def _outline_length(solid: np.ndarray) -> int:
    """The pixel sides between ``solid`` (bool) and the rest, outside the image counting as the
    rest."""
    solid = np.pad(solid, 1)
    return np.count_nonzero(solid[1:] != solid[:-1]) + np.count_nonzero(
        solid[:, 1:] != solid[:, :-1]
    )


def _with_mnist_pen_width(ink: np.ndarray) -> np.ndarray:
    """``ink`` (at WORK_BOX) with its strokes widened or thinned, a working pixel on every side
    at a time, until their width lies within MNIST_PEN_WIDTHS.

    Widths are compared as they will be in the 20x20 box: widening a digit also makes it larger
    (and thinning smaller), and the final scaling undoes that, so a width counts relative to
    the digit's longer side at the time.
    """
    levels = _as_levels(ink, margin=MAX_PEN_STEPS + 1)
    thinnest, thickest = MNIST_PEN_WIDTHS
    for _ in range(MAX_PEN_STEPS):
        solid = levels >= 128  # ink >= 0.5, as pen_width counts it
        inked = levels.any(axis=1), levels.any(axis=0)
        longer_side = max(np.ptp(np.flatnonzero(along)) + 1 for along in inked)
        width = _solid_pen_width(solid) * DIGIT_BOX / longer_side
        if width < thinnest:
            levels = _over_3x3(levels, np.maximum)  # a working pixel wider on each side
        elif width > thickest:
            levels = _over_3x3(levels, np.minimum)  # a working pixel thinner
        else:
            break
    return _as_ink(levels)


def _as_levels(ink: np.ndarray, margin: int) -> np.ndarray:
    """``ink`` in [0, 1] as 8-bit levels (what the 3x3 passes below work on), with ``margin``
    blank pixels on every side to widen into."""
    return np.uint8(np.round(np.pad(ink, margin) * 255))


def _as_ink(levels: np.ndarray) -> np.ndarray:
    return levels.astype(np.float32) / 255


def _over_3x3(levels: np.ndarray, pick) -> np.ndarray:
    """Each pixel replaced by the ``pick`` (np.maximum: widen, np.minimum: thin) of the 3x3
    window around it, in two passes: with the pixels above and below, then left and right.
    At the border a window holds fewer pixels (as if the edge were repeated)."""
    columns = levels.copy()
    pick(columns[1:], levels[:-1], out=columns[1:])  # the pixel above
    pick(columns[:-1], levels[1:], out=columns[:-1])  # the pixel below
    window = columns.copy()
    pick(window[:, 1:], columns[:, :-1], out=window[:, 1:])  # left
    pick(window[:, :-1], columns[:, 1:], out=window[:, :-1])  # right
    return window


def find_ink(grey: np.ndarray) -> np.ndarray:
    """Where the ink is, bright on black, whichever way round the picture was.

    Parameters
    ----------
    grey : ndarray of shape (H, W), float
        Grey levels in [0, 1], as for :func:`prepare_digit`.

    Returns
    -------
    ndarray of shape (H, W), float32
        1 at the strongest ink, 0 on the paper and below 20% of the strongest ink.

    Raises
    ------
    ImageError
        ``grey`` is not grey levels of a picture, or no ink stands out from the background.
    """
    # Counted in 16-bit levels, 8-bit ones are whole numbers too (255 x 257 = 65535): the sums
    # below are exact, so an 8-bit picture's ties at the thresholds fall as in integer arithmetic.
    levels = np.round(_checked_grey(grey) * 65535).astype(np.float32)
    background = float(np.median(levels))  # the digit's strokes cover far less than half
    if background - levels.min() > levels.max() - background:
        levels = 65535 - levels  # dark ink on light paper: invert to MNIST's light-on-dark
        background = 65535 - background
    ink = np.clip(levels - background, 0.0, None)
    if ink.max() < MIN_CONTRAST:
        raise ImageError(
            "no digit found: the picture is blank or has almost no contrast; write with dark "
            "ink on plain light paper"
        )
    ink /= ink.max()
    ink[ink < INK_THRESHOLD] = 0.0  # paper texture and JPEG noise are not ink
    return ink


def _checked_grey(grey: np.ndarray) -> np.ndarray:
    """``grey`` as an array, or an ImageError that says why it is not grey levels in [0, 1]."""
    grey = np.asarray(grey)
    if grey.ndim != 2:
        raise ImageError(f"expected a 2-D array of grey levels (H, W), got shape {grey.shape}")
    if not np.issubdtype(grey.dtype, np.floating):
        raise ImageError(
            f"expected float grey levels in [0, 1], got {grey.dtype}; divide 8-bit values by 255"
        )
    if min(grey.shape) < MIN_SIDE:
        height, width = grey.shape
        raise ImageError(
            f"the picture is {width}x{height} pixels, too small to hold a digit; use one at "
            f"least {MIN_SIDE} pixels on each side"
        )
    if not np.isfinite(grey).all():
        raise ImageError("the grey levels hold NaN or infinite values")
    if grey.min() < 0 or grey.max() > 1:
        raise ImageError(
            f"grey levels must lie in [0, 1] (0 black, 1 white), got {grey.min():g} to "
            f"{grey.max():g}"
        )
    return grey


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


# --- Doubts worth a warning ---------------------------------------------------------------------


def picture_warnings(grey: np.ndarray) -> list[str]:
    """Doubts about a picture itself: ink on its border row or column.

    Ink at the edge is seldom the digit: a shadow, uneven light or the paper's border, which
    the crop then takes in with the digit, and the network misreads with confidence.

    Parameters
    ----------
    grey : ndarray of shape (H, W), float
        Grey levels in [0, 1], as for :func:`prepare_digit`.
    """
    ink = find_ink(grey)
    touches_edge = ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any()
    return [EDGE_WARNING] if touches_edge else []


def answer_warnings(probabilities: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Doubts about an answer: the best class's probability is under ``CLEAR_PROBABILITY``.

    A test on the margin between the two best would add nothing: once the best is at 0.8 or
    more, the second is at most 0.2.

    Parameters
    ----------
    probabilities : ndarray of shape (C,)
        One picture's class probabilities, summing to 1.
    class_names : sequence of C str
    """
    second, best = np.argsort(probabilities)[-2:]
    if probabilities[best] >= CLEAR_PROBABILITY:
        return []
    return [
        f"the answer is unclear: {class_names[best]} ({probabilities[best]:.0%}) or "
        f"{class_names[second]} ({probabilities[second]:.0%}); write with thick, centred strokes, "
        "and look at what the network sees with --show"
    ]


# --- The model ----------------------------------------------------------------------------------


def classify(model_path: str, digits: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Load the model once and give each MNIST-style image its class probabilities.

    Parameters
    ----------
    model_path : str
        A model file written by simple_cnn_from_scratch.py.
    digits : ndarray of shape (N, 28, 28), uint8
        Images made by :func:`prepare_digit`.

    Returns
    -------
    probabilities : ndarray of shape (N, C)
        Each row sums to 1.
    class_names : list of C str
        The digits "0" to "9", or Fashion-MNIST's class names.

    Raises
    ------
    ModelError
        One line: the model file is missing, damaged or from another network.
    """
    import inference  # NumPy alone: the model file and the network, no TensorFlow

    try:
        classifier = inference.load_classifier(model_path)
        return classifier.predict_proba(digits), classifier.class_names
    except inference.ModelFileError as error:  # a damaged file, or outputs that overflow
        raise ModelError(str(error)) from None
    except MemoryError:  # a model too big for this machine, however well it loaded
        raise ModelError(f"{printable(model_path)}: not enough memory to run it") from None


# --- The command line ---------------------------------------------------------------------------


@dataclass
class Answer:
    """What the command line says about one picture: its answer, or why it has none."""

    path: str
    digit: np.ndarray | None = None  # (28, 28) uint8: what the network sees
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)  # the way there, small
    probabilities: np.ndarray | None = None  # (C,), once classified
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def read_pictures(arguments: Sequence[str]) -> list[Answer]:
    """Read and prepare each picture named; a folder stands for the pictures in it."""
    answers = []
    for argument in arguments:
        try:
            paths = pictures_in(argument) if os.path.isdir(argument) else [argument]
        except ImageError as error:
            answers.append(Answer(argument, error=str(error)))
            continue
        answers += [read_picture(path) for path in paths]
    return answers


def pictures_in(folder: str) -> list[str]:
    """Paths of the PNG, JPEG, BMP, GIF and WebP files in ``folder``, sorted by name.

    Raises
    ------
    ImageError
        The folder cannot be listed or holds no pictures.
    """
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise ImageError(f"cannot list this folder ({error.strerror})") from None
    # Hidden files are skipped: macOS leaves "._photo.jpg" beside photos, and it is no picture.
    paths = [
        os.path.join(folder, name)
        for name in names
        if name.lower().endswith(PICTURE_SUFFIXES) and not name.startswith(".")
    ]
    if not paths:
        raise ImageError("no pictures (PNG, JPEG, BMP, GIF or WebP) in this folder")
    return paths


def read_picture(path: str) -> Answer:
    """The prepared digit of the picture at ``path`` and its warnings, or why it failed."""
    try:
        grey = load_image(path)
        steps = preparation_steps(grey)
        return Answer(
            path,
            digit=steps[-1][1],
            steps=[(name, thumbnail(image)) for name, image in steps[:-1]],
            warnings=picture_warnings(grey),
        )
    except ImageError as error:
        return Answer(path, error=str(error))


def as_json(answer: Answer, class_names: Sequence[str]) -> dict:
    """One picture's answer (or error) as a JSON object."""
    if answer.error is not None:
        return {"path": answer.path, "error": answer.error}
    best = int(np.argmax(answer.probabilities))
    name = class_names[best]
    return {
        "path": answer.path,
        "prediction": int(name) if name.isdigit() else name,  # a digit as a number, for scripts
        "class_index": best,
        "probability": float(answer.probabilities[best]),
        "probabilities": [float(probability) for probability in answer.probabilities],
        "warnings": answer.warnings,
    }


def print_details(answer: Answer, class_names: Sequence[str], show: bool) -> None:
    """The predicted class and a bar for each class's probability; warnings on stderr. With
    ``show``, first each step of the preparation and the 28x28 image the network sees."""
    if show:
        for number, (name, image) in enumerate(answer.steps, start=1):
            print(f"{number}. {name}:")
            print(as_text(image))
        print(f"{len(answer.steps) + 1}. what the network sees, 28x28:")
        print(as_text(answer.digit))
    best = int(np.argmax(answer.probabilities))
    print(f"Predicted: {class_names[best]} ({answer.probabilities[best]:.1%})")
    width = max(len(name) for name in class_names)
    for name, probability in zip(class_names, answer.probabilities, strict=True):
        bar = "#" * round(probability * 40)
        print(f"  {name:>{width}}  {probability:.4f}  {bar}")
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def print_line(answer: Answer, class_names: Sequence[str], show: bool) -> None:
    """One line for one of several pictures, like "a.png: 4 (99.9%)"; errors on stderr."""
    path = printable(answer.path)
    if answer.error is not None:
        print(f"{path}: error: {answer.error}", file=sys.stderr)
        return
    best = int(np.argmax(answer.probabilities))
    print(f"{path}: {class_names[best]} ({answer.probabilities[best]:.1%})")
    if show:
        print(as_text(answer.digit))
    for warning in answer.warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)


def printable(path: str) -> str:
    """``path`` as one line of text any UTF-8 output takes.

    A file name's undecodable bytes show as \\udcff; a name with a line break or another
    control character, or an empty one, is quoted as Python writes it ('a\\nb.png', ''), so
    that each picture keeps its one line.
    """
    if path == "" or any(character.isspace() and character != " " for character in path):
        return repr(path)
    if any(ord(character) < 32 or ord(character) == 127 for character in path):
        return repr(path)
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def as_text(image: np.ndarray) -> str:
    """An image as lines of text, a line per row and two characters per pixel, darker
    characters for brighter pixels: uint8 in 0..255, or float in [0, 1]."""
    shades = " .:-=+*#%@"
    if image.dtype == np.uint8:
        levels = (image.astype(np.int32) * len(shades)) // 256
    else:
        levels = np.clip((image * len(shades)).astype(np.int32), 0, len(shades) - 1)
    return "\n".join("".join(shades[level] * 2 for level in row) for row in levels)


def thumbnail(image: np.ndarray, side: int = IMAGE_SIZE) -> np.ndarray:
    """A float image in [0, 1] shrunk to at most ``side`` pixels on its longer side, for
    showing: each pixel the brightest of the block it stands for, so thin strokes stay bright."""
    block = max(1, -(-max(image.shape) // side))  # ceil: the blocks cover the whole image
    height, width = -(-image.shape[0] // block), -(-image.shape[1] // block)
    padded = np.zeros((height * block, width * block), np.float32)
    padded[: image.shape[0], : image.shape[1]] = image
    return padded.reshape(height, block, width, block).max(axis=(1, 3))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Classify pictures of handwritten digits (PNG, JPEG, BMP, GIF or WebP, any "
        "size, dark on light or light on dark) with a model trained by "
        "simple_cnn_from_scratch.py.",
    )
    parser.add_argument(
        "pictures",
        nargs="+",
        metavar="PICTURE",
        help="a picture file, or a folder: all its PNG, JPEG, BMP, GIF and WebP files by name",
    )
    parser.add_argument(
        "--model",
        default="simple_cnn_model.npz",
        help="model file written by simple_cnn_from_scratch.py (default simple_cnn_model.npz)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--show",
        action="store_true",
        help="also print how the picture is prepared, step by step, and the 28x28 image the "
        "network sees (of several pictures: only that image)",
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document for scripts: a list with an object for each picture",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Classify each picture named; returns 1 if any picture could not be read, else 0 (130
    after Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return classify_and_print(args)
    except KeyboardInterrupt:  # a folder of large photos takes a while: stop without a traceback
        print("interrupted", file=sys.stderr)
        return 130


def classify_and_print(args: argparse.Namespace) -> int:
    """main()'s work, for the parsed command line."""
    answers = read_pictures(args.pictures)
    readable = [answer for answer in answers if answer.error is None]
    class_names: list[str] = []
    if readable:  # the model loads only once a picture was read, so a bad path fails fast
        try:
            probabilities, class_names = classify(
                args.model, np.stack([answer.digit for answer in readable])
            )
        except ModelError as error:
            sys.exit(f"error: {error}")
        for answer, row in zip(readable, probabilities, strict=True):
            answer.probabilities = row
            answer.warnings += answer_warnings(row, class_names)

    one_picture = len(args.pictures) == 1 and not os.path.isdir(args.pictures[0])
    if args.json:
        print(json.dumps([as_json(answer, class_names) for answer in answers], indent=2))
    elif one_picture and answers[0].error is not None:
        where = f"{printable(answers[0].path)}: " if answers[0].path else ""
        sys.exit(f"error: {where}{answers[0].error}")
    elif one_picture:
        print_details(answers[0], class_names, args.show)
    else:
        for answer in answers:
            print_line(answer, class_names, args.show)
    return 1 if len(readable) < len(answers) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
