"""inference.py's public functions check their arguments: a ValueError that says what was
expected, never a number computed from a wrong argument or a bare TypeError."""

import numpy as np
import pytest

import inference
from download_mnist import load_dataset
from inference import Classifier, DenseHead
from simple_cnn import SimpleCNN


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    cnn = SimpleCNN(seed=0)
    rng = np.random.default_rng(0)
    head = DenseHead([(rng.normal(0, 0.05, (400, 10)).astype(np.float32), np.zeros(10, "f4"))])
    return Classifier(cnn=cnn, head=head, class_names=[str(d) for d in range(10)])


@pytest.fixture(scope="module")
def images_and_labels():
    _, _, x_test, y_test = load_dataset()
    return x_test[:64], y_test[:64]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda y: y[:1], r"labels must have shape \(64,\), one class index \(0 to 9\) per image"),
        (lambda y: y[:, None], r"got shape \(64, 1\); flatten them with labels.ravel\(\)"),
        (
            lambda y: np.where(np.arange(64) == 3, -1, y.astype(np.int64)),
            r"got values from -1 to \d$",
        ),
        (lambda y: np.where(np.arange(64) == 3, 10, y), r"got values from \d to 10$"),
        (lambda y: y.astype(np.float64), r"labels must be integers, .*, got dtype float64"),
        (lambda y: np.array(["7"] * 64), r"labels must be integers"),
    ],
    ids=["one-label", "column", "minus-one", "ten", "floats", "text"],
)
def test_evaluate_refuses_labels_that_are_not_one_class_index_per_image(
    classifier, images_and_labels, labels, message
):
    images, y = images_and_labels
    with pytest.raises(ValueError, match=message):
        classifier.evaluate(images, labels(y))


def test_evaluate_refuses_an_empty_set(classifier, images_and_labels):
    images, y = images_and_labels
    with pytest.raises(ValueError, match="no images to evaluate"):
        classifier.evaluate(images[:0], y[:0])


def test_evaluate_gives_the_loss_and_accuracy_of_good_labels(classifier, images_and_labels):
    images, y = images_and_labels
    loss, accuracy = classifier.evaluate(images, y.astype(np.int64))
    predicted = classifier.predict(images)
    assert accuracy == np.mean(predicted == y) and np.isfinite(loss) and loss > 0


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, "64", True, None])
def test_a_batch_size_that_is_not_a_positive_integer_is_refused(
    classifier, images_and_labels, batch_size
):
    images, _ = images_and_labels
    for method in (classifier.logits, classifier.predict_proba):
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got"):
            method(images, batch_size)


def test_any_positive_batch_size_gives_the_same_answers(classifier, images_and_labels):
    images, _ = images_and_labels
    whole = classifier.predict_proba(images)
    for batch_size in (1, 7, np.int64(64), 1000):
        np.testing.assert_allclose(classifier.predict_proba(images, batch_size), whole, rtol=1e-5)


@pytest.mark.parametrize("path", [5, None, 2.5, ["m.npz"]])
def test_load_classifier_refuses_what_is_not_a_path(path):
    with pytest.raises(ValueError, match="the model file must be a path"):
        inference.load_classifier(path)


def test_load_classifier_takes_a_path_given_as_bytes(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}/missing.npz: no such model file"):
        inference.load_classifier(bytes(tmp_path / "missing.npz"))
