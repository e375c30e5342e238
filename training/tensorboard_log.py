"""TensorBoard logs of a training run, written where and as Keras' TensorBoard callback does.

    python simple_cnn_from_scratch.py --tensorboard logs
    tensorboard --logdir logs

``logs/train`` gets, after every epoch (step = the epoch's index from 0, as in ``model.fit``):
``epoch_loss``, ``epoch_accuracy`` and ``epoch_learning_rate``; a histogram of every layer's
weights (``conv1/filters/histogram``, ``head/hidden1/kernel/histogram``, ...) and of their gradients
at the epoch's last step (``.../gradient_histogram``); and each conv stage's filters as one
image (``conv1/filters/image``: one tile per filter and input channel, red positive, blue
negative, white zero, one scale per stage). Every ``every`` steps it also gets ``batch_loss``
and ``batch_accuracy``, the epoch's running means so far (step = steps since the run began),
as Keras logs them. ``logs/validation`` gets ``epoch_loss`` and ``epoch_accuracy``.
"""

from __future__ import annotations

import os

import numpy as np
from tensorboard.plugins.histogram import metadata as histogram_metadata

from training.keras_head import dense_layers, tf

_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(
    display_name=None, description=None
)

TILE_PIXELS = 8  # each filter weight drawn as an 8x8 block: 5x5 filters become 40x40 tiles
GAP_PIXELS = 2  # white space between tiles


class TensorBoardLog:
    """Writes a run's scalars, histograms and filter images into ``log_dir``/train, /validation.

    Parameters
    ----------
    log_dir : str
    every : int
        Log the batch-level scalars every this many steps.
    """

    def __init__(self, log_dir: str, every: int = 50):
        self.train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.validation_writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
        self.every = every
        self.last_step = None  # the epoch's last StepResult: its gradients go in the histograms

    def step(self, model, result, sums) -> None:
        """After a training step: remember its gradients; every ``every`` steps, log scalars."""
        self.last_step = result
        steps_done = model.conv_optimizer.iterations  # every step of the run, resumes included
        if steps_done % self.every == 0:
            loss, accuracy = (value for _, value in sums.means())
            with self.train_writer.as_default(step=steps_done):
                tf.summary.scalar("batch_loss", loss)
                tf.summary.scalar("batch_accuracy", accuracy)

    def epoch(self, model, record: dict, learning_rate: float) -> None:
        """After an epoch's validation: its scalars, the weights, the gradients and the filters."""
        epoch = record["epoch"] - 1  # Keras counts epochs from 0 in its logs
        with self.train_writer.as_default(step=epoch):
            tf.summary.scalar("epoch_loss", record["loss"])
            tf.summary.scalar("epoch_accuracy", record["accuracy"])
            tf.summary.scalar("epoch_learning_rate", learning_rate)
            for name, weight, gradient in self._layers(model):
                write_histogram(f"{name}/histogram", weight, epoch)
                if gradient is not None:
                    write_histogram(f"{name}/gradient_histogram", gradient, epoch)
            for number, filters in enumerate(model.cnn.filters, start=1):
                tf.summary.image(f"conv{number}/filters/image", filters_image(filters))
        with self.validation_writer.as_default(step=epoch):
            tf.summary.scalar("epoch_loss", record["val_loss"])
            tf.summary.scalar("epoch_accuracy", record["val_accuracy"])
        self.train_writer.flush()
        self.validation_writer.flush()

    def _layers(self, model):
        """(name, weights, gradient or None) of every weight of the network, in order."""
        result = self.last_step
        for index, filters in enumerate(model.cnn.filters):
            gradient = result.conv_gradients[index] if result else None
            yield f"conv{index + 1}/filters", filters, gradient
        head_weights = [w for layer in dense_layers(model.head) for w in (layer.kernel, layer.bias)]
        gradients = result.head_gradients if result else [None] * len(head_weights)
        for weight, gradient in zip(head_weights, gradients, strict=True):
            yield weight.path, weight, gradient

    def close(self) -> None:
        self.train_writer.close()
        self.validation_writer.close()


HISTOGRAM_BUCKETS = 30  # TensorBoard's own default


def write_histogram(tag: str, values, step: int) -> None:
    """What tf.summary.histogram writes (the histograms plugin's (buckets, 3) tensor of left
    edge, right edge and count), with the buckets counted by NumPy: TensorFlow's own eager
    histogram op is many times slower, enough to slow training noticeably."""
    counts, edges = np.histogram(np.asarray(values, np.float64), bins=HISTOGRAM_BUCKETS)
    buckets = np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)
    tf.summary.write(tag, buckets, step=step, metadata=_HISTOGRAM_METADATA)


def filters_image(filters: np.ndarray) -> np.ndarray:
    """A conv stage's filters (F, C, K, K) as one RGB image (1, height, width, 3) uint8.

    Row f, column c is filter f's weights on input channel c, each weight a block of
    TILE_PIXELS: red for positive, blue for negative, white for zero, on one scale symmetric
    around 0 for the whole stage (so filters can be compared), as in plot_results.py.
    """
    filters = np.asarray(filters, np.float64)
    n_filters, channels, k, _ = filters.shape
    scale = float(np.abs(filters).max()) or 1.0
    strength = np.clip(filters / scale, -1, 1)  # (F, C, K, K) in [-1, 1]
    # White fades to red (1, 0, 0) for +1 and to blue (0, 0, 1) for -1.
    red = np.where(strength < 0, 1 + strength, 1.0)
    blue = np.where(strength > 0, 1 - strength, 1.0)
    green = 1 - np.abs(strength)
    tiles = np.stack([red, green, blue], axis=-1)  # (F, C, K, K, 3)
    tiles = tiles.repeat(TILE_PIXELS, axis=2).repeat(TILE_PIXELS, axis=3)
    tile = k * TILE_PIXELS
    step = tile + GAP_PIXELS
    image = np.ones((n_filters * step - GAP_PIXELS, channels * step - GAP_PIXELS, 3))
    for f in range(n_filters):
        for c in range(channels):
            image[f * step : f * step + tile, c * step : c * step + tile] = tiles[f, c]
    return np.round(image * 255).astype(np.uint8)[np.newaxis]
