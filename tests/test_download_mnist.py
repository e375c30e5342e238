"""Tests of download_mnist: the IDX reader, checksums, downloads over a real socket, the loader.

Downloads are served by a small HTTP server on 127.0.0.1 that each test starts and stops; the
datasets served are tiny ones generated here, with their own checksums, so nothing needs the
network. One test builds the real MNIST arrays from the archives shipped in mnist_data/.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import download_mnist
from download_mnist import DatasetError, load_dataset, prepare_dataset, read_idx

TINY_COUNTS = {"train": 12, "test": 5}
MIRROR_KINDS = ("good", "corrupt", "truncated", "missing", "slow", "trickle", "loop")
TRICKLE_PAUSE_SECONDS = 0.2
TRICKLE_MAX_BYTES = 25  # then the trickle stops, so a client without a deadline waits 5 s


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX file of a uint8 array: magic number, big-endian dimensions, then the bytes."""
    if magic is None:
        magic = 0x00000800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def corrupted(raw: bytes) -> bytes:
    """The same IDX file with its last byte changed: right size, valid gzip, wrong content."""
    return gzipped(raw[:-1] + bytes([raw[-1] ^ 0xFF]))


@dataclasses.dataclass
class TinyDataset:
    """A generated dataset in the MNIST file layout, and the spec that accepts it."""

    spec: download_mnist.DatasetSpec
    arrays: dict[str, np.ndarray]
    raw: dict[str, bytes]  # archive file name -> uncompressed IDX bytes

    def archives(self, **replace: bytes) -> dict[str, bytes]:
        """Archive file name -> gzip bytes; ``replace`` swaps in other bytes by array name."""
        archives = {name: gzipped(raw) for name, raw in self.raw.items()}
        for archive in self.spec.archives:
            if archive.array_name in replace:
                archives[archive.file_name] = replace[archive.array_name]
        return archives

    def write_archives(self, folder: Path, **replace: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.archives(**replace).items():
            (folder / name).write_bytes(data)


def make_tiny_dataset(arrays: dict[str, np.ndarray]) -> TinyDataset:
    """Spec a dataset whose checksums are those of ``arrays``' IDX files; no default mirror."""
    raw, archive_specs = {}, []
    for archive in download_mnist.MNIST.archives:
        data = idx_bytes(arrays[archive.array_name])
        raw[archive.file_name] = data
        archive_specs.append(
            dataclasses.replace(
                archive,
                content_sha256=hashlib.sha256(data).hexdigest(),
                content_bytes=len(data),
                known_archives={},
            )
        )
    spec = dataclasses.replace(
        download_mnist.MNIST, name="tiny", mirrors=(), archives=tuple(archive_specs)
    )
    return TinyDataset(spec, arrays, raw)


@pytest.fixture
def tiny() -> TinyDataset:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in TINY_COUNTS.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 10, count, dtype=np.uint8)
    return make_tiny_dataset(arrays)


