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
      -> geometry: every output pixel p reads the input at  centre + A (p - centre) + shift + d(p),
         A a random rotation x scale x shear, d a smooth random displacement field,
         bilinear interpolation, zeros outside the image
      -> images (N, 28, 28) uint8

Where every output pixel reads is one matrix product: each source coordinate is a weighted sum
of the same few pictures (the row number, the column number, a constant and 25 smooth bumps),
and only the weights are random (see source_points). Everything random comes from the generator
it is given: the trainer seeds one per batch from (seed, epoch, step), so a resumed run draws
exactly the same distortions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from plumbing.process_tuning import blas_single_threaded

ELASTIC_GRID_SPACING = 7  # pixels between the random displacements that are interpolated
# The training program's option for each field of Augmentation (beyond --shift).
OPTIONS = {
    "rotation": "rotation_degrees",
    "scale": "scale",
    "shear": "shear_degrees",
    "elastic": "elastic_pixels",
    "stroke": "stroke_pixels",
}


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
    stroke_pixels: float = 0.0  # the pen up to this many pixels thinner or thicker on each side

    def __post_init__(self) -> None:
        limits = {"rotation_degrees": 90, "scale": 1, "shear_degrees": 90}  # beyond: nonsense
        for name, value in vars(self).items():
            if not 0 <= value < limits.get(name, math.inf):
                raise ValueError(
                    f"Augmentation {name} must be from 0 to under "
                    f"{limits.get(name, math.inf)}, not {value!r}"
                )

    @property
    def is_off(self) -> bool:
        return not any(vars(self).values())

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_options(cls, options: dict) -> Augmentation:
        """The augmentation of a run's options (a model file's config): {"rotation": 8, ...}."""
        return cls(**{field: float(options.get(option, 0)) for option, field in OPTIONS.items()})


def augment(images: np.ndarray, augmentation: Augmentation, rng: np.random.Generator):
    """Distort each of ``images`` (N, H, W) uint8 at random within ``augmentation``.

    Returns a new uint8 array (N, H, W); ``images`` is left as it was. The same generator state
    gives the same result.
    """
    if augmentation.is_off or len(images) == 0:
        return images
    x = images
    if augmentation.stroke_pixels:
        x = vary_stroke_width(x, rng.uniform(-1, 1, len(x)) * augmentation.stroke_pixels)
    rows, columns = source_points(images.shape, *random_geometry(images.shape, augmentation, rng))
    x = sample(x, rows, columns)  # mixtures of values from 0 to 255, so between those too
    x += 0.5
    return x.astype(np.uint8)  # rounded to the nearest level


