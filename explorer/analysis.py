"""What the explorer shows about one image, computed by the project's own NumPy code.

Each function takes a trained ``inference.Classifier`` and a 28x28 uint8 image and returns
plain arrays and numbers; ``explorer/api.py`` checks the page's requests and calls them. Nothing
here keeps state or changes the classifier, so any number of requests can run at once:

* :func:`analyse`: the probabilities and every layer's output (conv, pool, features, the head's
  hidden layers, the logits), optionally with filters switched off or part of the image covered;
* :func:`conv_arithmetic`: the window, the filter, their products and the sum behind one pixel
  of a convolution map; :func:`pool_arithmetic`: the 2x2 window behind one pooled pixel and which
  of its pixels won;
* :func:`class_gradients`: d (a class's logit, or the difference of two) / d (the input image
  and every stage's output), by SimpleCNN's hand-written backward pass, the head's part by the
  head; :func:`weight_gradient`: one filter weight's gradient as a sum over positions, beside
  SimpleCNN's; :func:`training_step`: one training step, stage by stage, and Adam's update;
* :func:`test_set_report`: the confusion matrix and the most confident mistakes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from inference import Classifier, confusion_matrix, images_to_input, softmax
from simple_cnn import POOL_SIZE, SimpleCNN


class AnalysisError(ValueError):
    """A request that does not fit the model: an unknown layer, class, filter or pixel."""


@dataclass
class Layer:
    """One layer's output for one image, as the page draws it.

    ``values`` is (channels, height, width) for maps, (units,) for vectors; ``kind`` is "conv",
    "pool" or "vector". ``scale`` is the largest absolute value: the page's colour scale runs
    from -scale (blue) through 0 (white) to +scale (red), one scale per layer.
    """

    name: str
    kind: str
    values: np.ndarray

    @property
    def scale(self) -> float:
        return float(np.abs(self.values).max()) if self.values.size else 0.0


@dataclass
class Analysis:
    image: np.ndarray  # (28, 28) uint8: what the network saw (after any covering)
    probabilities: np.ndarray  # (classes,)
    layers: list[Layer]

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.probabilities))


def network_with_filters_off(cnn: SimpleCNN, disabled: dict[str, list[int]]) -> SimpleCNN:
    """A copy of ``cnn`` whose listed filters are zero, e.g. {"conv1": [2, 5]}; cnn is untouched.

    A filter of zeros makes its whole map zero: the experiment of switching it off.
    """
    if not disabled:
        return cnn
    changed = copy.copy(cnn)  # shares everything but the list of filter arrays, replaced below
    changed.filters = list(cnn.filters)
    for layer, indices in disabled.items():
        stage = _stage_index(cnn, layer, "conv")
        filters = changed.filters[stage].copy()
        for index in indices:
            if not 0 <= index < len(filters):
                raise AnalysisError(f"{layer} has filters 0 to {len(filters) - 1}, not {index}")
            filters[index] = 0
        changed.filters[stage] = filters
    return changed


def cover(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """``image`` with the box (top, left, bottom, right), bottom and right excluded, set to 0."""
    if box is None:
        return image
    top, left, bottom, right = box
    height, width = image.shape
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise AnalysisError(
            f"the covered box {list(box)} must lie inside the {height}x{width} image, top < "
            "bottom and left < right"
        )
    covered = image.copy()
    covered[top:bottom, left:right] = 0
    return covered


def analyse(classifier: Classifier, image: np.ndarray) -> Analysis:
    """The probabilities and every layer's output for one uint8 image (28, 28).

    Experiments change the arguments: a classifier whose network has filters switched off
    (network_with_filters_off), an image partly covered (cover).
    """
    cnn = classifier.cnn
    maps = cnn.feature_maps(images_to_input(image[np.newaxis]))
    layers = []
    for number in range(1, len(cnn.stages) + 1):
        layers.append(Layer(f"conv{number}", "conv", maps[f"conv{number}"][0]))
        layers.append(Layer(f"pool{number}", "pool", maps[f"pool{number}"][0]))
    features = maps[f"pool{len(cnn.stages)}"].reshape(1, -1)  # flatten, channel-major
    layers.append(Layer("features", "vector", features[0]))
    outputs = classifier.head.forward(features)
    for number, hidden in enumerate(outputs[:-1], start=1):
        layers.append(Layer(f"hidden{number}", "vector", hidden[0]))
    layers.append(Layer("logits", "vector", outputs[-1][0]))
    return Analysis(image=image, probabilities=softmax(outputs[-1])[0], layers=layers)


# --------------------------------------------------------------------------------------------
# The arithmetic behind one pixel
# --------------------------------------------------------------------------------------------


def conv_arithmetic(
    classifier: Classifier, image: np.ndarray, layer: str, channel: int, row: int, column: int
) -> dict:
    """The numbers behind pixel (row, column) of map ``channel`` of conv layer ``layer``.

    Returns the K x K window of the layer's (zero-padded) input under the filter, for every
    input channel (C, K, K), which of its cells are padding (K, K), the filter (C, K, K), their
    products, their sum and the value in
    the map, which is that sum (stride 1, no bias). The first convolution's input is the image
    in [0, 1]; a later one's is the previous stage's pooled output.
    """
    cnn = classifier.cnn
    stage = _stage_index(cnn, layer, "conv")
    x = images_to_input(image[np.newaxis])
    maps = cnn.feature_maps(x)
    conv = maps[layer][0]
    _check_pixel(layer, conv, channel, row, column)
    layer_input = x[0] if stage == 0 else maps[f"pool{stage}"][0]
    padding, k = cnn.stages[stage].padding, cnn.stages[stage].kernel_size
    padded = np.pad(layer_input, ((0, 0), (padding, padding), (padding, padding)))
    window = padded[:, row : row + k, column : column + k]
    # Which cells of the window fall on the padding (the zeros around the input): 1, else 0.
    height, width = layer_input.shape[1:]
    rows, columns = np.arange(row, row + k), np.arange(column, column + k)
    inside_rows = (rows >= padding) & (rows < height + padding)
    inside_columns = (columns >= padding) & (columns < width + padding)
    padding_cells = ~(inside_rows[:, np.newaxis] & inside_columns[np.newaxis, :])
    filters = cnn.filters[stage][channel]
    products = window * filters
    return {
        "layer": layer,
        "channel": channel,
        "row": row,
        "column": column,
        "padding": padding,
        "input": "image" if stage == 0 else f"pool{stage}",
        "window": window,
        "padding_cells": padding_cells.astype(np.uint8),  # (K, K): 1 where the window reads padding
        "filter": filters,
        "products": products,
        "channel_sums": products.sum(axis=(1, 2)),
        "sum": float(products.sum()),
        "value": float(conv[channel, row, column]),
    }


def pool_arithmetic(
    classifier: Classifier, image: np.ndarray, layer: str, channel: int, row: int, column: int
) -> dict:
    """The 2x2 window of the ReLU'd convolution behind pooled pixel (row, column) and its winner.

    The winner is the window's first maximum in row-major order, the one pixel the backward
    pass sends the gradient to, as SimpleCNN decides.
    """
    cnn = classifier.cnn
    stage = _stage_index(cnn, layer, "pool")
    maps = cnn.feature_maps(images_to_input(image[np.newaxis]))
    pooled = maps[layer][0]
    _check_pixel(layer, pooled, channel, row, column)
    relu = maps[f"relu{stage + 1}"][0, channel]
    top, left = row * POOL_SIZE, column * POOL_SIZE
    window = relu[top : top + POOL_SIZE, left : left + POOL_SIZE]
    winner = int(np.argmax(window))  # np.argmax returns the first maximum, row-major
    return {
        "layer": layer,
        "channel": channel,
        "row": row,
        "column": column,
        "source": f"relu{stage + 1}",
        "top": top,
        "left": left,
        "window": window,
        "winner": [winner // POOL_SIZE, winner % POOL_SIZE],
        "value": float(pooled[channel, row, column]),
    }


# --------------------------------------------------------------------------------------------
# Why this answer: gradients of a class's score
# --------------------------------------------------------------------------------------------


def class_gradients(
    classifier: Classifier, image: np.ndarray, class_index: int, versus: int | None = None
) -> dict:
    """d score / d (input image, every stage's pooled output, the features), where the score
    is the logit of ``class_index``, or, with ``versus``, that logit minus the logit of
    ``versus`` ("what makes this a 7 rather than a 1").

    The head's part comes from the dense head's backward pass (inference.DenseHead.backward),
    the rest from SimpleCNN.gradients, the same hand-written backward pass that trains it.
    A positive value means: more of this pixel (or unit) would raise the score. ``filters`` is
    d score / d each stage's filters (F, C, K, K): what a training step would change.
    ``gradient_x_input`` is the gradient times the image (0..1): where the ink that is there
    pushes the score, pixel by pixel.
    """
    x, outputs, d_features, gradients = _backward(classifier, image, class_index, versus)
    logits = outputs[-1][0]
    score = logits[class_index] - (logits[versus] if versus is not None else 0.0)
    return {
        "class": class_index,
        "versus": versus,
        "logit": float(logits[class_index]),
        "score": float(score),
        "input": gradients.input[0, 0],
        "gradient_x_input": gradients.input[0, 0] * x[0, 0],
        "pooled": {f"pool{i + 1}": g[0] for i, g in enumerate(gradients.pooled)},
        "filters": {f"conv{i + 1}": g for i, g in enumerate(gradients.filters)},
        "features": d_features[0],
    }


def _backward(classifier: Classifier, image: np.ndarray, class_index: int, versus: int | None):
    """The forward pass of one image and the backward pass of its score (see class_gradients):
    the input x (1, 1, 28, 28), the head's outputs, d score / d features and SimpleCNN's
    Gradients (filters, input, pooled)."""
    classes = len(classifier.class_names)
    for name, value in (("class", class_index), ("versus", versus)):
        if value is not None and not 0 <= value < classes:
            raise AnalysisError(f"{name} must be 0 to {classes - 1}, got {value}")
    if versus == class_index:
        raise AnalysisError(f"versus must be another class than {class_index}")
    x = images_to_input(image[np.newaxis])
    cnn = classifier.cnn
    features = cnn.features(x)
    outputs = classifier.head.forward(features)
    d_logits = np.zeros_like(outputs[-1])
    d_logits[0, class_index] = 1.0  # the score is the class's logit ...
    if versus is not None:
        d_logits[0, versus] = -1.0  # ... minus the other's
    d_features = classifier.head.backward(outputs, d_logits)
    return x, outputs, d_features, cnn.gradients(x, d_features)


def pool_backward_routing(relu: np.ndarray, d_pooled: np.ndarray) -> np.ndarray:
    """Max-pooling's backward pass, written out: each pooled pixel's gradient goes to the first
    maximum of its 2x2 window of ``relu`` (F, H, W), the others get 0. An odd last row or
    column was dropped by the pooling and gets 0 too. Returns d relu (F, H, W)."""
    channels, height, width = relu.shape
    rows, columns = d_pooled.shape[1:]
    windows = relu[:, : rows * POOL_SIZE, : columns * POOL_SIZE]
    windows = windows.reshape(channels, rows, POOL_SIZE, columns, POOL_SIZE).transpose(
        0, 1, 3, 2, 4
    )
    winner = windows.reshape(channels, rows, columns, POOL_SIZE * POOL_SIZE).argmax(axis=3)
    d_relu = np.zeros_like(relu)
    f, r, c = np.indices((channels, rows, columns))
    d_relu[f, r * POOL_SIZE + winner // POOL_SIZE, c * POOL_SIZE + winner % POOL_SIZE] = d_pooled
    return d_relu


def weight_gradient(
    classifier: Classifier,
    image: np.ndarray,
    class_index: int,
    versus: int | None,
    layer: str,
    filter_index: int,
    channel: int,
    row: int,
    column: int,
) -> dict:
    """d score / d one filter weight, W[filter, channel, row, column] of conv ``layer``, as
    the sum over every position (y, x) of the map of

        the input the weight multiplies there, padded_input[channel, y + row, x + column]
      x the upstream gradient there, d score / d conv[filter, y, x]

    where the upstream gradient is the stage's pooled gradient routed back through max-pooling
    (to the first maximum) and ReLU (only where the convolution was positive). ``network_value``
    is the same derivative as SimpleCNN.gradients computes it, for comparison.
    """
    cnn = classifier.cnn
    stage = _stage_index(cnn, layer, "conv")
    filters = cnn.filters[stage]
    count, channels, k, _ = filters.shape
    if not (
        0 <= filter_index < count and 0 <= channel < channels and 0 <= row < k and 0 <= column < k
    ):
        raise AnalysisError(
            f"{layer} has {count} filters of {channels} channels of {k}x{k} weights; filter "
            f"{filter_index}, channel {channel}, weight ({row}, {column}) is outside them"
        )
    x, _, _, gradients = _backward(classifier, image, class_index, versus)
    maps = cnn.feature_maps(x)
    number = stage + 1
    conv = maps[f"conv{number}"][0]
    d_relu = pool_backward_routing(maps[f"relu{number}"][0], gradients.pooled[stage][0])
    d_conv = d_relu * (conv > 0)  # ReLU's derivative: 1 where it was positive, else 0
    layer_input = x[0] if stage == 0 else maps[f"pool{stage}"][0]
    padding = cnn.stages[stage].padding
    padded = np.pad(layer_input, ((0, 0), (padding, padding), (padding, padding)))
    height, width = conv.shape[1:]
    inputs = padded[channel, row : row + height, column : column + width]
    products = inputs * d_conv[filter_index]
    return {
        "layer": layer,
        "filter": filter_index,
        "channel": channel,
        "row": row,
        "column": column,
        "class": class_index,
        "versus": versus,
        "weight": float(filters[filter_index, channel, row, column]),
        "padding": padding,
        "kernel_size": k,
        "input": "image" if stage == 0 else f"pool{stage}",
        "inputs": inputs,
        "upstream": d_conv[filter_index],
        "products": products,
        "sum": float(products.sum(dtype=np.float64)),
        "network_value": float(gradients.filters[stage][filter_index, channel, row, column]),
    }


def training_step(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    learning_rate: float,
    adam_state: dict | None = None,
) -> dict:
    """One training step on uint8 images (N, 28, 28) with labels (N,), stage by stage, changing
    nothing: the forward pass, the loss (mean cross-entropy), d loss / d logits (softmax minus
    the one-hot label, over N), d loss / d features, each stage's d loss / d pooled maps (for
    the first image), the filters' gradients (for the batch) and Adam's update of the filters,
    from ``adam_state`` (the model file's moments) or, without it, a fresh Adam's first step.
    """
    from adam import Adam

    cnn = classifier.cnn
    x = images_to_input(images)
    count = len(images)
    features = cnn.features(x)
    outputs = classifier.head.forward(features)
    probabilities = softmax(outputs[-1])
    picked = probabilities[np.arange(count), labels]
    loss = float(-np.log(np.maximum(picked, 1e-12)).mean())
    one_hot = np.eye(probabilities.shape[1], dtype=probabilities.dtype)[labels]
    d_logits = (probabilities - one_hot) / count  # the mean's gradient: each image weighs 1/N
    d_features = classifier.head.backward(outputs, d_logits)
    gradients = cnn.gradients(x, d_features)
    adam = Adam(learning_rate=learning_rate)
    if adam_state and int(adam_state.get("iterations", 0)) > 0:
        adam.load_state_dict(adam_state)
    filters = [f.copy() for f in cnn.filters]
    adam.step(
        filters,
        [np.asarray(g, dtype=f.dtype) for g, f in zip(gradients.filters, filters, strict=True)],
    )
    maps = cnn.feature_maps(x[:1])
    return {
        "count": count,
        "labels": labels,
        "predictions": probabilities.argmax(axis=1),
        "probabilities": probabilities[0],
        "loss": loss,
        "losses": -np.log(np.maximum(picked, 1e-12)),
        "d_logits": d_logits[0],
        "d_features": d_features[0],
        "stages": [
            {
                "name": f"conv{number}",
                "maps": maps[f"conv{number}"][0],
                "d_pooled": gradients.pooled[number - 1][0],
                "d_filters": gradients.filters[number - 1],
                "update": filters[number - 1] - cnn.filters[number - 1],
                "filters": cnn.filters[number - 1],
            }
            for number in range(1, len(cnn.stages) + 1)
        ],
        "learning_rate": learning_rate,
        "adam_step": adam.iterations,
    }


# --------------------------------------------------------------------------------------------
# The test set
# --------------------------------------------------------------------------------------------


def test_set_report(
    classifier: Classifier, images: np.ndarray, labels: np.ndarray, mistakes: int = 36
) -> dict:
    """Accuracy, the confusion matrix (true class x predicted class), one example per cell (the
    index of its most confident member, or None for an empty cell) and the ``mistakes`` most
    confident mistakes (index, true, predicted, probability), most confident first."""
    probabilities = classifier.predict_proba(images)
    predicted = probabilities.argmax(axis=1)
    classes = len(classifier.class_names)
    confusion = confusion_matrix(labels, predicted, classes)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    shown = wrong[np.argsort(-confidence, kind="stable")][:mistakes]
    # One digit per cell of the matrix to show when it is clicked: its most confident member.
    examples = [[None] * classes for _ in range(classes)]
    for true, guess in zip(*np.nonzero(confusion), strict=True):
        members = np.flatnonzero((labels == true) & (predicted == guess))
        examples[true][guess] = int(members[np.argmax(probabilities[members, guess])])
    return {
        "accuracy": float((predicted == labels).mean()),
        "count": len(labels),
        "confusion": confusion,
        "examples": examples,
        "mistakes": [
            {
                "index": int(index),
                "true": int(labels[index]),
                "predicted": int(predicted[index]),
                "probability": float(probabilities[index, predicted[index]]),
            }
            for index in shown
        ],
    }


def _stage_index(cnn: SimpleCNN, layer: str, kind: str) -> int:
    """conv3 -> 2: the stage a layer name belongs to, refused if the network has no such layer."""
    names = [f"{kind}{number}" for number in range(1, len(cnn.stages) + 1)]
    if layer not in names:
        raise AnalysisError(f"unknown {kind} layer {layer!r}; this network has {', '.join(names)}")
    return names.index(layer)


def _check_pixel(layer: str, maps: np.ndarray, channel: int, row: int, column: int) -> None:
    channels, height, width = maps.shape
    if not (0 <= channel < channels and 0 <= row < height and 0 <= column < width):
        raise AnalysisError(
            f"{layer} has {channels} maps of {height}x{width}; map {channel}, pixel ({row}, "
            f"{column}) is outside them"
        )
