"""Data augmentation: each training digit a little rotated, scaled, sheared, moved, bent and
written with a thinner or thicker pen, anew every epoch, in NumPy, for a whole batch at once.

A digit turned by 10 degrees, or written with a finer pen, is the same digit; seeing such
variants keeps the network from learning MNIST's own preparation (every digit upright-ish, of
one stroke width, in the same 20x20 box) as if it were part of the digits. The transforms are
those of Simard, Steinkraus and Platt (2003), "Best practices for convolutional neural networks
applied to visual document analysis": affine distortions and elastic ones (a smooth random
displacement of every pixel), plus stroke-width variation.

    images (N, 28, 28) uint8
      -> stroke width: blend each image towards its dilation (thicker) or erosion (thinner)
      -> geometry: every output pixel reads the input at  centre + A (p - centre) + shift + d(p),
         A a random rotation x scale x shear, d a smooth random displacement field,
         bilinear interpolation, zeros outside the image
      -> images (N, 28, 28) uint8

Everything random comes from the generator it is given: the trainer seeds one per batch from
(seed, epoch, step), so a resumed run draws exactly the same distortions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

ELASTIC_GRID_SPACING = 7  # pixels between the random displacements that are interpolated


@dataclass(frozen=True)
class Augmentation:
    """How much each training image may be distorted; zero everywhere is no augmentation.

    Each image draws its own values uniformly within these bounds, every epoch.
    """

    rotation_degrees: float = 0.0  # turned by up to this many degrees either way
    scale: float = 0.0  # made up to this fraction larger or smaller (0.1: 90% to 110%)
    shear_degrees: float = 0.0  # slanted by up to this many degrees either way
    shift_pixels: float = 0.0  # moved by up to this many pixels in each direction
    elastic_pixels: float = 0.0  # bent: pixels move along a smooth field, about this far
    stroke_pixels: float = 0.0  # the pen up to this many pixels thinner or thicker

    @property
    def is_off(self) -> bool:
        return not any(asdict(self).values())

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def augment(images: np.ndarray, augmentation: Augmentation, rng: np.random.Generator):
    """Distort each of ``images`` (N, H, W) uint8 at random within ``augmentation``.

    Returns a new uint8 array (N, H, W); ``images`` is left as it was. The same generator state
    gives the same result.
    """
    if augmentation.is_off or len(images) == 0:
        return images
    x = images.astype(np.float32)
    if augmentation.stroke_pixels:
        x = vary_stroke_width(x, rng.uniform(-1, 1, len(x)) * augmentation.stroke_pixels)
    x = warp(x, *random_geometry(x.shape, augmentation, rng))
    np.rint(x, out=x)
    return np.clip(x, 0, 255, out=x).astype(np.uint8)


def vary_stroke_width(x: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Thicker (change > 0) or thinner (change < 0) strokes, by up to one pixel on each side.

    x (N, H, W) float, change (N,) in pixels. Grey-level dilation (each pixel the largest of
    its 3x3 neighbourhood) makes the pen one pixel wider on every side, erosion (the smallest)
    one pixel narrower; a fraction of a pixel blends between the image and those.
    """
    amount = np.clip(change, -1, 1).astype(np.float32)
    result = x.copy()
    for chosen, pick in ((amount > 0, np.maximum), (amount < 0, np.minimum)):
        if chosen.any():
            part = x[chosen]
            weight = np.abs(amount[chosen])[:, None, None]
            result[chosen] = part + weight * (_neighbourhood(part, pick) - part)
    return result


