"""atomic_write: a file is replaced whole or not at all, and nothing else the user has is lost."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plumbing.atomic_write import FileWriteError, check_writable, same_file, write_atomically

PROJECT_DIR = Path(__file__).resolve().parent.parent


def write_bytes(data: bytes):
    return lambda file: file.write(data)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.npz"
    assert write_atomically(path, write_bytes(b"new")) == path
    assert path.read_bytes() == b"new" and temporaries(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")

    def fail(file):
        file.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old" and temporaries(tmp_path) == []


def test_a_symlink_is_written_through_to_its_target_in_the_targets_folder(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "work").mkdir()
    target = tmp_path / "store" / "real.npz"
    target.write_bytes(b"stale")
    link = tmp_path / "work" / "model.npz"
    link.symlink_to(target)
    assert write_atomically(link, write_bytes(b"fresh")) == target
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"fresh"


def test_an_existing_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    write_atomically(path, write_bytes(b"new"))
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_path_that_is_not_a_regular_file_is_refused_and_left_alone(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = Path("/dev/null")
    before = path.stat()
    for call in (lambda: write_atomically(path, write_bytes(b"x")), lambda: check_writable(path)):
        with pytest.raises(FileWriteError) as excinfo:
            call()
        assert "\n" not in str(excinfo.value) and str(path) in str(excinfo.value)
    after = path.stat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_check_writable_refuses_empty_paths_missing_folders_and_unwritable_places(tmp_path):
    with pytest.raises(FileWriteError, match="empty"):
        check_writable("", "model file")
    with pytest.raises(FileWriteError, match="does not exist"):
        check_writable(tmp_path / "no" / "model.npz")
    with pytest.raises(FileWriteError, match="cannot write the model file /proc/model.npz"):
        check_writable("/proc/model.npz", "model file")  # not writable, even for root
    check_writable(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []  # it only tried


def test_a_name_as_long_as_the_file_system_allows_is_written(tmp_path):
    # The temporary file's name adds to the name: it must still fit, or the check before
    # training passes and the save after the first epoch fails.
    path = tmp_path / ("m" * 251 + ".npz")
    check_writable(path)
    write_atomically(path, write_bytes(b"new"))
    assert path.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_a_name_too_long_for_the_file_system_is_refused_by_the_check(tmp_path):
    with pytest.raises(FileWriteError, match="too long"):
        check_writable(tmp_path / ("m" * 252 + ".npz"), "model file")


@pytest.mark.parametrize("name", ["model.npz", "é" * 125 + ".npz"], ids=["short", "254-bytes"])
def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"old")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom plumbing import atomic_write\n"
            "def slow(file):\n"
            "    file.write(b'half')\n"
            "    print('writing', flush=True)\n"
            "    time.sleep(60)\n"
            f"atomic_write.write_atomically({str(path)!r}, slow)\n",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "writing\n"
    left = temporaries(tmp_path)
    assert len(left) == 1
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert temporaries(tmp_path) == left and path.read_bytes() == b"old"

    write_atomically(path, write_bytes(b"new"))
    assert temporaries(tmp_path) == [] and path.read_bytes() == b"new"


def test_a_temporary_of_a_live_writer_is_kept(tmp_path):
    path = tmp_path / "model.npz"
    live = tmp_path / f".model.npz.{os.getppid()}.abc123_z.simple-cnn.tmp"  # our parent lives
    live.write_bytes(b"in progress")
    write_atomically(path, write_bytes(b"new"))
    assert live.exists()


def a_finished_process_id() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_only_temporaries_this_module_could_have_made_are_removed(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    pid = a_finished_process_id()
    ours = tmp_path / f".model.npz.{pid}.k3x_9abq.simple-cnn.tmp"  # left by a killed writer
    ours.write_bytes(b"half")
    users = [
        f".model.npz.{pid}.mybackup.tmp",  # the user's own backup, named alike
        f".model.npz.{pid}.my-backup.simple-cnn.tmp",  # not what mkstemp makes
        f".model.npz.{pid}.mybackup.simple-cnn.tmp.old",
        f".model.npz.x{pid}.mybackup.simple-cnn.tmp",
    ]
    for name in users:
        (tmp_path / name).write_bytes(b"keep me")
    folder = tmp_path / f".model.npz.{pid}.folder00.simple-cnn.tmp"  # not a regular file
    folder.mkdir()
    write_atomically(path, write_bytes(b"new"))
    assert path.read_bytes() == b"new" and not ours.exists() and folder.is_dir()
    assert all((tmp_path / name).read_bytes() == b"keep me" for name in users)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")],
)
def test_a_full_or_read_only_disk_names_the_file_and_says_the_old_one_was_kept(
    tmp_path, code, reason
):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")

    def full_disk(file):
        file.write(b"half")
        raise OSError(code, os.strerror(code))  # what file.write raises when the disk is full

    with pytest.raises(FileWriteError) as refused:
        write_atomically(path, full_disk)
    assert str(refused.value) == f"cannot write {path}: {reason}; the old file was kept"
    assert path.read_bytes() == b"old" and temporaries(tmp_path) == []
    new = tmp_path / "new.npz"
    with pytest.raises(FileWriteError, match=f"cannot write {new}: .*; nothing was written"):
        write_atomically(new, full_disk)
    assert not new.exists()


def test_same_file_sees_through_links_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.npz").write_bytes(b"")
    (tmp_path / "b.npz").symlink_to(tmp_path / "a.npz")
    assert same_file("a.npz", tmp_path / "b.npz")
    assert same_file("./x/../a.npz", "a.npz")
    assert not same_file("a.npz", "c.npz")


def test_a_path_ending_in_a_slash_is_a_folder_not_a_file_name(tmp_path):
    # "--save runs/" means a folder: writing a file named "runs" would surprise.
    for call in (
        lambda: check_writable(f"{tmp_path}/runs/", "model file"),
        lambda: write_atomically(f"{tmp_path}/runs/", write_bytes(b"x")),
    ):
        with pytest.raises(FileWriteError, match="folder"):
            call()
    assert list(tmp_path.iterdir()) == []
