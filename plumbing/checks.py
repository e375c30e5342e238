"""Small checks of plain values, shared by everything that reads settings, files or requests.

Python's ``bool`` is a kind of ``int`` (``isinstance(True, int)`` holds), so "is this an integer
count?" needs one more test than ``isinstance``; it is written here once.
"""

from __future__ import annotations

import math


def is_int(value: object) -> bool:
    """True for a Python int that is not a bool (``True`` is not a count of anything)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that is neither infinite nor NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
