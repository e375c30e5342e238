"""The reference for the benchmarks: the from-scratch network built from Keras' own layers.

Built from the same TrainConfig the training program reads (see networks.py), stage by stage:

    Input (28, 28, 1) -> [ZeroPadding2D(p)] -> Conv2D(F, K, relu, no bias) -> MaxPool2D(2) -> ...
                      -> Flatten -> [Dense(units, relu)] ... -> [Dropout(rate)] -> Dense(10) logits

For the default network that is LeNet-5: Conv2D(6, 5, padding="same") -> MaxPool2D(2) ->
Conv2D(16, 5) -> MaxPool2D(2) -> Flatten -> Dense(128, relu) -> Dense(10). The convolutions have
no bias because SimpleCNN's have none. It is trained by the same rule as the program: Adam,
mean sparse cross-entropy on logits. Keras wants images channels-last, (N, 28, 28, 1) float32
in [0, 1]; :func:`images_to_nhwc` makes them.

Two ways to train it are timed, because a user could write either:
``model.fit`` (what the Keras examples do) and a hand-written loop calling one ``tf.function``
step per batch (which skips fit's data pipeline and callbacks).
"""

import sys
from pathlib import Path

import numpy as np

# The project's modules sit one directory up; this lets the scripts run from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simple_cnn_from_scratch import NUM_CLASSES  # noqa: E402
from training.keras_head import keras, tf  # noqa: E402  (TensorFlow imported quietly, as the program does)
from training.settings import INPUT_SHAPE, TrainConfig  # noqa: E402

CHANNELS, HEIGHT, WIDTH = INPUT_SHAPE
NHWC_SHAPE = (HEIGHT, WIDTH, CHANNELS)


def images_to_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> Keras' float32 input (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def conv_stage_layers(stage) -> list:
    """One SimpleCNN stage (simple_cnn.Stage) as Keras layers: conv -> ReLU -> 2x2 max-pool.

    Written as a Keras user writes it: padding="valid" or "same" where one of them is the
    stage's padding, an explicit ZeroPadding2D otherwise.
    """
    k, padding = stage.kernel_size, stage.padding
    layers = []
    if padding == 0:
        keras_padding = "valid"
    elif k % 2 == 1 and padding == (k - 1) // 2:
        keras_padding = "same"
    else:
        layers.append(keras.layers.ZeroPadding2D(padding))
        keras_padding = "valid"
    layers.append(
        keras.layers.Conv2D(
            stage.out_channels, k, padding=keras_padding, use_bias=False, activation="relu"
        )
    )
    layers.append(keras.layers.MaxPool2D(2))  # "valid": an odd last row is dropped, as SimpleCNN
    return layers


def build_keras_native_model(config: TrainConfig) -> keras.Sequential:
    """The network ``config`` describes, from Keras' layers, compiled with
    Adam(config.learning_rate) and cross-entropy on logits; weights seeded by ``config.seed``.

    ``compile`` keeps its defaults: on a CPU-only machine Keras then runs the step as a
    tf.function without XLA.
    """
    keras.utils.set_random_seed(config.seed)
    layers = [keras.Input(NHWC_SHAPE)]
    for stage in config.network_stages():
        layers += conv_stage_layers(stage)
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(units, activation="relu") for units in config.hidden]
    if config.dropout:
        layers.append(keras.layers.Dropout(config.dropout))
    layers.append(keras.layers.Dense(NUM_CLASSES))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def fit_one_epoch(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int | None = None
) -> None:
    """One epoch of ``model.fit`` over x (N, 28, 28, 1) float32, y (N,) int32, printing nothing.

    ``steps`` ends the epoch after that many batches (None: all of them).
    """
    model.fit(x, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps, shuffle=True, verbose=0)


class CustomLoop:
    """Training by hand: a Python loop over shuffled batches, one compiled step per batch.

    The same work per step as ``fit`` (forward, loss, gradients, Adam), without its data pipeline
    and callbacks, and the same loop shape as the training program's: NumPy picks the batch, a
    tf.function trains on it.
    """

    def __init__(self, model: keras.Model, learning_rate: float, seed: int = 0):
        self.model = model
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(model.trainable_variables)
        self.rng = np.random.default_rng(seed)
        loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        # A free batch size: one trace serves every batch, the smaller last one too.
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, *NHWC_SHAPE], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ]
        )
        def train_step(images, labels):
            with tf.GradientTape() as tape:
                loss = loss_function(labels, model(images, training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        self.train_step = train_step

    def run_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        """One epoch over x (N, 28, 28, 1) float32, y (N,) int32; returns the last batch's loss."""
        order = self.rng.permutation(len(x))
        loss = None
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            loss = self.train_step(x[batch], y[batch])
        return float(loss)


def make_forward(model: keras.Model):
    """A compiled inference pass: images (N, 28, 28, 1) float32 -> logits (N, 10)."""

    @tf.function(input_signature=[tf.TensorSpec([None, *NHWC_SHAPE], tf.float32)])
    def forward(images):
        return model(images, training=False)

    return forward


def predict_logits_compiled(forward, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits (N, 10) of x (N, 28, 28, 1) float32, batch by batch through ``forward``."""
    return np.concatenate(
        [forward(x[start : start + batch_size]).numpy() for start in range(0, len(x), batch_size)]
    )
