"""TensorFlow references for the tests (NHWC on CPU), in SimpleCNN's NumPy layouts.

NCHW arrays and OIHW filters are transposed inside the tape, so gradients come back in the NumPy
layout. Imported by the test modules as ``from tf_reference import ...``; it imports TensorFlow.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf


def tf_conv2d(x: tf.Tensor, filters: tf.Tensor, padding: int) -> tf.Tensor:
    """NCHW x, OIHW filters -> NCHW cross-correlation with zero padding, as SimpleCNN.conv2d."""
    x_nhwc = tf.transpose(x, (0, 2, 3, 1))
    x_nhwc = tf.pad(x_nhwc, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    out = tf.nn.conv2d(x_nhwc, tf.transpose(filters, (2, 3, 1, 0)), strides=1, padding="VALID")
    return tf.transpose(out, (0, 3, 1, 2))


def tf_maxpool2d(x: tf.Tensor, size: int, stride: int) -> tf.Tensor:
    """NCHW x -> NCHW max-pool over size x size windows, no padding, as SimpleCNN.maxpool2d."""
    out = tf.nn.max_pool2d(tf.transpose(x, (0, 2, 3, 1)), size, stride, padding="VALID")
    return tf.transpose(out, (0, 3, 1, 2))


def tf_stages(paddings: Sequence[int]):
    """A function (x, *filters) -> features of conv -> ReLU -> 2x2 max-pool stages, flattened
    channel-major, in tf.nn ops: the network SimpleCNN builds, written the textbook way."""

    def network(x: tf.Tensor, *filters: tf.Tensor) -> tf.Tensor:
        h = x
        for stage_filters, padding in zip(filters, paddings, strict=True):
            h = tf_maxpool2d(tf.nn.relu(tf_conv2d(h, stage_filters, padding)), 2, 2)
        return tf.reshape(h, (h.shape[0], -1))

    return network


def tf_network(x: tf.Tensor, conv1_filters: tf.Tensor, conv2_filters: tf.Tensor) -> tf.Tensor:
    """The default SimpleCNN (LeNet-5's stages) in tf.nn ops: (N, 1, 28, 28) -> (N, 400)."""
    return tf_stages((2, 0))(x, conv1_filters, conv2_filters)


def tf_value_and_grads(function, inputs: list[np.ndarray], d_out: np.ndarray):
    """function(*inputs) and the gradient of sum(function(*inputs) * d_out) wrt every input."""
    tensors = [tf.constant(array) for array in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        out = function(*tensors)
    grads = tape.gradient(out, tensors, output_gradients=tf.constant(d_out))
    return out.numpy(), [grad.numpy() for grad in grads]
