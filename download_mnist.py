"""MNIST and Fashion-MNIST as NumPy arrays: shipped archives, checksums, mirrors and the loader.

The four MNIST archives ship in ``mnist_data/``, so training needs no network. This module turns
them into ``train_images.npy``, ``train_labels.npy``, ``test_images.npy`` and ``test_labels.npy``
after checking every archive's SHA-256, downloads an archive that is missing from a list of public
mirrors, and loads the arrays for the training driver, checking each .npy file's header before its
data and its data against the same SHA-256::

    x_train, y_train, x_test, y_test = load_dataset()  # builds the .npy files on first use

Command line (``python download_mnist.py --help``)::

    python download_mnist.py                      # build mnist_data/*.npy from the shipped archives
    python download_mnist.py --dataset fashion    # Fashion-MNIST into fashion_mnist_data/
    python download_mnist.py --mirror URL_OR_DIR  # try this mirror (or local folder) first
    python download_mnist.py --force              # rebuild all four .npy files even if they exist

Only NumPy and the standard library: importing this module stays fast and never imports TensorFlow.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from plumbing.atomic_write import FileWriteError, write_atomically
from plumbing.checks import file_kind, one_line, printable
from plumbing.command_line import ArgumentParser
from plumbing.memory import memory_available
from plumbing.npy_header import NpyHeaderError, read_npy_header

PROJECT_DIR = Path(__file__).resolve().parent
ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
DEFAULT_TIMEOUT_SECONDS = 30.0
# Fashion-MNIST's classes 0-9, in label order (MNIST's classes are the digits themselves).
FASHION_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: (N,)
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: (N, rows, cols)
_DOWNLOAD_CHUNK_BYTES = 1 << 16
# .npy files whose content matched its digest, as (st_dev, st_ino, st_size, st_mtime_ns,
# st_ctime_ns, digest): any change to a file gives it a new key, so it is hashed again.
_VERIFIED_FILES: set[tuple[int | str, ...]] = set()


class DatasetError(ValueError):
    """A dataset file is missing, damaged or unreachable; the message is one line with the fix
    (a path or URL with a line break in it included: see plumbing.checks.one_line)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class _BadArchive(Exception):
    """Why one copy of an archive was refused (a reason without the file name, for the caller)."""


