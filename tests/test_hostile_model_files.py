"""Model files crafted to hurt: every size a file claims is bounded before anything it sizes is
read, and whatever the zip and .npy readers can raise becomes one line naming the file.

The files are made here without TensorFlow: a real model file (random weights), then rewritten
or patched byte by byte where the zip format keeps a member's compression method and flags.
"""

import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from plumbing.memory import MemoryLimit
from simple_cnn import SimpleCNN
from training import model_file
from training.model_file import ModelFileError, load_model
from training.settings import TrainConfig

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_random_model(path):
    """A model file as the trainer writes it (LeNet-5, Dense(128)), with random weights."""
    cnn = SimpleCNN(seed=0)
    rng = np.random.default_rng(0)
    head = [
        (rng.normal(0, 0.05, (400, 128)).astype(np.float32), np.zeros(128, np.float32)),
        (rng.normal(0, 0.1, (128, 10)).astype(np.float32), np.zeros(10, np.float32)),
    ]
    config = TrainConfig(save_path=None)
    architecture = {**cnn.architecture, "hidden": [128], "dropout": 0.0, "num_classes": 10}
    saved = model_file.SavedModel(
        architecture=architecture,
        conv_filters=cnn.filters,
        head_weights=head,
        conv_optimizer_settings={
            "learning_rate": 0.004,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-7,
        },
        conv_optimizer_state={"iterations": np.array(0)},
        config={
            name: list(value) if isinstance(value, tuple) else value
            for name, value in vars(config).items()
            if name in ("epochs", "batch_size", "seed", "dataset", "hidden", "dropout")
        },
    )
    model_file.save_model(path, saved)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("good") / "model.npz")


def arrays_of(path):
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def set_json(arrays, name, **values):
    record = json.loads(str(arrays[name]))
    record.update(values)
    arrays[name] = np.array(json.dumps(record))


def claim_hidden(arrays, hidden):
    """The architecture and the settings claim these hidden layers; the weights stay small."""
    set_json(arrays, "architecture", hidden=hidden)
    set_json(arrays, "config", hidden=hidden)


def write_zip(path, arrays, zeros=(), compression=zipfile.ZIP_DEFLATED):
    """Write ``arrays`` as an .npz; the members named in ``zeros`` (name -> shape) instead hold
    float32 zeros of that shape, streamed into the zip (a few MB of file for 100 MB of data)."""
    zeros = dict(zeros)
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=1) as archive:
        for name, array in arrays.items():
            if name not in zeros:
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
                archive.writestr(f"{name}.npy", buffer.getvalue())
        for name, shape in zeros.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": shape}
            )
            remaining = 4 * int(np.prod(shape))
            chunk = bytes(1 << 22)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                member.write(header.getvalue())
                while remaining > 0:
                    member.write(chunk[: min(remaining, len(chunk))])
                    remaining -= len(chunk)
    return path


def patch_member(path, member, method=None, flags=0):
    """Set ``member``'s compression method, or OR ``flags`` into its general-purpose flags, in
    both the zip's central directory and the member's local header."""
    data = bytearray(path.read_bytes())
    name = f"{member}.npy".encode()
    position = 0
    while (entry := data.find(b"PK\x01\x02", position)) >= 0:
        name_length = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46 : entry + 46 + name_length] == name:
            local = struct.unpack_from("<I", data, entry + 42)[0]
            assert data[local : local + 4] == b"PK\x03\x04"
            for flags_at, method_at in ((entry + 8, entry + 10), (local + 6, local + 8)):
                struct.pack_into("<H", data, flags_at, data[flags_at] | flags)
                if method is not None:
                    struct.pack_into("<H", data, method_at, method)
        position = entry + 4
    path.write_bytes(bytes(data))
    return path


class RecordingOpen:
    """zipfile.ZipFile.open, recording the members opened."""

    def __init__(self, monkeypatch):
        self.opened = []
        original = zipfile.ZipFile.open

        def recording_open(archive, name, *args, **kwargs):
            self.opened.append(getattr(name, "filename", name).removesuffix(".npy"))
            return original(archive, name, *args, **kwargs)

        monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)


SETTINGS_MEMBERS = {"format", "architecture", "config"}


