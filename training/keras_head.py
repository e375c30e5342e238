"""The dense head on top of SimpleCNN's features, in Keras: its layers, its optimizer, its step.

    features (N, F) -> [Dense(units, relu)] ... -> [Dropout(rate)] -> Dense(classes) -> logits

Training runs the head in Keras: ``tf.GradientTape`` gives the gradient of the loss with respect
to the head's weights (Keras' Adam applies it) *and* with respect to the features, which
SimpleCNN's hand-written backward pass takes from there. Predicting needs no Keras at all: the
head's forward pass is a few matrix products on the saved weights (``inference.py``).

Importing this module imports TensorFlow (seconds); the programs import it only to train.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np


def _import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) kept off the terminal.

    TF 2.20+ prints them before its logging is set up, so TF_CPP_MIN_LOG_LEVEL alone cannot hide
    them; file descriptor 2 goes to /dev/null for the import and the device probe only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)
    return tensorflow


tf = _import_tensorflow_quietly()
import keras  # noqa: E402  (after the quiet TensorFlow import above)

# features (N, F), labels (N,) -> (loss, correct, d loss / d features, d loss / d head weights)
HeadStep = Callable[[np.ndarray, np.ndarray], tuple]


def build_head(
    num_features: int,
    hidden: Sequence[int] = (128,),
    dropout: float = 0.0,
    num_classes: int = 10,
    seed: int | None = None,
) -> keras.Sequential:
    """The dense head: hidden Dense(relu) layers, dropout before the last layer, then logits.

    Parameters
    ----------
    num_features : int
        Length of SimpleCNN's feature vector.
    hidden : sequence of int
        Units of each hidden Dense(relu) layer; () for none (features straight to logits).
    dropout : float
        Fraction of the last layer's inputs dropped while training, 0 <= dropout < 1.
    num_classes : int
    seed : int or None
        Seeds the Glorot-uniform kernels and the dropout: the same seed, the same head.

    Returns
    -------
    keras.Sequential
        Maps features (N, num_features) float32 to logits (N, num_classes).
    """
    # Distinct seeds per layer: layers sharing one seed would start from correlated draws.
    seeds = [None if seed is None else seed + index for index in range(len(hidden) + 2)]
    layers = [keras.Input((num_features,))]
    for index, units in enumerate(hidden):
        initializer = keras.initializers.GlorotUniform(seed=seeds[index])
        layers.append(
            keras.layers.Dense(
                units, activation="relu", kernel_initializer=initializer, name=f"hidden{index + 1}"
            )
        )
    if dropout:
        layers.append(keras.layers.Dropout(dropout, seed=seeds[len(hidden) + 1], name="dropout"))
    initializer = keras.initializers.GlorotUniform(seeds[len(hidden)])
    layers.append(keras.layers.Dense(num_classes, kernel_initializer=initializer, name="logits"))
    # Fixed names: the same weight has the same name in every run (TensorBoard's tags).
    return keras.Sequential(layers, name="head")


def build_head_optimizer(head: keras.Model, learning_rate: float = 1e-3) -> keras.optimizers.Adam:
    """A Keras Adam for ``head``, built now so its state exists before the first step."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(head.trainable_variables)
    return optimizer


def make_head_train_step(head: keras.Model, head_optimizer: keras.optimizers.Optimizer) -> HeadStep:
    """One compiled training step of the head that also returns the gradient for SimpleCNN.

    The returned function takes features (N, F) float32 and labels (N,) int32, applies the
    head's optimizer, and returns (mean loss, number correct, d loss / d features (N, F),
    d loss / d each head weight), as tensors.
    """
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # A fixed signature with a free batch size: one trace serves every batch, the last one too.
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, head.input_shape[-1]], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def head_train_step(features, labels):
        with tf.GradientTape() as tape:
            tape.watch(features)  # features are an input, not a variable: ask for their gradient
            logits = head(features, training=True)
            loss = loss_function(labels, logits)
        *head_gradients, d_features = tape.gradient(loss, [*head.trainable_variables, features])
        head_optimizer.apply_gradients(zip(head_gradients, head.trainable_variables, strict=True))
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(predicted == labels, tf.int32))
        return loss, correct, d_features, head_gradients

    # Calling the traced graph directly skips re-checking the arguments against the signature
    # on every call, a tenth of the head's time.
    return head_train_step.get_concrete_function()


def dense_layers(head: keras.Model) -> list[keras.layers.Dense]:
    """The head's Dense layers, in order."""
    return [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]


def head_weights(head: keras.Model) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (in, out), bias (out,)) of every Dense layer, as float32 NumPy arrays."""
    return [
        (np.asarray(layer.kernel, np.float32), np.asarray(layer.bias, np.float32))
        for layer in dense_layers(head)
    ]


def set_head_weights(head: keras.Model, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Load :func:`head_weights`' arrays back into ``head`` (same architecture)."""
    for layer, (kernel, bias) in zip(dense_layers(head), weights, strict=True):
        layer.kernel.assign(kernel.astype(np.float32))
        layer.bias.assign(bias.astype(np.float32))


def variables_state(variables) -> list[np.ndarray]:
    """The values of a list of Keras variables (an optimizer's, a head's random state)."""
    return [np.asarray(variable) for variable in variables]


def set_variables_state(variables, values: Sequence[np.ndarray], what: str) -> None:
    """Assign saved values to Keras variables; ValueError naming ``what`` if they do not fit."""
    if len(values) != len(variables) or any(
        tuple(value.shape) != tuple(variable.shape)
        for value, variable in zip(values, variables, strict=False)
    ):
        raise ValueError(f"the saved {what} does not match the head")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value.astype(variable.dtype))
