"""What a training run needs of memory, estimated from its settings before any work, and
refused in one line when that is more than the process may use (plumbing/memory.py).

A network or head too big for the machine would otherwise end, after TensorFlow's import and
seconds of work, in NumPy's or TensorFlow's out-of-memory traceback, or be killed by the kernel.
The estimate counts what grows with the settings: the weights with Adam's two moments and a
gradient each (the conv stages' and the head's), a batch's activations (every stage's matrix of
windows, kept for the backward pass, and the largest stage's temporaries, or the distortion's or
evaluation's, if more); and what does not, TensorFlow itself. It is made once the data is loaded
(the images count among what is used already), before TensorFlow loads. It errs on the high
side by a little, never by much: a run it lets through fits.

Imports only the standard library and the settings: the check runs before TensorFlow loads.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from fused_layers import WINDOWS_FROM_FILTERS
from plumbing.checks import printable
from plumbing.memory import MemoryLimit, memory_available, size_text
from training.settings import NUM_CLASSES, ConfigError, TrainConfig

FLOAT_BYTES = 4  # float32 everywhere: the images once scaled, the filters, the head
# TensorFlow and Keras loaded and the head's step compiled: about 0.75 GB resident and 1.9 GB
# of address space (what ulimit -v counts), measured on Linux x86-64 with TensorFlow 2.21. The
# default run needs a ulimit -v of 2.35 GB in all; with 2.2 GB, OpenBLAS aborts it.
TENSORFLOW_BYTES = 800 * 10**6
TENSORFLOW_ADDRESS_SPACE = 2_000 * 10**6
# What tracemalloc sees of a step beyond the arrays counted here (the batch cut into parts for
# the threads, small arrays): up to 5% more, measured; 10% on top of the count.
ACTIVATION_MARGIN = 1.1
# Evaluation runs the network on groups of at least this many images (network_guard's
# MIN_IMAGES_PER_THREAD, on two threads), whatever the batch size.
EVALUATION_IMAGES = 64
# Distorting a batch (training/augmentation.py) needs up to 62 bytes a pixel while it runs
# (tracemalloc, every option on), while the last step's windows are still kept.
AUGMENTATION_BYTES_PER_PIXEL = 64


class NotEnoughMemoryError(ConfigError):
    """The run's network and batch need more memory than the process may use."""


@dataclass(frozen=True)
class MemoryNeeds:
    """Bytes a run needs, by what needs them."""

    weights: int  # the weights, Adam's two moments and a gradient of each
    activations: int  # one batch through the network and back
    fixed: int  # TensorFlow (the data is loaded by the time of the check)

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.fixed


def memory_needs(config: TrainConfig, address_space: bool = False) -> MemoryNeeds:
    """What training ``config`` needs: resident memory, or with ``address_space`` what
    ``ulimit -v`` counts (TensorFlow maps far more than it touches)."""
    stages = config.network_stages()
    conv_weights = sum(math.prod(stage.filters_shape) for stage in stages)
    last = stages[-1]
    sizes = [last.out_channels * last.out_size[0] * last.out_size[1], *config.hidden, NUM_CLASSES]
    head_weights = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:], strict=False))
    weights = 4 * FLOAT_BYTES * (conv_weights + head_weights)

    largest_forward = 0
    kept, passing = 0, 0  # per image: what every stage keeps, and the largest stage's rest
    for stage in stages:
        channels, k, filters = stage.in_channels, stage.kernel_size, stage.out_channels
        padded = (stage.in_size[0] + 2 * stage.padding) * (stage.in_size[1] + 2 * stage.padding)
        pooled = stage.out_size[0] * stage.out_size[1]
        conv = 4 * pooled  # the convolution pixels that reach a pooling window
        if k % 2 == 0:  # im2col's columns, and the convolution kept for the pooling
            windows = channels * k * k * stage.conv_size[0] * stage.conv_size[1]
            mask = FLOAT_BYTES * filters * conv
        elif filters >= WINDOWS_FROM_FILTERS:  # fused_layers.choose_layout: "windows"
            windows, mask = channels * k * k * conv, filters * conv
        else:  # "patches": one (K + 1) x (K + 1) patch per pooling window
            windows, mask = channels * (k + 1) ** 2 * pooled, filters * conv
        # Kept for the backward pass: the matrix of windows, which pixel was each window's
        # maximum, the stage's output. Coming and going while the stage runs: its convolution
        # (then its gradient), the windows' gradient, the padded input's gradient.
        kept += windows * FLOAT_BYTES + mask + filters * pooled * FLOAT_BYTES
        passing = max(passing, (windows + filters * conv + 2 * channels * padded) * FLOAT_BYTES)
        forward = (windows + filters * conv + channels * padded) * FLOAT_BYTES
        largest_forward = max(largest_forward, forward)
    if not config.augmentation().is_off:
        passing = max(passing, AUGMENTATION_BYTES_PER_PIXEL * math.prod(stages[0].in_size))
    training = config.batch_size * (kept + passing)
    evaluation = EVALUATION_IMAGES * largest_forward  # no cache, a stage at a time
    images = max(config.batch_size, EVALUATION_IMAGES)
    head = images * sum(sizes) * FLOAT_BYTES * 4  # activations, their gradients, the tape's
    fixed = TENSORFLOW_ADDRESS_SPACE if address_space else TENSORFLOW_BYTES
    activations = ACTIVATION_MARGIN * (max(training, evaluation) + head)
    return MemoryNeeds(weights=weights, activations=round(activations), fixed=fixed)


def check_training_fits(config: TrainConfig, limit: MemoryLimit | None = None) -> None:
    """Refuse, before any work, a run that needs more memory than the process may use.

    Raises NotEnoughMemoryError (a ConfigError): one line with the estimate, the limit and
    what to change.
    """
    limit = limit or memory_available()
    needs = memory_needs(config, address_space=limit.virtual)
    if needs.total <= limit.bytes:
        return
    raise NotEnoughMemoryError(
        f"this network and batch need about {size_text(needs.total)} of memory (weights, "
        f"gradients and Adam's moments {size_text(needs.weights)}, a batch of "
        f"{config.batch_size} through the network {size_text(needs.activations)}), more than "
        f"the {limit.describe()} this process may use; try fewer --filters or --hidden "
        "units, a smaller --kernel-size, or a smaller --batch-size"
    )


def out_of_memory_message(error: BaseException, config: TrainConfig) -> str | None:
    """The one line for an allocation that failed anyway (NumPy's MemoryError, TensorFlow's
    ResourceExhaustedError), or None for any other error."""
    name = type(error).__name__
    if not (isinstance(error, MemoryError) or name == "ResourceExhaustedError"):
        return None
    kept = ""
    if config.saves_model():
        saved = os.path.exists(config.save_path)
        kept = (
            f"; {printable(config.save_path)} keeps its last save" if saved else "; nothing saved"
        )
    return (
        f"out of memory while training ({name}): the run needs more memory than this process "
        f"may use ({memory_available().describe()} free now){kept}; try fewer --filters or "
        "--hidden units, a smaller --kernel-size, or a smaller --batch-size"
    )