# --------------------------------------------------------------------------------------------
# Sizes a file claims are bounded before anything they size is read
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim, problem",
    [
        (dict(hidden=[1_000_000]), "--hidden must be an integer from 1 to 65536, got 1000000"),
        (dict(filters=[100_000, 16]), "--filters must be an integer from 1 to 1024"),
        (dict(kernel_sizes=[201, 5], paddings=[100, 0]), "--kernel-size must be an integer"),
        (dict(paddings=[20_000, 0]), "--padding must be an integer from 0 to 64"),
        (dict(input_shape=[1, 3000, 3000]), "28x28"),
        (dict(num_classes=1000), "MNIST and Fashion-MNIST have 10"),
        (dict(hidden=[1] * 100_000), "100,003 layers, but the file holds only"),
    ],
    ids=["hidden", "filters", "kernel", "padding", "input", "classes", "layers"],
)
def test_a_claimed_architecture_is_bounded_before_any_array_is_read(
    good, tmp_path, monkeypatch, claim, problem
):
    """The architecture sizes the arrays read after it (a hidden layer of 1,000,000 units: a
    3 MB file decompressing to gigabytes): its every size is checked first, by the bounds the
    trainer's settings have."""
    arrays = arrays_of(good)
    set_json(arrays, "architecture", **claim)
    path = write_zip(tmp_path / "claims.npz", arrays)
    recording = RecordingOpen(monkeypatch)
    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert set(recording.opened) <= SETTINGS_MEMBERS, "it read arrays the claim sizes"
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
    assert len(str(error.value)) < 300  # a claim of 100,000 layers is not echoed whole


def test_a_file_claiming_a_huge_layer_is_refused_in_a_moment_and_little_memory(good, tmp_path):
    """A real hostile file: a hidden layer of 70,000 units (past the trainer's 65,536) whose
    112 MB of weights compress to a fraction of that. Refused before they are decompressed."""
    arrays = arrays_of(good)
    claim_hidden(arrays, [70_000])
    for name in list(arrays):
        if name.startswith("head"):
            del arrays[name]
    arrays["head.1.kernel"] = np.zeros((70_000, 10), np.float32)
    arrays["head.1.bias"] = np.zeros(10, np.float32)
    zeros = {"head.0.kernel": (400, 70_000), "head.0.bias": (70_000,)}
    path = write_zip(tmp_path / "hostile.npz", arrays, zeros)
    assert path.stat().st_size < 10**6

    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="--hidden must be an integer from 1 to 65536"):
        load_model(path)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB to refuse it"
    assert seconds < 1.0


def test_weights_that_would_not_fit_in_memory_are_refused_before_reading(
    good, tmp_path, monkeypatch
):
    """Within the settings' bounds, a network can still be too big for the machine (two hidden
    layers of 65,536 units: 17 GB of weights, 51 GB with Adam's moments): the loader weighs it
    against the memory the process may use before reading any of it."""
    arrays = arrays_of(good)
    claim_hidden(arrays, [65_536, 65_536])
    path = write_zip(tmp_path / "big.npz", arrays)
    recording = RecordingOpen(monkeypatch)
    monkeypatch.setattr(
        model_file, "memory_available", lambda: MemoryLimit(8 * 10**9, "test", False)
    )
    with pytest.raises(ModelFileError, match=r"4,3\d\d,\d{3},\d{3} weights.*more than the 8.0 GB"):
        load_model(path)
    assert set(recording.opened) <= SETTINGS_MEMBERS


def test_gigabytes_of_compressed_zeros_are_refused_before_they_are_inflated(
    good, tmp_path, monkeypatch
):
    """A network within every bound and within memory, but the file is a few hundred kB of
    deflated zeros claiming 66 MB (2.8 MB for 2.9 GB took 27 s to read before). The trainer
    stores its arrays uncompressed, and numbers compress far less."""
    arrays = arrays_of(good)
    network = dict(filters=[256, 256], kernel_sizes=[15, 15], paddings=[7, 7])
    set_json(arrays, "architecture", **network)
    set_json(arrays, "config", filters=[256, 256], kernel_size=[15], padding=[7, 7])
    for name in ("conv1_filters", "conv2_filters", "head.0.kernel"):
        del arrays[name]
    for name in [n for n in arrays if n.startswith(("conv_optimizer.", "head_optimizer."))]:
        if name != "conv_optimizer.iterations":
            del arrays[name]
    zeros = {
        "conv1_filters": (256, 1, 15, 15),
        "conv2_filters": (256, 256, 15, 15),
        "head.0.kernel": (256 * 7 * 7, 128),
    }
    path = write_zip(tmp_path / "zeros.npz", arrays, zeros)
    assert path.stat().st_size < 10**6
    recording = RecordingOpen(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"claim 65.6 MB from .* more than numbers"):
        load_model(path)
    assert time.perf_counter() - start < 1.0
    assert "conv2_filters" not in recording.opened


