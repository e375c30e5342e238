"""Predict with a trained model in NumPy alone: no TensorFlow, no state, safe from any thread.

    import inference
    classifier = inference.load_classifier("simple_cnn_model.npz")
    classifier.predict_proba(x_test[:5])     # uint8 images (5, 28, 28) -> probabilities (5, 10)

The conv stack runs ``SimpleCNN.features`` (the forward pass that keeps nothing for a backward
pass); the dense head's forward pass is one matrix product per layer on the saved weights,
with ReLU between them (dropout only acts while training). That is all prediction needs, so
``predict_digit.py``, the plots, the explorer and the trainer's evaluation start in a fraction
of a second instead of waiting seconds for TensorFlow. The tests prove this head equals Keras'.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from download_mnist import FASHION_LABELS
from plumbing import process_tuning
from plumbing.checks import as_path
from simple_cnn import NonFiniteFeaturesError, SimpleCNN
from training.model_file import ModelFileError, SavedModel, load_model

EVAL_BATCH_SIZE = 512  # large enough that per-call overheads vanish, small enough for the cache
FLOAT32_MAX = float(np.finfo(np.float32).max)  # a Python float: compared without a cast


class NonFiniteOutputError(ModelFileError):
    """The model's outputs overflowed: its weights are damaged or its training diverged."""


def images_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W), 0-255 -> the network's float32 input (N, 1, H, W) in [0, 1]."""
    return np.divide(images, np.float32(255.0), dtype=np.float32)[:, np.newaxis]  # one pass


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax(logits)) over the last axis, computed stably: (N, K) -> (N, K)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)  # exp never overflows
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


softmax = SimpleCNN.softmax  # probabilities from logits (N, K): one softmax for the project


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of logits (N, K) against integer labels (N,), in float64."""
    log_probabilities = log_softmax(logits.astype(np.float64))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def confusion_matrix(
    true_labels: np.ndarray, predicted: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """Counts (num_classes, num_classes) int64: ``matrix[t, p]`` images of class t answered p.

    ``true_labels`` and ``predicted`` are integer labels (N,) in [0, num_classes); a ValueError
    says which is not.
    """
    true_labels, predicted = np.asarray(true_labels), np.asarray(predicted)
    if true_labels.shape != predicted.shape or true_labels.ndim != 1:
        raise ValueError(
            "true and predicted labels must be 1-D of equal length, got "
            f"{true_labels.shape} and {predicted.shape}"
        )
    for name, labels in (("true labels", true_labels), ("predicted labels", predicted)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    # One bincount over the flat index t * C + p counts every (true, predicted) pair.
    flat = true_labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_names(dataset: str, num_classes: int = 10) -> list[str]:
    """What each class index means: Fashion-MNIST's names, or the digits themselves."""
    if dataset == "fashion":
        return list(FASHION_LABELS)
    return [str(index) for index in range(num_classes)]


