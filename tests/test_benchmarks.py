"""The benchmark scripts answer --help at once: in a fresh interpreter, without TensorFlow.

The measurements themselves take minutes and print figures (benchmarks/README.md); what can be
checked in a test is that each script starts, explains its options, and imports TensorFlow only
where it measures it.
"""

import os
import subprocess
import sys

import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = ["bench_conv_stack.py", "bench_explorer.py", "bench_memory.py", "bench_training.py"]

# Runs a script as `python script --help` would, then reports whether TensorFlow or Keras were imported.
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
    path = os.path.join(PROJECT_DIR, "benchmarks", script)
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
