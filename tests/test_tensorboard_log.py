"""--tensorboard: the event files hold what Keras' TensorBoard callback writes, with our values."""

import glob
import os
from collections import defaultdict

import numpy as np
import pytest
import tensorflow as tf

import simple_cnn_from_scratch as driver
from training.tensorboard_log import filters_image


def read_events(folder):
    """{tag: {step: value}} of every summary in the event files of ``folder``.

    Scalars come back as floats, histograms as their (count, 3) bucket tensors and images as
    the list of encoded strings they are stored as.
    """
    found = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                found[value.tag][event.step] = array.item() if array.ndim == 0 else array
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensorboard")
    config = driver.TrainConfig(
        epochs=2,
        limit=1000,
        batch_size=50,
        no_save=True,
        verbose=False,
        tensorboard_dir=str(folder / "logs"),
        tensorboard_every=7,
    )
    history = driver.train(config)
    return (
        history,
        read_events(folder / "logs" / "train"),
        read_events(folder / "logs" / "validation"),
    )


def test_epoch_scalars_are_the_histories_numbers(run):
    history, train, validation = run
    for index, record in enumerate(history["epochs"]):  # Keras counts epochs from 0
        assert train["epoch_loss"][index] == pytest.approx(record["loss"], rel=1e-6)
        assert train["epoch_accuracy"][index] == pytest.approx(record["accuracy"], rel=1e-6)
        assert validation["epoch_loss"][index] == pytest.approx(record["val_loss"], rel=1e-6)
        assert validation["epoch_accuracy"][index] == pytest.approx(record["val_accuracy"])
    assert train["epoch_learning_rate"] == pytest.approx({0: 0.004, 1: 0.004 * 0.6})
    assert set(validation) == {"epoch_loss", "epoch_accuracy"}


def test_batch_scalars_every_n_steps(run):
    _, train, _ = run
    steps = sorted(train["batch_loss"])
    assert steps == [7, 14, 21, 28, 35]  # 20 steps an epoch, 40 in all, every 7th
    assert sorted(train["batch_accuracy"]) == steps
    assert all(
        0 < train["batch_loss"][s] < 3 and 0 <= train["batch_accuracy"][s] <= 1 for s in steps
    )


def test_weight_and_gradient_histograms_of_every_layer(run):
    _, train, _ = run
    names = ["conv1/filters", "conv2/filters"] + [
        f"head/{layer}/{kind}" for layer in ("hidden1", "logits") for kind in ("kernel", "bias")
    ]
    for name in names:
        for kind in ("histogram", "gradient_histogram"):
            tag = f"{name}/{kind}"
            assert tag in train, f"{tag} missing from {sorted(train)}"
            buckets = train[tag][1]  # (count, 3): left edge, right edge, count
            expected = {"conv1": 150, "conv2": 2400}.get(name.split("/")[0])
            if expected:
                assert buckets[:, 2].sum() == expected  # every weight counted once


def test_filters_as_images(run):
    _, train, _ = run
    for number, (filters_count, channels) in enumerate([(6, 1), (16, 6)], start=1):
        encoded = train[f"conv{number}/filters/image"][1]
        width, height = int(encoded[0]), int(encoded[1])
        assert (width, height) == (channels * 42 - 2, filters_count * 42 - 2)  # 5x5 at 8 px + gaps
        picture = tf.io.decode_png(encoded[2]).numpy()
        assert picture.shape == (height, width, 3)


def test_filters_image_colours():
    filters = np.zeros((1, 1, 3, 3))
    filters[0, 0, 0, 0], filters[0, 0, 2, 2] = 2.0, -1.0
    image = filters_image(filters)[0]
    assert image.shape == (24, 24, 3)
    assert tuple(image[0, 0]) == (255, 0, 0)  # the strongest positive weight: red
    assert tuple(image[23, 23]) == (128, 128, 255)  # half as strong, negative: light blue
    assert tuple(image[12, 12]) == (255, 255, 255)  # zero: white
