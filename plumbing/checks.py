"""Small checks of plain values, shared by everything that reads settings, files or requests.

Python's ``bool`` is a kind of ``int`` (``isinstance(True, int)`` holds), so "is this an integer
count?" needs one more test than ``isinstance``; it is written here once.
"""

from __future__ import annotations

import math
import os


def is_int(value: object) -> bool:
    """True for a Python int that is not a bool (``True`` is not a count of anything)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that is neither infinite nor NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_path(value: object, what: str) -> str:
    """``value`` as a path string: a str, bytes or os.PathLike (pathlib.Path) is one; anything
    else gets a ValueError naming ``what`` ("the model file") and what was given."""
    if isinstance(value, str | bytes | os.PathLike):
        return os.fsdecode(value)
    raise ValueError(f"{what} must be a path (a str or a pathlib.Path), got {type(value).__name__}")