@dataclass(frozen=True)
class ArchiveSpec:
    """One gzipped IDX archive and the array it becomes.

    ``content_sha256`` decides: it is the SHA-256 of the decompressed IDX file, which is exactly
    what the .npy is built from. The same content can be gzipped in many ways (the shipped MNIST
    archives and the Debian Fashion-MNIST ones are recompressions of the public files), so an
    archive's own SHA-256 cannot reject a correct copy from another mirror; the known archive
    digests in ``known_archives`` only say where a copy comes from.
    """

    array_name: str  # "train_images" -> train_images.npy
    file_name: str  # "train-images-idx3-ubyte.gz"
    content_sha256: str
    content_bytes: int  # size of the decompressed IDX file; bounds the decompression
    known_archives: Mapping[str, str] = field(default_factory=dict)  # .gz SHA-256 -> origin


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its default folder, its mirrors (tried in order) and its four archives."""

    name: str  # the --dataset value
    title: str
    dir_name: str  # default folder, relative to this module's directory
    mirrors: tuple[str, ...]
    archives: tuple[ArchiveSpec, ...]  # one per name in ARRAY_NAMES


_MNIST_SHIPPED = "the copy shipped in mnist_data/, a recompression of the original"
_MNIST_PUBLIC = "the original public archive"
# mnist_data/SHA256SUMS and SHA256SUMS.raw hold the same digests for `sha256sum -c`.
MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    dir_name="mnist_data",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's copy
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's copy
        "http://yann.lecun.com/exdb/mnist/",  # the original; often refuses downloads now
    ),
    archives=(
        ArchiveSpec(
            "train_images",
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47_040_016,
            {
                "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971": _MNIST_SHIPPED,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609": _MNIST_PUBLIC,
            },
        ),
        ArchiveSpec(
            "train_labels",
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60_008,
            {
                "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203": _MNIST_SHIPPED,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c": _MNIST_PUBLIC,
            },
        ),
        ArchiveSpec(
            "test_images",
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7_840_016,
            {
                "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be": _MNIST_SHIPPED,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6": _MNIST_PUBLIC,
            },
        ),
        ArchiveSpec(
            "test_labels",
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10_008,
            {
                "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b": _MNIST_SHIPPED,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6": _MNIST_PUBLIC,
            },
        ),
    ),
)

# Zalando publishes only MD5 sums of its .gz files; the content digests below are those of the
# IDX files inside them, and the Debian/Ubuntu package's recompressed archives hold the same bytes.
_FASHION_DEBIAN = "the Debian dataset-fashion-mnist package's copy, a recompression of the original"
FASHION_MNIST = DatasetSpec(
    name="fashion",
    title="Fashion-MNIST",
    dir_name="fashion_mnist_data",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's own
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' copy
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    archives=(
        ArchiveSpec(
            "train_images",
            "train-images-idx3-ubyte.gz",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            47_040_016,
            {"b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7": _FASHION_DEBIAN},
        ),
        ArchiveSpec(
            "train_labels",
            "train-labels-idx1-ubyte.gz",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            60_008,
            {"0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056": _FASHION_DEBIAN},
        ),
        ArchiveSpec(
            "test_images",
            "t10k-images-idx3-ubyte.gz",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            7_840_016,
            {"cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa": _FASHION_DEBIAN},
        ),
        ArchiveSpec(
            "test_labels",
            "t10k-labels-idx1-ubyte.gz",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            10_008,
            {"8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05": _FASHION_DEBIAN},
        ),
    ),
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


# ---------------------------------------------------------------------------------------------
# The IDX format: a big-endian header (magic number, one uint32 per dimension), then the bytes.
# ---------------------------------------------------------------------------------------------


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file of unsigned bytes.

    Parameters
    ----------
    data : bytes
        The whole IDX file.
    source : str
        What to call the file in error messages (usually its path).

    Returns
    -------
    ndarray of uint8, shape (N,) for labels or (N, rows, cols) for images
        A read-only view of ``data``.

    Raises
    ------
    DatasetError
        Bad magic number, a header cut short, or a data length that differs from the header's.
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: only {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
        raise DatasetError(
            f"{source}: bad magic number 0x{magic:08x}, expected 0x{IDX_LABELS_MAGIC:08x} "
            f"(labels) or 0x{IDX_IMAGES_MAGIC:08x} (images): not an IDX file of bytes"
        )
    ndim = data[3]  # the low byte of the magic number counts the dimensions
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise DatasetError(f"{source}: header cut short ({len(data)} of {header_bytes} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_bytes = header_bytes + math.prod(shape)  # Python ints: np.prod would overflow
    if len(data) != expected_bytes:
        raise DatasetError(
            f"{source}: header promises shape {shape} ({expected_bytes} bytes in all) "
            f"but the file has {len(data)} bytes: it is truncated or padded"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped (name ends in .gz) or not; no checksum.

    Returns
    -------
    ndarray of uint8, shape (N,) for labels or (N, rows, cols) for images
    """
    path = Path(path)
    try:
        with _open_regular_file(path) as file:
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=file) as stream:
                    data = _read_idx_bytes(stream, path)
            else:
                data = _read_idx_bytes(file, path, os.fstat(file.fileno()).st_size)
    except EOFError:
        raise DatasetError(f"{path}: truncated gzip archive") from None
    except (OSError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path}: {_reason(exc)}") from None
    return parse_idx(data, str(path)).copy()  # a writable array, independent of the file bytes


def _read_idx_bytes(stream: BinaryIO, path: Path, file_bytes: int | None = None) -> bytes:
    """An IDX file's bytes for parse_idx, read no further than its header promises, and only
    when that fits in the memory this process may use: a small gzip can decompress to
    gigabytes. ``file_bytes`` is the size of an uncompressed file (read whole: parse_idx then
    says by how much it differs from the promise)."""
    head = stream.read(4)
    if len(head) < 4 or int.from_bytes(head, "big") not in (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
        return head  # parse_idx says what is wrong with it
    head += stream.read(4 * head[3])
    if len(head) < 4 + 4 * head[3]:
        return head
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(head[3]))
    promised = len(head) + math.prod(shape)
    limit = memory_available()
    if min(promised, file_bytes or promised) > limit.bytes:
        raise DatasetError(
            f"{path}: header promises shape {shape} ({promised} bytes in all), more than the "
            f"{limit.describe()} this process may use"
        )
    if file_bytes is not None:
        return head + stream.read()
    data = head + stream.read(promised - len(head) + 1)
    if len(data) > promised:
        raise DatasetError(
            f"{path}: decompresses to more than the {promised} bytes its header promises "
            f"(shape {shape}): it is padded"
        )
    return data


