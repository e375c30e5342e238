"""Digits written with a mouse on the explorer's pad (benchmarks/mouse_digits.json), replayed as
the pad draws them for the server and prepared as the server prepares them, stay readable.

The set is what a class does first; a change to the preparation or the training that makes the
network misread it shows here. Measured on a 2-core AMD EPYC: the quick model below reads all
126 drawings (the default model too, with bench_handwriting.py --sources mouse).
"""

import json
import os
import sys

import numpy as np
import pytest

import inference
import simple_cnn_from_scratch as driver

BENCHMARKS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)
sys.path.insert(0, BENCHMARKS_DIR)
try:
    import bench_handwriting
finally:
    sys.path.remove(BENCHMARKS_DIR)


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("mouse") / "quick.npz"
    config = driver.TrainConfig(limit=8000, epochs=2, seed=0, save_path=str(path), verbose=False)
    driver.train(config)
    return inference.load_classifier(path)


def test_the_set_has_every_digit_in_several_ways_of_writing_it():
    drawings = json.loads(bench_handwriting.MOUSE_DIGITS.read_text())["drawings"]
    assert sorted({d["label"] for d in drawings}) == list(range(10))
    assert len({d["style"] for d in drawings}) >= 20
    for drawing in drawings:
        points = np.concatenate([np.array(stroke) for stroke in drawing["strokes"]])
        assert points.min() >= 0 and points.max() <= 1  # pad units, as the pad keeps them


def test_the_pad_drawing_is_ink_on_paper_as_the_pad_sends_it():
    ink = bench_handwriting.pad_ink([[[0.2, 0.5], [0.8, 0.5]]])
    assert ink.shape == (112, 112) and ink.max() == 1.0 and ink[10, 10] == 0.0
    rows = np.flatnonzero(ink[:, 56] > 0.5)
    assert abs(len(rows) - 0.075 * 112) <= 1  # the pad's pen: 7.5% of its side


def test_mouse_drawn_digits_are_read_at_least_as_well_as_measured(quick_model):
    digits = bench_handwriting.mouse_digits()
    images = bench_handwriting.prepared(digits, None, on_the_pad=True)
    correct = quick_model.predict(images) == digits.labels
    wrong = [style for style, right in zip(digits.styles, correct, strict=True) if not right]
    assert correct.sum() >= len(correct) - 1, f"misread: {wrong}"  # 126 of 126 measured
