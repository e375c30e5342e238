"""The header of a ``.npy`` file or member, read by NumPy's own reader with a bound on its size.

A ``.npy`` file starts with a magic string, a version, the header's length and the header (dtype,
order, shape); the data follows. ``np.lib.format`` reads all that, but it reads the whole length
a header claims before it checks it (up to 4 GiB in version 2.0), so a damaged or hostile file
could make it read gigabytes. ``read_npy_header`` gives NumPy at most ``MAX_HEADER_BYTES`` and
says in one line what is wrong, before a caller reads or allocates anything for the data.

Used by the dataset loader (``download_mnist.py``) and the model file (``training/model_file.py``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from plumbing.checks import is_int, shown

# Magic string and version (8 bytes), the header's length (2 or 4), and the header itself, which
# NumPy refuses beyond 10,000 bytes (but only after reading them all).
MAX_HEADER_BYTES = 8 + 4 + 10_000
MAX_DIMENSIONS = 64  # NumPy's own limit (numpy.lib.format would take more)


class NpyHeaderError(ValueError):
    """Not a .npy file, a version NumPy's reader cannot take, or a damaged header.

    The message is a predicate ("is not a .npy file ...") to follow the file's name.
    """


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header says of the array that follows it."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype

    @property
    def data_bytes(self) -> int:
        """The size of the array's data, as the header claims it (Python ints: no overflow)."""
        return self.dtype.itemsize * math.prod(self.shape)


def read_npy_header(stream: BinaryIO) -> NpyHeader:
    """Read the .npy header at ``stream``'s position, leaving ``stream`` at the first data byte.

    ``stream`` must be seekable (a file, a zip member): at most MAX_HEADER_BYTES are read ahead,
    and the stream is moved back to where the header ends.

    Raises
    ------
    NpyHeaderError
        Not a .npy file (an .npz is named as such), a format version other than 1.0 and 2.0
        (3.0 only exists for structured dtypes with non-ASCII field names), or a header NumPy
        cannot parse.
    """
    start = stream.tell()
    ahead = io.BytesIO(stream.read(MAX_HEADER_BYTES))
    try:
        version = np.lib.format.read_magic(ahead)
    except ValueError:
        if ahead.getvalue().startswith(b"PK\x03\x04"):  # what np.savez writes
            raise NpyHeaderError("is a zip archive (an .npz?), not a .npy file") from None
        raise NpyHeaderError("is not a .npy file (it does not start with b'\\x93NUMPY')") from None
    if version == (1, 0):
        read_header = np.lib.format.read_array_header_1_0
    elif version == (2, 0):
        read_header = np.lib.format.read_array_header_2_0
    else:
        raise NpyHeaderError(
            f"uses .npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0"
        )
    try:
        shape, fortran_order, dtype = read_header(ahead)
    except (ValueError, TypeError, SyntaxError) as error:
        reason = " ".join(str(error).split())  # NumPy's message, on one line
        raise NpyHeaderError(f"has a damaged .npy header ({reason})") from None
    # NumPy's reader takes any ints as the shape: -1 would make data_bytes negative (and a
    # read of "-4 bytes" reads to the end), and no array has more than 64 dimensions.
    if len(shape) > MAX_DIMENSIONS or not all(is_int(n) and n >= 0 for n in shape):
        raise NpyHeaderError(f"has a damaged .npy header (shape {shown(shape)})")
    stream.seek(start + ahead.tell())
    return NpyHeader(tuple(shape), bool(fortran_order), dtype)