def _idx_sha256(array: np.ndarray) -> str:
    """The SHA-256 of the IDX file that holds ``array``: what ``ArchiveSpec.content_sha256`` is.

    Parameters
    ----------
    array : ndarray of uint8, shape (N,) for labels or (N, rows, cols) for images, C order
    """
    magic = 0x00000800 + array.ndim  # unsigned bytes, then the number of dimensions
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    digest = hashlib.sha256(header)
    digest.update(array)  # the IDX body is exactly the array's bytes, row-major
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Checks: an archive's content against its SHA-256, and the four arrays against each other.
# ---------------------------------------------------------------------------------------------


def _check_archive(archive: bytes, spec: ArchiveSpec) -> tuple[bytes, str]:
    """Decompress one gzipped archive and check its content's size and SHA-256.

    Returns
    -------
    content : bytes
        The decompressed IDX file, ``spec.content_bytes`` long.
    origin : str
        Where this exact archive comes from, when its own digest is a known one.

    Raises
    ------
    _BadArchive
        With the reason (truncated, not gzip, wrong size, wrong SHA-256).
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(archive)) as stream:
            # One byte more than expected is enough to tell "too long", without inflating a bomb.
            content = stream.read(spec.content_bytes + 1)
    except EOFError:
        raise _BadArchive("truncated: the gzip stream ends early") from None
    except (OSError, zlib.error) as exc:
        raise _BadArchive(f"not a valid gzip archive ({_reason(exc)})") from None
    if len(content) != spec.content_bytes:
        size = "more than" if len(content) > spec.content_bytes else f"only {len(content)} of"
        raise _BadArchive(f"decompresses to {size} the expected {spec.content_bytes} bytes")
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.content_sha256:
        raise _BadArchive(
            f"content SHA-256 is {digest[:16]}..., expected {spec.content_sha256[:16]}..."
        )
    origin = spec.known_archives.get(
        hashlib.sha256(archive).hexdigest(), "compressed differently from the copies recorded here"
    )
    return content, origin


def _check_arrays(
    arrays: Mapping[str, np.ndarray], sources: Mapping[str, object], fix: str
) -> None:
    """Check the four arrays: uint8, shapes (N, 28, 28) and (N,), labels 0-9, N images = N labels.

    Parameters
    ----------
    arrays : mapping of "train_images", "train_labels", "test_images", "test_labels" to ndarray
    sources : mapping of the same names to what each array was read from (for the message)
    fix : str
        What the user should do, appended to the message.

    Raises
    ------
    DatasetError
        The first problem found, naming the file.
    """
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_source, labels_source = sources[f"{split}_images"], sources[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DatasetError(
                f"{images_source} holds {images.dtype} {images.shape}, expected uint8 images "
                f"of shape (N, 28, 28): {fix}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(
                f"{labels_source} holds {labels.dtype} {labels.shape}, expected uint8 labels "
                f"of shape (N,): {fix}"
            )
        if len(images) == 0:
            raise DatasetError(f"{images_source} holds no images: {fix}")
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_source} holds {len(images)} images but {labels_source} holds "
                f"{len(labels)} labels: {fix}"
            )
        if labels.max() >= NUM_CLASSES:
            raise DatasetError(
                f"{labels_source} holds label {labels.max()}, expected labels 0-9: {fix}"
            )


# ---------------------------------------------------------------------------------------------
# The .npy files: the header is checked before any data is read, then the data's SHA-256.
# ---------------------------------------------------------------------------------------------


def _npy_shape(spec: ArchiveSpec) -> tuple[int, ...]:
    """The shape of the array an archive holds: (N, 28, 28) images or (N,) labels.

    N follows from ``spec.content_bytes``: the IDX header (magic number, one uint32 per
    dimension) and then one byte per pixel or label.
    """
    item_shape = IMAGE_SHAPE if spec.array_name.endswith("_images") else ()
    header_bytes = 4 + 4 * (1 + len(item_shape))
    return ((spec.content_bytes - header_bytes) // math.prod(item_shape), *item_shape)


def _read_npy(path: Path, spec: ArchiveSpec, fix: str) -> np.ndarray:
    """Read one of a dataset's .npy files, refusing it unless it holds exactly ``spec``'s content.

    Returns
    -------
    ndarray of uint8, shape (N, 28, 28) for images or (N,) for labels (``_npy_shape(spec)``)

    Raises
    ------
    DatasetError
        Not a regular file, a header or length that is not ``_npy_shape(spec)`` of uint8
        (checked before any data is read), or data whose IDX SHA-256 is not
        ``spec.content_sha256``.
    """
    with _open_regular_file(path, fix=f"remove it, then {fix}") as file:
        file_stat = os.fstat(file.fileno())
        _check_npy_header(file, file_stat.st_size, path, spec, fix)
        array = np.empty(_npy_shape(spec), np.uint8)
        if file.readinto(array.reshape(-1)) != array.nbytes:
            raise DatasetError(f"{path} was cut short while it was read: {fix}")
    _verify_content(path, array, file_stat, spec, fix)
    return array


def _check_npy_header(
    file: BinaryIO, file_bytes: int, path: Path, spec: ArchiveSpec, fix: str
) -> None:
    """Check that a .npy file of ``file_bytes`` holds ``_npy_shape(spec)`` uint8 in C order.

    Reads only the header, leaving ``file`` at the first data byte; the file's length must be
    the header's plus exactly the array's bytes.
    """
    if file_bytes == 0:
        raise DatasetError(f"{path} is empty: {fix}")
    expected_shape = _npy_shape(spec)
    data_bytes = math.prod(expected_shape)
    try:
        header = read_npy_header(file)
    except NpyHeaderError as exc:
        raise DatasetError(f"{path} {exc}: {fix}") from None
    if header.dtype != np.uint8 or header.shape != expected_shape:
        kind = "images" if len(expected_shape) == 3 else "labels"
        raise DatasetError(
            f"{path} holds {header.dtype} {header.shape}, expected uint8 {kind} of shape "
            f"{expected_shape}: {fix}"
        )
    if header.fortran_order:
        raise DatasetError(f"{path} is in Fortran order, expected C order: {fix}")
    found_bytes = file_bytes - file.tell()
    if found_bytes < data_bytes:
        raise DatasetError(
            f"{path} is truncated: its header promises {data_bytes} bytes of data, "
            f"the file holds {found_bytes}: {fix}"
        )
    if found_bytes > data_bytes:
        extra = found_bytes - data_bytes
        raise DatasetError(
            f"{path} has {extra} byte{'s' if extra > 1 else ''} more than its header promises: "
            f"{fix}"
        )


def _verify_content(
    path: Path, array: np.ndarray, file_stat: os.stat_result, spec: ArchiveSpec, fix: str
) -> None:
    """Check ``array`` (read from ``path``) against ``spec.content_sha256``, once per file state.

    A file that passed is remembered by its identity, size and times for the life of the
    process, so loading the same unchanged file again costs no hashing.
    """
    key = (
        file_stat.st_dev,
        file_stat.st_ino,
        file_stat.st_size,
        file_stat.st_mtime_ns,
        file_stat.st_ctime_ns,  # unlike mtime, no user can set it back
        spec.content_sha256,
    )
    if key in _VERIFIED_FILES:
        return
    digest = _idx_sha256(array)
    if digest != spec.content_sha256:
        raise DatasetError(
            f"{path} holds other data than the dataset's {spec.array_name} (content SHA-256 "
            f"{digest[:16]}..., expected {spec.content_sha256[:16]}...): {fix}"
        )
    _VERIFIED_FILES.add(key)


# ---------------------------------------------------------------------------------------------
# Files: atomic writes, mirrors and downloads.
# ---------------------------------------------------------------------------------------------


def _open_regular_file(path: Path, fix: str = "") -> BinaryIO:
    """Open ``path`` for reading in binary if it is a regular file (symlinks followed).

    Raises
    ------
    DatasetError
        ``path`` cannot be opened, or is a FIFO, device, directory...: those could block or
        never end. ``fix``, when given, ends the message.
    """
    try:
        # O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {_reason(exc)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DatasetError(
            f"{path} is {file_kind(mode)}, not a regular file" + (f": {fix}" if fix else "")
        )
    return os.fdopen(fd, "rb")


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically (atomic_write.write_atomically, the project's one helper): an
    interrupted or failed write leaves the old file (or none); a temporary left by a killed
    build is removed by the next."""
    try:
        write_atomically(path, write)
    except FileWriteError as exc:  # its message names the path and the reason already
        raise DatasetError(str(exc)) from None
    except OSError as exc:  # a full disk
        raise DatasetError(f"cannot write {path}: {_reason(exc)}") from None


