"""The benchmark scripts answer --help at once: in a fresh interpreter, without TensorFlow.

The measurements themselves take minutes and print figures (benchmarks/README.md); what can be
checked in a test is that each script starts, explains its options, and imports TensorFlow only
where it measures it.
"""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_DIR = os.path.join(PROJECT_DIR, "benchmarks")
BENCHMARKS = sorted(os.path.basename(p) for p in glob.glob(f"{BENCHMARKS_DIR}/bench_*.py"))

# Runs a script as `python script --help` would, then fails if TensorFlow or Keras was imported.
HELP_WITHOUT_TENSORFLOW = """
import os, runpy, sys
script = sys.argv[1]
sys.argv = [script, "--help"]
sys.path.insert(0, os.path.dirname(script))  # as `python script` puts it first
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
imported = sorted({"tensorflow", "keras"} & set(sys.modules))
assert not imported, f"--help imported {imported}"
"""


@pytest.mark.parametrize("script", BENCHMARKS)
def test_help_needs_no_tensorflow(script, tmp_path):
    path = os.path.join(BENCHMARKS_DIR, script)
    result = subprocess.run(
        [sys.executable, "-c", HELP_WITHOUT_TENSORFLOW, path],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout
    assert "--" in result.stdout  # its options are explained
    assert os.listdir(tmp_path) == []  # and nothing was written


def test_the_benchmarks_are_all_checked():
    assert "bench_training.py" in BENCHMARKS and "bench_winograd.py" in BENCHMARKS


@pytest.mark.parametrize(("channels", "n_filters", "size"), [(3, 5, 13), (4, 2, 10), (1, 3, 7)])
def test_the_winograd_study_computes_what_the_fused_layer_does(channels, n_filters, size):
    """bench_winograd's F(2x2, 3x3) layer: the same pooled maps and gradients as
    fused_layers.conv2d_maxpool2d_*_fast, odd sizes (a row and column no window reads) included."""
    sys.path.insert(0, BENCHMARKS_DIR)
    try:
        import bench_winograd
    finally:
        sys.path.remove(BENCHMARKS_DIR)
    rng = np.random.default_rng(size)
    x = rng.random((channels, size, size, 6), dtype=np.float32).transpose(3, 0, 1, 2)
    filters = rng.standard_normal((n_filters, channels, 3, 3)).astype(np.float32)
    assert bench_winograd.check_against_the_fused_layer(x, filters, rng) < 1e-5
    # A wrong transform matrix is caught: the check is not blind.
    saved = bench_winograd.A16.copy()
    try:
        bench_winograd.A16[0, 0] = 0.5
        assert bench_winograd.check_against_the_fused_layer(x, filters, rng) > 1e-3
    finally:
        bench_winograd.A16[...] = saved


def test_the_winograd_study_swaps_into_the_network_unchanged_in_its_numbers():
    """bench_winograd's network section times what it says: the same features and gradients
    (float64) with the second stage's layer swapped for the study's, and only inside the block."""
    sys.path.insert(0, BENCHMARKS_DIR)
    try:
        import bench_winograd
    finally:
        sys.path.remove(BENCHMARKS_DIR)
    from simple_cnn import SimpleCNN

    kwargs = dict(num_filters=(32, 8), kernel_sizes=3, paddings="valid", seed=1, dtype=np.float64)
    cnn = SimpleCNN(**kwargs)
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 28, 28))
    d = rng.normal(size=(3, cnn.num_features))
    shipped = cnn.forward(x), cnn.backward(d, 0)
    with bench_winograd.winograd_in_the_network(cnn.stages[1].filters_shape) as calls:
        swapped = cnn.forward(x), cnn.backward(d, 0)
    assert calls == ["forward", "backward"]  # the second stage ran Winograd's layer, once each
    np.testing.assert_allclose(swapped[0], shipped[0], rtol=1e-12)
    for ours, reference in zip(swapped[1], shipped[1], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    # Outside the block, the network runs the shipped layer again.
    np.testing.assert_array_equal(cnn.forward(x), shipped[0])
    assert calls == ["forward", "backward"]
