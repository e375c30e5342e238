"""A run's history: one record per finished epoch, as Keras' ``History`` keeps it, and its file.

    {"epochs": [{"epoch": 1, "seconds": ..., "loss": ..., "accuracy": ...,
                 "val_loss": ..., "val_accuracy": ...}, {"epoch": 2, ...}, ...],
     "test_loss": ..., "test_accuracy": ...}

The trainer writes it (``--history FILE``; the records go into the model file too); the model
file, the plots and the trainer (before it overwrites a file) read it back. What a history may
hold is checked here, once, for all of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from plumbing.atomic_write import write_atomically
from plumbing.checks import is_finite_number, is_int

# The numbers a record may hold, by kind ("val_loss" and "test_loss" are losses): the curves are
# drawn from them, and NaN, infinity or 1e308 would only end in one of matplotlib's errors.
VALID_VALUES = {
    "loss": (lambda value: value >= 0, "a number >= 0"),
    "accuracy": (lambda value: 0 <= value <= 1, "a number from 0 to 1"),
}


class HistoryError(ValueError):
    """A history this program would not have written; the message says what, after a colon."""


def write_history(
    path: str | os.PathLike | None,
    records: list[dict[str, Any]],
    test_loss: float | None = None,
    test_accuracy: float | None = None,
) -> None:
    """Write the history JSON atomically (nothing when ``path`` is None)."""
    if path is None:
        return
    history = {"epochs": records, "test_loss": test_loss, "test_accuracy": test_accuracy}
    text = json.dumps(history, indent=2) + "\n"
    write_atomically(path, lambda file: file.write(text.encode()))


def check_history(history: object, required: Sequence[str] = ()) -> None:
    """A history file's content: an object with an "epochs" list (see check_records) and
    "test_loss" and "test_accuracy", each None (not evaluated yet) or a number of its kind.

    Raises HistoryError.
    """
    if not isinstance(history, Mapping) or not isinstance(history.get("epochs"), list):
        raise HistoryError("no 'epochs' list")
    check_records(history["epochs"], required)
    for key in ("test_loss", "test_accuracy"):
        _check_value(key, history.get(key), "")


def check_records(records: list, required: Sequence[str] = ()) -> None:
    """One record per finished epoch, in order: each an object whose "epoch" is its number
    (1, 2, ...) and whose other values are None or finite numbers (losses >= 0, accuracies from
    0 to 1). ``required`` names the values every record must hold (the plots draw "loss" and
    "accuracy").

    Raises HistoryError.
    """
    for number, record in enumerate(records, start=1):
        where = f"epoch record {number}"
        if not isinstance(record, Mapping):
            raise HistoryError(f"{where} is not an object")
        for key in required:
            if not _is_number(record.get(key)):
                raise HistoryError(f"{where} lacks a numeric '{key}'")
        epoch = record.get("epoch")
        if not (is_int(epoch) and epoch == number):
            raise HistoryError(f"{where}: 'epoch' is {epoch!r}, expected {number}")
        for key, value in record.items():
            _check_value(key, value, f"{where}: ")


def is_history_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a history this program could have written (never overwrite
    anything else)."""
    try:
        with open(path, encoding="utf-8") as file:
            check_history(json.load(file))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        return False  # (HistoryError and JSON's errors are ValueErrors)
    return True


def _check_value(key: str, value: object, where: str) -> None:
    if value is None:
        return  # a validation or test result not computed
    kind = key.removeprefix("val_").removeprefix("test_")
    is_valid, valid = VALID_VALUES.get(kind, (lambda value: True, "a finite number"))
    if not (is_finite_number(value) and is_valid(value)):
        raise HistoryError(f"{where}'{key}' is {value!r}, expected {valid}")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True is no loss value.
    return isinstance(value, int | float) and not isinstance(value, bool)