def _format_progress(label: str, done_bytes: int, total_bytes: int, width: int = 30) -> str:
    """One line of the download progress bar, e.g. ``name [######........]  40% 3.9/9.9 MB``.

    ``total_bytes`` is 0 when the server did not say how long the file is.
    """
    done_mb = done_bytes / 1e6
    if total_bytes <= 0:
        return f"  {label} {done_mb:.1f} MB"
    fraction = min(done_bytes / total_bytes, 1.0)
    filled = int(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    return f"  {label} [{bar}] {fraction:4.0%} {done_mb:.1f}/{total_bytes / 1e6:.1f} MB"


def _download(url: str, label: str, max_bytes: int, timeout_seconds: float) -> bytes:
    """Fetch ``url`` into memory within ``timeout_seconds`` in all, connecting included.

    A socket timeout bounds each read only, and a mirror that trickles a byte every few seconds
    never trips it; so the attempt runs in a helper thread that is abandoned at the deadline
    (it stops at its next read). The progress bar is drawn on stderr when it is a terminal.

    Raises
    ------
    TimeoutError
        No complete answer within ``timeout_seconds``.
    _BadArchive, OSError, ValueError, http.client.HTTPException
        The attempt failed sooner (see ``_fetch_archive``).
    """
    progress = _ProgressLine(label)
    stop = threading.Event()
    outcome: list[bytes | BaseException] = []  # the answer, or what ended the attempt

    def attempt() -> None:
        try:
            outcome.append(_read_url(url, max_bytes, timeout_seconds, progress, stop))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, name=f"download {label}", daemon=True)
    worker.start()
    try:
        worker.join(timeout_seconds)
    finally:
        stop.set()
        progress.end()
    if not outcome:
        raise TimeoutError(_no_answer(timeout_seconds))
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _read_url(
    url: str,
    max_bytes: int,
    timeout_seconds: float,
    progress: _ProgressLine,
    stop: threading.Event,
) -> bytes:
    """``_download``'s helper thread: read ``url`` to its end, unless ``stop`` is set first."""
    chunks: list[bytes] = []
    done_bytes = 0
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
        total_bytes = int(response.headers.get("Content-Length") or 0)
        # read1 returns what one read brings, so even a trickle of bytes reaches the stop check.
        while chunk := response.read1(_DOWNLOAD_CHUNK_BYTES):
            if stop.is_set():
                raise TimeoutError(_no_answer(timeout_seconds))
            done_bytes += len(chunk)
            if done_bytes > max_bytes:
                raise _BadArchive(f"larger than {max_bytes} bytes: not the expected archive")
            chunks.append(chunk)
            progress.show(done_bytes, total_bytes)
    return b"".join(chunks)


