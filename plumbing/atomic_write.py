"""Write a file so that it is never half-written, and nothing else the user has is lost.

One helper for the whole project (model files, history JSON, PNG plots, datasets):

* :func:`write_atomically` writes to a temporary file beside the target and renames it over
  the target once complete: a crash, a full disk or Ctrl-C leaves the old file or the new one,
  never half of one. A symbolic link is followed (the file it points to is replaced, the link
  stays a link); a path that is not a regular file (a device, a pipe, a folder) is refused.
* :func:`check_writable` finds out before any long work whether a path can be written, and
  :func:`check_writable_folder` whether files can be created in a folder.

Temporary files are named ``.NAME.PID.RANDOM.simple-cnn.tmp`` (NAME cut short if the whole
would be too long for the file system); one left by a process that was killed mid-write is
removed by the next write of the same file. Only a file that this module could have made is
removed: that exact form of name, a process that is gone, a regular file of this user's.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class FileWriteError(OSError):
    """A path that cannot or must not be written; the message is one line with the reason."""


TEMPORARY_SUFFIX = ".simple-cnn.tmp"  # what marks a temporary file as this module's
RANDOM_PART = "[a-z0-9_]{8}"  # what tempfile.mkstemp puts between prefix and suffix


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    Parameters
    ----------
    path : str or PathLike
        The file to create or replace. A symbolic link is followed to its target.
    write : callable
        Writes the whole content to the binary file object it is given.

    Returns
    -------
    Path
        The file written (the link's target when ``path`` is a link).

    Raises
    ------
    FileWriteError
        ``path`` is empty, is a folder or another non-regular file, its folder cannot be
        written, or the disk is full or read-only: one line naming the file and saying that
        the old file was kept. Other errors of ``write`` pass through; the old file is left as
        it was.
    """
    target = _regular_file_target(path)
    _remove_stale_temporaries(target)
    try:
        handle, temporary = _make_temporary(target)
    except OSError as error:
        raise FileWriteError(_disk_error_message(path, target, error)) from None
    try:
        with os.fdopen(handle, "wb") as file:
            os.chmod(temporary, _mode_for(target))  # mkstemp's 0600 would hide the file
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the bytes reach the disk before the name points at them
        os.replace(temporary, target)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _DISK_ERRORS:
            raise FileWriteError(_disk_error_message(path, target, error)) from None
        raise
    _sync_folder(target.parent)
    return target


# What a full, read-only or failing disk raises, where the user can only make room or move.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def _disk_error_message(path: str | os.PathLike, target: Path, error: OSError) -> str:
    kept = "the old file was kept" if target.exists() else "nothing was written"
    return f"cannot write {path}: {_reason(error)}; {kept}"


def check_writable(path: str | os.PathLike, what: str = "file") -> None:
    """Make sure ``path`` can be written, by creating and removing a temporary file beside it.

    Done before training starts, so a typo or a read-only folder fails at once instead of
    after the first epoch. ``what`` names the file in the message ("model file", ...).

    Raises
    ------
    FileWriteError
        One line: what is wrong with the path and how to fix it.
    """
    target = _regular_file_target(path, what)
    try:
        handle, temporary = _make_temporary(target)  # the very file a write would make
    except OSError as error:
        raise FileWriteError(f"cannot write the {what} {path}: {_reason(error)}") from None
    os.close(handle)
    os.unlink(temporary)


def check_writable_folder(path: str | os.PathLike, what: str = "files") -> None:
    """Make sure files can be created in the folder ``path``: it is a folder that can be
    written, or it can be created in the nearest folder above it that exists.

    Creates nothing (a run refused for another reason leaves no empty folder behind).

    Raises
    ------
    FileWriteError
        One line: ``path`` or a folder above it is a file, or that folder cannot be written.
    """
    if os.fspath(path) == "":
        raise FileWriteError(f"the folder for the {what} is empty; give a folder")
    existing = Path(os.path.abspath(path))
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise FileWriteError(
            f"cannot write the {what} in {path}: {existing} is a file, not a folder"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise FileWriteError(f"cannot write the {what} in {path}: {_reason(error)}") from None


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name the same file (links and relative paths resolved)."""
    return os.path.realpath(first) == os.path.realpath(second)


def _regular_file_target(path: str | os.PathLike, what: str = "file") -> Path:
    """The real file behind ``path`` (links followed), refused unless it is a regular file or
    does not exist yet in an existing folder."""
    if os.fsdecode(path) == "":
        raise FileWriteError(f"the {what} path is empty; give a file name")
    if os.fsdecode(path).endswith(os.sep):  # "runs/" names a folder, not a file called "runs"
        raise FileWriteError(f"the {what} {path} is a folder; give a file name")
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise FileWriteError(
                f"cannot write the {what} {path}: folder {target.parent} does not exist"
            ) from None
        return target
    except OSError as error:
        raise FileWriteError(f"cannot write the {what} {path}: {_reason(error)}") from None
    if stat.S_ISDIR(mode):
        raise FileWriteError(f"the {what} {path} is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise FileWriteError(
            f"the {what} {path} is not a regular file (a device, pipe or socket); "
            "give the path of a file"
        )
    return target


def _mode_for(target: Path) -> int:
    """The permissions the new file gets: the old file's, else what a plain open() gives."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # the only way to read the umask is to set it, so set it back
        os.umask(umask)
        return 0o666 & ~umask


def _make_temporary(target: Path) -> tuple[int, str]:
    """Create ``target``'s temporary file beside it: (open descriptor, path)."""
    return tempfile.mkstemp(
        dir=target.parent,
        prefix=f".{_temporary_stem(target)}.{os.getpid()}.",
        suffix=TEMPORARY_SUFFIX,
    )


def _temporary_stem(target: Path) -> str:
    """``target``'s name, cut short so that its temporary's name fits the file system's limit
    (255 bytes on most). The same for every process, so any writer finds the others' leftovers.
    """
    try:
        name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    # "." + NAME + "." + a process id (10 digits at most) + "." + 8 random characters + suffix
    extra_bytes = 1 + 1 + 10 + 1 + 8 + len(TEMPORARY_SUFFIX)
    return os.fsdecode(os.fsencode(target.name)[: max(name_max - extra_bytes, 1)])


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporary files of ``target`` left by writers that were killed mid-write.

    Only files this module could have made: named exactly as :func:`_make_temporary` names
    them, by a process that no longer runs, regular files owned by this user. Anything else
    that merely looks alike (a user's ``.model.npz.99999.mybackup.tmp``) is the user's.
    """
    stem = _temporary_stem(target)
    ours = re.compile(
        rf"\.{re.escape(stem)}\.(\d{{1,10}})\.{RANDOM_PART}{re.escape(TEMPORARY_SUFFIX)}"
    )
    for leftover in target.parent.glob(f".{_glob_escape(stem)}.*{TEMPORARY_SUFFIX}"):
        match = ours.fullmatch(leftover.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            info = leftover.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own: another thread may be writing it right now
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _sync_folder(folder: Path) -> None:
    """fsync the folder, so the rename itself survives a power cut (where the OS allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems do not sync folders; the data itself is already on disk
    finally:
        os.close(descriptor)


def _reason(error: OSError) -> str:
    return error.strerror or " ".join(str(error).split())
