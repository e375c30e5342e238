"""The files a training run writes, checked before any work: none may destroy a file that is
not the run's own, and each must be writable, so a typo fails at once, not after an epoch.

The model file (``--save``), the history (``--history``) and the TensorBoard logs
(``--tensorboard``): no two the same path, neither the history nor the logs the model file
being resumed, and an existing file replaced only if this program wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from plumbing.atomic_write import FileWriteError, check_writable, check_writable_folder, same_file
from training.history import is_history_file
from training.model_file import ModelFileError, load_model
from training.settings import ConfigError, TrainConfig


def check_outputs(config: TrainConfig) -> None:
    """Refuse, before any work, outputs that would destroy a file or could not be written.

    Raises ConfigError (two outputs on one path) or FileWriteError (not writable, or a file
    this program did not write).
    """
    outputs = {}
    if not config.no_save:
        outputs["--save"] = config.save_path
    if config.history_path:
        outputs["--history"] = config.history_path
    if config.tensorboard_dir:
        outputs["--tensorboard"] = config.tensorboard_dir
    names = list(outputs)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if same_file(outputs[first], outputs[second]):
                raise ConfigError(
                    f"{first} and {second} are the same path, {outputs[first]}: one would "
                    "overwrite the other; give them different paths"
                )
    if config.resume_path:
        for option in ("--history", "--tensorboard"):
            if option in outputs and same_file(outputs[option], config.resume_path):
                raise ConfigError(
                    f"{option} {outputs[option]} is the model file being resumed; it would be "
                    "overwritten: give another path"
                )
    if "--save" in outputs:
        check_writable(config.save_path, "model file")
        _refuse_to_overwrite_a_stranger(config.save_path, "model file", _is_model_file)
    if "--history" in outputs:
        check_writable(config.history_path, "history file")
        _refuse_to_overwrite_a_stranger(config.history_path, "history file", _is_history_file)
    if "--tensorboard" in outputs:
        if os.path.exists(config.tensorboard_dir) and not os.path.isdir(config.tensorboard_dir):
            raise FileWriteError(
                f"--tensorboard {config.tensorboard_dir} is a file; give a folder for the logs"
            )
        check_writable_folder(config.tensorboard_dir, "TensorBoard logs")


def _refuse_to_overwrite_a_stranger(path: str, what: str, is_ours: Callable[[str], bool]):
    """An existing file that this program did not write is the user's: never overwrite it."""
    if os.path.exists(path) and not is_ours(path):
        raise FileWriteError(
            f"{path} exists and is not a {what} written by this program; refusing to overwrite "
            "it: choose another path, or move it away first"
        )


# A history is about 250 bytes an epoch: a larger file is some other file of the user's, and is
# not read whole (into memory) to find that out.
MAX_HISTORY_BYTES = 64 * 2**20


def _is_history_file(path: str) -> bool:
    try:
        if os.path.getsize(path) > MAX_HISTORY_BYTES:
            return False
    except OSError:
        return False
    return is_history_file(path)


def _is_model_file(path: str) -> bool:
    try:
        load_model(path)
    except ModelFileError:
        return False
    return True