class _ProgressLine:
    """A download's progress bar on stderr, drawn only when stderr is a terminal.

    The helper thread draws it and the caller ends it; the lock keeps a late update from
    drawing after the end.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.drawn = False
        self.lock = threading.Lock()

    def show(self, done_bytes: int, total_bytes: int) -> None:
        with self.lock:
            if self.enabled:
                sys.stderr.write("\r" + _format_progress(self.label, done_bytes, total_bytes))
                sys.stderr.flush()
                self.drawn = True

    def end(self) -> None:
        with self.lock:
            if self.drawn:
                sys.stderr.write("\n")  # end the bar's line, even when the download failed
            self.enabled = self.drawn = False


def _no_answer(timeout_seconds: float) -> str:
    """Why an attempt that ran out of time failed."""
    return f"no complete answer within {timeout_seconds:g} s"


def _max_archive_bytes(spec: ArchiveSpec) -> int:
    """The most bytes a gzip of ``spec``'s content can take: gzip never makes data much longer."""
    return spec.content_bytes + spec.content_bytes // 100 + 1024


def _read_archive(path: Path, spec: ArchiveSpec) -> bytes:
    """A local archive's bytes, refused unread when longer than any gzip of its content."""
    with _open_regular_file(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > _max_archive_bytes(spec):
            raise _BadArchive(
                f"{size} bytes long, more than any gzip of its content "
                f"({_max_archive_bytes(spec)} bytes)"
            )
        return file.read(_max_archive_bytes(spec) + 1)  # bounded, should the file grow meanwhile


def _read_file_url(url: str, max_bytes: int) -> bytes:
    """A local mirror's copy (a file:// URL), read at once: refused unread unless it is a
    regular file (a FIFO would keep the reader waiting for a writer until the deadline), and
    bounded like a download.

    Raises OSError (as opening a file:// URL does) or _BadArchive.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _BadArchive(f"a file:// URL of another computer ({parts.netloc})")
    path = urllib.request.url2pathname(parts.path)
    # O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; files ignore it.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _BadArchive(f"{file_kind(mode)}, not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _BadArchive(f"larger than {max_bytes} bytes: not the expected archive")
    return data


def _mirror_url(mirror: str | os.PathLike) -> str:
    """A mirror as a base URL ending in "/"; a local folder becomes a file:// URL."""
    text = os.fspath(mirror)
    # abspath, not resolve: a symlink loop is for the download to report, like any bad mirror.
    url = text if "://" in text else Path(os.path.abspath(text)).as_uri()
    return url if url.endswith("/") else url + "/"


def _fetch_archive(
    spec: ArchiveSpec,
    path: Path,
    mirrors: Sequence[str],
    timeout_seconds: float,
    log: Callable[[str], None],
    command: str,
) -> tuple[bytes, str]:
    """Download one archive from the first mirror whose copy passes ``_check_archive``; save it.

    Returns the decompressed content and the archive's origin, like ``_check_archive``.
    """
    max_bytes = _max_archive_bytes(spec)  # a bigger download is not this archive
    failures = []
    for mirror in mirrors:
        url = mirror + spec.file_name
        log(f"  {spec.file_name}: downloading {one_line(url)}")
        try:
            if url.startswith("file:"):
                archive = _read_file_url(url, max_bytes)
            else:
                archive = _download(url, spec.file_name, max_bytes, timeout_seconds)
            content, origin = _check_archive(archive, spec)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:  # urllib gives up on a loop, or after 10 redirections
                reason = f"HTTP {exc.code}: it redirects in a loop, or too many times"
            else:
                reason = f"HTTP {exc.code} {_reason(exc.reason)}"
        except urllib.error.URLError as exc:
            timed_out = isinstance(exc.reason, TimeoutError)
            reason = _no_answer(timeout_seconds) if timed_out else _reason(exc.reason)
        except TimeoutError:
            reason = _no_answer(timeout_seconds)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = _reason(exc) or type(exc).__name__
        except _BadArchive as exc:
            reason = str(exc)
        else:
            _atomic_write(path, lambda file, data=archive: file.write(data))
            return content, origin
        failures.append(f"{url}: {reason}")
        log(f"    failed: {one_line(reason)}")
    tried = "; ".join(failures) if failures else "no mirror is configured"
    raise DatasetError(
        f"could not download {spec.file_name} ({tried}); check your network connection, or run "
        f"`{command} --mirror URL` with a URL or local folder that holds {spec.file_name}"
    )


def _reason(exc: object) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split())


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return DATASETS[dataset]
    except KeyError:
        names = ", ".join(repr(name) for name in DATASETS)
        raise DatasetError(f"unknown dataset {dataset!r}: choose one of {names}") from None