class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder; records each path; answers /slow/ only after a pause,
    /trickle/ one byte at a time (a mirror that never stalls long enough for a read timeout)
    and /loop/ with a redirection to itself."""

    def do_GET(self) -> None:
        self.server.requested_paths.append(self.path)
        if self.path.startswith("/loop/"):  # a mirror that redirects to itself
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/slow/"):
            time.sleep(0.5)
        path = Path(self.translate_path(self.path))
        if self.path.startswith("/trickle/") and path.is_file():
            self._trickle(path.read_bytes())
        else:
            super().do_GET()

    def _trickle(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for byte in data[:TRICKLE_MAX_BYTES]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(TRICKLE_PAUSE_SECONDS)
        except OSError:
            pass  # the client gave up: that is what a deadline does

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


class _QuietServer(http.server.ThreadingHTTPServer):
    requested_paths: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up on /slow/ breaks the pipe; that is expected


@pytest.fixture
def mirrors(tmp_path: Path, tiny: TinyDataset):
    """Base URLs of mirror folders on a local HTTP server: good, corrupt, truncated, missing, slow
    and trickle (which holds only the first archive; the others are missing there).

    Yields a dict of kind -> base URL, plus "paths": the list of requested paths, in order.
    """
    root = tmp_path / "www"
    raw_by_array = {a.array_name: tiny.raw[a.file_name] for a in tiny.spec.archives}
    tiny.write_archives(root / "good")
    tiny.write_archives(root / "slow")
    tiny.write_archives(root / "corrupt", **{k: corrupted(v) for k, v in raw_by_array.items()})
    tiny.write_archives(
        root / "truncated",
        **{k: gzipped(v)[: len(gzipped(v)) // 2] for k, v in raw_by_array.items()},
    )
    (root / "missing").mkdir()
    (root / "trickle").mkdir()
    first = tiny.spec.archives[0].file_name
    (root / "trickle" / first).write_bytes(tiny.archives()[first])
    server = _QuietServer(("127.0.0.1", 0), functools.partial(_MirrorHandler, directory=root))
    server.requested_paths = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {kind: f"{base}/{kind}/" for kind in MIRROR_KINDS} | {
        "paths": server.requested_paths,
        "root": root,
    }
    server.shutdown()
    server.server_close()
    thread.join()


def temp_files(folder: Path) -> list[Path]:
    """Leftovers of an atomic write (they start with a dot)."""
    return sorted(folder.glob(".*"))


def write_npy_set(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)


def sentinel_arrays() -> dict[str, np.ndarray]:
    """A valid but recognisable set of .npy contents: the 'old files' that must survive."""
    return {
        "train_images": np.full((3, 28, 28), 7, np.uint8),
        "train_labels": np.array([1, 2, 3], np.uint8),
        "test_images": np.full((2, 28, 28), 9, np.uint8),
        "test_labels": np.array([4, 5], np.uint8),
    }


def assert_npy_equal(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        loaded = np.load(folder / f"{name}.npy")
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, array)


# --- the IDX reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_reads_images_and_labels(tmp_path: Path, tiny: TinyDataset, suffix: str) -> None:
    for name in ("train_images", "train_labels"):
        path = tmp_path / f"{name}.idx{suffix}"
        data = idx_bytes(tiny.arrays[name])
        path.write_bytes(gzipped(data) if suffix else data)
        array = read_idx(path)
        assert array.dtype == np.uint8 and array.flags.writeable
        np.testing.assert_array_equal(array, tiny.arrays[name])


def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "floats.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), magic=0x00000D03))
    with pytest.raises(DatasetError, match=r"floats\.idx: bad magic number 0x00000d03"):
        read_idx(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data[:-1], r"promises shape \(4, 28, 28\).* has 3151 bytes"),
        (lambda data: data + b"\0", r"promises shape \(4, 28, 28\).* has 3153 bytes"),
        (lambda data: data[:10], r"header cut short \(10 of 16 bytes\)"),
        (lambda data: data[:3], r"only 3 bytes"),
    ],
    ids=["truncated", "padded", "short-header", "no-header"],
)
def test_read_idx_rejects_a_length_that_disagrees_with_the_header(
    tmp_path: Path, change, message: str
) -> None:
    path = tmp_path / "images.idx"
    path.write_bytes(change(idx_bytes(np.zeros((4, 28, 28), np.uint8))))
    with pytest.raises(DatasetError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_rejects_a_truncated_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.idx.gz"
    path.write_bytes(gzipped(idx_bytes(np.arange(300, dtype=np.uint8) % 10))[:-20])
    with pytest.raises(DatasetError, match=r"labels\.idx\.gz: truncated"):
        read_idx(path)


def test_prepare_refuses_images_and_labels_whose_counts_disagree(tmp_path: Path) -> None:
    arrays = {
        "train_images": np.zeros((12, 28, 28), np.uint8),
        "train_labels": np.zeros(11, np.uint8),  # one label short
        "test_images": np.zeros((5, 28, 28), np.uint8),
        "test_labels": np.zeros(5, np.uint8),
    }
    odd = make_tiny_dataset(arrays)
    odd.write_archives(tmp_path)
    with pytest.raises(DatasetError, match=r"holds 12 images but .*train-labels.* holds 11 labels"):
        prepare_dataset(tmp_path, odd.spec, log=lambda line: None)
    assert not list(tmp_path.glob("*.npy")) and not temp_files(tmp_path)


# --- building from local archives, checksums, atomic writes ----------------------------------


def test_prepare_builds_the_npy_files_from_local_archives(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    tiny.write_archives(tmp_path)
    lines: list[str] = []
    assert prepare_dataset(tmp_path, tiny.spec, log=lines.append) == tmp_path
    assert_npy_equal(tmp_path, tiny.arrays)
    assert sum("content SHA-256 OK" in line for line in lines) == 4
    assert not temp_files(tmp_path)


def test_prepare_keeps_existing_npy_files_unless_forced(tmp_path: Path, tiny: TinyDataset) -> None:
    tiny.write_archives(tmp_path)
    write_npy_set(tmp_path, sentinel_arrays())
    prepare_dataset(tmp_path, tiny.spec, log=lambda line: None)
    assert_npy_equal(tmp_path, sentinel_arrays())
    prepare_dataset(tmp_path, tiny.spec, force=True, log=lambda line: None)
    assert_npy_equal(tmp_path, tiny.arrays)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (corrupted, r"content SHA-256 is [0-9a-f]{16}\.\.\., expected [0-9a-f]{16}\.\.\."),
        (lambda raw: gzipped(raw)[:-30], r"truncated: the gzip stream ends early"),
        (lambda raw: gzipped(raw[:-1]), r"decompresses to only 3935 of the expected 3936 bytes"),
        (lambda raw: gzipped(raw + b"\0"), r"decompresses to more than the expected 3936 bytes"),
        (lambda raw: raw, r"not a valid gzip archive"),
    ],
    ids=["wrong-content", "truncated", "short", "long", "not-gzip"],
)
def test_prepare_refuses_a_damaged_local_archive_and_keeps_the_old_files(
    tmp_path: Path, tiny: TinyDataset, damage, message: str
) -> None:
    # The test images come last, so the three archives before them have already passed.
    tiny.write_archives(tmp_path, test_images=damage(tiny.raw["t10k-images-idx3-ubyte.gz"]))
    write_npy_set(tmp_path, sentinel_arrays())
    with pytest.raises(DatasetError, match=message) as caught:
        prepare_dataset(tmp_path, tiny.spec, force=True, log=lambda line: None)
    text = str(caught.value)
    assert f"{tmp_path / 't10k-images-idx3-ubyte.gz'} is refused" in text
    assert "delete it and run `python download_mnist.py --dataset tiny" in text
    assert "\n" not in text
    assert_npy_equal(tmp_path, sentinel_arrays())
    assert not temp_files(tmp_path)


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_an_interrupted_npy_write_keeps_the_old_file(
    tmp_path: Path, tiny: TinyDataset, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    tiny.write_archives(tmp_path)
    write_npy_set(tmp_path, sentinel_arrays())

    def save_half_then_fail(file, array) -> None:
        file.write(b"\x93NUMPY half a file")
        raise failure

    monkeypatch.setattr(download_mnist.np, "save", save_half_then_fail)
    expected = DatasetError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as caught:
        prepare_dataset(tmp_path, tiny.spec, force=True, log=lambda line: None)
    if expected is DatasetError:
        assert "cannot write" in str(caught.value) and "No space left" in str(caught.value)
    monkeypatch.undo()
    assert_npy_equal(tmp_path, sentinel_arrays())
    assert not temp_files(tmp_path)


def test_a_temporary_left_by_a_killed_build_is_removed_by_the_next(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    # A build killed while it wrote a 47 MB .npy file leaves its temporary behind; the next
    # build of that file removes it (atomic_write names it .NAME.PID.RANDOM.simple-cnn.tmp).
    tiny.write_archives(tmp_path)
    dead_pid = 2**22 + 1  # above Linux's largest process id: no such process
    leftover = tmp_path / f".train_images.npy.{dead_pid}.k1ll3d0x.simple-cnn.tmp"
    leftover.write_bytes(b"\x93NUMPY half a file")
    prepare_dataset(tmp_path, tiny.spec, log=lambda line: None)
    assert_npy_equal(tmp_path, tiny.arrays)
    assert not temp_files(tmp_path)


def test_the_shipped_checksum_files_match_the_code() -> None:
    folder = download_mnist.default_data_dir("mnist")
    archive_sums = dict(
        reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines()
    )
    content_sums = dict(
        reversed(line.split()) for line in (folder / "SHA256SUMS.raw").read_text().splitlines()
    )
    for archive in download_mnist.MNIST.archives:
        assert content_sums[archive.file_name.removesuffix(".gz")] == archive.content_sha256
        assert archive_sums[archive.file_name] in archive.known_archives


def test_the_cli_builds_real_mnist_from_the_shipped_archives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for archive in download_mnist.MNIST.archives:
        shutil.copy(download_mnist.default_data_dir("mnist") / archive.file_name, tmp_path)
    assert download_mnist.main(["--data-dir", str(tmp_path)]) == 0
    assert "ready: train (60000, 28, 28)" in capsys.readouterr().out
    x_train, y_train, x_test, y_test = load_dataset(tmp_path)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {x.dtype for x in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_the_cli_reports_a_damaged_archive_in_one_line(tmp_path: Path) -> None:
    shipped = download_mnist.default_data_dir("mnist") / "train-images-idx3-ubyte.gz"
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes()[:100_000])
    with pytest.raises(SystemExit) as caught:
        download_mnist.main(["--data-dir", str(tmp_path)])
    message = str(caught.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert f"{tmp_path / shipped.name} is refused, truncated" in message
    assert not list(tmp_path.glob("*.npy")) and not temp_files(tmp_path)


def test_the_cli_rejects_an_unknown_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        download_mnist.main(["--dataset", "cifar10"])
    assert caught.value.code == 2
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err


# --- downloads over a real socket ------------------------------------------------------------


def test_a_download_falls_through_missing_and_corrupted_mirrors(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    data_dir = tmp_path / "data"
    lines: list[str] = []
    prepare_dataset(
        data_dir,
        tiny.spec,
        mirrors=[mirrors["missing"], mirrors["corrupt"], mirrors["good"]],
        log=lines.append,
    )
    assert_npy_equal(data_dir, tiny.arrays)
    for name, data in tiny.archives().items():  # the good copies are kept for next time
        assert (data_dir / name).read_bytes() == data
    first = tiny.spec.archives[0].file_name
    assert mirrors["paths"][:3] == [f"/missing/{first}", f"/corrupt/{first}", f"/good/{first}"]
    assert "    failed: HTTP 404 File not found" in lines
    assert any(line.startswith("    failed: content SHA-256 is") for line in lines)
    assert not temp_files(data_dir)


def test_a_truncated_download_is_refused(tmp_path: Path, tiny: TinyDataset, mirrors: dict) -> None:
    lines: list[str] = []
    prepare_dataset(
        tmp_path / "data",
        tiny.spec,
        mirrors=[mirrors["truncated"], mirrors["good"]],
        log=lines.append,
    )
    assert_npy_equal(tmp_path / "data", tiny.arrays)
    assert lines.count("    failed: truncated: the gzip stream ends early") == 4


def test_a_stalled_mirror_times_out(tmp_path: Path, tiny: TinyDataset, mirrors: dict) -> None:
    lines: list[str] = []
    prepare_dataset(
        tmp_path / "data",
        tiny.spec,
        mirrors=[mirrors["slow"], mirrors["good"]],
        timeout_seconds=0.1,
        log=lines.append,
    )
    assert_npy_equal(tmp_path / "data", tiny.arrays)
    assert "    failed: no complete answer within 0.1 s" in lines


def test_a_trickling_mirror_meets_the_attempts_deadline(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    lines: list[str] = []
    start_seconds = time.monotonic()
    prepare_dataset(
        tmp_path / "data",
        tiny.spec,
        mirrors=[mirrors["trickle"], mirrors["good"]],
        timeout_seconds=1.0,
        log=lines.append,
    )
    # A byte every 0.2 s never trips a per-read timeout; only a deadline per attempt stops it.
    assert time.monotonic() - start_seconds < 3.0
    assert_npy_equal(tmp_path / "data", tiny.arrays)
    assert "    failed: no complete answer within 1 s" in lines
    first = tiny.spec.archives[0].file_name
    assert mirrors["paths"][:2] == [f"/trickle/{first}", f"/good/{first}"]


def test_a_trickling_last_mirror_fails_in_time_and_keeps_the_old_files(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    data_dir = tmp_path / "data"
    write_npy_set(data_dir, sentinel_arrays())
    start_seconds = time.monotonic()
    message = r"trickle/train-images.*no complete answer within 0.5 s"
    with pytest.raises(DatasetError, match=message):
        prepare_dataset(
            data_dir,
            tiny.spec,
            mirrors=[mirrors["trickle"]],
            force=True,
            timeout_seconds=0.5,
            log=lambda line: None,
        )
    assert time.monotonic() - start_seconds < 2.5
    assert_npy_equal(data_dir, sentinel_arrays())
    assert not (data_dir / tiny.spec.archives[0].file_name).exists()
    assert not temp_files(data_dir)


def test_user_mirrors_come_before_the_datasets_own(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    spec = dataclasses.replace(tiny.spec, mirrors=(mirrors["good"],))
    prepare_dataset(tmp_path / "data", spec, mirrors=[mirrors["missing"]], log=lambda line: None)
    first = tiny.spec.archives[0].file_name
    assert mirrors["paths"][:2] == [f"/missing/{first}", f"/good/{first}"]
    assert_npy_equal(tmp_path / "data", tiny.arrays)


def test_when_every_mirror_fails_the_error_names_each_and_nothing_changes(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    data_dir = tmp_path / "data"
    write_npy_set(data_dir, sentinel_arrays())
    tried = [mirrors["missing"], mirrors["corrupt"], mirrors["truncated"]]
    with pytest.raises(DatasetError) as caught:
        prepare_dataset(data_dir, tiny.spec, mirrors=tried, force=True, log=lambda line: None)
    message = str(caught.value)
    first = tiny.spec.archives[0].file_name
    assert message.startswith(f"could not download {first} (") and "\n" not in message
    assert f"{mirrors['missing']}{first}: HTTP 404" in message
    assert f"{mirrors['corrupt']}{first}: content SHA-256 is" in message
    assert f"{mirrors['truncated']}{first}: truncated" in message
    assert "--mirror URL" in message
    assert_npy_equal(data_dir, sentinel_arrays())
    assert not (data_dir / first).exists() and not temp_files(data_dir)


def test_a_failed_first_download_leaves_no_empty_folder(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    data_dir = tmp_path / "new" / "data"
    with pytest.raises(DatasetError):
        prepare_dataset(data_dir, tiny.spec, mirrors=[mirrors["missing"]], log=lambda line: None)
    assert not data_dir.exists()


@pytest.mark.parametrize("as_url", [False, True], ids=["folder", "file-url"])
def test_a_local_folder_or_file_url_serves_as_a_mirror(
    tmp_path: Path, tiny: TinyDataset, as_url: bool
) -> None:
    folder = tmp_path / "copies"
    tiny.write_archives(folder)
    mirror = folder.as_uri() if as_url else str(folder)
    prepare_dataset(tmp_path / "data", tiny.spec, mirrors=[mirror], log=lambda line: None)
    assert_npy_equal(tmp_path / "data", tiny.arrays)


def test_the_progress_bar_line() -> None:
    line = download_mnist._format_progress("x.gz", 2_500_000, 10_000_000, width=8)
    assert line == "  x.gz [##......]  25% 2.5/10.0 MB"
    assert download_mnist._format_progress("x.gz", 1_500_000, 0) == "  x.gz 1.5 MB"


# --- the loader -------------------------------------------------------------------------------


def test_load_dataset_builds_missing_npy_files_then_loads_them(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    tiny.write_archives(tmp_path)
    arrays = load_dataset(tmp_path, tiny.spec)
    for name, array in zip(download_mnist.ARRAY_NAMES, arrays, strict=True):
        np.testing.assert_array_equal(array, tiny.arrays[name])
    for archive in tiny.spec.archives:  # from now on the .npy files alone are enough
        (tmp_path / archive.file_name).unlink()
    np.testing.assert_array_equal(load_dataset(tmp_path, tiny.spec)[0], tiny.arrays["train_images"])


def test_the_default_data_folders_sit_beside_the_module() -> None:
    module_dir = Path(download_mnist.__file__).resolve().parent
    assert download_mnist.default_data_dir("mnist") == module_dir / "mnist_data"
    assert download_mnist.default_data_dir("fashion") == module_dir / "fashion_mnist_data"
    with pytest.raises(DatasetError, match="unknown dataset 'digits'"):
        download_mnist.default_data_dir("digits")


def npy_header_only(header: dict, version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file's magic string and header with no data after it."""
    buffer = io.BytesIO()
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buffer, header)
        return buffer.getvalue()
    return np.lib.format.magic(*version) + b"\x10\x00{'descr': '|u1'}\n"


