"""A run too big for the memory the process may use is refused before any work, with the
estimate in one line; an allocation that fails anyway is one line too, never a traceback."""

import os
import resource
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import simple_cnn_from_scratch as driver
from download_mnist import load_dataset
from plumbing import memory
from plumbing.memory import MemoryLimit, memory_available, size_text
from simple_cnn import SimpleCNN
from training import memory_use
from training.augmentation import augment
from training.memory_use import NotEnoughMemoryError, check_training_fits, memory_needs
from training.settings import INPUT_SHAPE, TrainConfig, one_for_all

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_trainer(*args, address_space=None):
    """The trainer in a fresh interpreter (with ``-X importtime``, to see what it imported),
    under a ulimit -v if given."""

    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-X", "importtime", "simple_cnn_from_scratch.py", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )


def messages(result):
    """stderr without -X importtime's lines."""
    return [line for line in result.stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize(
    "args, part",
    [
        (["--hidden", "65536,65536"], "weights, gradients and Adam's moments 69.2 GB"),
        (["--filters", "1024,1024", "--kernel-size", "15", "--padding", "same"], "a batch of 128"),
        (["--batch-size", "60000", "--filters", "64,128"], "a batch of 60000"),
    ],
    ids=["hidden", "filters", "batch"],
)
def test_a_network_too_big_for_the_memory_limit_is_refused_before_tensorflow_loads(args, part):
    """Under a 4 GB ulimit -v these ended in TensorFlow's ResourceExhaustedError or NumPy's
    _ArrayMemoryError after seconds of work (without a limit, the kernel killed them)."""
    result = run_trainer(*args, "--epochs", "1", "--no-save", address_space=4 * 2**30)
    lines = messages(result)
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: this network and batch need about ")
    assert part in lines[0] and "(the ulimit -v limit)" in lines[0]
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines()]
    assert "tensorflow" not in imported


