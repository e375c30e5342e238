"""Small helpers shared by the tests: a relative error and central finite differences.

Imported by the test modules as ``from gradcheck import ...`` (pytest puts ``tests/`` on the path).
"""

from collections.abc import Callable, Iterable

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference, relative to the largest magnitude in either array.

    Parameters
    ----------
    a, b : ndarray of the same shape

    Returns
    -------
    float
        ``max|a - b| / max(|a| + |b|)``; the floor of 1e-12 keeps two all-zero arrays at 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b)) / max(1e-12, np.max(np.abs(a) + np.abs(b))))


def numerical_gradient(
    loss: Callable[[], float],
    x: np.ndarray,
    step: float = 1e-6,
    indices: Iterable[tuple[int, ...]] | None = None,
) -> np.ndarray:
    """Central finite differences of a scalar ``loss()`` with respect to the array ``x``.

    ``x`` is nudged in place (and put back), so ``loss`` must read ``x`` each time it is called.

    Parameters
    ----------
    loss : callable with no arguments returning a float
    x : ndarray of any shape, float64 (float32 is too coarse for finite differences)
    step : float
        The nudge h in (loss(x + h) - loss(x - h)) / 2h.
    indices : iterable of index tuples, optional
        Only these entries are computed (the others stay 0); all entries when None.

    Returns
    -------
    ndarray, same shape as x
    """
    assert x.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(x)
    if indices is None:
        indices = np.ndindex(x.shape)
    for index in indices:
        original = x[index]
        x[index] = original + step
        loss_plus = loss()
        x[index] = original - step
        loss_minus = loss()
        x[index] = original
        grad[index] = (loss_plus - loss_minus) / (2 * step)
    return grad
