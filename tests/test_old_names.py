"""Modules that moved keep their old import names, with a DeprecationWarning saying where."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("model_file", "training.model_file", "load_model"),
        ("train_config", "training.settings", "TrainConfig"),
    ],
)
def test_an_old_module_name_still_imports_and_says_where_it_went(old, new, name):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        f"assert old is new and getattr(old, {name!r}) is getattr(new, {name!r})\n"
        "print([str(w.message) for w in caught if w.category is DeprecationWarning])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"{old} moved to {new.replace('.', '/')}.py" in result.stdout