def default_data_dir(dataset: str | DatasetSpec = "mnist") -> Path:
    """The folder a dataset lives in by default: beside this module, whatever the cwd."""
    return PROJECT_DIR / _spec(dataset).dir_name


def _npy_paths(data_dir: Path) -> dict[str, Path]:
    """Where the four arrays are kept: train_images.npy and so on."""
    return {name: data_dir / f"{name}.npy" for name in ARRAY_NAMES}


def _npy_files_exist(data_dir: Path) -> bool:
    """Whether all four .npy files are in ``data_dir``, whatever they hold.

    Only missing files are built; anything else in their place is for the loader to read, and
    to refuse if it is not the right data.

    Raises
    ------
    DatasetError
        ``data_dir`` is a file, or cannot be looked into (no permission, a name too long...).
    """
    try:
        if data_dir.exists() and not data_dir.is_dir():
            raise DatasetError(
                f"{data_dir} is {file_kind(data_dir.stat().st_mode)}, not a folder: "
                "choose another --data-dir"
            )
        return all(path.exists() for path in _npy_paths(data_dir).values())
    except OSError as exc:
        raise DatasetError(
            f"cannot look into {data_dir} ({_reason(exc)}): choose another --data-dir"
        ) from None


def print_line(line: str) -> None:
    """Print one line of progress as one line, whatever a path or URL in it holds."""
    print(one_line(line))


