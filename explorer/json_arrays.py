"""NumPy arrays as JSON, the way the page reads them (``explorer/page/api.js`` decodes them),
and the way it sends its drawing (``from_json``).

    float arrays   {"shape": [...], "data": base64 of float32}
    uint8 images   {"shape": [...], "bytes": base64 of uint8}
    integer arrays nested lists (counts, such as a confusion matrix: exact, and small)

Both base64 forms are little-endian and row-major: far smaller and faster to read than nested
lists of numbers (a 112x112 drawing as a list takes milliseconds to parse, as bytes
microseconds).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np


def to_json(value: Any) -> Any:
    """``value`` (dicts, lists, NumPy arrays and scalars, plain values) as plain JSON values."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return {"shape": list(value.shape), "bytes": _base64(value)}
        if np.issubdtype(value.dtype, np.integer):
            return value.tolist()
        return {"shape": list(value.shape), "data": _base64(value.astype("<f4"))}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _base64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def uint8_from_json(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The uint8 array of shape ``shape`` that ``value`` ({"shape": [...], "bytes": base64})
    encodes, or None when it is not one (another form, a bad base64, a size that does not fit
    the shape)."""
    if not isinstance(value, dict) or set(value) != {"shape", "bytes"}:
        return None
    if value["shape"] != list(shape) or not isinstance(value["bytes"], str):
        return None
    try:
        data = base64.b64decode(value["bytes"], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) != int(np.prod(shape)):
        return None
    return np.frombuffer(data, np.uint8).reshape(shape)
