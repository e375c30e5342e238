"""Small checks of plain values, shared by everything that reads settings, files or requests.

Python's ``bool`` is a kind of ``int`` (``isinstance(True, int)`` holds), so "is this an integer
count?" needs one more test than ``isinstance``; it is written here once.
"""

from __future__ import annotations

import math
import os
import stat


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


# --------------------------------------------------------------------------------------------
# Values and paths in messages: every message stays one line, and of a readable length.
# --------------------------------------------------------------------------------------------

MAX_SHOWN_CHARACTERS = 80


def one_line(text: str) -> str:
    """``text`` with its line breaks and other control characters written as Python writes
    them in a string (``\\n``, ``\\x1b``), and undecodable bytes of a file name as ``\\udcff``:
    a message naming a file with a line break in its name stays one line, and prints on any
    terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable(path: object) -> str:
    """A path as one line of text: as it is, or, when it holds a line break or another control
    character or is empty, quoted as Python writes it ('a\\nb.npz', '')."""
    text = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)
    if text == "" or not text.isprintable():
        return one_line(repr(text))
    return text


def shown(value: object, limit: int = MAX_SHOWN_CHARACTERS) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters: a 5,000-digit number
    or a list of a million entries is shown by its start, its end and its length, not echoed
    whole (nor, for an int past Python's 4,300 digits, made into a ValueError by repr)."""
    try:
        text = one_line(repr(value))
    except ValueError:  # int's repr refuses more than sys.get_int_max_str_digits() digits
        digits = int(abs(value).bit_length() * 0.30103) + 1
        return f"a number of about {digits:,} digits"
    return cut_short(text, limit)


def cut_short(text: str, limit: int = MAX_SHOWN_CHARACTERS) -> str:
    """``text`` whole up to ``limit`` characters; a longer one as its start and its end around
    "..." and its length, in about ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = max(1, (limit - 25) // 2)
    return f"{text[:half]}...{text[-half:]} ({len(text):,} characters)"


def file_kind(mode: int) -> str:
    """What a file is, from its ``st_mode``: "a directory", "a FIFO", ... for messages."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for is_kind, name in kinds if is_kind(mode)), "a special file")