def test_a_model_zipped_again_with_deflate_still_loads(good, tmp_path):
    path = write_zip(tmp_path / "deflated.npz", arrays_of(good), compression=zipfile.ZIP_DEFLATED)
    original, again = load_model(good), load_model(path)
    for ours, theirs in zip(original.conv_filters, again.conv_filters, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def run_python(code, address_space=None, timeout=60):
    """Run ``code`` in a fresh Python in the project folder, under a ulimit -v if given."""

    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def test_under_a_memory_limit_a_big_model_is_refused_with_the_limit_named(good, tmp_path):
    arrays = arrays_of(good)
    claim_hidden(arrays, [8192, 8192])  # 67 million weights: 0.8 GB with Adam's moments
    path = write_zip(tmp_path / "big.npz", arrays)
    code = (
        "from training.model_file import load_model\n"
        f"try:\n    load_model({str(path)!r})\nexcept ValueError as e:\n    print(e)\n"
    )
    result = run_python(code, address_space=700 * 2**20)
    assert "more than the" in result.stdout and "(the ulimit -v limit)" in result.stdout
    assert result.stderr == ""


# --------------------------------------------------------------------------------------------
# Whatever the zip and .npy readers raise is one line naming the file
# --------------------------------------------------------------------------------------------


def rewritten(good, tmp_path, change):
    arrays = arrays_of(good)
    change(arrays)
    return write_zip(tmp_path / "changed.npz", arrays, compression=zipfile.ZIP_STORED)


def damage_lzma(good, tmp_path):
    path = write_zip(tmp_path / "lzma.npz", arrays_of(good), compression=zipfile.ZIP_LZMA)
    data = bytearray(path.read_bytes())
    start = data.find(b"conv1_filters.npy") + 60
    data[start : start + 64] = bytes(b ^ 0x55 for b in data[start : start + 64])
    path.write_bytes(bytes(data))
    return path


def big_count(member):
    def change(arrays):
        arrays[member] = np.array(2**64 - 1, np.uint64)

    return change


def negative_shape(good, tmp_path):
    path = shutil.copy(good, tmp_path / "negative.npz")
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "history.npy":
                # The header is padded with spaces to a fixed length: the claim takes two.
                data = data.replace(b"'shape': (), }  ", b"'shape': (-1,), }")
            target.writestr(info.filename, data)
    return path


HOSTILE_FILES = {
    # A zip method zipfile cannot read: NotImplementedError before.
    "zstd": (lambda g, t: patch_member(shutil.copy(g, t / "m.npz"), "conv1_filters", 93), "Zst"),
    "aes": (lambda g, t: patch_member(shutil.copy(g, t / "m.npz"), "head.0.kernel", 99), "AES"),
    "deflate64": (lambda g, t: patch_member(shutil.copy(g, t / "m.npz"), "format", 9), "Deflate64"),
    # The encrypted flag: RuntimeError before.
    "encrypted": (
        lambda g, t: patch_member(shutil.copy(g, t / "m.npz"), "conv1_filters", flags=1),
        "encrypted",
    ),
    # A damaged LZMA member: lzma.LZMAError before.
    "lzma": (damage_lzma, "not a readable .npz model file"),
    # Counts that save_model could not write again: OverflowError (iterations) before, or
    # accepted (a step of 2**64 - 1).
    "iterations": (
        lambda g, t: rewritten(g, t, big_count("conv_optimizer.iterations")),
        "conv_optimizer.iterations is 18446744073709551615",
    ),
    "step": (lambda g, t: rewritten(g, t, big_count("step")), "step is 18446744073709551615"),
    # A .npy shape NumPy's reader takes: -1 would read the member to its end.
    "negative-shape": (negative_shape, r"damaged \.npy header \(shape \(-1,\)\)"),
}


@pytest.fixture(params=sorted(HOSTILE_FILES))
def hostile(request, good, tmp_path):
    make, problem = HOSTILE_FILES[request.param]
    return make(good, tmp_path), problem


def test_what_the_zip_and_npy_readers_raise_becomes_one_line(hostile):
    path, problem = hostile
    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


PROGRAMS = {
    "predict_digit": lambda model, tmp: ["predict_digit.py", "--model", model, str(tmp / "7.png")],
    "resume": lambda model, tmp: ["simple_cnn_from_scratch.py", "--resume", model, "--no-save"],
    "save-check": lambda model, tmp: [
        "simple_cnn_from_scratch.py",
        "--save",
        model,
        "--limit",
        "9",
    ],
    "plot_results": lambda model, tmp: ["plot_results.py", "--model", model, "--out", str(tmp)],
}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("kind", ["zstd", "encrypted", "iterations"])
def test_every_program_answers_a_hostile_model_file_in_one_line(good, tmp_path, program, kind):
    from PIL import Image, ImageDraw

    picture = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(picture).line((50, 10, 50, 90), fill=0, width=8)  # a one
    picture.save(tmp_path / "7.png")
    path = HOSTILE_FILES[kind][0](good, tmp_path)
    before = path.read_bytes()
    result = subprocess.run(
        [sys.executable, *PROGRAMS[program](str(path), tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert path.read_bytes() == before  # --save never replaced it


def test_a_model_path_with_a_line_break_stays_on_one_line(tmp_path):
    path = tmp_path / "a\nb.npz"
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert "\n" not in str(error.value) and "a\\nb.npz" in str(error.value)
