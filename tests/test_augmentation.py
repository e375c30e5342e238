"""training/augmentation.py: seeded, exact, and each transform keeps the digit a digit."""

import numpy as np
import pytest

from download_mnist import load_dataset
from training.augmentation import (
    Augmentation,
    augment,
    random_geometry,
    sample,
    source_points,
    vary_stroke_width,
)

EVERYTHING = Augmentation(
    rotation_degrees=12,
    scale=0.12,
    shear_degrees=15,
    shift_pixels=2,
    elastic_pixels=1.5,
    stroke_pixels=0.8,
)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset()[2][:64]  # real test digits, uint8 (64, 28, 28)


def rotation(degrees: float, count: int) -> np.ndarray:
    angle = np.radians(degrees)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.broadcast_to(matrix, (count, 2, 2)).astype(np.float32)


def warp(images: np.ndarray, matrix: np.ndarray, shift=(0, 0)) -> np.ndarray:
    """Each image read at  centre + matrix (p - centre) + shift, bilinearly."""
    shifts = np.broadcast_to(np.float32(shift), (len(images), 2))
    return sample(images, *source_points(images.shape, matrix, shifts))


def test_no_augmentation_gives_the_images_themselves(digits):
    assert augment(digits, Augmentation(), np.random.default_rng(0)) is digits


def test_the_same_generator_state_gives_the_same_distortions(digits):
    first = augment(digits, EVERYTHING, np.random.default_rng([3, 1, 7]))
    again = augment(digits, EVERYTHING, np.random.default_rng([3, 1, 7]))
    other = augment(digits, EVERYTHING, np.random.default_rng([3, 1, 8]))
    assert first.dtype == np.uint8 and first.shape == digits.shape
    np.testing.assert_array_equal(first, again)
    assert (first != other).any() and (first != digits).any()


def test_the_identity_transform_changes_nothing(digits):
    x = digits.astype(np.float32)
    np.testing.assert_array_equal(warp(x, rotation(0, len(x))), x)


def test_a_whole_pixel_shift_moves_the_image_exactly(digits):
    x = digits.astype(np.float32)
    moved = warp(x, rotation(0, len(x)), (-2, 3))  # output pixel (r, c) reads input (r - 2, c + 3)
    np.testing.assert_array_equal(moved[:, 2:, :-3], x[:, :-2, 3:])
    assert (moved[:, :2] == 0).all() and (moved[:, :, -3:] == 0).all()  # zeros came in


def test_rotating_and_rotating_back_gives_the_digit_again(digits):
    x = digits.astype(np.float32)
    there = warp(x, rotation(15, len(x)))
    back = warp(there, rotation(-15, len(x)))
    further = warp(there, rotation(15, len(x)))  # 30 degrees: the wrong way back

    def likeness(images: np.ndarray) -> list[float]:
        return [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(images, x, strict=True)]

    # Two bilinear resamplings blur a little; the digit itself is where it was.
    assert min(likeness(back)) > 0.9 and np.mean(likeness(back)) > 0.95
    assert np.mean(likeness(further)) < 0.6 and np.mean(likeness(there)) < 0.8


def test_a_turned_digit_keeps_its_ink_and_its_centre(digits):
    x = digits.astype(np.float32)
    turned = warp(x, rotation(20, len(x)))
    np.testing.assert_allclose(turned.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=0.05)


def test_thicker_and_thinner_pens(digits):
    ink = digits.sum(axis=(1, 2), dtype=np.float32)
    thicker = vary_stroke_width(digits, np.full(len(digits), 1.0)).sum(axis=(1, 2))
    half = vary_stroke_width(digits, np.full(len(digits), 0.5)).sum(axis=(1, 2))
    thinner = vary_stroke_width(digits, np.full(len(digits), -1.0)).sum(axis=(1, 2))
    assert (thinner < ink).all() and (ink < half).all() and (half < thicker).all()
    np.testing.assert_array_equal(vary_stroke_width(digits, np.zeros(len(digits))), digits)


def test_the_pen_is_a_3x3_maximum_or_minimum_with_nothing_outside(digits):
    """Checked against a plain loop over every pixel's neighbourhood."""
    image = digits[0].astype(np.float32)
    padded = np.pad(image, 1)
    windows = [padded[r : r + 3, c : c + 3] for r in range(28) for c in range(28)]
    dilated = np.array([w.max() for w in windows]).reshape(28, 28)
    eroded = np.array([w.min() for w in windows]).reshape(28, 28)
    pens = vary_stroke_width(digits[[0, 0, 0]], np.array([1.0, -1.0, -0.25]))
    np.testing.assert_array_equal(pens[0], dilated)
    np.testing.assert_array_equal(pens[1], eroded)
    np.testing.assert_allclose(pens[2], image + 0.25 * (eroded - image), atol=1e-4)


def test_elastic_displacements_are_smooth_and_of_the_size_asked():
    shape = (2000, 28, 28)
    bent = Augmentation(elastic_pixels=2)
    rows, columns = source_points(shape, *random_geometry(shape, bent, np.random.default_rng(0)))
    rows_unmoved, columns_unmoved = source_points(shape, rotation(0, 2000), np.zeros((2000, 2)))
    field = np.stack([rows - rows_unmoved, columns - columns_unmoved], axis=1)
    assert 1.8 < field[:, :, 14, 14].std() < 2.2  # about 2 pixels at the centre, as asked
    neighbours = np.abs(np.diff(field, axis=2)).mean()
    assert neighbours < 0.3 * np.abs(field).mean()  # next pixels move nearly alike


def test_a_run_resumed_across_the_faster_code_keeps_its_elastic_draws():
    """The grid's displacements are drawn in float64 and then rounded, as the first version
    of this module drew them, so a resumed run's distortions do not change."""
    shape, bent = (4, 28, 28), Augmentation(elastic_pixels=1)
    *_, knots = random_geometry(shape, bent, np.random.default_rng([0, 1, 5]))
    rng = np.random.default_rng([0, 1, 5])
    rng.uniform(size=3 * 4), rng.uniform(size=4 * 2)  # angle, zoom, shear; the shifts
    np.testing.assert_array_equal(knots, rng.standard_normal((4, 2, 25)).astype(np.float32))


@pytest.mark.parametrize(
    "bounds",
    [
        dict(scale=1.0),
        dict(rotation_degrees=-1),
        dict(shear_degrees=90),
        dict(elastic_pixels=np.nan),
    ],
)
def test_bounds_that_make_no_sense_are_refused(bounds):
    with pytest.raises(ValueError, match="Augmentation"):
        Augmentation(**bounds)


def test_each_image_draws_its_own_geometry_within_the_bounds():
    bounds = Augmentation(rotation_degrees=10, scale=0.1, shift_pixels=2)
    matrix, shift, knots = random_geometry((500, 28, 28), bounds, np.random.default_rng(1))
    zoom = 1 / np.sqrt(np.abs(np.linalg.det(matrix)))
    angle = np.degrees(np.arctan2(matrix[:, 1, 0], matrix[:, 0, 0]))
    assert (np.abs(angle) <= 10 + 1e-4).all() and np.abs(angle).max() > 8
    assert (np.abs(zoom - 1) <= 0.1 + 1e-6).all() and np.abs(zoom - 1).max() > 0.08
    assert (np.abs(shift) <= 2).all() and np.abs(shift).max() > 1.9 and knots is None
    assert len(np.unique(angle)) == 500  # one draw per image