def _rebuild_command(spec: DatasetSpec, data_dir: Path) -> str:
    """The command that rebuilds this dataset's .npy files, for error messages."""
    command = "python download_mnist.py"
    if spec.name != MNIST.name:
        command += f" --dataset {spec.name}"
    if data_dir != default_data_dir(spec):
        command += f" --data-dir {data_dir}"
    return command


# ---------------------------------------------------------------------------------------------
# The public entry points: build the .npy files, load them, and the command line.
# ---------------------------------------------------------------------------------------------


def prepare_dataset(
    data_dir: str | os.PathLike | None = None,
    dataset: str | DatasetSpec = "mnist",
    *,
    mirrors: Sequence[str | os.PathLike] = (),
    force: bool = False,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    log: Callable[[str], None] = print_line,
) -> Path:
    """Build a dataset's missing .npy files (all four with ``force``) from verified archives.

    Archives in ``data_dir`` are checked; a missing one is downloaded from ``mirrors`` (tried
    first) and then the dataset's own mirrors, checked, and kept. Nothing is written until every
    archive needed has passed, and every file is written atomically.

    Parameters
    ----------
    data_dir : path, optional
        Folder of the archives and .npy files; default ``default_data_dir(dataset)``.
    dataset : "mnist", "fashion" or a DatasetSpec
    mirrors : sequence of str or path
        Extra mirrors tried first: base URLs (http, https, file) or local folders.
    force : bool
        Rebuild all four .npy files, even those that exist. Without it only the missing ones
        are built, from their own archives.
    timeout_seconds : float
        Limit on each mirror attempt, connecting and every read included.
    log : callable
        Receives one line per step (``print_line`` by default: printed, kept to one line).

    Returns
    -------
    Path
        The data folder.

    Raises
    ------
    DatasetError
        A local archive fails its check, or no mirror gives a good copy of a missing one.
    """
    spec = _spec(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(spec)
    files_exist = _npy_files_exist(data_dir)  # first, as it also refuses a folder that is a file
    if files_exist and not force:
        log(f"{spec.title}: the .npy files in {data_dir} already exist (--force rebuilds them)")
        return data_dir
    # Without --force only the missing files are built (and only their archives fetched): a
    # file already there is kept as it is, for the loader to check.
    npy_paths = {
        name: path for name, path in _npy_paths(data_dir).items() if force or not path.exists()
    }
    created_dir = not data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create {data_dir}: {_reason(exc)}") from None
    try:
        _build_npy_files(spec, data_dir, npy_paths, mirrors, timeout_seconds, log)
    except DatasetError:
        if created_dir and not any(data_dir.iterdir()):
            data_dir.rmdir()  # a failed first run leaves no empty folder behind
        raise
    return data_dir


def _build_npy_files(
    spec: DatasetSpec,
    data_dir: Path,
    npy_paths: dict[str, Path],
    mirrors: Sequence[str],
    timeout_seconds: float,
    log: Callable[[str], object],
) -> None:
    """prepare_dataset's work: check or fetch the archives of the .npy files in ``npy_paths``,
    then write those files."""
    all_mirrors = [_mirror_url(mirror) for mirror in (*mirrors, *spec.mirrors)]
    command = _rebuild_command(spec, data_dir)

    if len(npy_paths) == len(ARRAY_NAMES):
        log(f"{spec.title}: building the .npy files in {data_dir}")
    else:
        names = ", ".join(path.name for path in npy_paths.values())
        log(f"{spec.title}: building the missing .npy files in {data_dir}: {names}")
    arrays, sources = {}, {}
    for archive_spec in (a for a in spec.archives if a.array_name in npy_paths):
        path = data_dir / archive_spec.file_name
        if path.is_file():
            try:
                content, origin = _check_archive(_read_archive(path, archive_spec), archive_spec)
            except OSError as exc:
                raise DatasetError(f"cannot read {path}: {_reason(exc)}") from None
            except _BadArchive as exc:
                raise DatasetError(
                    f"{path} is refused, {exc}; delete it and run `{command}` to download it again"
                ) from None
        else:
            content, origin = _fetch_archive(
                archive_spec, path, all_mirrors, timeout_seconds, log, command
            )
        log(f"  {archive_spec.file_name}: content SHA-256 OK; the archive is {origin}")
        arrays[archive_spec.array_name] = parse_idx(content, str(path))
        sources[archive_spec.array_name] = path
    # Images against labels when both are built; a single array's SHA-256 has pinned it anyway.
    if len(arrays) == len(ARRAY_NAMES):
        _check_arrays(arrays, sources, "these archives do not make a dataset; replace them")

    for name, path in npy_paths.items():
        _atomic_write(path, lambda file, array=arrays[name]: np.save(file, array))
        log(f"  wrote {path.name} {arrays[name].shape} uint8")


def load_dataset(
    data_dir: str | os.PathLike | None = None, dataset: str | DatasetSpec = "mnist"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load a dataset as uint8 arrays, building any missing .npy file first.

    Parameters
    ----------
    data_dir : path, optional
        Folder of the .npy files; default ``mnist_data`` (or ``fashion_mnist_data``) beside
        this module.
    dataset : "mnist", "fashion" or a DatasetSpec

    Returns
    -------
    x_train : ndarray of uint8, shape (60000, 28, 28)
    y_train : ndarray of uint8, shape (60000,), labels 0-9
    x_test : ndarray of uint8, shape (10000, 28, 28)
    y_test : ndarray of uint8, shape (10000,), labels 0-9

    Raises
    ------
    DatasetError
        One line naming the bad file and the command that rebuilds it. Each file's header is
        checked before its data is read, and its data against the dataset's SHA-256.
    """
    spec = _spec(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir(spec)
    paths = _npy_paths(data_dir)
    if not _npy_files_exist(data_dir):
        prepare_dataset(data_dir, spec)
    fix = f"run `{_rebuild_command(spec, data_dir)} --force` to rebuild it"
    arrays = {
        archive.array_name: _read_npy(paths[archive.array_name], archive, fix)
        for archive in spec.archives
    }
    return tuple(arrays[name] for name in ARRAY_NAMES)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build (and if need be download) a dataset's .npy files. Returns 0."""
    parser = ArgumentParser(
        description="Build train/test .npy files from the MNIST or Fashion-MNIST archives, "
        "checking their SHA-256 and downloading any missing archive from public mirrors.",
    )
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default="mnist", help="default: mnist"
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder of the archives and .npy files "
        "(default: mnist_data/ or fashion_mnist_data/ beside this script)",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        action="append",
        default=[],
        help="base URL (http, https or file://) or local folder to try first for a missing "
        "archive; may be given more than once",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild all four .npy files even if they exist (else only missing ones are built)",
    )
    args = parser.parse_args(argv)

    start_seconds = time.perf_counter()
    try:
        data_dir = prepare_dataset(
            args.data_dir, args.dataset, mirrors=args.mirror, force=args.force
        )
        x_train, y_train, x_test, y_test = load_dataset(data_dir, args.dataset)
    except DatasetError as exc:
        sys.exit(f"error: {one_line(str(exc))}")  # one line, whatever a file's name holds
    except KeyboardInterrupt:
        sys.exit("error: interrupted; files already written are complete, no partial file is left")
    elapsed_seconds = time.perf_counter() - start_seconds
    print(
        f"ready: train {x_train.shape} + {y_train.shape}, test {x_test.shape} + {y_test.shape}, "
        f"uint8, in {printable(data_dir)} ({elapsed_seconds:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
