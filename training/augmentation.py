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
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def vary_stroke_width(x: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Thicker (change > 0) or thinner (change < 0) strokes, by up to one pixel on each side.

    x (N, H, W) float, change (N,) in pixels. Grey-level dilation (each pixel the largest of
    its 3x3 neighbourhood) makes the pen one pixel wider on every side, erosion (the smallest)
    one pixel narrower; a fraction of a pixel blends between the image and those.
    """
    thicker = _neighbourhood(x, np.maximum)
    thinner = _neighbourhood(x, np.minimum)
    amount = np.clip(change, -1, 1)[:, None, None].astype(np.float32)
    return x + np.maximum(amount, 0) * (thicker - x) - np.minimum(amount, 0) * (thinner - x)


def _neighbourhood(x: np.ndarray, pick) -> np.ndarray:
    """``pick`` (np.maximum or np.minimum) over each pixel's 3x3 neighbourhood: rows, then
    columns (a 3x3 square is a 3-row line of 3-column lines); outside the image counts as 0."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    rows = pick(pick(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return pick(pick(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def random_geometry(
    shape: tuple[int, ...], augmentation: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's affine matrix (N, 2, 2) and displacement field (N, H, W, 2), in pixels,
    (row, column) order, drawn within ``augmentation``."""
    count, height, width = shape
    angle = np.radians(rng.uniform(-1, 1, count) * augmentation.rotation_degrees)
    zoom = 1 + rng.uniform(-1, 1, count) * augmentation.scale
    shear = np.tan(np.radians(rng.uniform(-1, 1, count) * augmentation.shear_degrees))
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    # Where an output pixel reads from, relative to the centre: (row, column) -> A (row, column).
    # Rotation and scale, then a horizontal shear (a slant: columns move with the row).
    matrix = np.empty((count, 2, 2))
    matrix[:, 0, 0], matrix[:, 0, 1] = cos, -sin
    matrix[:, 1, 0], matrix[:, 1, 1] = sin + shear * cos, cos - shear * sin
    shift = rng.uniform(-1, 1, (count, 1, 1, 2)) * augmentation.shift_pixels
    field = np.broadcast_to(shift, (count, height, width, 2)).astype(np.float32)
    if augmentation.elastic_pixels:
        field = field + smooth_field(count, height, width, rng) * augmentation.elastic_pixels
    return matrix.astype(np.float32), field


def smooth_field(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random smooth displacements (count, height, width, 2) with a standard deviation of 1.

    Simard et al. blur white noise with a wide Gaussian; here random values on a coarse grid
    (one every ELASTIC_GRID_SPACING pixels) are interpolated linearly, which is as smooth for
    the purpose and two small matrix products per image instead of a blur.
    """
    rows = _interpolation_matrix(height)
    columns = _interpolation_matrix(width)
    coarse = rng.standard_normal((count, 2, rows.shape[1], columns.shape[1])).astype(np.float32)
    fine = rows @ coarse @ columns.T  # (count, 2, height, width)
    fine /= _interpolated_std(rows, columns)  # a standard deviation of 1 at the centre
    return np.moveaxis(fine, 1, -1)


def _interpolation_matrix(size: int) -> np.ndarray:
    """(size, knots): linear interpolation from knots every ELASTIC_GRID_SPACING pixels."""
    knots = math.ceil((size - 1) / ELASTIC_GRID_SPACING) + 1
    positions = np.arange(size) / ELASTIC_GRID_SPACING
    weights = np.maximum(0, 1 - np.abs(positions[:, None] - np.arange(knots)[None, :]))
    return weights.astype(np.float32)


def _interpolated_std(rows: np.ndarray, columns: np.ndarray) -> float:
    """Standard deviation of unit-variance knots interpolated to the middle pixel."""
    middle = np.outer(rows[len(rows) // 2], columns[len(columns) // 2])
    return float(np.sqrt((middle**2).sum()))


def warp(x: np.ndarray, matrix: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Resample each image x (N, H, W) at  centre + matrix (p - centre) + field(p), bilinearly.

    matrix (N, 2, 2) and field (N, H, W, 2) in (row, column) order; outside the image is 0.
    """
    count, height, width = x.shape
    centre_row, centre_column = (height - 1) / 2, (width - 1) / 2
    rows = (np.arange(height, dtype=np.float32) - centre_row)[None, :, None]
    columns = (np.arange(width, dtype=np.float32) - centre_column)[None, None, :]
    m = matrix[:, :, :, None, None]  # (N, 2, 2, 1, 1), to broadcast over (H, W)
    source_row = m[:, 0, 0] * rows + m[:, 0, 1] * columns + centre_row + field[..., 0]
    source_column = m[:, 1, 0] * rows + m[:, 1, 1] * columns + centre_column + field[..., 1]
    # Bilinear interpolation from a copy with a border of two zeros: every source point is
    # first brought to at most a pixel and a half outside the image, so all four neighbours
    # are inside the copy and no bounds test is needed.
    border = 2
    padded = np.pad(x, ((0, 0), (border, border), (border, border)))
    stride = width + 2 * border
    np.clip(source_row, -1.5, height + 0.5, out=source_row)
    np.clip(source_column, -1.5, width + 0.5, out=source_column)
    top, left = np.floor(source_row), np.floor(source_column)
    down, right = source_row - top, source_column - left
    image_start = (np.arange(count) * padded[0].size)[:, None, None]
    index = image_start + (top.astype(np.intp) + border) * stride + left.astype(np.intp) + border
    flat = padded.ravel()
    upper = flat[index] * (1 - right) + flat[index + 1] * right
    lower = flat[index + stride] * (1 - right) + flat[index + stride + 1] * right
    return upper * (1 - down) + lower * down
