"""The networks the benchmarks train, each given as the training program's settings.

    lenet          the training program's default: conv 6x5x5 pad 2 -> conv 16x5x5
                   -> Dense(128, relu) -> Dense(10)
    keras-example  keras-io's examples/vision/mnist_convnet.py: conv 32x3x3 -> conv 64x3x3
                   -> Dropout(0.5) -> Dense(10)

Each conv stage is convolution -> ReLU -> 2x2 max-pooling. A network is a TrainConfig, so the
from-scratch side builds it with the program's own ``build_model`` and the Keras-native side
(keras_native.py) reads the same fields: both train exactly the same network.

Imports no TensorFlow: the scripts that only need the conv stack start at once.
"""

import sys
from pathlib import Path

# The project's modules sit one directory up; this lets the scripts run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simple_cnn import SimpleCNN  # noqa: E402
from simple_cnn_from_scratch import NUM_CLASSES  # noqa: E402
from training import settings  # noqa: E402
from training.settings import TrainConfig  # noqa: E402

NETWORKS = {
    "lenet": {},  # the training program's defaults
    "keras-example": {
        "num_filters": (32, 64),
        "kernel_sizes": (3,),
        "paddings": ("valid",),
        "hidden": (),
        "dropout": 0.5,
    },
}
DEFAULT_NETWORK = "lenet"
NETWORK_FIELDS = ("num_filters", "kernel_sizes", "paddings", "hidden", "dropout")  # NETWORKS set


def network_config(name: str, **settings) -> TrainConfig:
    """The training program's settings for network ``name`` (plus ``settings``), saving and
    printing nothing: a benchmark times training, not the terminal or the disk."""
    return TrainConfig(**NETWORKS[name], no_save=True, verbose=False, **settings)


def describe_network(config: TrainConfig) -> str:
    """One line for the printed figures, e.g. "conv 32x3x3 -> conv 64x3x3 -> Dropout(0.5) ->
    Dense(10)"."""
    parts = [
        f"conv {stage.out_channels}x{stage.kernel_size}x{stage.kernel_size}"
        + (f" pad {stage.padding}" if stage.padding else "")
        for stage in config.network_stages()
    ]
    parts += [f"Dense({units}, relu)" for units in config.hidden]
    if config.dropout:
        parts.append(f"Dropout({config.dropout:g})")
    parts.append(f"Dense({NUM_CLASSES})")
    return " -> ".join(parts)


def build_simple_cnn(config: TrainConfig, seed: int = 0, impl: str = "fast") -> SimpleCNN:
    """The network's conv stack alone, as build_model makes it (for the conv-stack timings)."""
    return SimpleCNN(
        num_filters=config.num_filters,
        kernel_sizes=settings.one_for_all(config.kernel_sizes),
        paddings=settings.one_for_all(config.paddings),
        input_shape=settings.INPUT_SHAPE,
        seed=seed,
        impl=impl,
    )
