"""Model files for the explorer's tests, made in a moment: real SimpleCNN model files with
random weights (no training, no TensorFlow), of any architecture."""

import numpy as np

from simple_cnn import SimpleCNN
from training import model_file


def save_untrained_model(path, seed=0, dataset="mnist", **architecture):
    """A real model file with random weights (no training, no TensorFlow)."""
    cnn = SimpleCNN(seed=seed, **architecture)
    rng = np.random.default_rng(seed)
    head = [
        (
            rng.normal(0, 0.05, (cnn.num_features, 128)).astype(np.float32),
            np.zeros(128, np.float32),
        ),
        (rng.normal(0, 0.1, (128, 10)).astype(np.float32), np.zeros(10, np.float32)),
    ]
    arch = {**cnn.architecture, "hidden": [128], "dropout": 0.0, "num_classes": 10}
    config = {"dataset": dataset}
    config.update(
        {
            "filters": [stage.out_channels for stage in cnn.stages],
            "kernel_size": arch["kernel_sizes"],
            "padding": arch["paddings"],
        }
    )
    saved = model_file.SavedModel(
        architecture=arch,
        conv_filters=cnn.filters,
        head_weights=head,
        conv_optimizer_settings={
            "learning_rate": 0.001,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-7,
        },
        conv_optimizer_state={"iterations": np.array(0)},
        config=config,
    )
    model_file.save_model(path, saved)
    return path