def _save_altered(change):
    return lambda path, array: np.save(path, change(array))


def _edit_bytes(change):
    return lambda path, array: path.write_bytes(change(path.read_bytes()))


def _replace_by(make):
    def replace(path: Path, array: np.ndarray) -> None:
        path.unlink()
        make(path)

    return replace


def _save_npz(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as file:
        np.savez(file, labels=array)


def _save_pickled_objects(path: Path, array: np.ndarray) -> None:
    np.save(path, np.array([{"not": "data"}] * len(array), dtype=object), allow_pickle=True)


def _write_huge_header(path: Path, array: np.ndarray) -> None:
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**12, 28, 28)}
    path.write_bytes(npy_header_only(header) + b"\0" * 64)


def _write_huge_header_length(path: Path, array: np.ndarray) -> None:
    header_bytes = 2**31  # a version 2.0 header may claim up to 4 GiB
    with path.open("wb") as file:
        file.write(np.lib.format.magic(2, 0) + header_bytes.to_bytes(4, "little"))
        file.truncate(header_bytes + 100)  # a sparse file: reading the header would take 2 GiB


def _set_label_10(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    labels[1] = 10
    return labels


BAD_NPY_FILES = {  # id: (array name, how to damage its file, the message expected)
    "dtype": (
        "train_images",
        _save_altered(lambda array: array.astype(np.float32)),
        r"holds float32 \(12, 28, 28\), expected uint8 images of shape \(12, 28, 28\)",
    ),
    "image-shape": (
        "test_images",
        _save_altered(lambda array: array[:, :, :27]),
        r"holds uint8 \(5, 28, 27\), expected uint8 images of shape \(5, 28, 28\)",
    ),
    "label-shape": (
        "train_labels",
        _save_altered(lambda array: array[:, None]),
        r"holds uint8 \(12, 1\), expected uint8 labels of shape \(12,\)",
    ),
    "int64-labels": (
        "train_labels",
        _save_altered(lambda array: array.astype(np.int64)),
        r"holds int64 \(12,\), expected uint8 labels of shape \(12,\)",
    ),
    "label-range": ("train_labels", _save_altered(_set_label_10), r"holds other data than"),
    "count": (
        "test_labels",
        _save_altered(lambda array: array[:4]),
        r"holds uint8 \(4,\), expected uint8 labels of shape \(5,\)",
    ),
    "no-images": (
        "test_images",
        _save_altered(lambda array: array[:0]),
        r"holds uint8 \(0, 28, 28\), expected",
    ),
    "fortran-order": (
        "train_images",
        _save_altered(np.asfortranarray),
        r"is in Fortran order, expected C order",
    ),
    "pickle": ("test_labels", _save_pickled_objects, r"holds object \(5,\), expected uint8"),
    "huge-header": (
        "train_images",
        _write_huge_header,
        r"holds uint8 \(1000000000000, 28, 28\), expected uint8 images of shape \(12, 28, 28\)",
    ),
    "huge-header-length": (
        "test_images",
        _write_huge_header_length,
        r"has a damaged \.npy header \(EOF: reading array header, expected 2147483648 bytes",
    ),
    "truncated": (
        "train_images",
        _edit_bytes(lambda data: data[:-1]),
        r"is truncated: its header promises 9408 bytes of data, the file holds 9407",
    ),
    "padded": (
        "train_labels",
        _edit_bytes(lambda data: data + b"\0"),
        r"has 1 byte more than its header promises",
    ),
    "empty-file": ("test_labels", _edit_bytes(lambda data: b""), r"is empty"),
    "not-npy": (
        "test_labels",
        _edit_bytes(lambda data: b"0,1,2,3,4\n"),
        r"is not a \.npy file \(it does not start with",
    ),
    "bad-header": (
        "test_labels",
        _edit_bytes(lambda data: data[:10] + b"{'descr': what" + data[24:]),
        r"has a damaged \.npy header",
    ),
    "npy-version-3": (
        "test_labels",
        _edit_bytes(lambda data: npy_header_only({}, version=(3, 0))),
        r"uses \.npy format version 3\.0, expected 1\.0 or 2\.0",
    ),
    "npz": ("train_labels", _save_npz, r"is a zip archive \(an \.npz\?\), not a \.npy file"),
    "altered": (
        "test_labels",
        _save_altered(lambda array: np.roll(array, 1)),
        r"holds other data than the dataset's test_labels \(content SHA-256 [0-9a-f]{16}\.\.\., "
        r"expected [0-9a-f]{16}\.\.\.\)",
    ),
    "dev-zero": (
        "train_images",
        _replace_by(lambda path: path.symlink_to("/dev/zero")),
        r"is a character device, not a regular file: remove it, then run",
    ),
    "fifo": ("train_labels", _replace_by(os.mkfifo), r"is a FIFO, not a regular file: remove it"),
    "directory": (
        "test_images",
        _replace_by(Path.mkdir),
        r"is a directory, not a regular file: remove it",
    ),
}


@pytest.mark.parametrize(("name", "damage", "message"), BAD_NPY_FILES.values(), ids=BAD_NPY_FILES)
def test_load_dataset_refuses_bad_npy_files_in_one_line(
    tmp_path: Path, tiny: TinyDataset, name: str, damage, message: str
) -> None:
    write_npy_set(tmp_path, tiny.arrays)
    path = tmp_path / f"{name}.npy"
    damage(path, tiny.arrays[name])
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(tmp_path, tiny.spec)
    text = str(caught.value)
    assert text.startswith(f"{path} ") and "\n" not in text
    assert f"run `python download_mnist.py --dataset tiny --data-dir {tmp_path} --force`" in text


def test_load_dataset_refuses_real_mnist_labels_shifted_by_one(tmp_path: Path) -> None:
    mnist_dir = download_mnist.default_data_dir("mnist")
    load_dataset(mnist_dir)  # builds the .npy files from the shipped archives if need be
    for name in ("train_images", "train_labels", "test_images"):
        (tmp_path / f"{name}.npy").symlink_to(mnist_dir / f"{name}.npy")
    test_labels = np.load(mnist_dir / "test_labels.npy")
    np.save(tmp_path / "test_labels.npy", np.roll(test_labels, 1))
    with pytest.raises(DatasetError, match=r"test_labels\.npy holds other data than the dataset"):
        load_dataset(tmp_path)


def replace_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` over ``path`` as a new file (a new inode), as an editor would."""
    temp_path = path.with_name(f"new-{path.name}")
    np.save(temp_path, array)
    os.replace(temp_path, path)


def test_load_dataset_hashes_each_file_once_until_it_changes(
    tmp_path: Path, tiny: TinyDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_npy_set(tmp_path, tiny.arrays)
    hashed_shapes = []
    idx_sha256 = download_mnist._idx_sha256

    def counting_idx_sha256(array: np.ndarray) -> str:
        hashed_shapes.append(array.shape)
        return idx_sha256(array)

    monkeypatch.setattr(download_mnist, "_idx_sha256", counting_idx_sha256)
    load_dataset(tmp_path, tiny.spec)
    assert len(hashed_shapes) == 4
    load_dataset(tmp_path, tiny.spec)
    assert len(hashed_shapes) == 4  # nothing changed, nothing hashed again
    labels_path = tmp_path / "test_labels.npy"
    replace_npy(labels_path, np.roll(tiny.arrays["test_labels"], 1))
    with pytest.raises(DatasetError, match="holds other data"):
        load_dataset(tmp_path, tiny.spec)
    assert hashed_shapes[4:] == [(5,)]
    replace_npy(labels_path, tiny.arrays["test_labels"])
    np.testing.assert_array_equal(load_dataset(tmp_path, tiny.spec)[3], tiny.arrays["test_labels"])
    assert hashed_shapes[5:] == [(5,)]


def test_load_dataset_checks_real_mnist_in_a_fraction_of_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mnist_dir = download_mnist.default_data_dir("mnist")
    load_dataset(mnist_dir)  # builds the .npy files if need be, and reads them once
    monkeypatch.setattr(download_mnist, "_VERIFIED_FILES", set())  # as in a fresh process
    start_seconds = time.perf_counter()
    load_dataset(mnist_dir)
    assert time.perf_counter() - start_seconds < 1.0
    assert len(download_mnist._VERIFIED_FILES) == 4


# --- the command line and hostile paths ------------------------------------------------------


@pytest.mark.parametrize("argv", [["--forc"], ["--data", "somewhere"], ["--mirr", "x"]])
def test_the_cli_refuses_abbreviated_options(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{argv} was taken for a full option")

    monkeypatch.setattr(download_mnist, "prepare_dataset", must_not_run)
    with pytest.raises(SystemExit) as caught:
        download_mnist.main(argv)
    assert caught.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_data_folder_that_is_a_file_is_refused(tmp_path: Path, tiny: TinyDataset) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_bytes(b"my notes")
    message = rf"{not_a_folder} is a regular file, not a folder: choose another --data-dir"
    with pytest.raises(DatasetError, match=message):
        prepare_dataset(not_a_folder, tiny.spec, log=lambda line: None)
    with pytest.raises(DatasetError, match=message):
        load_dataset(not_a_folder, tiny.spec)
    assert not_a_folder.read_bytes() == b"my notes"


def test_a_data_folder_that_cannot_be_looked_into_is_refused_in_one_line(tmp_path: Path) -> None:
    too_long = tmp_path / ("x" * 300)  # longer than any file name may be
    with pytest.raises(SystemExit) as caught:
        download_mnist.main(["--data-dir", str(too_long)])
    message = str(caught.value.code)
    assert message.startswith(f"error: cannot look into {too_long} (") and "\n" not in message
    assert "File name too long" in message
    with pytest.raises(DatasetError, match="cannot look into"):
        load_dataset(too_long)


def test_a_mirror_folder_that_is_a_symlink_loop_is_just_a_failed_mirror(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    good = tmp_path / "good"
    tiny.write_archives(good)
    lines: list[str] = []
    prepare_dataset(tmp_path / "data", tiny.spec, mirrors=[loop, good], log=lines.append)
    assert_npy_equal(tmp_path / "data", tiny.arrays)
    assert any(line.startswith("    failed: [Errno 40] Too many levels") for line in lines)


def test_a_local_archive_larger_than_any_copy_is_refused_unread(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    tiny.write_archives(tmp_path)
    archive = tiny.spec.archives[0]
    too_long = archive.content_bytes + archive.content_bytes // 100 + 1025
    with (tmp_path / archive.file_name).open("r+b") as file:
        file.truncate(too_long)  # a sparse file: it would be read into memory whole
    with pytest.raises(DatasetError, match=rf"is refused, {too_long} bytes long, more than"):
        prepare_dataset(tmp_path, tiny.spec, log=lambda line: None)


def release_fifo_after(path: Path, seconds: float) -> threading.Thread:
    """Open ``path`` (a FIFO) for writing after ``seconds``, so a reader blocked on it ends."""

    def open_and_close() -> None:
        time.sleep(seconds)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading: nothing to release

    thread = threading.Thread(target=open_and_close, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_read_idx_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "labels.idx"
    if kind == "fifo":
        os.mkfifo(path)
        release_fifo_after(path, 1.0)  # before the check, open() would wait for a writer
        expected = "a FIFO"
    else:
        path.symlink_to("/dev/zero")
        expected = "a character device"
    with pytest.raises(DatasetError, match=rf"{path} is {expected}, not a regular file"):
        read_idx(path)


def test_read_idx_refuses_dimensions_whose_product_overflows(tmp_path: Path) -> None:
    path = tmp_path / "images.idx"
    dims = (2**31, 2**31, 4)  # 2**64 bytes: 0 in int64 arithmetic, matching an empty body
    path.write_bytes(b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in dims))
    with pytest.raises(DatasetError, match=r"promises shape \(2147483648, 2147483648, 4\)"):
        read_idx(path)


def test_only_the_missing_npy_file_is_built_and_only_its_archive_fetched(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    """Three .npy files are there (the user's, recognisable), one is missing and so are the
    archives: the one archive is downloaded, the one file written, the other three untouched."""
    data = tmp_path / "data"
    write_npy_set(data, sentinel_arrays())
    (data / "test_labels.npy").unlink()
    before = {path.name: path.stat().st_mtime_ns for path in data.iterdir()}
    lines: list[str] = []
    prepare_dataset(data, tiny.spec, mirrors=[mirrors["good"]], log=lines.append)
    test_labels_archive = next(
        a.file_name for a in tiny.spec.archives if a.array_name == "test_labels"
    )
    assert mirrors["paths"] == [f"/good/{test_labels_archive}"]
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".npy") == sorted(
        f"{name}.npy" for name in download_mnist.ARRAY_NAMES
    )
    kept = {name: array for name, array in sentinel_arrays().items() if name != "test_labels"}
    assert_npy_equal(data, kept)
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir() if p.name in before} == before
    assert_npy_equal(data, {"test_labels": tiny.arrays["test_labels"]})
    assert "building the missing .npy files" in lines[0] and "test_labels.npy" in lines[0]
    assert not temp_files(data)
    # --force rebuilds all four, from all four archives.
    prepare_dataset(data, tiny.spec, mirrors=[mirrors["good"]], force=True, log=lambda line: None)
    assert_npy_equal(data, tiny.arrays)
    assert len(mirrors["paths"]) == 4


# --- clear messages: redirect loops, FIFOs at a local mirror, file names with line breaks ----


def test_a_mirror_that_redirects_in_a_loop_is_one_line_of_the_error(
    tmp_path: Path, tiny: TinyDataset, mirrors: dict
) -> None:
    lines: list[str] = []
    with pytest.raises(DatasetError) as caught:
        prepare_dataset(tmp_path / "data", tiny.spec, mirrors=[mirrors["loop"]], log=lines.append)
    message = str(caught.value)
    assert "\n" not in message and "\n" not in "".join(lines)  # was three lines
    first = tiny.spec.archives[0].file_name
    assert f"{mirrors['loop']}{first}: HTTP 302: it redirects in a loop" in message


def test_an_archive_that_is_a_fifo_at_a_local_mirror_is_refused_at_once(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    """Opening a FIFO waits for a writer: the download waited its whole deadline (30 s)."""
    folder = tmp_path / "mirror"
    tiny.write_archives(folder)
    first = folder / tiny.spec.archives[0].file_name
    first.unlink()
    os.mkfifo(first)
    release_fifo_after(first, 10.0)  # should the check fail, the test still ends
    good = tmp_path / "good"
    tiny.write_archives(good)
    lines: list[str] = []
    start = time.monotonic()
    prepare_dataset(
        tmp_path / "data", tiny.spec, mirrors=[folder, good], timeout_seconds=20, log=lines.append
    )
    assert time.monotonic() - start < 5
    assert "    failed: a FIFO, not a regular file" in lines
    assert_npy_equal(tmp_path / "data", tiny.arrays)


def test_a_folder_name_with_a_line_break_keeps_every_line_whole(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "my\ndata"
    tiny.write_archives(data_dir)
    spec = dataclasses.replace(tiny.spec, name="tiny")
    download_mnist.DATASETS["tiny"] = spec
    try:
        prepare_dataset(data_dir, spec)  # logs with print_line, as the program does
        assert download_mnist.main(["--dataset", "tiny", "--data-dir", str(data_dir)]) == 0
        out = capsys.readouterr().out
        for line in out.splitlines():
            assert not line.startswith("data"), f"a line was split: {out!r}"
        assert "my\\ndata" in out
        (data_dir / tiny.spec.archives[0].file_name).write_bytes(b"damaged")
        for path in data_dir.glob("*.npy"):
            path.unlink()
        with pytest.raises(SystemExit) as caught:
            download_mnist.main(["--dataset", "tiny", "--data-dir", str(data_dir)])
    finally:
        del download_mnist.DATASETS["tiny"]
    assert "\n" not in str(caught.value.code) and "my\\ndata" in str(caught.value.code)


def test_read_idx_stops_at_what_the_header_promises(tmp_path: Path) -> None:
    """A small gzip can decompress to gigabytes: read_idx reads no more than the header
    promises, and refuses a promise beyond the memory the process may use."""
    path = tmp_path / "bomb.idx.gz"
    header = b"\0\0\x08\x01" + (10).to_bytes(4, "big")
    with gzip.open(path, "wb", compresslevel=1) as file:
        file.write(header + bytes(10))
        for _ in range(64):  # 1 GB more
            file.write(bytes(1 << 24))
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"decompresses to more than the 18 bytes"):
        read_idx(path)
    assert time.monotonic() - start < 1
    huge = tmp_path / "huge.idx.gz"
    huge.write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3))
    with pytest.raises(DatasetError, match=r"promises shape .* more than the .* may use"):
        read_idx(huge)


def test_a_mirror_url_with_a_line_break_is_one_line_of_the_error(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    """DatasetError's message is one line whatever it names, for a caller of the API too."""
    lines: list[str] = []
    with pytest.raises(DatasetError) as caught:
        prepare_dataset(
            tmp_path / "data", tiny.spec, mirrors=["http://127.0.0.1:9/a\nb/"], log=lines.append
        )
    assert "\n" not in str(caught.value) and "a\\nb" in str(caught.value)
    assert not any("\n" in line for line in lines)