@dataclass
class DenseHead:
    """The dense head in NumPy: Dense(relu) layers, then Dense logits.

    ``weights[i]`` is layer i's (kernel (in, out), bias (out,)), as Keras stores them.
    """

    weights: list[tuple[np.ndarray, np.ndarray]]

    def forward(self, features: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for features (N, F): the hidden layers' (after ReLU), then the
        logits (N, classes) last."""
        outputs = []
        x = features
        for index, (kernel, bias) in enumerate(self.weights):
            x = x @ kernel + bias
            if index < len(self.weights) - 1:
                x = np.maximum(x, 0)
            outputs.append(x)
        return outputs

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self.forward(features)[-1]

    def backward(self, outputs: list[np.ndarray], d_logits: np.ndarray) -> np.ndarray:
        """d loss / d features from d loss / d logits (N, classes), through every layer.

        ``outputs`` is what forward() returned; a hidden unit's ReLU passes the gradient only
        where it was positive.
        """
        d_x = d_logits
        for index in reversed(range(len(self.weights))):
            kernel, _ = self.weights[index]
            if index < len(self.weights) - 1:
                d_x = d_x * (outputs[index] > 0)
            d_x = d_x @ kernel.T
        return d_x


@dataclass
class Classifier:
    """A trained SimpleCNN and its dense head, ready to classify images.

    Every method keeps nothing between calls: one Classifier serves any number of threads.
    """

    cnn: SimpleCNN
    head: DenseHead
    class_names: list[str]
    source: str = "the model"  # named in error messages
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def logits(self, images: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Logits (N, classes) float32 for uint8 images (N, H, W), batch by batch.

        Raises
        ------
        ValueError
            Images of the wrong shape; ModelFileError when the model's outputs are not finite
            (weights so large that the numbers overflow).
        """
        images = self._check_images(images)
        _check_batch_size(batch_size)
        logits = np.empty((len(images), len(self.class_names)), np.float32)
        # BLAS on one thread, the head's products too: its own threads, left spinning after a
        # product, would slow the next batch's conv threads far more than they save.
        with process_tuning.blas_single_threaded():
            for start in range(0, len(images), batch_size):
                batch = images_to_input(images[start : start + batch_size])
                with np.errstate(over="ignore", invalid="ignore"):  # reported below, with cause
                    logits[start : start + batch_size] = self._logits_of(batch)
        if not np.isfinite(logits).all():
            raise self._overflow_error()
        return logits

    def predict_proba(self, images: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Class probabilities (N, classes) for uint8 images (N, H, W); each row sums to 1."""
        return softmax(self.logits(images, batch_size))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most probable class index (N,) of each uint8 image (N, H, W)."""
        return self.logits(images).argmax(axis=1)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on uint8 images (N, H, W) and labels (N,).

        Raises
        ------
        ValueError
            No images, or labels that are not one class index (0 .. classes - 1) per image.
        """
        images = self._check_images(images)
        labels = self._check_labels(labels, len(images))
        logits = self.logits(images)
        return cross_entropy(logits, labels), float((logits.argmax(axis=1) == labels).mean())

    def _logits_of(self, x: np.ndarray) -> np.ndarray:
        """The head on the features of x, each part in the thread that computed its features."""
        try:
            return self.cnn.features(x, then=self.head.logits)
        except NonFiniteFeaturesError:
            raise self._overflow_error() from None

    def _overflow_error(self) -> NonFiniteOutputError:
        largest = largest_weight(self.cnn.filters, self.head.weights)
        return NonFiniteOutputError(
            f"{self.source}: the model's outputs are not finite numbers (its weights reach "
            f"{largest:.3g}, large enough to overflow): the file is damaged or its training "
            "diverged; train it again"
        )

    def _check_labels(self, labels: np.ndarray, count: int) -> np.ndarray:
        """``labels`` as an integer array (count,) of class indices, or a ValueError saying how
        they differ from that (a label of -1 would silently count as the last class)."""
        classes = len(self.class_names)
        expected = f"one class index (0 to {classes - 1}) per image"
        labels = np.asarray(labels)
        if count == 0:
            raise ValueError("there are no images to evaluate; give at least one image")
        if labels.shape != (count,):
            hint = "; flatten them with labels.ravel()" if labels.size == count else ""
            raise ValueError(
                f"labels must have shape ({count},), {expected}, got shape {labels.shape}{hint}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, {expected}, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(
                f"labels must be {expected}, got values from {labels.min()} to {labels.max()}"
            )
        return labels

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        image_shape = self.cnn.input_shape[1:]
        if images.ndim != 3 or images.shape[1:] != image_shape:
            raise ValueError(
                f"images must have shape (N, {image_shape[0]}, {image_shape[1]}), got "
                f"{images.shape}"
            )
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (0-255), got {images.dtype}")
        return images


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")


def largest_output_bound(
    conv_filters: list[np.ndarray], head_weights: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    """A bound on every number the network computes for pixels in [0, 1], layer by layer.

    A convolution's output is at most its input's bound times the largest sum of one filter's
    absolute weights; ReLU and max-pooling never grow a number; a Dense layer's output is at
    most its input's bound times a column's absolute sum, plus its bias. Partial sums obey the
    same bound, so below float32's largest number nothing can overflow. Computed in float64.
    """
    bound, largest = 1.0, 1.0
    with np.errstate(over="ignore"):  # a bound that overflows float64 is infinite: refused
        for filters in conv_filters:
            bound *= float(np.abs(filters.astype(np.float64)).sum(axis=(1, 2, 3)).max())
            largest = max(largest, bound)
        for kernel, bias in head_weights:
            column_sums = np.abs(kernel.astype(np.float64)).sum(axis=0)
            bound = float((column_sums * bound + np.abs(bias.astype(np.float64))).max())
            largest = max(largest, bound)
    return largest


def largest_weight(conv_filters, head_weights) -> float:
    """The largest magnitude among the filters and the head's (kernel, bias) pairs."""
    arrays = [*conv_filters, *(array for pair in head_weights for array in pair)]
    return max(float(np.abs(array).max()) for array in arrays)


def check_outputs_are_finite(saved: SavedModel, source: str = "the model") -> None:
    """Refuse a model whose outputs can overflow float32 (see largest_output_bound), before
    any image: its predictions, maps and gradients would be NaN.

    Raises
    ------
    NonFiniteOutputError
        One line naming ``source``.
    """
    if largest_output_bound(saved.conv_filters, saved.head_weights) < FLOAT32_MAX:
        return
    largest = largest_weight(saved.conv_filters, saved.head_weights)
    raise NonFiniteOutputError(
        f"{source}: the model's outputs can be numbers that are not finite (its weights reach "
        f"{largest:.3g}, large enough to overflow float32): the file is damaged or its "
        "training diverged; train it again"
    )


def classifier_from_saved(saved: SavedModel, source: str = "the model") -> Classifier:
    """A Classifier from a model file's checked contents.

    Raises
    ------
    NonFiniteOutputError
        The model's outputs can overflow (check_outputs_are_finite).
    """
    check_outputs_are_finite(saved, source)
    architecture = saved.architecture
    cnn = SimpleCNN(
        num_filters=architecture["num_filters"],
        kernel_sizes=architecture["kernel_sizes"],
        paddings=architecture["paddings"],
        input_shape=architecture["input_shape"],
    )
    for index, filters in enumerate(saved.conv_filters):
        cnn.set_filters(index, filters)
    dataset = saved.config.get("dataset", "mnist")
    weights = [
        (kernel.astype(np.float32), bias.astype(np.float32)) for kernel, bias in saved.head_weights
    ]
    return Classifier(
        cnn=cnn,
        head=DenseHead(weights),
        class_names=class_names(dataset, architecture["num_classes"]),
        source=source,
        history=saved.history,
        config=saved.config,
    )


def load_classifier(path: str | os.PathLike) -> Classifier:
    """Read a model file (see model_file.py) as a Classifier.

    Raises
    ------
    ModelFileError
        One line naming the file: missing, damaged, not a SimpleCNN model, or a model whose
        outputs can overflow (NonFiniteOutputError).
    """
    path = as_path(path, "the model file")
    return classifier_from_saved(load_model(path), source=path)