def _neighbourhood(x: np.ndarray, pick) -> np.ndarray:
    """``pick`` (np.maximum or np.minimum) over each pixel's 3x3 neighbourhood: rows, then
    columns (a 3x3 square is a 3-row line of 3-column lines); outside the image counts as 0."""
    count, height, width = x.shape
    padded = np.zeros((count, height + 2, width + 2), x.dtype)
    padded[:, 1:-1, 1:-1] = x
    rows = pick(pick(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return pick(pick(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def random_geometry(
    shape: tuple[int, ...], augmentation: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's affine matrix (N, 2, 2) and displacements (N, 2, H, W) or, without
    elastic distortion, (N, 2, 1, 1): in pixels, (row, column), drawn within ``augmentation``."""
    count, height, width = shape
    angle = np.radians(rng.uniform(-1, 1, count) * augmentation.rotation_degrees)
    zoom = 1 + rng.uniform(-1, 1, count) * augmentation.scale
    shear = np.tan(np.radians(rng.uniform(-1, 1, count) * augmentation.shear_degrees))
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    # Where an output pixel reads from, relative to the centre: (row, column) -> A (row, column).
    # Rotation and scale, then a horizontal shear (a slant: columns move with the row).
    matrix = np.empty((count, 2, 2), np.float32)
    matrix[:, 0, 0], matrix[:, 0, 1] = cos, -sin
    matrix[:, 1, 0], matrix[:, 1, 1] = sin + shear * cos, cos - shear * sin
    field = (rng.uniform(-1, 1, (count, 2, 1, 1)) * augmentation.shift_pixels).astype(np.float32)
    if augmentation.elastic_pixels:
        field = field + smooth_field(count, height, width, rng) * np.float32(
            augmentation.elastic_pixels
        )
    return matrix, field


def smooth_field(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random smooth displacements (count, 2, height, width) with a standard deviation of 1.

    Simard et al. blur white noise with a wide Gaussian; here random values on a coarse grid
    (one every ELASTIC_GRID_SPACING pixels) are interpolated linearly, first along the rows,
    then along the columns: as smooth for the purpose, and two matrix products instead of a
    blur (interpolating is multiplying by a matrix of weights, see _interpolation).
    """
    down, across = _interpolation(height), _interpolation(width)  # (height, knots), (width, knots)
    coarse = rng.standard_normal((count, 2, down.shape[1], across.shape[1])).astype(np.float32)
    fine = down @ coarse @ across.T  # (count, 2, height, width)
    return fine / np.float32(_middle_std(height, width))


@functools.cache
def _interpolation(size: int) -> np.ndarray:
    """Linear interpolation from knots every ELASTIC_GRID_SPACING pixels to ``size`` pixels, as
    a matrix (size, knots): row i weighs the knot below pixel i by 1 - f and the next by f,
    where f is how far the pixel is from the one towards the other."""
    knots = math.ceil((size - 1) / ELASTIC_GRID_SPACING) + 1
    position = np.arange(size) / ELASTIC_GRID_SPACING
    below = np.minimum(np.floor(position).astype(np.intp), knots - 2)
    fraction = position - below
    weights = np.zeros((size, knots), np.float32)
    weights[np.arange(size), below] = 1 - fraction
    weights[np.arange(size), below + 1] = fraction
    return weights


def _middle_std(height: int, width: int) -> float:
    """Standard deviation, at the middle pixel, of unit-variance knots interpolated there."""
    down, across = _interpolation(height)[height // 2], _interpolation(width)[width // 2]
    return float(np.sqrt((np.outer(down, across) ** 2).sum()))


def warp(x: np.ndarray, matrix: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Resample each image x (N, H, W) at  centre + matrix (p - centre) + field(p), bilinearly.

    matrix (N, 2, 2) and field (N, 2, H, W), or (N, 2, 1, 1) for one shift per image, in
    (row, column) order; outside the image is 0.
    """
    count, height, width = x.shape
    centre_row, centre_column = (height - 1) / 2, (width - 1) / 2
    rows = (np.arange(height, dtype=np.float32) - centre_row)[:, None]  # (H, 1)
    columns = (np.arange(width, dtype=np.float32) - centre_column)[None, :]  # (1, W)
    m = matrix[:, :, :, None, None]  # (N, 2, 2, 1, 1), to broadcast over (H, W)
    # Bilinear interpolation from a copy with a border of two zeros: every source point is
    # first brought to at most a pixel and a half outside the image, so all four neighbours
    # are inside the copy and no bounds test is needed.
    border = 2
    source_row = m[:, 0, 0] * rows + (m[:, 0, 1] * columns + (centre_row + border))
    source_row += field[:, 0]
    source_column = m[:, 1, 0] * rows + (m[:, 1, 1] * columns + (centre_column + border))
    source_column += field[:, 1]
    np.clip(source_row, border - 1.5, height + border + 0.5, out=source_row)
    np.clip(source_column, border - 1.5, width + border + 0.5, out=source_column)
    top, left = np.floor(source_row), np.floor(source_column)
    down, right = source_row - top, source_column - left
    stride = width + 2 * border
    padded = np.zeros((count, height + 2 * border, stride), np.float32)
    padded[:, border:-border, border:-border] = x
    index = top.astype(np.int32) * stride + left.astype(np.int32)
    index += (np.arange(count, dtype=np.int32) * padded[0].size)[:, None, None]
    flat = padded.ravel()
    upper_left, upper_right = flat.take(index), flat.take(index + 1)
    lower_left, lower_right = flat.take(index + stride), flat.take(index + (stride + 1))
    upper = upper_left + right * (upper_right - upper_left)
    lower = lower_left + right * (lower_right - lower_left)
    return upper + down * (lower - upper)