def test_the_default_run_fits_a_modest_limit():
    limit = MemoryLimit(3 * 10**9, "test", virtual=True)
    check_training_fits(TrainConfig(save_path=None), limit)  # no error
    check_training_fits(TrainConfig(save_path=None), MemoryLimit(2 * 10**9, "test", False))
    with pytest.raises(NotEnoughMemoryError, match=r"more than the 1.0 GB \(test\)"):
        check_training_fits(TrainConfig(save_path=None), MemoryLimit(10**9, "test", True))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        dict(num_filters=(32, 64), kernel_sizes=(3,), paddings=("valid",)),
        dict(num_filters=(64, 128), kernel_sizes=(5,), paddings=("same",), batch_size=64),
        dict(num_filters=(16,), kernel_sizes=(4,), paddings=(0,)),
        dict(num_filters=(8, 8, 8), kernel_sizes=(3,), paddings=("same",), batch_size=256),
    ],
    ids=["lenet", "keras-example", "wide", "even-kernel", "three-stages"],
)
def test_the_estimate_covers_what_a_step_allocates_and_not_much_more(settings):
    """A training step's NumPy arrays (tracemalloc sees them all): the estimate of a batch's
    activations is at least that, and at most twice."""
    config = TrainConfig(save_path=None, **settings)
    cnn = SimpleCNN(
        num_filters=config.num_filters,
        kernel_sizes=one_for_all(config.kernel_sizes),
        paddings=one_for_all(config.paddings),
        input_shape=INPUT_SHAPE,
        seed=0,
    )
    images = np.random.default_rng(0).random((config.batch_size, *INPUT_SHAPE), np.float32)
    tracemalloc.start()
    features = cnn.forward(images)
    cnn.backward(np.ones_like(features), learning_rate=0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimate = memory_needs(config).activations
    assert peak <= estimate <= 2 * peak, f"{size_text(peak)} measured, {size_text(estimate)}"


def test_the_estimate_covers_distorting_the_next_batch_while_the_last_one_is_kept():
    """A network so small that the distortion's temporaries outweigh a stage's: a step, then
    the next batch distorted (as the trainer does, the step's windows still kept)."""
    settings = dict(num_filters=(2,), kernel_sizes=(3,), paddings=("valid",), batch_size=256)
    distortions = dict(rotation=8, scale=0.08, shear=10, elastic=1, stroke=0.5)
    config = TrainConfig(save_path=None, **settings, **distortions)
    cnn = SimpleCNN(num_filters=(2,), kernel_sizes=3, paddings=0, input_shape=INPUT_SHAPE, seed=0)
    digits = load_dataset()[2][:256]
    tracemalloc.start()
    features = cnn.forward(digits[:, None].astype(np.float32) / 255)
    cnn.backward(np.ones_like(features), learning_rate=0.0)
    augment(digits, config.augmentation(), np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimate = memory_needs(config).activations
    plain = memory_needs(TrainConfig(save_path=None, **settings)).activations
    measured = f"{size_text(peak)} measured, {size_text(estimate)} estimated"
    assert plain < peak <= estimate <= 2 * peak, measured


def test_memory_available_reads_the_ulimit():
    code = (
        "from plumbing.memory import memory_available\n"
        "limit = memory_available()\n"
        "print(limit.what, limit.virtual, 0 < limit.bytes < 2**30)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)),
    )
    assert result.stdout.split() == ["the", "ulimit", "-v", "limit", "True", "True"]


def test_memory_available_without_limits_is_the_system_s():
    limit = memory_available()
    assert limit.bytes > 0 and limit.what
    assert memory.size_text(3_400_000_000) == "3.4 GB" and size_text(512 * 10**6) == "512 MB"


@pytest.mark.parametrize("error", ["MemoryError", "ResourceExhaustedError"])
def test_an_allocation_that_fails_anyway_is_one_line(tmp_path, monkeypatch, capsys, error):
    """NumPy's _ArrayMemoryError is a MemoryError; TensorFlow's is ResourceExhaustedError."""
    failure = MemoryError if error == "MemoryError" else type(error, (Exception,), {})

    def out_of_memory(*args, **kwargs):
        raise failure("Unable to allocate 64.0 GiB for an array with shape (4, 2**32)")

    monkeypatch.setattr(driver, "train_epoch", out_of_memory)
    model = tmp_path / "model.npz"
    args = ["--epochs", "1", "--limit", "100", "--save", str(model), "--quiet"]
    with pytest.raises(SystemExit) as stop:
        driver.main(args)
    message = str(stop.value.code)
    assert message.startswith(f"error: out of memory while training ({error}): ")
    assert "\n" not in message and message.endswith("a smaller --batch-size")
    assert "; nothing saved;" in message
    assert not model.exists()  # nothing half-written


def test_other_errors_still_raise(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("a bug is a traceback, not an out-of-memory message")

    monkeypatch.setattr(driver, "train_epoch", broken)
    with pytest.raises(KeyError):
        driver.main(["--epochs", "1", "--limit", "100", "--no-save", "--quiet"])


def test_the_estimate_takes_no_tensorflow():
    assert memory_use.TENSORFLOW_BYTES > 0
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import training.memory_use, sys; print('tensorflow' in sys.modules)",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "False"


def test_plots_and_predictions_that_run_out_of_memory_say_so_in_one_line(tmp_path, monkeypatch):
    import inference
    import plot_results
    import predict_digit

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 5.38 GiB for an array")

    monkeypatch.setattr(plot_results, "make_all_plots", out_of_memory)
    with pytest.raises(SystemExit) as stop:
        plot_results.main(["--model", "model.npz", "--out", str(tmp_path)])
    assert str(stop.value.code).startswith("error: not enough memory to plot this model: ")
    assert "\n" not in str(stop.value.code)

    monkeypatch.setattr(inference, "load_classifier", out_of_memory)
    with pytest.raises(predict_digit.ModelError, match="model.npz: not enough memory to run it"):
        predict_digit.classify("model.npz", np.zeros((1, 28, 28), np.uint8))