def vary_stroke_width(images: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Thicker (change > 0) or thinner (change < 0) strokes, by up to one pixel on each side.

    images (N, H, W) uint8, change (N,) in pixels; returns float32 (N, H, W). Grey-level
    dilation (each pixel the largest of its 3x3 neighbourhood) makes the pen one pixel wider on
    every side, erosion (the smallest) one pixel narrower; a fraction of a pixel blends between
    the image and those. Erosion is the dilation of the negative (255 - image), made negative
    again, so one pass does both kinds at once.
    """
    count, height, width = images.shape
    amount = np.abs(np.clip(change, -1, 1)).astype(np.float32)[:, None]
    thinner = change < 0
    padded = np.zeros((count, height + 2, width + 2), np.uint8)  # outside the image counts as 0
    padded[:, 1:-1, 1:-1] = images
    padded = padded.reshape(count, -1)
    padded[thinner] = 255 - padded[thinner]
    neighbourhood = _dilation(padded, width + 2)
    neighbourhood[thinner] = 255 - neighbourhood[thinner]
    padded[thinner] = 255 - padded[thinner]
    blended = np.subtract(neighbourhood, padded, dtype=np.float32)
    blended *= amount
    blended += padded
    return blended.reshape(count, height + 2, width + 2)[:, 1:-1, 1:-1]


def _dilation(padded: np.ndarray, stride: int) -> np.ndarray:
    """Each pixel of ``padded`` (N, rows x ``stride``), images with a border of zeros laid out
    flat, the largest of its 3x3 neighbourhood (its value on the border is not to be used).

    A 3x3 square is a line of 3 rows of 3-pixel lines. Laid out flat, a pixel's left and right
    neighbours are one place away and those above and below one row (``stride``) away, so each
    pass is one operation over the whole batch at once.
    """
    flat = padded.ravel()
    lines = flat.copy()  # each pixel and its left and right neighbours
    np.maximum(flat[:-2], flat[1:-1], out=lines[1:-1])
    np.maximum(lines[1:-1], flat[2:], out=lines[1:-1])
    squares = lines.copy()  # each pixel's line and those above and below it
    np.maximum(lines[: -2 * stride], lines[stride:-stride], out=squares[stride:-stride])
    np.maximum(squares[stride:-stride], lines[2 * stride :], out=squares[stride:-stride])
    return squares.reshape(padded.shape)


def random_geometry(
    shape: tuple[int, ...], augmentation: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each image's random geometry, for images ``shape`` (N, H, W), drawn within
    ``augmentation``: the affine matrix A (N, 2, 2), the shift (N, 2) and the elastic field's
    displacements at its grid points (N, 2, grid points), or None without elastic distortion;
    in pixels, in (row, column) order."""
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
    shift = rng.uniform(-1, 1, (count, 2)) * augmentation.shift_pixels
    knots = None
    if augmentation.elastic_pixels:
        grid_points = _interpolation(height).shape[1] * _interpolation(width).shape[1]
        # Drawn in float64, as before this code was made faster: a run started then and
        # resumed now gets the same distortions.
        knots = rng.standard_normal((count, 2, grid_points)).astype(np.float32)
        knots *= np.float32(augmentation.elastic_pixels)
    return matrix, shift.astype(np.float32), knots


def source_points(
    shape: tuple[int, ...], matrix: np.ndarray, shift: np.ndarray, knots: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of images ``shape`` (N, H, W) reads its input: rows and columns,
    each (N, H, W) float32, at  centre + matrix (p - centre) + shift + elastic field(p).

    Each coordinate is a weighted sum of the same pictures (_basis): p's row and column
    relative to the centre, a constant 1, and one smooth bump per elastic grid point. So all
    of them, for the whole batch, are one matrix product of the weights (N x 2 rows) with the
    pictures: the matrix's row, the centre plus the shift, then the grid points' values.
    """
    count, height, width = shape
    basis = _basis(height, width)
    columns_used = 3 if knots is None else 3 + knots.shape[2]
    weights = np.empty((count, 2, columns_used), np.float32)
    weights[:, :, :2] = matrix
    weights[:, :, 2] = shift + np.float32([(height - 1) / 2, (width - 1) / 2])
    if knots is not None:
        weights[:, :, 3:] = knots
    with blas_single_threaded():  # BLAS's threads would spin on, against the training's own
        points = weights.reshape(2 * count, columns_used) @ basis[:columns_used]
    points = points.reshape(count, 2, height, width)
    return points[:, 0], points[:, 1]


@functools.cache
def _basis(height: int, width: int) -> np.ndarray:
    """The pictures every source coordinate is a weighted sum of, as rows of a matrix
    (3 + knots, height * width): the row and the column relative to the centre, a constant 1,
    then, for each elastic grid point, its bump: how much of that point's random displacement
    each pixel takes when the grid is interpolated linearly along the rows and the columns
    (Simard et al. blur white noise with a wide Gaussian; this is as smooth for the purpose).
    The bumps are scaled so that the displacement's standard deviation is 1 at the middle."""
    rows = np.arange(height, dtype=np.float32) - (height - 1) / 2
    columns = np.arange(width, dtype=np.float32) - (width - 1) / 2
    down, across = _interpolation(height), _interpolation(width)  # (height, k), (width, k)
    bumps = np.einsum("ia,jb->abij", down, across).reshape(-1, height * width)
    bumps /= np.sqrt((bumps[:, (height // 2) * width + width // 2] ** 2).sum())
    flat = [np.repeat(rows, width), np.tile(columns, height), np.ones(height * width)]
    return np.concatenate([np.stack(flat), bumps]).astype(np.float32)


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


def sample(x: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Read each image of x (N, H, W) at ``rows``, ``columns`` (N, H, W each, float32, used
    up as scratch space), bilinearly; outside the image is 0. Returns float32 (N, H, W)."""
    count, height, width = x.shape
    # Bilinear interpolation from a copy with a border of two zeros: every source point is
    # first brought to at most a pixel and a half outside the image, so all four neighbours
    # are inside the copy and no bounds test is needed.
    border = 2
    stride = width + 2 * border
    padded = np.zeros((count, height + 2 * border, stride), np.float32)
    padded[:, border:-border, border:-border] = x
    np.clip(rows, -1.5, height + 0.5, out=rows)
    np.clip(columns, -1.5, width + 0.5, out=columns)
    top, left = np.floor(rows), np.floor(columns)
    down, right = rows, columns  # how far below the top row and right of the left column
    down -= top
    right -= left
    top *= stride
    top += left
    index = top.astype(np.intp)  # the upper left neighbour, in the padded images laid end to end
    index += (np.arange(count) * padded[0].size + (border * stride + border))[:, None, None]
    flat = padded.ravel()  # its neighbours: the same index in the copy from one place on, ...
    upper_left, upper_right = flat.take(index), flat[1:].take(index)
    lower_left, lower_right = flat[stride:].take(index), flat[stride + 1 :].take(index)
    upper = upper_left + right * (upper_right - upper_left)
    lower = lower_left + right * (lower_right - lower_left)
    return upper + down * (lower - upper)
